"""openrr's ``.arrAsset``: a converted model laid out to load into a render server with almost no work.

``docs/arrasset.md`` describes it byte by byte. In short: a 64-byte header (magic, format version, where
the manifest and the data are, CRC-32s), a JSON manifest (nodes, materials, images, meshes with their
levels of detail, the buffer table, statistics), then the data: one little-endian array per buffer,
64-byte aligned, which the reader maps with ``numpy.frombuffer`` (no parsing, no copy for float32
positions and uint32 indices). It is not Microsoft's ``.arrAsset`` format, which is undocumented;
``read_asset`` says so when it sees anything else.

Why no compression of geometry by default: measured on a 1.31M-triangle mesh, zlib level 1 saves 46 %
but inflating takes 150 ms, about half of what loading the raw GLB costs, while mapping the raw arrays and
checking their CRC-32 takes about 10 ms. Images compress well more often (flat colours, masks) and their
only alternative is a PNG/JPEG decode, so they are compressed when that saves at least a quarter.

Levels of detail (LODs): meshes above ``LOD_MIN_TRIANGLES`` carry coarser copies made by ``simplify``
(vertex clustering on a grid). Each level records ``error``, the largest distance any vertex moved, in the
mesh's own units, which the renderer turns into pixels to pick the level it draws
(``openrr.render.renderer.choose_lod``). They travel on ``Mesh.lods``, in the file and in memory.

Point clouds: the renderer draws triangles only, so points are stored as a point primitive (positions and
colours, compact and ready for a future point renderer) and ``read_asset`` turns each point into a small
octahedron (8 triangles) to show them today; ``Asset.points`` keeps the points themselves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr import __version__
from openrr.assets.settings import VertexFormat
from openrr.model.loader import ModelLoadError
from openrr.model.scene import AlphaMode, LodLevel, Material, Mesh, Primitive, Scene

log = logging.getLogger("openrr.assets")

MAGIC = b"\x89ORR\r\n\x1a\n"  # PNG-style: a non-ASCII byte, CRLF and ^Z catch text-mode transfers
VERSION = 1
_HEADER = struct.Struct("<8sIIQQIIQQII")  # 64 bytes; see docs/arrasset.md
HEADER_SIZE = _HEADER.size
ALIGN = 64
LOD_MIN_TRIANGLES = 200_000  # below this a mesh is cheap enough on llvmpipe to draw whole
LOD_RATIOS = (0.25, 0.0625)  # triangle fractions of the levels, finest first
LOD_SMALLEST = 5_000  # no level below this many triangles
MAX_OCTAHEDRA = 2_500_000  # points shown as octahedra at most: 20 million triangles, ARR's Standard limit
_DTYPES = {"<f4", "<f2", "<u4", "<u2", "<u1", "<i1", "<i2"}
INFLATE_LIMIT = 2 << 30  # bytes all compressed buffers of one asset may inflate to
_COMPRESS_IMAGES_BELOW = 0.75  # zlib-compress an image when that keeps less than 75 % of its bytes


@dataclass(eq=False)
class PointCloud:
    """Points drawn at a node: positions (N, 3), linear RGBA colours (N, 4) or None, and the edge
    length of the octahedron each point becomes in a triangle renderer."""

    positions: NDArray[np.float32]
    colors: NDArray[np.float32] | None
    point_size: float


@dataclass(eq=False)
class Asset:
    """What an asset holds: the scene (its meshes carry their levels of detail), the point clouds by
    node id, and the manifest's ``statistics``.

    Writing: nodes listed in ``points`` must have no mesh. Reading: those nodes get an octahedra mesh.
    ``unlit`` marks every material as unlit (ARR's ``unlitMaterials``).
    """

    scene: Scene
    points: dict[int, PointCloud] = field(default_factory=dict)
    unlit: bool = False
    statistics: dict[str, Any] = field(default_factory=dict)


# -- writing -----------------------------------------------------------------------------------------------


class _Writer:
    def __init__(self, vertex: VertexFormat, deduplicate_materials: bool, compress_geometry: bool) -> None:
        self.vertex = vertex
        self.deduplicate = deduplicate_materials
        self.compress_geometry = compress_geometry
        self.chunks: list[bytes] = []
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
        raw = array.astype(dtype, copy=False).tobytes()
        codec = "none"
        if compress:
            packed = zlib.compress(raw, 1)
            if len(packed) < _COMPRESS_IMAGES_BELOW * len(raw):
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
            "unlit": unlit,
        }
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
        positions = np.ascontiguousarray(cloud.positions, dtype=np.float32).reshape(-1, 3)
        bounds = np.stack([positions.min(axis=0), positions.max(axis=0)]).astype(np.float64)
        entry: dict[str, Any] = {
            "mode": "points",
            "pointCount": len(positions),
            "pointSize": float(cloud.point_size),
            "bounds": bounds.tolist(),
            "positions": self.positions(positions, bounds, self.vertex.position == "16_16_16_16_FLOAT"),
        }
        if cloud.colors is not None and self.vertex.color0 != "NONE":
            colors = _unorm8(np.asarray(cloud.colors, dtype=np.float32).reshape(len(positions), 4))
            entry["colors"] = {"buffer": self.buffer(colors, self.compress_geometry), "encoding": "unorm8"}
        return {
            "name": "points",
            "bounds": bounds.tolist(),
            "triangles": 0,
            "points": len(positions),
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
    buffers too: smaller files for slow links, slower loads (see the module's docstring).
    """
    writer = _Writer(vertex or VertexFormat(), deduplicate_materials, compress_geometry)
    scene = asset.scene
    mesh_index: dict[int, int] = {}
    nodes: list[dict[str, Any]] = []
    row: dict[int, int] = {}

    def add_mesh(mesh: Mesh) -> int:
        if id(mesh) not in mesh_index:
            writer.meshes.append(writer.mesh(mesh, asset.unlit))
            index = len(writer.meshes) - 1
            mesh_index[id(mesh)] = index
            levels = []
            for level in mesh.lods:
                writer.meshes.append(writer.mesh(level.mesh, asset.unlit) | {"lodOf": index})
                levels.append({"mesh": len(writer.meshes) - 1, "error": float(level.error)})
            if levels:
                writer.meshes[index]["lods"] = levels
        return mesh_index[id(mesh)]

    for node in scene.nodes():  # parents before children, so a parent's row is always known
        entry: dict[str, Any] = {"name": node.name}
        if node.parent is not None:
            entry["parent"] = row[node.parent]
        if not np.array_equal(node.transform, np.eye(4)):
            entry["matrix"] = node.transform.reshape(-1).tolist()
        if node.id in asset.points:
            if node.mesh is not None:
                raise ValueError(f"node {node.id} has both a mesh and a point cloud")
            writer.meshes.append(writer.points(asset.points[node.id]))
            entry["mesh"] = len(writer.meshes) - 1
        elif node.mesh is not None:
            entry["mesh"] = add_mesh(node.mesh)
        if not node.visible:
            entry["visible"] = False
        if node.color is not None:
            entry["color"] = list(node.color)
        row[node.id] = len(nodes)
        nodes.append(entry)

    manifest = {
        "generator": f"openrr {__version__}",
        "name": scene.name,
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
    head = _HEADER.pack(
        MAGIC, VERSION, 0, manifest_offset, len(text), zlib.crc32(text), 0, data_offset, writer.size, 0, 0
    )
    head = head[:56] + struct.pack("<II", zlib.crc32(head[:56]), 0)
    return b"".join([head, text, b"\0" * (data_offset - manifest_offset - len(text)), *writer.chunks])


def conversion_hash(data: bytes | memoryview) -> str:
    """ARR's ``conversionHash``: 16 hex digits over what affects rendering (nodes, meshes, materials,
    images and the buffers' CRC-32s; not the generator, the source or the statistics)."""
    manifest = _manifest(memoryview(data), "asset", verify=True)[0]
    kept = {k: manifest.get(k) for k in ("nodes", "meshes", "materials", "images", "buffers")}
    return hashlib.blake2b(json.dumps(kept, sort_keys=True).encode(), digest_size=8).hexdigest().upper()


# -- reading -----------------------------------------------------------------------------------------------


class _Corrupt(Exception):
    """Raised inside the reader; ``read_asset`` turns it (and any slip on a malformed manifest) into
    a ``ModelLoadError``."""


def _manifest(view: memoryview, label: str, verify: bool) -> tuple[dict[str, Any], int, int]:
    size = len(view)
    if size < 12 or bytes(view[:8]) != MAGIC:
        if bytes(view[:4]) == b"glTF" or bytes(view[:1]) == b"{":
            raise ModelLoadError(f"{label}: this is a glTF file, not an .arrAsset")
        raise ModelLoadError(
            f"{label}: not an openrr .arrAsset (Microsoft's own .arrAsset files cannot be read: "
            "convert the source model with openrr)"
        )
    version = struct.unpack_from("<I", view, 8)[0]
    if version != VERSION:
        raise ModelLoadError(
            f"{label}: .arrAsset format version {version} is not supported (this openrr reads version "
            f"{VERSION}): convert the model again with this version"
        )
    if size < HEADER_SIZE:
        raise ModelLoadError(f"{label}: truncated .arrAsset ({size} bytes, shorter than its header)")
    (_, _, _, m_off, m_len, m_crc, _, d_off, d_len, h_crc, _) = _HEADER.unpack_from(view, 0)
    if zlib.crc32(view[:56]) != h_crc:
        raise ModelLoadError(f"{label}: corrupt .arrAsset (header checksum mismatch)")
    if d_off + d_len > size:
        raise ModelLoadError(f"{label}: truncated .arrAsset ({size} bytes, {d_off + d_len} expected)")
    if d_off + d_len < size:
        raise ModelLoadError(f"{label}: corrupt .arrAsset ({size - d_off - d_len} bytes after its end)")
    if not (m_off >= HEADER_SIZE and m_off + m_len <= d_off):
        raise ModelLoadError(f"{label}: corrupt .arrAsset (manifest outside the file)")
    text = view[m_off : m_off + m_len]
    if verify and zlib.crc32(text) != m_crc:
        raise ModelLoadError(f"{label}: corrupt .arrAsset (manifest checksum mismatch)")
    try:
        manifest = json.loads(bytes(text))
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise ModelLoadError(f"{label}: corrupt .arrAsset (manifest: {exc})") from None
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{label}: corrupt .arrAsset (the manifest is not an object)")
    return manifest, d_off, d_len


class _Reader:
    def __init__(
        self,
        view: memoryview,
        manifest: dict[str, Any],
        d_off: int,
        d_len: int,
        verify: bool,
        with_lods: bool,
    ) -> None:
        self.with_lods = with_lods
        self.view = view
        self.manifest = manifest
        self.d_off = d_off
        self.d_len = d_len
        self.verify = verify
        self.buffers: list[dict[str, Any]] = _list(manifest, "buffers")
        self.arrays: dict[int, NDArray[Any]] = {}
        self.images: dict[int, NDArray[np.uint8]] = {}
        self.materials: dict[tuple[int, bool], Material] = {}
        self.mesh_cache: dict[int, Mesh] = {}
        self.inflated = 0

    def array(
        self, index: Any, components: int | None = None, dtypes: Iterable[str] = _DTYPES
    ) -> NDArray[Any]:
        if not isinstance(index, int) or not 0 <= index < len(self.buffers):
            raise _Corrupt(f"buffer {index!r} does not exist")
        if index in self.arrays:
            return self.arrays[index]
        desc = self.buffers[index]
        offset, length, dtype = desc["offset"], desc["length"], desc["dtype"]
        shape = tuple(desc["shape"])
        if dtype not in _DTYPES or dtype not in dtypes:
            raise _Corrupt(f"buffer {index} has an unexpected type {dtype!r}")
        if not all(isinstance(n, int) and n >= 0 for n in (offset, length, *shape)):
            raise _Corrupt(f"buffer {index} has a malformed description")
        if components is not None and (len(shape) != 2 or shape[1] != components):
            raise _Corrupt(f"buffer {index} has shape {list(shape)}, not (n, {components})")
        if offset + length > self.d_len:
            raise _Corrupt(f"buffer {index} lies outside the file")
        raw = self.view[self.d_off + offset : self.d_off + offset + length]
        if self.verify and zlib.crc32(raw) != desc["crc32"]:
            raise _Corrupt(f"buffer {index} checksum mismatch")
        itemsize = np.dtype(dtype).itemsize
        expected = math.prod(shape) * itemsize
        if desc["codec"] == "zlib":
            # The file size is bounded by the loader's budget, but zlib inflates up to 1032:1: bound
            # what a small crafted file can make the server allocate.
            self.inflated += expected
            if self.inflated > INFLATE_LIMIT:
                raise _Corrupt(f"its compressed buffers inflate to more than {INFLATE_LIMIT} bytes")
            inflater = zlib.decompressobj()
            raw = memoryview(inflater.decompress(raw, expected))
            if inflater.unconsumed_tail or not inflater.eof:
                raise _Corrupt(f"buffer {index} inflates to more than its {expected} bytes")
        elif desc["codec"] != "none":
            raise _Corrupt(f"buffer {index} has an unknown codec {desc['codec']!r}")
        if len(raw) != expected:
            raise _Corrupt(f"buffer {index} holds {len(raw)} bytes, {expected} expected")
        array = np.frombuffer(raw, dtype=dtype).reshape(shape)
        self.arrays[index] = array
        return array

    def image(self, index: Any) -> NDArray[np.uint8] | None:
        if index is None:
            return None
        images = _list(self.manifest, "images")
        if not isinstance(index, int) or not 0 <= index < len(images):
            raise _Corrupt(f"image {index!r} does not exist")
        if index not in self.images:
            desc = images[index]
            if desc["encoding"] != "rgba8":
                raise _Corrupt(f"image {index} has an unknown encoding {desc['encoding']!r}")
            pixels = self.array(desc["buffer"], dtypes=("<u1",))
            if pixels.shape != (desc["height"], desc["width"], 4):
                raise _Corrupt(f"image {index} has shape {list(pixels.shape)}")
            self.images[index] = pixels
        return self.images[index]

    def material(self, index: Any, emulate_unlit: bool) -> Material:
        materials = _list(self.manifest, "materials")
        if not isinstance(index, int) or not 0 <= index < len(materials):
            raise _Corrupt(f"material {index!r} does not exist")
        m = materials[index]
        key = (index, emulate_unlit and isinstance(m, dict) and bool(m.get("unlit")))
        if key not in self.materials:
            mode = m["alphaMode"]
            if mode not in ("OPAQUE", "MASK", "BLEND"):
                raise _Corrupt(f"material {index} has an unknown alphaMode {mode!r}")
            alpha_mode: AlphaMode = mode
            base = _floats(m["baseColorFactor"], 4)
            material = Material(
                name=str(m["name"]),
                base_color_factor=(base[0], base[1], base[2], base[3]),
                base_color_texture=self.image(m["baseColorTexture"]),
                metallic_factor=float(m["metallicFactor"]),
                roughness_factor=float(m["roughnessFactor"]),
                metallic_roughness_texture=self.image(m["metallicRoughnessTexture"]),
                normal_texture=self.image(m["normalTexture"]),
                occlusion_texture=self.image(m["occlusionTexture"]),
                emissive_factor=_rgb(_floats(m["emissiveFactor"], 3)),
                emissive_texture=self.image(m["emissiveTexture"]),
                double_sided=bool(m["doubleSided"]),
                alpha_mode=alpha_mode,
                alpha_cutoff=float(m["alphaCutoff"]),
            )
            if key[1]:
                material = _unlit(material)
            self.materials[key] = material
        return self.materials[key]

    def mesh(self, index: Any, lods: bool = True) -> Mesh:
        meshes = _list(self.manifest, "meshes")
        if not isinstance(index, int) or not 0 <= index < len(meshes):
            raise _Corrupt(f"mesh {index!r} does not exist")
        if index not in self.mesh_cache:
            desc = meshes[index]
            primitives = [self.primitive(p) for p in _list(desc, "primitives")]
            levels: list[LodLevel] = []
            if self.with_lods and lods:
                for level in _list(desc, "lods"):
                    error = float(level["error"])
                    if not (math.isfinite(error) and error >= 0):
                        raise _Corrupt(f"mesh {index} has a level of detail with error {error}")
                    levels.append(LodLevel(self.mesh(level["mesh"], lods=False), error))
            self.mesh_cache[index] = Mesh(str(desc["name"]), tuple(primitives), lods=tuple(levels))
        return self.mesh_cache[index]

    def primitive(self, desc: dict[str, Any]) -> Primitive:
        if desc["mode"] == "points":
            return self.octahedra(desc)
        if desc["mode"] != "triangles":
            raise _Corrupt(f"unknown primitive mode {desc['mode']!r}")
        count = desc["vertexCount"]
        positions = self.positions(desc["positions"])
        if len(positions) != count:
            raise _Corrupt("a primitive's positions do not match its vertex count")
        normals = uvs = colors = None
        if "normals" in desc:
            normals = self.normals(desc["normals"])
        if "uvs" in desc:
            uvs = self.uvs(desc["uvs"])
        colors = self.colors(desc["colors"]) if "colors" in desc else None
        has_colors = colors is not None
        idx = desc["indices"]
        kind = {"uint16": "<u2", "uint32": "<u4"}.get(idx["type"])
        if kind is None:
            raise _Corrupt(f"unknown index type {idx['type']!r}")
        indices = self.array(idx["buffer"], 3, (kind,))
        # Unlit is emulated with emissive colour, which ignores vertex colours: keep those lit instead.
        material = self.material(desc["material"], emulate_unlit=not has_colors)
        return Primitive(positions, indices, material, normals=normals, uvs=uvs, colors=colors)

    def positions(self, desc: dict[str, Any]) -> NDArray[np.float32]:
        if desc["encoding"] == "float32":
            return self.array(desc["buffer"], 3, ("<f4",))
        if desc["encoding"] == "unorm16":
            q = self.array(desc["buffer"], 3, ("<u2",))
            low = np.array(_floats(desc["min"], 3), dtype=np.float32)
            step = np.array(_floats(desc["extent"], 3), dtype=np.float32) / np.float32(65535.0)
            decoded: NDArray[np.float32] = q * step + low
            return decoded
        raise _Corrupt(f"unknown position encoding {desc['encoding']!r}")

    def normals(self, desc: dict[str, Any]) -> NDArray[np.float32]:
        scales = {"snorm8": ("<i1", 127.0), "snorm16": ("<i2", 32767.0), "float32": ("<f4", 1.0)}
        if desc["encoding"] not in scales:
            raise _Corrupt(f"unknown normal encoding {desc['encoding']!r}")
        dtype, scale = scales[desc["encoding"]]
        q = self.array(desc["buffer"], 3, (dtype,))
        decoded: NDArray[np.float32] = q * np.float32(1.0 / scale)
        return decoded

    def uvs(self, desc: dict[str, Any]) -> NDArray[np.float32]:
        dtype = {"float32": "<f4", "float16": "<f2"}.get(desc["encoding"])
        if dtype is None:
            raise _Corrupt(f"unknown uv encoding {desc['encoding']!r}")
        return self.array(desc["buffer"], 2, (dtype,)).astype(np.float32, copy=False)

    def colors(self, desc: dict[str, Any]) -> NDArray[np.float32]:
        if desc["encoding"] != "unorm8":
            raise _Corrupt(f"unknown colour encoding {desc['encoding']!r}")
        decoded: NDArray[np.float32] = self.array(desc["buffer"], 4, ("<u1",)) * np.float32(1.0 / 255.0)
        return decoded

    def cloud(self, desc: dict[str, Any]) -> PointCloud:
        positions = self.positions(desc["positions"])
        colors = self.colors(desc["colors"]) if "colors" in desc else None
        if len(positions) != desc["pointCount"] or (colors is not None and len(colors) != len(positions)):
            raise _Corrupt("a point primitive's arrays do not match its point count")
        size = float(desc["pointSize"])
        if not math.isfinite(size) or size <= 0:
            raise _Corrupt(f"a point primitive has an invalid pointSize {size}")
        return PointCloud(positions, colors, size)

    def octahedra(self, desc: dict[str, Any]) -> Primitive:
        cloud = self.cloud(desc)
        positions, colors = cloud.positions, cloud.colors
        if len(positions) > MAX_OCTAHEDRA:
            step = -(-len(positions) // MAX_OCTAHEDRA)
            log.warning(
                "showing every %dth of %d points: octahedra past %d points",
                step,
                len(positions),
                MAX_OCTAHEDRA,
            )
            positions = positions[::step]
            colors = colors[::step] if colors is not None else None
        return octahedra(positions, colors, cloud.point_size)


_OCTAHEDRON = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float32
)
_OCTAHEDRON_FACES = np.array(
    [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]], dtype=np.uint32
)


def octahedra(positions: NDArray[np.float32], colors: NDArray[np.float32] | None, size: float) -> Primitive:
    """Each point as an octahedron of edge-to-edge width ``size`` (6 vertices, 8 outward triangles)."""
    count = len(positions)
    vertices = (positions[:, None, :] + _OCTAHEDRON[None] * np.float32(size / 2)).reshape(-1, 3)
    normals = np.broadcast_to(_OCTAHEDRON[None], (count, 6, 3)).reshape(-1, 3)
    faces = (_OCTAHEDRON_FACES[None] + (np.arange(count, dtype=np.uint32) * 6)[:, None, None]).reshape(-1, 3)
    rgba = None if colors is None else np.repeat(colors, 6, axis=0)
    material = Material(name="points", metallic_factor=0.0, roughness_factor=1.0)
    return Primitive(vertices, faces, material, normals=normals, uvs=None, colors=rgba)


def _unlit(material: Material) -> Material:
    """An unlit material drawn by the PBR shader: its colour as emissive light, no diffuse or metal.

    Exact for colour and texture; a small specular highlight remains (F0 = 0.04), and a node colour
    override replaces the (black) base colour, so overridden unlit nodes show the override lit.
    """
    r, g, b, a = material.base_color_factor
    return Material(
        name=material.name,
        base_color_factor=(0.0, 0.0, 0.0, a),
        base_color_texture=material.base_color_texture,  # still gives alpha
        metallic_factor=0.0,
        roughness_factor=1.0,
        emissive_factor=(r, g, b),
        emissive_texture=material.base_color_texture,
        double_sided=material.double_sided,
        alpha_mode=material.alpha_mode,
        alpha_cutoff=material.alpha_cutoff,
    )


def _list(container: Any, key: str) -> list[Any]:
    value = container.get(key, []) if isinstance(container, dict) else None
    if not isinstance(value, list):
        raise _Corrupt(f"'{key}' is not a list")
    return value


def _floats(values: Any, count: int) -> list[float]:
    if not isinstance(values, list) or len(values) != count:
        raise _Corrupt(f"expected {count} numbers, got {values!r}")
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        raise _Corrupt(f"non-finite numbers {values!r}")
    return out


def _rgb(values: list[float]) -> tuple[float, float, float]:
    return (values[0], values[1], values[2])


def read_asset(
    data: bytes | bytearray | memoryview,
    *,
    name: str = "",
    label: str = "asset",
    lods: bool = True,
    verify: bool = True,
) -> Asset:
    """Read an ``.arrAsset`` into a new ``Asset`` (scene named ``name``); ``label`` names the source in
    messages. Arrays share memory with ``data``: keep it alive and unchanged while the scene is in use.

    ``lods=False`` leaves the meshes' levels of detail out (they add about a third to the load time).
    ``verify`` checks every buffer's CRC-32 (about 0.3 ms per MB). Any problem, whatever it is, raises
    ``ModelLoadError`` with a message naming the problem.
    """
    view = memoryview(data)
    manifest, d_off, d_len = _manifest(view, label, verify)
    try:
        return _read(view, manifest, d_off, d_len, name, lods, verify)
    except _Corrupt as exc:
        raise ModelLoadError(f"{label}: corrupt .arrAsset ({exc})") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, zlib.error) as exc:
        # A manifest that is valid JSON but not what the writer produces (a missing key, a string where
        # a number belongs, indices out of range caught by Primitive...).
        raise ModelLoadError(f"{label}: corrupt .arrAsset ({type(exc).__name__}: {exc})") from None


def _read(
    view: memoryview, manifest: dict[str, Any], d_off: int, d_len: int, name: str, lods: bool, verify: bool
) -> Asset:
    reader = _Reader(view, manifest, d_off, d_len, verify, lods)
    meshes = _list(manifest, "meshes")
    scene = Scene(name or str(manifest.get("name", "")))
    asset = Asset(scene, statistics=dict(manifest.get("statistics") or {}))
    ids: list[int] = []
    for row, desc in enumerate(_list(manifest, "nodes")):
        parent = desc.get("parent")
        if parent is not None and (not isinstance(parent, int) or not 0 <= parent < row):
            raise _Corrupt(f"node {row} has an invalid parent {parent!r}")
        matrix = desc.get("matrix")
        transform = np.array(_floats(matrix, 16)).reshape(4, 4) if matrix is not None else None
        mesh_index = desc.get("mesh")
        mesh = None
        cloud = None
        if mesh_index is not None:
            mesh = reader.mesh(mesh_index)
            first = meshes[mesh_index]["primitives"][0]
            if first["mode"] == "points":
                cloud = reader.cloud(first)
        node = scene.add_node(
            str(desc["name"]),
            parent=ids[parent] if parent is not None else None,
            transform=transform,
            mesh=mesh,
            visible=bool(desc.get("visible", True)),
            color=desc.get("color"),
        )
        ids.append(node.id)
        if cloud is not None:
            asset.points[node.id] = cloud
    asset.unlit = any(bool(m.get("unlit")) for m in _list(manifest, "materials"))
    return asset


# -- levels of detail --------------------------------------------------------------------------------------


def simplify(mesh: Mesh, target_triangles: int, area: float | None = None) -> LodLevel | None:
    """A coarser copy of ``mesh`` with about ``target_triangles`` triangles, by vertex clustering.

    All vertices of the mesh (every primitive) are snapped to a uniform grid; each occupied cell becomes
    one vertex at the mean of its vertices, so neighbouring primitives stay joined. Triangles whose
    corners fall into fewer than three cells disappear, as do duplicates. Normals, uvs and colours are
    averaged per primitive and cell. Costs a few sorts of the vertex array: about 0.2 s per level for a
    million triangles. ``area``: the mesh's surface area, if known. Returns None when no primitive
    keeps a triangle (the grid swallowed the mesh).
    """
    area = surface_area(mesh) if area is None else area
    if area <= 0 or target_triangles < 1:
        return None
    positions = np.concatenate([p.positions for p in mesh.primitives])
    # A surface of area A crosses about 1.5 A / cell² cells (a cube's mean shadow is 1.5 faces) and a
    # closed mesh has about twice as many triangles as vertices; 2.5 rather than 3 is what this
    # under-counts on real meshes (measured on spheres and boxes).
    cell = math.sqrt(2.5 * area / target_triangles)
    level = _cluster(mesh, positions, cell)
    if level is not None and level.mesh.triangle_count > 1.5 * target_triangles:
        cell *= math.sqrt(level.mesh.triangle_count / target_triangles)  # one correction is enough
        level = _cluster(mesh, positions, cell)
    return level


def surface_area(mesh: Mesh) -> float:
    """The total area of the mesh's triangles (float32 arithmetic: this is an estimate for the grid)."""
    total = 0.0
    for p in mesh.primitives:
        a, b, c = (p.positions[p.indices[:, k]] for k in range(3))
        u, v = b - a, c - a
        cross = np.stack(
            [
                u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1],
                u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0],
            ]
        )
        total += 0.5 * float(np.sqrt((cross * cross).sum(axis=0)).sum(dtype=np.float64))
    return total


def _cluster(mesh: Mesh, positions: NDArray[np.float32], cell: float) -> LodLevel | None:
    low = positions.min(axis=0)
    grid = ((positions - low) * np.float32(1.0 / cell)).astype(np.int64)  # non-negative: truncation floors
    dims = grid.max(axis=0) + 1
    if float(np.prod(dims.astype(np.float64))) < 2.0**62:
        keys = grid[:, 0] + dims[0] * (grid[:, 1] + dims[1] * grid[:, 2])
        cells, inverse = np.unique(keys, return_inverse=True)
    else:  # a grid too fine to number its cells in 64 bits: sort the rows themselves (slower)
        cells, inverse = np.unique(grid, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse, minlength=len(cells)).astype(np.float64)
    sums = np.stack([np.bincount(inverse, positions[:, k], len(cells)) for k in range(3)], axis=1)
    centre: NDArray[np.float64] = sums / counts[:, None]
    moved = positions - centre[inverse].astype(np.float32)
    error = float(np.sqrt((moved * moved).sum(axis=1)).max())
    primitives: list[Primitive] = []
    start = 0
    for p in mesh.primitives:
        cluster = inverse[start : start + len(p.positions)]
        start += len(p.positions)
        reduced = _cluster_primitive(p, cluster, centre)
        if reduced is not None:
            primitives.append(reduced)
    if not primitives:
        return None
    return LodLevel(Mesh(mesh.name, tuple(primitives)), error)


def _cluster_primitive(
    p: Primitive, cluster: NDArray[np.int64], centre: NDArray[np.float64]
) -> Primitive | None:
    tri = cluster[p.indices]
    keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    tri = tri[keep]
    if len(tri) == 0:
        return None
    # Duplicates (the same three cells, whatever the order) would only z-fight: keep the first.
    ordered = np.sort(tri, axis=1)
    n = int(ordered.max()) + 1
    if n < 1 << 21:  # three cell numbers packed in one int64 sort much faster than rows
        _, first = np.unique((ordered[:, 0] * n + ordered[:, 1]) * n + ordered[:, 2], return_index=True)
    else:
        _, first = np.unique(ordered, axis=0, return_index=True)
    tri = tri[np.sort(first)]
    used, local = np.unique(tri.reshape(-1), return_inverse=True)
    # Per-primitive vertex attributes, averaged over the primitive's vertices in each used cell.
    slot = np.full(int(cluster.max()) + 1, -1, dtype=np.int64)
    slot[used] = np.arange(len(used))
    owner = slot[cluster]
    mine = owner >= 0
    weight = np.bincount(owner[mine], minlength=len(used)).astype(np.float64)

    def mean(values: NDArray[np.float32] | None) -> NDArray[np.float32] | None:
        if values is None:
            return None
        sums = np.stack(
            [
                np.bincount(owner[mine], values[mine, k].astype(np.float64), len(used))
                for k in range(values.shape[1])
            ],
            axis=1,
        )
        averaged: NDArray[np.float32] = (sums / np.maximum(weight, 1)[:, None]).astype(np.float32)
        return averaged

    normals = mean(p.normals)
    if normals is not None:
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = np.where(length > 1e-12, normals / np.maximum(length, 1e-12), np.float32(0)).astype(
            np.float32
        )
    return Primitive(
        centre[used].astype(np.float32),
        local.reshape(-1, 3).astype(np.uint32),
        p.material,
        normals=normals,
        uvs=mean(p.uvs),
        colors=mean(p.colors),
    )


def build_lods(
    mesh: Mesh,
    *,
    min_triangles: int = LOD_MIN_TRIANGLES,
    ratios: Sequence[float] = LOD_RATIOS,
    progress: Callable[[str], None] | None = None,
) -> tuple[LodLevel, ...]:
    """The levels of detail ``mesh`` gets: none below ``min_triangles``, else one per ratio (finest
    first) while a level keeps at least ``LOD_SMALLEST`` triangles and is smaller than the one before."""
    if mesh.triangle_count < min_triangles:
        return ()
    levels: list[LodLevel] = []
    area = surface_area(mesh)
    for ratio in ratios:
        target = int(mesh.triangle_count * ratio)
        if target < LOD_SMALLEST:
            break
        level = simplify(mesh, target, area)
        previous = levels[-1].mesh.triangle_count if levels else mesh.triangle_count
        if level is None or level.mesh.triangle_count >= previous:
            break
        levels.append(level)
        if progress is not None:
            progress(
                f"level of detail for {mesh.name!r}: {level.mesh.triangle_count} triangles, "
                f"error {level.error:.3g}"
            )
    return tuple(levels)
