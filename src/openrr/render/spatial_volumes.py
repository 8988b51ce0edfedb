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
BATCH_CHUNKS = 64  # chunks tested at once, at most (16,384 triangles)
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
        """Whether AABBs (K, 2, 3) may meet the box: separated along neither the world axes nor the box's
        own (the 9 cross axes are left out: a few false positives, which the triangle tests settle)."""
        meets = _overlap(boxes, self.bounds())
        along = ((boxes[:, 0] + boxes[:, 1]) * 0.5 - self.centre) @ self.axes  # centres in the box's frame
        reach = (boxes[:, 1] - boxes[:, 0]) * 0.5 @ np.abs(self.axes)
        inside: Bools = meets & (np.abs(along) <= self.half + reach).all(axis=1)
        return inside

    def contains_boxes(self, boxes: F64) -> Bools:
        corners = (boxes[:, _CORNERS, [0, 1, 2]] - self.centre) @ self.axes  # (K, 8, 3) in the box's frame
        beyond: F64 = np.abs(corners) - self.half
        inside: Bools = beyond.max(axis=(1, 2), initial=-np.inf) <= 0
        return inside

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

    def contains_boxes(self, boxes: F64) -> Bools:
        farthest = np.maximum(np.abs(boxes[:, 0] - self.centre), np.abs(boxes[:, 1] - self.centre))
        inside: Bools = (farthest**2).sum(axis=1) <= self.radius**2
        return inside

    def meets_triangles(self, triangles: F64) -> Bools:
        meets = np.zeros(len(triangles), dtype=bool)
        # Only triangles whose own AABB reaches the sphere get the exact test.
        near = np.flatnonzero(self.meets_boxes(_triangle_boxes(triangles)))
        meets[near] = triangle_distance_squared(triangles[near], self.centre) <= self.radius**2
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
    """Whether a triangle of the mesh placed by ``world`` meets ``volume``: a chunk wholly inside the
    volume answers at once; else the chunks that reach it are tested, nearest to its centre first, in
    batches that grow (a hit is usually in the first few)."""
    boxes = _world_boxes(index.chunk_bounds, world)
    reaching = np.flatnonzero(volume.meets_boxes(boxes))
    if len(reaching) == 0:
        return False
    if volume.contains_boxes(boxes[reaching]).any():
        return True
    centres = boxes[reaching].mean(axis=1)
    reaching = reaching[np.argsort(((centres - volume.centre) ** 2).sum(axis=1))]
    done, size = 0, 4
    while done < len(reaching):
        if _chunks_meet(index, world, volume, reaching[done : done + size]):
            return True
        done, size = done + size, min(size * 4, BATCH_CHUNKS)
    return False


def _chunks_meet(index: MeshIndex, world: F64, volume: Volume, chunks: NDArray[np.int64]) -> bool:
    parts = index.chunk_part[chunks]
    for part in np.unique(parts):
        mine = chunks[parts == part]
        order = index.order[int(part)]
        triangles = np.concatenate([order[index.chunk_start[k] : index.chunk_stop[k]] for k in mine])
        local = index.positions[part][index.indices[part][triangles]].astype(np.float64)  # (N, 3, 3)
        if volume.meets_triangles(local @ world[:3, :3].T + world[:3, 3]).any():
            return True
    return False


def _world_boxes(local: F64, world: F64) -> F64:
    """The world AABBs of local AABBs (K, 2, 3) under ``world`` (Arvo: centre moved, half extents by |M|)."""
    centre = (local[:, 0] + local[:, 1]) * 0.5 @ world[:3, :3].T + world[:3, 3]
    half = (local[:, 1] - local[:, 0]) * 0.5 @ np.abs(world[:3, :3]).T
    boxes: F64 = np.stack([centre - half, centre + half], axis=1)
    return boxes


def _overlap(boxes: F64, box: F64) -> Bools:
    meets: Bools = ((boxes[:, 0] <= box[1]) & (boxes[:, 1] >= box[0])).all(axis=1)
    return meets


# -- exact triangle tests, vectorised over (N, 3, 3) triangles -------------------------------------------


def triangles_meet_box(triangles: F64, half: F64) -> Bools:
    """Whether each triangle (in the box's frame: centre at the origin, axes along x, y, z) meets the box
    of half extents ``half``: no separating axis among the 13 candidates."""
    meets = np.zeros(len(triangles), dtype=bool)
    # The box's own axes first: the triangles' AABBs against the box, cheap and most of the rejections.
    slack = 1e-9 * (half + np.abs(triangles).max(axis=(0, 1), initial=0.0))
    boxes = _triangle_boxes(triangles)
    near = np.flatnonzero(((boxes[:, 0] <= half + slack) & (boxes[:, 1] >= -half - slack)).all(axis=1))
    triangles = triangles[near]
    edges = np.roll(triangles, -1, axis=1) - triangles  # (N, 3 edges, 3)
    unit = np.eye(3)
    axes = [np.cross(edges[:, 0], edges[:, 1])]  # the triangle's normal
    axes += [np.cross(unit[k], edges[:, j]) for k in range(3) for j in range(3)]
    apart = np.zeros(len(triangles), dtype=bool)
    for axis in axes:
        projected = np.einsum("nvk,nk->nv", triangles, axis)  # (N, 3)
        reach = np.abs(axis) @ half  # the box's projected half width
        # A small relative slack: a triangle touching the box's face counts as meeting it.
        room = 1e-9 * (reach + np.abs(projected).max(axis=1))
        apart |= (projected.min(axis=1) > reach + room) | (projected.max(axis=1) < -reach - room)
    meets[near] = ~apart
    return meets


def _triangle_boxes(triangles: F64) -> F64:
    """Each triangle's AABB (N, 2, 3); elementwise, which numpy does faster than a reduction over axis 1."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    boxes: F64 = np.stack([np.minimum(np.minimum(a, b), c), np.maximum(np.maximum(a, b), c)], axis=1)
    return boxes


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
