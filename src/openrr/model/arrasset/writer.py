"""Writing an ``.arrAsset``: ``write_asset`` lays out a scene, its materials, images and point clouds as the
manifest and the aligned buffers ``docs/arrasset.md`` describes.

The bytes are the contract (``tests/model/test_arrasset.py`` and the converter's tests pin them): keep the
order in which buffers, images, materials and meshes are appended, and the manifest's key order.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr import __version__
from openrr.model.arrasset.layout import (
    ALIGN,
    COMPRESS_IMAGES_BELOW,
    HEADER,
    HEADER_CHECKED,
    HEADER_SIZE,
    MAGIC,
    VERSION,
    Asset,
    PointCloud,
)
from openrr.model.arrasset.vertex import VertexFormat
from openrr.model.mesh import Material, Mesh, Primitive
from openrr.model.scene import Node


class _Writer:
    """The manifest's tables (buffers, images, materials, meshes) and the data chunks, appended in the
    order the format's bytes depend on; images and materials are stored once each."""

    def __init__(self, vertex: VertexFormat, deduplicate_materials: bool, compress_geometry: bool) -> None:
        self.vertex = vertex
        self.deduplicate = deduplicate_materials
        self.compress_geometry = compress_geometry
        self.chunks: list[bytes | memoryview] = []
        self.buffers: list[dict[str, Any]] = []
        self.size = 0
        self.images: list[dict[str, Any]] = []
        self.image_index: dict[int, int] = {}
        self.image_by_content: dict[tuple[int, tuple[int, ...]], list[tuple[NDArray[np.uint8], int]]] = {}
        self.materials: list[dict[str, Any]] = []
        self.material_index: dict[int, int] = {}
        self.material_by_key: dict[str, int] = {}
        self.meshes: list[dict[str, Any]] = []

    def buffer(self, array: NDArray[Any], compress: bool = False) -> int:
        array = np.ascontiguousarray(array)
        dtype = array.dtype.newbyteorder("<").str if array.dtype.itemsize > 1 else array.dtype.str
        if dtype.startswith("|"):
            dtype = "<" + dtype[1:]
        # A view of the array, not a copy: a 50-million-point cloud is 800 MB (joined once, at the end).
        contiguous: Any = np.ascontiguousarray(array.astype(dtype, copy=False))
        raw: bytes | memoryview = memoryview(contiguous).cast("B")
        codec = "none"
        if compress:
            packed = zlib.compress(raw, 1)
            if len(packed) < COMPRESS_IMAGES_BELOW * len(raw):
                raw, codec = packed, "zlib"
        pad = -self.size % ALIGN
        if pad:
            self.chunks.append(b"\0" * pad)
            self.size += pad
        self.buffers.append(
            {
                "offset": self.size,
                "length": len(raw),
                "crc32": zlib.crc32(raw),
                "dtype": dtype,
                "shape": list(array.shape),
                "codec": codec,
            }
        )
        self.chunks.append(raw)
        self.size += len(raw)
        return len(self.buffers) - 1

    def image(self, image: NDArray[np.uint8] | None) -> int | None:
        if image is None:
            return None
        if id(image) in self.image_index:
            return self.image_index[id(image)]
        # Equal pixels under different objects (the same file referenced twice) are stored once.
        pixels = np.ascontiguousarray(image, dtype=np.uint8)
        key = (zlib.crc32(pixels.data), pixels.shape)
        for other, index in self.image_by_content.get(key, []):
            if np.array_equal(other, pixels):
                self.image_index[id(image)] = index
                return index
        height, width = pixels.shape[:2]
        buffer = self.buffer(pixels.reshape(height, width, 4), compress=True)
        self.images.append({"buffer": buffer, "width": width, "height": height, "encoding": "rgba8"})
        index = len(self.images) - 1
        self.image_by_content.setdefault(key, []).append((pixels, index))
        self.image_index[id(image)] = index
        return index

    def material(self, material: Material, unlit: bool) -> int:
        if id(material) in self.material_index:
            return self.material_index[id(material)]
        entry = {
            "name": material.name,
            "baseColorFactor": list(material.base_color_factor),
            "baseColorTexture": self.image(material.base_color_texture),
            "metallicFactor": material.metallic_factor,
            "roughnessFactor": material.roughness_factor,
            "metallicRoughnessTexture": self.image(material.metallic_roughness_texture),
            "normalTexture": self.image(material.normal_texture),
            "occlusionTexture": self.image(material.occlusion_texture),
            "emissiveFactor": list(material.emissive_factor),
            "emissiveTexture": self.image(material.emissive_texture),
            "doubleSided": material.double_sided,
            "alphaMode": material.alpha_mode,
            "alphaCutoff": material.alpha_cutoff,
            "unlit": unlit or material.unlit,
            "uvScale": list(material.uv_scale),
            "uvOffset": list(material.uv_offset),
        }
        if material.uv_rotation:  # written only where set: readers of version 2 without it read 0
            entry["uvRotation"] = material.uv_rotation
        # ARR's deduplicateMaterials: same properties and textures, whatever the name. The images are
        # already deduplicated by content, so their indices compare content.
        key = json.dumps({k: v for k, v in entry.items() if k != "name"}, sort_keys=True)
        if self.deduplicate and key in self.material_by_key:
            index = self.material_by_key[key]
        else:
            self.materials.append(entry)
            index = len(self.materials) - 1
            self.material_by_key.setdefault(key, index)
        self.material_index[id(material)] = index
        return index

    def mesh(self, mesh: Mesh, unlit: bool) -> dict[str, Any]:
        return {
            "name": mesh.name,
            "bounds": mesh.bounds.tolist(),
            "triangles": mesh.triangle_count,
            "primitives": [self.primitive(p, unlit) for p in mesh.primitives],
        }

    def primitive(self, p: Primitive, unlit: bool) -> dict[str, Any]:
        v = self.vertex
        count = len(p.positions)
        z = self.compress_geometry
        entry: dict[str, Any] = {
            "mode": "triangles",
            "material": self.material(p.material, unlit),
            "vertexCount": count,
            "bounds": p.bounds.tolist(),
            "positions": self.positions(p.positions, p.bounds, v.position == "16_16_16_16_FLOAT"),
        }
        if p.normals is not None and v.normal != "NONE":
            bits16 = v.normal == "16_16_16_16_FLOAT"
            scale = 32767.0 if bits16 else 127.0
            q = np.rint(np.clip(p.normals, -1.0, 1.0) * scale).astype(np.int16 if bits16 else np.int8)
            entry["normals"] = {"buffer": self.buffer(q, z), "encoding": "snorm16" if bits16 else "snorm8"}
        if p.uvs is not None and v.texcoord0 != "NONE":
            # Half floats overflow past 65504; such coordinates keep full precision whatever was asked.
            half = v.texcoord0 == "16_16_FLOAT" and float(np.abs(p.uvs).max()) < 65504.0
            uvs = p.uvs.astype(np.float16) if half else p.uvs
            entry["uvs"] = {"buffer": self.buffer(uvs, z), "encoding": "float16" if half else "float32"}
        if p.colors is not None and v.color0 != "NONE":
            entry["colors"] = {"buffer": self.buffer(_unorm8(p.colors), z), "encoding": "unorm8"}
        small = count <= 65536  # uint16 indices halve the largest array of small primitives
        indices = p.indices.astype(np.uint16) if small else p.indices
        entry["indices"] = {"buffer": self.buffer(indices, z), "type": "uint16" if small else "uint32"}
        return entry

    def positions(
        self, positions: NDArray[np.float32], bounds: NDArray[np.float64], quantise: bool
    ) -> dict[str, Any]:
        if not quantise:
            return {"buffer": self.buffer(positions, self.compress_geometry), "encoding": "float32"}
        low = bounds[0].astype(np.float32)
        extent = np.maximum(bounds[1] - bounds[0], 1e-30).astype(np.float32)
        q = np.rint((positions - low) / extent * 65535.0)
        unorm = np.clip(q, 0, 65535).astype(np.uint16)
        return {
            "buffer": self.buffer(unorm, self.compress_geometry),
            "encoding": "unorm16",
            "min": low.tolist(),
            "extent": extent.tolist(),
        }

    def points(self, cloud: PointCloud) -> dict[str, Any]:
        bounds = cloud.bounds
        entry: dict[str, Any] = {
            "mode": "points",
            "pointCount": cloud.count,
            "pointSize": cloud.point_size,
            "bounds": bounds.tolist(),
            "positions": self.positions(cloud.positions, bounds, self.vertex.position == "16_16_16_16_FLOAT"),
        }
        if cloud.colors is not None and self.vertex.color0 != "NONE":
            colors = self.buffer(cloud.colors, self.compress_geometry)
            entry["colors"] = {"buffer": colors, "encoding": "unorm8"}
        entry["levels"] = [{"count": level.count, "spacing": level.spacing} for level in cloud.levels]
        return {
            "name": "points",
            "bounds": bounds.tolist(),
            "triangles": 0,
            "points": cloud.count,
            "primitives": [entry],
        }


def _unorm8(colors: NDArray[np.float32]) -> NDArray[np.uint8]:
    packed: NDArray[np.uint8] = np.rint(np.clip(colors, 0.0, 1.0) * 255.0).astype(np.uint8)
    return packed


def write_asset(
    asset: Asset,
    *,
    vertex: VertexFormat | None = None,
    deduplicate_materials: bool = True,
    compress_geometry: bool = False,
    source: Mapping[str, Any] | None = None,
) -> bytes:
    """The bytes of an ``.arrAsset`` holding ``asset``.

    ``vertex`` chooses the precision of each stream (ARR's ``vertex`` settings; default: full-precision
    positions and uvs, 8-bit normals and colours). ``compress_geometry`` zlib-compresses vertex and index
    buffers too: smaller files for slow links, slower loads (see ``openrr.model.arrasset``).
    Nodes keep their ``metadata`` (bool, int, float and str values, as ``openrr.model.metadata`` makes
    them). Point clouds (``Asset.points`` or ``Node.points``) are written in their order, with their
    levels of detail (``openrr.model.point_order`` makes both). Raises ValueError for a node with both a
    mesh and a point cloud, or for metadata JSON cannot carry (a non-finite number).
    """
    writer = _Writer(vertex or VertexFormat(), deduplicate_materials, compress_geometry)
    nodes = _SceneWriter(writer, asset).nodes()
    manifest = {
        "generator": f"openrr {__version__}",
        "name": asset.scene.name,
        "nodes": nodes,
        "meshes": writer.meshes,
        "materials": writer.materials,
        "images": writer.images,
        "buffers": writer.buffers,
        "source": dict(source or {}),
        "statistics": asset.statistics,
    }
    text = json.dumps(manifest, separators=(",", ":"), allow_nan=False).encode()
    manifest_offset = HEADER_SIZE
    data_offset = manifest_offset + len(text) + (-(manifest_offset + len(text)) % ALIGN)
    head = _header(len(text), zlib.crc32(text), data_offset, writer.size)
    return b"".join([head, text, b"\0" * (data_offset - manifest_offset - len(text)), *writer.chunks])


def _header(manifest_length: int, manifest_crc: int, data_offset: int, data_length: int) -> bytes:
    """The 64-byte header: the manifest right after it, the data at ``data_offset``, and the CRC-32 of
    the header's first 56 bytes in place of the last two fields."""
    head = HEADER.pack(
        MAGIC, VERSION, 0, HEADER_SIZE, manifest_length, manifest_crc, 0, data_offset, data_length, 0, 0
    )
    return head[:HEADER_CHECKED] + struct.pack("<II", zlib.crc32(head[:HEADER_CHECKED]), 0)


class _SceneWriter:
    """The manifest's node rows of one asset; meshes (with their levels of detail, once per mesh however
    many nodes share it) and point clouds are appended to the writer as the nodes name them."""

    def __init__(self, writer: _Writer, asset: Asset) -> None:
        self.writer = writer
        self.asset = asset
        self.mesh_index: dict[int, int] = {}
        self.row: dict[int, int] = {}

    def nodes(self) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = []
        for node in self.asset.scene.nodes():  # parents before children, so a parent's row is always known
            self.row[node.id] = len(nodes)
            nodes.append(self.node(node))
        return nodes

    def node(self, node: Node) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": node.name}
        if node.parent is not None:
            entry["parent"] = self.row[node.parent]
        if not np.array_equal(node.transform, np.eye(4)):
            entry["matrix"] = node.transform.reshape(-1).tolist()
        cloud = self.asset.points.get(node.id, node.points)
        if cloud is not None:
            if node.mesh is not None:
                raise ValueError(f"node {node.id} has both a mesh and a point cloud")
            self.writer.meshes.append(self.writer.points(cloud))
            entry["mesh"] = len(self.writer.meshes) - 1
        elif node.mesh is not None:
            entry["mesh"] = self.mesh(node.mesh)
        if not node.visible:
            entry["visible"] = False
        if node.color is not None:
            entry["color"] = list(node.color)
        if node.metadata:
            entry["metadata"] = dict(node.metadata)
        return entry

    def mesh(self, mesh: Mesh) -> int:
        if id(mesh) in self.mesh_index:
            return self.mesh_index[id(mesh)]
        meshes = self.writer.meshes
        meshes.append(self.writer.mesh(mesh, self.asset.unlit))
        index = len(meshes) - 1
        self.mesh_index[id(mesh)] = index
        levels = []
        for level in mesh.lods:
            meshes.append(self.writer.mesh(level.mesh, self.asset.unlit) | {"lodOf": index})
            levels.append({"mesh": len(meshes) - 1, "error": float(level.error)})
        if levels:
            meshes[index]["lods"] = levels
        return index
