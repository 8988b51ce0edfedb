"""The .arrAsset's version 2 additions: node object metadata and the materials' unlit flag and uv transform,
their round trip and checks, and an asset written by version 1 still loading."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from typing import Any

import pytest

from openrr.model.arrasset.layout import Asset
from openrr.model.arrasset.reader import read_asset
from openrr.model.arrasset.writer import write_asset
from openrr.model.loader import load_model
from openrr.model.mesh import Material
from openrr.model.metadata import MAX_METADATA_BYTES
from tests.assets import models
from tests.model.test_arrasset import manifest_of, refused, with_manifest

V1_ASSET = Path(__file__).parent / "data" / "quad-v1.arrAsset"


def test_metadata_and_material_fields_round_trip() -> None:
    scene = models.rich_scene()
    scene.node("A").metadata = {"part": "A-1", "mass": 2.5, "count": 3, "flag": False, "text": "é"}
    mesh = scene.node("A").mesh
    assert mesh is not None
    edited = Material(name="Edited", unlit=True, uv_scale=(2.0, 0.5), uv_offset=(0.25, -1.0))
    mesh.primitives[0].material = edited
    data = write_asset(Asset(scene))
    assert struct.unpack_from("<I", data, 8)[0] == 3
    rows = {row["name"]: row for row in manifest_of(data)["nodes"]}
    assert rows["A"]["metadata"] == scene.node("A").metadata
    assert all("metadata" not in row for name, row in rows.items() if name != "A")  # absent when empty
    copy = read_asset(data).scene
    assert {n.name: n.metadata for n in copy.nodes()} == {n.name: n.metadata for n in scene.nodes()}
    read = copy.node("A").mesh
    assert read is not None
    assert dataclasses.astuple(read.primitives[0].material) == dataclasses.astuple(edited)
    # Read for today's renderer: a part with vertex colours is not emulated, and stays marked unlit.
    shown = read_asset(data).scene.node("A").mesh
    assert shown is not None
    assert shown.primitives[0].material.unlit


def test_an_asset_of_format_version_1_still_loads() -> None:
    """``data/quad-v1.arrAsset``: the textured quad of ``tests.render.fixtures.textured_gltf``, converted by
    openrr before version 2 (no metadata, no uv transforms, no per-material unlit)."""
    data = V1_ASSET.read_bytes()
    assert struct.unpack_from("<I", data, 8)[0] == 1
    for scene in (read_asset(data).scene, load_model(V1_ASSET)):
        (node,) = scene.nodes()
        assert node.name == "Quad"
        assert node.metadata == {}
        assert node.mesh is not None
        material = node.mesh.primitives[0].material
        assert material.name == "Striped"
        assert (material.unlit, material.uv_scale, material.uv_offset) == (False, (1.0, 1.0), (0.0, 0.0))
        assert material.base_color_texture is not None
        assert material.base_color_texture.shape == (16, 16, 4)


@pytest.fixture(scope="module")
def small_asset() -> bytes:
    return write_asset(Asset(models.rich_scene()))


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ([1, 2], "a node's metadata is not an object"),
        ({"a": {"b": 1}}, "metadata 'a' has a value of an unsupported type"),
        ({"a": None}, "metadata 'a' has a value of an unsupported type"),
        ({"a": "x" * MAX_METADATA_BYTES}, f"its object metadata exceeds {MAX_METADATA_BYTES} bytes"),
    ],
)
def test_bad_node_metadata_is_refused(small_asset: bytes, metadata: Any, message: str) -> None:
    manifest = manifest_of(small_asset)
    manifest["nodes"][0]["metadata"] = metadata
    assert message in refused(with_manifest(small_asset, manifest))
