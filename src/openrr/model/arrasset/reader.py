"""Reading an ``.arrAsset``: ``read_asset`` maps the buffers its manifest names into the arrays of a new
``Scene`` (``numpy.frombuffer``: float32 positions and uint32 indices are not copied), decoding the
quantised streams, and turns every problem into a ``ModelLoadError``.

Nothing in the file is trusted: every index, shape, type, offset and checksum is checked before use,
compressed buffers may inflate to ``INFLATE_LIMIT`` bytes at most in all, and the nodes' object metadata
to ``openrr.model.metadata.MAX_METADATA_BYTES``. Version 1 assets (no metadata, no uv transforms) read
as they always did. Point clouds go on their nodes (``Node.points``) with their levels of detail; those
of versions 1 and 2, written in no particular order, have one level (every point).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.model.arrasset.layout import DTYPES, INFLATE_LIMIT, Asset
from openrr.model.arrasset.manifest import Corrupt, floats, list_of, read_manifest
from openrr.model.errors import ModelLoadError
from openrr.model.mesh import AlphaMode, LodLevel, Material, Mesh, Primitive
from openrr.model.metadata import MetadataKeeper, MetadataValue
from openrr.model.points import PointCloud, PointLevel
from openrr.model.scene import Scene


class _Reader:
    """One reading of one asset: buffers, images, materials and meshes decoded on first use, then cached
    (shared buffers and materials stay shared in the scene)."""

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
        self.buffers: list[dict[str, Any]] = list_of(manifest, "buffers")
        self.arrays: dict[int, NDArray[Any]] = {}
        self.images: dict[int, NDArray[np.uint8]] = {}
        self.materials: dict[int, Material] = {}
        self.mesh_cache: dict[int, Mesh] = {}
        self.clouds: dict[int, PointCloud] = {}  # by mesh index: nodes sharing one share the cloud
        self.inflated = 0

    def array(
        self, index: Any, components: int | None = None, dtypes: Iterable[str] = DTYPES
    ) -> NDArray[Any]:
        """Buffer ``index`` as an array (cached), of one of ``dtypes`` and, if given, ``components``
        columns; ``Corrupt`` for anything the buffer table or the bytes get wrong."""
        if not isinstance(index, int) or not 0 <= index < len(self.buffers):
            raise Corrupt(f"buffer {index!r} does not exist")
        if index in self.arrays:
            return self.arrays[index]
        desc = self.buffers[index]
        shape = _checked_shape(index, desc, components, dtypes)
        raw = self.stored(index, desc)
        expected = math.prod(shape) * np.dtype(desc["dtype"]).itemsize
        raw = self.decoded(index, desc["codec"], raw, expected)
        if len(raw) != expected:
            raise Corrupt(f"buffer {index} holds {len(raw)} bytes, {expected} expected")
        array = np.frombuffer(raw, dtype=desc["dtype"]).reshape(shape)
        self.arrays[index] = array
        return array

    def stored(self, index: int, desc: dict[str, Any]) -> memoryview:
        """The buffer's bytes as stored, inside the data and matching their CRC-32 (if verifying)."""
        offset, length = desc["offset"], desc["length"]
        if offset + length > self.d_len:
            raise Corrupt(f"buffer {index} lies outside the file")
        raw = self.view[self.d_off + offset : self.d_off + offset + length]
        if self.verify and zlib.crc32(raw) != desc["crc32"]:
            raise Corrupt(f"buffer {index} checksum mismatch")
        return raw

    def decoded(self, index: int, codec: Any, raw: memoryview, expected: int) -> memoryview:
        """``raw`` after its codec: as it is, or inflated to ``expected`` bytes at most."""
        if codec == "none":
            return raw
        if codec != "zlib":
            raise Corrupt(f"buffer {index} has an unknown codec {codec!r}")
        # The file size is bounded by the loader's budget, but zlib inflates up to 1032:1: bound
        # what a small crafted file can make the server allocate.
        self.inflated += expected
        if self.inflated > INFLATE_LIMIT:
            raise Corrupt(f"its compressed buffers inflate to more than {INFLATE_LIMIT} bytes")
        inflater = zlib.decompressobj()
        inflated = memoryview(inflater.decompress(raw, expected))
        if inflater.unconsumed_tail or not inflater.eof:
            raise Corrupt(f"buffer {index} inflates to more than its {expected} bytes")
        return inflated

    def image(self, index: Any) -> NDArray[np.uint8] | None:
        if index is None:
            return None
        images = list_of(self.manifest, "images")
        if not isinstance(index, int) or not 0 <= index < len(images):
            raise Corrupt(f"image {index!r} does not exist")
        if index not in self.images:
            desc = images[index]
            if desc["encoding"] != "rgba8":
                raise Corrupt(f"image {index} has an unknown encoding {desc['encoding']!r}")
            pixels = self.array(desc["buffer"], dtypes=("<u1",))
            if pixels.shape != (desc["height"], desc["width"], 4):
                raise Corrupt(f"image {index} has shape {list(pixels.shape)}")
            self.images[index] = pixels
        return self.images[index]

    def material(self, index: Any) -> Material:
        materials = list_of(self.manifest, "materials")
        if not isinstance(index, int) or not 0 <= index < len(materials):
            raise Corrupt(f"material {index!r} does not exist")
        m = materials[index]
        if index not in self.materials:
            mode = m["alphaMode"]
            if mode not in ("OPAQUE", "MASK", "BLEND"):
                raise Corrupt(f"material {index} has an unknown alphaMode {mode!r}")
            alpha_mode: AlphaMode = mode
            base = floats(m["baseColorFactor"], 4)
            scale = floats(m.get("uvScale", [1.0, 1.0]), 2)
            offset = floats(m.get("uvOffset", [0.0, 0.0]), 2)
            rotation = floats([m.get("uvRotation", 0.0)], 1)[0]
            material = Material(
                name=str(m["name"]),
                base_color_factor=(base[0], base[1], base[2], base[3]),
                base_color_texture=self.image(m["baseColorTexture"]),
                metallic_factor=float(m["metallicFactor"]),
                roughness_factor=float(m["roughnessFactor"]),
                metallic_roughness_texture=self.image(m["metallicRoughnessTexture"]),
                normal_texture=self.image(m["normalTexture"]),
                occlusion_texture=self.image(m["occlusionTexture"]),
                emissive_factor=_rgb(floats(m["emissiveFactor"], 3)),
                emissive_texture=self.image(m["emissiveTexture"]),
                double_sided=bool(m["doubleSided"]),
                alpha_mode=alpha_mode,
                alpha_cutoff=float(m["alphaCutoff"]),
                unlit=bool(m.get("unlit")),
                uv_scale=(scale[0], scale[1]),
                uv_offset=(offset[0], offset[1]),
                uv_rotation=rotation,
            )
            self.materials[index] = material
        return self.materials[index]

    def mesh(self, index: Any, lods: bool = True) -> Mesh:
        meshes = list_of(self.manifest, "meshes")
        if not isinstance(index, int) or not 0 <= index < len(meshes):
            raise Corrupt(f"mesh {index!r} does not exist")
        if index not in self.mesh_cache:
            desc = meshes[index]
            primitives = [self.primitive(p) for p in list_of(desc, "primitives")]
            levels: list[LodLevel] = []
            if self.with_lods and lods:
                for level in list_of(desc, "lods"):
                    error = float(level["error"])
                    if not (math.isfinite(error) and error >= 0):
                        raise Corrupt(f"mesh {index} has a level of detail with error {error}")
                    levels.append(LodLevel(self.mesh(level["mesh"], lods=False), error))
            self.mesh_cache[index] = Mesh(str(desc["name"]), tuple(primitives), lods=tuple(levels))
        return self.mesh_cache[index]

    def primitive(self, desc: dict[str, Any]) -> Primitive:
        if desc["mode"] != "triangles":
            raise Corrupt(f"unknown primitive mode {desc['mode']!r}")
        count = desc["vertexCount"]
        positions = self.positions(desc["positions"])
        if len(positions) != count:
            raise Corrupt("a primitive's positions do not match its vertex count")
        normals = uvs = colors = None
        if "normals" in desc:
            normals = self.normals(desc["normals"])
        if "uvs" in desc:
            uvs = self.uvs(desc["uvs"])
        colors = self.colors(desc["colors"]) if "colors" in desc else None
        idx = desc["indices"]
        kind = {"uint16": "<u2", "uint32": "<u4"}.get(idx["type"])
        if kind is None:
            raise Corrupt(f"unknown index type {idx['type']!r}")
        indices = self.array(idx["buffer"], 3, (kind,))
        material = self.material(desc["material"])
        return Primitive(positions, indices, material, normals=normals, uvs=uvs, colors=colors)

    def positions(self, desc: dict[str, Any]) -> NDArray[np.float32]:
        if desc["encoding"] == "float32":
            return self.array(desc["buffer"], 3, ("<f4",))
        if desc["encoding"] == "unorm16":
            q = self.array(desc["buffer"], 3, ("<u2",))
            low = np.array(floats(desc["min"], 3), dtype=np.float32)
            step = np.array(floats(desc["extent"], 3), dtype=np.float32) / np.float32(65535.0)
            decoded: NDArray[np.float32] = q * step + low
            return decoded
        raise Corrupt(f"unknown position encoding {desc['encoding']!r}")

    def normals(self, desc: dict[str, Any]) -> NDArray[np.float32]:
        scales = {"snorm8": ("<i1", 127.0), "snorm16": ("<i2", 32767.0), "float32": ("<f4", 1.0)}
        if desc["encoding"] not in scales:
            raise Corrupt(f"unknown normal encoding {desc['encoding']!r}")
        dtype, scale = scales[desc["encoding"]]
        q = self.array(desc["buffer"], 3, (dtype,))
        decoded: NDArray[np.float32] = q * np.float32(1.0 / scale)
        return decoded

    def uvs(self, desc: dict[str, Any]) -> NDArray[np.float32]:
        dtype = {"float32": "<f4", "float16": "<f2"}.get(desc["encoding"])
        if dtype is None:
            raise Corrupt(f"unknown uv encoding {desc['encoding']!r}")
        return self.array(desc["buffer"], 2, (dtype,)).astype(np.float32, copy=False)

    def colors(self, desc: dict[str, Any]) -> NDArray[np.float32]:
        if desc["encoding"] != "unorm8":
            raise Corrupt(f"unknown colour encoding {desc['encoding']!r}")
        decoded: NDArray[np.float32] = self.array(desc["buffer"], 4, ("<u1",)) * np.float32(1.0 / 255.0)
        return decoded

    def cloud(self, index: Any) -> PointCloud | None:
        """Mesh ``index`` as a point cloud if it is one (a single ``points`` primitive), else None. The
        positions (float32) and colours (RGBA8) are views of the file, not copies."""
        meshes = list_of(self.manifest, "meshes")
        if not isinstance(index, int) or not 0 <= index < len(meshes):
            raise Corrupt(f"mesh {index!r} does not exist")
        if index in self.clouds:
            return self.clouds[index]
        primitives = list_of(meshes[index], "primitives")
        if not any(p.get("mode") == "points" for p in primitives if isinstance(p, dict)):
            return None
        if len(primitives) != 1:
            raise Corrupt(f"mesh {index} mixes points with other primitives")
        desc = primitives[0]
        positions = self.positions(desc["positions"])
        colors = None
        if "colors" in desc:
            if desc["colors"]["encoding"] != "unorm8":
                raise Corrupt(f"unknown colour encoding {desc['colors']['encoding']!r}")
            colors = self.array(desc["colors"]["buffer"], 4, ("<u1",))
        if len(positions) != desc["pointCount"] or (colors is not None and len(colors) != len(positions)):
            raise Corrupt("a point primitive's arrays do not match its point count")
        size = float(desc["pointSize"])
        if not math.isfinite(size) or size <= 0:
            raise Corrupt(f"a point primitive has an invalid pointSize {size}")
        levels = [PointLevel(int(v["count"]), float(v["spacing"])) for v in list_of(desc, "levels")]
        try:
            self.clouds[index] = PointCloud(positions, colors, size, tuple(levels))
        except ValueError as exc:
            raise Corrupt(str(exc)) from None
        return self.clouds[index]


def _checked_shape(
    index: int, desc: dict[str, Any], components: int | None, dtypes: Iterable[str]
) -> tuple[int, ...]:
    """The shape of buffer ``index`` as its description gives it, once its type, numbers and columns
    are what the caller expects."""
    offset, length, dtype = desc["offset"], desc["length"], desc["dtype"]
    shape = tuple(desc["shape"])
    if dtype not in DTYPES or dtype not in dtypes:
        raise Corrupt(f"buffer {index} has an unexpected type {dtype!r}")
    if not all(isinstance(n, int) and n >= 0 for n in (offset, length, *shape)):
        raise Corrupt(f"buffer {index} has a malformed description")
    if components is not None and (len(shape) != 2 or shape[1] != components):
        raise Corrupt(f"buffer {index} has shape {list(shape)}, not (n, {components})")
    return shape


def _metadata(desc: dict[str, Any], keeper: MetadataKeeper) -> dict[str, MetadataValue]:
    """A node row's ``metadata``: str keys, bool/int/float/str values, within the keeper's limit."""
    raw = desc.get("metadata")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Corrupt("a node's metadata is not an object")
    for key, value in raw.items():
        if not isinstance(value, bool | int | float | str) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise Corrupt(f"metadata {key!r} has a value of an unsupported type")
    kept = keeper.keep(raw)
    if keeper.overflow:
        raise Corrupt(f"its object metadata exceeds {keeper.limit} bytes")
    return kept


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
    ``verify`` checks every buffer's CRC-32 (about 0.3 ms per MB).
    Nodes get their object metadata (``Node.metadata``). Any problem, whatever it is, raises
    ``ModelLoadError`` with a message naming the problem.
    """
    view = memoryview(data)
    manifest, d_off, d_len = read_manifest(view, label, verify)
    try:
        reader = _Reader(view, manifest, d_off, d_len, verify, lods)
        return _read(reader, name)
    except Corrupt as exc:
        raise ModelLoadError(f"{label}: corrupt .arrAsset ({exc})") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, zlib.error) as exc:
        # A manifest that is valid JSON but not what the writer produces (a missing key, a string where
        # a number belongs, indices out of range caught by Primitive...).
        raise ModelLoadError(f"{label}: corrupt .arrAsset ({type(exc).__name__}: {exc})") from None


def _read(reader: _Reader, name: str) -> Asset:
    manifest = reader.manifest
    keeper = MetadataKeeper()
    scene = Scene(name or str(manifest.get("name", "")))
    asset = Asset(scene, statistics=dict(manifest.get("statistics") or {}))
    ids: list[int] = []
    for row, desc in enumerate(list_of(manifest, "nodes")):
        parent = desc.get("parent")
        if parent is not None and (not isinstance(parent, int) or not 0 <= parent < row):
            raise Corrupt(f"node {row} has an invalid parent {parent!r}")
        matrix = desc.get("matrix")
        transform = np.array(floats(matrix, 16)).reshape(4, 4) if matrix is not None else None
        mesh_index = desc.get("mesh")
        mesh = cloud = None
        if mesh_index is not None:
            cloud = reader.cloud(mesh_index)
            mesh = reader.mesh(mesh_index) if cloud is None else None
        node = scene.add_node(
            str(desc["name"]),
            parent=ids[parent] if parent is not None else None,
            transform=transform,
            mesh=mesh,
            visible=bool(desc.get("visible", True)),
            color=desc.get("color"),
            points=cloud,
        )
        node.metadata = _metadata(desc, keeper)
        ids.append(node.id)
        if cloud is not None:
            asset.points[node.id] = cloud
    materials = list_of(manifest, "materials")
    asset.unlit = bool(materials) and all(bool(m.get("unlit")) for m in materials)
    return asset
