"""The OpenUSD reader on real files (Blender's crates, a guc text stage with a texture, a Blender USDZ with
textures inside; tests/data/formats/usd/SOURCE.md) and on stages written here for one feature each.

Expected values come from the files themselves: counts and factors are read from the layers' text
(``Sdf`` exports a crate or a package's layer as ``.usda`` text, uncomposed), textures are decoded by
Pillow straight from the files, and pictures are drawn by the real renderer (moderngl/EGL).
"""

from __future__ import annotations

import importlib
import io
import json
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
from numpy.typing import NDArray

from openrr.assets.convert import convert_model
from openrr.assets.job import Job
from openrr.assets.readers import Source, read_input
from openrr.model.loader import load_model
from openrr.model.metadata import MetadataKeeper
from openrr.model.scene import Node, Scene
from openrr.render.camera import Camera
from openrr.render.renderer import Background, Renderer

pxr_sdf = importlib.import_module("pxr.Sdf")  # usd-core: the formats extra, which scripts/setup installs

DATA = Path(__file__).resolve().parent.parent / "data" / "formats" / "usd"
W, H = 160, 120
GREY = (128, 128, 128)


def read(path: Path) -> tuple[Source, Job]:
    job = Job(log=lambda line: None)
    return read_input(job, path, path.suffix.lower(), MetadataKeeper()), job


def layer_text(path: Path | str) -> str:
    """The layer's own text, uncomposed (a crate or a package's root layer too)."""
    return str(pxr_sdf.Layer.FindOrOpen(str(path)).ExportToString())


def triangles_in(text: str) -> int:
    """Triangles a fan makes of every face of every mesh in the text: faceVertexCounts summed (n - 2)."""
    total = 0
    for counts in re.findall(r"int\[\] faceVertexCounts = \[([^\]]*)\]", text):
        total += sum(int(c) - 2 for c in counts.split(",") if int(c) >= 3)
    return total


def path_of(scene: Scene, node: Node) -> list[str]:
    names = [node.name]
    while node.parent is not None:
        node = scene.node(node.parent)
        names.append(node.name)
    return names[::-1]


def mesh_nodes(scene: Scene) -> list[Node]:
    return [n for n in scene.nodes() if n.mesh is not None]


def world_bounds(scene: Scene) -> NDArray[np.float64]:
    bounds = scene.bounds()
    assert bounds is not None
    return bounds


# --- real files ------------------------------------------------------------------------------------------


def test_blender_crate_is_upright_with_its_hierarchy_and_metadata() -> None:
    path = DATA / "bear.usdc"
    text = layer_text(path)
    source, job = read(path)
    scene = source.scene
    assert source.generator == "Blender v4.5.3 LTS"
    assert source.format_version == "0.8.0"  # the crate header's
    assert [path_of(scene, n) for n in mesh_nodes(scene)] == [["root", "bear", "bear"]]
    assert scene.polygon_count == triangles_in(text) == 3968
    # Z-up: the file's extent (x, y, z) becomes (x, z, -y) in openrr's Y-up
    low, high = (np.array(v, float) for v in re.findall(r"\(([-\d.e]+), ([-\d.e]+), ([-\d.e]+)\)", text)[:2])
    np.testing.assert_allclose(
        world_bounds(scene), [[low[0], low[2], -high[1]], [high[0], high[2], -low[1]]], atol=1e-4
    )
    root, xform = scene.node("root"), scene.roots[0].children[0]
    assert json.loads(root.metadata["Blender"]) == {"generated": True}  # customData
    assert scene.node(xform).metadata == {"userProperties:blender:object_name": "bear"}
    # the mesh's custom int[] of simulation indices is data, not metadata
    assert "tetraIndices" not in str(mesh_nodes(scene)[0].metadata)
    assert not job.warnings


def test_blender_usd_without_a_default_prim_converts_its_root_prims() -> None:
    path = DATA / "spiky.usd"
    source, _ = read(path)
    assert [path_of(source.scene, n) for n in mesh_nodes(source.scene)] == [["Cube", "Cube"]]
    assert source.scene.polygon_count == triangles_in(layer_text(path)) == 48
    assert source.generator == "Blender v3.1.2"


def test_guc_text_stage_keeps_its_materials_and_texture() -> None:
    path = DATA / "TextureCoordinateTest.usda"
    text = path.read_text()
    source, job = read(path)
    scene = source.scene
    assert source.format_version == "1.0"
    assert source.generator == "Converted from glTF with guc 0.2"
    meshes = mesh_nodes(scene)
    assert sorted(path_of(scene, n)[-3] for n in meshes) == sorted(
        ["BackPlane", "BottomLeftObj", "BottomRightObj", "TopLeftObj", "TopRightObj"]
    )
    assert all(path_of(scene, n)[:3] == ["Asset", "Scenes", "Scene"] for n in meshes)
    assert scene.polygon_count == triangles_in(text) == 10
    template = np.asarray(PIL.Image.open(DATA / "TextureCoordinateTemplate.png").convert("RGBA"))
    # guc wrote each glTF baseColorFactor as the UsdUVTexture's scale
    scales = dict(
        re.findall(r'Material "(\w+)Mat"(?:(?!def Material).)*?inputs:scale = \(([^)]*)\)', text, re.S)
    )
    assert set(scales) == {"BottomLeft", "BottomRight", "TopLeft", "TopRight"}
    for node in meshes:
        corner = path_of(scene, node)[-3].removesuffix("Obj")
        assert node.mesh is not None
        (primitive,) = node.mesh.primitives
        material = primitive.material
        assert material.name == f"{corner}Mat"
        if corner == "BackPlane":
            assert material.base_color_texture is None
            assert material.base_color_factor == pytest.approx((0.16, 0.16, 0.16, 1.0))
            continue
        expected = [float(c) for c in scales[corner].split(",")]
        assert material.base_color_factor == pytest.approx(expected)
        assert material.base_color_texture is not None
        np.testing.assert_array_equal(material.base_color_texture, template)
        assert primitive.uvs is not None
    assert not job.warnings


def test_blender_usdz_reads_its_textures_from_the_package() -> None:
    path = DATA / "RoughnessTest.usdz"
    text = layer_text(path)
    source, job = read(path)
    scene = source.scene
    assert source.generator == "Blender v3.2.2"
    assert scene.polygon_count == triangles_in(text)
    meshes = {path_of(scene, n)[-2]: n.mesh for n in mesh_nodes(scene)}
    assert sorted(meshes) == ["Const000", "Const033", "Const066", "Tex000", "Tex033", "Tex066"]
    with zipfile.ZipFile(path) as package:
        spec = np.asarray(PIL.Image.open(io.BytesIO(package.read("0/roughness-spec.png"))).convert("RGBA"))
        packed = np.asarray(PIL.Image.open(io.BytesIO(package.read("0/roughness.tga"))).convert("RGBA"))
    constants = dict(re.findall(r'Material "(Const\d+)".*?float inputs:roughness = ([\d.]+)', text, re.S))
    channels = dict(
        re.findall(r'Material "(Tex\d+)".*?inputs:roughness.connect = <[^>]*outputs:([rgb])>', text, re.S)
    )
    assert len(constants) == len(channels) == 3
    for name, mesh in meshes.items():
        assert mesh is not None
        (primitive,) = mesh.primitives
        material = primitive.material
        assert material.metallic_factor == pytest.approx(0.6)
        assert material.double_sided  # the gprims' doubleSided
        assert material.base_color_texture is not None
        np.testing.assert_array_equal(material.base_color_texture, spec)
        assert material.alpha_mode == "BLEND"  # opacity from the diffuse texture's alpha
        if name in constants:
            assert material.metallic_roughness_texture is None
            assert material.roughness_factor == pytest.approx(float(constants[name]))
        else:  # the connected channel, packed as glTF's roughness (green)
            assert material.metallic_roughness_texture is not None
            channel = "rgb".index(channels[name])
            np.testing.assert_array_equal(material.metallic_roughness_texture[:, :, 1], packed[:, :, channel])
    assert not job.warnings


def test_usdz_converts_to_an_asset_with_its_textures(tmp_path: Path) -> None:
    path = DATA / "RoughnessTest.usdz"
    result = convert_model(path, tmp_path / "out", "roughness", None)
    info = result.info["inputInfo"]
    assert (info["sourceAssetFormat"], info["sourceAssetGenerator"]) == (
        "OpenUSD package (USDZ)",
        "Blender v3.2.2",
    )
    statistics = result.info["inputStatistics"]
    assert (statistics["numMeshes"], statistics["numMaterial"]) == (6, 6)
    assert statistics["numFaces"] == triangles_in(layer_text(path))
    scene = load_model(result.asset_path)
    materials = {p.material.name: p.material for mesh in scene.meshes() for p in mesh.primitives}
    assert all(m.base_color_texture is not None for m in materials.values())
    assert sorted(n for n, m in materials.items() if m.metallic_roughness_texture is not None) == [
        "Tex000",
        "Tex033",
        "Tex066",
    ]


# --- pictures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer(W, H) as r:
        r.background = Background((0.5, 0.5, 0.5), None)
        yield r


def converted(source: Path, tmp_path: Path) -> Scene:
    result = convert_model(source, tmp_path / "out", source.stem, None)
    return load_model(result.asset_path)


def draw(renderer: Renderer, scene: Scene, camera: Camera) -> NDArray[np.int64]:
    renderer.set_scene(scene)
    frame = renderer.render(camera).astype(np.int64)
    renderer.set_scene(None)
    return frame


def pixel(camera: Camera, point: Any) -> tuple[int, int]:
    """(row, column) of a world point in a W x H frame."""
    clip = camera.projection_matrix(W / H, 0.1, 100.0) @ camera.view_matrix() @ np.append(point, 1.0)
    x, y = clip[:2] / clip[3]
    return int((1 - y) / 2 * H), int((x + 1) / 2 * W)


def test_converted_bear_stands_in_the_middle_of_the_picture(tmp_path: Path, renderer: Renderer) -> None:
    scene = converted(DATA / "bear.usdc", tmp_path)
    low, high = world_bounds(scene)
    centre = (low + high) / 2
    camera = Camera.look_at(tuple(centre + np.array([0.0, 0.0, 14.0])), tuple(centre), fov=50)
    frame = draw(renderer, scene, camera)
    body = frame[pixel(camera, centre)]
    assert np.abs(body - GREY).max() > 10  # the bear covers the centre, in its grey default material
    assert np.ptp(body) < 12  # grey, no colour
    above = pixel(camera, [centre[0], high[1] + 1.0, centre[2]])  # a metre above its head: background
    assert np.abs(frame[above] - GREY).max() <= 2
    rows = np.flatnonzero((np.abs(frame - GREY).max(axis=2) > 6).any(axis=1))
    assert pixel(camera, [0, high[1], centre[2]])[0] - 2 <= rows.min()  # upright: its top where Y-up says


def test_converted_texture_test_shows_its_four_colours(tmp_path: Path, renderer: Renderer) -> None:
    shutil.copy(DATA / "TextureCoordinateTest.usda", tmp_path)
    shutil.copy(DATA / "TextureCoordinateTemplate.png", tmp_path)
    scene = converted(tmp_path / "TextureCoordinateTest.usda", tmp_path)
    camera = Camera.look_at((0, 0, 4), (0, 0, 0), fov=50)
    frame = draw(renderer, scene, camera)
    colours = {}
    for name in ("TopLeftObj", "TopRightObj", "BottomLeftObj", "BottomRightObj"):
        node = scene.node(name)
        bounds = scene.world_bounds(node.children[0]) if node.mesh is None else scene.world_bounds(node.id)
        if bounds is None:
            bounds = scene.world_bounds(scene.node(node.children[0]).children[0])
        assert bounds is not None
        row, column = pixel(camera, (bounds[0] + bounds[1]) / 2)
        colours[name] = frame[row - 2 : row + 3, column - 2 : column + 3].reshape(-1, 3).mean(axis=0)
    # the texture is mostly white: each quad shows its factor (guc's scale): yellow, red, blue, green
    r, g, b = colours["TopLeftObj"]
    assert r > 150
    assert g > 150
    assert b < 80
    r, g, b = colours["TopRightObj"]
    assert r > 150
    assert g < 110
    assert b < 80
    r, g, b = colours["BottomLeftObj"]
    assert b > 150
    assert r < 80
    r, g, b = colours["BottomRightObj"]
    assert g > 150
    assert r < 80
    assert b < 80
