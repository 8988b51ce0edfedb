"""``POST /openrr/accounts/{id}/sessions/{sid}/connectToken``: a token for one session's render server."""

from __future__ import annotations

import dataclasses
import datetime as dt

import httpx
import jwt
import pytest

from openrr.domain.clock import ManualClock
from openrr.protocol.handshake import CONNECT_AUDIENCE, ConnectTokenRefused, check_connect_token
from openrr.services.runtime import Runtime
from tests.conftest import Account
from tests.fakes import FakeHost

API = {"api-version": "2021-01-01"}


def url(account: Account, session_id: str) -> str:
    return f"/openrr/accounts/{account.id}/sessions/{session_id}/connectToken"


async def ready(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, sid: str, lease: int
) -> None:
    resp = await client.put(
        f"/accounts/{account.id}/sessions/{sid}",
        params=API,
        json={"maxLeaseTimeMinutes": lease, "size": "Standard"},
        headers=account.auth,
    )
    assert resp.status_code == 201, resp.text
    await fake_host.settle()


def claims_of(token: str, secret: str) -> dict[str, object]:
    # The lifetime is checked against the test's clock below, not the wall clock jwt would use.
    decoded: dict[str, object] = jwt.decode(
        token, secret, algorithms=["HS256"], audience=CONNECT_AUDIENCE, options={"verify_exp": False}
    )
    return decoded


async def test_a_connect_token_is_for_its_session_alone_and_short_lived(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime, clock: ManualClock
) -> None:
    await ready(client, account, fake_host, "s1", lease=120)
    await ready(client, account, fake_host, "s2", lease=120)
    resp = await client.post(url(account, "s1"), headers=account.auth)
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"token", "expiresOn", "handshakeUrl", "inspectorUrl"}
    assert resp.headers["cache-control"] == "no-store"
    assert resp.json()["handshakeUrl"].startswith("http://render.test:")
    token = resp.json()["token"]
    s1 = await runtime.sessions.get(account.id, "s1")
    s2 = await runtime.sessions.get(account.id, "s2")
    assert s1.connect_secret
    assert s2.connect_secret
    assert s1.connect_secret != s2.connect_secret
    claims = claims_of(token, s1.connect_secret)
    assert claims["sub"] == "s1"
    assert claims["accountId"] == account.id
    assert claims["iss"] == "openrr"
    # 30 minutes by default (--connect-token-minutes), well inside a 2-hour lease.
    expires = clock.now() + dt.timedelta(minutes=30)
    assert claims["exp"] == int(expires.timestamp())
    assert resp.json()["expiresOn"] == expires.isoformat(timespec="microseconds").replace("+00:00", "Z")
    # Another session's render server, holding its own secret, refuses it.
    with pytest.raises(ConnectTokenRefused):
        check_connect_token(token, secret=s2.connect_secret, session_id="s2")
    # The account token, presented to a render server, is refused as not a connect token.
    with pytest.raises(ConnectTokenRefused, match="not a connect token"):
        check_connect_token(account.token, secret=s1.connect_secret, session_id="s1")
    # The secret never shows in an API answer.
    for path in (f"/accounts/{account.id}/sessions/s1", f"/accounts/{account.id}/sessions"):
        body = (await client.get(path, params=API, headers=account.auth)).text
        assert s1.connect_secret not in body
    assert s1.connect_secret not in repr(s1)


async def test_a_connect_token_never_outlives_the_lease(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime, clock: ManualClock
) -> None:
    await ready(client, account, fake_host, "short", lease=10)
    clock.advance(4 * 60)
    resp = await client.post(url(account, "short"), headers=account.auth)
    session = await runtime.sessions.get(account.id, "short")
    assert resp.status_code == 200
    assert session.expires_at is not None
    assert session.connect_secret
    assert claims_of(resp.json()["token"], session.connect_secret)["exp"] == int(
        session.expires_at.timestamp()
    )


async def test_connect_token_errors(
    client: httpx.AsyncClient,
    account: Account,
    other_account: Account,
    fake_host: FakeHost,
    runtime: Runtime,
) -> None:
    assert (await client.post(url(account, "s1"))).status_code == 401
    assert (await client.post(url(account, "nope"), headers=account.auth)).status_code == 404
    assert (await client.post(url(account, "bad id!"), headers=account.auth)).status_code == 400
    fake_host.auto_ready = False
    resp = await client.put(
        f"/accounts/{account.id}/sessions/s1",
        params=API,
        json={"maxLeaseTimeMinutes": 30, "size": "Standard"},
        headers=account.auth,
    )
    assert resp.status_code == 201
    resp = await client.post(url(account, "s1"), headers=account.auth)
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "SessionNotReady"
    assert "Starting" in resp.json()["error"]["message"]
    # Another account's token: refused as for the session API, and nothing is minted.
    resp = await client.post(url(account, "s1"), headers=other_account.auth)
    assert resp.status_code == 403
    resp = await client.post(url(other_account, "s1"), headers=other_account.auth)
    assert resp.status_code == 404

    # A session stored before session-scoped tokens existed has no secret: it cannot be connected to.
    fake_host.auto_ready = True
    await ready(client, account, fake_host, "old", lease=30)
    session = await runtime.sessions.get(account.id, "old")
    await runtime.store.update_session(dataclasses.replace(session, connect_secret=None))
    runtime.sessions._cache.forget(account.id, "old")  # another replica wrote it, as it were
    resp = await client.post(url(account, "old"), headers=account.auth)
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "SessionNotConnectable"
