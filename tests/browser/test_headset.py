"""The viewer in a headset: WebXR in Chromium with an emulated Quest 3 (IWER, from the npm registry:
tests/iwer), against a real control plane and render server streaming stereo with depth.

One session for the module: the red box / blue sphere model is loaded through the viewer's form, then
Enter VR. IWER shows the immersive session's canvas over the whole window, the left eye on the left half
and the right eye on the right half, so each test reads the eyes' pixels from a screenshot and compares
them with where the scene's points project through the views the page used (``openrrXr.views``) and the
model's placement in the room (``openrrXr.placement``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests import iwer
from tests.browser.session_page import session_browser
from tests.browser.test_viewer_tools import open_viewer
from tests.render import fixtures

pytestmark = pytest.mark.e2e
Shot = Callable[[Page, str], Path]
SESSION = "headset"
WIDTH, HEIGHT = 1280, 720  # the window: each eye gets half of it
BOX = (fixtures.RED_X, 0.0, 0.0)
SPHERE = (fixtures.BLUE_X, fixtures.BLUE_Y, 0.0)


@dataclass
class Headset:
    page: Page
    errors: list[str]


@pytest.fixture(scope="module")
def headset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Headset]:
    base = tmp_path_factory.mktemp("headset")
    with session_browser(base, SESSION, width=WIDTH, height=HEIGHT, timeout_ms=20_000) as (server, context):
        iwer.install_into(context)
        viewer = open_viewer(context, server, SESSION)
        yield Headset(viewer.page, viewer.errors)


@pytest.fixture
def page(headset: Headset) -> Iterator[Page]:
    yield headset.page
    assert not headset.errors, headset.errors


# ---- reading the eyes -----------------------------------------------------------------------------------
def eyes(page: Page) -> tuple[np.ndarray, np.ndarray]:
    """The left and the right eye's pictures, as IWER shows them (the two halves of the window)."""
    image = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)
    half = image.shape[1] // 2
    return image[:, :half], image[:, half:]


def centroid(picture: np.ndarray, colour: str) -> tuple[float, float, int]:
    r, g, b = picture[..., 0], picture[..., 1], picture[..., 2]
    mask = (r > 90) & (r > 2 * g) & (r > 2 * b) if colour == "red" else (b > 90) & (b > 2 * r) & (b > 2 * g)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return math.nan, math.nan, 0
    return float(xs.mean()), float(ys.mean()), len(xs)


def project(page: Page, scene_point: tuple[float, float, float]) -> list[tuple[float, float]]:
    """Where a scene point lies in each eye's picture (pixels, origin top left) through this frame's views."""
    state: dict[str, Any] = page.evaluate(
        "() => ({ views: openrrXr.views, inverse: Array.from(openrrXr.placement.inverse()) })"
    )
    to_xr = np.array(state["inverse"]).reshape(4, 4).T  # column-major
    point = to_xr @ np.array([*scene_point, 1.0])
    out = []
    for view in state["views"]:
        projection = np.array(view["projection"]).reshape(4, 4).T
        eye = np.array(view["matrix"]).reshape(4, 4).T
        clip = projection @ np.linalg.inv(eye) @ point
        ndc = clip[:3] / clip[3]
        vp = view["viewport"]
        out.append(((ndc[0] + 1) / 2 * vp["width"], (1 - ndc[1]) / 2 * vp["height"]))
    return out


def xr_frames(page: Page, count: int) -> None:
    """Wait for ``count`` more immersive frames (device changes apply at the next one)."""
    page.evaluate(
        """(count) => new Promise((done) => {
          let left = count;
          const tick = () => (--left <= 0 ? done() : requestAnimationFrame(tick));
          requestAnimationFrame(tick);
        })""",
        count,
    )


def settle(page: Page) -> None:
    """Let the stream catch up with the newest pose: a few frames decoded after it."""
    page.wait_for_timeout(800)
    xr_frames(page, 3)


def enter_vr(page: Page) -> None:
    if page.evaluate("() => Boolean(globalThis.openrrXr && openrrXr.session)"):
        return
    button = page.get_by_role("button", name="Enter VR")
    expect(button).to_be_visible()
    expect(button).to_be_enabled()
    button.click()
    page.wait_for_function("() => globalThis.openrrXr && openrrXr.layout && openrrXr.frames.current")


# ---- the tests -------------------------------------------------------------------------------------------
def test_each_eye_sees_the_model_from_its_own_position(page: Page, shot: Shot) -> None:
    expect(page.get_by_role("button", name="Enter AR")).to_be_visible()  # IWER's Quest 3 has pass-through
    enter_vr(page)
    settle(page)
    # A headset's browser asks for more than the 2D view's bitrate: two eyes and their depth.
    assert page.evaluate("() => openrrXr.connection.videoSettings.bitrate") == 12_000_000
    layout = page.evaluate("() => openrrXr.layout")
    assert layout["eyes"][1]["depth"] is not None
    left, right = eyes(page)
    shot(page, "vr")
    expected_box = project(page, BOX)
    expected_sphere = project(page, SPHERE)
    for name, (lx, ly, ln), (rx, ry, rn), (ex_l, ex_r) in (
        ("box", centroid(left, "red"), centroid(right, "red"), expected_box),
        ("sphere", centroid(left, "blue"), centroid(right, "blue"), expected_sphere),
    ):
        assert ln > 400, (name, ln)
        assert rn > 400, (name, rn)
        # Each eye sees it where that eye's own view puts it (within a few pixels of the projected centre)...
        assert abs(lx - ex_l[0]) < 6, (name, lx, ex_l)
        assert abs(rx - ex_r[0]) < 6, (name, rx, ex_r)
        assert abs(ly - ex_l[1]) < 6, (name, ly, ex_l)
        # ... so the two differ by the disparity of its distance, on the same rows.
        disparity = lx - rx
        assert disparity == pytest.approx(ex_l[0] - ex_r[0], abs=2.0), name
        assert disparity > 8, name
        assert abs(ly - ry) < 1.5, name


def test_reprojection_keeps_the_model_fixed_while_the_head_turns(page: Page, shot: Shot) -> None:
    enter_vr(page)
    page.evaluate("() => { openrrXr.sendPoses = false; }")  # the stream stays at the last pose sent
    try:
        settle(page)
        before, _ = eyes(page)
        x0, _, _ = centroid(before, "blue")
        expected_before = project(page, SPHERE)[0][0]
        turn = math.radians(6)  # to the left: the world moves right in the picture
        page.evaluate(
            "(half) => { xrDevice.quaternion.set(0, Math.sin(half), 0, Math.cos(half)); }", turn / 2
        )
        xr_frames(page, 4)
        after, _ = eyes(page)
        shot(page, "turned")
        x1, _, n = centroid(after, "blue")
        expected_after = project(page, SPHERE)[0][0]
        moved = expected_after - expected_before
        assert moved > 30  # without reprojection the sphere would stay where it was on screen
        assert n > 400
        assert x1 - x0 == pytest.approx(moved, abs=4.0)
    finally:
        page.evaluate("() => { xrDevice.quaternion.set(0, 0, 0, 1); openrrXr.sendPoses = true; }")
        settle(page)


def point_and_select(
    page: Page, scene_target: tuple[float, float, float], *, hand: bool = False
) -> dict[str, Any]:
    """Point the right controller (or hand) from beside the head at a scene point, pull the trigger (or
    pinch); the select."""
    inverse = np.array(page.evaluate("() => Array.from(openrrXr.placement.inverse())")).reshape(4, 4).T
    target = (inverse @ np.array([*scene_target, 1.0]))[:3]
    origin = np.array([0.2, 1.4, -0.1])
    quaternion = look_rotation(target - origin)
    device = "xrDevice.hands.right" if hand else "xrDevice.controllers.right"
    page.evaluate(
        f"""([p, q]) => {{ const c = {device};
             c.position.set(p[0], p[1], p[2]); c.quaternion.set(q[0], q[1], q[2], q[3]); }}""",
        [origin.tolist(), quaternion],
    )
    xr_frames(page, 3)
    page.evaluate(
        """() => { window.selections = [];
             openrrXr.addEventListener('select', (e) => selections.push(e.detail), { once: true }); }"""
    )
    press_js = f"{device}.updatePinchValue(1)" if hand else f"{device}.updateButtonValue('trigger', 1)"
    page.evaluate(f"() => {press_js}")
    page.wait_for_function("() => selections.length > 0")
    page.evaluate(f"() => {press_js.replace('1)', '0)')}")
    xr_frames(page, 2)
    selection: dict[str, Any] = page.evaluate("() => selections[0]")
    return selection


def entity_name(page: Page, entity: int) -> str:
    return str(page.evaluate("(id) => openrrXr.connection.getEntity(id).then((e) => e.name)", entity))


def press(page: Page, button: str) -> None:
    """Press and release one of the right controller's buttons (a frame apart: the page acts on presses)."""
    page.evaluate("(b) => xrDevice.controllers.right.updateButtonValue(b, 1)", button)
    xr_frames(page, 2)
    page.evaluate("(b) => xrDevice.controllers.right.updateButtonValue(b, 0)", button)
    xr_frames(page, 2)


def test_a_controller_ray_selects_the_entity_it_points_at(page: Page, shot: Shot) -> None:
    enter_vr(page)
    selection = point_and_select(page, SPHERE)
    assert selection["hit"] is not None, selection
    assert entity_name(page, selection["hit"]["entity"]) == "BlueSphere"
    hit = np.array(selection["hit"]["position"])
    assert np.linalg.norm(hit - np.array(SPHERE)) == pytest.approx(0.6, abs=0.05)  # on the sphere's surface
    settle(page)
    shot(page, "selected")


def test_a_hand_selects_by_pinching(page: Page) -> None:
    enter_vr(page)
    page.evaluate("() => { xrDevice.primaryInputMode = 'hand'; }")
    try:
        xr_frames(page, 3)
        assert page.evaluate("() => [...openrrXr.session.inputSources].some((s) => s.hand)")
        selection = point_and_select(page, BOX, hand=True)
        assert selection["hit"] is not None, selection
        assert entity_name(page, selection["hit"]["entity"]) == "RedBox"
    finally:
        page.evaluate("() => { xrDevice.primaryInputMode = 'controller'; }")
        xr_frames(page, 3)


def test_the_controller_buttons_measure_see_through_and_cut(page: Page, shot: Shot) -> None:
    enter_vr(page)
    page.evaluate(
        """() => { window.toolEvents = [];
             for (const type of ['measure', 'tool'])
               openrrXr.addEventListener(type, (e) => toolEvents.push({ type, ...e.detail })); }"""
    )
    on_sphere = point_and_select(page, SPHERE)["hit"]
    press(page, "b-button")
    on_box = point_and_select(page, BOX)["hit"]
    assert entity_name(page, on_box["entity"]) == "RedBox"
    press(page, "b-button")
    page.wait_for_function("() => toolEvents.some((e) => e.type === 'measure')")
    measured = page.evaluate("() => toolEvents.find((e) => e.type === 'measure')")
    expected = np.linalg.norm(np.array(on_sphere["position"]) - np.array(on_box["position"]))
    assert measured["distance"] == pytest.approx(expected, rel=1e-6)
    assert measured["distance"] > 2.0  # from the sphere's surface to the box's, 3 units apart
    expect(page.locator("#status")).to_contain_text(f"Measured in the headset: {measured['distance']:.3f}")
    settle(page)
    shot(page, "measured")

    def state_of(entity: int) -> Any:
        return page.evaluate(
            """(id) => openrrXr.connection.getComponent(id, 'HierarchicalStateOverride')
                 .then((c) => c.properties.seeThrough, () => null)""",
            entity,
        )

    press(page, "a-button")  # the box was selected last: see-through
    page.wait_for_function("() => toolEvents.some((e) => e.tool === 'seeThrough' && e.state)")
    assert state_of(on_box["entity"]) == "ForceOn"
    press(page, "a-button")
    page.wait_for_function("() => toolEvents.some((e) => e.tool === 'seeThrough' && !e.state)")
    assert state_of(on_box["entity"]) in ("InheritFromParent", None)

    press(page, "thumbstick")  # a cut plane where the ray met the box, facing the user
    page.wait_for_function("() => toolEvents.some((e) => e.tool === 'cut' && e.state)")
    cut = page.evaluate("() => toolEvents.find((e) => e.tool === 'cut' && e.state).entity")
    component = page.evaluate("(id) => openrrXr.connection.getComponent(id, 'CutPlane')", cut)
    assert component["component"] == "CutPlane"
    settle(page)
    shot(page, "cut")
    press(page, "thumbstick")
    page.wait_for_function("() => toolEvents.some((e) => e.tool === 'cut' && !e.state)")
    assert not page.evaluate("() => toolEvents.some((e) => e.tool === 'error')"), page.evaluate(
        "() => toolEvents"
    )


def test_grabbing_moves_the_model_with_the_hand(page: Page, shot: Shot) -> None:
    enter_vr(page)
    inverse = np.array(page.evaluate("() => Array.from(openrrXr.placement.inverse())")).reshape(4, 4).T
    sphere_before = (inverse @ np.array([*SPHERE, 1.0]))[:3]
    page.evaluate(
        """() => { const c = xrDevice.controllers.right;
             c.position.set(0.2, 1.3, -0.5); c.quaternion.set(0, 0, 0, 1); }"""
    )
    xr_frames(page, 3)
    page.evaluate("() => xrDevice.controllers.right.updateButtonValue('squeeze', 1)")
    xr_frames(page, 3)
    page.evaluate("() => xrDevice.controllers.right.position.set(0.35, 1.3, -0.5)")  # 15 cm to the right
    xr_frames(page, 3)
    page.evaluate("() => xrDevice.controllers.right.updateButtonValue('squeeze', 0)")
    xr_frames(page, 3)
    inverse = np.array(page.evaluate("() => Array.from(openrrXr.placement.inverse())")).reshape(4, 4).T
    sphere_after = (inverse @ np.array([*SPHERE, 1.0]))[:3]
    assert sphere_after - sphere_before == pytest.approx([0.15, 0.0, 0.0], abs=1e-3)
    settle(page)
    left, _ = eyes(page)
    shot(page, "moved")
    x, _, n = centroid(left, "blue")
    assert n > 400
    assert x == pytest.approx(project(page, SPHERE)[0][0], abs=6)  # the picture follows


def test_local_rays_and_the_remote_model_hide_each_other_by_depth(page: Page, shot: Shot) -> None:
    """Two controller rays cross the box sideways: one 0.3 m behind it, one 0.3 m in front of it. Where
    the box is on screen, the one behind is hidden by the streamed box and the one in front covers it;
    away from the box both show."""
    enter_vr(page)
    inverse = np.array(page.evaluate("() => Array.from(openrrXr.placement.inverse())")).reshape(4, 4).T
    box = (inverse @ np.array([*BOX, 1.0]))[:3]
    sideways = look_rotation(np.array([1.0, 0.0, 0.0]))  # -Z turned to +X
    behind = box + np.array([-0.5, 0.03, -0.3])
    in_front = box + np.array([-0.5, -0.03, 0.3])
    page.evaluate(
        """([a, b, q]) => {
          for (const [c, p] of [[xrDevice.controllers.right, a], [xrDevice.controllers.left, b]]) {
            c.position.set(p[0], p[1], p[2]); c.quaternion.set(q[0], q[1], q[2], q[3]);
          }
        }""",
        [behind.tolist(), in_front.tolist(), sideways],
    )
    settle(page)
    left, _ = eyes(page)
    shot(page, "rays-and-box")

    def cyan_near(point: np.ndarray) -> bool:
        x, y = project_xr(page, point)[0]
        window = left[int(y) - 3 : int(y) + 4, int(x) - 3 : int(x) + 4]
        r, g, b = window[..., 0], window[..., 1], window[..., 2]
        return bool(((b > 150) & (g > 120) & (b > r + 60)).any())  # the rays' light blue

    across = np.array([1.0, 0.0, 0.0])
    assert not cyan_near(behind + across * 0.5)  # behind the box: hidden by the streamed picture
    assert cyan_near(in_front + across * 0.5)  # in front of it: over the box
    assert cyan_near(behind + across * 0.1)  # beside the box (on screen too), both show
    assert cyan_near(in_front + across * 0.1)
    page.evaluate(
        """() => { for (const c of [xrDevice.controllers.right, xrDevice.controllers.left]) {
             c.position.set(0, -5, 0); } }"""
    )


def project_xr(page: Page, point: np.ndarray) -> list[tuple[float, float]]:
    """Where a point of the headset's space lies in each eye's picture."""
    inverse = np.array(page.evaluate("() => Array.from(openrrXr.placement.inverse())")).reshape(4, 4).T
    scene = np.linalg.inv(inverse) @ np.array([*point, 1.0])
    return project(page, (float(scene[0]), float(scene[1]), float(scene[2])))


def look_rotation(forward: np.ndarray) -> list[float]:
    """The quaternion (x, y, z, w) turning -Z to ``forward`` with +Y kept up."""
    f = forward / np.linalg.norm(forward)
    right = np.cross(f, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, f)
    m = np.column_stack([right, up, -f])
    w = math.sqrt(max(0.0, 1 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
    return [(m[2, 1] - m[1, 2]) / (4 * w), (m[0, 2] - m[2, 0]) / (4 * w), (m[1, 0] - m[0, 1]) / (4 * w), w]


def test_enter_ar_shows_the_room_around_the_model(page: Page, shot: Shot) -> None:
    if page.evaluate("() => Boolean(globalThis.openrrXr && openrrXr.session)"):
        page.evaluate("() => openrrXr.end()")
    page.wait_for_function("() => !openrrXr.session")
    button = page.get_by_role("button", name="Enter AR")
    expect(button).to_be_enabled()
    button.click()
    page.wait_for_function(
        "() => openrrXr.session && openrrXr.layout && openrrXr.layout.background === 'transparent'"
        " && openrrXr.frames.current"
    )
    # The room: whatever is behind the immersive canvas shows through where the model is not. Paint it
    # magenta and hide the page's own content, so that a screenshot tells the room from the model.
    page.evaluate(
        """() => {
          document.documentElement.style.background = "rgb(255, 0, 255)";
          for (const child of document.body.children) {
            if (!child.hasAttribute("data-webxr_runtime")) child.style.visibility = "hidden";
          }
          document.body.style.background = "transparent";
        }"""
    )
    settle(page)
    left, right = eyes(page)
    shot(page, "ar")
    for picture in (left, right):
        magenta = (picture[..., 0] > 200) & (picture[..., 1] < 60) & (picture[..., 2] > 200)
        assert magenta.mean() > 0.6, magenta.mean()  # no sky, no gradient: the room
        assert centroid(picture, "red")[2] > 400
        assert centroid(picture, "blue")[2] > 400
    page.evaluate("() => openrrXr.end()")
    page.wait_for_function("() => !openrrXr.session")
