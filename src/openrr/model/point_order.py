"""The order of a point cloud's points that makes every prefix an even subsample (``level_order``): the
levels of detail of point clouds, built once at conversion.

Why spatially stratified rather than shuffled: a random shuffle makes every prefix a uniform sample
too, but a random sample clumps and leaves holes (Poisson), most visibly in the small prefixes drawn
far away. Here, as Potree's and Entwine's octrees do, level ``L`` holds one point per occupied cell of
an octree of depth ``L`` over the cloud's bounding cube, so the first levels cover the cloud with no
holes larger than their cell; a level's cell size is its ``spacing``. Unlike an octree on disk, nothing
but the order is stored: the arrays stay two flat buffers and a level is a prefix.

How, in a few passes of numpy over the points: each point's Morton code at the finest depth (with each
depth's 3 bits XOR-ed by a random mask, so the point kept per cell is not always the one nearest the
same corner), one sort by code, then a point's level is the depth at which its code first differs from
the previous code's (the first point of each cell, in code order, is the cell's representative).
Points within a level are shuffled, so that a prefix ending inside a level is a uniform sample of that
level. Points sharing a finest cell with an earlier point form the last level. Memory: the codes, the
order and a level per point (17 bytes a point) besides the cloud; work is done in slices.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from openrr.model.mesh import F32
from openrr.model.points import PointCloud, PointLevel

MAX_DEPTH = 21  # 3 x 21 bits: a Morton code in 63 bits
_SLICE = 1 << 22  # points per slice of the passes that make temporaries


def level_order(
    positions: F32, finest_spacing: float, seed: int = 0
) -> tuple[NDArray[np.int64], tuple[PointLevel, ...]]:
    """The order of ``positions`` (indices, a permutation) whose prefixes are even subsamples, and the
    levels of detail as prefix counts with their spacing (cell sizes; the last level, the points that
    share a finest cell with another, gets ``finest_spacing``). Deterministic for a ``seed``."""
    count = len(positions)
    depth = finest_depth(count)
    low = positions.min(axis=0).astype(np.float64)
    extent = max(float((positions.max(axis=0) - low).max()), 1e-30)
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, 8, size=depth, dtype=np.uint64)
    codes = _codes(positions, low, extent, depth, masks)
    order = np.argsort(codes)  # introsort: 1.5x faster than a stable sort; ties share a finest cell
    codes = codes[order]
    levels = _levels(codes, depth)
    del codes
    by_level = np.argsort(levels, kind="stable")  # radix sort for uint8: linear
    counts = np.bincount(levels, minlength=depth + 2)
    del levels
    order = order[by_level]
    del by_level
    result: list[PointLevel] = []
    start = 0
    for level, size in enumerate(counts.tolist()):
        if size == 0:
            continue
        end = start + size
        if size > 1:
            order[start:end] = order[start:end][rng.permutation(size)]
        spacing = extent / (1 << level) if level <= depth else finest_spacing
        result.append(PointLevel(end, max(spacing, finest_spacing)))
        start = end
    return order, tuple(result)


def finest_depth(count: int) -> int:
    """The octree depth of the finest level: deep enough that a surface sampled by ``count`` points
    (about 4^L occupied cells at depth L) has one point a cell, two levels more for volumes and
    uneven densities."""
    return max(1, min(MAX_DEPTH, math.ceil(math.log2(max(count, 2)) / 2) + 2))


def _codes(
    positions: F32, low: NDArray[np.float64], extent: float, depth: int, masks: NDArray[np.uint64]
) -> NDArray[np.uint64]:
    """Per point, its Morton code at ``depth`` with depth d's 3 bits XOR-ed by ``masks[d - 1]``."""
    cells = 1 << depth
    flip = np.uint64(0)
    for d in range(depth):  # depth d + 1 sits at bits 3 * (depth - d - 1)
        flip |= masks[d] << np.uint64(3 * (depth - d - 1))
    codes = np.empty(len(positions), dtype=np.uint64)
    scale = cells / extent
    for start in range(0, len(positions), _SLICE):
        part = (positions[start : start + _SLICE].astype(np.float64) - low) * scale
        grid = np.clip(part, 0, cells - 1).astype(np.uint64)
        code = _spread(grid[:, 0]) | (_spread(grid[:, 1]) << np.uint64(1))
        codes[start : start + _SLICE] = (code | (_spread(grid[:, 2]) << np.uint64(2))) ^ flip
    return codes


def _spread(v: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """The 21 low bits of ``v`` spread to every third bit (the classic magic-number interleave)."""
    v = v & np.uint64(0x1FFFFF)
    v = (v | (v << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
    v = (v | (v << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
    v = (v | (v << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
    v = (v | (v << np.uint64(2))) & np.uint64(0x1249249249249249)
    return v


def _levels(sorted_codes: NDArray[np.uint64], depth: int) -> NDArray[np.uint8]:
    """Per point (in code order), the depth of the coarsest cell it is the first point of: 0 for the
    first point, ``depth + 1`` for a point in the same finest cell as the one before."""
    levels = np.empty(len(sorted_codes), dtype=np.uint8)
    levels[0] = 0
    for start in range(1, len(sorted_codes), _SLICE):
        end = min(start + _SLICE, len(sorted_codes))
        diff = sorted_codes[start:end] ^ sorted_codes[start - 1 : end - 1]
        levels[start:end] = depth - _highest_bit(diff) // 3
    return levels


def _highest_bit(values: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Per value, the index of its highest set bit; -3 for 0 (so that ``depth - (-3 // 3)`` is
    ``depth + 1``). Exact: each 32-bit half converts to float64 without rounding."""
    high = (values >> np.uint64(32)).astype(np.float64)
    low = (values & np.uint64(0xFFFFFFFF)).astype(np.float64)
    bit = np.where(high > 0, np.frexp(high)[1] + 31, np.frexp(low)[1] - 1).astype(np.int64)
    bit[values == 0] = -3
    return bit


def with_levels(cloud: PointCloud, seed: int = 0) -> PointCloud:
    """``cloud`` with its points in ``level_order`` and its levels of detail (new arrays; the last
    level's spacing is the cloud's ``point_size``)."""
    order, levels = level_order(cloud.positions, cloud.point_size, seed)
    positions = cloud.positions[order]
    colors = cloud.colors[order] if cloud.colors is not None else None
    return PointCloud(positions, colors, cloud.point_size, levels)
