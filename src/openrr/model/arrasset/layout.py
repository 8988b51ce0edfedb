"""What an ``.arrAsset`` holds (``Asset``, ``PointCloud``) and the constants of its byte layout
(``docs/arrasset.md``), shared by the writer and the reader so that neither imports the other."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.model.scene import Scene

MAGIC = b"\x89ORR\r\n\x1a\n"  # PNG-style: a non-ASCII byte, CRLF and ^Z catch text-mode transfers
VERSION = 2  # 2: node metadata, per-material unlit flags and uv transforms (docs/arrasset.md)
READABLE_VERSIONS = (1, 2)  # a version 1 asset reads as one with no metadata and no uv transforms
HEADER = struct.Struct("<8sIIQQIIQQII")  # 64 bytes; see docs/arrasset.md
HEADER_SIZE = HEADER.size
HEADER_CHECKED = 56  # the header's CRC-32 covers its first 56 bytes
ALIGN = 64
DTYPES = {"<f4", "<f2", "<u4", "<u2", "<u1", "<i1", "<i2"}
INFLATE_LIMIT = 2 << 30  # bytes all compressed buffers of one asset may inflate to
COMPRESS_IMAGES_BELOW = 0.75  # zlib-compress an image when that keeps less than 75 % of its bytes


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
    ``unlit`` marks every material as unlit (ARR's ``unlitMaterials``; ``Material.unlit`` marks one);
    read back, it says whether every material is.
    """

    scene: Scene
    points: dict[int, PointCloud] = field(default_factory=dict)
    unlit: bool = False
    statistics: dict[str, Any] = field(default_factory=dict)
