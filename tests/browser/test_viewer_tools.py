"""The viewer's scene tools in Chromium against a real control plane and render server.

One session for the module (the machine is small): the red box / blue sphere model is loaded through the
viewer's model form, then each test drives one tool and checks the streamed picture (the <video> drawn
into a canvas in the page, its pixels classed by colour) and what the page shows from the server's
answers. Each test leaves the scene as it found it. The measurement is checked against rays the test
builds itself from the camera pose the render server's inspector reports and the model's known geometry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.session_page import session_browser
from tests.browser.test_dashboard_viewer import page_point, sign_in, wait_for_video
from tests.e2e.server import OpenRRServer
from tests.render import fixtures

pytestmark = pytest.mark.e2e
Shot = Callable[[Page, str], Path]
SESSION = "tools"

# Counts of colour classes in the newest frame, the red and blue centroids (fractions of the picture),
# and the mean colour of the top-left corner (background: the sky).
CLASSES_JS = """(video) => {
  const w = video.videoWidth, h = video.videoHeight;
  if (!w || !h) return null;
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  const g = canvas.getContext("2d", { willReadFrequently: true });
  g.drawImage(video, 0, 0, w, h);
  const d = g.getImageData(0, 0, w, h).data;
  const out = { red: 0, blue: 0, green: 0, orange: 0, cyan: 0, pureRed: 0 };
  Object.assign(out, { redX: 0, redY: 0, blueX: 0, blueY: 0 });
  out.corner = [0, 0, 0];
  let cornerCount = 0;
  for (let i = 0, p = 0; i < d.length; i += 4, p += 1) {
    const r = d[i], gr = d[i + 1], b = d[i + 2], x = p % w, y = (p - x) / w;
    if (r > 90 && r > 2 * gr && r > 2 * b) { out.red += 1; out.redX += x; out.redY += y; }
    else if (b > 90 && b > 2 * r && b > 2 * gr) { out.blue += 1; out.blueX += x; out.blueY += y; }
    else if (gr > 90 && gr > 2 * r && gr > 2 * b) { out.green += 1; }
    if (r > 200 && gr > 100 && gr < 200 && b < 90) out.orange += 1;
    if (r < 90 && gr > 180 && b > 180) out.cyan += 1;
    if (r > 240 && gr < 40 && b < 40) out.pureRed += 1;
    if (x < 24 && y < 24) { out.corner[0] += r; out.corner[1] += gr; out.corner[2] += b; cornerCount += 1; }
  }
  if (out.red) { out.redX /= out.red * w; out.redY /= out.red * h; }
  if (out.blue) { out.blueX /= out.blue * w; out.blueY /= out.blue * h; }
  out.corner = out.corner.map((v) => v / cornerCount);
  return out;
}"""


@dataclass
class Viewer:
    page: Page
    server: OpenRRServer
    errors: list[str]


def classes(page: Page) -> dict[str, Any]:
    value = page.locator("#video").evaluate(CLASSES_JS)
    assert value is not None, "the video has no frame"
    return dict(value)


def wait_picture(page: Page, condition: str) -> dict[str, Any]:
    """Wait until ``condition`` (a JS expression over ``p``, the colour classes) holds for a frame, then
    take a few more frames (past the first P-frames of the change) and return the classes."""
    page.wait_for_function(
        f"() => {{ const p = ({CLASSES_JS})(document.getElementById('video')); return p && ({condition}); }}",
        timeout=20_000,
    )
    page.wait_for_timeout(300)
    return classes(page)


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    """One control plane, one session with the model loaded through the viewer, one Chromium page."""
    with session_browser(tmp_path_factory.mktemp("viewer-tools"), SESSION) as (server, context):
        yield open_viewer(context, server)


def open_viewer(context: BrowserContext, server: OpenRRServer, session: str = SESSION) -> Viewer:
    """The viewer of ``session``, signed in, with the red box / blue sphere model loaded through its form."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, server, next_page=f"viewer.html?session={session}")
    expect(page.locator("#status")).to_have_text(f"Connected to session {session}.")
    wait_for_video(page)
    page.get_by_label("Path or URL").fill("two_nodes.glb")
    page.get_by_role("button", name="Load", exact=True).click()
    expect(page.locator("#model-status")).to_contain_text("Loaded", timeout=60_000)
    wait_picture(page, "p.red > 2000 && p.blue > 2000")
    return Viewer(page, server, errors)


@pytest.fixture
def page(viewer: Viewer) -> Iterator[Page]:
    yield viewer.page
    assert not viewer.errors, viewer.errors
    expect(viewer.page.locator("#status")).not_to_have_attribute("data-kind", "error")


def row(page: Page, name: str) -> Any:
    return page.locator(
        "#entity-tree li[data-entity]", has=page.locator(f":scope > .entity > .name:text-is('{name}')")
    )


def test_the_tree_lists_the_models_entities(page: Page, shot: Shot) -> None:
    tree = page.locator("#entity-tree")
    for name in ("RedBox", "BlueSphere"):
        expect(tree.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(page.locator("#entities-summary")).to_have_text(re.compile(r"^\d+ entities\.$"))
    # The boxes' parent (the glTF's "Scene" node) collapses and expands its children.
    toggle = row(page, "Scene").locator(":scope > .entity > .twisty")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    toggle.click()
    expect(tree.get_by_role("button", name="RedBox", exact=True)).to_have_count(0)
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()
    toggle.click()
    expect(tree.get_by_role("button", name="RedBox", exact=True)).to_be_visible()
    shot(page, "tree")


def test_hiding_an_entity_removes_it_and_see_through_fades_it(page: Page, shot: Shot) -> None:
    hide = page.get_by_role("button", name="Hide BlueSphere")
    expect(hide).to_have_attribute("aria-pressed", "false")
    hide.click()
    # Pressed from the server's answer (hidden: ForceOn), and the sphere's pixels are gone.
    expect(hide).to_have_attribute("aria-pressed", "true")
    hidden = wait_picture(page, "p.blue < 20")
    assert hidden["red"] > 2000, hidden
    shot(page, "sphere-hidden")
    hide.click()
    expect(hide).to_have_attribute("aria-pressed", "false")
    wait_picture(page, "p.blue > 2000")
    # See-through (ARR's shell: desaturated, mostly transparent face on): the box's red mostly goes.
    before = classes(page)
    x_ray = page.get_by_role("button", name="See through RedBox")
    x_ray.click()
    expect(x_ray).to_have_attribute("aria-pressed", "true")
    shell = wait_picture(page, f"p.red < {0.5 * before['red']}")
    assert shell["blue"] > 2000, shell
    shot(page, "box-see-through")
    x_ray.click()
    expect(x_ray).to_have_attribute("aria-pressed", "false")
    wait_picture(page, f"p.red > {0.9 * before['red']}")


def test_clicking_the_video_selects_the_entity_with_the_outline(page: Page, shot: Shot) -> None:
    before = classes(page)
    assert before["orange"] < 50, before
    page.mouse.click(*page_point(page, before["redX"], before["redY"]))
    expect(page.locator("#picked")).to_have_text("RedBox")
    expect(page.locator("#entity-tree .name[aria-current='true']")).to_have_text("RedBox")
    expect(page.locator("#materials-heading")).to_have_text("Materials of RedBox")
    outlined = wait_picture(page, "p.orange > 150")
    assert outlined["red"] > 1500, outlined  # the box itself is still drawn inside its outline
    shot(page, "box-selected")
    # The outline's colour is a setting.
    outline = page.get_by_label("Outline colour")
    outline.fill("#00ffff")
    wait_picture(page, "p.cyan > 150 && p.orange < 50")
    outline.fill("#ff9900")
    wait_picture(page, "p.orange > 150")
    # Escape clears the selection, and the outline goes.
    page.locator("#surface").press("Escape")
    expect(page.locator("#picked")).to_have_text("Nothing selected.")
    expect(page.locator("#entity-tree .name[aria-current='true']")).to_have_count(0)
    wait_picture(page, "p.orange < 50")
    # A click on the background clears it too.
    page.locator("#entity-tree").get_by_role("button", name="BlueSphere", exact=True).click()
    wait_picture(page, "p.orange > 150")
    page.mouse.click(*page_point(page, 0.5, 0.05))
    expect(page.locator("#picked")).to_have_text("Nothing there (background).")
    wait_picture(page, "p.orange < 50")


def test_the_albedo_colour_changes_the_parts_pixels(page: Page, shot: Shot) -> None:
    albedo = page.get_by_label("Albedo colour")
    expect(albedo).to_be_disabled()  # nothing selected
    page.locator("#entity-tree").get_by_role("button", name="RedBox", exact=True).click()
    expect(albedo).to_be_enabled()
    expect(albedo).to_have_value("#ff0000")
    albedo.fill("#00ff00")
    green = wait_picture(page, "p.green > 2000 && p.red < 100")
    assert green["blue"] > 2000, green  # the sphere's material is another one
    shot(page, "box-green")
    albedo.fill("#ff0000")
    lit = wait_picture(page, "p.red > 2000 && p.green < 100")
    assert lit["pureRed"] < 0.5 * lit["red"], lit  # shaded: the faces differ from the albedo
    # Unlit: an unlit copy of the material on the box's parts, which then show the albedo as it is.
    page.get_by_label("Unlit").check()
    expect(page.locator("#material-status")).to_contain_text("(color)")
    flat = wait_picture(page, "p.pureRed > 0.9 * p.red && p.red > 2000")
    shot(page, "box-unlit")
    page.get_by_label("Unlit").uncheck()
    expect(page.locator("#material-status")).to_contain_text("(pbr)")
    wait_picture(page, "p.pureRed < 0.5 * p.red && p.red > 2000")
    assert flat["red"] > 2000
    page.locator("#surface").press("Escape")
    expect(albedo).to_be_disabled()


def test_the_cut_plane_removes_half_the_model_and_flip_the_other_half(page: Page, shot: Shot) -> None:
    # The scene's centre is between the box (x < 0) and the sphere (x > 0); +X cuts the sphere away.
    page.get_by_label("Normal (the side it points to is cut away)").select_option("X")
    page.get_by_role("button", name="Place at the centre").click()
    expect(page.locator("#cut-status")).to_contain_text("cuts away the X side")
    cut = wait_picture(page, "p.blue < 20")
    assert cut["red"] > 2000, cut
    expect(page.locator("#entity-tree").get_by_role("button", name="Cut plane", exact=True)).to_be_visible()
    shot(page, "cut-x")
    page.get_by_role("button", name="Flip").click()
    expect(page.locator("#cut-status")).to_contain_text("cuts away the -X side")
    flipped = wait_picture(page, "p.red < 20 && p.blue > 2000")
    shot(page, "cut-flipped")
    # Moving the plane along its normal (-X) past the box's far side brings the box back whole.
    offset = page.get_by_label(re.compile("^Move along the normal"))
    offset.focus()
    offset.press("End")  # the slider's end: the plane moved by the scene's half diagonal
    moved = wait_picture(page, "p.red > 2000")
    assert moved["blue"] > 0.5 * flipped["blue"], (flipped, moved)
    page.get_by_role("button", name="Remove").click()
    expect(page.locator("#cut-status")).to_have_text("No cut plane.")
    wait_picture(page, "p.red > 2000 && p.blue > 2000")
    expect(page.locator("#entity-tree").get_by_role("button", name="Cut plane", exact=True)).to_have_count(0)


def test_choosing_a_sky_changes_the_background(page: Page, shot: Shot) -> None:
    sky = page.get_by_label("Built-in sky")
    expect(sky).to_have_value("default")
    before = classes(page)["corner"]
    sky.select_option("sunset")
    expect(page.locator("#sky-status")).to_have_text("Sky: sunset.", timeout=60_000)
    distance = " + ".join(f"Math.abs(p.corner[{i}] - {before[i]})" for i in range(3))
    changed = f"{distance} > 30"
    after = wait_picture(page, changed)
    shot(page, "sky-sunset")
    sky.select_option("default")
    expect(page.locator("#sky-status")).to_have_text("Sky: default.", timeout=60_000)
    restored = wait_picture(page, f"{distance} < 10")
    assert restored["corner"] != after["corner"]


def test_measuring_between_two_points_shows_their_distance(page: Page, viewer: Viewer, shot: Shot) -> None:
    now = classes(page)
    camera = inspector_camera(viewer.server)
    page.get_by_role("button", name="Measure", exact=True).click()
    expect(page.get_by_role("button", name="Measure", exact=True)).to_have_attribute("aria-pressed", "true")
    # Beside the tools the picture stays in view (sticky) while the page scrolls down to the button.
    assert page.evaluate("document.getElementById('video').getBoundingClientRect().top") >= 0
    a = (now["redX"], now["redY"])
    b = (now["blueX"], now["blueY"])
    page.mouse.click(*page_point(page, *a))
    expect(page.locator("#measure-status")).to_contain_text("First point")
    page.mouse.click(*page_point(page, *b))
    distance = page.locator("#measure-distance")
    expect(distance).to_have_text(re.compile(r"^\d+\.\d{3}$"))
    shot(page, "measured")
    # The points the rays through the clicked pixels meet on the box and the sphere.
    box = ray_box(
        *pixel_ray(camera, *a),
        np.array([fixtures.RED_X - 0.5, -0.5, -0.5]),
        np.array([fixtures.RED_X + 0.5, 0.5, 0.5]),
    )
    ball = ray_sphere(*pixel_ray(camera, *b), np.array([fixtures.BLUE_X, fixtures.BLUE_Y, 0.0]), 0.6)
    expected = float(np.linalg.norm(box - ball))
    shown = float(distance.text_content() or "nan")
    assert abs(shown - expected) <= 0.02 * expected, (shown, expected)
    assert inspector_camera(viewer.server) == camera  # nothing moved the camera meanwhile
    # The selection was left alone, and Escape clears the measurement.
    expect(page.locator("#picked")).not_to_have_text(re.compile("RedBox|BlueSphere"))
    page.locator("#surface").press("Escape")
    expect(distance).to_have_text("–")
    page.get_by_role("button", name="Measure", exact=True).click()
    expect(page.get_by_role("button", name="Measure", exact=True)).to_have_attribute("aria-pressed", "false")


def test_the_tools_fit_a_phone_and_a_laptop_screen(page: Page, shot: Shot) -> None:
    for width, height in ((1280, 720), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(200)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (width, overflow)
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, f"tools-{width}x{height}")
    page.set_viewport_size({"width": 1280, "height": 720})


def test_unloading_the_model_empties_the_tree(page: Page, shot: Shot) -> None:
    # Last: the module's session has no model afterwards.
    page.get_by_role("button", name="Unload two_nodes.glb").click()
    expect(page.locator("#model-status")).to_have_text("Unloaded two_nodes.glb.")
    expect(page.locator("#entities-summary")).to_have_text("No entities: load a model.")
    expect(page.locator("#entity-tree li")).to_have_count(0)
    wait_picture(page, "p.red < 20 && p.blue < 20")
    shot(page, "unloaded")


# -- the measurement's independent check --------------------------------------------------------------------


def inspector_camera(server: OpenRRServer) -> dict[str, Any]:
    """The camera pose the session's render server reports on its inspector (``/scene``)."""
    r = httpx.post(
        f"{server.url}/openrr/accounts/{server.account.id}/sessions/{SESSION}/connectToken",
        headers={"Authorization": f"Bearer {server.token()}"},
        verify=server.ssl_context(),
    )
    assert r.status_code == 200, r.text
    token = r.json()
    scene = httpx.get(
        f"{token['inspectorUrl'].rstrip('/')}/scene",
        headers={"Authorization": f"Bearer {token['token']}"},
        verify=server.ssl_context(),
    )
    assert scene.status_code == 200, scene.text
    return dict(scene.json()["camera"])


def pixel_ray(camera: dict[str, Any], fx: float, fy: float) -> tuple[np.ndarray, np.ndarray]:
    """The ray from the camera through the picture's point (fractions from the top left), 16:9."""
    x, y, z, w = camera["orientation"]
    rotation = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    half = math.tan(math.radians(camera["fov"]) / 2)
    local = np.array([(2 * fx - 1) * half * 640 / 360, (1 - 2 * fy) * half, -1.0])
    direction = rotation @ local
    return np.array(camera["position"], float), direction / np.linalg.norm(direction)


def ray_box(origin: np.ndarray, direction: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        t1, t2 = (low - origin) / direction, (high - origin) / direction
    near = float(np.max(np.minimum(t1, t2)))
    far = float(np.min(np.maximum(t1, t2)))
    assert 0 < near <= far, "the ray misses the box"
    return origin + near * direction


def ray_sphere(origin: np.ndarray, direction: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    to_centre = centre - origin
    along = float(to_centre @ direction)
    miss = float(to_centre @ to_centre) - along * along
    assert miss < radius * radius, "the ray misses the sphere"
    return origin + (along - math.sqrt(radius * radius - miss)) * direction
