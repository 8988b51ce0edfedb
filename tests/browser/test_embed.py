"""A page on another origin embeds only openrr.js and drives a real session in Chromium.

The page is the repository's embedding example (``web/static/examples/embed.html``), served by a small HTTP
server on loopback (another port: another origin) that the test starts and stops. The control plane lists
that origin with ``--cors-origin``; a second origin it does not list is refused.
"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from openrr.web import STATIC_DIR
from tests.browser.test_dashboard_viewer import create_2021
from tests.e2e.server import OpenRRServer
from tests.render import fixtures

pytestmark = pytest.mark.e2e


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def other_origin(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """``start()`` serves a copy of the example page on a fresh loopback port and returns its origin."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(STATIC_DIR / "examples" / "embed.html", site / "embed.html")
    servers: list[ThreadingHTTPServer] = []
    threads: list[threading.Thread] = []

    def start() -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        servers.append(httpd)
        threads.append(thread)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    try:
        yield start
    finally:
        for httpd in servers:
            httpd.shutdown()
            httpd.server_close()
        for thread in threads:
            thread.join(timeout=10)


def open_example(page: Page, origin: str, server: OpenRRServer, session_id: str) -> None:
    args = {
        "endpoint": server.url,
        "account": server.account.id,
        "session": session_id,
        "token": server.token(),
    }
    page.goto(f"{origin}/embed.html#{urlencode(args)}")


def call(page: Page, script: str) -> Any:
    """Run ``script`` (an async function body using ``connection``) in the page; its value or its error."""
    return page.evaluate(
        f"""async () => {{
          try {{ return {{ ok: await (async () => {{ {script} }})() }}; }}
          catch (e) {{
            return {{ error: {{ isError: e instanceof Error, code: e.code, message: e.message }} }};
          }}
        }}"""
    )


def test_a_page_on_another_origin_connects_streams_and_edits_the_scene(
    browser: BrowserContext,
    openrr_factory: Callable[..., OpenRRServer],
    tmp_path: Path,
    other_origin: Callable[[], str],
) -> None:
    origin = other_origin()
    root = tmp_path / "model-root"
    models = tmp_path / "models"
    root.mkdir()
    models.mkdir()
    fixtures.two_node_glb(models)
    server = openrr_factory(model_root=str(root), video_width=320, video_height=180, cors_origin=origin)
    (root / server.account.id).symlink_to(models, target_is_directory=True)
    create_2021(server, "embedded", lease=30)
    with server.api() as api:
        api.wait_status("embedded", "Ready", timeout=30)

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    open_example(page, origin, server, "embedded")
    expect(page.locator("#status")).to_have_text("Connected", timeout=30_000)
    assert page.evaluate("location.origin") == origin

    # Video frames arrive: the <video> plays, and the data channel reports frames.
    page.evaluate(
        "() => { window.frames = 0; connection.addEventListener('frame', () => (window.frames += 1)); }"
    )
    page.wait_for_function(
        "() => { const v = document.getElementById('video');"
        " return window.frames >= 3 && v.readyState >= 2 && v.videoWidth === 320 && v.currentTime > 0; }"
    )
    info = call(page, "return { token: connection.tokenInfo, hello: connection.hello.sessionId };")["ok"]
    assert info["hello"] == "embedded"
    assert "token" not in info["token"]
    assert info["token"]["expiresOn"]

    # v1: a model, the camera, picking.
    loaded = call(page, "return await connection.loadModel('two_nodes.glb');")["ok"]
    assert loaded["type"] == "model.loaded"
    assert loaded["nodes"] >= 2
    assert call(page, "return (await connection.frameScene()).type;")["ok"] == "ack"
    picked = call(page, "return (await connection.pick(0.5, 0.5)).type;")["ok"]
    assert picked == "pick.result"

    # v2, the scene API: an entity, a state override on it, and the answers that show them.
    entity = call(page, "return await connection.createEntity({ name: 'marker', position: [0, 1, 0] });")[
        "ok"
    ]
    assert entity["name"] == "marker"
    assert entity["local"]["position"] == [0, 1, 0]
    state = call(
        page,
        f"return await connection.setStateOverride({entity['id']},"
        " { hidden: false, tint: true, tintColor: [1, 0, 0, 0.5] });",
    )["ok"]
    assert state["component"] == "HierarchicalStateOverride"
    assert state["properties"]["tint"] == "ForceOn"
    assert state["properties"]["hidden"] == "ForceOff"
    again = call(page, f"return await connection.setStateOverride({entity['id']}, {{ selected: true }});")
    assert again["ok"]["properties"]["selected"] == "ForceOn"  # the second time, an edit of the same one
    got = call(page, f"return await connection.getEntity({entity['id']});")["ok"]
    assert got["components"] == ["HierarchicalStateOverride"]
    names = call(page, "return (await connection.getScene()).map((e) => e.name);")["ok"]
    assert {"marker", "RedBox"} <= set(names)
    missing = call(page, "return await connection.getEntity(987654);")["error"]
    assert missing["isError"]
    assert missing["code"] == "EntityNotFound"
    assert missing["message"]

    # A bad request: the server's code and message, on an Error.
    bad = call(page, "return await connection.setNode(987654, { visible: false });")["error"]
    assert bad["isError"]
    assert bad["code"] == "NodeNotFound"
    assert bad["message"]

    # Disconnecting says so on the page (the example shows the status events).
    call(page, "connection.disconnect();")
    expect(page.locator("#status")).to_have_text("Disconnected: The client disconnected.")
    assert not errors, errors


def test_errors_are_clear_and_unlisted_origins_are_refused(
    browser: BrowserContext,
    openrr_factory: Callable[..., OpenRRServer],
    other_origin: Callable[[], str],
) -> None:
    listed, unlisted = other_origin(), other_origin()
    server = openrr_factory(cors_origin=listed)
    page = browser.new_page()
    open_example(page, listed, server, "nosuchsession")
    expect(page.locator("#status")).to_have_text(
        "SessionNotFound: No session with id 'nosuchsession' exists in this account."
    )
    # The example as the control plane serves it: its inline script runs under the pages' policy (by hash).
    page = browser.new_page()
    args = {"account": server.account.id, "session": "nosuchsession", "token": server.token()}
    page.goto(f"{server.url}/ui/examples/embed.html#{urlencode(args)}")
    expect(page.locator("#status")).to_have_text(
        "SessionNotFound: No session with id 'nosuchsession' exists in this account."
    )
    # The module loads on any origin, but the control plane does not answer an origin it does not list.
    page = browser.new_page()
    open_example(page, unlisted, server, "nosuchsession")
    expect(page.locator("#status")).to_contain_text("NetworkError: The openrr service at")
    expect(page.locator("#status")).to_contain_text("does not allow this page's origin")
