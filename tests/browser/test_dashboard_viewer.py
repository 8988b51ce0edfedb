"""The browser pages against a real ``openrr serve``: sign in, the dashboard, the viewer's WebRTC video.

Debian's Chromium, headless, with real render servers on loopback. The picture is checked by drawing the
<video> into a canvas in the page and counting the model's reddish (box, left) and bluish (sphere, right)
pixels.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from tests.e2e.server import OpenRRServer
from tests.render import fixtures

pytestmark = pytest.mark.e2e
Shot = Callable[[Page, str], Path]

# Colour classes of every pixel of the newest frame, the centroids of each, and a coarse thumbnail to tell
# pictures apart.
PICTURE_JS = """(video) => {
  const w = video.videoWidth, h = video.videoHeight;
  if (!w || !h) return null;
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  const g = canvas.getContext("2d", { willReadFrequently: true });
  g.drawImage(video, 0, 0, w, h);
  const d = g.getImageData(0, 0, w, h).data;
  const out = { w, h, red: 0, blue: 0, yellow: 0, redX: 0, redY: 0, blueX: 0, thumb: [] };
  const cols = 32, rows = 18, cells = new Array(cols * rows).fill(0), counts = new Array(cols * rows).fill(0);
  for (let i = 0, p = 0; i < d.length; i += 4, p += 1) {
    const r = d[i], gr = d[i + 1], b = d[i + 2], x = p % w, y = (p - x) / w;
    if (r > 90 && r > 2 * gr && r > 2 * b) { out.red += 1; out.redX += x; out.redY += y; }
    else if (b > 90 && b > 2 * r && b > 2 * gr) { out.blue += 1; out.blueX += x; }
    else if (r > 120 && gr > 90 && b < 0.5 * gr) { out.yellow += 1; }
    const cell = Math.floor((y * rows) / h) * cols + Math.floor((x * cols) / w);
    cells[cell] += r + gr + b; counts[cell] += 3;
  }
  if (out.red) { out.redX /= out.red * w; out.redY /= out.red * h; }
  if (out.blue) out.blueX /= out.blue * w;
  out.thumb = cells.map((v, i) => v / counts[i]);
  return out;
}"""

# Where a point of the picture (fractions) is on the page: the video is shown with object-fit: contain.
PAGE_POINT_JS = """([video, fx, fy]) => {
  const box = video.getBoundingClientRect();
  const s = Math.min(box.width / video.videoWidth, box.height / video.videoHeight);
  const w = video.videoWidth * s, h = video.videoHeight * s;
  return [box.left + (box.width - w) / 2 + fx * w, box.top + (box.height - h) / 2 + fy * h];
}"""


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    fixtures.two_node_glb(root)
    return root


@pytest.fixture
def server(openrr_factory: Callable[..., OpenRRServer], models_dir: Path) -> OpenRRServer:
    root = models_dir.parent / "model-root"
    root.mkdir()
    server = openrr_factory(model_root=str(root), video_width=640, video_height=360)
    # Sessions read their account's folder of the model root: the development account's holds the models.
    (root / server.account.id).symlink_to(models_dir, target_is_directory=True)
    return server


def sign_in(page: Page, server: OpenRRServer, next_page: str | None = None, key: str | None = None) -> None:
    query = f"index.html?next={quote(next_page, safe='')}" if next_page else ""
    page.goto(f"{server.url}/ui/{query}")
    page.get_by_label("Account id").fill(server.account.id)
    page.get_by_label("Account key").fill(key if key is not None else server.account.key)
    page.get_by_role("button", name="Sign in").click()


def picture(page: Page) -> dict[str, Any]:
    value = page.locator("#video").evaluate(PICTURE_JS)
    assert value is not None, "the video has no frame"
    return dict(value)


def thumb_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    return float(sum(abs(x - y) for x, y in zip(a["thumb"], b["thumb"], strict=True)) / len(a["thumb"]))


def wait_for_video(page: Page) -> None:
    page.wait_for_function(
        "() => { const v = document.getElementById('video');"
        " return v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0.3 && !v.paused; }"
    )


def page_point(page: Page, fx: float, fy: float) -> tuple[float, float]:
    video = page.locator("#video").element_handle()
    x, y = page.evaluate(PAGE_POINT_JS, [video, fx, fy])
    return float(x), float(y)


def create_2021(server: OpenRRServer, session_id: str, lease: int) -> None:
    r = httpx.put(
        f"{server.url}/accounts/{server.account.id}/sessions/{session_id}",
        params={"api-version": "2021-01-01"},
        json={"maxLeaseTimeMinutes": lease, "size": "Standard"},
        headers={"Authorization": f"Bearer {server.token()}"},
        verify=server.ssl_context(),
    )
    assert r.status_code == 201, r.text


def test_sign_in_create_view_orbit_pick_and_stop(
    browser: BrowserContext, server: OpenRRServer, shot: Shot
) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(server.url)  # / redirects to the sign-in page
    expect(page).to_have_url(re.compile(r"/ui/$"))
    shot(page, "sign-in")
    sign_in(page, server)
    expect(page).to_have_url(re.compile(r"/ui/dashboard\.html$"))
    expect(page.locator("#account-id")).to_have_text(server.account.id)
    shot(page, "dashboard")

    # A session with the model (the v1 API picks its id) turns Ready on the dashboard.
    page.get_by_label("Models to preload (optional)").fill("two_nodes.glb")
    expect(page.get_by_label("Session id", exact=True)).to_be_disabled()
    page.get_by_role("button", name="Create session").click()
    card = page.locator("li.card").first
    expect(card.locator(".badge")).to_have_text("Ready", timeout=20_000)
    session_id = card.get_attribute("data-session")
    assert session_id
    assert re.fullmatch(r"[0-9a-f-]{36}", session_id)
    expect(card.get_by_role("link", name=re.compile("inspector"))).to_have_attribute(
        "href", re.compile(r"^http://127\.0\.0\.1:\d+/#token=")
    )
    shot(page, "session-ready")

    # The viewer plays the session's video: the red box on the left, the blue sphere on the right.
    card.get_by_role("link", name=re.compile("viewer")).click()
    expect(page).to_have_url(re.compile(rf"/ui/viewer\.html\?session={session_id}$"))
    expect(page.locator("#status")).to_have_text(f"Connected to session {session_id}.")
    wait_for_video(page)
    page.wait_for_function("() => document.getElementById('stat-bitrate').textContent !== '–'")
    before = picture(page)
    assert (before["w"], before["h"]) == (640, 360)
    assert before["red"] > 2000, before
    assert before["blue"] > 2000, before
    assert before["redX"] < 0.5 < before["blueX"], before
    shot(page, "viewer-connected")

    # A drag orbits the camera: the picture changes.
    x0, y0 = page_point(page, 0.5, 0.85)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 120, y0, steps=12)
    page.mouse.up()
    page.wait_for_function(
        f"""(prev) => {{ const p = ({PICTURE_JS})(document.getElementById('video'));
            return p && p.thumb.reduce((s, v, i) => s + Math.abs(v - prev[i]), 0) / prev.length > 1; }}""",
        arg=before["thumb"],
    )
    page.wait_for_timeout(300)  # a few more frames: past the first P-frames of the new pose
    after = picture(page)
    assert thumb_difference(before, after) > 1
    assert abs(after["redX"] - before["redX"]) > 0.01, (before, after)
    assert after["red"] > 500, after
    expect(page.locator("#picked")).to_have_text(
        "Click or tap an object to select it."
    )  # a drag picks nothing
    shot(page, "after-orbit")

    # A click (no drag) on the box picks it and selects it: the outline (orange, which "yellow" counts).
    page.mouse.click(*page_point(page, after["redX"], after["redY"]))
    expect(page.locator("#picked")).to_have_text("RedBox")
    page.wait_for_function(
        f"() => {{ const p = ({PICTURE_JS})(document.getElementById('video')); return p && p.yellow > 500; }}"
    )
    shot(page, "picked")

    # Stopping the session ends the stream, and the viewer says why.
    with server.api() as api:
        api.stop(session_id)
    expect(page.locator("#status")).to_have_text(re.compile(rf"Session {session_id} was stopped"))
    expect(page.locator("#placeholder")).to_be_visible()
    shot(page, "stopped")
    assert not errors, errors


def test_a_wrong_key_shows_the_sign_in_error(
    browser: BrowserContext, openrr_server: OpenRRServer, shot: Shot
) -> None:
    page = browser.new_page()
    sign_in(page, openrr_server, key="not-the-key")
    expect(page.locator("#signin-error")).to_have_text("Wrong account id or key.")
    expect(page).to_have_url(re.compile(r"/ui/$"))
    shot(page, "wrong-key")
    page.get_by_label("Account id").fill("not-a-uuid")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("The account id is a UUID")
    shot(page, "bad-account-id")
    # Pages of the app need a sign-in first, and come back after it.
    page.goto(f"{openrr_server.url}/ui/dashboard.html")
    expect(page).to_have_url(re.compile(r"/ui/index\.html\?next=dashboard\.html$"))


def test_a_second_viewer_is_refused_and_the_dashboard_extends_and_stops(
    browser: BrowserContext, server: OpenRRServer, shot: Shot
) -> None:
    create_2021(server, "shared", lease=30)
    with server.api() as api:
        api.wait_status("shared", "Ready", timeout=20)

    # The first viewer: while the session looks Starting it waits, then connects.
    first = browser.new_page()
    starting = {"pending": True}

    def looks_starting(route: Route) -> None:
        if starting["pending"] and route.request.method == "GET":
            body = route.fetch().json()
            body.update(status="Starting")
            for key in ("hostname", "handshakePort", "arrInspectorPort"):
                body.pop(key, None)
            route.fulfill(json=body)
        else:
            route.continue_()

    first.route(re.compile(r"/accounts/[^/]+/sessions/shared\?"), looks_starting)
    sign_in(first, server, next_page="viewer.html?session=shared")
    expect(first.locator("#status")).to_contain_text("not ready yet")
    shot(first, "first-waits-while-starting")
    starting["pending"] = False
    expect(first.locator("#status")).to_have_text("Connected to session shared.")
    wait_for_video(first)
    shot(first, "first-connected")

    # The second viewer of the same session (its own tab: its own sign-in) is refused, and says why.
    second = browser.new_page()
    sign_in(second, server, next_page="viewer.html?session=shared")
    expect(second.locator("#status")).to_contain_text("Another client is connected to this session")
    shot(second, "second-refused")

    # Once the first one leaves, Reconnect gets the second one in.
    first.close()
    for _ in range(20):
        second.get_by_role("button", name="Reconnect").click()
        status = second.locator("#status")
        expect(status).not_to_have_text(re.compile("Looking up|Connecting"), timeout=10_000)
        if status.text_content() == "Connected to session shared.":
            break
        second.wait_for_timeout(250)
    expect(second.locator("#status")).to_have_text("Connected to session shared.")
    wait_for_video(second)
    shot(second, "second-connected")

    # Models load by path into the empty session, with progress; a source outside the roots is refused.
    second.get_by_label("Path or URL").fill("/etc/passwd")
    second.get_by_role("button", name="Load", exact=True).click()
    expect(second.locator("#model-status")).to_contain_text("The render server refuses this source")
    second.get_by_label("Path or URL").fill("two_nodes.glb")
    second.get_by_role("button", name="Load", exact=True).click()
    expect(second.locator("#model-status")).to_have_text(
        re.compile(r"^Loaded .+: 3 nodes, 1,292 polygons\.$")
    )
    assert second.locator("#model-progress").evaluate("p => p.value") == 1
    second.wait_for_function(
        f"() => {{ const p = ({PICTURE_JS})(document.getElementById('video')); return p && p.red > 1000; }}"
    )
    shot(second, "model-loaded")
    second.set_viewport_size({"width": 390, "height": 844})
    shot(second, "second-connected-phone")

    # The dashboard (at a phone's width) extends the lease and stops the session; the viewer says so.
    board = browser.new_page()
    board.set_viewport_size({"width": 390, "height": 844})
    sign_in(board, server)
    card = board.locator('li.card[data-session="shared"]')
    expect(card.locator(".badge")).to_have_text("Ready")
    shot(board, "dashboard-phone")
    card.get_by_role("button", name="Extend the lease of session shared").click()
    board.get_by_label("New lease, in minutes from Ready").fill("45")
    shot(board, "extend-dialog")
    board.get_by_role("button", name="Extend", exact=True).click()
    expect(card).to_contain_text("of 45 min used")
    expect(board.locator("#status")).to_have_text("The lease of session shared is now 45 min.")
    card.get_by_role("button", name="Stop session shared").click()
    expect(card.locator(".badge")).to_have_text("Stopped")
    shot(board, "dashboard-stopped")
    expect(second.locator("#status")).to_have_text(re.compile("Session shared was stopped"))
    shot(second, "second-stopped-phone")


def test_an_expired_lease_is_explained(browser: BrowserContext, server: OpenRRServer, shot: Shot) -> None:
    # A lease of 0 minutes: the session expires as soon as it is Ready (the shortest lease there is: the
    # APIs count leases in whole minutes).
    create_2021(server, "brief", lease=0)
    with server.api() as api:
        api.wait_status("brief", "Expired", timeout=20)
    page = browser.new_page()
    sign_in(page, server, next_page="viewer.html?session=brief")
    expect(page.locator("#status")).to_have_text(re.compile(r"The lease of session brief expired"))
    shot(page, "expired-before-connecting")

    # While connected: the render server says bye when the lease ends, and the session's status says why.
    # A real lease lasts at least a minute, so the status is made to say Expired while the session is
    # stopped under the viewer (the bye is real).
    create_2021(server, "ends", lease=30)
    with server.api() as api:
        api.wait_status("ends", "Ready", timeout=20)
    page.goto(f"{server.url}/ui/viewer.html?session=ends")
    expect(page.locator("#status")).to_have_text("Connected to session ends.")
    wait_for_video(page)
    shot(page, "connected")

    def looks_expired(route: Route) -> None:
        body = route.fetch().json()
        body.update(status="Expired")
        route.fulfill(json=body)

    page.route(re.compile(r"/accounts/[^/]+/sessions/ends\?"), looks_expired)
    with server.api() as api:
        api.stop("ends")
    expect(page.locator("#status")).to_have_text(re.compile(r"The lease of session ends expired"))
    shot(page, "expired-while-connected")


def test_the_dashboard_lists_conversions_with_their_outcome(
    browser: BrowserContext, openrr_factory: Callable[..., OpenRRServer], tmp_path: Path, shot: Shot
) -> None:
    root = tmp_path / "containers"
    root.mkdir()
    server = openrr_factory(container_root=str(root))
    containers = root / server.account.id  # file: containers are per account
    (containers / "input" / "models").mkdir(parents=True)
    (containers / "output").mkdir()
    fixtures.two_node_glb(containers / "input" / "models")
    (containers / "input" / "models" / "broken.glb").write_bytes(b"not a model at all")

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, server)
    expect(page.locator("#conversions-empty")).to_contain_text("No conversions yet")
    expect(page.locator("#conversions-empty")).to_contain_text("openrr conversions create")
    expect(page.locator("#conversions-wrap")).to_be_hidden()
    page.locator("#conversions-empty").scroll_into_view_if_needed()
    shot(page, "no-conversions")

    for conversion_id, asset in (("good", "two_nodes.glb"), ("bad", "broken.glb")):
        r = httpx.put(
            f"{server.url}/accounts/{server.account.id}/conversions/{conversion_id}",
            params={"api-version": "2021-01-01"},
            json={
                "settings": {
                    "inputLocation": {
                        "storageContainerUri": (containers / "input").as_uri(),
                        "storageContainerReadListSas": "?sv=1&sig=SECRETSIGNATURE",
                        "blobPrefix": "models",
                        "relativeInputAssetPath": asset,
                    },
                    "outputLocation": {
                        "storageContainerUri": (containers / "output").as_uri(),
                        "blobPrefix": conversion_id,
                    },
                }
            },
            headers={"Authorization": f"Bearer {server.token()}"},
            verify=server.ssl_context(),
        )
        assert r.status_code == 201, r.text

    table = page.get_by_role("table", name="Conversions")
    good = table.locator('tr[data-conversion="good"]')
    bad = table.locator('tr[data-conversion="bad"]')
    expect(good.locator(".badge")).to_have_text("Succeeded", timeout=10_000)
    expect(bad.locator(".badge")).to_have_text("Failed", timeout=10_000)
    output = (containers / "output" / "good" / "two_nodes.arrAsset").as_uri()
    expect(good.locator('[data-field="result"]')).to_have_text(f"Output {output}")
    expect(bad.locator('[data-field="result"] .key')).to_have_text("ConversionProcessFailed")
    expect(bad.locator('[data-field="result"] .value')).not_to_be_empty()
    expect(good.locator('[data-field="input"]')).to_have_text(
        f"Container {(containers / 'input').as_uri()}Prefix models/Asset two_nodes.glb"
    )
    expect(good.get_by_role("rowheader")).to_have_text("good")
    expect(good.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT.*Z$"))
    expect(page.locator("#conversions-empty")).to_be_hidden()
    assert "SECRETSIGNATURE" not in page.content()
    table.scroll_into_view_if_needed()
    shot(page, "conversions-done")

    page.set_viewport_size({"width": 390, "height": 844})
    bad.scroll_into_view_if_needed()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "conversions-phone")
    assert not errors, errors
