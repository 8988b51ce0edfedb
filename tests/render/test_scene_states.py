"""The hierarchical states drawn by a real Renderer (moderngl/EGL, llvmpipe here), asserted by pixels:
cut planes (side, fade, inside, attachment, filter mask, the 8-plane limit), inherited hidden states,
tint, the selection outline and its pulse (a pipeline re-renders while it pulses), see-through.

Scenes are built in code: boxes without normals (shaded flat) seen from +Z, small frames (160x120),
colours compared with tolerances.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import trimesh
from numpy.typing import NDArray

from openrr.model.components import (
    ALL_BITS,
    CUT_PLANE,
    STATE_OVERRIDE,
    CutPlane,
    OutlineSettings,
    ShellSettings,
    StateFlag,
    StateOverride,
)
from openrr.model.mesh import Material, Mesh, Primitive
from openrr.model.scene import Node, Scene
from openrr.model.sources import ModelSourcePolicy
from openrr.render.camera import Camera
from openrr.render.pipeline import RenderPipeline
from openrr.render.renderer import Background, Renderer
from tests.render import fixtures

W, H = 160, 120
BACKGROUND = np.array([128, 128, 128])
Frame = NDArray[np.uint8]


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer(W, H) as r:
        r.background = Background((0.5, 0.5, 0.5), None)
        yield r


def box(rgba: tuple[float, float, float, float], size: float = 2.0) -> Mesh:
    shape = trimesh.creation.box(extents=(size, size, size))
    material = Material(base_color_factor=rgba, metallic_factor=0.0, roughness_factor=0.6)
    return Mesh("box", (Primitive(shape.vertices, shape.faces, material=material),))


RED = (1.0, 0.0, 0.0, 1.0)
GREY = (0.7, 0.7, 0.7, 1.0)


def at(x: float = 0.0, y: float = 0.0, z: float = 0.0, turn_z: float = 0.0) -> NDArray[np.float64]:
    matrix = trimesh.transformations.rotation_matrix(np.radians(turn_z), (0, 0, 1))
    matrix[:3, 3] = (x, y, z)
    return np.asarray(matrix)


def front() -> Camera:
    return Camera.look_at((0, 0, 6), (0, 0, 0), fov=50)


def pixel(camera: Camera, point: tuple[float, float, float]) -> tuple[int, int]:
    """(row, column) of a world point in the frame."""
    clip = camera.projection_matrix(W / H, 0.1, 100) @ camera.view_matrix() @ np.array([*point, 1.0])
    ndc = clip[:3] / clip[3]
    return int((1 - ndc[1]) / 2 * H), int((ndc[0] + 1) / 2 * W)


def colour(frame: Frame, camera: Camera, point: tuple[float, float, float]) -> NDArray[np.int64]:
    row, column = pixel(camera, point)
    rgb: NDArray[np.int64] = frame[row, column].astype(np.int64)
    return rgb


def is_background(rgb: NDArray[np.int64]) -> bool:
    return bool(np.abs(rgb - BACKGROUND).max() <= 3)


def is_red(rgb: NDArray[np.int64]) -> bool:
    return bool(rgb[0] > 60 and rgb[0] > 2 * rgb[1] + 20 and rgb[0] > 2 * rgb[2] + 20)


def override(
    scene: Scene,
    node: Node,
    flags: dict[StateFlag, bool],
    tint_color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
    cut_plane_filter_mask: int = ALL_BITS,
) -> None:
    scene.set_component(node.id, STATE_OVERRIDE, StateOverride(flags, tint_color, cut_plane_filter_mask))


def cut(scene: Scene, name: str, plane: CutPlane, transform: NDArray[np.float64] | None = None) -> Node:
    node = scene.add_node(name, transform=transform)
    scene.set_component(node.id, CUT_PLANE, plane)
    return node


# -- cut planes ----------------------------------------------------------------------------------------


def test_a_cut_plane_removes_the_positive_side_and_fades_at_the_cut(renderer: Renderer) -> None:
    scene = Scene()
    scene.add_node("box", mesh=box(RED))
    renderer.set_scene(scene)
    camera = front()
    whole = renderer.render(camera)
    assert is_red(colour(whole, camera, (0.5, 0.0, 1.0)))
    cut(scene, "cut", CutPlane("X", fade_color=(0.0, 1.0, 0.0, 1.0), fade_length=0.3))
    frame = renderer.render(camera)
    for x in (0.1, 0.5, 0.9):  # the +X half is gone: background
        assert is_background(colour(frame, camera, (x, 0.0, 1.0))), x
    assert is_red(colour(frame, camera, (-0.6, 0.0, 1.0)))  # beyond the fade: the box as it was
    np.testing.assert_allclose(colour(frame, camera, (-0.6, 0.0, 1.0)), colour(whole, camera, (-0.6, 0, 1)))
    near = colour(frame, camera, (-0.04, 0.0, 1.0))  # next to the cut line: (almost) the fade colour
    assert near[1] > 200
    assert near[0] < 80
    assert near[2] < 40
    # Seen from the cut side, the inside of the far (-X) wall shows: back faces are drawn while cut.
    oblique = Camera.look_at((5, 0, 3), (0, 0, 0), fov=50)
    inside = colour(renderer.render(oblique), oblique, (-1.0, 0.0, 0.0))
    assert is_red(inside)


def test_a_cut_plane_moves_and_turns_with_its_entity(renderer: Renderer) -> None:
    scene = Scene()
    scene.add_node("box", mesh=box(RED))
    plane = cut(scene, "cut", CutPlane("X"), at(x=-0.5))
    renderer.set_scene(scene)
    camera = front()
    frame = renderer.render(camera)
    assert is_background(colour(frame, camera, (-0.25, 0.0, 1.0)))
    assert is_red(colour(frame, camera, (-0.75, 0.0, 1.0)))
    plane.transform = at(turn_z=90)  # its X axis now points up: the top half goes
    frame = renderer.render(camera)
    assert is_background(colour(frame, camera, (-0.5, 0.5, 1.0)))
    assert is_background(colour(frame, camera, (0.5, 0.5, 1.0)))
    assert is_red(colour(frame, camera, (-0.5, -0.5, 1.0)))
    assert is_red(colour(frame, camera, (0.5, -0.5, 1.0)))


def test_the_filter_mask_chooses_what_a_plane_cuts(renderer: Renderer) -> None:
    scene = Scene()
    kept = scene.add_node("kept", mesh=box(RED, 1.0), transform=at(x=-1.2))
    scene.add_node("cut", mesh=box(RED, 1.0), transform=at(x=1.2))
    scene.add_node("above", mesh=box(RED, 0.8), transform=at(y=1.6))  # wholly on the cut side
    override(scene, kept, {StateFlag.USE_CUT_PLANE_FILTER_MASK: True}, cut_plane_filter_mask=0b10)
    cut(scene, "plane", CutPlane("Y", object_filter_mask=0b01))
    renderer.set_scene(scene)
    camera = front()
    frame = renderer.render(camera)
    assert is_red(colour(frame, camera, (-1.2, 0.25, 0.5)))  # masks share no bit: not cut
    assert is_red(colour(frame, camera, (-1.2, -0.25, 0.5)))
    assert is_background(colour(frame, camera, (1.2, 0.25, 0.5)))  # all bits by default: cut
    assert is_red(colour(frame, camera, (1.2, -0.25, 0.5)))
    assert is_background(colour(frame, camera, (0.0, 1.6, 0.4)))
    override(scene, kept, {StateFlag.USE_CUT_PLANE_FILTER_MASK: True}, cut_plane_filter_mask=0b11)
    frame = renderer.render(camera)
    assert is_background(colour(frame, camera, (-1.2, 0.25, 0.5)))


def test_only_the_first_eight_planes_cut(renderer: Renderer) -> None:
    scene = Scene()
    scene.add_node("box", mesh=box(RED))
    for i in range(8):  # far away: they cut nothing of the box
        cut(scene, f"far{i}", CutPlane("X"), at(x=10.0 + i))
    cut(scene, "ninth", CutPlane("X"))  # would cut the +X half
    renderer.set_scene(scene)
    camera = front()
    frame = renderer.render(camera)
    assert is_red(colour(frame, camera, (0.5, 0.0, 1.0)))
    assert is_red(colour(frame, camera, (-0.5, 0.0, 1.0)))


# -- hidden and tint ---------------------------------------------------------------------------------------


def test_hidden_is_inherited_and_a_child_can_force_it_off(renderer: Renderer) -> None:
    scene = Scene()
    group = scene.add_node("group")
    scene.add_node("left", parent=group.id, mesh=box(RED, 1.0), transform=at(x=-1.2))
    right = scene.add_node("right", parent=group.id, mesh=box(RED, 1.0), transform=at(x=1.2))
    renderer.set_scene(scene)
    camera = front()
    override(scene, group, {StateFlag.HIDDEN: True})
    override(scene, right, {StateFlag.HIDDEN: False})
    frame = renderer.render(camera)
    assert is_background(colour(frame, camera, (-1.2, 0.0, 0.5)))
    assert is_red(colour(frame, camera, (1.2, 0.0, 0.5)))


def test_tint_moves_the_colour_by_its_strength(renderer: Renderer) -> None:
    scene = Scene()
    node = scene.add_node("box", mesh=box(GREY))
    renderer.set_scene(scene)
    camera = front()
    plain = colour(renderer.render(camera), camera, (0.0, 0.0, 1.0))
    override(scene, node, {StateFlag.TINT: True}, tint_color=(0.0, 0.0, 1.0, 1.0))
    tinted = colour(renderer.render(camera), camera, (0.0, 0.0, 1.0))
    # Blue, lit as before: the grey's diffuse light is gone from red and green, the specular part stays.
    assert tinted[2] > 150
    assert tinted[0] < plain[0] - 100
    assert tinted[1] < plain[1] - 100
    assert tinted[2] > 2 * tinted[0] + 40
    override(scene, node, {StateFlag.TINT: True}, tint_color=(0.0, 0.0, 1.0, 0.0))
    np.testing.assert_allclose(colour(renderer.render(camera), camera, (0.0, 0.0, 1.0)), plain, atol=1)


# -- outline -----------------------------------------------------------------------------------------------


def dilate(mask: NDArray[np.bool_], steps: int) -> NDArray[np.bool_]:
    """``mask`` grown by ``steps`` pixels (8-neighbourhood per step)."""
    grown = mask.copy()
    for _ in range(steps):
        padded = np.pad(grown, 1)
        grown = np.zeros_like(grown)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                grown |= padded[dy : dy + H, dx : dx + W]
    return grown


def test_the_outline_lines_the_silhouette_and_nothing_else(renderer: Renderer) -> None:
    scene = Scene()
    selected = scene.add_node("box", mesh=box(RED, 1.2), transform=at(turn_z=30))
    scene.add_node("other", mesh=box(RED, 0.8), transform=at(x=-2.2, y=1.0))
    scene.outline = OutlineSettings(color=(1.0, 0.0, 1.0), pulse_rate=0.0)
    renderer.set_scene(scene)
    camera = front()
    before = renderer.render(camera)
    silhouette = pixel_mask_of(before, camera, (0.0, 0.0, 0.6))
    override(scene, selected, {StateFlag.SELECTED: True})
    frame = renderer.render(camera)
    assert not renderer.animating
    ring = dilate(silhouette, 1) & ~silhouette  # the pixels just outside
    magenta = (frame[..., 0] > 245) & (frame[..., 1] < 10) & (frame[..., 2] > 245)
    assert ring.sum() > 50
    assert magenta[ring].all()
    np.testing.assert_array_equal(frame[silhouette], before[silhouette])  # the inside is untouched
    far = ~dilate(silhouette, 4)  # everything else, the other box included, is as before
    np.testing.assert_array_equal(frame[far], before[far])
    assert magenta.sum() == (magenta & dilate(silhouette, 3)).sum()


def pixel_mask_of(frame: Frame, camera: Camera, point: tuple[float, float, float]) -> NDArray[np.bool_]:
    """The connected non-background region around the pixel of ``point`` (a flood fill)."""
    solid = np.abs(frame.astype(np.int64) - BACKGROUND).max(axis=2) > 3
    region: NDArray[np.bool_] = np.zeros_like(solid)
    region[pixel(camera, point)] = True
    while True:
        grown: NDArray[np.bool_] = dilate(region, 1) & solid
        if (grown == region).all():
            return region
        region = grown


def test_the_outline_pulses_over_time(renderer: Renderer) -> None:
    scene = Scene()
    node = scene.add_node("box", mesh=box(RED, 1.2))
    scene.outline = OutlineSettings(color=(0.0, 1.0, 0.0), pulse_rate=1.0, pulse_intensity=0.8)
    renderer.set_scene(scene)
    camera = front()
    silhouette = pixel_mask_of(renderer.render(camera), camera, (0.0, 0.0, 0.6))
    ring = dilate(silhouette, 1) & ~silhouette
    override(scene, node, {StateFlag.SELECTED: True})
    now = [0.0]
    renderer.clock = lambda: now[0]
    try:
        bright = renderer.render(camera)[ring].astype(np.int64)
        assert renderer.animating
        now[0] = 0.5  # half a period later: dimmed by the intensity
        dim = renderer.render(camera)[ring].astype(np.int64)
    finally:
        renderer.clock = time.monotonic
    assert (bright[:, 1] > 250).all()
    assert (np.abs(dim[:, 1] - 0.2 * 255) < 4).all()
    assert (bright[:, [0, 2]] < 5).all()
    override(scene, node, {StateFlag.SELECTED: False})
    renderer.render(camera)
    assert not renderer.animating  # nothing selected: nothing changes by itself


# -- see-through ---------------------------------------------------------------------------------------


def test_see_through_shows_what_is_behind(renderer: Renderer) -> None:
    scene = Scene()
    scene.add_node("behind", mesh=box(RED, 1.0), transform=at(z=-2.0))
    front_box = scene.add_node("front", mesh=box((0.1, 0.8, 0.1, 1.0), 2.0))
    renderer.set_scene(scene)
    camera = front()
    centre = (0.0, 0.0, 1.0)
    opaque = colour(renderer.render(camera), camera, centre)
    assert opaque[1] > opaque[0] + 100  # the green box hides the red one
    override(scene, front_box, {StateFlag.SEE_THROUGH: True})
    scene.shell = ShellSettings(desaturation=1.0, opacity=0.25)
    through = colour(renderer.render(camera), camera, centre)
    assert is_red(through)  # mostly the red box, through a quarter of the front box, fully desaturated
    assert abs(through[1] - through[2]) <= 4
    scene.shell = ShellSettings(desaturation=0.0, opacity=0.25)
    tinged = colour(renderer.render(camera), camera, centre)
    assert is_red(tinged)
    assert tinged[1] > tinged[2] + 20  # the front box's own green shows a little
    scene.remove_node(front_box.id)
    alone = colour(renderer.render(camera), camera, centre)
    assert through[0] < alone[0] - 10  # dimmed by the shell in front


# -- the pipeline -----------------------------------------------------------------------------------------


async def test_a_pulsing_outline_renders_new_frames_without_edits(tmp_path: Path) -> None:
    fixtures.two_node_glb(tmp_path)
    pipeline = RenderPipeline(W, H, policy=ModelSourcePolicy(roots=(tmp_path,)))
    await pipeline.start()
    try:
        await pipeline.load("two_nodes.glb")
        pipeline.frame_interval = 0.01
        scene = pipeline.scene
        override(scene, scene.node("RedBox"), {StateFlag.SELECTED: True})
        scene.outline = OutlineSettings(pulse_rate=0.0)
        still = await pipeline.latest_frame()
        await asyncio.sleep(0.05)
        assert (await pipeline.latest_frame()).frame_id == still.frame_id  # a steady outline: no change
        scene.outline = OutlineSettings(pulse_rate=2.0, pulse_intensity=0.5)
        scene.changed()
        first = await pipeline.latest_frame()
        await asyncio.sleep(0.05)  # more than a frame interval later: the pulse has moved on
        assert (await pipeline.latest_frame()).frame_id > first.frame_id
    finally:
        await pipeline.close()
