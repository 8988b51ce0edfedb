"""convert_model: every input kind, the settings' effects, ARR's output files, and clean failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh

from openrr.assets import ConversionFailed
from openrr.assets.convert import convert_model
from openrr.assets.settings import ConversionSettings
from openrr.model.arrasset.layout import Asset
from openrr.model.arrasset.reader import read_asset
from openrr.model.loader import load_model
from openrr.model.lod import LOD_RATIOS
from openrr.model.mesh import Primitive
from tests.assets import models
from tests.render import fixtures


def srgb_to_linear(values: Any) -> Any:
    v = np.asarray(values, dtype=np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def convert(
    source: Path, out: Path, settings: dict[str, Any] | None = None, name: str = "out"
) -> tuple[Asset, dict[str, Any]]:
    parsed = ConversionSettings.from_json(settings) if settings is not None else None
    lines: list[str] = []
    result = convert_model(source, out, name, parsed, lines.append)
    assert lines == result.log_lines
    assert lines
    return read_asset(result.asset_path.read_bytes()), result.info


def only_primitive(asset: Asset) -> Primitive:
    meshes = asset.scene.meshes()
    assert len(meshes) == 1
    assert len(meshes[0].primitives) == 1
    return meshes[0].primitives[0]


def test_glb_outputs_follow_arr(tmp_path: Path) -> None:
    source = fixtures.two_node_glb(tmp_path)
    lines: list[str] = []
    result = convert_model(source, tmp_path / "out", "car.arrAsset", None, lines.append, conversion_id="c-1")
    assert result.asset_path == tmp_path / "out" / "car.arrAsset"
    assert result.asset_path.stat().st_size == result.asset_bytes
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "car.arrAsset",
        "car.info.json",
        "car.log",
        "car.result.json",
    ]
    assert (
        json.loads(result.result_path.read_text())
        == [{"conversionId": "c-1"}, {"result": "succeeded"}]
        == result.result
    )
    assert result.log_path.read_text().splitlines() == lines
    assert "conversion succeeded" in lines[-1]
    info = json.loads(result.info_path.read_text())
    assert info == result.info
    assert info["files"] == {"input": "two_nodes.glb", "output": "car.arrAsset"}  # not the default name
    assert info["conversionSettings"] == {}
    assert info["inputInfo"] == {
        "sourceAssetExtension": ".glb",
        "sourceAssetFormat": "glTF 2.0 binary (GLB)",
        "sourceAssetFormatVersion": "2.0",
        "sourceAssetGenerator": "https://github.com/mikedh/trimesh",
    }
    assert info["inputStatistics"] == {
        "numMeshes": 2,
        "numFaces": 12 + 1280,
        "numVertices": 8 + 642,
        "numMaterial": 2,
        "numFacesSmallestMesh": 12,
        "numFacesBiggestMesh": 1280,
        "numNodes": 3,
        "numMeshUsagesInScene": 2,
        "maxNodeDepth": 2,
    }
    assert info["outputInfo"]["conversionToolVersion"].startswith("openrr ")
    assert len(info["outputInfo"]["conversionHash"]) == 16
    out = info["outputStatistics"]
    assert out["numMeshPartsCreated"] == 2
    assert out["numMeshPartsInstanced"] == 0
    assert out["recenteringOffset"] == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(out["boundingBox"]["min"], [-2.0, -0.5, -0.6], atol=1e-6)
    np.testing.assert_allclose(out["boundingBox"]["max"], [2.1, 0.7, 0.6], atol=1e-6)
    # The asset loads like the GLB: same hierarchy, same geometry; glTF keeps its own sidedness.
    raw, asset = load_model(source), read_asset(result.asset_path.read_bytes())
    assert sorted(n.name for n in asset.scene.nodes()) == sorted(n.name for n in raw.nodes())
    for name in ("RedBox", "BlueSphere"):
        a, b = raw.node(name).mesh, asset.scene.node(name).mesh
        assert a is not None
        assert b is not None
        np.testing.assert_array_equal(a.primitives[0].positions, b.primitives[0].positions)
        assert b.primitives[0].material.double_sided is False
    default = convert_model(source, tmp_path / "out2", "two_nodes", None)
    assert default.info["files"] == {"input": "two_nodes.glb"}


def test_gltf_with_external_files_becomes_self_contained(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    source = fixtures.textured_gltf(tmp_path / "src")  # quad.gltf + quad.bin + stripes.png
    asset_path = convert_model(source, tmp_path / "out", "quad", None).asset_path
    shutil.rmtree(tmp_path / "src")
    scene = load_model(asset_path)
    material = scene.meshes()[0].primitives[0].material
    assert material.base_color_texture is not None
    assert material.base_color_texture.shape == (16, 16, 4)
    assert tuple(material.base_color_texture[0, 0]) == fixtures.YELLOW


def test_obj_with_mtl_and_texture(tmp_path: Path) -> None:
    asset, info = convert(models.textured_obj(tmp_path), tmp_path / "out")
    p = only_primitive(asset)
    assert p.normals is not None
    assert p.uvs is not None
    assert p.material.base_color_texture is not None
    top = int(np.argmax(p.positions[:, 1] + 0.1 * p.positions[:, 0]))  # the top right corner
    u, v = p.uvs[top]
    texture = p.material.base_color_texture
    pixel = texture[min(int(v * 16), 15), min(int(u * 16), 15)]
    assert tuple(pixel) == fixtures.YELLOW  # glTF's uv convention: v = 0 is the image's top
    assert p.material.double_sided  # OBJ says nothing: ARR's default, double-sided
    assert info["inputInfo"]["sourceAssetFormat"] == "Wavefront OBJ"


def test_ply_mesh_colours_are_linearised_by_default(tmp_path: Path) -> None:
    path, colours = models.coloured_ply(tmp_path)
    p = only_primitive(convert(path, tmp_path / "out")[0])
    assert p.colors is not None
    assert len(p.colors) == len(colours)
    expected = srgb_to_linear(colours[:, :3] / 255.0)
    # The asset's colours are a permutation of the expected ones (trimesh may reorder vertices).
    assert np.abs(np.sort(p.colors[:, 0]) - np.sort(expected[:, 0])).max() <= 0.5 / 255 + 1e-6
    kept = only_primitive(convert(path, tmp_path / "out2", {"gammaToLinearVertex": False})[0])
    assert kept.colors is not None
    assert np.abs(np.sort(kept.colors[:, 0]) - np.sort(colours[:, 0] / 255.0)).max() <= 0.5 / 255 + 1e-6


def test_ply_point_cloud(tmp_path: Path) -> None:
    path, points, colours = models.point_ply(tmp_path)
    asset, info = convert(path, tmp_path / "out", {"scaling": 2.0, "unlitMaterials": True})
    (cloud,) = asset.points.values()
    # The points come in their level-of-detail order: the same points, each with its colour.
    order = np.lexsort(cloud.positions.T[::-1])
    expected = np.lexsort((points * 2.0).T[::-1])
    np.testing.assert_allclose(cloud.positions[order], points[expected] * 2.0, rtol=1e-6)
    assert cloud.colors is not None
    linear = srgb_to_linear(colours[expected, :3] / 255.0)
    np.testing.assert_allclose(cloud.colors[order, :3] / 255.0, linear, atol=0.5 / 255 + 1e-6)
    assert 0.1 < cloud.point_size < 0.3  # 500 points over a 4 x 2 slab: about 0.13 apart, times 1.25
    assert asset.scene.polygon_count == 0
    assert asset.scene.point_count == len(points)
    assert info["inputStatistics"]["numPoints"] == len(points)
    assert info["inputStatistics"]["numFaces"] == 0
    assert info["outputStatistics"]["numPoints"] == len(points)
    (described,) = info["openrr"]["pointClouds"]
    assert described["points"] == len(points)
    assert described["pointSize"] == cloud.point_size
    assert [v["points"] for v in described["levels"]] == [v.count for v in cloud.levels]
    assert described["levels"][-1]["points"] == len(points)
    assert not asset.unlit  # points ignore unlitMaterials, as in ARR
    log = (tmp_path / "out" / "out.log").read_text()
    assert "ignored for a point cloud, as in ARR: scaling" not in log
    assert "unlitMaterials" in log


def test_xyz_point_clouds(tmp_path: Path) -> None:
    text = "# header\n0,0,0,255,0,0\n1 1 1 0 255 0 // comment\n\n2;2;2;0;0;255\n"
    asset, _ = convert(models.xyz_file(tmp_path, text), tmp_path / "out", {"gammaToLinearVertex": False})
    (cloud,) = asset.points.values()
    order = np.argsort(cloud.positions[:, 0])  # in level-of-detail order: sorted back here
    np.testing.assert_array_equal(cloud.positions[order], [[0, 0, 0], [1, 1, 1], [2, 2, 2]])
    assert cloud.colors is not None
    np.testing.assert_array_equal(cloud.colors[order], [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]])
    grey, _ = convert(
        models.xyz_file(tmp_path, "0 0 0 10\n1 0 0 20\n", "i.xyz"),
        tmp_path / "out2",
        {"gammaToLinearVertex": False},
    )
    (cloud,) = grey.points.values()
    assert cloud.colors is not None
    assert np.allclose(cloud.colors[np.argsort(cloud.positions[:, 0]), 0] / 255.0, [0.5, 1.0], atol=0.5 / 255)
    bare, _ = convert(models.xyz_file(tmp_path, "0 0 0\n1 2 3\n", "b.xyz"), tmp_path / "out3")
    assert next(iter(bare.points.values())).colors is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0\n1 1\n", "2 values per line"),
        ("0 0 0 1 2\n", "5 values per line"),
        ("0 0 0\n1 1\n", "invalid XYZ data"),
        ("a b c\n", "invalid XYZ data"),
        ("# nothing\n", "holds no points"),
        ("0 0 nan\n", "non-finite"),
    ],
)
def test_bad_xyz_fails_cleanly(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConversionFailed, match=message):
        convert_model(models.xyz_file(tmp_path, text), tmp_path / "out", "out", None)
    result = json.loads((tmp_path / "out" / "out.result.json").read_text())
    assert result[-1] == {"result": "failed"}
    assert result[-2]["title"] == "Conversion failed"


def test_coordinates_scaling_axis_and_recentering(tmp_path: Path) -> None:
    source = fixtures.two_node_glb(tmp_path)
    raw = load_model(source)
    settings = {"scaling": 2.0, "axis": ["-x", "+z", "+y"], "recenterToOrigin": True}  # a mirror
    asset, info = convert(source, tmp_path / "out", settings)
    scene = asset.scene
    # ARR: the scaling goes into vertices and node transforms; every world position maps as a point.
    change = np.array([[-2.0, 0, 0], [0, 0, 2.0], [0, 2.0, 0]])
    low, high = (np.asarray(raw.bounds()) @ change.T)[[0, 1]]
    centre = (np.minimum(low, high) + np.maximum(low, high)) / 2
    np.testing.assert_allclose(info["outputStatistics"]["recenteringOffset"], centre, atol=1e-6)
    bounds = scene.bounds()
    assert bounds is not None
    np.testing.assert_allclose(bounds[0], -bounds[1], atol=1e-5)  # centred on the origin
    np.testing.assert_allclose(bounds[1] - bounds[0], np.abs(high - low), atol=1e-5)
    for name in ("RedBox", "BlueSphere"):
        before = raw.world_transform(raw.node(name).id)[:3, 3] @ change.T - centre
        np.testing.assert_allclose(scene.world_transform(scene.node(name).id)[:3, 3], before, atol=1e-6)
    # The mirror flipped the winding, so faces still turn their front (counter-clockwise) outwards.
    sphere = scene.node("BlueSphere").mesh
    assert sphere is not None
    p = sphere.primitives[0]
    corners = p.positions[p.indices]
    facing = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert p.normals is not None
    assert (np.einsum("ij,ij->i", facing, p.normals[p.indices[:, 0]]) > 0).all()


def test_material_settings(tmp_path: Path) -> None:
    source = fixtures.two_node_glb(tmp_path)
    asset, _ = convert(
        source,
        tmp_path / "a",
        {"gammaToLinearMaterial": True, "opaqueMaterialDefaultSidedness": "DoubleSided"},
    )
    box = asset.scene.node("RedBox").mesh
    assert box is not None
    assert box.primitives[0].material.double_sided
    unlit, _ = convert(source, tmp_path / "b", {"unlitMaterials": True})
    assert unlit.unlit
    box = unlit.scene.node("RedBox").mesh
    assert box is not None
    m = box.primitives[0].material
    # Stored as it was, marked unlit: the renderer draws its base colour without lighting.
    assert m.unlit
    assert m.base_color_factor == (1.0, 0.0, 0.0, 1.0)
    assert m.emissive_factor == (0.0, 0.0, 0.0)
    quad, _ = convert(fixtures.textured_gltf(tmp_path), tmp_path / "c", {"unlitMaterials": True})
    q = only_primitive(quad).material
    assert q.unlit
    assert q.base_color_texture is not None


def test_gamma_to_linear_material_converts_factors(tmp_path: Path) -> None:
    path = models.sphere_glb(tmp_path, 2)
    asset, _ = convert(path, tmp_path / "out", {"gammaToLinearMaterial": True})
    factor = only_primitive(asset).material.base_color_factor
    np.testing.assert_allclose(factor[:3], srgb_to_linear([180 / 255] * 3), atol=1e-6)


def _two_identical_materials(directory: Path) -> Path:
    scene = trimesh.Scene()
    for i, name in enumerate(("First", "Second")):
        box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
        box.visual = trimesh.visual.TextureVisuals(
            material=trimesh.visual.material.PBRMaterial(name=name, baseColorFactor=(10, 200, 30, 255))
        )
        scene.add_geometry(
            box, node_name=f"Box{i}", geom_name=f"BoxMesh{i}", transform=np.eye(4) + np.eye(4, k=3) * i * 2
        )
    path = directory / "twins.glb"
    path.write_bytes(scene.export(file_type="glb"))
    return path


def test_deduplicate_materials(tmp_path: Path) -> None:
    source = _two_identical_materials(tmp_path)
    merged, _ = convert(source, tmp_path / "a")
    materials = {id(p.material) for m in merged.scene.meshes() for p in m.primitives}
    assert len(materials) == 1
    kept, _ = convert(source, tmp_path / "b", {"deduplicateMaterials": False})
    assert len({p.material.name for m in kept.scene.meshes() for p in m.primitives}) == 2


def test_scene_graph_mode_none_merges_everything(tmp_path: Path) -> None:
    source = _two_identical_materials(tmp_path)
    raw = load_model(source)
    asset, info = convert(source, tmp_path / "out", {"sceneGraphMode": "none"})
    assert len(asset.scene) == 1
    p = only_primitive(asset)  # same material: one part
    assert p.triangle_count == raw.polygon_count
    bounds, raw_bounds = asset.scene.bounds(), raw.bounds()
    assert bounds is not None
    assert raw_bounds is not None
    np.testing.assert_allclose(bounds, raw_bounds, atol=1e-6)
    assert info["outputStatistics"]["numMeshPartsCreated"] == 1


def test_vertex_streams_can_be_dropped(tmp_path: Path) -> None:
    asset, _ = convert(
        fixtures.textured_gltf(tmp_path),
        tmp_path / "out",
        {"vertex": {"normal": "NONE", "texcoord0": "NONE"}},
    )
    p = only_primitive(asset)
    assert p.normals is None
    assert p.uvs is None


def test_big_meshes_get_levels_of_detail(tmp_path: Path) -> None:
    source = models.sphere_glb(tmp_path, 7)  # 327,680 triangles
    lines: list[str] = []
    result = convert_model(source, tmp_path / "out", "sphere", None, lines.append)
    asset = read_asset(result.asset_path.read_bytes())
    mesh = asset.scene.node("Sphere").mesh
    assert mesh is not None
    triangles = [327680] + [lv.mesh.triangle_count for lv in mesh.lods]
    assert result.info["openrr"]["levelsOfDetail"] == [{"mesh": "SphereMesh", "triangles": triangles}]
    assert len(triangles) == 1 + len(LOD_RATIOS)
    assert triangles == sorted(triangles, reverse=True)
    assert any("level of detail" in line for line in lines)


def test_settings_file_beside_the_model(tmp_path: Path) -> None:
    source = fixtures.two_node_glb(tmp_path)
    (tmp_path / "two_nodes.ConversionSettings.json").write_text('{"scaling": 3}')
    result = convert_model(source, tmp_path / "out", "m", None)
    assert result.info["conversionSettings"] == {"scaling": 3}
    np.testing.assert_allclose(
        result.info["outputStatistics"]["boundingBox"]["max"], [6.3, 2.1, 1.8], atol=1e-5
    )
    (tmp_path / "two_nodes.ConversionSettings.json").unlink()
    (tmp_path / "conversionSettings.json").write_text('{"scaling": 2, "metadataKeys": ["a*"]}')
    result = convert_model(source, tmp_path / "out", "m", None)
    assert result.result[-1] == {"result": "succeeded with warnings"}
    codes = [entry.get("warning") for entry in result.result[1:-1]]
    assert codes == ["DeprecatedSettingsFile"]
    assert all(entry["title"] and entry["details"] for entry in result.result[1:-1])
    (tmp_path / "conversionSettings.json").write_text('{"scaling": 2, "colour": "red"}')
    with pytest.raises(ConversionFailed, match="unknown property 'colour'") as caught:
        convert_model(source, tmp_path / "out", "m", None)
    assert caught.value.code == "InvalidSettings"
    result_file = json.loads((tmp_path / "out" / "m.result.json").read_text())
    assert result_file[-2]["error"] == "InvalidSettings"
    assert "colour" in result_file[-2]["details"]
    assert "unknown property 'colour'" in (tmp_path / "out" / "m.log").read_text()


@pytest.mark.parametrize(
    ("name", "content", "code", "message"),
    [
        ("car.fbx", b"Kaydara FBX Binary  \x00", "InvalidInput", "car.fbx: invalid FBX data"),
        ("scan.e57", b"ASTM-E57", "InvalidInput", "scan.e57: not a readable E57 file"),
        ("scan.las", b"LASF" + bytes(300), "InvalidInput", "scan.las: not a readable LAS point cloud file"),
        ("car.stl", b"solid", "UnsupportedFormat", "unsupported input format '.stl'"),
        ("absent.glb", None, "InputNotFound", "input file not found: absent.glb"),
        ("broken.glb", b"glTF\x02\x00\x00\x00\xc8\x00\x00\x00", "InvalidInput", "broken.glb: invalid glTF"),
        ("empty.obj", b"# nothing\n", "InvalidInput", "empty.obj"),
        ("bad.ply", b"ply\nformat ascii 1.0\nelement vertex 2\nend_header\n1 2\n", "InvalidInput", "bad.ply"),
    ],
)
def test_bad_inputs_fail_cleanly(
    tmp_path: Path, name: str, content: bytes | None, code: str, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "out.arrAsset").write_bytes(b"from an earlier run")
    with pytest.raises(ConversionFailed, match=message) as caught:
        convert_model(path, tmp_path / "out", "out", None)
    assert caught.value.code in (code, "EmptyModel")
    assert str(tmp_path) not in caught.value.message  # no server paths in what users see
    result = json.loads((tmp_path / "out" / "out.result.json").read_text())
    assert len(result) == 3
    assert result[0]["conversionId"]
    assert result[2] == {"result": "failed"}
    assert result[1]["details"] == caught.value.message
    assert not (tmp_path / "out" / "out.arrAsset").exists()


def test_invalid_output_names(tmp_path: Path) -> None:
    for name in ("", ".arrAsset", "a/b", ".."):
        with pytest.raises(ConversionFailed, match="invalid output name"):
            convert_model(fixtures.two_node_glb(tmp_path), tmp_path / "out", name, None)


def test_unexpected_errors_become_internal_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("openrr.assets.convert.build_lods", broken)
    with pytest.raises(ConversionFailed, match="internal error: RuntimeError: boom") as caught:
        convert_model(fixtures.two_node_glb(tmp_path), tmp_path / "out", "out", None)
    assert caught.value.code == "InternalError"
    result = json.loads((tmp_path / "out" / "out.result.json").read_text())
    assert result[1] == {
        "internal error": "InternalError",
        "title": "Conversion failed",
        "details": caught.value.message,
    }
    assert "Traceback" in (tmp_path / "out" / "out.log").read_text()
