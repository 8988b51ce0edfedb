"""Scene model and glTF loading (files, http, errors). No GL context needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from openrr.model.errors import ModelLoadError
from openrr.model.loader import load_model
from openrr.model.mesh import Mesh, Primitive
from openrr.model.scene import Scene
from tests.render import fixtures


def _triangle() -> Mesh:
    return Mesh(
        "tri",
        (
            Primitive(
                positions=np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32),
                indices=np.array([[0, 1, 2]], np.uint32),
            ),
        ),
    )


def test_glb_keeps_names_hierarchy_transforms_and_materials(tmp_path: Path) -> None:
    progress: list[tuple[float, str]] = []
    scene = load_model(fixtures.two_node_glb(tmp_path), progress=lambda f, m: progress.append((f, m)))
    root = scene.node("Scene")
    box, sphere = scene.node("RedBox"), scene.node("BlueSphere")
    assert root.parent is None
    assert root.mesh is None
    assert box.parent == root.id
    assert sphere.parent == root.id
    assert sorted(root.children) == sorted([box.id, sphere.id])
    np.testing.assert_allclose(box.transform[:3, 3], [fixtures.RED_X, 0, 0])
    np.testing.assert_allclose(scene.world_transform(sphere.id)[:3, 3], [fixtures.BLUE_X, fixtures.BLUE_Y, 0])
    assert box.mesh is not None
    assert sphere.mesh is not None
    red, blue = box.mesh.primitives[0], sphere.mesh.primitives[0]
    assert red.material.name == "Red"
    assert red.material.base_color_factor == (1.0, 0.0, 0.0, 1.0)
    assert blue.material.base_color_factor == (0.0, 0.0, 1.0, 1.0)
    assert red.material.metallic_factor == 0.0
    assert red.material.roughness_factor == pytest.approx(0.6)
    assert red.normals is None
    assert blue.normals is not None
    assert scene.polygon_count == box.mesh.triangle_count + sphere.mesh.triangle_count == 12 + 1280
    box_bounds = scene.world_bounds(box.id)
    assert box_bounds is not None
    np.testing.assert_allclose(box_bounds, [[-2, -0.5, -0.5], [-1, 0.5, 0.5]], atol=1e-6)
    fractions = [f for f, _ in progress]
    assert fractions[0] == 0.0
    assert fractions[-1] == 1.0
    assert fractions == sorted(fractions)


def test_gltf_with_external_buffer_and_png_texture(tmp_path: Path) -> None:
    scene = load_model(fixtures.textured_gltf(tmp_path))
    quad = scene.node("Quad")
    assert quad.mesh is not None
    primitive = quad.mesh.primitives[0]
    material = primitive.material
    assert material.name == "Striped"
    assert material.double_sided
    assert material.emissive_factor == pytest.approx((0.1, 0.1, 0.1))
    texture = material.base_color_texture
    assert texture is not None
    assert texture.shape == (16, 16, 4)
    assert texture.dtype == np.uint8
    assert tuple(texture[0, 0]) == fixtures.YELLOW
    assert tuple(texture[-1, 0]) == fixtures.CYAN
    assert primitive.uvs is not None  # glTF convention kept: v = 0 at the image top
    np.testing.assert_allclose(primitive.uvs[0], [0, 0])
    np.testing.assert_allclose(primitive.uvs[2], [1, 1])


def test_multi_primitive_mesh_stays_one_node(tmp_path: Path) -> None:
    scene = load_model(fixtures.multi_primitive_gltf(tmp_path))
    assert [n.name for n in scene.nodes()] == ["Holder", "Pair"]  # no synthetic per-primitive nodes
    pair = scene.node("Pair")
    assert pair.parent == scene.node("Holder").id
    assert pair.mesh is not None
    assert [p.material.name for p in pair.mesh.primitives] == ["A", "B"]
    assert pair.mesh.primitives[1].material.base_color_factor == (0.0, 1.0, 0.0, 1.0)
    np.testing.assert_allclose(pair.transform[:3, 3], [1, 2, 3])
    assert scene.polygon_count == 2


def test_load_over_http(tmp_path: Path) -> None:
    fixtures.two_node_glb(tmp_path)
    fixtures.textured_gltf(tmp_path)
    with fixtures.serve_directory(tmp_path) as url:
        glb = load_model(url + "two_nodes.glb")
        gltf = load_model(url + "quad.gltf")  # its .bin and .png come over http too
        with pytest.raises(ModelLoadError, match="HTTP 404"):
            load_model(url + "absent.glb")
        with pytest.raises(ModelLoadError, match="size limit"):
            load_model(url + "two_nodes.glb", max_bytes=1000)
    assert {n.name for n in glb.nodes()} == {"Scene", "RedBox", "BlueSphere"}
    quad = gltf.node("Quad").mesh
    assert quad is not None
    texture = quad.primitives[0].material.base_color_texture
    assert texture is not None
    assert tuple(texture[0, 0]) == fixtures.YELLOW


def test_unreachable_server_is_a_load_error() -> None:
    with pytest.raises(ModelLoadError, match="download failed"):
        load_model("http://127.0.0.1:9/model.glb", timeout=2)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (fixtures.broken_glb, "broken.glb: invalid glTF data"),
        (fixtures.missing_buffer_gltf, "missing or unreadable resource 'absent.bin'"),
        (fixtures.bad_indices_gltf, "out of range"),
        (lambda d: d / "absent.glb", "model file not found"),
        (lambda d: _write(d / "notes.txt", "hello"), "not a glTF file"),
        (lambda d: _write(d / "x.gltf", "[1, 2]"), "no 'asset'"),
    ],
)
def test_bad_models_raise_model_load_error(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(ModelLoadError, match=message) as caught:
        load_model(path)
    assert caught.value.message == str(caught.value)


def test_unsupported_scheme() -> None:
    with pytest.raises(ModelLoadError, match="unsupported model location"):
        load_model("ftp://example.com/model.glb")


def test_world_state_follows_hierarchy_visibility_and_colour() -> None:
    scene = Scene()
    mesh = _triangle()
    root = scene.add_node("root", transform=np.diag([2.0, 2.0, 2.0, 1.0]))
    child = scene.add_node("child", parent=root.id, mesh=mesh, transform=_translation(1, 0, 0))
    grandchild = scene.add_node("grandchild", parent=child.id, mesh=mesh, transform=_translation(0, 1, 0))
    np.testing.assert_allclose(scene.world_transform(grandchild.id)[:3, 3], [2, 2, 0])
    child_bounds = scene.world_bounds(child.id)
    assert child_bounds is not None
    np.testing.assert_allclose(child_bounds, [[2, 0, 0], [4, 2, 0]])
    assert scene.meshes() == [mesh]
    assert scene.polygon_count == 2
    revision = scene.state_revision
    root.visible = False
    root.color = (0, 1, 0, 1)
    assert scene.state_revision > revision
    state = scene.world()
    assert not state.visible[state.row[grandchild.id]]
    np.testing.assert_allclose(state.color[state.row[grandchild.id]], [0, 1, 0, 1])
    assert scene.bounds() is None
    assert scene.bounds(visible_only=False) is not None
    with pytest.raises(ValueError, match="finite 4x4 matrix"):
        child.transform = np.eye(3)
    with pytest.raises(ValueError, match=r"four values in 0\.\.1"):
        child.color = (2, 0, 0, 1)
    assert scene.remove_node(child.id) == [child.id, grandchild.id]
    assert len(scene) == 1
    assert root.children == []


def test_add_scene_copies_nodes_and_shares_meshes() -> None:
    model = Scene()
    top = model.add_node("top")
    model.add_node("leaf", parent=top.id, mesh=_triangle())
    world = Scene()
    anchor = world.add_node("anchor")
    world.add_node("other")
    (copy,) = world.add_scene(model, parent=anchor.id)
    leaf = world.node(copy.children[0])
    assert copy.parent == anchor.id
    assert leaf.name == "leaf"
    assert leaf.mesh is model.node("leaf").mesh
    assert copy.id == 2
    assert leaf.id == 3


def test_primitive_validation() -> None:
    with pytest.raises(ValueError, match="out of range"):
        Primitive(positions=np.zeros((1, 3), np.float32), indices=np.array([[0, 1, 2]], np.uint32))
    with pytest.raises(ValueError, match="normals"):
        Primitive(
            positions=np.zeros((3, 3), np.float32),
            indices=np.array([[0, 1, 2]], np.uint32),
            normals=np.zeros((2, 3), np.float32),
        )
    rgb = Primitive(
        positions=np.zeros((3, 3), np.float32),
        indices=np.array([[0, 1, 2]], np.uint32),
        colors=np.ones((3, 3), np.float32),
    )
    assert rgb.colors is not None
    assert rgb.colors.shape == (3, 4)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _translation(x: float, y: float, z: float) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = (x, y, z)
    return matrix
