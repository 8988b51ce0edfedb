"""The glTF extensions real exporters write and trimesh does not read, handled before trimesh parses the
file: ``KHR_draco_mesh_compression``, ``EXT_meshopt_compression``, ``KHR_mesh_quantization``,
``KHR_texture_transform`` and ``KHR_materials_unlit``.

``prepare`` takes the file's bytes (GLB or glTF JSON) and returns what trimesh should parse instead: the
same bytes when nothing needs doing, else a GLB whose compressed buffer views and primitives are decoded
into plain ones (``openrr.model.gltf_extensions_compression``), whose quantized vertex attributes are
float32 (trimesh ignores ``normalized``), and whose extended materials carry markers
(``openrr.model.gltf_extensions_materials``) that ``openrr.model.trimesh_scene`` turns back into the
materials' flags and uv transforms. Apart from the loader because it works on the glTF document, not on
locations and downloads.

An extension in ``extensionsRequired`` that openrr cannot read is a ``ModelLoadError`` naming it; one only
in ``extensionsUsed`` is logged and ignored, as the glTF specification asks. ``KHR_meshopt_compression`` is
such an extension: its vertex codec version 1 and COLOR filter are newer than the meshoptimizer decoder on
PyPI.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from openrr.model.budget import Allowance
from openrr.model.errors import ModelLoadError
from openrr.model.gltf_extensions_compression import (
    DecodedBound,
    decode_draco,
    decode_meshopt,
    meshopt_size,
    point_bytes,
)
from openrr.model.gltf_extensions_materials import MaterialExtension, collect_materials

log = logging.getLogger("openrr.model.gltf_extensions")

DRACO, MESHOPT, QUANTIZATION = (
    "KHR_draco_mesh_compression",
    "EXT_meshopt_compression",
    "KHR_mesh_quantization",
)
# Decoded here, or read by trimesh itself (specular-glossiness, WebP textures).
SUPPORTED = frozenset(
    {
        DRACO,
        MESHOPT,
        QUANTIZATION,
        "KHR_texture_transform",
        "KHR_materials_unlit",
        "KHR_materials_pbrSpecularGlossiness",
        "EXT_texture_webp",
    }
)
_DTYPES: dict[Any, str] = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_WIDTHS = _COMPONENTS | {"MAT2": 4, "MAT3": 9, "MAT4": 16}
# Attributes read as floats whatever their storage; colours stay integers (the converter normalises them).
_FLOAT_ATTRIBUTES = ("POSITION", "NORMAL", "TANGENT", "TEXCOORD_")


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What trimesh parses (``data`` as ``file_type``), and the materials' extension data by marker."""

    data: bytes
    file_type: str
    materials: dict[str, MaterialExtension]


def prepare(
    data: bytes, file_type: str, fetch: Callable[[str], bytes], allowance: Allowance, label: str
) -> Prepared:
    """``data`` (a ``"glb"`` or ``"gltf"`` file) ready for trimesh. ``fetch(uri)`` reads an external buffer
    (within the caller's byte budget); decoded sizes are checked against ``allowance`` before decoding."""
    document, binary = _split(data, file_type, label)
    try:
        _check_extensions(document, label)
        bound = DecodedBound(allowance, label)
        _check_zero_filled(document, bound)
        materials = collect_materials(document, label)
        if not _needs_buffers(document):
            if not materials:
                return Prepared(data, file_type, materials)
            if file_type == "gltf":
                return Prepared(json.dumps(document).encode(), "gltf", materials)
            return Prepared(_glb(document, binary or b""), "glb", materials)
        rebuild = _Rebuild(document, bound)
        rebuild.run(_buffers(document, binary, fetch, label))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # A document whose structure is not glTF's (a string where an object belongs...)
        raise ModelLoadError(f"{label}: invalid glTF data: {type(exc).__name__}: {exc}") from None
    return Prepared(_glb(document, bytes(rebuild.out)), "glb", materials)


def _split(data: bytes, file_type: str, label: str) -> tuple[dict[str, Any], bytes | None]:
    """The document and the GLB's binary chunk (None for glTF JSON, or a GLB without one)."""
    try:
        if file_type != "glb":
            document = json.loads(data)
            binary = None
        else:
            _magic, version, length = struct.unpack_from("<4sII", data, 0)
            size, kind = struct.unpack_from("<I4s", data, 12)
            if version != 2 or kind != b"JSON" or 20 + size > min(length, len(data)):
                raise ValueError("not a GLB 2 file with a JSON chunk first")
            document = json.loads(data[20 : 20 + size])
            binary = None
            at = 20 + size + (-size % 4)
            if at + 8 <= min(length, len(data)):
                size, kind = struct.unpack_from("<I4s", data, at)
                if kind == b"BIN\x00":
                    binary = data[at + 8 : at + 8 + size]
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{label}: invalid glTF data: {exc}") from None
    if not isinstance(document, dict):
        raise ModelLoadError(f"{label}: invalid glTF data: the JSON is not an object")
    return document, binary


def _check_extensions(document: dict[str, Any], label: str) -> None:
    required, used = document.get("extensionsRequired") or [], document.get("extensionsUsed") or []
    if not isinstance(required, list) or not isinstance(used, list):
        raise ModelLoadError(f"{label}: invalid glTF data: extensionsUsed and extensionsRequired are lists")
    unknown = sorted(str(e) for e in required if str(e) not in SUPPORTED)
    if unknown:
        raise ModelLoadError(
            f"{label}: the model requires glTF extensions openrr cannot read: {', '.join(unknown)}"
        )
    ignored = sorted(str(e) for e in used if str(e) not in SUPPORTED)
    if ignored:
        log.info("%s: ignoring glTF extensions it uses but does not require: %s", label, ", ".join(ignored))


def _check_zero_filled(document: dict[str, Any], bound: DecodedBound) -> None:
    """Accessors without a buffer view are zeros of their declared count, allocated by trimesh whatever the
    file's size: bounded like decoded data. Draco's placeholders are left to the Draco header's bound (and
    emptied once decoded, ``_Rebuild.draco``)."""
    placeholders = {
        index
        for p in _primitives(document)
        if DRACO in (p.get("extensions") or {})
        for index in [*(p.get("attributes") or {}).values(), p.get("indices")]
    }
    for index, accessor in enumerate(document.get("accessors") or []):
        if not isinstance(accessor, dict) or "bufferView" in accessor or index in placeholders:
            continue
        count, width = accessor.get("count"), _WIDTHS.get(str(accessor.get("type")))
        itemsize = _dtype(accessor).itemsize
        if not isinstance(count, int) or count < 0 or width is None:
            raise ModelLoadError(f"{bound.label}: accessor {index} has an invalid count or type")
        bound.take(count * width * itemsize, f"accessor {index} (zeros, no buffer view)")


def _dtype(accessor: dict[str, Any]) -> np.dtype[Any]:
    kind = accessor.get("componentType")
    return np.dtype(_DTYPES.get(kind, "<f4"))


def _needs_buffers(document: dict[str, Any]) -> bool:
    """Whether any buffer view or primitive is compressed, or any vertex attribute quantized."""
    views = document.get("bufferViews") or []
    if any(MESHOPT in (v.get("extensions") or {}) for v in views if isinstance(v, dict)):
        return True
    return any(
        DRACO in (p.get("extensions") or {}) or bool(_integer_attributes(document, p))
        for p in _primitives(document)
    )


def _primitives(document: dict[str, Any]) -> list[dict[str, Any]]:
    meshes = document.get("meshes") or []
    found: list[dict[str, Any]] = []
    for mesh in meshes if isinstance(meshes, list) else []:
        primitives = mesh.get("primitives") if isinstance(mesh, dict) else None
        found.extend(p for p in primitives or [] if isinstance(p, dict))
    return found


def _integer_attributes(document: dict[str, Any], primitive: dict[str, Any]) -> list[int]:
    """Accessors of the primitive's float attributes stored as integers (KHR_mesh_quantization)."""
    accessors = document.get("accessors") or []
    found = []
    for name, index in (primitive.get("attributes") or {}).items():
        if not str(name).startswith(_FLOAT_ATTRIBUTES) or not isinstance(index, int):
            continue
        if 0 <= index < len(accessors) and isinstance(accessors[index], dict):
            accessor = accessors[index]
            if (
                accessor.get("componentType") != 5126
                and "bufferView" in accessor
                and "sparse" not in accessor
            ):
                found.append(index)
    return found


def _buffers(
    document: dict[str, Any], binary: bytes | None, fetch: Callable[[str], bytes], label: str
) -> list[bytes]:
    """Each buffer's bytes: the GLB chunk, a data URI or a fetched file; meshopt's fallback buffers (which
    only compressed views reference) are empty."""
    result = []
    for index, buffer in enumerate(document.get("buffers") or []):
        if not isinstance(buffer, dict):
            raise ModelLoadError(f"{label}: buffer {index} is not an object")
        uri = buffer.get("uri")
        if isinstance(uri, str) and uri.startswith("data:"):
            try:
                result.append(base64.b64decode(uri.partition(",")[2], validate=True))
            except (binascii.Error, ValueError):
                raise ModelLoadError(f"{label}: buffer {index} has an invalid data URI") from None
        elif isinstance(uri, str):
            result.append(fetch(uri))
        elif index == 0 and binary is not None:
            result.append(binary)
        elif ((buffer.get("extensions") or {}).get(MESHOPT) or {}).get("fallback"):
            result.append(b"")
        else:
            raise ModelLoadError(f"{label}: buffer {index} has no data")
    return result


class _Rebuild:
    """The document rewritten over one new buffer (``out``): the old buffers' bytes, then what was decoded."""

    def __init__(self, document: dict[str, Any], bound: DecodedBound) -> None:
        self.document = document
        self.bound = bound
        self.label = bound.label
        self.out = bytearray()
        self.views: list[Any] = document.setdefault("bufferViews", [])
        self.accessors: list[Any] = document.setdefault("accessors", [])

    def run(self, buffers: list[bytes]) -> None:
        bases = [self.append(b) for b in buffers]
        for index, view in enumerate(self.views):
            self.view(index, view, buffers, bases)
        converted: dict[int, int] = {}
        for number, primitive in enumerate(_primitives(self.document)):
            if DRACO in (primitive.get("extensions") or {}):
                self.draco(primitive, number)
            attributes = primitive.get("attributes") or {}
            for index in _integer_attributes(self.document, primitive):
                if index not in converted:
                    converted[index] = self.dequantize(index)
                for name, value in list(attributes.items()):
                    if value == index and str(name).startswith(_FLOAT_ATTRIBUTES):
                        attributes[name] = converted[index]
        self.document["buffers"] = [{"byteLength": len(self.out)}]
        for key in ("extensionsUsed", "extensionsRequired"):
            kept = [e for e in self.document.get(key) or [] if e not in (DRACO, MESHOPT, QUANTIZATION)]
            if kept:
                self.document[key] = kept
            else:
                self.document.pop(key, None)

    def append(self, data: bytes | memoryview) -> int:
        self.out.extend(b"\0" * (-len(self.out) % 4))
        offset = len(self.out)
        self.out.extend(data)
        return offset

    def view(self, index: int, view: Any, buffers: list[bytes], bases: list[int]) -> None:
        what = f"buffer view {index}"
        if not isinstance(view, dict):
            raise ModelLoadError(f"{self.label}: {what} is not an object")
        compressed = (view.get("extensions") or {}).get(MESHOPT)
        source = compressed if isinstance(compressed, dict) else view
        data = self.slice(source, buffers, what)
        if isinstance(compressed, dict):
            size = meshopt_size(compressed, self.label, what)
            if size != view.get("byteLength"):
                raise ModelLoadError(
                    f"{self.label}: {what}: meshopt count x byteStride is not its byteLength"
                )
            self.bound.take(size, what)
            decoded = decode_meshopt(compressed, bytes(data), self.label, what)
            view["extensions"].pop(MESHOPT)
            if not view["extensions"]:
                view.pop("extensions")
            base = self.append(decoded)
        else:  # the old bytes are already in ``out``, at their buffer's base
            base = bases[source["buffer"]] + source.get("byteOffset", 0)
        view.update(buffer=0, byteOffset=base)

    def slice(self, source: dict[str, Any], buffers: list[Any], what: str) -> memoryview:
        buffer, offset, length = source.get("buffer"), source.get("byteOffset", 0), source.get("byteLength")
        if not (isinstance(buffer, int) and 0 <= buffer < len(buffers)):
            raise ModelLoadError(f"{self.label}: {what} references a missing buffer")
        if not (isinstance(offset, int) and isinstance(length, int) and offset >= 0 and length >= 0):
            raise ModelLoadError(f"{self.label}: {what} has an invalid byteOffset or byteLength")
        if offset + length > len(buffers[buffer]):
            raise ModelLoadError(f"{self.label}: {what} reaches past the end of buffer {buffer}")
        return memoryview(buffers[buffer])[offset : offset + length]

    def draco(self, primitive: dict[str, Any], number: int) -> None:
        """Decodes a compressed primitive into new accessors (its placeholders emptied)."""
        what = f"primitive {number}"
        extension = primitive["extensions"].pop(DRACO)
        if not primitive["extensions"]:
            primitive.pop("extensions")
        ids = extension.get("attributes") if isinstance(extension, dict) else None
        view = extension.get("bufferView") if isinstance(extension, dict) else None
        attributes = primitive.get("attributes") or {}
        if not isinstance(ids, dict) or not isinstance(view, int) or not 0 <= view < len(self.views):
            raise ModelLoadError(f"{self.label}: {what}: invalid KHR_draco_mesh_compression")
        if not all(isinstance(v, int) and name in attributes for name, v in ids.items()):
            raise ModelLoadError(f"{self.label}: {what}: a Draco attribute is not one of the primitive's")
        types = {name: self.accessor(attributes[name], what).get("type") for name in ids}
        with memoryview(self.out) as out:
            stream = bytes(self.slice(self.views[view], [out], what))
        decoded, faces = decode_draco(
            stream, ids, sum(point_bytes(t) for t in types.values()), self.bound, what
        )
        for old in [*attributes.values(), primitive.get("indices")]:
            if (
                isinstance(old, int)
                and 0 <= old < len(self.accessors)
                and "bufferView" not in self.accessor(old, what)
            ):
                self.accessors[old]["count"] = 0  # a placeholder trimesh would fill with zeros
        for name, values in decoded.items():
            like = self.accessor(attributes[name], what)
            values = _normalized(values.reshape(len(values), -1), bool(like.get("normalized")))
            attributes[name] = self.add_accessor(values, types[name], like)
        primitive["indices"] = self.add_accessor(faces.reshape(-1), "SCALAR", {})

    def accessor(self, index: Any, what: str) -> dict[str, Any]:
        if not isinstance(index, int) or not 0 <= index < len(self.accessors):
            raise ModelLoadError(f"{self.label}: {what} references a missing accessor")
        accessor = self.accessors[index]
        if not isinstance(accessor, dict):
            raise ModelLoadError(f"{self.label}: accessor {index} is not an object")
        return accessor

    def add_accessor(self, values: np.ndarray[Any, Any], type_name: Any, like: dict[str, Any]) -> int:
        """A new accessor (and view) holding ``values`` as float32 (or uint32 for indices)."""
        floats = values.dtype.kind == "f" or type_name != "SCALAR"
        stored = np.ascontiguousarray(values, dtype="<f4" if floats else "<u4")
        offset = self.append(stored.tobytes())
        self.views.append({"buffer": 0, "byteOffset": offset, "byteLength": stored.nbytes})
        accessor: dict[str, Any] = {
            "bufferView": len(self.views) - 1,
            "componentType": 5126 if floats else 5125,
            "count": len(values),
            "type": type_name,
        }
        if "min" in like and "max" in like and len(values):  # POSITION's bounds (glTF requires them)
            accessor.update(min=stored.min(axis=0).tolist(), max=stored.max(axis=0).tolist())
        self.accessors.append(accessor)
        return len(self.accessors) - 1

    def dequantize(self, index: int) -> int:
        """A float32 copy of an integer vertex attribute, ``normalized`` applied as glTF defines it."""
        accessor = self.accessor(index, f"accessor {index}")
        what = f"accessor {index}"
        dtype = _dtype(accessor)
        width, count = _COMPONENTS.get(str(accessor.get("type")), 0), accessor.get("count")
        view = self.views[accessor["bufferView"]] if isinstance(accessor["bufferView"], int) else None
        if (
            not width
            or dtype.kind == "f"
            or not isinstance(count, int)
            or count < 1
            or not isinstance(view, dict)
        ):
            raise ModelLoadError(f"{self.label}: {what} is not a valid quantized vertex attribute")
        element = width * dtype.itemsize
        stride = view.get("byteStride") or element
        start = view["byteOffset"] + accessor.get("byteOffset", 0)
        end = start + (count - 1) * stride + element
        if end > view["byteOffset"] + view.get("byteLength", 0) or stride < element:
            raise ModelLoadError(f"{self.label}: {what} reaches past its buffer view")
        with memoryview(self.out) as out:  # released before ``out`` grows again
            raw = np.lib.stride_tricks.as_strided(
                np.frombuffer(out, dtype=np.uint8, count=end - start, offset=start),
                (count, element),
                (stride, 1),
            )
            values = np.array(raw).view(dtype).reshape(count, width)
            del raw
        values = _normalized(values, bool(accessor.get("normalized")))
        return self.add_accessor(values.astype(np.float32), accessor["type"], accessor)


def _normalized(values: np.ndarray[Any, Any], normalized: bool) -> np.ndarray[Any, Any]:
    """Integer values as glTF's ``normalized`` reads them: c / max (signed: at least -1)."""
    if not normalized or values.dtype.kind not in "iu":
        return values
    top = float(np.iinfo(values.dtype).max)
    scaled = values.astype(np.float32) / top
    return np.maximum(scaled, -1.0) if values.dtype.kind == "i" else scaled


def _glb(document: dict[str, Any], binary: bytes) -> bytes:
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text
    if binary:
        binary += b"\0" * (-len(binary) % 4)
        chunks += struct.pack("<I4s", len(binary), b"BIN\x00") + binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks
