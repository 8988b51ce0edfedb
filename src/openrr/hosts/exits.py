"""How a render server ended, in words: the same message whichever host ran it."""

from __future__ import annotations

import os
import re
import signal

from openrr.protocol.handshake import SELF_STOP_EXITS, SELF_STOP_LOG

LOG_TAIL_LINES = 8
# The render server's own ``self-stop`` line (openrr.render.process configure_logging's format, WARNING, its
# own logger), anchored at a line start: text a client put into other log lines cannot pass for it.
_SELF_STOP_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING openrr\.render: "
    + re.escape(SELF_STOP_LOG)
    + r" (?P<reason>[A-Za-z]+): "
)
# What a log shows when the process died of its memory ceiling outside the loads the server handles itself
# (a MemoryError elsewhere, a C library that aborts when an allocation fails).
_OUT_OF_MEMORY_SIGNS = ("memoryerror", "memory allocation", "out of memory", "cannot allocate memory")


def _last_lines(path: str | None, lines: int) -> list[str]:
    if not path:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            found = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return []
    return found[-lines:]


def log_tail(path: str | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file joined by `` | `` (empty when there is none)."""
    return " | ".join(_last_lines(path, lines))


def describe_exit(code: int | None, log: str | None) -> str:
    """``code`` as subprocess reports it (negative: killed by that signal; None: gone, status unknown)."""
    if code is None:
        how = "The render server process is gone"
    elif code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:  # e.g. real-time signals other than SIGRTMIN/SIGRTMAX have no enum member
            name = str(-code)
        how = f"The render server was killed by signal {name}"
    else:
        how = f"The render server exited with code {code}"
    last = log_tail(log)
    if any(sign in last.lower() for sign in _OUT_OF_MEMORY_SIGNS):
        how += " after running out of memory (its size's memory ceiling: --render-memory)"
    return f"{how}." + (f" Last log lines: {last}" if last else "")


def self_stop_reason(code: int | None, log: str | None) -> str | None:
    """Why a render server stopped itself (``openrr.protocol.handshake`` ``LEASE_ENDED`` or
    ``CONTROL_PLANE_UNREACHABLE``), or None when it did not. The exit code decides when it is known; when it
    is not (a server adopted after a restart is no child of this process), its last log lines do."""
    if code is not None:
        return SELF_STOP_EXITS.get(code)
    found = [m["reason"] for line in _last_lines(log, LOG_TAIL_LINES) if (m := _SELF_STOP_LINE.match(line))]
    reason = found[-1] if found else None
    return reason if reason in SELF_STOP_EXITS.values() else None
