"""Object metadata (glTF node extras, ``metadataKeys``) and ``<model>.MaterialOverrides.json``, through the
real converter, read back from the written ``.arrAsset``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh

from openrr.assets import ConversionFailed
from openrr.assets.convert import ConversionResult, convert_model
from openrr.assets.settings import ConversionSettings
from openrr.model.arrasset.layout import Asset
from openrr.model.arrasset.reader import read_asset
from openrr.model.loader import load_model
from openrr.model.mesh import Material
from openrr.model.metadata import MAX_METADATA_BYTES, MetadataKeeper, metadata_bytes
from openrr.model.scene import Scene
from tests.assets import models
from tests.render import fixtures

ROOT_EXTRAS = {
    "partNumber": "A-1",
    "partMass": 2.5,
    "count": 3,
    "flag": True,
    "color": "red",
    "nested": {"x": [1, 2]},
}


def extras_glb(directory: Path, big: str = "") -> Path:
    """``parts.glb``, written by trimesh with glTF node extras: "Root" (ROOT_EXTRAS, plus ``blob`` if
    ``big``) holds "Box" (its own extras) and "Sphere" (none)."""
    box = trimesh.creation.box()
    sphere = trimesh.creation.icosphere(subdivisions=1)
    scene = trimesh.Scene()
    extras = ROOT_EXTRAS | ({"blob": big} if big else {})
    scene.graph.update(frame_from=scene.graph.base_frame, frame_to="Root", matrix=np.eye(4), metadata=extras)
    scene.add_geometry(
        box,
        node_name="Box",
        geom_name="BoxMesh",
        parent_node_name="Root",
        metadata={"partNumber": "B-2", "x": 1},
    )
    scene.add_geometry(sphere, node_name="Sphere", geom_name="SphereMesh", parent_node_name="Root")
    path = directory / "parts.glb"
    path.write_bytes(scene.export(file_type="glb"))
    return path


def convert(
    source: Path, out: Path, settings: dict[str, Any] | None = None
) -> tuple[Asset, ConversionResult]:
    parsed = ConversionSettings.from_json(settings) if settings is not None else None
    result = convert_model(source, out, "out", parsed)
    return read_asset(result.asset_path.read_bytes()), result


def metadata_of(scene: Scene) -> dict[str, dict[str, Any]]:
    return {node.name: node.metadata for node in scene.nodes()}


def warnings_of(result: ConversionResult) -> list[str]:
    return [entry["warning"] for entry in result.result if "warning" in entry]


# -- object metadata -------------------------------------------------------------------------------------


def test_a_raw_gltf_keeps_every_extra_as_metadata(tmp_path: Path) -> None:
    scene = load_model(extras_glb(tmp_path))
    kept = metadata_of(scene)
    assert kept["Root"] == ROOT_EXTRAS | {"nested": '{"x": [1, 2]}'}  # nested values as JSON text
    assert kept["Box"] == {"partNumber": "B-2", "x": 1}
    assert kept["Sphere"] == {}
    assert isinstance(kept["Root"]["flag"], bool)
    assert isinstance(kept["Root"]["count"], int)
    copy = Scene()
    copy.add_scene(scene)  # what a render server does with a loaded model
    assert metadata_of(copy) == kept


def test_metadata_keys_select_what_the_asset_keeps(tmp_path: Path) -> None:
    asset, result = convert(
        extras_glb(tmp_path), tmp_path / "out", {"metadataKeys": ["part*", "flag", "x*z"]}
    )
    assert metadata_of(asset.scene) == {
        "Root": {"partNumber": "A-1", "partMass": 2.5, "flag": True},
        "Box": {"partNumber": "B-2"},  # "x" does not match "x*z"
        "Sphere": {},
    }
    assert warnings_of(result) == []
    assert any("object metadata: 2 node(s) keep" in line for line in result.log_lines)
    # The render server's loader reads the asset's metadata into its nodes too.
    loaded = load_model(result.asset_path)
    assert loaded.node("Box").metadata == {"partNumber": "B-2"}
    assert loaded.node("Root").metadata["partMass"] == 2.5


def test_without_metadata_keys_no_metadata_is_kept_as_in_arr(tmp_path: Path) -> None:
    asset, result = convert(extras_glb(tmp_path), tmp_path / "out")
    assert all(not node.metadata for node in asset.scene.nodes())
    assert any("no metadataKeys: no object metadata kept" in line for line in result.log_lines)
    with_all, _ = convert(extras_glb(tmp_path), tmp_path / "all", {"metadataKeys": ["*"]})
    assert with_all.scene.node("Root").metadata == ROOT_EXTRAS | {"nested": '{"x": [1, 2]}'}


def test_metadata_past_the_limit_fails_the_conversion_clearly(tmp_path: Path) -> None:
    source = extras_glb(tmp_path, big="x" * MAX_METADATA_BYTES)
    # Selected away, the big value costs nothing.
    asset, _ = convert(source, tmp_path / "small", {"metadataKeys": ["partNumber"]})
    assert asset.scene.node("Root").metadata == {"partNumber": "A-1"}
    with pytest.raises(ConversionFailed, match=r"object metadata past .* bytes.*name fewer keys") as caught:
        convert(source, tmp_path / "big", {"metadataKeys": ["blob", "partNumber"]})
    assert caught.value.code == "MetadataTooLarge"
    result = json.loads((tmp_path / "big" / "out.result.json").read_text())
    assert result[-2]["error"] == "MetadataTooLarge"
    # A render server loading a raw file keeps metadata up to the limit; the nodes past it keep none.
    raw = tmp_path / "raw"
    raw.mkdir()
    root = load_model(extras_glb(raw)).node("Root").metadata
    keeper = MetadataKeeper(limit=metadata_bytes(root))
    scene = load_model(extras_glb(raw), metadata=keeper)
    assert metadata_of(scene) == {"Root": root, "Box": {}, "Sphere": {}}
    assert (keeper.kept, keeper.overflow) == (1, 1)


# -- material overrides --------------------------------------------------------------------------------------

OVERRIDES = [
    {
        "name": "Red",
        "albedoColor": {"r": 0.0, "g": 1.0, "b": 0.0, "a": 1.0},
        "roughness": 0.2,
        "unlit": True,
        "textureCoordinateScale": {"x": 2.0, "y": 3.0},
        "textureCoordinateOffset": {"x": 0.5, "y": 0.25},
        "reflectivity": 1.0,
    },
    {
        "name": "Bl.*",
        "nameMatching": "regex",
        "metalness": 0.75,
        "isDoubleSided": True,
        "transparent": True,
        "albedoColor": {"a": 0.5},
    },
    {"name": "Missing", "roughness": 0.1},
]


def material(asset: Asset, node: str) -> Material:
    mesh = asset.scene.node(node).mesh
    assert mesh is not None
    return mesh.primitives[0].material


def test_overrides_change_the_named_materials_and_survive_in_the_asset(tmp_path: Path) -> None:
    source = fixtures.two_node_glb(tmp_path)
    (tmp_path / "two_nodes.MaterialOverrides.json").write_text(json.dumps(OVERRIDES))
    asset, result = convert(source, tmp_path / "out")
    red = material(asset, "RedBox")
    assert red.name == "Red"
    assert red.base_color_factor == (0.0, 1.0, 0.0, 1.0)
    assert red.roughness_factor == pytest.approx(0.2)
    assert red.unlit
    assert red.uv_scale == (2.0, 3.0)
    assert red.uv_offset == (0.5, 0.25)
    blue = material(asset, "BlueSphere")
    assert blue.base_color_factor == (0.0, 0.0, 1.0, 0.5)  # alpha alone: the colour stays
    assert blue.metallic_factor == pytest.approx(0.75)
    assert blue.double_sided
    assert blue.alpha_mode == "BLEND"
    assert not blue.unlit
    assert result.info["materialOverrides"] == {"numOverrides": 3, "numOverriddenMaterials": 2}
    assert warnings_of(result) == ["UnknownMaterialOverrideProperty", "MaterialOverrideUnused"]
    details = [entry["details"] for entry in result.result if "warning" in entry]
    assert "'reflectivity'" in details[0]
    assert "entry 0 ('Red')" in details[0]
    assert "entry 2 ('Missing') matched no material" in details[1]
    assert result.result[-1] == {"result": "succeeded with warnings"}
    # Read as a render server does: the material as stored, which the renderer draws unlit.
    drawn = load_model(result.asset_path).node("RedBox").mesh
    assert drawn is not None
    shown = drawn.primitives[0].material
    assert shown.unlit
    assert shown.base_color_factor == (0.0, 1.0, 0.0, 1.0)
    assert shown.uv_scale == (2.0, 3.0)


def test_overrides_apply_before_deduplication(tmp_path: Path) -> None:
    """ARR: deduplication happens after the overrides, so two equal materials can be told apart."""
    scene = trimesh.Scene()
    for index, name in enumerate(("A", "B")):
        box = trimesh.creation.box()
        box.visual = trimesh.visual.TextureVisuals(
            material=trimesh.visual.material.PBRMaterial(name=name, baseColorFactor=(200, 200, 200, 255))
        )
        scene.add_geometry(
            box,
            node_name=f"Box{name}",
            transform=trimesh.transformations.translation_matrix([index * 2, 0, 0]),
        )
    source = tmp_path / "boxes.glb"
    source.write_bytes(scene.export(file_type="glb"))
    plain, _ = convert(source, tmp_path / "plain")
    assert material(plain, "BoxA") is material(plain, "BoxB")  # equal: deduplicated
    (tmp_path / "boxes.MaterialOverrides.json").write_text('[{"name": "B", "roughness": 0.1}]')
    asset, result = convert(source, tmp_path / "out")
    assert material(asset, "BoxB").roughness_factor == pytest.approx(0.1)
    assert material(asset, "BoxA").roughness_factor == pytest.approx(1.0)
    assert result.info["materialOverrides"] == {"numOverrides": 1, "numOverriddenMaterials": 1}


def test_texture_maps_and_vertex_colours_can_be_ignored(tmp_path: Path) -> None:
    source = fixtures.textured_gltf(tmp_path)
    (tmp_path / "quad.MaterialOverrides.json").write_text(
        '[{"name": "Striped", "ignoreTextureMaps": ["AlbedoMap", "SpecularMap"], "alphaClipEnabled": true,'
        ' "alphaClipThreshold": 0.25}]'
    )
    asset, result = convert(source, tmp_path / "out")
    striped = material(asset, "Quad")
    assert striped.base_color_texture is None
    assert striped.alpha_mode == "MASK"
    assert striped.alpha_cutoff == pytest.approx(0.25)
    assert any("SpecularMap: no such map" in line for line in result.log_lines)
    ply, _ = models.coloured_ply(tmp_path)
    kept, _ = convert(ply, tmp_path / "kept")
    assert kept.scene.meshes()[0].primitives[0].colors is not None
    (tmp_path / "box.MaterialOverrides.json").write_text('[{"name": "", "useVertexColor": false}]')
    dropped, _ = convert(ply, tmp_path / "dropped")
    assert dropped.scene.meshes()[0].primitives[0].colors is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{", "not valid JSON"),
        ('{"name": "Red"}', "must hold a JSON array"),
        ("[42]", "entry 0 must be an object"),
        ('[{"roughness": 1}]', 'entry 0 needs a "name"'),
        ('[{"name": "Red", "roughness": "x"}]', "entry 0 \\('Red'\\): roughness must be a number"),
        ('[{"name": "Red", "metalness": 2}]', "metalness must be between 0 and 1"),
        ('[{"name": "Red", "albedoColor": {"r": 1}}]', "albedoColor needs all of r, g and b"),
        ('[{"name": "Red", "ignoreTextureMaps": ["Glow"]}]', '"Glow" is not one of AlbedoMap'),
        ('[{"name": "Red", "nameMatching": "glob"}]', 'nameMatching must be "exact" or "regex"'),
        ('[{"name": "(", "nameMatching": "regex"}]', "not a valid regular expression"),
        ('[{"name": "Red", "unlit": "yes"}]', "unlit must be true or false"),
    ],
)
def test_malformed_override_files_fail_the_conversion(tmp_path: Path, text: str, message: str) -> None:
    source = fixtures.two_node_glb(tmp_path)
    (tmp_path / "two_nodes.MaterialOverrides.json").write_text(text)
    with pytest.raises(ConversionFailed, match=message) as caught:
        convert(source, tmp_path / "out")
    assert caught.value.code == "InvalidMaterialOverrides"
    assert caught.value.message.startswith("two_nodes.MaterialOverrides.json: ")
    result = json.loads((tmp_path / "out" / "out.result.json").read_text())
    assert result[-2]["error"] == "InvalidMaterialOverrides"
    assert not (tmp_path / "out" / "out.arrAsset").exists()


def test_the_deprecated_setting_names_the_file(tmp_path: Path) -> None:
    source = fixtures.two_node_glb(tmp_path)
    (tmp_path / "box_materials_override.json").write_text('[{"name": "Red", "roughness": 0.3}]')
    asset, result = convert(source, tmp_path / "out", {"material-override": "box_materials_override.json"})
    assert material(asset, "RedBox").roughness_factor == pytest.approx(0.3)
    assert warnings_of(result) == ["DeprecatedMaterialOverride"]
    for named, message in (
        ("../elsewhere.json", "outside the model's folder"),
        ("nope.json", "not in the input"),
    ):
        with pytest.raises(ConversionFailed, match=message) as caught:
            convert(source, tmp_path / "bad", {"material-override": named})
        assert caught.value.code == "InvalidMaterialOverrides"


def test_override_files_are_bounded(tmp_path: Path) -> None:
    source = fixtures.two_node_glb(tmp_path)
    (tmp_path / "two_nodes.MaterialOverrides.json").write_text("[" + " " * (1 << 20) + "]")
    with pytest.raises(ConversionFailed, match="larger than 1048576 bytes"):
        convert(source, tmp_path / "out")
