"""Material edits, unlit and uv-transformed materials, the scene's own lights and skies, by pixels on a
real renderer (moderngl/EGL; llvmpipe here). Small frames and colour tolerances, as test_renderer.py."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import trimesh
from numpy.typing import NDArray

from openrr.model.components import Light
from openrr.model.mesh import LodLevel, Material, Mesh, Primitive
from openrr.model.scene import Scene
from openrr.model.skies import builtin_sky, sky_from_faces
from openrr.render.camera import Camera, look_rotation
from openrr.render.lights import MAX_PUNCTUAL, punctual_uniforms
from openrr.render.renderer import Background, Hemisphere, Renderer
from openrr.render.shaders import default_lights

W, H = 160, 120
GREY = (0.5, 0.5, 0.5)
Frame = NDArray[np.int64]


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer(W, H) as r:
        yield r


@pytest.fixture(autouse=True)
def settings(renderer: Renderer) -> None:
    renderer.background = Background(GREY, None)
    renderer.lights = default_lights()
    renderer.ambient = Hemisphere()


def _render(renderer: Renderer, scene: Scene, camera: Camera | None = None) -> Frame:
    renderer.set_scene(scene)
    frame = renderer.render(camera or Camera.look_at((0, 0, 6), (0, 0, 0), fov=50))
    return frame.astype(np.int64)


def _box(centre: tuple[float, float, float], material: Material) -> Primitive:
    box = trimesh.creation.box(extents=(1.2, 1.2, 1.2))
    box.apply_translation(centre)
    return Primitive(box.vertices, box.faces, material=material, normals=box.vertex_normals)


def _sphere(material: Material, subdivisions: int = 3) -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=subdivisions)  # unit radius: normals = positions
    return Mesh("ball", (Primitive(ico.vertices, ico.faces, material=material, normals=ico.vertices),))


def _quad(material: Material, size: float = 1.0) -> Mesh:
    """A quad facing +Z, uv (0, 0) at its top left as in glTF."""
    s = size
    return Mesh(
        "quad",
        (
            Primitive(
                positions=np.array([[-s, s, 0], [s, s, 0], [s, -s, 0], [-s, -s, 0]], np.float32),
                indices=np.array([[0, 2, 1], [0, 3, 2]], np.uint32),
                normals=np.tile(np.array([0.0, 0.0, 1.0], np.float32), (4, 1)),
                uvs=np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32),
                material=material,
            ),
        ),
    )


def _matte(rgb: tuple[float, float, float]) -> Material:
    return Material(base_color_factor=(*rgb, 1.0), metallic_factor=0.0, roughness_factor=0.8)


def _dominant(pixel: NDArray[np.int64]) -> str:
    r, g, b = (int(c) for c in pixel)
    names = {"red": r - max(g, b), "green": g - max(r, b), "blue": b - max(r, g)}
    best = max(names, key=lambda k: names[k])
    return best if names[best] > 40 else "none"


def _at(frame: Frame, x: float) -> NDArray[np.int64]:
    """The pixel at ``x`` (-3..3 world units across the middle row of a front view at distance 6)."""
    column = int(W / 2 + x / (6 * np.tan(np.radians(25))) * (H / 2))
    pixel: NDArray[np.int64] = frame[H // 2, column]
    return pixel


# -- materials ---------------------------------------------------------------------------------------


def test_editing_a_material_recolours_its_part_only(renderer: Renderer) -> None:
    left, right = _matte((0.8, 0.05, 0.05)), _matte((0.8, 0.05, 0.05))
    mesh = Mesh("pair", (_box((-1.5, 0, 0), left), _box((1.5, 0, 0), right)))
    scene = Scene()
    scene.add_node("pair", mesh=mesh)
    frame = _render(renderer, scene)
    assert _dominant(_at(frame, -1.5)) == _dominant(_at(frame, 1.5)) == "red"
    scene.materials.replace(scene.materials.id_of(right), _matte((0.05, 0.8, 0.05)))
    frame = _render(renderer, scene)
    assert _dominant(_at(frame, -1.5)) == "red"
    assert _dominant(_at(frame, 1.5)) == "green"
    assert right.base_color_factor == (0.8, 0.05, 0.05, 1.0)  # the loaded material is never changed
    # A fresh scene sharing the mesh (the next client) starts from the loaded materials.
    fresh = Scene()
    fresh.add_node("pair", mesh=mesh)
    assert _dominant(_at(_render(renderer, fresh), 1.5)) == "red"


def test_part_material_on_one_instance_only(renderer: Renderer) -> None:
    white = _matte((0.8, 0.8, 0.8))
    box = Mesh("box", (_box((0, 0, 0), white),))
    scene = Scene()
    a = scene.add_node("a", mesh=box, transform=_translation(-1.5, 0, 0))
    b = scene.add_node("b", mesh=box, transform=_translation(1.5, 0, 0))
    blue = scene.materials.create(_matte((0.05, 0.05, 0.8)))
    scene.set_part_material(b.id, 0, blue)
    frame = _render(renderer, scene)
    assert _dominant(_at(frame, 1.5)) == "blue"
    assert _dominant(_at(frame, -1.5)) == "none"
    scene.set_part_material(b.id, 0, None)
    scene.set_part_material(a.id, 0, blue)
    frame = _render(renderer, scene)
    assert _dominant(_at(frame, -1.5)) == "blue"
    assert _dominant(_at(frame, 1.5)) == "none"
    assert white.base_color_factor == (0.8, 0.8, 0.8, 1.0)


def test_levels_of_detail_take_their_base_parts_materials(renderer: Renderer) -> None:
    red, other = _matte((0.8, 0.05, 0.05)), _matte((0.8, 0.05, 0.05))
    fine = Mesh("fine", (_box((-1.5, 0, 0), red), _box((1.5, 0, 0), other)))
    # A coarse level with one part, on the loaded material of the base's part 1.
    coarse = Mesh("coarse", (_box((1.5, 0, 0), other),))
    fine.lods = (LodLevel(coarse, error=1e-3),)
    scene = Scene()
    node = scene.add_node("lod", mesh=fine)
    green = scene.materials.create(_matte((0.05, 0.8, 0.05)))
    scene.set_part_material(node.id, 1, green)
    frame = _render(renderer, scene)
    assert renderer.stats.triangles == coarse.triangle_count  # the coarse level is drawn ...
    assert _dominant(_at(frame, 1.5)) == "green"  # ... with the material of the part it stands for
    assert _dominant(_at(frame, -1.5)) == "none"


def test_unlit_draws_the_base_colour_exactly(renderer: Renderer) -> None:
    colour = (0.2, 0.5, 0.8)
    scene = Scene()
    scene.add_node("quad", mesh=_quad(Material(base_color_factor=(*colour, 1.0), unlit=True)))
    frame = _render(renderer, scene)
    expected = np.round(255 * np.array(colour) ** (1 / 2.2))
    np.testing.assert_allclose(frame[H // 2, W // 2], expected, atol=2)
    lit = Scene()
    lit.add_node("quad", mesh=_quad(Material(base_color_factor=(*colour, 1.0), metallic_factor=0.0)))
    assert np.abs(_render(renderer, lit)[H // 2, W // 2] - expected).max() > 10  # lighting shows


def _checker() -> NDArray[np.uint8]:
    """64x64: red left half, blue right half (cells 32 texels wide)."""
    image = np.zeros((64, 64, 4), np.uint8)
    image[:, :32] = (255, 0, 0, 255)
    image[:, 32:] = (0, 0, 255, 255)
    return image


def test_uv_scale_and_offset_move_the_texture(renderer: Renderer) -> None:
    texture = _checker()
    camera = Camera.look_at((0, 0, 3), (0, 0, 0), fov=50)
    # The quad spans -1..1; x = -0.75 is u = 0.125, x = -0.25 is u = 0.375, x = 0.25 is u = 0.625.
    columns = {x: int(W / 2 + x / (3 * np.tan(np.radians(25))) * (H / 2)) for x in (-0.75, -0.25, 0.25)}

    def colours(**uv: tuple[float, float]) -> list[str]:
        material = Material(base_color_texture=texture, unlit=True, **uv)  # type: ignore[arg-type]
        scene = Scene()
        scene.add_node("quad", mesh=_quad(material))
        frame = _render(renderer, scene, camera)
        return [_dominant(frame[H // 2, c]) for c in columns.values()]

    assert colours() == ["red", "red", "blue"]
    assert colours(uv_offset=(0.5, 0.0)) == ["blue", "blue", "red"]  # u' = u + 0.5, wrapping
    assert colours(uv_scale=(2.0, 1.0)) == ["red", "blue", "red"]  # u' = 2u: the pattern twice


def test_textures_of_a_new_material_upload_on_first_use(renderer: Renderer) -> None:
    plain = Material(base_color_factor=(1.0, 1.0, 1.0, 1.0), unlit=True)
    scene = Scene()
    node = scene.add_node("quad", mesh=_quad(plain))
    assert _dominant(_render(renderer, scene)[H // 2, W // 2 - 10]) == "none"
    textured = scene.materials.create(Material(base_color_texture=_checker(), unlit=True))
    scene.set_part_material(node.id, 0, textured)
    frame = _render(renderer, scene)
    assert _dominant(frame[H // 2, W // 2 - 10]) == "red"
    assert _dominant(frame[H // 2, W // 2 + 10]) == "blue"


# -- lights --------------------------------------------------------------------------------------------


def _translation(x: float, y: float, z: float) -> NDArray[np.float64]:
    matrix = np.eye(4)
    matrix[:3, 3] = (x, y, z)
    return matrix


def _aimed(position: tuple[float, float, float], forward: tuple[float, float, float]) -> NDArray[np.float64]:
    """A transform at ``position`` whose -Z axis points along ``forward``."""
    matrix = _translation(*position)
    matrix[:3, :3] = _rotation(forward)
    return matrix


def _rotation(forward: tuple[float, float, float]) -> NDArray[np.float64]:
    from openrr.render.camera import quat_to_matrix

    return quat_to_matrix(look_rotation(np.array(forward, dtype=np.float64)))


def _lit_sphere(renderer: Renderer, light: Light | None, transform: NDArray[np.float64]) -> Frame:
    """A grey sphere at the origin, in the dark but for ``light`` on a node at ``transform``."""
    renderer.lights = []
    renderer.ambient = Hemisphere((0.02, 0.02, 0.02), (0.02, 0.02, 0.02))
    scene = Scene()
    scene.add_node("ball", mesh=_sphere(_matte((0.7, 0.7, 0.7))))
    lamp = scene.add_node("lamp", transform=transform)
    if light is not None:
        scene.set_component(lamp.id, light.kind, light)
    return _render(renderer, scene)


def test_point_light_lights_the_side_it_faces(renderer: Renderer) -> None:
    at_right = _translation(3, 0, 0)
    dark = _lit_sphere(renderer, None, at_right)
    lit = _lit_sphere(renderer, Light("PointLight", intensity=20.0), at_right)
    right, left = int(_at(lit, 0.85)[0]), int(_at(lit, -0.85)[0])
    assert right > left + 60
    assert right > int(_at(dark, 0.85)[0]) + 60
    assert abs(left - int(_at(dark, -0.85)[0])) <= 2  # the far side stays dark
    # A range shorter than the distance to the sphere (2 units) lights nothing; a longer one does.
    short = _lit_sphere(renderer, Light("PointLight", intensity=20.0, range=1.5), at_right)
    assert abs(int(_at(short, 0.85)[0]) - int(_at(dark, 0.85)[0])) <= 2
    long = _lit_sphere(renderer, Light("PointLight", intensity=20.0, range=6.0), at_right)
    assert int(_at(long, 0.85)[0]) > int(_at(dark, 0.85)[0]) + 40


def test_spot_light_lights_inside_its_cone_only(renderer: Renderer) -> None:
    dark = _lit_sphere(renderer, None, np.eye(4))
    spot = Light("SpotLight", intensity=40.0, inner_cone_angle=4.0, outer_cone_angle=8.0)
    lit = _lit_sphere(renderer, spot, _aimed((0, 0, 4), (0, 0, -1)))  # from the camera's side
    assert int(_at(lit, 0.0)[0]) > int(_at(dark, 0.0)[0]) + 60  # the middle: inside the cone
    assert abs(int(_at(lit, 0.8)[0]) - int(_at(dark, 0.8)[0])) <= 2  # 13 degrees off: outside
    away = _lit_sphere(renderer, spot, _aimed((0, 0, 4), (0, 1, 1)))  # aimed up and back, past the sphere
    assert abs(int(_at(away, 0.0)[0]) - int(_at(dark, 0.0)[0])) <= 2


def test_directional_light_shines_along_its_entitys_minus_z(renderer: Renderer) -> None:
    light = Light("DirectionalLight", intensity=3.0)
    towards_minus_x = _lit_sphere(renderer, light, _aimed((5, 5, 5), (-1, 0, 0)))
    assert int(_at(towards_minus_x, 0.85)[0]) > int(_at(towards_minus_x, -0.85)[0]) + 60
    towards_plus_x = _lit_sphere(renderer, light, _aimed((5, 5, 5), (1, 0, 0)))
    assert int(_at(towards_plus_x, -0.85)[0]) > int(_at(towards_plus_x, 0.85)[0]) + 60


def test_at_most_max_lights_reach_the_shader() -> None:
    from openrr.model.components import WorldLight

    light = WorldLight(0, "SpotLight", (0, 0, 0), (0, 0, -1), (1, 1, 1), 0.0, 0.9, 0.95)
    uniforms = punctual_uniforms([light] * (MAX_PUNCTUAL + 3))
    assert np.frombuffer(uniforms["u_punctual_count"], np.int32)[0] == MAX_PUNCTUAL
    cones = np.frombuffer(uniforms["u_punctual_cone"], np.float32).reshape(-1, 2)
    np.testing.assert_allclose(cones[0], (0.95, 0.95 + 1e-4), atol=1e-6)  # inner kept above outer


# -- skies ---------------------------------------------------------------------------------------------


def _mirror_ball(renderer: Renderer, sky_name: str | None) -> tuple[Frame, Scene]:
    scene = Scene()
    chrome = Material(base_color_factor=(0.95, 0.95, 0.95, 1.0), metallic_factor=1.0, roughness_factor=0.05)
    scene.add_node("ball", mesh=_sphere(chrome, subdivisions=4))
    scene.sky = None if sky_name is None else builtin_sky(sky_name)
    return _render(renderer, scene), scene


def test_sky_is_the_background_and_is_reflected(renderer: Renderer) -> None:
    ball = np.zeros((H, W), bool)
    ball[H // 2 - 15 : H // 2 + 15, W // 2 - 15 : W // 2 + 15] = True
    frames = {name: _mirror_ball(renderer, name)[0] for name in ("sunset", "overcast", "night")}
    for a, b in (("sunset", "overcast"), ("overcast", "night"), ("sunset", "night")):
        assert np.abs(frames[a][ball].mean(axis=0) - frames[b][ball].mean(axis=0)).max() > 20
    assert frames["overcast"][ball].mean() > frames["night"][ball].mean() + 40  # a bright sky, bright ball
    # The background: the sky along each pixel's view direction.
    camera = Camera.look_at((0, 0, 6), (0, 0, 0), fov=50)
    for name, frame in frames.items():
        sky = builtin_sky(name)
        for x, y in ((5, 5), (W - 6, 30), (20, H - 6), (W // 2, 3)):
            ndc = np.array([(x + 0.5) / W * 2 - 1, 1 - (y + 0.5) / H * 2])
            tan = np.tan(np.radians(camera.fov / 2))
            direction = camera.forward + ndc[0] * tan * W / H * camera.right + ndc[1] * tan * camera.up
            expected = 255 * np.clip(sky.radiance(direction / np.linalg.norm(direction)), 0, 1) ** (1 / 2.2)
            np.testing.assert_allclose(frame[y, x], expected, atol=14, err_msg=f"{name} at {(x, y)}")


def test_no_sky_and_the_default_sky_keep_the_classic_look(renderer: Renderer) -> None:
    renderer.background = Background()  # the gradient
    none, _ = _mirror_ball(renderer, None)
    default, _ = _mirror_ball(renderer, "default")
    np.testing.assert_array_equal(none, default)
    assert none[2, 2].tolist() != none[H - 3, 2].tolist()  # still the gradient


def test_cube_map_face_shows_along_its_axis(renderer: Renderer) -> None:
    faces = [np.full((8, 8, 4), (0, 0, 255, 255), np.uint8) for _ in range(6)]
    faces[0][:] = (255, 0, 0, 255)  # +X
    scene = Scene()
    scene.sky = sky_from_faces("red +X", faces)
    for forward, colour in (((1, 0, 0), "red"), ((-1, 0, 0), "blue"), ((0, 0, -1), "blue")):
        camera = Camera((0, 0, 0), look_rotation(np.array(forward, dtype=np.float64)), fov=40)
        assert _dominant(_render(renderer, scene, camera)[H // 2, W // 2]) == colour
