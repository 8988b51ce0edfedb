"""Levels of detail: coarser copies of a big mesh, made by vertex clustering on a grid.

Meshes above ``LOD_MIN_TRIANGLES`` get levels from ``build_lods`` (``simplify``, one per ratio). Each level
records ``error``, the largest distance any vertex moved, in the mesh's own units, which the renderer
turns into pixels to pick the level it draws (``openrr.render.renderer.choose_lod``). They travel on
``Mesh.lods``, in an ``.arrAsset`` (``openrr.model.arrasset``) and in memory. The converter builds them;
nothing here reads or writes files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from openrr.model.mesh import LodLevel, Mesh, Primitive

LOD_MIN_TRIANGLES = 200_000  # below this a mesh is cheap enough on llvmpipe to draw whole
# Triangle fractions of the levels, finest first: steps of about half, so that a frame budget
# (openrr.render.frame_budget) finds one near what it can afford (0.25 to 0.0625 was a 2x jump in
# render time on llvmpipe); together about as big as the mesh itself.
LOD_RATIOS = (0.5, 0.25, 0.125, 0.0625, 0.02)
_CASCADE = 4  # a level is clustered from a coarser level with at least this many times its target
LOD_SMALLEST = 5_000  # no level below this many triangles


def simplify(mesh: Mesh, target_triangles: int, area: float | None = None) -> LodLevel | None:
    """A coarser copy of ``mesh`` with about ``target_triangles`` triangles, by vertex clustering.

    All vertices of the mesh (every primitive) are snapped to a uniform grid; each occupied cell becomes
    one vertex at the mean of its vertices, so neighbouring primitives stay joined. Triangles whose
    corners fall into fewer than three cells disappear, as do duplicates. Normals, uvs and colours are
    averaged per primitive and cell. Costs a few sorts of the vertex array: about 0.2 s per level for a
    million triangles. ``area``: the mesh's surface area, if known. Returns None when no primitive
    keeps a triangle (the grid swallowed the mesh).
    """
    area = surface_area(mesh) if area is None else area
    if area <= 0 or target_triangles < 1:
        return None
    positions = np.concatenate([p.positions for p in mesh.primitives])
    # A surface of area A crosses about 1.5 A / cell² cells (a cube's mean shadow is 1.5 faces) and a
    # closed mesh has about twice as many triangles as vertices; 2.5 rather than 3 is what this
    # under-counts on real meshes (measured on spheres and boxes).
    cell = math.sqrt(2.5 * area / target_triangles)
    level = _cluster(mesh, positions, cell)
    if level is not None and level.mesh.triangle_count > 1.5 * target_triangles:
        cell *= math.sqrt(level.mesh.triangle_count / target_triangles)  # one correction is enough
        level = _cluster(mesh, positions, cell)
    return level


def surface_area(mesh: Mesh) -> float:
    """The total area of the mesh's triangles (float32 arithmetic: this is an estimate for the grid)."""
    total = 0.0
    for p in mesh.primitives:
        a, b, c = (p.positions[p.indices[:, k]] for k in range(3))
        u, v = b - a, c - a
        cross = np.stack(
            [
                u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1],
                u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0],
            ]
        )
        total += 0.5 * float(np.sqrt((cross * cross).sum(axis=0)).sum(dtype=np.float64))
    return total


def unique_inverse(values: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``np.unique(values, return_inverse=True)`` for a 1-d integer array, from steps that release the GIL.

    Levels are also built on a worker thread of a render server (``openrr.render.lod_builder``), beside
    the threads that stream. ``np.unique`` takes the running sum of a boolean mask, which casts through a
    buffer while holding the GIL: 50-125 ms on a million-vertex mesh, during which the event loop and
    the encoder wait (measured with a thread ticking every millisecond). Summing an int64 copy does not.
    """
    order = np.argsort(values)
    ordered = values[order]
    first = np.empty(len(ordered), dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(first.astype(np.int64)) - 1
    unique: NDArray[np.int64] = ordered[first]
    return unique, inverse


def _cluster(mesh: Mesh, positions: NDArray[np.float32], cell: float) -> LodLevel | None:
    low = positions.min(axis=0)
    grid = ((positions - low) * np.float32(1.0 / cell)).astype(np.int64)  # non-negative: truncation floors
    dims = grid.max(axis=0) + 1
    if float(np.prod(dims.astype(np.float64))) < 2.0**62:
        keys = grid[:, 0] + dims[0] * (grid[:, 1] + dims[1] * grid[:, 2])
        cells, inverse = unique_inverse(keys)
    else:  # a grid too fine to number its cells in 64 bits: sort the rows themselves (slower)
        cells, inverse = np.unique(grid, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse, minlength=len(cells)).astype(np.float64)
    sums = np.stack([np.bincount(inverse, positions[:, k], len(cells)) for k in range(3)], axis=1)
    centre: NDArray[np.float64] = sums / counts[:, None]
    moved = positions - centre[inverse].astype(np.float32)
    error = float(np.sqrt((moved * moved).sum(axis=1)).max())
    primitives: list[Primitive] = []
    start = 0
    for p in mesh.primitives:
        cluster = inverse[start : start + len(p.positions)]
        start += len(p.positions)
        reduced = _cluster_primitive(p, cluster, centre)
        if reduced is not None:
            primitives.append(reduced)
    if not primitives:
        return None
    return LodLevel(Mesh(mesh.name, tuple(primitives)), error)


def _cluster_primitive(
    p: Primitive, cluster: NDArray[np.int64], centre: NDArray[np.float64]
) -> Primitive | None:
    tri = cluster[p.indices]
    keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    tri = tri[keep]
    if len(tri) == 0:
        return None
    # Duplicates (the same three cells, whatever the order) would only z-fight: keep the first.
    ordered = np.sort(tri, axis=1)
    n = int(ordered.max()) + 1
    if n < 1 << 21:  # three cell numbers packed in one int64 sort much faster than rows
        _, first = np.unique((ordered[:, 0] * n + ordered[:, 1]) * n + ordered[:, 2], return_index=True)
    else:
        _, first = np.unique(ordered, axis=0, return_index=True)
    tri = tri[np.sort(first)]
    used, local = unique_inverse(tri.reshape(-1))
    # Per-primitive vertex attributes, averaged over the primitive's vertices in each used cell.
    slot = np.full(int(cluster.max()) + 1, -1, dtype=np.int64)
    slot[used] = np.arange(len(used))
    owner = slot[cluster]
    mine = owner >= 0
    weight = np.bincount(owner[mine], minlength=len(used)).astype(np.float64)

    def mean(values: NDArray[np.float32] | None) -> NDArray[np.float32] | None:
        if values is None:
            return None
        sums = np.stack(
            [
                np.bincount(owner[mine], values[mine, k].astype(np.float64), len(used))
                for k in range(values.shape[1])
            ],
            axis=1,
        )
        averaged: NDArray[np.float32] = (sums / np.maximum(weight, 1)[:, None]).astype(np.float32)
        return averaged

    normals = mean(p.normals)
    if normals is not None:
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = np.where(length > 1e-12, normals / np.maximum(length, 1e-12), np.float32(0)).astype(
            np.float32
        )
    return Primitive(
        centre[used].astype(np.float32),
        local.reshape(-1, 3).astype(np.uint32),
        p.material,
        normals=normals,
        uvs=mean(p.uvs),
        colors=mean(p.colors),
    )


def build_lods(
    mesh: Mesh,
    *,
    min_triangles: int = LOD_MIN_TRIANGLES,
    ratios: Sequence[float] = LOD_RATIOS,
    progress: Callable[[str], None] | None = None,
) -> tuple[LodLevel, ...]:
    """The levels of detail ``mesh`` gets: none below ``min_triangles``, else one per ratio (finest
    first) while a level keeps at least ``LOD_SMALLEST`` triangles and is smaller than the one before.

    A level whose target is a quarter or less of an earlier level's triangles is clustered from that
    level rather than the mesh (about 3x quicker for the coarse ones); its error is then the sum of both
    errors, an upper bound of how far any vertex of the mesh moved."""
    if mesh.triangle_count < min_triangles:
        return ()
    levels: list[LodLevel] = []
    area = surface_area(mesh)
    for ratio in ratios:
        target = int(mesh.triangle_count * ratio)
        if target < LOD_SMALLEST:
            break
        source = next((lv for lv in reversed(levels) if lv.mesh.triangle_count >= _CASCADE * target), None)
        if source is None:
            level = simplify(mesh, target, area)
        else:
            level = simplify(source.mesh, target, area)
            level = None if level is None else LodLevel(level.mesh, level.error + source.error)
        previous = levels[-1].mesh.triangle_count if levels else mesh.triangle_count
        if level is None or level.mesh.triangle_count >= previous:
            break
        levels.append(level)
        if progress is not None:
            progress(
                f"level of detail for {mesh.name!r}: {level.mesh.triangle_count} triangles, "
                f"error {level.error:.3g}"
            )
    return tuple(levels)
