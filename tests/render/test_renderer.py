"""Offscreen rendering through moderngl/EGL (llvmpipe here): pixels, camera, node state, limits.

Frames are small (160x120) and compared with colour tolerances, never hashes: GPU drivers differ in
rounding. One renderer serves the whole module, as a render server keeps one per process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import trimesh
from numpy.typing import NDArray

from openrr.model.loader import load_model
from openrr.model.mesh import LodLevel, Material, Mesh, Primitive
from openrr.model.scene import Scene
from openrr.render.camera import Camera
from openrr.render.renderer import Background, DirectionalLight, Hemisphere, Renderer
from openrr.render.shaders import default_lights
from tests.render import fixtures

W, H = 160, 120
BACKGROUND = (0.5, 0.5, 0.5)
Frame = NDArray[np.uint8]


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer(W, H) as r:
        yield r


@pytest.fixture(autouse=True)
def settings(renderer: Renderer) -> None:
    """Every test starts from the defaults, on a plain background."""
    renderer.background = Background(BACKGROUND, None)
    renderer.lights = default_lights()
    renderer.ambient = Hemisphere()
    renderer.polygon_limit = None
    renderer.fxaa = False


@pytest.fixture
def scene(tmp_path: Path, renderer: Renderer) -> Scene:
    """The red box / blue sphere model as the renderer's scene."""
    loaded = load_model(fixtures.two_node_glb(tmp_path))
    renderer.set_scene(loaded)
    return loaded


def front_camera() -> Camera:
    camera = Camera.look_at((0, 0, 6), (0, 0, 0), fov=50)
    return camera


def mask(frame: Frame, colour: str) -> NDArray[np.bool_]:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    if colour == "red":
        return (r > 120) & (r > 2 * g + 20) & (r > 2 * b + 20)
    if colour == "blue":
        return (b > 80) & (b > 2 * r + 20) & (b > 2 * g + 20)
    if colour == "green":
        return (g > 100) & (g > 2 * r + 20) & (g > 2 * b + 20)
    raise ValueError(colour)


def halves(frame: Frame, colour: str) -> tuple[int, int]:
    """Pixels of ``colour`` in the left and right halves."""
    m = mask(frame, colour)
    return int(m[:, : W // 2].sum()), int(m[:, W // 2 :].sum())


def to_pixel(camera: Camera, point: tuple[float, float, float]) -> tuple[float, float]:
    clip = camera.projection_matrix(W / H, 0.1, 100) @ camera.view_matrix() @ np.array([*point, 1.0])
    ndc = clip[:3] / clip[3]
    return (ndc[0] + 1) / 2 * W, (1 - ndc[1]) / 2 * H


def assert_background(frame: Frame) -> None:
    expected = np.array(BACKGROUND) * 255
    for corner in (frame[0, 0], frame[0, -1], frame[-1, 0], frame[-1, -1]):
        np.testing.assert_allclose(corner, expected, atol=3)


def test_red_left_blue_right_background_in_corners(renderer: Renderer, scene: Scene) -> None:
    frame = renderer.render(front_camera())
    assert frame.shape == (H, W, 3)
    assert frame.dtype == np.uint8
    red_left, red_right = halves(frame, "red")
    blue_left, blue_right = halves(frame, "blue")
    assert red_left > 300
    assert red_right == 0
    assert blue_right > 300
    assert blue_left == 0
    assert_background(frame)
    assert renderer.stats.draw_calls == 2
    assert renderer.stats.nodes_drawn == 2
    # The sphere sits 0.1 higher: its pixels' centroid is above the box's (rows count from the top).
    rows = np.arange(H)[:, None]
    assert (rows * mask(frame, "blue")).sum() / mask(frame, "blue").sum() < (
        (rows * mask(frame, "red")).sum() / mask(frame, "red").sum()
    )


def test_orbit_180_swaps_sides(renderer: Renderer, scene: Scene) -> None:
    camera = front_camera()
    camera.orbit(180, 0)
    red_left, red_right = halves(renderer.render(camera), "red")
    blue_left, blue_right = halves(renderer.render(camera), "blue")
    assert red_right > 300
    assert red_left == 0
    assert blue_left > 300
    assert blue_right == 0


def test_visibility_colour_and_transform_apply_on_next_render(renderer: Renderer, scene: Scene) -> None:
    camera = front_camera()
    renderer.render(camera)
    uploaded = dict(renderer._meshes)
    box = scene.node("RedBox")
    box.visible = False
    frame = renderer.render(camera)
    assert mask(frame, "red").sum() == 0
    assert mask(frame, "blue").sum() > 300
    box.visible = True
    box.color = (0.0, 1.0, 0.0, 1.0)
    frame = renderer.render(camera)
    assert mask(frame, "red").sum() == 0
    assert halves(frame, "green")[0] > 300
    box.color = None
    box.transform = box.transform + _shift(3.0, -1.0)
    frame = renderer.render(camera)
    assert halves(frame, "red")[1] > 300
    assert halves(frame, "red")[0] == 0
    scene.node("Scene").visible = False  # hiding a parent hides its subtree
    assert mask(renderer.render(camera), "blue").sum() == 0
    assert renderer._meshes.keys() == uploaded.keys()  # nothing was uploaded again


def test_checkerboard_past_the_polygon_limit(renderer: Renderer, scene: Scene) -> None:
    camera = front_camera()
    renderer.polygon_limit = scene.polygon_count - 1
    frame = renderer.render(camera)
    assert renderer.limit_exceeded
    assert renderer.limit_message is not None
    assert str(scene.polygon_count) in renderer.limit_message
    assert mask(frame, "red").sum() == 0
    assert mask(frame, "blue").sum() == 0
    grey = frame.mean(axis=2)
    assert (grey > 190).mean() > 0.3
    assert (grey < 80).mean() > 0.3
    renderer.polygon_limit = scene.polygon_count
    frame = renderer.render(camera)
    assert not renderer.limit_exceeded
    assert renderer.limit_message is None
    assert mask(frame, "red").sum() > 300


def test_texture_orientation_fxaa_and_gradient(tmp_path: Path, renderer: Renderer) -> None:
    renderer.set_scene(load_model(fixtures.textured_gltf(tmp_path)))
    renderer.background = Background((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    renderer.fxaa = True
    camera = Camera.look_at((0, 0, 3), (0, 0, 0), fov=60)
    frame = renderer.render(camera).astype(int)
    top, bottom = frame[H // 2 - 12, W // 2], frame[H // 2 + 12, W // 2]
    # Yellow above cyan, as in the image; the material's emissive 0.1 lifts every channel a little.
    assert top[0] > 150
    assert top[1] > 150
    assert top[2] < top[0] - 100
    assert bottom[0] < bottom[2] - 100
    assert bottom[1] > 120
    assert bottom[2] > 150
    assert frame[0, 0].min() > 240
    assert frame[-1, 0].max() < 15
    camera.orbit(180, 0)  # double-sided: the back shows the texture mirrored, still lit
    back = renderer.render(camera).astype(int)[H // 2 - 12, W // 2]
    assert back[0] > 150
    assert back[2] < back[0] - 100


def test_vertex_colours_instancing_and_culling(renderer: Renderer) -> None:
    quad = Primitive(
        positions=np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], np.float32),
        indices=np.array([[0, 1, 2], [0, 2, 3]], np.uint32),
        colors=np.tile(np.array([0.0, 1.0, 0.0, 1.0], np.float32), (4, 1)),
        material=Material(metallic_factor=0.0),
    )
    mesh = Mesh("quad", (quad,))
    scene = Scene()
    for x in (-1.0, 1.0, 40.0):
        scene.add_node(f"quad{x}", mesh=mesh, transform=_shift(x, 0.0) + np.eye(4))
    renderer.set_scene(scene)
    frame = renderer.render(Camera.look_at((0, 0, 4), (0, 0, 0)))
    left, right = halves(frame, "green")
    assert left > 200
    assert right > 200
    assert renderer.stats.nodes_drawn == 2
    assert renderer.stats.nodes_culled == 1
    assert len(renderer._meshes) == 1  # one upload for three instances
    red = Material(base_color_factor=(1.0, 0.0, 0.0, 1.0), metallic_factor=0.0)
    scene.node("quad-1.0").mesh = _quad(red)  # a mesh swap is a structure change: uploaded next frame
    left, right = halves(renderer.render(Camera.look_at((0, 0, 4), (0, 0, 0))), "red")
    assert left > 200
    assert right == 0
    assert len(renderer._meshes) == 2
    renderer.set_scene(None)
    assert_background(renderer.render(Camera()))
    assert renderer._meshes == {}


def _quad(material: Material) -> Mesh:
    """A 2x2 quad facing +Z, uv (0, 0) at its top left as in glTF."""
    return Mesh(
        "quad",
        (
            Primitive(
                positions=np.array([[-1, 1, 0], [1, 1, 0], [1, -1, 0], [-1, -1, 0]], np.float32),
                indices=np.array([[0, 2, 1], [0, 3, 2]], np.uint32),
                normals=np.tile(np.array([0.0, 0.0, 1.0], np.float32), (4, 1)),
                uvs=np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32),
                material=material,
            ),
        ),
    )


def test_normal_texture_tilts_the_shading(renderer: Renderer) -> None:
    """Tangent-space +X is the texture's u (right), +Y its up; lit from one side, the tilt shows."""
    renderer.ambient = Hemisphere((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    camera = Camera.look_at((0, 0, 3), (0, 0, 0))
    brightness: dict[tuple[str, str], int] = {}
    for tilt, texel in (("flat", None), ("right", (218, 128, 188, 255)), ("up", (128, 218, 188, 255))):
        texture = None if texel is None else np.full((4, 4, 4), texel, dtype=np.uint8)
        scene = Scene()
        scene.add_node("quad", mesh=_quad(Material(metallic_factor=0.0, normal_texture=texture)))
        renderer.set_scene(scene)
        for side, direction in (("right", (-1.0, 0.0, -0.2)), ("up", (0.0, -1.0, -0.2))):
            renderer.lights = [DirectionalLight(direction, view_space=False)]
            brightness[tilt, side] = int(renderer.render(camera)[H // 2, W // 2, 0])
    assert brightness["right", "right"] > brightness["flat", "right"] + 40 > brightness["right", "up"] + 40
    assert brightness["up", "up"] > brightness["flat", "up"] + 40 > brightness["up", "right"] + 40


def test_alpha_modes(renderer: Renderer) -> None:
    scene = Scene()
    blend = Material(base_color_factor=(0.0, 1.0, 0.0, 0.5), metallic_factor=0.0, alpha_mode="BLEND")
    masked = Material(base_color_factor=(0.0, 1.0, 0.0, 0.3), metallic_factor=0.0, alpha_mode="MASK")
    scene.add_node("blend", mesh=_quad(blend), transform=_shift(-1.2, 0.0) + np.eye(4))
    scene.add_node("mask", mesh=_quad(masked), transform=_shift(1.2, 0.0) + np.eye(4))
    renderer.set_scene(scene)
    frame = renderer.render(Camera.look_at((0, 0, 5), (0, 0, 0))).astype(int)
    half_green = frame[H // 2, W // 4]
    assert 128 < half_green[1] < 250
    assert 40 < half_green[0] < 120
    np.testing.assert_allclose(frame[H // 2, 3 * W // 4], np.array(BACKGROUND) * 255, atol=3)  # cut out


def _shift(x: float, y: float) -> NDArray[np.float64]:
    matrix = np.zeros((4, 4))
    matrix[:2, 3] = (x, y)
    return matrix


def test_levels_of_detail_follow_the_size_on_screen(renderer: Renderer) -> None:
    def sphere(subdivisions: int) -> Mesh:
        ico = trimesh.creation.icosphere(subdivisions=subdivisions)  # unit radius: normals = positions
        return Mesh(f"ico{subdivisions}", (Primitive(ico.vertices, ico.faces, normals=ico.vertices),))

    fine, coarse = sphere(4), sphere(1)
    fine.lods = (LodLevel(coarse, error=0.05),)
    scene = Scene()
    scene.add_node("ball", mesh=fine)
    renderer.set_scene(scene)
    # Far away the sphere is a few pixels wide: the coarse level's 0.05-unit error is under a pixel.
    renderer.render(Camera.look_at((0, 0, 400), (0, 0, 0)))
    assert renderer.stats.triangles == coarse.triangle_count
    # Close up the same error would be many pixels: the full mesh is drawn.
    frame = renderer.render(Camera.look_at((0, 0, 3), (0, 0, 0)))
    assert renderer.stats.triangles == fine.triangle_count
    assert frame[H // 2, W // 2].sum() > 100  # the sphere is there, in the middle
    renderer.set_scene(None)
