"""The .arrAsset format: round trips, precision of each encoding, refusal of damaged or foreign files,
levels of detail, and the render server's loader reading assets."""

from __future__ import annotations

import contextlib
import json
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh

from openrr.model.arrasset.layout import HEADER_SIZE, MAGIC, Asset, PointCloud
from openrr.model.arrasset.manifest import conversion_hash
from openrr.model.arrasset.reader import read_asset
from openrr.model.arrasset.vertex import VertexFormat
from openrr.model.arrasset.writer import write_asset
from openrr.model.errors import ModelLoadError
from openrr.model.loader import load_model
from openrr.model.lod import LOD_RATIOS, build_lods, simplify
from openrr.model.mesh import Mesh, Primitive
from openrr.model.scene import Scene
from openrr.render.renderer import choose_lod
from tests.assets import models
from tests.render import fixtures


def manifest_of(data: bytes) -> dict[str, Any]:
    offset, length = struct.unpack_from("<QQ", data, 16)
    parsed: dict[str, Any] = json.loads(data[offset : offset + length])
    return parsed


def with_manifest(data: bytes, manifest: dict[str, Any]) -> bytes:
    """``data`` with another manifest (same data section), checksums recomputed: a crafted file."""
    data_offset, data_length = struct.unpack_from("<QQ", data, 40)
    text = json.dumps(manifest).encode()
    new_offset = HEADER_SIZE + len(text) + (-(HEADER_SIZE + len(text)) % 64)
    head = bytearray(data[:HEADER_SIZE])
    struct.pack_into("<QQI", head, 16, HEADER_SIZE, len(text), zlib.crc32(text))
    struct.pack_into("<QQ", head, 40, new_offset, data_length)
    struct.pack_into("<I", head, 56, zlib.crc32(bytes(head[:56])))
    padding = b"\0" * (new_offset - HEADER_SIZE - len(text))
    return bytes(head) + text + padding + data[data_offset:]


def test_round_trip_keeps_the_scene() -> None:
    scene = models.rich_scene()
    data = write_asset(Asset(scene, statistics={"x": 1}))
    asset = read_asset(data, name="copy")
    copy = asset.scene
    assert copy.name == "copy"
    assert asset.statistics == {"x": 1}
    assert not asset.points
    before, after = list(scene.nodes()), list(copy.nodes())
    assert [n.name for n in before] == [n.name for n in after]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a.transform, b.transform)
        assert a.visible == b.visible
        assert a.color == b.color
        assert (a.parent is None) == (b.parent is None)
        assert (a.mesh is None) == (b.mesh is None)
    assert copy.node("A").mesh is copy.node("B").mesh  # instancing survives: one mesh, uploaded once
    assert copy.node("B").parent == copy.node("Root").id
    mesh = copy.node("A").mesh
    source = scene.node("A").mesh
    assert mesh is not None
    assert source is not None
    assert len(mesh.primitives) == 2
    first, original = mesh.primitives[0], source.primitives[0]
    np.testing.assert_array_equal(first.positions, original.positions)  # 32-bit positions: exact
    np.testing.assert_array_equal(first.indices, original.indices)
    np.testing.assert_array_equal(first.uvs, original.uvs)
    assert first.normals is not None
    assert original.normals is not None
    assert np.abs(first.normals - original.normals).max() <= 0.5 / 127 + 1e-6  # snorm8
    assert first.colors is not None
    assert original.colors is not None
    assert np.abs(first.colors - original.colors).max() <= 0.5 / 255 + 1e-6  # unorm8
    m, o = first.material, original.material
    for name in ("name", "metallic_factor", "roughness_factor", "double_sided", "alpha_mode", "alpha_cutoff"):
        assert getattr(m, name) == getattr(o, name)
    assert m.base_color_factor == o.base_color_factor
    assert m.emissive_factor == o.emissive_factor
    assert m.base_color_texture is not None
    assert o.base_color_texture is not None
    np.testing.assert_array_equal(m.base_color_texture, o.base_color_texture)
    assert m.emissive_texture is m.base_color_texture  # one image, stored and uploaded once
    np.testing.assert_array_equal(m.occlusion_texture, o.occlusion_texture)
    other = copy.node("C").mesh
    assert other is not None
    assert other.primitives[0].material is m
    second = mesh.primitives[1]
    assert second.material.alpha_mode == "BLEND"
    assert second.normals is None
    assert second.uvs is None
    copied_bounds, bounds = copy.bounds(visible_only=False), scene.bounds(visible_only=False)
    assert copied_bounds is not None
    assert bounds is not None
    np.testing.assert_allclose(copied_bounds, bounds)
    manifest = manifest_of(data)
    codecs = [manifest["buffers"][image["buffer"]]["codec"] for image in manifest["images"]]
    assert sorted(codecs) == ["none", "zlib"]  # the noisy texture stays raw, the flat one is compressed


def test_quantised_encodings_stay_within_their_error_bounds() -> None:
    rng = np.random.default_rng(1)
    positions = (rng.random((5000, 3)) * [100.0, 2.0, 0.01] - 40.0).astype(np.float32)
    normals = rng.normal(size=(5000, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    uvs = rng.random((5000, 2)).astype(np.float32)
    primitive = Primitive(
        positions, rng.integers(0, 5000, (3000, 3)).astype(np.uint32), normals=normals, uvs=uvs
    )
    scene = Scene()
    scene.add_node("n", mesh=Mesh("m", (primitive,)))
    vertex = VertexFormat(position="16_16_16_16_FLOAT", normal="16_16_16_16_FLOAT", texcoord0="16_16_FLOAT")
    data = write_asset(Asset(scene), vertex=vertex)
    mesh = read_asset(data).scene.meshes()[0]
    p = mesh.primitives[0]
    extent = positions.max(axis=0) - positions.min(axis=0)
    error = np.abs(p.positions - positions)
    assert (error <= extent / 65535 / 2 + np.abs(positions) * 2e-7 + 1e-7).all()  # half a step, plus float32
    assert p.normals is not None
    assert np.abs(p.normals - normals).max() <= 0.5 / 32767 + 1e-7
    assert p.uvs is not None
    assert np.abs(p.uvs - uvs).max() <= 2.0**-12
    buffers = manifest_of(data)["buffers"]
    assert {b["dtype"] for b in buffers} == {"<u2", "<i2", "<f2"}  # indices of 5000 vertices: uint16 too
    eight_bit = read_asset(write_asset(Asset(scene))).scene.meshes()[0].primitives[0]
    assert eight_bit.normals is not None
    assert np.abs(eight_bit.normals - normals).max() <= 0.5 / 127 + 1e-6


def test_streams_can_be_left_out_and_big_primitives_get_uint32_indices() -> None:
    grid = trimesh.creation.icosphere(subdivisions=7)  # unit radius: the positions are the normals
    assert len(grid.vertices) > 65536
    primitive = Primitive(
        grid.vertices, grid.faces, normals=grid.vertices, colors=np.ones((len(grid.vertices), 4), np.float32)
    )
    scene = Scene()
    scene.add_node("n", mesh=Mesh("m", (primitive,)))
    data = write_asset(Asset(scene), vertex=VertexFormat(normal="NONE", color0="NONE"))
    p = read_asset(data).scene.meshes()[0].primitives[0]
    assert p.normals is None
    assert p.colors is None
    np.testing.assert_array_equal(p.indices, grid.faces)
    assert [b["dtype"] for b in manifest_of(data)["buffers"]] == ["<f4", "<u4"]


def test_point_clouds_are_stored_as_points_on_their_nodes() -> None:
    scene = Scene("cloud")
    node = scene.add_node("points")
    points = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0]], dtype=np.float32)
    colours = np.array([[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 1]], dtype=np.float32)
    data = write_asset(Asset(scene, points={node.id: PointCloud(points, colours, 0.1)}))
    asset = read_asset(data)
    loaded = asset.scene.node("points")
    cloud = asset.points[loaded.id]
    assert loaded.points is cloud
    assert loaded.mesh is None
    np.testing.assert_array_equal(cloud.positions, points)
    assert cloud.colors is not None
    np.testing.assert_array_equal(cloud.colors, colours * 255)
    assert cloud.point_size == pytest.approx(0.1)
    assert asset.scene.polygon_count == 0
    assert asset.scene.point_count == 3
    node = scene.node("points")
    node.mesh = Mesh(
        "m",
        (
            Primitive(
                np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32), np.array([[0, 1, 2]], np.uint32)
            ),
        ),
    )
    with pytest.raises(ValueError, match="both a mesh and a point cloud"):
        write_asset(Asset(scene, points={node.id: PointCloud(points, None, 0.1)}))


# -- refusals ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_asset() -> bytes:
    return write_asset(Asset(models.rich_scene()))


def refused(data: bytes, **kwargs: Any) -> str:
    with pytest.raises(ModelLoadError) as caught:
        read_asset(data, label="m.arrAsset", **kwargs)
    assert caught.value.message.startswith("m.arrAsset: ")
    return caught.value.message


def test_foreign_files_are_refused_by_name(small_asset: bytes) -> None:
    assert "not an openrr .arrAsset (Microsoft's own" in refused(b"\x00\x01binary ARR asset")
    assert "not an openrr .arrAsset" in refused(b"")
    assert "this is a glTF file" in refused(b"glTF\x02\x00\x00\x00")
    assert "this is a glTF file" in refused(b'{"asset": {}}')


def test_unknown_versions_are_refused_with_advice(small_asset: bytes) -> None:
    newer = bytearray(small_asset)
    struct.pack_into("<I", newer, 8, 4)
    message = refused(bytes(newer))
    assert "format version 4 is not supported (this openrr reads versions 1, 2, 3)" in message
    assert "convert the model again" in message


def test_truncation_and_damage_are_detected(small_asset: bytes) -> None:
    data_offset = struct.unpack_from("<Q", small_asset, 40)[0]
    for cut in (12, 40, HEADER_SIZE + 10, data_offset + 5, len(small_asset) - 1):
        assert "truncated" in refused(small_asset[:cut])
    assert "bytes after its end" in refused(small_asset + b"\0")
    header = bytearray(small_asset)
    header[20] ^= 0x40
    assert "header checksum mismatch" in refused(bytes(header))
    manifest = bytearray(small_asset)
    manifest[HEADER_SIZE + 5] ^= 0x01
    assert "manifest checksum mismatch" in refused(bytes(manifest))
    body = bytearray(small_asset)
    layout = manifest_of(small_asset)
    image = layout["buffers"][layout["images"][0]["buffer"]]
    body[data_offset + image["offset"] + 5] ^= 0xFF
    assert "checksum mismatch" in refused(bytes(body))
    read_asset(bytes(body), verify=False)  # unchecked, a flipped byte in an image is just a pixel


def test_crafted_manifests_fail_cleanly(small_asset: bytes) -> None:
    manifest = manifest_of(small_asset)
    # Valid checksums, but the 3-vertex triangle borrows the 25-vertex grid's indices: out of range.
    borrowed = json.loads(json.dumps(manifest))
    pair, other = (next(m for m in borrowed["meshes"] if m["name"] == name) for name in ("Pair", "Other"))
    other["primitives"][0]["indices"] = pair["primitives"][0]["indices"]
    assert "out of range (3 vertices)" in refused(with_manifest(small_asset, borrowed))
    retyped = json.loads(json.dumps(manifest))
    retyped["buffers"][0]["dtype"] = "<u4"
    assert "has an unexpected type" in refused(with_manifest(small_asset, retyped))
    foreign = json.loads(json.dumps(manifest))
    foreign["buffers"][0]["dtype"] = "|O"
    assert "has an unexpected type" in refused(with_manifest(small_asset, foreign))
    bomb = json.loads(json.dumps(manifest))
    bomb["buffers"][0]["shape"] = [10**12, 3]
    assert "bytes, " in refused(with_manifest(small_asset, bomb))
    nested = with_manifest(small_asset, {"nodes": []})
    assert read_asset(nested).scene.name == ""  # a minimal manifest is an empty scene
    deep = bytearray(with_manifest(small_asset, {}))
    assert read_asset(bytes(deep)).scene.polygon_count == 0


def test_random_manifest_damage_never_escapes_as_another_exception(small_asset: bytes) -> None:
    """Values anywhere in the manifest replaced by wrong ones: a ModelLoadError or a valid scene."""
    manifest = manifest_of(small_asset)
    rng = random.Random(5)
    weird: list[Any] = [None, -1, 0, 1, 2**40, 1e308, float("inf"), "x", [], {}, [0, 0], True, 0.5, "OPAQUE"]

    def places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if isinstance(value, dict):
            return [path] + [p for k, v in value.items() for p in places(v, (*path, k))]
        if isinstance(value, list):
            return [path] + [p for i, v in enumerate(value) for p in places(v, (*path, i))]
        return [path]

    spots = [p for p in places(manifest) if p]
    for _ in range(400):
        damaged = json.loads(json.dumps(manifest))
        path = rng.choice(spots)
        target = damaged
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = rng.choice(weird)
        try:
            text = json.dumps(damaged)
        except ValueError:
            continue
        with contextlib.suppress(ModelLoadError):
            read_asset(with_manifest(small_asset, json.loads(text)), verify=bool(rng.getrandbits(1)))


def test_conversion_hash_follows_content_not_metadata(small_asset: bytes) -> None:
    scene = models.rich_scene()
    same = write_asset(Asset(scene, statistics={"other": True}), source={"file": "x"})
    assert conversion_hash(same) == conversion_hash(small_asset)
    scene.node("A").metadata = {"part": "A-1"}  # object metadata does not render
    assert conversion_hash(write_asset(Asset(scene))) == conversion_hash(small_asset)
    scene.node("A").transform = np.eye(4)
    assert conversion_hash(write_asset(Asset(scene))) != conversion_hash(small_asset)
    assert len(conversion_hash(small_asset)) == 16


# -- levels of detail ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_sphere() -> Mesh:
    sphere = trimesh.creation.icosphere(subdivisions=7)  # 327,680 triangles
    primitive = Primitive(sphere.vertices, sphere.faces, normals=sphere.vertices)
    return Mesh("sphere", (primitive,))


def test_levels_of_detail_hit_their_targets(big_sphere: Mesh) -> None:
    levels = build_lods(big_sphere)
    assert len(levels) == len(LOD_RATIOS)  # 0.02 of 327,680 is still above LOD_SMALLEST
    counts = [big_sphere.triangle_count] + [level.mesh.triangle_count for level in levels]
    for level, ratio in zip(levels, LOD_RATIOS, strict=True):
        target = big_sphere.triangle_count * ratio
        assert 0.6 * target <= level.mesh.triangle_count <= 1.5 * target
    assert counts == sorted(counts, reverse=True)
    errors = [level.error for level in levels]
    assert errors[0] > 0
    assert errors == sorted(errors)
    assert errors[-1] < 0.1  # a unit sphere: hundredths
    for level in levels:
        p = level.mesh.primitives[0]
        radii = np.linalg.norm(p.positions, axis=1)
        assert (np.abs(radii - 1.0) <= level.error + 1e-6).all()  # every vertex within the stated error
        assert p.normals is not None
        assert np.allclose(np.linalg.norm(p.normals, axis=1), 1.0, atol=1e-5)
        edges = np.sort(
            np.concatenate([p.indices[:, [0, 1]], p.indices[:, [1, 2]], p.indices[:, [2, 0]]]), axis=1
        )
        _, uses = np.unique(edges, axis=0, return_counts=True)
        # Still (almost) a closed surface: clustering does not tear it (a few tears at the coarsest).
        assert (uses == 2).mean() > (0.99 if level.mesh.triangle_count >= 20_000 else 0.95)
    small = Mesh(
        "small",
        (
            Primitive(
                np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32), np.array([[0, 1, 2]], np.uint32)
            ),
        ),
    )
    assert build_lods(small) == ()


def test_levels_keep_primitives_joined_and_attributes() -> None:
    box = trimesh.creation.box(extents=(2, 2, 2)).subdivide().subdivide().subdivide()
    half = len(box.faces) // 2
    colours = np.tile([[1.0, 0.5, 0.25, 1.0]], (len(box.vertices), 1))
    parts = (
        Primitive(box.vertices, box.faces[:half], colors=colours, uvs=box.vertices[:, :2]),
        Primitive(box.vertices, box.faces[half:], colors=colours, uvs=box.vertices[:, :2]),
    )
    mesh = Mesh("box", parts)
    level = simplify(mesh, mesh.triangle_count // 4)
    assert level is not None
    assert len(level.mesh.primitives) == 2
    a, b = level.mesh.primitives
    shared = {tuple(v) for v in a.positions.tolist()} & {tuple(v) for v in b.positions.tolist()}
    assert shared  # the seam between the two parts uses the same vertices on both sides
    assert a.colors is not None
    assert np.allclose(a.colors, [1.0, 0.5, 0.25, 1.0])
    assert a.uvs is not None
    assert a.normals is None


def test_lods_are_stored_with_their_mesh(big_sphere: Mesh) -> None:
    levels = build_lods(big_sphere)
    mesh = Mesh(big_sphere.name, big_sphere.primitives, lods=levels)
    scene = Scene()
    scene.add_node("one", mesh=mesh)
    scene.add_node("two", mesh=mesh, transform=np.diag([3.0, 3.0, 3.0, 1.0]))
    data = write_asset(Asset(scene))
    manifest = manifest_of(data)
    assert len(manifest["meshes"]) == 1 + len(levels)
    assert manifest["meshes"][0]["lods"][0]["mesh"] == 1
    assert manifest["meshes"][1]["lodOf"] == 0
    copy = read_asset(data).scene
    one, two = (copy.node(n).mesh for n in ("one", "two"))
    assert one is not None
    assert one is two
    assert [lv.mesh.triangle_count for lv in one.lods] == [lv.mesh.triangle_count for lv in levels]
    assert [lv.error for lv in one.lods] == pytest.approx([lv.error for lv in levels])
    assert all(not lv.mesh.lods for lv in one.lods)
    without = read_asset(data, lods=False).scene.node("one").mesh
    assert without is not None
    assert without.lods == ()
    assert choose_lod(one, pixels_per_unit=1e6) is one
    assert choose_lod(one, pixels_per_unit=1.0 / one.lods[0].error) is one.lods[0].mesh
    assert choose_lod(one, pixels_per_unit=1e-3) is one.lods[-1].mesh
    assert load_model_lods(data) == len(levels)


def load_model_lods(data: bytes) -> int:
    """How many levels the render server's loader keeps (it goes through the file system here)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.arrAsset"
        path.write_bytes(data)
        mesh = load_model(path).meshes()[0]
        return len(mesh.lods)


# -- the render server's loader ------------------------------------------------------------------------------


def test_load_model_reads_assets_by_content_and_name(tmp_path: Path) -> None:
    scene = load_model(fixtures.two_node_glb(tmp_path))
    data = write_asset(Asset(scene))
    (tmp_path / "model.arrAsset").write_bytes(data)
    (tmp_path / "renamed.glb").write_bytes(data)
    progress: list[float] = []
    for source in (
        tmp_path / "model.arrAsset",
        f"file://{tmp_path}/model.arrAsset",
        tmp_path / "renamed.glb",
    ):
        loaded = load_model(source, progress=lambda f, m: progress.append(f))
        assert sorted(n.name for n in loaded.nodes()) == ["BlueSphere", "RedBox", "Scene"]
        assert loaded.polygon_count == scene.polygon_count
    assert loaded.name == "renamed.glb"
    assert progress[0] == 0.0
    assert progress[-1] == 1.0
    (tmp_path / "fake.arrAsset").write_bytes(b"not an asset")
    with pytest.raises(ModelLoadError, match=r"fake\.arrAsset: not an openrr \.arrAsset"):
        load_model(tmp_path / "fake.arrAsset")
    with pytest.raises(ModelLoadError, match="size limit"):
        load_model(tmp_path / "model.arrAsset", max_bytes=len(data) - 1)


def test_load_model_fetches_assets_over_http(tmp_path: Path) -> None:
    data = write_asset(Asset(load_model(fixtures.two_node_glb(tmp_path))))
    (tmp_path / "model.arrAsset").write_bytes(data)
    (tmp_path / "cut.arrAsset").write_bytes(data[:-10])
    seen: list[str] = []
    with fixtures.serve_directory(tmp_path) as base:
        scene = load_model(base + "model.arrAsset?sv=secret", guard=seen.append)
        assert scene.name == "model.arrAsset"
        assert scene.polygon_count > 0
        assert seen == [base + "model.arrAsset?sv=secret"]
        with pytest.raises(ModelLoadError, match="truncated") as caught:
            load_model(base + "cut.arrAsset?sig=secret")
        assert "secret" not in caught.value.message
        with pytest.raises(ModelLoadError, match="size limit"):
            load_model(base + "model.arrAsset", max_bytes=1000)


def test_magic_is_png_style() -> None:
    assert MAGIC == b"\x89ORR\r\n\x1a\n"
    assert HEADER_SIZE == 64
