"""Loopback host candidates for aioice, which leaves ``127.0.0.1`` out of the addresses it gathers.

aiortc gathers host candidates through ``aioice.ice.get_host_addresses``, which deliberately skips
``127.0.0.1``. Two peers on one machine therefore pair over whatever other interface exists, and inside a
network namespace that has only ``lo`` they gather nothing and never connect. aioice has no per-connection
hook for this, so :func:`install` replaces that module function, once for the process, by one that answers
aioice's own addresses everywhere except inside a :func:`loopback_host_candidates` block, where it answers
the block's fixed addresses instead.

The block's addresses are held in a context variable, so they reach exactly the coroutines (and the tasks
they start, such as aiortc's gathering) running inside the block, and no other coroutine of the process,
however the block's awaits interleave with them. Nothing is undone on leaving a block: the replacement stays
installed and falls back to aioice's function.

Internals relied on (aioice 0.13): the module function ``aioice.ice.get_host_addresses(use_ipv4, use_ipv6)``,
looked up by name in that module's globals by ``Connection.gather_candidates``. ``tests/unit/test_compat.py``
checks that both are still so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import aioice.ice

# The addresses of the innermost loopback_host_candidates block around the running code, if any.
_fixed: ContextVar[tuple[str, ...] | None] = ContextVar("openrr_loopback_host_candidates", default=None)
# aioice's own function, kept by install(); None until then.
_aioice_host_addresses: Callable[[bool, bool], list[str]] | None = None
# Peers may gather on several threads (a test's fake server on its own loop): one install among them.
_installing = threading.Lock()


def install() -> None:
    """Put openrr's ``get_host_addresses`` into aioice, for the whole process. Idempotent."""
    global _aioice_host_addresses
    with _installing:
        if _aioice_host_addresses is not None:
            return
        original = getattr(aioice.ice, "get_host_addresses", None)
        if not callable(original):
            raise RuntimeError("aioice.ice.get_host_addresses is gone: openrr.compat.aioice needs updating")
        _aioice_host_addresses = original
        aioice.ice.get_host_addresses = _host_addresses


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    fixed = _fixed.get()
    if fixed is None:
        assert _aioice_host_addresses is not None  # set by install() before this is reachable
        return _aioice_host_addresses(use_ipv4, use_ipv6)
    return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


@contextmanager
def loopback_host_candidates(addresses: Sequence[str] = ("127.0.0.1",)) -> Iterator[None]:
    """Within the block, and only for the code running in it, aioice offers exactly ``addresses`` as host
    candidates (IPv6 ones only where aioice asks for IPv6). Installs the adaptation first (see
    :func:`install`); blocks nest, the innermost one counting."""
    install()
    token = _fixed.set(tuple(addresses))
    try:
        yield
    finally:
        _fixed.reset(token)
