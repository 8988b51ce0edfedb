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
