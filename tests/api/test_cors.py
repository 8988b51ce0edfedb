"""Cross-origin access for embedding pages (``--cors-origin``, ``openrr.api.cors``), and their module.

In-process; the browser side (a page on another origin driving a session) is tests/browser/test_embed.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from openrr.api.app import create_app
from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.errors import InvalidInput
from openrr.services.runtime import Runtime
from openrr.web import STATIC_DIR
from tests.conftest import Account
from tests.fakes import FakeHost

APP = "https://app.example"
PREFLIGHT = {
    "Origin": APP,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.fixture
def settings_factory(settings_factory: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        return settings_factory(**{"cors_origins": (APP, "http://localhost:8000"), **overrides})

    return make


async def test_a_listed_origin_may_call_the_session_routes_with_a_bearer_token(
    client: httpx.AsyncClient, account: Account
) -> None:
    for path in (
        f"/openrr/accounts/{account.id}/sessions/s1/connectToken",
        f"/openrr/accounts/{account.id}/sessions/s1/offer",
        f"/accounts/{account.id}/sessions/s1",
        f"/accounts/{account.id}/sessions",
    ):
        resp = await client.options(path, headers=PREFLIGHT)
        assert resp.status_code == 200, (path, resp.text)
        assert resp.headers["access-control-allow-origin"] == APP
        assert "authorization" in resp.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in resp.headers
    # The answer itself (an error here: no such session) carries the origin, so the page reads its code.
    resp = await client.post(
        f"/openrr/accounts/{account.id}/sessions/s1/connectToken",
        headers={**account.auth, "Origin": APP},
    )
    assert resp.status_code == 404
    assert resp.headers["access-control-allow-origin"] == APP
    assert resp.json()["error"]["code"] == "SessionNotFound"


async def test_other_origins_and_other_routes_get_no_cors(
    client: httpx.AsyncClient, account: Account
) -> None:
    path = f"/openrr/accounts/{account.id}/sessions/s1/connectToken"
    for origin in ("https://evil.example", "null", "https://app.example.evil", "http://app.example"):
        resp = await client.options(path, headers={**PREFLIGHT, "Origin": origin})
        assert "access-control-allow-origin" not in resp.headers, origin
        resp = await client.post(path, headers={**account.auth, "Origin": origin})
        assert "access-control-allow-origin" not in resp.headers, origin
    # The STS (account keys) and conversions stay same-origin even for a listed origin.
    for other in (f"/accounts/{account.id}/token", f"/accounts/{account.id}/conversions/c1"):
        resp = await client.options(other, headers=PREFLIGHT)
        assert "access-control-allow-origin" not in resp.headers, other
        resp = await client.get(other, headers={"Origin": APP})
        assert "access-control-allow-origin" not in resp.headers, other


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://App.Example", "https://app.example"),
        ("https://app.example:443", "https://app.example"),
        ("http://localhost:80", "http://localhost"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://[::1]:3000", "http://[::1]:3000"),
    ],
)
def test_origins_are_kept_as_browsers_send_them(
    settings_factory: Callable[..., Settings], given: str, kept: str
) -> None:
    assert settings_factory(cors_origins=(given,)).server.cors_origins == (kept,)


@pytest.mark.parametrize(
    "bad",
    [
        "*",
        "null",
        "https://*.example",
        "https://app.example/",
        "app.example",
        "ftp://app.example",
        "https://user@app.example",
        "https://app.example:99999",
    ],
)
def test_anything_but_an_origin_is_refused(settings_factory: Callable[..., Settings], bad: str) -> None:
    with pytest.raises(InvalidInput, match=r"--cors-origin: .* (is not an origin|has a port outside)"):
        settings_factory(cors_origins=(bad,))


async def test_without_the_setting_there_is_no_cors_at_all(
    settings_factory: Callable[..., Settings], fake_host: FakeHost, clock: ManualClock, tmp_path: Path
) -> None:
    settings = settings_factory(cors_origins=(), store_url=f"sqlite:///{tmp_path}/plain.db")
    runtime: Runtime = await Runtime.open(settings, host=fake_host, clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as plain:
            resp = await plain.options("/accounts/a/sessions/s1", headers=PREFLIGHT)
            assert "access-control-allow-origin" not in resp.headers
    finally:
        await runtime.close()


async def test_the_module_may_be_imported_from_any_origin_and_the_example_may_run(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.get("/ui/js/openrr.js", headers={"Origin": "https://anywhere.example"})
    assert resp.status_code == 200
    assert "javascript" in resp.headers["content-type"]
    assert resp.headers["access-control-allow-origin"] == "*"
    # Only that module: the pages and the viewer's own modules are not for other origins.
    for other in ("/ui/js/viewer.js", "/ui/js/api.js", "/ui/viewer.html"):
        assert "access-control-allow-origin" not in (await client.get(other)).headers, other
    # The example's one inline script runs under the pages' policy by its hash, and nothing else inline.
    resp = await client.get("/ui/examples/embed.html")
    csp = resp.headers["content-security-policy"]
    assert "'sha256-" in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert "unsafe-inline" not in csp
    viewer_csp = (await client.get("/ui/viewer.html")).headers["content-security-policy"]
    assert "sha256-" not in viewer_csp


def test_the_readme_shows_the_example_page_as_it_is() -> None:
    example = (STATIC_DIR / "examples" / "embed.html").read_text(encoding="utf-8")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"```html\n{example}```" in readme
