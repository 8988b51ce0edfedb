"""The Store protocol: everything the services persist, and nothing about how.

Every write that changes a session is a compare-and-set on ``Session.version``: two writers (an API call and
the reaper, or two control-plane replicas) can never both win. A lost race raises ``StaleWrite``; the caller
reloads and decides again.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from typing import Protocol

from openrr.domain.account import Account, LinkedStorage, SigningKey
from openrr.domain.conversion import Conversion, ConversionStatus
from openrr.domain.library import LibraryModel
from openrr.domain.session import Session, Status


class StaleWrite(Exception):
    """The session changed since it was read."""


class Admission(enum.StrEnum):
    """What ``Store.insert_session`` (or ``insert_conversion``) did. Every member is truthy: compare with
    ``is``, never test truth."""

    INSERTED = "inserted"
    EXISTS = "exists"  # the (account_id, id) is taken: the caller compares settings (idempotent create)
    OVER_QUOTA = "over_quota"  # the account already has max_active_per_account sessions holding a server
    NO_CAPACITY = "no_capacity"  # the size already has size_slots sessions holding a server


class Store(Protocol):
    async def close(self) -> None: ...

    # accounts
    async def add_account(self, account: Account) -> None: ...
    async def get_account(self, account_id: str) -> Account | None: ...
    async def list_accounts(self) -> Sequence[Account]: ...
    async def set_account_key_hash(
        self, account_id: str, slot: str, key_hash: str, *, tokens_not_before: dt.datetime | None = None
    ) -> None:
        """Replace a key's hash; with ``tokens_not_before``, also refuse tokens issued before it."""
        ...

    # storage accounts linked to one account
    async def link_storage(self, link: LinkedStorage) -> None:
        """Link ``link.name`` to ``link.account_id``, replacing an earlier link of that name."""
        ...

    async def unlink_storage(self, account_id: str, name: str) -> bool:
        """Remove the link; False if there was none."""
        ...

    async def linked_storage(self, account_id: str) -> Sequence[LinkedStorage]:
        """The account's linked storage accounts, by name."""
        ...

    # token signing keys, shared by every replica
    async def signing_key(self, make: SigningKey) -> SigningKey:
        """Return the current signing key, storing ``make`` first if there is none (race-safe)."""
        ...

    async def signing_keys(self) -> Sequence[SigningKey]:
        """Every signing key, the current one (the newest) first."""
        ...

    async def add_signing_key(self, key: SigningKey) -> None:
        """Store ``key``; as the newest, it becomes the current one (``openrr keys rotate``)."""
        ...

    async def drop_signing_keys(self, keep: str, created_before: dt.datetime | None = None) -> int:
        """Delete every key but ``keep`` (created before ``created_before``, if given); how many went."""
        ...

    # sessions
    async def insert_session(
        self,
        session: Session,
        *,
        max_active_per_account: int | None = None,
        size_slots: int | None = None,
    ) -> Admission:
        """Insert ``session`` unless its id is taken or a limit is reached; say which.

        A session *holds a server* while it is Starting or Ready, and after it ended for as long as its
        render server is not released (``host_released`` False with a ``host_handle``): that server still
        occupies a slot. The limits count such sessions: ``max_active_per_account`` those of the session's
        account (any size), ``size_slots`` those of the session's size (every account). ``None`` means no
        limit. A session that would not itself hold a server is never refused for a limit.

        Checks run in this order: EXISTS first (an idempotent retry of a create must get EXISTS, never a
        quota refusal), then OVER_QUOTA, then NO_CAPACITY. With a limit, counting and inserting are one
        admission serialised against every other admission of every replica on the database (an advisory
        lock on PostgreSQL, an immediate write transaction on SQLite), so no race lets a limit be exceeded.
        """
        ...

    async def count_holding_by_size(self) -> dict[str, int]:
        """Sessions holding a server, by size value (every ``Size`` present, 0 if none): status displays."""
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

    # conversions: every write is a compare-and-set on ``Conversion.version``, as for sessions
    async def insert_conversion(
        self, conversion: Conversion, *, max_pending_per_account: int | None = None
    ) -> Admission:
        """Insert: INSERTED, EXISTS if (account_id, id) already exists, or OVER_QUOTA if the account already
        has ``max_pending_per_account`` conversions NotStarted or Running (checked and inserted atomically,
        as ``insert_session`` does)."""
        ...

    async def get_conversion(self, account_id: str, conversion_id: str) -> Conversion | None: ...

    async def update_conversion(self, conversion: Conversion) -> Conversion:
        """Write if the stored version equals ``conversion.version``; returns it with version+1.

        Raises StaleWrite otherwise.
        """
        ...

    async def list_conversions(
        self, account_id: str, *, after_id: str | None = None, limit: int = 100
    ) -> Sequence[Conversion]:
        """Conversions of one account, ordered by id, starting after ``after_id``."""
        ...

    async def conversions_with_status(
        self, statuses: Sequence[ConversionStatus], *, limit: int = 100
    ) -> Sequence[Conversion]:
        """Conversions of every account with one of ``statuses``, oldest first."""
        ...

    async def purge_conversions_ended_before(self, cutoff: dt.datetime) -> int:
        """Delete ended conversions whose end is before ``cutoff``; returns how many."""
        ...

    # the model library (openrr.domain.library): every call names the account, and reaches its models alone
    async def insert_model(self, model: LibraryModel) -> bool:
        """Insert; False if the account already has a model of that name."""
        ...

    async def get_model(self, account_id: str, model_id: str) -> LibraryModel | None: ...

    async def list_models(self, account_id: str) -> Sequence[LibraryModel]:
        """The account's models, oldest first."""
        ...

    async def library_usage(self, account_id: str) -> tuple[int, int]:
        """(models, bytes uploaded) of the account's library, all together."""
        ...

    async def rename_model(self, account_id: str, model_id: str, name: str) -> bool | None:
        """True if renamed, False if the account has another model of that name, None if no such model."""
        ...

    async def end_model(
        self, account_id: str, model_id: str, status: str, error_code: str | None, error_message: str | None
    ) -> None:
        """Record how the model's conversion ended."""
        ...

    async def delete_model(self, account_id: str, model_id: str) -> bool:
        """Delete the row; False if there was none."""
        ...

    # leader leases: several replicas share one database, and some jobs (the reaper) must run in one only
    async def try_lease(self, name: str, holder: str, ttl: dt.timedelta, now: dt.datetime) -> bool:
        """Take lease ``name`` for ``holder`` until ``now + ttl``, or renew it if ``holder`` has it already.

        True if ``holder`` holds the lease now; False if another holder's lease is still live (its
        ``expires_at`` is after ``now``). One atomic statement: of any number of replicas racing, exactly one
        wins. A holder must renew well before ``ttl`` runs out, and stop the job when a renewal returns
        False. ``now`` comes from the caller's clock; replicas' clocks are assumed to agree to well within
        ``ttl``.
        """
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Give lease ``name`` up at once if ``holder`` holds it (a clean shutdown); otherwise do nothing."""
        ...

    async def lease_holder(self, name: str, now: dt.datetime) -> str | None:
        """Who holds lease ``name`` at ``now``; None if nobody or if the lease expired (status displays)."""
        ...
