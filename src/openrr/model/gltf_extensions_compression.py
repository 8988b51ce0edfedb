"""Decoders of glTF's compressed geometry: ``KHR_draco_mesh_compression`` primitives (DracoPy, Google's
Draco) and ``EXT_meshopt_compression`` buffer views (the ``meshoptimizer`` package, zeux's own library).

Apart from ``openrr.model.gltf_extensions`` (which rewrites the document around what these return) because
this part is about untrusted compressed bytes: every decoded size is known before the decoder runs (a Draco
stream's header counts, a meshopt view's count x stride) and is checked against a ``DecodedBound``, so a
small file that claims gigabytes is refused before anything is allocated. Parameters the C decoders would
``assert`` on (and so abort the process) are validated here first. Every failure is a ``ModelLoadError``.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.model.budget import Allowance, BudgetExceeded, bytes_text
from openrr.model.errors import ModelLoadError

# Decoded geometry of one model when its allowance sets no geometry limit: a bound on what a compressed
# file may claim, far above any model a render server draws.
MAX_DECODED_BYTES = 4 << 30

_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_MESHOPT_FILTERS = ("NONE", "OCTAHEDRAL", "QUATERNION", "EXPONENTIAL")


class DecodedBound:
    """What one model's decompressed data may still take: a trial copy of the model's ``Allowance``
    (counted here, not taken: the scene converter takes the geometry it keeps) and ``MAX_DECODED_BYTES``."""

    def __init__(self, allowance: Allowance, label: str) -> None:
        self.trial = dataclasses.replace(allowance)
        self.label = label
        self.total = 0

    def take(self, size: int, what: str) -> None:
        self.total += size
        if self.total > MAX_DECODED_BYTES:
            raise ModelLoadError(
                f"{self.label}: {what} would decompress to {bytes_text(self.total)} in all, more than the "
                f"{bytes_text(MAX_DECODED_BYTES)} a model may hold"
            )
        try:
            self.trial.take_geometry(size, f"{what} (decompressed)")
        except BudgetExceeded as exc:
            raise ModelLoadError(f"{self.label}: {exc.message}") from None


def library(module: str, extension: str) -> Any:
    """The decoder's module, or a ModelLoadError naming the extension and the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelLoadError(
            f"the model uses {extension}, whose decoder ({module}) is not installed: "
            "pip install 'openrr[render]'"
        ) from None


# -- Draco ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DracoCounts:
    """A Draco mesh stream's header: its triangles and the most points decoding it may produce."""

    faces: int
    points: int


class _Reader:
    """Little-endian fields of a Draco header (bitstream 2.2, the version glTF's extension names)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise ValueError("the stream ends inside its header")
        self.at += 1
        return self.data[self.at - 1]

    def skip(self, size: int) -> None:
        self.at += size
        if self.at > len(self.data):
            raise ValueError("the stream ends inside its metadata")

    def varint(self) -> int:
        value = 0
        for shift in range(0, 35, 7):
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
        raise ValueError("a count in the header is not a valid varint")

    def metadata(self, depth: int = 0) -> None:
        """Skips one metadata element (entries, then nested elements)."""
        if depth > 32:
            raise ValueError("metadata nested too deep")
        for _ in range(self.varint()):
            self.skip(self.byte())  # key
            self.skip(self.byte())  # value
        for _ in range(self.varint()):
            self.skip(self.byte())  # sub-metadata key
            self.metadata(depth + 1)


def draco_counts(data: bytes) -> DracoCounts:
    """The counts in a Draco mesh stream's header, read without decoding anything (ValueError if it is not
    a Draco 2.2 triangle mesh). Sequential streams give their point count; Edgebreaker streams their
    encoded vertices, and attribute seams can split those up to one point per corner."""
    reader = _Reader(data)
    if data[:5] != b"DRACO":
        raise ValueError("not a Draco stream (no DRACO magic)")
    reader.skip(5)
    major, minor, encoder_type, method = (reader.byte() for _ in range(4))
    flags = reader.byte() | reader.byte() << 8
    if (major, minor) != (2, 2):
        raise ValueError(f"Draco bitstream {major}.{minor}, where glTF's extension uses 2.2")
    if encoder_type != 1:
        raise ValueError("not a triangle mesh (a Draco point cloud)")
    if flags & 0x8000:
        for _ in range(reader.varint()):  # attribute metadata: an id, then its element
            reader.varint()
            reader.metadata()
        reader.metadata()  # the file's
    if method == 0:  # sequential
        faces, points = reader.varint(), reader.varint()
        return DracoCounts(faces, points)
    if method == 1:  # edgebreaker: traversal type, encoded vertices, faces
        reader.byte()
        vertices, faces = reader.varint(), reader.varint()
        return DracoCounts(faces, max(vertices, 3 * faces))
    raise ValueError(f"unknown Draco encoding method {method}")


def decode_draco(
    stream: bytes, ids: dict[str, int], per_point: int, bound: DecodedBound, what: str
) -> tuple[dict[str, NDArray[Any]], NDArray[np.uint32]]:
    """A compressed primitive's attributes (by glTF name; ``ids`` maps those to Draco attribute ids) and
    its triangles (F, 3). ``per_point``: the decoded bytes of one point's attributes, for the bound."""
    try:
        counts = draco_counts(stream)
    except ValueError as exc:
        raise ModelLoadError(f"{bound.label}: {what}: invalid Draco data: {exc}") from None
    bound.take(counts.faces * 12 + counts.points * per_point, what)
    draco = library("DracoPy", "KHR_draco_mesh_compression")
    try:
        mesh = draco.decode(stream)
        faces = np.asarray(mesh.faces, dtype=np.uint32).reshape(-1, 3)
        by_id = {int(a["unique_id"]): np.asarray(a["data"]) for a in mesh.attributes}
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - DracoPy raises its own and plain exceptions alike
        raise ModelLoadError(f"{bound.label}: {what}: invalid Draco data: {exc}") from None
    attributes: dict[str, NDArray[Any]] = {}
    for name, draco_id in ids.items():
        if draco_id not in by_id:
            raise ModelLoadError(
                f"{bound.label}: {what}: the Draco data has no attribute {draco_id} ({name})"
            )
        attributes[name] = by_id[draco_id]
    if len(faces) > counts.faces or any(len(a) > counts.points for a in attributes.values()):
        raise ModelLoadError(f"{bound.label}: {what}: the Draco data decoded past its own header's counts")
    return attributes, faces


def point_bytes(type_name: Any) -> int:
    """Decoded bytes of one element of an accessor ``type`` (4 per component: Draco decodes to 32 bits)."""
    return 4 * _COMPONENTS.get(str(type_name), 16)


# -- meshopt -------------------------------------------------------------------------------------------


def meshopt_size(extension: dict[str, Any], label: str, what: str) -> int:
    """The decoded size of a compressed buffer view (count x byteStride), its parameters validated."""
    count, stride, mode = extension.get("count"), extension.get("byteStride"), extension.get("mode")
    if not isinstance(count, int) or not isinstance(stride, int) or count < 0:
        raise ModelLoadError(f"{label}: {what}: the meshopt extension needs integer count and byteStride")
    filter_ = extension.get("filter", "NONE")
    if mode == "ATTRIBUTES":
        problem = _attribute_problem(stride, filter_)
    elif mode in ("TRIANGLES", "INDICES"):
        problem = _index_problem(mode, count, stride, filter_)
    else:
        problem = f"mode {mode!r}"
    if problem:
        raise ModelLoadError(f"{label}: {what}: unsupported meshopt compression: {problem}")
    return count * stride


def _attribute_problem(stride: int, filter_: Any) -> str:
    if stride % 4 or not 4 <= stride <= 256:
        return f"byteStride {stride} (ATTRIBUTES take a multiple of 4 up to 256)"
    if filter_ not in _MESHOPT_FILTERS:
        return f"filter {filter_!r}"
    if (filter_ == "OCTAHEDRAL" and stride not in (4, 8)) or (filter_ == "QUATERNION" and stride != 8):
        return f"filter {filter_} with byteStride {stride}"
    return ""


def _index_problem(mode: str, count: int, stride: int, filter_: Any) -> str:
    if stride not in (2, 4):
        return f"byteStride {stride} (indices take 2 or 4)"
    if mode == "TRIANGLES" and count % 3:
        return f"TRIANGLES with {count} indices"
    if filter_ != "NONE":
        return f"filter {filter_!r} on indices"
    return ""


def decode_meshopt(extension: dict[str, Any], source: bytes, label: str, what: str) -> bytes:
    """A compressed buffer view's plain bytes (validated by ``meshopt_size`` beforehand)."""
    meshopt = library("meshoptimizer", "EXT_meshopt_compression")
    count, stride, mode = extension["count"], extension["byteStride"], extension["mode"]
    if count == 0:
        return b""
    if mode == "ATTRIBUTES" and source[:1] not in (b"", b"\xa0"):
        # Version 1 of the vertex codec is KHR_meshopt_compression's, which EXT's files never use.
        raise ModelLoadError(
            f"{label}: {what}: meshopt vertex data of codec version {source[0] & 0x0F}, "
            "where EXT_meshopt_compression has version 0"
        )
    try:
        if mode == "ATTRIBUTES":
            raw = meshopt.decode_vertex_buffer(count, stride, source, dtype=np.dtype((np.void, stride)))
            decoded = np.ascontiguousarray(raw).view(np.uint8)
            filter_ = extension.get("filter", "NONE")
            if filter_ != "NONE":
                decode = {
                    "OCTAHEDRAL": meshopt.decode_filter_oct,
                    "QUATERNION": meshopt.decode_filter_quat,
                    "EXPONENTIAL": meshopt.decode_filter_exp,
                }[filter_]
                decoded = decode(decoded, count, stride)
            return bytes(decoded)
        # The index codecs decode to either width whatever was encoded: 32 bits, narrowed if asked.
        if mode == "TRIANGLES":
            indices = meshopt.decode_index_buffer(count, 4, source)
        else:
            indices = meshopt.decode_index_sequence(count, 4, source)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the wrapper raises RuntimeError and ValueError alike
        raise ModelLoadError(f"{label}: {what}: invalid meshopt data: {exc}") from None
    indices = np.asarray(indices, dtype=np.uint32)
    if stride == 2:
        if len(indices) and int(indices.max()) > 0xFFFF:
            raise ModelLoadError(f"{label}: {what}: a decoded index does not fit the view's 16 bits")
        return indices.astype("<u2").tobytes()
    return indices.astype("<u4").tobytes()
