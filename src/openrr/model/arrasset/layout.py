"""What an ``.arrAsset`` holds (``Asset``) and the constants of its byte layout (``docs/arrasset.md``),
shared by the writer and the reader so that neither imports the other. ``PointCloud`` lives in
``openrr.model.points`` and is named here too for the readers that import it from here."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from openrr.model.points import PointCloud
from openrr.model.scene import Scene

__all__ = ["Asset", "PointCloud"]

MAGIC = b"\x89ORR\r\n\x1a\n"  # PNG-style: a non-ASCII byte, CRLF and ^Z catch text-mode transfers
# 2: node metadata, per-material unlit flags and uv transforms; 3: point clouds ordered for levels of
# detail, with their ``levels`` (docs/arrasset.md)
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # older assets read as ones without what later versions added
HEADER = struct.Struct("<8sIIQQIIQQII")  # 64 bytes; see docs/arrasset.md
HEADER_SIZE = HEADER.size
HEADER_CHECKED = 56  # the header's CRC-32 covers its first 56 bytes
ALIGN = 64
DTYPES = {"<f4", "<f2", "<u4", "<u2", "<u1", "<i1", "<i2"}
INFLATE_LIMIT = 2 << 30  # bytes all compressed buffers of one asset may inflate to
COMPRESS_IMAGES_BELOW = 0.75  # zlib-compress an image when that keeps less than 75 % of its bytes


@dataclass(eq=False)
class Asset:
    """What an asset holds: the scene (its meshes carry their levels of detail), the point clouds by
    node id, and the manifest's ``statistics``.

    Writing: the clouds of ``points`` and of the nodes' own ``Node.points``; nodes listed in ``points``
    must have no mesh. Reading: each cloud is on its node (``Node.points``) and in ``points``.
    ``unlit`` marks every material as unlit (ARR's ``unlitMaterials``; ``Material.unlit`` marks one);
    read back, it says whether every material is.
    """

    scene: Scene
    points: dict[int, PointCloud] = field(default_factory=dict)
    unlit: bool = False
    statistics: dict[str, Any] = field(default_factory=dict)
