"""The session service's read-through cache, so that polling clients do not cost a database read each.

Apart from ``SessionService`` because its contract (exact with one control plane, ``ttl``-stale across
replicas, never trusted by a write) is one to read on its own.
"""

from __future__ import annotations

import time

from openrr.domain.session import Session


class SessionCache:
    """A small read-through cache of sessions, so that polling clients do not cost a database read each.

    Every write of this process goes through ``SessionService._mutate`` and refreshes the entry, so with one
    control plane the cache is exact. With several replicas on one store, another replica's write becomes
    visible here within ``ttl`` seconds (``cache_ttl_s``; 0 turns the cache off). Writes never trust it:
    a compare-and-set that loses re-reads the store.
    """

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[tuple[str, str], tuple[Session, float]] = {}

    def get(self, account_id: str, session_id: str) -> Session | None:
        if self._ttl <= 0:
            return None
        entry = self._entries.get((account_id, session_id))
        if entry is None or time.monotonic() - entry[1] > self._ttl:
            return None
        return entry[0]

    def put(self, session: Session) -> None:
        if self._ttl <= 0:
            return
        key = (session.account_id, session.id)
        current = self._entries.pop(key, None)
        if current is not None and current[0].version > session.version:
            session = current[0]  # never replace a newer snapshot with an older one
        self._entries[key] = (session, time.monotonic())
        while len(self._entries) > self._max:
            del self._entries[next(iter(self._entries))]

    def forget(self, account_id: str, session_id: str) -> None:
        self._entries.pop((account_id, session_id), None)

    def clear(self) -> None:
        self._entries.clear()
