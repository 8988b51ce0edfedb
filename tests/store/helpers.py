"""What the store tests share: a fixed time, the two backends, and rows to insert."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from openrr.domain.account import Account
from openrr.domain.session import Session, Size, Status

T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def make_account(account_id: str | None = None, *, name: str = "acct", at: dt.datetime = T0) -> Account:
    return Account(
        id=account_id or str(uuid.uuid4()),
        name=name,
        created_at=at,
        primary_key_hash="sha256$00$primary",
        secondary_key_hash="sha256$00$secondary",
    )


def make_session(account_id: str, session_id: str, status: Status = Status.STARTING, **kw: object) -> Session:
    values: dict[str, object] = {
        "account_id": account_id,
        "id": session_id,
        "size": Size.STANDARD,
        "lease_minutes": 30,
        "status": status,
        "created_at": T0,
    }
    if not status.active:
        values["ended_at"] = T0 + dt.timedelta(minutes=5)
    values.update(kw)
    return Session(**values)  # type: ignore[arg-type]


def account_row_before_0006(account: Account) -> dict[str, object]:
    """``account`` as a row of the accounts table before revision 0006 (no tokens_not_before)."""
    return {k: v for k, v in dataclasses.asdict(account).items() if k != "tokens_not_before"}
