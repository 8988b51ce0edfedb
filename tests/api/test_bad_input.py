"""Bad input to the 2021-01-01 API gets the right 4xx with an ARR error body, and changes nothing."""

from __future__ import annotations

import datetime as dt

import httpx
import jwt
import pytest

from openrr.services.runtime import Runtime
from tests.conftest import Account

V = {"api-version": "2021-01-01"}
GOOD = {"maxLeaseTimeMinutes": 30, "size": "Standard"}


def assert_arr_error(resp: httpx.Response, status: int, code: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    error = resp.json()["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    assert "ms-cv" in resp.headers
    if status not in (429, 503):
        assert "retry-after" not in resp.headers


async def no_sessions(client: httpx.AsyncClient, account: Account) -> None:
    listed = await client.get(f"/accounts/{account.id}/sessions", params=V, headers=account.auth)
    assert listed.json() == {"sessions": []}


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"[]",
        b'"Standard"',
        b'{"maxLeaseTimeMinutes": "30", "size": "Standard"}',
        b'{"maxLeaseTimeMinutes": 30.5, "size": "Standard"}',
        b'{"maxLeaseTimeMinutes": true, "size": "Standard"}',
        b'{"maxLeaseTimeMinutes": null, "size": "Standard"}',
        b'{"maxLeaseTimeMinutes": 30}',
        b'{"size": "Standard"}',
        b'{"maxLeaseTimeMinutes": 30, "size": "Huge"}',
        b'{"maxLeaseTimeMinutes": 30, "size": 1}',
        b'{"maxLeaseTimeMinutes": -1, "size": "Standard"}',
        b'{"maxLeaseTimeMinutes": 1441, "size": "Standard"}',
        b'{"maxLeaseTimeMinutes": 99999999999999999999999, "size": "Standard"}',
    ],
)
async def test_bad_create_bodies(client: httpx.AsyncClient, account: Account, content: bytes) -> None:
    resp = await client.put(
        f"/accounts/{account.id}/sessions/s1",
        params=V,
        content=content,
        headers={**account.auth, "Content-Type": "application/json"},
    )
    assert_arr_error(resp, 400, "BadRequest")
    await no_sessions(client, account)


async def test_negative_lease_message_matches_arr(client: httpx.AsyncClient, account: Account) -> None:
    resp = await client.put(
        f"/accounts/{account.id}/sessions/s1",
        params=V,
        json={"maxLeaseTimeMinutes": -5, "size": "Standard"},
        headers=account.auth,
    )
    assert resp.json() == {
        "error": {
            "code": "BadRequest",
            "message": "The maxLeaseTimeMinutes value cannot be negative.",
            "target": "maxLeaseTimeMinutes",
        }
    }


@pytest.mark.parametrize("session_id", ["a" * 257, "with space", "dot.ted", "col:on", "ünï", "%2e%2e"])
async def test_bad_session_ids(client: httpx.AsyncClient, account: Account, session_id: str) -> None:
    resp = await client.put(
        f"/accounts/{account.id}/sessions/{session_id}", params=V, json=GOOD, headers=account.auth
    )
    assert_arr_error(resp, 400, "BadRequest")
    resp = await client.get(f"/accounts/{account.id}/sessions/{session_id}", params=V, headers=account.auth)
    assert_arr_error(resp, 400, "BadRequest")


async def test_longest_id_is_fine(client: httpx.AsyncClient, account: Account) -> None:
    resp = await client.put(
        f"/accounts/{account.id}/sessions/{'a' * 256}", params=V, json=GOOD, headers=account.auth
    )
    assert resp.status_code == 201


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "MissingApiVersionParameter"),
        ({"api-version": "2020-01-01"}, "UnsupportedApiVersion"),
        ({"api-version": ""}, "UnsupportedApiVersion"),
    ],
)
async def test_api_version(
    client: httpx.AsyncClient, account: Account, params: dict[str, str], code: str
) -> None:
    for method, path in (("GET", "/sessions"), ("PUT", "/sessions/s1"), ("POST", "/sessions/s1/:stop")):
        resp = await client.request(
            method, f"/accounts/{account.id}{path}", params=params, json=GOOD, headers=account.auth
        )
        assert_arr_error(resp, 400, code)
    await no_sessions(client, account)


async def test_preview_version_is_accepted(client: httpx.AsyncClient, account: Account) -> None:
    resp = await client.put(
        f"/accounts/{account.id}/sessions/s1",
        params={"api-version": "2021-01-01-preview"},
        json=GOOD,
        headers=account.auth,
    )
    assert resp.status_code == 201


async def test_tokens(
    client: httpx.AsyncClient, runtime: Runtime, account: Account, other_account: Account
) -> None:
    path = f"/accounts/{account.id}/sessions"
    resp = await client.get(path, params=V)
    assert_arr_error(resp, 401)
    assert resp.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert_arr_error(await client.get(path, params=V, headers=other_account.auth), 403, "Forbidden")
    forged = jwt.encode(
        {"sub": account.id, "exp": 4102444800, "iat": 0},
        "a guessed secret of thirty-two bytes!",
        algorithm="HS256",
    )
    assert_arr_error(await client.get(path, params=V, headers={"Authorization": f"Bearer {forged}"}), 401)
    key_as_token = {"Authorization": f"Bearer {account.id}:{account.key}"}
    assert_arr_error(await client.get(path, params=V, headers=key_as_token), 401)
    render_token = runtime.tokens.issue_render_token(account.id, "s1", dt.timedelta(hours=1))
    assert_arr_error(
        await client.get(path, params=V, headers={"Authorization": f"Bearer {render_token}"}), 401
    )
    # A token of this account, expired by the clock moving on.
    runtime.clock.advance(minutes=24 * 60)  # type: ignore[attr-defined]
    assert_arr_error(await client.get(path, params=V, headers=account.auth), 401)


async def test_bad_account_in_path(client: httpx.AsyncClient, account: Account) -> None:
    assert_arr_error(await client.get("/accounts/xyz/sessions", params=V, headers=account.auth), 400)


async def test_unknown_session_and_routes(client: httpx.AsyncClient, account: Account) -> None:
    base = f"/accounts/{account.id}/sessions"
    assert_arr_error(await client.get(f"{base}/nope", params=V, headers=account.auth), 404, "SessionNotFound")
    assert_arr_error(await client.post(f"{base}/nope/:stop", params=V, headers=account.auth), 404)
    resp = await client.patch(
        f"{base}/nope", params=V, json={"maxLeaseTimeMinutes": 60}, headers=account.auth
    )
    assert_arr_error(resp, 404)
    assert_arr_error(await client.get("/no/such/route", headers=account.auth), 404, "NotFound")
    assert_arr_error(await client.delete(f"{base}/nope", params=V, headers=account.auth), 405)


@pytest.mark.parametrize("lease", [30, 29, 1441, -3])
async def test_update_must_grow_within_the_limit(
    client: httpx.AsyncClient, account: Account, lease: int
) -> None:
    base = f"/accounts/{account.id}/sessions/s1"
    await client.put(base, params=V, json=GOOD, headers=account.auth)
    resp = await client.patch(base, params=V, json={"maxLeaseTimeMinutes": lease}, headers=account.auth)
    assert_arr_error(resp, 422, "UnprocessableEntity")
    body = (await client.get(base, params=V, headers=account.auth)).json()
    assert body["maxLeaseTimeMinutes"] == 30


@pytest.mark.parametrize("token", ["' OR 1=1 --", "a\x00b", "x" * 257, ""])
async def test_skip_tokens_we_never_issued_are_refused(
    client: httpx.AsyncClient, account: Account, token: str
) -> None:
    resp = await client.get(
        f"/accounts/{account.id}/sessions", params={**V, "$skipToken": token}, headers=account.auth
    )
    assert_arr_error(resp, 400, "BadRequest")
