"""The builtin sample scene (``builtin://sample``): generated, deterministic, with the parts, materials
and hierarchy it promises; loaded by ``load_model`` and through the source policy without a file or the
network; rendered by the real renderer and by a real render server over the data channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from openrr.api.v1.wire import parse_models
from openrr.client.connection import connect
from openrr.errors import InvalidInput
from openrr.model.budget import Allowance
from openrr.model.builtin import sample_scene
from openrr.model.errors import ModelLoadError
from openrr.model.loader import load_model
from openrr.model.scene import Scene
from openrr.model.sources import ModelSourcePolicy
from openrr.protocol.builtin_models import BUILTIN_MODELS
from openrr.render.camera import Camera
from openrr.render.renderer import Background, Renderer
from tests.render.live import live_server

SAMPLE = "builtin://sample"
PARTS = {"floor", "spur gear", "flange", "torus", "rounded box", "vase", "glass sphere"}


def distinct_colours(image: NDArray[np.uint8]) -> int:
    """Colours that cover at least 0.5 % of the picture, quantised to 16 levels per channel."""
    quantised = (image[..., :3] // 16).reshape(-1, 3)
    _, counts = np.unique(quantised, axis=0, return_counts=True)
    return int((counts >= 0.005 * len(quantised)).sum())


def test_the_sample_scene_has_its_parts_and_hierarchy() -> None:
    scene = load_model(SAMPLE)
    names = {node.name for node in scene.nodes()}
    assert names >= PARTS | {"sample", "machined parts", "showcase"}
    assert 50_000 <= scene.polygon_count <= 200_000
    gear = scene.node("spur gear")
    assert gear.parent == scene.node("machined parts").id
    assert gear.metadata == {"kind": "part", "teeth": 24, "material": "steel"}
    assert [root.name for root in scene.roots] == ["sample"]
    bounds = scene.bounds()
    assert bounds is not None
    low, high = bounds
    assert low[1] == pytest.approx(0.0, abs=1e-6)  # everything stands on the floor
    assert (high - low).min() > 0.3


def test_the_sample_shows_what_the_renderer_does() -> None:
    scene = sample_scene()
    materials = {p.material.name: p.material for m in scene.meshes() for p in m.primitives}
    assert materials["glass"].alpha_mode == "BLEND"
    assert materials["glass"].base_color_factor[3] < 1.0
    assert materials["polished copper"].metallic_factor == 1.0
    assert materials["red plastic"].metallic_factor == 0.0
    assert {m.roughness_factor for m in materials.values()} >= {0.15, 0.8}
    texture = materials["checker floor"].base_color_texture
    assert texture is not None
    assert len(np.unique(texture.reshape(-1, 4), axis=0)) >= 2
    vase = scene.node("vase").mesh
    assert vase is not None
    colours = vase.primitives[0].colors
    assert colours is not None
    assert np.ptp(colours[:, :3], axis=0).max() > 0.5  # a real gradient, not one colour


def test_triangles_face_their_normals() -> None:
    for mesh in sample_scene().meshes():
        for part in mesh.primitives:
            corners = part.positions[part.indices].astype(np.float64)
            face = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
            assert part.normals is not None
            normal = part.normals[part.indices].mean(axis=1)
            real = np.linalg.norm(face, axis=1) > 1e-12  # the poles of a lathe are degenerate
            assert ((face[real] * normal[real]).sum(axis=1) > 0).all(), mesh.name


def test_generation_is_deterministic() -> None:
    first, second = sample_scene(), sample_scene()
    for a, b in zip(first.meshes(), second.meshes(), strict=True):
        for p, q in zip(a.primitives, b.primitives, strict=True):
            np.testing.assert_array_equal(p.positions, q.positions)
            np.testing.assert_array_equal(p.indices, q.indices)


def test_unknown_builtin_names_and_budgets_fail_clearly() -> None:
    with pytest.raises(
        ModelLoadError, match="no builtin model 'builtin://teapot': openrr has builtin://sample"
    ):
        load_model("builtin://teapot")
    with pytest.raises(ModelLoadError, match="tiny allowance"):
        load_model(SAMPLE, allowance=Allowance(geometry_bytes=1000, geometry_limit="tiny allowance"))


def test_the_source_policy_and_the_control_plane_let_builtins_through(tmp_path: Path) -> None:
    policy = ModelSourcePolicy(roots=())  # no local files at all, and no network is asked
    assert policy.check(SAMPLE) == SAMPLE
    assert policy.guard(SAMPLE) == SAMPLE
    assert parse_models([SAMPLE, "models/car.arrAsset"]) == (SAMPLE, "models/car.arrAsset")
    assert set(BUILTIN_MODELS) == {SAMPLE}
    with pytest.raises(InvalidInput, match="not a builtin model"):
        parse_models(["builtin://teapot"])


def test_the_renderer_draws_it_from_above() -> None:
    scene: Scene = load_model(SAMPLE)
    with Renderer(320, 180) as renderer:
        renderer.background = Background((0.0, 0.0, 0.0), None)
        renderer.set_scene(scene)
        camera = Camera()
        camera.frame_from_above(scene.bounds(), 320 / 180)
        image = renderer.render(camera)
    lit = (image[..., :3].max(axis=2) > 12).mean()
    assert lit > 0.08  # framed by its bounding sphere, a wide flat showroom covers a part of the view
    assert distinct_colours(image) >= 8


async def test_a_render_server_loads_it_over_the_data_channel(tmp_path: Path) -> None:
    async with (
        live_server(tmp_path) as server,
        await connect("127.0.0.1", server.port, server.token()) as conn,
    ):
        await conn.wait_frames(2, timeout=20)
        before = conn.latest_image()
        assert before is not None
        loaded = await conn.load_model(SAMPLE, "sample")
        assert loaded["polygons"] == sample_scene().polygon_count
        assert loaded["nodes"] == len(sample_scene())
        # Frames rendered after the load show the scene: many colours where there was the empty sky.
        await conn.wait_frames(conn.frames_received + 6, timeout=30)
        after = conn.latest_image()
        assert after is not None
        assert distinct_colours(after) > distinct_colours(before)
        assert distinct_colours(after) >= 8
        with pytest.raises(Exception, match="no builtin model"):
            await conn.load_model("builtin://teapot")
