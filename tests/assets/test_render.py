"""Converted assets draw the picture their source draws (moderngl/EGL; llvmpipe here).

Frames are small and compared by mean absolute difference, never hashes: the asset stores normals in
8 bits, so shading may move by a unit here and there, and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from openrr.assets.convert import convert_model
from openrr.model.loader import load_model
from openrr.model.lod import LOD_RATIOS
from openrr.model.scene import Scene
from openrr.render.camera import Camera
from openrr.render.renderer import Background, Renderer
from tests.assets import models
from tests.render import fixtures

W, H = 160, 120


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer(W, H) as r:
        r.background = Background((0.5, 0.5, 0.5), None)
        yield r


def draw(renderer: Renderer, scene: Scene, camera: Camera) -> NDArray[np.int64]:
    renderer.set_scene(scene)
    frame = renderer.render(camera).astype(np.int64)
    renderer.set_scene(None)
    return frame


def converted(source: Path, out: Path, settings: str | None = None) -> Scene:
    if settings is not None:
        source.with_name(source.stem + ".ConversionSettings.json").write_text(settings)
    return load_model(convert_model(source, out, source.stem, None).asset_path)


@pytest.mark.parametrize(
    "camera", [Camera.look_at((0, 0, 6), (0, 0, 0), fov=50), Camera.look_at((3, 2, 4), (0, 0, 0))]
)
def test_two_node_glb_looks_the_same(tmp_path: Path, renderer: Renderer, camera: Camera) -> None:
    source = fixtures.two_node_glb(tmp_path)
    raw = draw(renderer, load_model(source), camera)
    asset = draw(renderer, converted(source, tmp_path / "out"), camera)
    assert np.abs(raw - asset).mean() < 0.5
    assert (np.abs(raw - asset) > 24).mean() < 0.002  # no region differs, at most a few edge pixels


def test_textured_gltf_looks_the_same(tmp_path: Path, renderer: Renderer) -> None:
    source = fixtures.textured_gltf(tmp_path)
    camera = Camera.look_at((0.5, 0.3, 3), (0, 0, 0), fov=60)
    raw = draw(renderer, load_model(source), camera)
    asset = draw(renderer, converted(source, tmp_path / "out"), camera)
    assert np.abs(raw - asset).mean() < 0.5


def test_coordinate_settings_move_the_picture_as_asked(tmp_path: Path, renderer: Renderer) -> None:
    """Scaled by 2 and seen from twice as far, the model covers the same pixels."""
    source = fixtures.two_node_glb(tmp_path)
    raw = draw(renderer, load_model(source), Camera.look_at((0, 0, 6), (0, 0, 0), fov=50))
    scaled = converted(source, tmp_path / "out", '{"scaling": 2}')
    asset = draw(renderer, scaled, Camera.look_at((0, 0, 12), (0, 0, 0), fov=50))
    assert np.abs(raw - asset).mean() < 1.0


def test_levels_of_detail_look_like_the_full_mesh(tmp_path: Path, renderer: Renderer) -> None:
    scene = converted(models.sphere_glb(tmp_path, 7), tmp_path / "out")
    mesh = scene.meshes()[0]
    assert len(mesh.lods) == len(LOD_RATIOS)
    camera = Camera.look_at((0, 0, 4), (0, 0, 0))
    node = scene.roots[0]
    full = Scene()
    full.add_node("full", mesh=type(mesh)(mesh.name, mesh.primitives), transform=node.transform)
    reference = draw(renderer, full, camera)
    for level in mesh.lods:
        coarse = Scene()
        coarse.add_node("coarse", mesh=level.mesh, transform=node.transform)
        assert np.abs(draw(renderer, coarse, camera) - reference).mean() < 2.0


def test_unlit_materials_show_their_colour(tmp_path: Path, renderer: Renderer) -> None:
    source = fixtures.two_node_glb(tmp_path)
    scene = converted(source, tmp_path / "out", '{"unlitMaterials": true}')
    frame = draw(renderer, scene, Camera.look_at((0, 0, 6), (0, 0, 0), fov=50))
    red = (frame[..., 0] > 200) & (frame[..., 1] < 40) & (frame[..., 2] < 40)
    # Unlit: the whole face is the material's red, however the lights fall (lit, it shades to dark).
    x = int(W * 0.5 - W * 0.19)
    assert red[H // 2 - 5 : H // 2 + 5, x - 3 : x + 3].all()
    column = frame[H // 2 - 10 : H // 2 + 10, x, 0]
    assert column.max() - column.min() < 25


def test_point_clouds_show_as_coloured_points(tmp_path: Path, renderer: Renderer) -> None:
    lines = "\n".join(f"{x} {y} 0 255 0 0" for x in np.linspace(-1, 1, 40) for y in np.linspace(-1, 1, 40))
    scene = converted(models.xyz_file(tmp_path, lines), tmp_path / "out")
    frame = draw(renderer, scene, Camera.look_at((0, 0, 4), (0, 0, 0)))
    red = (frame[..., 0] > 100) & (frame[..., 0] > 2 * frame[..., 1] + 20)
    assert red[H // 2 - 20 : H // 2 + 20, W // 2 - 20 : W // 2 + 20].mean() > 0.5
    assert not red[:5].any()
    assert not red[:, :10].any()


def test_a_material_override_shows_in_the_picture(tmp_path: Path, renderer: Renderer) -> None:
    """MaterialOverrides.json turns the red box unlit green; the blue sphere, not named, stays as it was."""
    source = fixtures.two_node_glb(tmp_path)
    camera = Camera.look_at((0, 0, 6), (0, 0, 0), fov=50)
    before = draw(renderer, converted(source, tmp_path / "before"), camera)
    source.with_name("two_nodes.MaterialOverrides.json").write_text(
        '[{"name": "Red", "albedoColor": {"r": 0, "g": 1, "b": 0}, "unlit": true}]'
    )
    after = draw(renderer, converted(source, tmp_path / "after"), camera)
    x = int(W * 0.5 - W * 0.19)
    box = after[H // 2 - 5 : H // 2 + 5, x - 3 : x + 3]
    assert (box[..., 1] > 200).all()
    assert (box[..., 0] < 40).all()
    assert (box[..., 2] < 40).all()
    assert (before[H // 2 - 5 : H // 2 + 5, x - 3 : x + 3, 0] > 100).all()  # red before
    sphere = slice(int(W * 0.5 + W * 0.15), int(W * 0.5 + W * 0.23))
    blue = before[H // 2 - 5 : H // 2 + 5, sphere]
    assert (blue[..., 2] > 2 * blue[..., 0] + 20).all()
    assert np.abs(after[H // 2 - 5 : H // 2 + 5, sphere] - before[H // 2 - 5 : H // 2 + 5, sphere]).max() < 3
