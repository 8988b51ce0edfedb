"""LAS and LAZ point clouds (ASPRS LAS 1.0-1.4, point formats 0-10; LAZ through the lazrs backend), read
by laspy chunk by chunk so that memory stays near the size of the points it gives.

Coordinates are the file's integers scaled and offset in float64; a local origin (the middle of the first
chunk's points: near the cloud wherever it lies) is subtracted there, before the float32 conversion, and
becomes the node's translation, so that georeferenced clouds (millions of metres from zero) keep their
millimetres. Colour follows ARR: RGB where the point format has it (8- or 16-bit: 16-bit when any value
exceeds 255), the intensity as grey where it has none (or every RGB value is zero).
"""

from __future__ import annotations

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
    point_source,
)
from openrr.model.metadata import MetadataKeeper

FORMATS = {".las": "LAS point cloud", ".laz": "LAZ point cloud"}
CHUNK_POINTS = 1 << 20
# A compressed point takes at least a few bits in practice; a LAZ header claiming more points than this
# many per byte of file is not believed when allocating (the arrays grow if it was true after all).
LAZ_POINTS_PER_BYTE = 64


def read(job: Job, path: Path, extension: str, metadata: MetadataKeeper) -> Source:
    """Every point of the file, with its colour or intensity; ``ConversionFailed`` for a file laspy cannot
    read, one cut short, one without points or with more than ``source.MAX_POINTS``."""
    format_name = FORMATS[extension]
    laspy = library("laspy", format_name, "laspy")
    if extension == ".laz":
        library("lazrs", format_name, "lazrs")
    try:
        with laspy.open(path, laz_backend=_laz_backends(laspy)) as reader:
            header = reader.header
            check_point_count(path, int(header.point_count))
            points = _Points(header, _plausible(path, header, extension))
            for chunk in reader.chunk_iterator(CHUNK_POINTS):
                points.add(chunk)
    except _failures(laspy) as exc:  # laspy, lazrs and numpy each raise their own kinds on a damaged file
        raise ConversionFailed(
            f"{path.name}: not a readable {format_name} file ({library_error(exc, path)})"
        ) from None
    if points.positions.size < header.point_count:
        raise ConversionFailed(
            f"{path.name} is cut short: its header says {header.point_count} points, it holds "
            f"{points.positions.size}"
        )
    job.say(f"read {points.positions.size} points ({_colour_source(points)}) from {path.name}")
    source = point_source(
        path,
        points.positions.array(),  # type: ignore[arg-type]
        points.colors(),
        format_name,
        str(header.version),
        str(header.generating_software).strip("\x00 "),
    )
    node = next(iter(source.scene.nodes()))
    transform = np.eye(4)
    transform[:3, 3] = points.origin
    node.transform = transform
    return source


def _failures(laspy: ModuleType) -> tuple[type[Exception], ...]:
    """What laspy and lazrs raise on a damaged file (lazrs's LazrsError is a RuntimeError)."""
    return (laspy.errors.LaspyException, RuntimeError, OSError, EOFError, ValueError, IndexError, KeyError)


def _laz_backends(laspy: ModuleType) -> tuple[Any, ...]:
    backend = laspy.LazBackend
    return (backend.LazrsParallel, backend.Lazrs)


def _plausible(path: Path, header: Any, extension: str) -> int:
    """How many points the file can hold given its size: the LAS records must all be there; a LAZ file's
    compression ratio is bounded only loosely."""
    size = path.stat().st_size
    count = int(header.point_count)
    if extension == ".las":
        record = int(header.point_format.size)
        available = (size - int(header.offset_to_point_data)) // max(record, 1)
        if available < count:
            holds = max(available, 0)
            raise ConversionFailed(
                f"{path.name} is cut short: its header says {count} points, its size holds {holds}"
            )
        return count
    return min(count, size * LAZ_POINTS_PER_BYTE)


class _Points:
    """Positions relative to ``origin`` (float32), with the RGB (where the format has it) and intensity
    as stored (uint16), gathered chunk by chunk."""

    def __init__(self, header: Any, capacity: int) -> None:
        self.scales = np.asarray(header.scales, dtype=np.float64)
        self.offsets = np.asarray(header.offsets, dtype=np.float64)
        self.origin: NDArray[np.float64] | None = None
        self.positions = GrowingArray(3, np.float32, capacity)
        names = set(header.point_format.dimension_names)
        self.rgb = GrowingArray(3, np.uint16, capacity) if {"red", "green", "blue"} <= names else None
        self.intensity = GrowingArray(1, np.uint16, capacity)

    def add(self, chunk: Any) -> None:
        xyz = np.empty((len(chunk), 3), dtype=np.float64)
        for axis, name in enumerate("XYZ"):
            xyz[:, axis] = np.asarray(chunk[name], dtype=np.float64) * self.scales[axis] + self.offsets[axis]
        if not np.isfinite(xyz).all():
            raise ConversionFailed("the points have non-finite coordinates (a scale or offset is not finite)")
        if self.origin is None and len(xyz):
            self.origin = (xyz.min(axis=0) + xyz.max(axis=0)) / 2.0
        xyz -= self.origin if self.origin is not None else 0.0
        self.positions.extend(xyz.astype(np.float32))
        if self.rgb is not None:
            self.rgb.extend(np.stack([chunk["red"], chunk["green"], chunk["blue"]], axis=1))
        self.intensity.extend(np.asarray(chunk["intensity"]))

    def colors(self) -> NDArray[np.float32] | None:
        """Linear-as-stored RGBA in 0..1 (the converter's gamma setting applies afterwards): RGB scaled by
        its bit depth, else the intensity scaled by its largest value, else None."""
        if self.rgb is not None:
            rgb = self.rgb.array()
            top = int(rgb.max(initial=0))
            if top > 0:
                return _rgba(rgb, 255 if top <= 255 else 65535)
        intensity = self.intensity.array()
        top = int(intensity.max(initial=0))
        return _rgba(intensity, top) if top > 0 else None


def _rgba(values: NDArray[np.generic], scale: int) -> NDArray[np.float32]:
    """``(N, 3)`` or ``(N, 1)`` (grey) values divided by ``scale``, with an alpha of 1."""
    out = np.empty((len(values), 4), dtype=np.float32)
    out[:, :3] = values
    out[:, :3] *= np.float32(1.0 / scale)
    out[:, 3] = 1.0
    return out


def _colour_source(points: _Points) -> str:
    if points.rgb is not None and int(points.rgb.array().max(initial=0)) > 0:
        return "RGB"
    return "intensity as grey" if int(points.intensity.array().max(initial=0)) > 0 else "no colour"


READER = Reader(FORMATS, read)
