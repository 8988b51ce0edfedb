"""The dashboard's model library against a real ``openrr serve`` with the real converter, in Chromium: a new
user finds the sample scene picked; a GLB dropped on the drop zone uploads and converts with the progress bar
reaching its end; its statistics show; "Open in a session" starts a session with it and its viewer shows the
model (the red box and blue sphere in the video's pixels). A broken file chosen with the file picker fails
with its log; rename and delete work from the cards. A new user who creates a session without changing the
form sees the built-in sample scene."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.test_dashboard_viewer import PICTURE_JS, picture, sign_in, wait_for_video
from tests.e2e.server import OpenRRServer
from tests.render import fixtures

pytestmark = pytest.mark.e2e
Shot = Callable[[Page, str], Path]

# A drop as Chromium dispatches one: a DataTransfer holding the file, built in the page.
DROP_JS = """([name, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: "model/gltf-binary" }));
  const zone = document.getElementById("drop-zone");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }
}"""


@pytest.fixture
def server(openrr_factory: Callable[..., OpenRRServer]) -> OpenRRServer:
    return openrr_factory(video_width=640, video_height=360)


def test_drop_convert_and_open_a_model(
    browser: BrowserContext, server: OpenRRServer, shot: Shot, tmp_path: Path
) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, server)
    expect(page).to_have_url(re.compile(r"/ui/dashboard\.html$"))

    # A new user: an empty library, and the sample scene picked for the first session.
    expect(page.locator("#library-empty")).to_be_visible()
    expect(page.get_by_label("Models to preload (optional)")).to_have_value("builtin://sample")
    expect(page.get_by_label("Model", exact=True)).to_have_value("builtin://sample")
    shot(page, "new-user")

    glb = fixtures.two_node_glb(tmp_path)
    page.evaluate(DROP_JS, [glb.name, base64.b64encode(glb.read_bytes()).decode()])
    card = page.locator("#library li.card").first
    expect(card.locator("h3")).to_have_text("two_nodes")
    shot(page, "uploaded")
    expect(card.locator(".badge")).to_have_text("Succeeded", timeout=120_000)
    expect(page.locator("#upload-progress")).to_have_js_property("value", 1)
    expect(page.locator("#upload-what")).to_contain_text("two_nodes is ready")
    expect(card.locator('[data-field="stats"]')).to_contain_text("triangles")
    expect(card.locator('[data-field="stats"]')).to_contain_text("2 material(s)")
    expect(page.locator("#library-empty")).to_be_hidden()
    # The model is in the picker now, under its name.
    expect(page.locator("#create-pick-library option")).to_have_text(["two_nodes"])
    shot(page, "converted")

    # A broken file through the file picker: it fails, and its card shows why and the log.
    page.locator("#upload-file").set_input_files(str(fixtures.broken_glb(tmp_path)))
    broken = page.locator('#library li.card[data-status="Failed"]')
    expect(broken.locator(".badge")).to_have_text("Failed", timeout=120_000)
    expect(broken.locator(".problem")).to_contain_text("ConversionProcessFailed")
    broken.locator("summary").click()
    expect(broken.locator("pre.log")).to_contain_text("broken.glb")
    expect(broken.get_by_role("button", name=re.compile("Open in a session"))).to_be_hidden()
    shot(page, "failed-with-log")

    # Rename the good one; delete the broken one.
    card = page.locator('#library li.card[data-status="Succeeded"]')
    card.get_by_role("button", name=re.compile("^Rename")).click()
    page.locator("#rename-name").fill("Box and sphere")
    page.locator("#rename-submit").click()
    expect(card.locator("h3")).to_have_text("Box and sphere")
    page.once("dialog", lambda dialog: dialog.accept())
    broken.get_by_role("button", name=re.compile("^Delete")).click()
    expect(page.locator("#library li.card")).to_have_count(1)
    expect(page.locator("#upload")).to_be_hidden()  # it spoke of the deleted model
    shot(page, "renamed-and-deleted")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
    card.scroll_into_view_if_needed()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "library-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Open it in a session: the viewer plays a video with the model in it.
    card.get_by_role("button", name=re.compile("Open in a session")).click()
    expect(page).to_have_url(re.compile(r"/ui/viewer\.html\?session=[0-9a-f-]{36}$"), timeout=20_000)
    expect(page.locator("#status")).to_contain_text("Connected to session", timeout=60_000)
    wait_for_video(page)
    seen = picture(page)
    shot(page, "viewer")
    assert seen["red"] > 1000, seen  # the red box
    assert seen["blue"] > 1000, seen  # the blue sphere
    assert not errors, errors


def test_a_new_users_first_session_shows_the_sample_scene(
    browser: BrowserContext, server: OpenRRServer, shot: Shot
) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, server)
    # Nothing typed, nothing uploaded: the form's defaults are what a new user gets.
    expect(page.get_by_label("Models to preload (optional)")).to_have_value("builtin://sample")
    page.get_by_role("button", name="Create session").click()
    card = page.locator("li.card[data-session]").first
    expect(card.locator(".badge")).to_have_text("Ready", timeout=60_000)
    card.get_by_role("link", name=re.compile("viewer")).click()
    expect(page.locator("#status")).to_contain_text("Connected to session", timeout=60_000)
    wait_for_video(page)
    # The generated showroom, framed from above: its red plastic part, and a picture far from uniform.
    page.wait_for_function(
        f"() => {{ const p = ({PICTURE_JS})(document.getElementById('video')); return p && p.red > 100; }}"
    )
    seen = picture(page)
    shot(page, "first-session")
    thumb = seen["thumb"]
    assert max(thumb) - min(thumb) > 60, seen
    assert not errors, errors
