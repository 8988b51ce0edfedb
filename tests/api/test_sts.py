"""The STS: account id + key in, a 24-hour token out; both paths; wrong keys get an empty 401."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from openrr.api.app import create_app
from openrr.domain.clock import ManualClock
from openrr.services.runtime import Runtime
from tests.conftest import Account


@pytest.mark.parametrize("path", ["/accounts/{id}/token", "/Accounts/{id}/token"])
@pytest.mark.parametrize("params", [{}, {"api-version": "2019-02-28-preview"}])
async def test_token_with_either_key(
    client: httpx.AsyncClient, runtime: Runtime, account: Account, path: str, params: dict[str, str]
) -> None:
    for key in (account.key, (await runtime.accounts.rotate_key(account.id, "secondary"))):
        resp = await client.get(
            path.format(id=account.id), params=params, headers={"Authorization": f"Bearer {account.id}:{key}"}
        )
        assert resp.status_code == 200
        assert list(resp.json()) == ["AccessToken"]
        assert resp.headers["cache-control"] == "no-store,no-cache"
        token = resp.json()["AccessToken"]
        payload = json.loads(base64.b64decode(token.split(".")[1] + "==="))
        assert payload["exp"] - payload["iat"] == 24 * 3600
        # the token opens the data plane
        listed = await client.get(
            f"/accounts/{account.id}/sessions",
            params={"api-version": "2021-01-01"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert listed.status_code == 200


@pytest.mark.parametrize(
    "auth",
    [
        "Bearer {id}:wrong",
        "Bearer {other}:{key}",
        "Bearer {id}",
        "Basic {id}:{key}",
        "",
        "Bearer {id}:",
    ],
)
async def test_wrong_credentials_get_an_empty_401(
    client: httpx.AsyncClient, account: Account, other_account: Account, auth: str
) -> None:
    header = auth.format(id=account.id, key=account.key, other=other_account.id)
    resp = await client.get(
        f"/accounts/{account.id}/token", headers={"Authorization": header} if header else {}
    )
    assert resp.status_code == 401
    assert resp.content == b""
    assert "retry-after" not in resp.headers


async def test_rotated_key_stops_working(
    client: httpx.AsyncClient, runtime: Runtime, account: Account
) -> None:
    await runtime.accounts.rotate_key(account.id, "primary")
    resp = await client.get(
        f"/accounts/{account.id}/token", headers={"Authorization": f"Bearer {account.id}:{account.key}"}
    )
    assert resp.status_code == 401


async def test_bad_account_id_and_version(client: httpx.AsyncClient, account: Account) -> None:
    auth = {"Authorization": f"Bearer {account.id}:{account.key}"}
    resp = await client.get("/accounts/not-a-uuid/token", headers=auth)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BadRequest"
    resp = await client.get(
        f"/accounts/{account.id}/token", params={"api-version": "1999-01-01"}, headers=auth
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "UnsupportedApiVersion"


async def test_sts_throttle(
    settings_factory: object,
    client: httpx.AsyncClient,
    runtime: Runtime,
    account: Account,
    clock: ManualClock,
) -> None:
    runtime.sts_throttle.rate, runtime.sts_throttle.burst = 0.5, 2
    auth = {"Authorization": f"Bearer {account.id}:{account.key}"}
    for _ in range(2):
        assert (await client.get(f"/accounts/{account.id}/token", headers=auth)).status_code == 200
    resp = await client.get(f"/accounts/{account.id}/token", headers=auth)
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "2"
    assert resp.json()["error"]["code"] == "TooManyRequests"
    clock.advance(2)
    assert (await client.get(f"/accounts/{account.id}/token", headers=auth)).status_code == 200


async def test_a_flood_of_wrong_keys_does_not_lock_the_owner_out(runtime: Runtime, account: Account) -> None:
    # Both buckets on, as in production: 20 tokens per account, 10 failures per address.
    runtime.sts_throttle.rate, runtime.sts_throttle.burst = 0.5, 20
    app = create_app(runtime)
    attacker = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("192.0.2.66", 40000)), base_url="https://openrr.test"
    )
    owner = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("198.51.100.7", 40000)), base_url="https://openrr.test"
    )
    path = f"/accounts/{account.id}/token"
    async with attacker, owner:
        wrong = {"Authorization": f"Bearer {account.id}:{'x' * 43}="}
        statuses = [(await attacker.get(path, headers=wrong)).status_code for _ in range(200)]
        assert statuses[:10] == [401] * 10
        assert set(statuses[10:]) == {429}
        throttled = await attacker.get(path, headers=wrong)
        assert "from this address" in throttled.json()["error"]["message"]
        assert int(throttled.headers["retry-after"]) >= 1
        # The owner, elsewhere, still gets tokens, and the account's own bucket is untouched by the flood.
        right = {"Authorization": f"Bearer {account.id}:{account.key}"}
        assert [(await owner.get(path, headers=right)).status_code for _ in range(20)] == [200] * 20
        resp = await owner.get(path, headers=right)
        assert resp.status_code == 429
        assert "for this account" in resp.json()["error"]["message"]


async def test_docs_page_needs_no_internet(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "swagger-ui" in page.text
    assert "http://" not in page.text
    assert "https://" not in page.text.replace("https://openrr.test", "")
    for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"):
        assert (await client.get(asset)).status_code == 200
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "openrr"
