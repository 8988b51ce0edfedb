"""A process's memory ceiling (RLIMIT_DATA), shared by the render server and the converter process: the
render server takes it from its spec (``RenderLimits.memory_bytes``), the converter from its job
(``openrr.assets.worker``); each sets it before anything else is imported so that every allocation of the
process counts against it. Top-level (as ``openrr.child_env``) because the two must not import each other.

Why RLIMIT_DATA and not RLIMIT_AS: since Linux 4.7 RLIMIT_DATA counts the heap and every private writable
mapping (numpy arrays, decoded textures, Mesa's buffers), which is what a hostile model makes grow; RLIMIT_AS
also counts address space that is reserved but never used (Mesa's llvmpipe and glibc's per-thread arenas
reserve hundreds of MiB), so a ceiling on it would have to be far above what the server uses. A cgroup
would need privileges openrr does not assume. Past the ceiling an allocation fails: Python raises
MemoryError, which the server reports as ``OutOfMemory`` (the session goes to Error); the ceiling is the
hard limit too, so the server cannot raise it. Other processes are not affected.
"""

from __future__ import annotations

import json
import resource

OUT_OF_MEMORY = "OutOfMemory"


def ceiling_of(raw_spec: str | None) -> int | None:
    """``limits.memory_bytes`` of a RenderSpec in JSON, or None (no spec, no limit, or not readable: the
    server's own parsing reports a bad spec)."""
    if not raw_spec:
        return None
    try:
        value = json.loads(raw_spec).get("limits", {}).get("memory_bytes")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def apply_ceiling(limit: int | None) -> None:
    if limit is None:
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def describe(limit: int | None) -> str:
    shown = f" of {limit / (1 << 20):.0f} MiB" if limit else ""
    return f"The render server ran out of memory: it needs more than its size's memory ceiling{shown}."
