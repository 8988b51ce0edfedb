"""What a SQLite database file needs before the store pools connections to it: WAL mode, switched on once
with bounded retries, and the per-connection pragmas (busy timeout, synchronous, foreign keys).

Apart from ``open_store`` because it is synchronous ``sqlite3`` code with locking rules of its own; it
runs in a thread.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from typing import Any

_WAL_WAIT_S = 30.0


def is_file(database: str | None) -> bool:
    """Whether ``database`` (a SQLite URL's database part) names a file, not memory or a ``file:`` URI."""
    return bool(database) and database != ":memory:" and not str(database).startswith("file:")


def use_wal(database: str) -> None:
    """Put the database file in WAL mode, once, before any pooled connection opens.

    WAL is a property of the file. Switching to it needs the exclusive lock, and SQLite answers "database
    is locked" at once, without waiting out the busy timeout, when the switching connection holds a read
    lock that another connection's pending write would deadlock on; several replicas (or several stores
    in one process) opening a new file together hit exactly that. So switch here, on a connection of our
    own, and retry for a bounded time; the pooled connections never ask for the mode again.
    """
    deadline = time.monotonic() + _WAL_WAIT_S
    with contextlib.closing(sqlite3.connect(database, timeout=_WAL_WAIT_S)) as conn:
        while True:
            try:
                (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
                if str(mode).lower() != "wal":
                    (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                continue
            if str(mode).lower() != "wal":
                raise RuntimeError(f"SQLite refused WAL mode (journal_mode is {mode!r})")
            return


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """The engine's ``connect`` listener: every pooled connection's settings."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
