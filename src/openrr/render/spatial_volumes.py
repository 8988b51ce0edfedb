"""Volume queries (ARR's spatial queries): the entities whose mesh triangles meet a box, sphere or
oriented box.

Apart from ``spatial.py``'s ray casts: these test triangles exactly, in numpy, in world space (so
non-uniform scale and shear need no special case), after two culls: the entities' world AABBs against the
volume's, then the mesh index's chunks (``MeshIndex.chunk_bounds``, moved to world space) likewise. An
entity is found at its first triangle that meets the volume; the query stops at ``max_results`` entities.
The triangle tests are the separating axis test of a triangle against a box (Akenine-Möller: the box's 3
axes, the triangle's normal, the 9 edge cross products) and the distance from the sphere's centre to the
triangle's closest point.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from openrr.model.mesh import F64
from openrr.model.world import WorldState
from openrr.render.spatial import MeshIndex, index_of

Bools = NDArray[np.bool_]
BATCH = 16384  # triangles tested at once
_CORNERS = np.array(list(itertools.product((0, 1), repeat=3)))


@dataclass(frozen=True)
class Box:
    """An oriented box: ``centre``, ``half`` extents along the columns of ``axes`` (a rotation, 3x3)."""

    centre: F64
    half: F64
    axes: F64

    def bounds(self) -> F64:
        reach = np.abs(self.axes) @ self.half
        box: F64 = np.stack([self.centre - reach, self.centre + reach])
        return box

    def meets_boxes(self, boxes: F64) -> Bools:
        return _overlap(boxes, self.bounds())

    def meets_triangles(self, triangles: F64) -> Bools:
        return triangles_meet_box((triangles - self.centre) @ self.axes, self.half)


@dataclass(frozen=True)
class Sphere:
    centre: F64
    radius: float

    def bounds(self) -> F64:
        box: F64 = np.stack([self.centre - self.radius, self.centre + self.radius])
        return box

    def meets_boxes(self, boxes: F64) -> Bools:
        nearest = np.clip(self.centre, boxes[:, 0], boxes[:, 1])
        meets: Bools = ((nearest - self.centre) ** 2).sum(axis=1) <= self.radius**2
        return meets

    def meets_triangles(self, triangles: F64) -> Bools:
        meets: Bools = triangle_distance_squared(triangles, self.centre) <= self.radius**2
        return meets


Volume = Box | Sphere


def query(state: WorldState, volume: Volume, max_results: int) -> list[int]:
    """Ids of collidable entities whose triangles meet ``volume``, in hierarchy order, at most
    ``max_results``."""
    rows = np.flatnonzero(state.collidable & state.has_mesh)
    rows = rows[volume.meets_boxes(state.bounds[rows])]
    found: list[int] = []
    for row in rows:
        if len(found) >= max_results:
            break
        world = state.world[row]
        if abs(np.linalg.det(world[:3, :3])) < 1e-30:
            continue
        mesh = state.meshes[row]
        assert mesh is not None
        if _entity_meets(index_of(mesh), world, volume):
            found.append(int(state.ids[row]))
    return found


def _entity_meets(index: MeshIndex, world: F64, volume: Volume) -> bool:
    chunks = np.flatnonzero(volume.meets_boxes(_world_boxes(index.chunk_bounds, world)))
    batch: list[NDArray[np.int32]] = []
    batch_parts: list[int] = []
    size = 0
    for k in chunks:
        part = int(index.chunk_part[k])
        batch.append(index.order[part][index.chunk_start[k] : index.chunk_stop[k]])
        batch_parts.append(part)
        size += len(batch[-1])
        if size >= BATCH:
            if _batch_meets(index, world, volume, batch, batch_parts):
                return True
            batch, batch_parts, size = [], [], 0
    return bool(batch) and _batch_meets(index, world, volume, batch, batch_parts)


def _batch_meets(
    index: MeshIndex, world: F64, volume: Volume, batch: list[NDArray[np.int32]], parts: list[int]
) -> bool:
    for part in sorted(set(parts)):
        triangles = np.concatenate([b for b, p in zip(batch, parts, strict=True) if p == part])
        local = index.positions[part][index.indices[part][triangles]].astype(np.float64)  # (N, 3, 3)
        moved = local @ world[:3, :3].T + world[:3, 3]
        if volume.meets_triangles(moved).any():
            return True
    return False


def _world_boxes(local: F64, world: F64) -> F64:
    corners = local[:, _CORNERS, [0, 1, 2]]  # (K, 8, 3)
    moved = corners @ world[:3, :3].T + world[:3, 3]
    boxes: F64 = np.stack([moved.min(axis=1), moved.max(axis=1)], axis=1)
    return boxes


def _overlap(boxes: F64, box: F64) -> Bools:
    meets: Bools = ((boxes[:, 0] <= box[1]) & (boxes[:, 1] >= box[0])).all(axis=1)
    return meets


# -- exact triangle tests, vectorised over (N, 3, 3) triangles -------------------------------------------


def triangles_meet_box(triangles: F64, half: F64) -> Bools:
    """Whether each triangle (in the box's frame: centre at the origin, axes along x, y, z) meets the box
    of half extents ``half``: no separating axis among the 13 candidates."""
    edges = np.roll(triangles, -1, axis=1) - triangles  # (N, 3 edges, 3)
    axes = [np.broadcast_to(np.eye(3)[k], triangles[:, 0].shape) for k in range(3)]
    axes.append(np.cross(edges[:, 0], edges[:, 1]))  # the triangle's normal
    unit = np.eye(3)
    axes += [np.cross(unit[k], edges[:, j]) for k in range(3) for j in range(3)]
    apart = np.zeros(len(triangles), dtype=bool)
    for axis in axes:
        projected = np.einsum("nvk,nk->nv", triangles, axis)  # (N, 3)
        reach = np.abs(axis) @ half  # the box's projected half width
        # A small relative slack: a triangle touching the box's face counts as meeting it.
        slack = 1e-9 * (reach + np.abs(projected).max(axis=1))
        apart |= (projected.min(axis=1) > reach + slack) | (projected.max(axis=1) < -reach - slack)
    meets: Bools = ~apart
    return meets


def triangle_distance_squared(triangles: F64, point: F64) -> F64:
    """The squared distance from ``point`` to each triangle (its closest point, inside or on an edge)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    normal = np.cross(b - a, c - a)
    area2 = (normal**2).sum(axis=1)
    # Inside the prism over the triangle when the point is on the inner side of all three edges.
    inside = np.ones(len(triangles), dtype=bool)
    for p, q in ((a, b), (b, c), (c, a)):
        inside &= np.einsum("nk,nk->n", np.cross(q - p, point - p), normal) >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        plane = np.einsum("nk,nk->n", point - a, normal) ** 2 / area2
    edges = np.minimum.reduce([_segment_distance_squared(p, q, point) for p, q in ((a, b), (b, c), (c, a))])
    distance: F64 = np.where(inside & (area2 > 0), plane, edges)
    return distance


def _segment_distance_squared(p: F64, q: F64, point: F64) -> F64:
    along = q - p
    length2 = (along**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip(np.einsum("nk,nk->n", point - p, along) / length2, 0.0, 1.0)
    t = np.where(length2 > 0, t, 0.0)
    nearest = p + t[:, None] * along
    distance: F64 = ((nearest - point) ** 2).sum(axis=1)
    return distance
