"""Accounts and their two keys: random 256-bit secrets, shown once, stored only as salted hashes."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from openrr.domain.account import Account, LinkedStorage
from openrr.domain.clock import Clock
from openrr.domain.ids import new_uuid, parse_account_id
from openrr.errors import AuthenticationFailed, InvalidInput, NotFound
from openrr.storage.base import LinkedAccount, parse_linked_account
from openrr.store.base import Store

SLOTS = ("primary", "secondary")
NOT_BEFORE_TTL_S = 5.0


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
        # account id → (when read, tokens_not_before): read at most every NOT_BEFORE_TTL_S, so a revocation
        # made through another replica or the CLI takes effect within that time, at no store read a request.
        self._not_before: dict[str, tuple[float, dt.datetime | None]] = {}

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

    async def rotate_key(self, account_id: str, slot: str, *, revoke_tokens: bool = False) -> str:
        """A new key for ``slot``; with ``revoke_tokens``, every access token issued so far is refused too."""
        if slot not in SLOTS:
            raise InvalidInput(f"The key slot must be one of {', '.join(SLOTS)}.")
        account_id = parse_account_id(account_id)
        if await self._store.get_account(account_id) is None:
            raise NotFound(f"There is no account {account_id}.")
        key = new_key()
        not_before = self._clock.now() if revoke_tokens else None
        await self._store.set_account_key_hash(account_id, slot, hash_key(key), tokens_not_before=not_before)
        self._not_before.pop(account_id, None)
        return key

    async def check_not_revoked(self, account_id: str, claims: Mapping[str, Any]) -> None:
        """Refuse an access token issued before the account's ``tokens_not_before``."""
        now = time.monotonic()
        cached = self._not_before.get(account_id)
        if cached is None or now - cached[0] > NOT_BEFORE_TTL_S:
            account = await self._store.get_account(account_id)
            cached = (now, account.tokens_not_before if account else None)
            if len(self._not_before) >= 100_000:
                self._not_before.clear()
            self._not_before[account_id] = cached
        not_before = cached[1]
        issued = claims.get("iat")
        # Whole seconds, as iat is: a token issued in the second of the rotation, after it, stays good.
        if not_before is not None and (not isinstance(issued, int) or issued < int(not_before.timestamp())):
            raise AuthenticationFailed("The access token was revoked: the account's key was rotated since.")

    # ---- linked storage (ARR's "link storage accounts") -------------------------------------------------
    async def _existing(self, account_id: str) -> str:
        account_id = parse_account_id(account_id)
        if await self._store.get_account(account_id) is None:
            raise NotFound(f"There is no account {account_id}.")
        return account_id

    async def link_storage(self, account_id: str, spec: str) -> LinkedAccount:
        """Link ``NAME=KEY[@ENDPOINT]`` or ``NAME@ENDPOINT`` to the account, replacing a link of that name."""
        account_id = await self._existing(account_id)
        try:
            linked = parse_linked_account(spec)
        except ValueError as exc:  # its message never repeats the key
            raise InvalidInput(f"The storage account is not valid: {exc}.") from None
        await self._store.link_storage(
            LinkedStorage(account_id, linked.name, linked.key, linked.endpoint, self._clock.now())
        )
        return linked

    async def unlink_storage(self, account_id: str, name: str) -> None:
        account_id = await self._existing(account_id)
        if not await self._store.unlink_storage(account_id, name):
            raise NotFound(f"The storage account {name!r} is not linked to account {account_id}.")

    async def linked_storage(self, account_id: str) -> Sequence[LinkedAccount]:
        account_id = await self._existing(account_id)
        return linked_accounts(await self._store.linked_storage(account_id))

    async def verify_key(self, account_id: str, key: str) -> bool:
        """True if ``key`` is the account's primary or secondary key."""
        account = await self._store.get_account(account_id)
        if account is None:
            return False
        # Both are checked always, so the answer takes the same time whichever key was used.
        primary = key_matches(key, account.primary_key_hash)
        secondary = key_matches(key, account.secondary_key_hash)
        return primary or secondary


def linked_accounts(links: Sequence[LinkedStorage]) -> tuple[LinkedAccount, ...]:
    return tuple(LinkedAccount(link.name, link.key, link.endpoint) for link in links)
