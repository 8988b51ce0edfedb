"""What a reader gives the converter (``Source``), what a reader module declares (``Reader``), and the
pieces several readers share: a point cloud as a one-node source, and importing a format's library.

Apart from the registry (``openrr.assets.readers``) so that reader modules import this, not the package
that lists them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
from numpy.typing import NDArray

from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.model.arrasset.layout import PointCloud
from openrr.model.metadata import MetadataKeeper
from openrr.model.scene import Scene


@dataclass
class Source:
    """A model as read: its scene, its point clouds by node id (those nodes have no mesh), and what
    ``info.json`` says of the file."""

    scene: Scene
    points: dict[int, PointCloud]
    format_name: str
    format_version: str = ""
    generator: str = ""
    sidedness_in_file: bool = False  # glTF: each material says whether it is double-sided


ReadFunction = Callable[[Job, Path, str, MetadataKeeper], Source]


@dataclass(frozen=True)
class Reader:
    """One reader module's declaration: ``formats`` maps each extension it reads (lower case, with the
    dot) to the format's name; ``read(job, path, extension, metadata)`` reads one file."""

    formats: Mapping[str, str]
    read: ReadFunction = field(compare=False)


def point_source(
    path: Path,
    positions: NDArray[np.float32],
    colors: NDArray[np.float32] | None,
    format_name: str,
    version: str = "",
    generator: str = "",
) -> Source:
    """Points ``(N, 3)`` with linear RGBA colours ``(N, 4)`` in 0..1 (or None) as a source of one node
    named after the file; ``ConversionFailed`` for no points or non-finite coordinates."""
    if len(positions) == 0:
        raise ConversionFailed(f"{path.name} holds no points", code="EmptyModel")
    if not np.isfinite(positions).all():
        raise ConversionFailed(f"{path.name}: the points have non-finite coordinates")
    scene = Scene(path.name)
    node = scene.add_node(path.stem or "points")
    cloud = PointCloud(positions, colors, 1.0)
    return Source(scene, {node.id: cloud}, format_name, version, generator)


def library(module: str, format_name: str, package: str) -> ModuleType:
    """``module`` imported; ``ConversionFailed`` (``UnsupportedFormat``) naming ``package`` when this
    installation lacks it (``pip install 'openrr[formats]'`` brings every format's library)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConversionFailed(
            f"reading {format_name} needs the Python package {package!r}, which is not installed here: "
            "pip install 'openrr[formats]'",
            code="UnsupportedFormat",
        ) from None


# The most points one point-cloud file may hold (E57, LAS/LAZ): the converter holds them all, 28 bytes
# each (float32 positions, float32 RGBA), so 100 million is about 2.8 GB. Readers look it up when they
# read, so a deployment (or a test) sets it here.
MAX_POINTS = 100_000_000


def check_point_count(path: Path, count: int, limit: int | None = None) -> None:
    """``ConversionFailed`` for a file that says it holds no points or more than the limit (``MAX_POINTS``
    unless given), before any point is read."""
    limit = MAX_POINTS if limit is None else limit
    if count <= 0:
        raise ConversionFailed(f"{path.name} holds no points", code="EmptyModel")
    if count > limit:
        raise ConversionFailed(
            f"{path.name} holds {count} points, more than the {limit} one conversion takes",
            code="TooManyPoints",
        )


class GrowingArray:
    """Rows gathered chunk by chunk into one array, for readers of big point clouds: memory stays near
    the result's size. ``capacity`` is what the file claims, bounded by what its size makes plausible (a
    header can lie); past it the array doubles."""

    def __init__(self, columns: int, dtype: type[np.generic], capacity: int) -> None:
        self._data: NDArray[np.generic] = np.empty((max(capacity, 1), columns), dtype)
        self.size = 0

    def extend(self, rows: NDArray[np.generic]) -> None:
        end = self.size + len(rows)
        if end > len(self._data):
            grown = np.empty((max(end, 2 * len(self._data)), self._data.shape[1]), self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : end] = rows.reshape(len(rows), -1)
        self.size = end

    def array(self) -> NDArray[np.generic]:
        """The rows so far (a view: no copy)."""
        return self._data[: self.size]


def library_error(exc: BaseException, path: Path) -> str:
    """A library's exception in words for the user: one line, bounded, without the server's folders
    (libE57 and others name the full path of the file)."""
    text = " ".join(str(exc).split())
    for form in {str(path.resolve()), str(path), str(path.parent.resolve()), str(path.parent)} - {"", "."}:
        text = text.replace(form, path.name if form.endswith(path.name) else "")
    return text[:300] or type(exc).__name__
