"""The Store protocol: everything the services persist, and nothing about how.

Every write that changes a session is a compare-and-set on ``Session.version``: two writers (an API call and
the reaper, or two control-plane replicas) can never both win. A lost race raises ``StaleWrite``; the caller
reloads and decides again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from openrr.domain.session import Session, Status


class StaleWrite(Exception):
    """The session changed since it was read."""


@dataclasses.dataclass(frozen=True)
class Account:
    id: str
    name: str
    created_at: dt.datetime
    primary_key_hash: str
    secondary_key_hash: str


@dataclasses.dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: bytes
    created_at: dt.datetime


class Store(Protocol):
    async def close(self) -> None: ...

    # accounts
    async def add_account(self, account: Account) -> None: ...
    async def get_account(self, account_id: str) -> Account | None: ...
    async def list_accounts(self) -> Sequence[Account]: ...
    async def set_account_key_hash(self, account_id: str, slot: str, key_hash: str) -> None: ...

    # token signing keys, shared by every replica
    async def signing_key(self, make: SigningKey) -> SigningKey:
        """Return the current signing key, storing ``make`` first if there is none (race-safe)."""
        ...

    # sessions
    async def insert_session(self, session: Session) -> bool:
        """Insert; False if (account_id, id) already exists."""
        ...

    async def get_session(self, account_id: str, session_id: str) -> Session | None: ...

    async def update_session(self, session: Session) -> Session:
        """Write ``session`` if the stored version equals ``session.version``; returns it with version+1.

        Raises StaleWrite otherwise.
        """
        ...

    async def list_sessions(
        self,
        account_id: str,
        *,
        statuses: Sequence[Status],
        after_id: str | None = None,
        limit: int = 100,
    ) -> Sequence[Session]:
        """Sessions of one account with one of ``statuses``, ordered by id, starting after ``after_id``."""
        ...

    async def sessions_needing_attention(self) -> Sequence[Session]:
        """Active sessions, and ended ones whose render server was not released yet (for the reaper)."""
        ...

    async def purge_ended_before(self, cutoff: dt.datetime) -> int:
        """Delete ended sessions whose end is before ``cutoff``; returns how many."""
        ...

    async def count_sessions_by_status(self) -> dict[Status, int]: ...
