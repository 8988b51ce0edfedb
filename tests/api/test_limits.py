"""Request bodies bounded before any route, authentication or parsing runs (openrr.api.limits)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from openrr.api.app import create_app
from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.services.runtime import Runtime
from tests.conftest import Account
from tests.fakes import FakeHost

LIMIT = 64 * 1024  # the default --max-body-kib
NOBODY = "6b0ed2e4-5f43-4c4c-9d7e-9d4a3c2e1f00"  # a well-formed account id that no token is for


def over(limit: int = LIMIT) -> bytes:
    return b'{"pad": "' + b"x" * limit + b'"}'


async def chunked(total: int, piece: int = 8192) -> AsyncIterator[bytes]:
    """A body without Content-Length: httpx sends it with Transfer-Encoding: chunked."""
    for _ in range(total // piece + 1):
        yield b" " * piece


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/accounts/{a}/sessions/create"),
        ("PATCH", "/v1/accounts/{a}/sessions/s1"),
        ("POST", "/v1/accounts/{a}/conversions/create"),
        ("PUT", "/accounts/{a}/sessions/s1?api-version=2021-01-01"),
        ("PATCH", "/accounts/{a}/sessions/s1?api-version=2021-01-01"),
        ("PUT", "/accounts/{a}/conversions/c1?api-version=2021-01-01"),
        ("GET", "/accounts/{a}/token"),
        ("POST", "/openrr/internal/sessions/s1/ready"),
        ("POST", "/nowhere"),
    ],
)
async def test_an_oversized_body_gets_413_in_the_apis_format_before_authentication(
    client: httpx.AsyncClient, account: Account, method: str, path: str
) -> None:
    url = path.format(a=account.id)
    # No Authorization header at all: a 401 would mean authentication ran first.
    for body in (over(), chunked(LIMIT + 1)):
        resp = await client.request(method, url, content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 413, resp.text
        assert resp.headers["connection"] == "close"
        assert resp.headers["ms-cv"]
        if url.startswith("/v1/"):
            problem = resp.json()
            assert problem["status"] == 413
            assert "64 KiB" in problem["title"]
        else:
            assert resp.json()["error"] == {
                "code": "PayloadTooLarge",
                "message": "The request body is larger than 64 KiB.",
            }


async def test_a_body_within_the_limit_reaches_the_route(client: httpx.AsyncClient, account: Account) -> None:
    padded = b'{"maxLeaseTimeMinutes": 30, "size": "Standard", "pad": "' + b"x" * (LIMIT - 100) + b'"}'
    assert len(padded) <= LIMIT
    url = f"/accounts/{account.id}/sessions/s1?api-version=2021-01-01"
    resp = await client.put(url, content=padded, headers={"Content-Type": "application/json", **account.auth})
    assert resp.status_code == 201, resp.text

    async def pieces() -> AsyncIterator[bytes]:  # chunked, within the limit: read whole, then parsed
        yield b'{"maxLeaseTimeMinutes": '
        yield b'30, "size": "Standard"}'

    url = f"/accounts/{account.id}/sessions/s2?api-version=2021-01-01"
    resp = await client.put(
        url, content=pieces(), headers={"Content-Type": "application/json", **account.auth}
    )
    assert resp.status_code == 201, resp.text


async def test_a_content_length_that_is_not_a_number_is_a_bad_request(
    client: httpx.AsyncClient, account: Account
) -> None:
    transport = client._transport  # the app itself: httpx would refuse to send such a header
    request = httpx.Request(
        "PUT",
        f"https://openrr.test/accounts/{account.id}/sessions/s1?api-version=2021-01-01",
        headers={"content-length": "12abc", **account.auth},
        content=b"{}",
    )
    request.headers["content-length"] = "12abc"
    resp = await transport.handle_async_request(request)
    await resp.aread()
    assert resp.status_code == 400
    assert b"Content-Length" in resp.content


async def test_limits_are_configurable_and_the_relay_has_its_own(
    settings_factory: Callable[..., Settings], fake_host: FakeHost, clock: ManualClock, tmp_path: Path
) -> None:
    settings = settings_factory(
        store_url=f"sqlite:///{tmp_path / 'limits.db'}", max_body_kib=1, max_offer_kib=2
    )
    rt = await Runtime.open(settings, host=fake_host, clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(rt))
        async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as c:
            resp = await c.post(f"/v1/accounts/{NOBODY}/sessions/create", content=b"x" * 1025)
            assert resp.status_code == 413
            assert "1 KiB" in resp.json()["title"]
            resp = await c.post(f"/v1/accounts/{NOBODY}/sessions/create", content=b"x" * 1024)
            assert resp.status_code == 401  # within the limit: on to authentication
            relay = f"/openrr/accounts/{NOBODY}/sessions/s1/offer"
            assert (await c.post(relay, content=b"x" * 2000)).status_code == 401
            resp = await c.post(relay, content=b"x" * 2049)
            assert resp.status_code == 413
            assert resp.json()["error"]["message"].endswith("2 KiB.")
    finally:
        await rt.close()


async def test_requests_without_a_body_are_untouched(client: httpx.AsyncClient, account: Account) -> None:
    resp = await client.get(f"/v1/accounts/{account.id}/sessions", headers=account.auth)
    assert resp.status_code == 200
    assert resp.json() == {"sessions": []}
