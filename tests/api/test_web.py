"""The browser pages and the offer relay, in-process (fake host, manual clock).

The relay's render server is a small aiohttp app in the test's event loop that records what it got and
answers what the test tells it to; the real render server's answers are covered by the browser tests.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from aiohttp import web

from openrr.api.app import create_app
from openrr.api.web import url_host
from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.protocol.handshake import CONNECT_AUDIENCE, ReadyReport
from openrr.services.runtime import Runtime
from openrr.web import STATIC_DIR
from tests.conftest import Account
from tests.fakes import FakeHost

V = {"api-version": "2021-01-01"}
OFFER = {
    "type": "offer",
    "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n",
    "video": {"width": 640, "codec": "h264"},
}


def relay(account: Account, session_id: str) -> str:
    return f"/openrr/accounts/{account.id}/sessions/{session_id}/offer"


async def create(client: httpx.AsyncClient, account: Account, session_id: str) -> None:
    resp = await client.put(
        f"/accounts/{account.id}/sessions/{session_id}",
        params=V,
        json={"maxLeaseTimeMinutes": 30, "size": "Standard"},
        headers=account.auth,
    )
    assert resp.status_code == 201, resp.text


@dataclasses.dataclass
class FakeRenderServer:
    """Answers POST /offer with ``status`` and ``body`` (bytes as they are), recording each request."""

    port: int = 0
    status: int = 200
    body: bytes = b'{"type":"answer","sdp":"v=0\\r\\n","video":{"width":640,"height":360}}'
    requests: list[tuple[dict[str, str], bytes]] = dataclasses.field(default_factory=list)

    async def offer(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(body=self.body, status=self.status, content_type="application/json")


@pytest.fixture
async def render_server() -> AsyncIterator[FakeRenderServer]:
    fake = FakeRenderServer()
    app = web.Application()
    app.router.add_post("/offer", fake.offer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.port = runner.addresses[0][1]
    yield fake
    await runner.cleanup()


async def ready_at(
    runtime: Runtime, fake_host: FakeHost, account: Account, session_id: str, hostname: str, port: int
) -> None:
    """Make the fake host's server of the session report ready at ``hostname:port``."""
    spec = fake_host.server(session_id).spec
    report = ReadyReport(spec.instance, hostname, port, port + 1, spec.teraflops, 1)
    await runtime.sessions.mark_ready(account.id, session_id, report)


@pytest.fixture
async def s1_ready_at_render_server(
    client: httpx.AsyncClient,
    account: Account,
    fake_host: FakeHost,
    runtime: Runtime,
    render_server: FakeRenderServer,
) -> None:
    """Session s1, Ready at the fake render server: the relay forwards its offers there."""
    fake_host.auto_ready = False
    await create(client, account, "s1")
    await ready_at(runtime, fake_host, account, "s1", "127.0.0.1", render_server.port)


# ---- the pages ---------------------------------------------------------------------------------------------
async def test_root_redirects_to_the_pages(client: httpx.AsyncClient) -> None:
    resp = await client.get("/")
    assert resp.status_code == 307
    assert resp.headers["location"] == "ui/"
    resp = await client.get("/", follow_redirects=True)
    assert resp.status_code == 200
    assert str(resp.url) == "https://openrr.test/ui/"
    assert '<form id="signin"' in resp.text


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("/ui/", "text/html", 'src="js/signin.js"'),
        ("/ui/index.html", "text/html", 'id="account-key"'),
        ("/ui/dashboard.html", "text/html", 'src="js/dashboard.js"'),
        ("/ui/viewer.html", "text/html", 'src="js/viewer.js"'),
        ("/ui/js/openrr.js", "javascript", "export class RenderingConnection"),
        ("/ui/examples/embed.html", "text/html", "RemoteRendering.connect"),
        ("/ui/js/api.js", "javascript", "export class Api"),
        ("/ui/css/app.css", "text/css", ":focus-visible"),
    ],
)
async def test_pages_are_served_with_their_security_headers(
    client: httpx.AsyncClient, path: str, content_type: str, marker: str
) -> None:
    resp = await client.get(path)
    assert resp.status_code == 200, resp.text
    assert content_type in resp.headers["content-type"]
    assert marker in resp.text
    csp = resp.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"


async def test_a_missing_page_is_a_404_with_an_error_body(client: httpx.AsyncClient) -> None:
    resp = await client.get("/ui/nothing.html")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "NotFound"


def _static_files() -> list[Path]:
    return [
        p for p in STATIC_DIR.rglob("*") if p.is_file() and "inspector" not in p.relative_to(STATIC_DIR).parts
    ]


def test_the_pages_load_nothing_from_elsewhere() -> None:
    """Every script, stylesheet, image and module import is a relative path to a file that exists."""
    files = _static_files()
    assert {p.name for p in files} >= {"index.html", "dashboard.html", "viewer.html", "app.css", "openrr.js"}
    references = re.compile(
        r"""(?:src|href)="([^"#]+)"|\bfrom\s+"([^"]+)"|\bimport\s*\(\s*"([^"]+)"|url\(([^)]+)\)"""
    )
    for path in files:
        text = path.read_text()
        for match in references.finditer(text):
            target = next(g for g in match.groups() if g is not None).strip("'\" ")
            if target.startswith("data:") or "${" in target:
                continue
            assert not re.match(r"^[a-z]+:|^//", target), f"{path.name} loads {target} from elsewhere"
            assert (path.parent / target.split("?")[0]).resolve().is_file(), (
                f"{path.name}: {target} is missing"
            )


# ---- the relay: authorisation, session, body ---------------------------------------------------------------
async def test_the_relay_needs_the_accounts_token(
    client: httpx.AsyncClient, account: Account, other_account: Account
) -> None:
    await create(client, account, "s1")
    resp = await client.post(relay(account, "s1"), json=OFFER)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "Unauthorized"
    resp = await client.post(
        relay(account, "s1"), json=OFFER, headers={"Authorization": "Bearer forged.token.x"}
    )
    assert resp.status_code == 401
    resp = await client.post(relay(account, "s1"), json=OFFER, headers=other_account.auth)
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "Forbidden"
    resp = await client.post(relay(other_account, "s1"), json=OFFER, headers=other_account.auth)
    assert resp.status_code == 404  # the other account has no such session
    resp = await client.post(
        "/openrr/accounts/not-a-uuid/sessions/s1/offer", json=OFFER, headers=account.auth
    )
    assert resp.status_code == 400


async def test_the_relay_answers_404_for_an_unknown_session_and_409_unless_ready(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost
) -> None:
    resp = await client.post(relay(account, "nope"), json=OFFER, headers=account.auth)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "SessionNotFound"

    fake_host.auto_ready = False
    await create(client, account, "starting")
    resp = await client.post(relay(account, "starting"), json=OFFER, headers=account.auth)
    assert resp.status_code == 409
    error = resp.json()["error"]
    assert error["code"] == "SessionNotReady"
    assert "Starting" in error["message"]

    await client.post(f"/accounts/{account.id}/sessions/starting/:stop", params=V, headers=account.auth)
    resp = await client.post(relay(account, "starting"), json=OFFER, headers=account.auth)
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "SessionNotReady"
    assert "Stopped" in resp.json()["error"]["message"]

    resp = await client.post(relay(account, "bad id!"), json=OFFER, headers=account.auth)
    assert resp.status_code == 400


_DEEP = b'{"a":' * 50_000 + b"1" + b"}" * 50_000  # deeper than json.loads recurses, within the size limit


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"offer"',
        b"{}",
        b'{"type": "answer", "sdp": "x"}',
        b'{"type": "offer"}',
        b'{"type": "offer", "sdp": ""}',
        b'{"type": "offer", "sdp": 5}',
        b'{"type": "offer", "sdp": "x", "video": 5}',
        b'{"type": "offer", "sdp": "x", "video": {"width": "wide"}}',
        b'{"type": "offer", "sdp": "x", "video": {"width": true}}',
        b'{"type": "offer", "sdp": "x", "video": {"fps": "30"}}',
        b'{"type": "offer", "sdp": "x", "video": {"codec": 264}}',
        b'{"type": "offer", "sdp": "x", "video": {"bitrate": 1.5}}',
        b'{"type": "offer", "sdp": "x", "n": ' + b"1" * 5000 + b"}",
        _DEEP,
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
async def test_bad_bodies_get_400(client: httpx.AsyncClient, account: Account, body: bytes) -> None:
    await create(client, account, "s1")
    resp = await client.post(
        relay(account, "s1"), content=body, headers={**account.auth, "content-type": "application/json"}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "BadRequest"


async def test_a_huge_body_gets_413_without_being_read(client: httpx.AsyncClient, account: Account) -> None:
    max_relay_body = Settings().limits.max_offer_kib * 1024
    await create(client, account, "s1")
    huge = json.dumps({"type": "offer", "sdp": "x" * (max_relay_body + 1)}).encode()
    resp = await client.post(
        relay(account, "s1"), content=huge, headers={**account.auth, "content-type": "application/json"}
    )
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "PayloadTooLarge"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(max_relay_body // 65536 + 2):
            yield b" " * 65536

    resp = await client.post(relay(account, "s1"), content=chunks(), headers=account.auth)
    assert resp.status_code == 413


async def test_the_relay_takes_a_data_plane_throttle_token(
    settings_factory: Callable[..., Settings], fake_host: FakeHost, clock: ManualClock, tmp_path: Path
) -> None:
    settings = settings_factory(
        store_url=f"sqlite:///{tmp_path / 'throttled.db'}", throttle_rate=0.01, throttle_burst=2
    )
    rt = await Runtime.open(settings, host=fake_host, clock=clock)
    try:
        created = await rt.accounts.create("t")
        token, _ = rt.tokens.issue_account_token(created.account_id)
        transport = httpx.ASGITransport(app=create_app(rt))
        async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as c:
            statuses = [
                (
                    await c.post(
                        f"/openrr/accounts/{created.account_id}/sessions/s1/offer",
                        json=OFFER,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                ).status_code
                for _ in range(3)
            ]
    finally:
        await rt.close()
    assert statuses == [404, 404, 429]


# ---- the relay: forwarding ---------------------------------------------------------------------------------
async def test_the_offer_goes_to_the_render_server_and_its_answer_comes_back(
    client: httpx.AsyncClient,
    account: Account,
    runtime: Runtime,
    render_server: FakeRenderServer,
    s1_ready_at_render_server: None,
) -> None:
    raw = json.dumps(OFFER, indent=1).encode()  # forwarded byte for byte, not re-encoded
    resp = await client.post(
        relay(account, "s1"), content=raw, headers={**account.auth, "content-type": "application/json"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.content == render_server.body
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["cache-control"] == "no-store"
    [(headers, body)] = render_server.requests
    assert body == raw
    # The render server gets a connect token of the session, never the caller's account token.
    scheme, token = headers["Authorization"].split(" ")
    assert scheme == "Bearer"
    assert token != account.token
    secret = (await runtime.sessions.get(account.id, "s1")).connect_secret
    assert secret is not None
    # (Decoded without its lifetime check: the test's clock is not the wall clock a render server uses.)
    claims = jwt.decode(
        token, secret, algorithms=["HS256"], audience=CONNECT_AUDIENCE, options={"verify_exp": False}
    )
    assert claims["sub"] == "s1"
    assert claims["accountId"] == account.id
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (409, {"error": {"code": "ClientAlreadyConnected", "message": "Another client is connected."}}),
        (503, {"error": {"code": "Stopping", "message": "The session is stopping."}}),
        (400, {"error": {"code": "BadRequest", "message": "Invalid offer: video.width: too small"}}),
        (401, {"error": {"code": "Unauthorized", "message": "The access token is not valid."}}),
    ],
)
async def test_the_render_servers_errors_come_back_as_they_are(
    client: httpx.AsyncClient,
    account: Account,
    render_server: FakeRenderServer,
    s1_ready_at_render_server: None,
    status: int,
    body: dict[str, Any],
) -> None:
    render_server.status, render_server.body = status, json.dumps(body).encode()
    resp = await client.post(relay(account, "s1"), json=OFFER, headers=account.auth)
    assert resp.status_code == status
    assert resp.json() == body


async def test_an_answer_that_is_not_json_is_a_502(
    client: httpx.AsyncClient,
    account: Account,
    render_server: FakeRenderServer,
    s1_ready_at_render_server: None,
) -> None:
    render_server.status, render_server.body = 413, b"Request Entity Too Large"
    resp = await client.post(relay(account, "s1"), json=OFFER, headers=account.auth)
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["code"] == "RenderServerBadAnswer"
    assert "413" in error["message"]


async def test_an_unreachable_render_server_is_a_502(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, runtime: Runtime
) -> None:
    fake_host.auto_ready = False
    await create(client, account, "s1")
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await ready_at(runtime, fake_host, account, "s1", "127.0.0.1", port)
    resp = await client.post(relay(account, "s1"), json=OFFER, headers=account.auth)
    assert resp.status_code == 502, resp.text
    error = resp.json()["error"]
    assert error["code"] == "RenderServerUnreachable"
    assert "s1" in error["message"]
    assert str(port) not in error["message"]  # the client is not told the render server's address


def test_ipv6_hostnames_get_brackets() -> None:
    assert url_host("::1") == "[::1]"
    assert url_host("[::1]") == "[::1]"
    assert url_host("127.0.0.1") == "127.0.0.1"
    assert url_host("render.example") == "render.example"


async def test_the_relay_is_in_the_openapi_document_under_openrr(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    operation = doc["paths"]["/openrr/accounts/{account_id}/sessions/{session_id}/offer"]["post"]
    assert operation["tags"] == ["openrr"]
    assert {"200", "400", "401", "403", "404", "409", "413", "429", "502", "503", "504"} <= set(
        operation["responses"]
    )
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["type", "sdp"]
