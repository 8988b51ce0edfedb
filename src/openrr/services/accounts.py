"""Accounts and their two keys: random 256-bit secrets, shown once, stored only as salted hashes."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from openrr.domain.clock import Clock
from openrr.domain.ids import new_uuid, parse_account_id
from openrr.errors import InvalidInput, NotFound
from openrr.store.base import Account, Store

SLOTS = ("primary", "secondary")


def new_key() -> str:
    # Same shape as ARR's keys: 44 characters of base64 ending in "=".
    return base64.b64encode(secrets.token_bytes(32)).decode()


def hash_key(key: str, *, salt: bytes | None = None) -> str:
    """``sha256$<salt hex>$<digest hex>``. A fast hash is right here: the keys are 256-bit random values."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.sha256(salt + key.encode()).hexdigest()
    return f"sha256${salt.hex()}${digest}"


def key_matches(key: str, stored: str) -> bool:
    try:
        scheme, salt_hex, _ = stored.split("$")
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    return scheme == "sha256" and hmac.compare_digest(hash_key(key, salt=salt), stored)


@dataclasses.dataclass(frozen=True)
class NewAccount:
    account_id: str
    primary_key: str
    secondary_key: str

    def as_json(self) -> dict[str, str]:
        return {
            "accountId": self.account_id,
            "primaryKey": self.primary_key,
            "secondaryKey": self.secondary_key,
        }


class AccountService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(self, name: str = "") -> NewAccount:
        created = NewAccount(new_uuid(), new_key(), new_key())
        await self._store.add_account(
            Account(
                id=created.account_id,
                name=name,
                created_at=self._clock.now(),
                primary_key_hash=hash_key(created.primary_key),
                secondary_key_hash=hash_key(created.secondary_key),
            )
        )
        return created

    async def list(self) -> Sequence[Account]:
        return await self._store.list_accounts()

    async def rotate_key(self, account_id: str, slot: str) -> str:
        if slot not in SLOTS:
            raise InvalidInput(f"The key slot must be one of {', '.join(SLOTS)}.")
        account_id = parse_account_id(account_id)
        if await self._store.get_account(account_id) is None:
            raise NotFound(f"There is no account {account_id}.")
        key = new_key()
        await self._store.set_account_key_hash(account_id, slot, hash_key(key))
        return key

    async def verify_key(self, account_id: str, key: str) -> bool:
        """True if ``key`` is the account's primary or secondary key."""
        account = await self._store.get_account(account_id)
        if account is None:
            return False
        # Both are checked always, so the answer takes the same time whichever key was used.
        primary = key_matches(key, account.primary_key_hash)
        secondary = key_matches(key, account.secondary_key_hash)
        return primary or secondary
