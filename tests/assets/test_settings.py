"""ConversionSettings.json: ARR's schema (defaults, enums, additionalProperties false), format defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from openrr.assets import ConversionFailed
from openrr.assets.settings import ConversionSettings, settings_file_for, settings_json
from openrr.model.arrasset.vertex import VertexFormat


def failure(data: Any) -> str:
    with pytest.raises(ConversionFailed) as caught:
        ConversionSettings.from_json(
            json.dumps(data) if not isinstance(data, str) else data, "m.ConversionSettings.json"
        )
    assert caught.value.code == "InvalidSettings"
    assert caught.value.message.startswith("m.ConversionSettings.json: ")
    return caught.value.message


def test_empty_object_gives_arr_defaults() -> None:
    settings = ConversionSettings.from_json("{}")
    assert settings == ConversionSettings()
    assert settings.scaling == 1.0
    assert not settings.recenter_to_origin
    assert settings.scene_graph_mode == "dynamic"
    assert settings.generate_collision_mesh
    assert settings.deduplicate_materials
    assert not settings.unlit_materials
    assert settings.fbx_assume_metallic
    assert settings.axis == ("+x", "+y", "+z")
    assert settings.metadata_keys == ()
    assert settings.vertex == VertexFormat(
        position="32_32_32_FLOAT",
        color0="8_8_8_8_UNSIGNED_NORMALIZED",
        color1="NONE",
        normal="8_8_8_8_SIGNED_NORMALIZED",
        tangent="8_8_8_8_SIGNED_NORMALIZED",
        binormal="8_8_8_8_SIGNED_NORMALIZED",
        texcoord0="32_32_FLOAT",
        texcoord1="32_32_FLOAT",
    )
    # Format-dependent until a format is known.
    assert settings.gamma_to_linear_material is None
    assert settings.opaque_material_default_sidedness is None


def test_every_property_parsed() -> None:
    document = {
        "scaling": 0.01,
        "recenterToOrigin": True,
        "opaqueMaterialDefaultSidedness": "SingleSided",
        "material-override": "box_materials_override.json",
        "gammaToLinearMaterial": True,
        "gammaToLinearVertex": False,
        "sceneGraphMode": "none",
        "generateCollisionMesh": False,
        "unlitMaterials": True,
        "deduplicateMaterials": False,
        "fbxAssumeMetallic": False,
        "axis": ["+x", "+z", "-y"],
        "vertex": {"position": "16_16_16_16_FLOAT", "normal": "NONE", "texcoord0": "16_16_FLOAT"},
        "metadataKeys": ["Part*", "Id"],
    }
    settings = ConversionSettings.from_json("\ufeff" + json.dumps(document))  # a BOM is tolerated
    assert settings.scaling == 0.01
    assert settings.recenter_to_origin
    assert settings.opaque_material_default_sidedness == "SingleSided"
    assert settings.material_override == "box_materials_override.json"
    assert settings.gamma_to_linear_material is True
    assert settings.gamma_to_linear_vertex is False
    assert settings.scene_graph_mode == "none"
    assert not settings.generate_collision_mesh
    assert settings.unlit_materials
    assert not settings.deduplicate_materials
    assert not settings.fbx_assume_metallic
    assert settings.axis == ("+x", "+z", "-y")
    assert settings.metadata_keys == ("Part*", "Id")
    assert settings.vertex.position == "16_16_16_16_FLOAT"
    assert settings.vertex.normal == "NONE"
    assert settings.vertex.color0 == "8_8_8_8_UNSIGNED_NORMALIZED"  # unspecified streams keep their default
    assert settings.specified == document
    assert settings_json(settings)["axis"] == ["+x", "+z", "-y"]
    assert settings.axis_mapping() == ((0, 1.0), (2, 1.0), (1, -1.0))


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"scale": 2}, "unknown property 'scale'"),
        ({"Scaling": 2, "recenter": True}, "unknown properties 'Scaling', 'recenter'"),
        ({"vertex": {"uv": "NONE"}}, "unknown vertex property 'uv'"),
        ({"scaling": "2"}, 'scaling must be a number, not "2"'),
        ({"scaling": True}, "scaling must be a number, not true"),
        ({"scaling": 0}, "scaling must be a finite number greater than 0, not 0"),
        ({"scaling": -1.5}, "greater than 0"),
        ('{"scaling": NaN}', "scaling must be a finite number greater than 0, not nan"),
        ({"recenterToOrigin": 1}, "recenterToOrigin must be true or false, not 1"),
        ({"unlitMaterials": "true"}, 'unlitMaterials must be true or false, not "true"'),
        ({"sceneGraphMode": "Dynamic"}, "sceneGraphMode must be one of none, static, dynamic"),
        ({"opaqueMaterialDefaultSidedness": None}, "opaqueMaterialDefaultSidedness must be one of"),
        ({"material-override": 3}, "material-override must be a string"),
        ({"axis": ["+x", "+y"]}, "axis must be an array of 3 strings"),
        ({"axis": ["+x", "+y", "z"]}, 'axis[2] must be one of default, +x, -x, +y, -y, +z, -z, not "z"'),
        ({"axis": ["+x", "-x", "+z"]}, "uses a source axis twice"),
        ({"axis": ["default", "+x", "+z"]}, "uses a source axis twice"),
        ({"vertex": []}, "vertex must be an object"),
        (
            {"vertex": {"position": "NONE"}},
            "vertex.position must be one of 32_32_32_FLOAT, 16_16_16_16_FLOAT",
        ),
        (
            {"vertex": {"normal": "16_16_FLOAT"}},
            "vertex.normal must be one of NONE, 8_8_8_8_SIGNED_NORMALIZED",
        ),
        ({"metadataKeys": "Part*"}, "metadataKeys must be an array of strings"),
        ({"metadataKeys": [1]}, "metadataKeys must be an array of strings"),
        ({"metadataKeys": ["k"] * 1001}, "metadataKeys has 1001 entries, more than 1000"),
        ({"metadataKeys": ["k" * 1001]}, "a metadataKeys entry is longer than 1000 characters"),
        ([], "must hold a JSON object"),
        ("{'scaling': 1}", "not valid JSON"),
    ],
)
def test_invalid_settings_name_the_property(document: Any, expected: str) -> None:
    assert expected in failure(document)


def test_long_values_are_shortened_in_messages() -> None:
    message = failure({"material-override": ["x" * 500]})
    assert len(message) < 200
    assert message.endswith("...")


def test_format_defaults() -> None:
    plain = ConversionSettings()
    for extension in (".ply", ".XYZ", "fbx", ".e57", ".las", ".laz"):
        resolved = plain.for_format(extension)
        assert resolved.gamma_to_linear_material is True
        assert resolved.gamma_to_linear_vertex is True
    for extension in (".glb", ".gltf", ".obj"):
        resolved = plain.for_format(extension)
        assert resolved.gamma_to_linear_material is False
        assert resolved.gamma_to_linear_vertex is False
    explicit = ConversionSettings.from_json('{"gammaToLinearVertex": false}').for_format(".ply")
    assert explicit.gamma_to_linear_vertex is False
    assert explicit.gamma_to_linear_material is True


def test_axis_default_entries_keep_their_slot() -> None:
    settings = ConversionSettings.from_json('{"axis": ["default", "-z", "+y"]}')
    assert settings.axis_mapping() == ((0, 1.0), (2, -1.0), (1, 1.0))


def test_settings_file_lookup_and_load(tmp_path: Path) -> None:
    model = tmp_path / "car.glb"
    model.write_bytes(b"")
    assert settings_file_for(model) is None
    legacy = tmp_path / "conversionSettings.json"
    legacy.write_text('{"scaling": 2}')
    assert settings_file_for(model) == legacy
    specific = tmp_path / "car.ConversionSettings.json"
    specific.write_text('{"scaling": 3}')
    assert settings_file_for(model) == specific
    assert ConversionSettings.load(specific).scaling == 3.0
    specific.write_bytes(b"\xff\xfe{")
    with pytest.raises(ConversionFailed, match=r"car\.ConversionSettings\.json is not UTF-8 text"):
        ConversionSettings.load(specific)
    with pytest.raises(ConversionFailed, match=r"cannot read absent\.json"):
        ConversionSettings.load(tmp_path / "absent.json")
