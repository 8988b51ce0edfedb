"""E57 point clouds (ASTM E2807), read by pye57 (libE57Format): every ``data3D`` scan, chunk by chunk.

Each scan becomes a node under one root named after the file, its pose (rotation quaternion and
translation) as the node's transform, so the scanner-centred coordinates stay small in float32 and the
pose stays float64. Cartesian or spherical coordinates; points the file marks invalid
(``cartesianInvalidState`` / ``sphericalInvalidState`` other than 0) are dropped. Colour is
``colorRed/Green/Blue`` normalised by the scan's ``colorLimits`` (or the fields' own ranges), or the
intensity as grey (by ``intensityLimits``) where a scan has no colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.assets.readers.source import (
    GrowingArray,
    Reader,
    Source,
    check_point_count,
    library,
    library_error,
)
from openrr.model.arrasset.layout import PointCloud
from openrr.model.metadata import MetadataKeeper
from openrr.model.scene import Scene

FORMATS = {".e57": "E57 point cloud"}
CHUNK_POINTS = 1 << 18
# libE57 packs a constant field into no bits at all, so a scan's claimed count is not believed past this
# many points per byte of file when allocating (the arrays grow if it was true after all).
POINTS_PER_BYTE = 64
CARTESIAN = ("cartesianX", "cartesianY", "cartesianZ")
SPHERICAL = ("sphericalRange", "sphericalAzimuth", "sphericalElevation")
COLOURS = ("colorRed", "colorGreen", "colorBlue")


def read(job: Job, path: Path, extension: str, metadata: MetadataKeeper) -> Source:
    """Every valid point of every scan; ``ConversionFailed`` for a file libE57 cannot read, a scan
    without coordinates, no points at all or more than ``source.MAX_POINTS``."""
    pye57 = library("pye57", FORMATS[extension], "pye57")
    failures = (pye57.libe57.E57Exception, RuntimeError, OSError, ValueError, IndexError, KeyError, TypeError)
    try:
        e57 = pye57.E57(str(path))
    except failures as exc:
        raise ConversionFailed(f"{path.name}: not a readable E57 file ({library_error(exc, path)})") from None
    try:
        return _read_file(job, path, e57, pye57)
    except failures as exc:  # libE57's E57Exception on a damaged file; pye57's own ValueError and the like
        raise ConversionFailed(f"{path.name}: not a readable E57 file ({library_error(exc, path)})") from None
    finally:
        e57.close()


def _read_file(job: Job, path: Path, e57: Any, pye57: ModuleType) -> Source:
    headers = [e57.get_header(i) for i in range(e57.scan_count)]
    check_point_count(path, sum(int(h.point_count) for h in headers))
    scene = Scene(path.name)
    root = scene.add_node(path.stem or "points")
    clouds: dict[int, PointCloud] = {}
    budget = path.stat().st_size * POINTS_PER_BYTE
    for index, header in enumerate(headers):
        scan = _read_scan(e57, header, pye57.libe57, min(int(header.point_count), budget))
        positions, colors, origin = scan
        if len(positions) == 0:
            continue
        name = _text(header.node, "name") or f"scan {index}"
        local = np.eye(4)
        local[:3, 3] = origin
        node = scene.add_node(name, parent=root.id, transform=_pose(header) @ local)
        clouds[node.id] = PointCloud(positions, colors, 1.0)
        job.say(f"scan {name!r}: {len(positions)} valid points of {header.point_count}")
    if not clouds:
        raise ConversionFailed(f"{path.name} holds no valid points", code="EmptyModel")
    version = f"{_number(e57.root, 'versionMajor'):.0f}.{_number(e57.root, 'versionMinor'):.0f}"
    return Source(scene, clouds, FORMATS[".e57"], version, _text(e57.root, "e57LibraryVersion"))


@dataclass
class _Fields:
    """Which of a scan's fields are read, and the ranges its colours and intensity are normalised by."""

    coordinates: tuple[str, ...]
    invalid: str | None
    colours: tuple[float, float] | None
    intensity: tuple[float, float] | None

    @property
    def names(self) -> list[str]:
        extra = list(COLOURS) if self.colours else ["intensity"] if self.intensity else []
        return [*self.coordinates, *extra, *([self.invalid] if self.invalid else [])]


def _fields(header: Any, libe57: ModuleType) -> _Fields:
    present = set(header.point_fields)
    if set(CARTESIAN) <= present:
        coordinates, invalid = CARTESIAN, "cartesianInvalidState"
    elif set(SPHERICAL) <= present:
        coordinates, invalid = SPHERICAL, "sphericalInvalidState"
    else:
        raise ConversionFailed(
            f"scan {_text(header.node, 'name')!r} has neither cartesian nor spherical points"
        )
    colours = None
    if set(COLOURS) <= present:
        colours = _limits(header, libe57, "colorLimits", "colorRed")
    intensity = _limits(header, libe57, "intensityLimits", "intensity") if "intensity" in present else None
    return _Fields(coordinates, invalid if invalid in present else None, colours, intensity)


def _read_scan(
    e57: Any, header: Any, libe57: ModuleType, capacity: int
) -> tuple[NDArray[np.float32], NDArray[np.float32] | None, NDArray[np.float64]]:
    """The scan's valid points in its own frame less a local origin (the middle of its first chunk,
    taken off in float64 so that scans stored in world coordinates keep their precision), their RGBA
    (None without colour or intensity), and that origin."""
    fields = _fields(header, libe57)
    buffers = {name: np.empty(CHUNK_POINTS, np.float64) for name in fields.names}
    vector = libe57.VectorSourceDestBuffer()
    for name, array in buffers.items():
        vector.append(libe57.SourceDestBuffer(e57.image_file, name, array, CHUNK_POINTS, True, True))
    positions = GrowingArray(3, np.float32, capacity)
    colours = GrowingArray(4, np.float32, capacity) if fields.colours or fields.intensity else None
    origin: NDArray[np.float64] | None = None
    reader = header.points.reader(vector)
    try:
        while count := reader.read():
            chunk = {name: array[:count] for name, array in buffers.items()}
            keep = chunk[fields.invalid] == 0 if fields.invalid else np.ones(count, dtype=bool)
            xyz = _cartesian(chunk, fields.coordinates)[keep]
            if origin is None and len(xyz):
                origin = (xyz.min(axis=0) + xyz.max(axis=0)) / 2.0
            positions.extend((xyz - (origin if origin is not None else 0.0)).astype(np.float32))
            if colours is not None:
                colours.extend(_rgba(chunk, fields)[keep])
    finally:
        reader.close()
    out = positions.array()
    if not np.isfinite(out).all():
        raise ConversionFailed("the points have non-finite coordinates")
    rgba = None if colours is None else colours.array()
    return out, rgba, np.zeros(3) if origin is None else origin  # type: ignore[return-value]


def _cartesian(chunk: dict[str, NDArray[np.float64]], coordinates: tuple[str, ...]) -> NDArray[np.float64]:
    if coordinates == CARTESIAN:
        return np.stack([chunk[name] for name in CARTESIAN], axis=1)
    distance, azimuth, elevation = (chunk[name] for name in SPHERICAL)
    flat = distance * np.cos(elevation)  # E57's spherical convention: elevation from the xy plane
    return np.stack([flat * np.cos(azimuth), flat * np.sin(azimuth), distance * np.sin(elevation)], axis=1)


def _rgba(chunk: dict[str, NDArray[np.float64]], fields: _Fields) -> NDArray[np.float32]:
    out = np.ones((len(chunk[fields.coordinates[0]]), 4), dtype=np.float32)
    if fields.colours is not None:
        low, high = fields.colours
        for axis, name in enumerate(COLOURS):
            out[:, axis] = (chunk[name] - low) / (high - low)
    elif fields.intensity is not None:
        low, high = fields.intensity
        out[:, :3] = ((chunk["intensity"] - low) / (high - low))[:, None]
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _limits(header: Any, libe57: ModuleType, limits: str, field: str) -> tuple[float, float] | None:
    """The scan's ``colorLimits`` / ``intensityLimits`` for ``field``, else the range its prototype
    declares; None where neither gives a usable range (the field is then ignored)."""
    node = header.node
    stem = "color" + field[5:] if field.startswith("color") else field
    low = high = None
    if node.isDefined(limits):
        low, high = _number(node[limits], f"{stem}Minimum"), _number(node[limits], f"{stem}Maximum")
    if low is None or high is None:
        prototype = libe57.StructureNode(header.points.prototype())
        low, high = _declared_range(prototype.get(field), libe57)
    if low is None or high is None or not np.isfinite([low, high]).all() or not 0 < high - low < 1e12:
        return None
    return low, high


def _declared_range(field: Any, libe57: ModuleType) -> tuple[float | None, float | None]:
    kind = field.type()
    if kind == libe57.E57_INTEGER:
        typed = libe57.IntegerNode(field)
        return float(typed.minimum()), float(typed.maximum())
    if kind == libe57.E57_SCALED_INTEGER:
        typed = libe57.ScaledIntegerNode(field)
        return float(typed.scaledMinimum()), float(typed.scaledMaximum())
    if kind == libe57.E57_FLOAT:
        typed = libe57.FloatNode(field)
        return float(typed.minimum()), float(typed.maximum())
    return None, None


def _number(node: Any, name: str) -> float | None:
    if not node.isDefined(name):
        return None
    child = node[name]
    value = child.scaledValue() if hasattr(child, "scaledValue") else child.value()
    return float(value) if isinstance(value, int | float) else None


def _text(node: Any, name: str) -> str:
    if not node.isDefined(name):
        return ""
    value = node[name].value()
    return value if isinstance(value, str) else ""


def _pose(header: Any) -> NDArray[np.float64]:
    """The scan's pose as a 4x4 matrix (identity without one)."""
    matrix = np.eye(4)
    if header.has_pose():
        w, x, y, z = (float(v) for v in header.rotation)
        norm = np.sqrt(w * w + x * x + y * y + z * z)
        if not np.isfinite(norm) or norm == 0:
            raise ConversionFailed("a scan's pose has an invalid rotation quaternion")
        w, x, y, z = w / norm, x / norm, y / norm, z / norm
        matrix[:3, :3] = [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
        matrix[:3, 3] = header.translation
    return matrix


READER = Reader(FORMATS, read)
