"""glTF extensions real exporters write, on files those exporters wrote (tests/data/formats/gltf, SOURCE.md):
Draco (glTF-Transform), meshopt with its filters and mesh quantization (gltfpack, glTF-Transform),
texture transforms and unlit materials (glTF-Transform). Each is loaded through ``load_model`` and checked
against the uncompressed original they were all made from, then drawn by the real renderer (llvmpipe).
Hostile variants (corrupt streams, decompression bombs, unknown required extensions) are the real files
with their bytes or JSON changed.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import math
import random
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from openrr.assets.convert import convert_model
from openrr.model.arrasset.layout import Asset
from openrr.model.arrasset.reader import read_asset
from openrr.model.arrasset.writer import write_asset
from openrr.model.budget import Allowance
from openrr.model.errors import ModelLoadError
from openrr.model.loader import load_model
from openrr.model.scene import Scene
from openrr.render.camera import Camera
from openrr.render.renderer import Background, Renderer

DATA = Path(__file__).parents[1] / "data" / "formats" / "gltf"
W, H = 160, 120
# Pixels inside the four quadrants of the model (a 2x2 quad facing the camera, its texture red, green /
# blue, yellow from the top left), and one outside it.
QUADRANTS = {"top left": (40, 60), "top right": (40, 100), "bottom left": (80, 60), "bottom right": (80, 100)}
IMAGE = {"top left": "red", "top right": "green", "bottom left": "blue", "bottom right": "yellow"}
# (file, the extensions it must declare, how far quantization may move a vertex)
COMPRESSED = [
    ("draco.glb", {"KHR_draco_mesh_compression"}, 1e-3),
    ("draco-sequential.glb", {"KHR_draco_mesh_compression"}, 1e-3),
    ("meshopt-gltf-transform.glb", {"EXT_meshopt_compression", "KHR_mesh_quantization"}, 1e-3),
    ("gltfpack-cc.glb", {"EXT_meshopt_compression", "KHR_mesh_quantization", "KHR_texture_transform"}, 1e-3),
    ("gltfpack-vpf.glb", {"EXT_meshopt_compression", "KHR_texture_transform"}, 1e-3),
    ("gltfpack-quantized.glb", {"KHR_mesh_quantization", "KHR_texture_transform"}, 1e-3),
    ("quantize-gltf-transform.glb", {"KHR_mesh_quantization"}, 1e-3),
]


def read_glb(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    size = struct.unpack_from("<I", data, 12)[0]
    binary_size = struct.unpack_from("<I", data, 20 + size)[0]
    return json.loads(data[20 : 20 + size]), data[28 + size : 28 + size + binary_size]


def write_glb(path: Path, document: dict[str, Any], binary: bytes) -> Path:
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    chunks = (
        struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    )
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks)
    return path


def world_positions(scene: Scene) -> NDArray[np.float64]:
    points = []
    for node in scene.nodes():
        if node.mesh is not None:
            matrix = scene.world_transform(node.id)
            for primitive in node.mesh.primitives:
                p = primitive.positions.astype(np.float64)
                points.append(p @ matrix[:3, :3].T + matrix[:3, 3])
    return np.concatenate(points)


def primitive_of(scene: Scene) -> Any:
    (mesh,) = scene.meshes()
    (primitive,) = mesh.primitives
    return primitive


@pytest.fixture(scope="module")
def source() -> Scene:
    return load_model(DATA / "source.glb")


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer(W, H) as r:
        r.background = Background((0.5, 0.5, 0.5), None)
        yield r


def colours(renderer: Renderer, scene: Scene) -> dict[str, NDArray[np.int_]]:
    renderer.set_scene(scene)
    frame = renderer.render(Camera.look_at((0, 0, 3), (0, 0, 0), fov=60)).astype(int)
    found = {name: frame[y, x] for name, (y, x) in QUADRANTS.items()}
    found["outside"] = frame[2, 2]
    return found


def named(pixel: NDArray[np.int_]) -> str:
    """The texture colour a lit or unlit pixel shows (lighting dims it, never changes its hue)."""
    r, g, b = (int(c) for c in pixel)
    if r > 150 and g > 150 and b < 80:
        return "yellow"
    for name, (main, others) in {"red": (r, (g, b)), "green": (g, (r, b)), "blue": (b, (r, g))}.items():
        if main > 150 and max(others) < 80:
            return name
    return f"rgb{(r, g, b)}"


@pytest.mark.parametrize(("name", "extensions", "tolerance"), COMPRESSED)
def test_compressed_and_quantized_files_match_the_original(
    name: str, extensions: set[str], tolerance: float, source: Scene, renderer: Renderer
) -> None:
    document, _ = read_glb(DATA / name)
    assert extensions <= set(document["extensionsUsed"])  # the file really is what it is named for
    scene = load_model(DATA / name)
    assert scene.polygon_count == source.polygon_count == 512
    bounds, original = scene.bounds(), source.bounds()
    assert bounds is not None
    assert original is not None
    np.testing.assert_allclose(bounds, original, atol=tolerance)
    # Every vertex where the original has one (Draco and meshopt reorder them).
    got, want = world_positions(scene), world_positions(source)
    assert len(got) == len(want) == 289
    distances = np.linalg.norm(got[:, None, :] - want[None, :, :], axis=2).min(axis=1)
    assert distances.max() < tolerance
    primitive = primitive_of(scene)
    np.testing.assert_allclose(np.linalg.norm(primitive.normals, axis=1), 1.0, atol=0.02)
    material = primitive.material
    assert material.name == "quadrants"
    assert not material.unlit
    uvs = primitive.uvs * np.array(material.uv_scale) + np.array(material.uv_offset)
    np.testing.assert_allclose([uvs.min(axis=0), uvs.max(axis=0)], [[0, 0], [1, 1]], atol=2e-3)
    seen = colours(renderer, scene)
    assert {q: named(seen[q]) for q in QUADRANTS} == IMAGE
    np.testing.assert_allclose(seen["outside"], 128, atol=2)


def test_gltfpack_dequantizes_uvs_with_a_texture_transform() -> None:
    """gltfpack stores uvs as 16-bit integers and the scale back in KHR_texture_transform."""
    primitive = primitive_of(load_model(DATA / "gltfpack-cc.glb"))
    assert primitive.uvs.max() > 0.05
    assert primitive.uvs.max() < 0.07
    assert primitive.material.uv_scale == pytest.approx((16.003664, 16.003664))
    assert primitive.material.uv_rotation == 0.0


@pytest.mark.parametrize("name", ["texture-transform-unlit.gltf", "draco-external/draco-external.gltf"])
def test_texture_transform_rotates_and_unlit_keeps_the_texture_colours(name: str, renderer: Renderer) -> None:
    """A quarter turn (offset [0, 1], rotation pi/2): the image shows turned clockwise, in its own colours
    (unlit: no lighting dims them). The second file is the same model Draco-compressed in an external .bin."""
    scene = load_model(DATA / name)
    material = primitive_of(scene).material
    assert material.name == "quadrants"
    assert material.unlit
    assert material.uv_offset == (0.0, 1.0)
    assert material.uv_rotation == pytest.approx(math.pi / 2)
    seen = colours(renderer, scene)
    turned = {"top left": "blue", "top right": "red", "bottom left": "yellow", "bottom right": "green"}
    assert {q: named(seen[q]) for q in QUADRANTS} == turned
    for quadrant in QUADRANTS:  # unlit: exactly the texture's colours
        assert set(seen[quadrant].tolist()) <= {0, 255}


def test_texcoord_override_selects_the_uv_set(tmp_path: Path, renderer: Renderer) -> None:
    """KHR_texture_transform's texCoord names the set the texture uses: here TEXCOORD_1 holds the model's
    uvs and TEXCOORD_0 a small patch of the image (which paints it all one colour)."""
    for item in ("texture-transform-unlit.bin", "baseColor.png"):
        shutil.copy(DATA / item, tmp_path / item)
    document = json.loads((DATA / "texture-transform-unlit.gltf").read_text())
    # The model's 17 x 17 grid of vertices, its uvs squeezed into [0.2, 0.3] (not one point: a texture
    # sampled without uv derivatives reads its smallest mipmap).
    grid = np.stack(np.meshgrid(np.arange(17), np.arange(17)), axis=-1).reshape(-1, 2) / 16
    patch = base64.b64encode((0.2 + 0.1 * grid).astype("<f4").tobytes()).decode()
    document["buffers"].append(
        {"uri": f"data:application/octet-stream;base64,{patch}", "byteLength": 289 * 8}
    )
    document["bufferViews"].append({"buffer": 1, "byteOffset": 0, "byteLength": 289 * 8})
    document["accessors"].append(
        {"bufferView": len(document["bufferViews"]) - 1, "componentType": 5126, "count": 289, "type": "VEC2"}
    )
    attributes = document["meshes"][0]["primitives"][0]["attributes"]
    attributes["TEXCOORD_1"] = attributes["TEXCOORD_0"]
    attributes["TEXCOORD_0"] = len(document["accessors"]) - 1
    texture = document["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]
    path = tmp_path / "override.gltf"
    path.write_text(json.dumps(document))
    flat = colours(renderer, load_model(path))
    assert {named(flat[q]) for q in QUADRANTS} == {"blue"}  # the patch turned: in the image's bottom left
    texture["extensions"]["KHR_texture_transform"]["texCoord"] = 1
    path.write_text(json.dumps(document))
    seen = colours(renderer, load_model(path))
    assert named(seen["top left"]) == "blue"
    assert named(seen["top right"]) == "red"
    # The texture's own texCoord (core glTF), without the transform's override
    del texture["extensions"]["KHR_texture_transform"]["texCoord"]
    texture["texCoord"] = 1
    path.write_text(json.dumps(document))
    seen = colours(renderer, load_model(path))
    assert named(seen["top left"]) == "blue"
    assert named(seen["top right"]) == "red"


def test_uv_rotation_survives_an_arrasset() -> None:
    scene = load_model(DATA / "texture-transform-unlit.gltf")
    copy = read_asset(write_asset(Asset(scene)), name="copy").scene
    material = primitive_of(copy).material
    assert material.uv_rotation == pytest.approx(math.pi / 2)
    assert material.uv_offset == (0.0, 1.0)


def test_the_converter_decodes_and_keeps_the_extensions(tmp_path: Path, renderer: Renderer) -> None:
    """The converter reads glTF through the same loader: a Draco file with an external buffer, a texture
    transform and an unlit material becomes an asset that draws like the raw file."""
    result = convert_model(DATA / "draco-external" / "draco-external.gltf", tmp_path, "model", None)
    scene = load_model(result.asset_path)
    assert scene.polygon_count == 512
    material = primitive_of(scene).material
    assert material.unlit
    assert material.uv_rotation == pytest.approx(math.pi / 2)
    raw = colours(renderer, load_model(DATA / "draco-external" / "draco-external.gltf"))
    converted = colours(renderer, scene)
    assert {q: named(converted[q]) for q in QUADRANTS} == {q: named(raw[q]) for q in QUADRANTS}


# -- hostile and unsupported input ---------------------------------------------------------------------


def draco_stream(document: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = document["bufferViews"][
        document["meshes"][0]["primitives"][0]["extensions"]["KHR_draco_mesh_compression"]["bufferView"]
    ]
    return view


def test_corrupt_draco_data_is_a_clear_error(tmp_path: Path) -> None:
    document, binary = read_glb(DATA / "draco.glb")
    view = draco_stream(document)
    start = view["byteOffset"] + 20  # past the header: the counts stay, the connectivity is noise
    broken = binary[:start] + bytes(range(256)) * 8 + binary[start + 2048 :]
    path = write_glb(tmp_path / "corrupt.glb", document, broken[: len(binary)])
    with pytest.raises(ModelLoadError, match="invalid Draco data"):
        load_model(path)


def test_draco_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    """A header claiming 2^31 triangles: refused from the header, nothing decoded or allocated."""
    document, binary = read_glb(DATA / "draco.glb")
    view = draco_stream(document)
    header = view["byteOffset"] + 12  # DRACO 2.2, mesh, edgebreaker, flags, traversal: then the counts
    stream = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
    assert stream[:5] == b"DRACO"
    assert stream[7:9] == b"\x01\x01"  # a triangle mesh, Edgebreaker
    huge = bytes([0xA1, 0x02, 0x80, 0x80, 0x80, 0x80, 0x08])  # 289 vertices, 2^31 faces (varints)
    bomb = binary[:header] + huge + binary[header + 4 :]
    view["byteLength"] += len(huge) - 4
    document["buffers"][0]["byteLength"] = len(bomb)
    path = write_glb(tmp_path / "bomb.glb", document, bomb)
    with pytest.raises(ModelLoadError, match="decompress"):
        load_model(path)


def test_decoded_geometry_counts_against_the_allowance() -> None:
    """Checked from the Draco header (up to a point per corner: 55 kB here, where the model keeps 15 kB)
    and from meshopt's count x stride (7.7 kB), before decoding."""
    allowance = Allowance(geometry_bytes=40_000, geometry_limit="this session's 40000 bytes")
    with pytest.raises(ModelLoadError, match=r"\(decompressed\).*this session's 40000 bytes"):
        load_model(DATA / "draco.glb", allowance=allowance)
    allowance = Allowance(geometry_bytes=5_000, geometry_limit="this session's 5000 bytes")
    with pytest.raises(ModelLoadError, match=r"\(decompressed\).*this session's 5000 bytes"):
        load_model(DATA / "gltfpack-cc.glb", allowance=allowance)
    roomy = Allowance(geometry_bytes=60_000, geometry_limit="60000 bytes")
    load_model(DATA / "draco.glb", allowance=roomy)
    assert roomy.used.geometry_bytes == 289 * 32 + 512 * 12  # what the model keeps, counted once


def meshopt_views(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in document["bufferViews"] if "EXT_meshopt_compression" in v.get("extensions", {})]


def test_meshopt_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    document, binary = read_glb(DATA / "gltfpack-cc.glb")
    view = meshopt_views(document)[0]
    extension = view["extensions"]["EXT_meshopt_compression"]
    extension["count"] = 1 << 30
    view["byteLength"] = extension["count"] * extension["byteStride"]
    with pytest.raises(ModelLoadError, match="decompress"):
        load_model(write_glb(tmp_path / "bomb.glb", document, binary))


def test_corrupt_meshopt_data_is_a_clear_error(tmp_path: Path) -> None:
    document, binary = read_glb(DATA / "gltfpack-cc.glb")
    extension = meshopt_views(document)[0]["extensions"]["EXT_meshopt_compression"]
    start, length = extension["byteOffset"], extension["byteLength"]
    broken = binary[: start + 1] + b"\xff" * (length - 1) + binary[start + length :]  # the header kept
    with pytest.raises(ModelLoadError, match="invalid meshopt data"):
        load_model(write_glb(tmp_path / "corrupt.glb", document, broken))


def test_meshopt_parameters_the_decoder_would_abort_on_are_refused(tmp_path: Path) -> None:
    document, binary = read_glb(DATA / "gltfpack-cc.glb")
    filtered = next(
        v for v in meshopt_views(document) if v["extensions"]["EXT_meshopt_compression"].get("filter")
    )
    extension = filtered["extensions"]["EXT_meshopt_compression"]
    extension["byteStride"] = filtered["byteStride"] = 12
    filtered["byteLength"] = extension["count"] * 12
    with pytest.raises(ModelLoadError, match="filter OCTAHEDRAL with byteStride 12"):
        load_model(write_glb(tmp_path / "stride.glb", document, binary))


def test_unknown_required_extension_is_named(tmp_path: Path) -> None:
    document, binary = read_glb(DATA / "source.glb")
    document["extensionsUsed"] = document["extensionsRequired"] = ["KHR_materials_imaginary"]
    with pytest.raises(
        ModelLoadError, match="requires glTF extensions openrr cannot read: KHR_materials_imaginary"
    ):
        load_model(write_glb(tmp_path / "required.glb", document, binary))


def test_unknown_used_extension_is_ignored_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    document, binary = read_glb(DATA / "source.glb")
    document["extensionsUsed"] = ["KHR_materials_imaginary"]
    with caplog.at_level(logging.INFO, logger="openrr.model.gltf_extensions"):
        scene = load_model(write_glb(tmp_path / "used.glb", document, binary))
    assert scene.polygon_count == 512
    assert "KHR_materials_imaginary" in caplog.text


def test_khr_meshopt_compression_is_refused_by_name() -> None:
    """gltfpack -ce khr: vertex codec version 1, which the meshoptimizer decoder on PyPI predates."""
    document, _ = read_glb(DATA / "gltfpack-khr-meshopt.glb")
    assert "KHR_meshopt_compression" in document["extensionsRequired"]
    with pytest.raises(ModelLoadError, match="cannot read: KHR_meshopt_compression"):
        load_model(DATA / "gltfpack-khr-meshopt.glb")


def test_version_1_meshopt_data_under_the_ext_name_is_refused(tmp_path: Path) -> None:
    document, binary = read_glb(DATA / "gltfpack-khr-meshopt.glb")
    text = json.dumps(document).replace("KHR_meshopt_compression", "EXT_meshopt_compression")
    with pytest.raises(ModelLoadError, match="codec version 1, where EXT_meshopt_compression has version 0"):
        load_model(write_glb(tmp_path / "v1.glb", json.loads(text), binary))


@pytest.mark.parametrize("name", ["draco.glb", "gltfpack-vpf.glb"])
def test_corrupted_geometry_loads_or_fails_cleanly(name: str, tmp_path: Path) -> None:
    """Random bytes of the compressed geometry changed (seeded): the decoders' failures are all
    ModelLoadError, never a library's exception or a crash."""
    document, binary = read_glb(DATA / name)
    start = document["bufferViews"][0]["byteLength"]  # past the texture: the geometry
    rng = random.Random(15)
    failures = 0
    for attempt in range(40):
        bad = bytearray(binary)
        for _ in range(rng.randint(1, 16)):
            bad[rng.randrange(start, len(bad))] = rng.randrange(256)
        try:
            load_model(write_glb(tmp_path / f"{attempt}.glb", document, bytes(bad)))
        except ModelLoadError:
            failures += 1
    assert failures > 10  # the corruptions reached the decoders


def test_zero_filled_accessor_bomb_is_refused(tmp_path: Path) -> None:
    """An accessor without a buffer view is zeros of its count: 10^12 of them from a few bytes of JSON."""
    document, binary = read_glb(DATA / "source.glb")
    document["accessors"].append({"componentType": 5126, "count": 10**12, "type": "VEC3"})
    with pytest.raises(ModelLoadError, match=r"accessor 4 \(zeros, no buffer view\) would decompress"):
        load_model(write_glb(tmp_path / "zeros.glb", document, binary))


def json_paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        yield from json_paths(value, (*prefix, key))


@pytest.mark.parametrize("name", ["draco.glb", "gltfpack-cc.glb"])
def test_every_document_value_made_wrong_fails_cleanly(name: str, tmp_path: Path) -> None:
    """Each value of the geometry's and materials' JSON replaced by a wrong type or an absurd number: the
    load succeeds or raises ModelLoadError (no KeyError, MemoryError or library exception)."""
    document, binary = read_glb(DATA / name)
    parts = ("meshes", "accessors", "bufferViews", "buffers", "materials", "extensionsRequired")
    refused = 0
    for path in json_paths({k: document[k] for k in parts if k in document}):
        wrong: tuple[Any, ...] = ("x", -1, None, {}, 10**12)
        for value in wrong:
            changed = copy.deepcopy(document)
            node = changed
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            try:
                load_model(write_glb(tmp_path / "changed.glb", changed, binary))
            except ModelLoadError:
                refused += 1
    assert refused > 100
