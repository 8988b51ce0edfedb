"""Accounts and what belongs to them: the account with its key hashes, the storage linked to it, and the
keys that sign every account's tokens.

Plain values shared by the store (which persists them), the services (which change them) and the API (which
shows them); apart from the Store protocol so that reading them loads no database code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt


@dataclasses.dataclass(frozen=True)
class Account:
    id: str
    name: str
    created_at: dt.datetime
    primary_key_hash: str
    secondary_key_hash: str
    tokens_not_before: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class LinkedStorage:
    """A storage account linked to one account (ARR's linked storage). ``key`` None: SAS only."""

    account_id: str
    name: str
    key: str | None = dataclasses.field(repr=False)
    endpoint: str
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class SigningKey:
    """A key that signs the service's tokens; every replica reads the same ones from the store."""

    kid: str
    private_pem: bytes
    created_at: dt.datetime
