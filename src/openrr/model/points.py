"""Point clouds as the scene holds them (``PointCloud`` on ``Node.points``), their levels of detail
(``PointLevel``), the scene-wide settings of how they are drawn (``PointCloudSettings``, ARR's
``PointCloudSettings``) and the choice of how many points to draw (``points_for``).

Levels of detail are prefixes: the converter orders the points so that every prefix of the arrays is an
even subsample of the whole cloud (``openrr.model.point_order``), and ``levels`` records where each level
ends and how far apart its points are. A renderer draws the first ``count`` points, nothing else to
upload or index. Apart from ``scene.py`` (the graph) and ``mesh.py`` (triangles): points have no
material, no parts and no triangles.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.model.mesh import F32, F64

# Points drawn per frame at most: about 75 ms on llvmpipe on 2 idle cores, which draws some 4 million
# points a second (measured: 605,000 points took 1.4x the time of a 1.3-million-triangle sphere).
DEFAULT_POINT_BUDGET = 300_000


@dataclass(frozen=True)
class PointLevel:
    """A level of detail: the first ``count`` points, about ``spacing`` apart (local units)."""

    count: int
    spacing: float


class PointCloud:
    """Points drawn at a node: positions (N, 3) float32 in the node's space, colours (N, 4) RGBA8 linear
    or None, ``point_size`` the world-space size of a point at full density (local units), and the
    ``levels`` (prefix counts, increasing, the last one ``N``; empty: one level of every point).

    Colours may be given as floats in 0..1 (N, 3) or (N, 4): they are packed to RGBA8 here (alpha 255
    where absent). Arrays already in their final type are kept, not copied (a loaded asset's point
    arrays are views of the file). Compares by identity, as meshes do. Raises ValueError for anything
    malformed.
    """

    def __init__(
        self,
        positions: NDArray[Any],
        colors: NDArray[Any] | None,
        point_size: float,
        levels: Sequence[PointLevel] = (),
    ) -> None:
        self.positions: F32 = np.ascontiguousarray(positions, dtype=np.float32).reshape(-1, 3)
        count = len(self.positions)
        if count == 0:
            raise ValueError("a point cloud needs at least one point")
        self.colors: NDArray[np.uint8] | None = rgba8(colors, count) if colors is not None else None
        size = float(point_size)
        if not (math.isfinite(size) and size > 0):
            raise ValueError(f"a point size must be finite and positive, not {size}")
        self.point_size = size
        self.levels: tuple[PointLevel, ...] = tuple(levels) or (PointLevel(count, size),)
        counts = [level.count for level in self.levels]
        if counts[-1] != count or counts[0] < 1 or any(b <= a for a, b in itertools.pairwise(counts)):
            raise ValueError(f"point levels {counts} do not rise to the point count {count}")
        if not all(math.isfinite(level.spacing) and level.spacing > 0 for level in self.levels):
            raise ValueError("a point level's spacing must be finite and positive")
        low, high = self.positions.min(axis=0), self.positions.max(axis=0)
        self.bounds: F64 = np.stack([low, high]).astype(np.float64)
        if not np.isfinite(self.bounds).all():
            raise ValueError("a point cloud's positions must be finite")

    @property
    def count(self) -> int:
        return len(self.positions)

    def spacing_at(self, count: int) -> float:
        """How far apart the first ``count`` points are: a level's spacing where ``count`` ends one,
        and between levels interpolated by the surface law (spacing ~ 1/sqrt(points)), never below
        the next level's."""
        count = max(1, min(count, self.count))
        counts = [level.count for level in self.levels]
        i = int(np.searchsorted(counts, count))  # the level that ``count`` ends or falls into
        level = self.levels[i]
        if count == level.count:
            return level.spacing
        if i == 0:
            return level.spacing * math.sqrt(level.count / count)
        before = self.levels[i - 1]
        return min(max(before.spacing * math.sqrt(before.count / count), level.spacing), before.spacing)


def rgba8(colors: NDArray[np.generic], count: int) -> NDArray[np.uint8]:
    """``colors`` as (count, 4) RGBA8: uint8 kept as it is (alpha 255 added to RGB), floats in 0..1
    scaled, rounded and clipped. Large arrays are packed in slices, so that no float64 copy is made."""
    array = np.asarray(colors)
    if array.ndim != 2 or len(array) != count or array.shape[1] not in (3, 4):
        raise ValueError(f"point colours must be (N, 3) or (N, 4) for {count} points, not {array.shape}")
    if array.dtype == np.uint8 and array.shape[1] == 4:
        return np.ascontiguousarray(array)
    packed = np.full((count, 4), 255, dtype=np.uint8)
    columns = array.shape[1]
    step = 1 << 22
    for start in range(0, count, step):
        part = array[start : start + step]
        if array.dtype == np.uint8:
            packed[start : start + step, :columns] = part
        else:
            scaled = np.clip(part.astype(np.float32, copy=False), 0.0, 1.0) * np.float32(255.0)
            packed[start : start + step, :columns] = np.rint(scaled)
    return packed


@dataclass
class PointCloudSettings:
    """How the scene's point clouds are drawn (ARR's ``PointCloudSettings``): ``size_scale`` multiplies
    every point's size; ``budget`` caps the points drawn per frame over all clouds (their levels of
    detail keep the picture even); ``max_pixels`` caps a point's size on screen."""

    size_scale: float = 1.0
    budget: int = DEFAULT_POINT_BUDGET
    max_pixels: float = 32.0


def points_for(cloud: PointCloud, pixels_per_unit: float, budget: int) -> int:
    """How many of ``cloud``'s points to draw when one local unit covers ``pixels_per_unit`` pixels at
    its nearest: the smallest prefix whose points are at most a pixel apart on screen (more would land
    on the same pixels), at most ``budget``, at least one."""
    wanted = cloud.count
    for level in cloud.levels:
        if level.spacing * pixels_per_unit <= 1.0:
            wanted = level.count
            break
    return max(1, min(wanted, budget))
