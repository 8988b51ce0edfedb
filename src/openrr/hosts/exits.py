"""How a render server ended, in words: the same message whichever host ran it."""

from __future__ import annotations

import os
import signal

LOG_TAIL_LINES = 8


def log_tail(path: str | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file joined by `` | `` (empty when there is none)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            found = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(found[-lines:])


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


# What a log shows when the process died of its memory ceiling outside the loads the server handles itself
# (a MemoryError elsewhere, a C library that aborts when an allocation fails).
_OUT_OF_MEMORY_SIGNS = ("memoryerror", "memory allocation", "out of memory", "cannot allocate memory")
