"""Signing keys rotate without downtime, and an account's tokens can be revoked with its key."""

from __future__ import annotations

import datetime as dt

import httpx
import jwt

from openrr.domain.clock import ManualClock
from openrr.services.runtime import Runtime
from openrr.services.tokens import TokenIssuer, new_signing_key
from tests.conftest import Account

API = {"api-version": "2021-01-01"}


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def sts(client: httpx.AsyncClient, account: Account) -> str:
    resp = await client.get(
        f"/accounts/{account.id}/token", headers={"Authorization": f"Bearer {account.id}:{account.key}"}
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["AccessToken"])


async def lists(client: httpx.AsyncClient, account: Account, token: str) -> int:
    resp = await client.get(
        f"/accounts/{account.id}/sessions", params=API, headers={"Authorization": f"Bearer {token}"}
    )
    return resp.status_code


async def test_a_rotation_signs_new_tokens_with_the_new_key_and_keeps_old_ones_valid(
    client: httpx.AsyncClient, account: Account, runtime: Runtime, clock: ManualClock
) -> None:
    old_token = await sts(client, account)
    old_kid = kid(old_token)
    new = new_signing_key(clock.now() + dt.timedelta(seconds=1))
    await runtime.store.add_signing_key(new)  # what `openrr keys rotate` does, from any machine
    await runtime.refresh_keys()  # what every control plane does every few seconds
    new_token = await sts(client, account)
    assert kid(new_token) == new.kid != old_kid
    assert await lists(client, account, old_token) == 200
    assert await lists(client, account, new_token) == 200

    # Revoked: the old key is gone, and so is every token it signed.
    assert await runtime.store.drop_signing_keys(new.kid) == 1
    await runtime.refresh_keys()
    assert await lists(client, account, old_token) == 401
    assert await lists(client, account, new_token) == 200
    assert [k.kid for k in await runtime.store.signing_keys()] == [new.kid]


async def test_a_token_of_a_key_this_replica_has_not_read_yet_is_accepted_at_once(
    client: httpx.AsyncClient, account: Account, runtime: Runtime, clock: ManualClock
) -> None:
    # Another replica rotated a moment ago and signed with the new key; this one has not re-read the keys.
    new = new_signing_key(clock.now() + dt.timedelta(seconds=1))
    await runtime.store.add_signing_key(new)
    token, _ = TokenIssuer([new], clock).issue_account_token(account.id)
    assert await lists(client, account, token) == 200
    # A key that is in no store is refused (and a second try within a second does not read the store).
    stranger, _ = TokenIssuer([new_signing_key(clock.now())], clock).issue_account_token(account.id)
    assert await lists(client, account, stranger) == 401
    assert await lists(client, account, stranger) == 401


async def test_rotating_an_account_key_can_revoke_its_tokens(
    client: httpx.AsyncClient, account: Account, other_account: Account, runtime: Runtime, clock: ManualClock
) -> None:
    before = await sts(client, account)
    others = await sts(client, other_account)
    clock.advance(5)
    new_key = await runtime.accounts.rotate_key(account.id, "primary")
    assert await lists(client, account, before) == 200  # a plain rotation leaves tokens alone
    clock.advance(5)
    await runtime.accounts.rotate_key(account.id, "secondary", revoke_tokens=True)
    resp = await client.get(
        f"/accounts/{account.id}/sessions", params=API, headers={"Authorization": f"Bearer {before}"}
    )
    assert resp.status_code == 401
    assert "revoked" in resp.json()["error"]["message"]
    assert await lists(client, other_account, others) == 200  # other accounts are untouched
    clock.advance(1)
    fresh = await sts(client, Account(account.id, new_key, ""))
    assert await lists(client, account, fresh) == 200
