"""Ray casts against a scene: one Embree BVH per distinct mesh, built in the background, shared by instances.

Two levels, as ARR's spatial queries: the entities' world AABBs (``WorldState.bounds``) are culled with one
vectorised slab test, then each candidate's BVH is asked in the mesh's own space (the ray moved by the
inverse world matrix, so instancing and any scale or shear cost nothing at build time). A BVH covers all
parts of its mesh (Embree's geometry id is the part). The volume queries (``spatial_volumes.py``) use the
same per-mesh index: its triangles in spatial order, in chunks with bounds.

Builds run on one background thread (``openrr-bvh``) as soon as a model is loaded (``prepare``): Embree
builds without the GIL, so the picture goes on; a query that comes first waits for its meshes (bounded by
``BUILD_WAIT_S``). Memory: see ``MeshIndex``. No GL here.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from openrr.model.components import ALL_BITS
from openrr.model.mesh import F64, Mesh
from openrr.model.scene import Scene
from openrr.model.world import WorldState
from openrr.protocol.scene_api import MAX_CUT_PLANES
from openrr.render.camera import Camera
from openrr.render.embree import TriangleScene

BUILD_WAIT_S = 20.0  # how long a query waits for BVHs still being built before it answers Busy
CHUNK = 256  # triangles per chunk of the volume queries' spatial order
ALL_HITS_PER_MESH = 64  # repeated casts per mesh in "all" mode (MAX_RAY_HITS)
Mode = Literal["closest", "any", "all"]


class IndexNotReady(Exception):
    """A mesh's BVH was not built within the wait (the query should be answered ``Busy``)."""


@dataclass(frozen=True)
class RayHit:
    """A ray's hit: the entity (node id), the mesh part, world position, unit normal facing the ray's
    origin, and the distance from the origin."""

    entity: int
    part: int
    position: tuple[float, float, float]
    normal: tuple[float, float, float]
    distance: float


class MeshIndex:
    """What the spatial queries know of one mesh, in its local space.

    ``scene``: the Embree BVH over all parts. ``order[p]``: part p's triangles in Morton order of their
    centroids; chunk k is ``order[chunk_part[k]][chunk_start[k]:chunk_stop[k]]`` with local bounds
    ``chunk_bounds[k]`` (2, 3). Cost: Embree's BVH (about 64 bytes a triangle, measured by
    bench/raycast.py) plus a padded copy of the positions and 4 bytes a triangle of order.
    """

    def __init__(self, mesh: Mesh) -> None:
        self.positions = [p.positions for p in mesh.primitives]
        self.indices = [p.indices for p in mesh.primitives]
        self.triangle_count = mesh.triangle_count
        self.scene = TriangleScene(list(zip(self.positions, self.indices, strict=True)))
        self.order: list[NDArray[np.int32]] = []
        parts, starts, stops, bounds = [], [], [], []
        for part, (positions, indices) in enumerate(zip(self.positions, self.indices, strict=True)):
            order, chunk_bounds = _chunks(positions, indices)
            self.order.append(order)
            count = len(chunk_bounds)
            parts.append(np.full(count, part, dtype=np.int32))
            starts.append(np.arange(count, dtype=np.int64) * CHUNK)
            stops.append(np.minimum(starts[-1] + CHUNK, len(order)))
            bounds.append(chunk_bounds)
        self.chunk_part = np.concatenate(parts)
        self.chunk_start = np.concatenate(starts)
        self.chunk_stop = np.concatenate(stops)
        self.chunk_bounds: F64 = np.concatenate(bounds)

    def triangle(self, part: int, triangle: int) -> F64:
        """The (3, 3) local vertices of one triangle, in float64."""
        corners: F64 = self.positions[part][self.indices[part][triangle]].astype(np.float64)
        return corners

    def cast(
        self, origin: F64, direction: F64, tfar: float, accept: Callable[[int, int, float], bool], most: int
    ) -> list[tuple[float, int, int]]:
        """Up to ``most`` accepted hits (t, part, triangle) along the local ray, nearest first.

        Casts again just past each hit (a relative step, so a hit is not found twice).
        """
        hits: list[tuple[float, int, int]] = []
        tnear = 0.0
        for _ in range(ALL_HITS_PER_MESH * 2):
            found = self.scene.intersect(origin, direction, tnear, tfar)
            if found is None:
                break
            t, part, triangle = found
            if accept(part, triangle, t):
                hits.append(found)
                if len(hits) >= most:
                    break
            tnear = t + max(abs(t) * 1e-6, 1e-9)
        return hits


def _chunks(positions: NDArray[np.float32], indices: NDArray[np.uint32]) -> tuple[NDArray[np.int32], F64]:
    """A part's triangles sorted by the Morton code of their centroids, and the bounds of each CHUNK."""
    corners = positions[indices]  # (T, 3, 3)
    low, high = corners.min(axis=1), corners.max(axis=1)
    centre = (low + high) * 0.5
    origin, extent = centre.min(axis=0), np.maximum(np.ptp(centre, axis=0), 1e-30)
    cells = ((centre - origin) / extent * 1023).astype(np.uint64)
    order = np.argsort(_spread(cells[:, 0]) | (_spread(cells[:, 1]) << 1) | (_spread(cells[:, 2]) << 2))
    starts = np.arange(0, len(order), CHUNK)
    bounds = np.stack(
        [np.minimum.reduceat(low[order], starts, axis=0), np.maximum.reduceat(high[order], starts, axis=0)],
        axis=1,
    ).astype(np.float64)
    return order.astype(np.int32), bounds


def _spread(bits: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """10 bits spread to every third bit (the Morton code's interleaving)."""
    x = bits & np.uint64(0x3FF)
    for shift, mask in ((16, 0x030000FF), (8, 0x0300F00F), (4, 0x030C30C3), (2, 0x09249249)):
        x = (x | (x << np.uint64(shift))) & np.uint64(mask)
    return x


# -- the build cache: one index per mesh, shared by every scene and instance -----------------------------

_builds: weakref.WeakKeyDictionary[Mesh, Future[MeshIndex]] = weakref.WeakKeyDictionary()
_builds_lock = threading.Lock()
_builder: ThreadPoolExecutor | None = None


def prepare(meshes: Iterable[Mesh]) -> list[Future[MeshIndex]]:
    """Start building the indexes of ``meshes`` not built or building yet (any thread); their futures."""
    global _builder
    futures = []
    with _builds_lock:
        for mesh in meshes:
            future = _builds.get(mesh)
            if future is None:
                if _builder is None:
                    _builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openrr-bvh")
                future = _builder.submit(MeshIndex, mesh)
                _builds[mesh] = future
            futures.append(future)
    return futures


# Per scene: the structure revision whose meshes were handed to the builder, and their builds. A reset's
# new scene starts clean here and finds the BVHs of the meshes it shares with the old one in _builds.
_scenes: weakref.WeakKeyDictionary[Scene, tuple[int, list[Future[MeshIndex]]]] = weakref.WeakKeyDictionary()


def pending_builds(scene: Scene) -> list[Future[MeshIndex]]:
    """Start the BVH builds of the scene's meshes (once per structure change) and return those not done:
    a caller on the event loop can await them before it sends a query to the GL thread. Call on the
    thread that owns the scene."""
    known = _scenes.get(scene)
    if known is None or known[0] != scene.structure_revision:
        known = (scene.structure_revision, prepare(scene.meshes()))
        _scenes[scene] = known
    return [f for f in known[1] if not f.done()]


def index_of(mesh: Mesh, wait_s: float = BUILD_WAIT_S) -> MeshIndex:
    """The mesh's index, built now or awaited. Raises IndexNotReady past ``wait_s``."""
    future = prepare([mesh])[0]
    try:
        return future.result(timeout=wait_s)
    except FutureTimeout:
        raise IndexNotReady(f"the BVH of mesh {mesh.name!r} is still being built") from None


# -- ray casts --------------------------------------------------------------------------------------------

RowFilter = Callable[[int, F64], bool]  # (row of the WorldState, world position) -> keep the hit?


def raycast(
    state: WorldState,
    origin: F64,
    direction: F64,
    *,
    max_distance: float = math.inf,
    mode: Mode = "closest",
    max_hits: int = 1,
    keep: RowFilter | None = None,
) -> list[RayHit]:
    """The hits of the ray on collidable entities, nearest first: one for ``closest`` and ``any`` (the
    first found, not necessarily the nearest), up to ``max_hits`` for ``all``. ``direction`` need not be
    unit; distances are world units. ``keep`` drops hits (the pick drops what cut planes removed)."""
    unit = direction / np.linalg.norm(direction)
    most = max_hits if mode == "all" else 1
    hits: list[tuple[float, int, RayHit]] = []
    rows, entries = _candidates(state, origin, unit, max_distance)
    for row, entry in zip(rows, entries, strict=True):
        if len(hits) >= most and entry > hits[most - 1][0]:
            break  # every entity left starts beyond the hits already found
        bound = hits[most - 1][0] if len(hits) >= most else max_distance
        found = _cast_entity(state, int(row), origin, unit, bound, most, keep)
        hits = sorted(hits + [(h.distance, int(row), h) for h in found], key=lambda h: (h[0], h[1]))[:most]
        if mode == "any" and hits:
            break
    return [h for _, _, h in hits]


def _candidates(
    state: WorldState, origin: F64, unit: F64, max_distance: float
) -> tuple[NDArray[np.int64], F64]:
    """Collidable mesh rows whose world AABB the ray enters within ``max_distance``, by entry distance."""
    rows = np.flatnonzero(state.collidable & state.has_mesh)
    boxes = state.bounds[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / unit
        t0 = (boxes[:, 0] - origin) * inverse
        t1 = (boxes[:, 1] - origin) * inverse
    # A zero direction component: inside the slab on that axis means any t, outside means none.
    inside = (boxes[:, 0] <= origin) & (origin <= boxes[:, 1])
    flat = unit == 0
    t0 = np.where(flat, np.where(inside, -np.inf, np.inf), t0)
    t1 = np.where(flat, np.where(inside, np.inf, -np.inf), t1)
    entry = np.maximum(np.minimum(t0, t1).max(axis=1, initial=-np.inf), 0.0)
    exit_ = np.maximum(t0, t1).min(axis=1, initial=np.inf)
    # A small slack: a hit exactly on a flat box's face must not be culled by rounding.
    slack = 1e-7 * (1.0 + np.abs(exit_))
    ok = (entry <= exit_ + slack) & (entry <= max_distance)
    order = np.argsort(entry[ok], kind="stable")
    return rows[ok][order], entry[ok][order]


def _cast_entity(
    state: WorldState, row: int, origin: F64, unit: F64, bound: float, most: int, keep: RowFilter | None
) -> list[RayHit]:
    mesh = state.meshes[row]
    assert mesh is not None
    world = state.world[row]
    linear = world[:3, :3]
    if abs(np.linalg.det(linear)) < 1e-30:
        return []  # a flattened entity has no surface to hit
    inverse = np.linalg.inv(world)
    local_origin = inverse[:3, :3] @ origin + inverse[:3, 3]
    local_direction = inverse[:3, :3] @ unit  # t stays the world distance: the map is affine
    index = index_of(mesh)

    def accept(part: int, triangle: int, t: float) -> bool:
        return keep is None or keep(
            row, origin + unit * _refine(index, part, triangle, local_origin, local_direction, t)
        )

    found = index.cast(local_origin, local_direction, bound, accept, most)
    hits = []
    for t, part, triangle in found:
        corners = index.triangle(part, triangle)
        distance = _refine(index, part, triangle, local_origin, local_direction, t)
        local_normal = np.cross(corners[1] - corners[0], corners[2] - corners[0])
        normal = inverse[:3, :3].T @ local_normal  # normals move by the inverse transpose
        length = float(np.linalg.norm(normal))
        normal = normal / length if length > 0 else -unit
        if normal @ unit > 0:
            normal = -normal
        position = origin + unit * distance
        hits.append(RayHit(int(state.ids[row]), part, _triple(position), _triple(normal), distance))
    return hits


def _refine(index: MeshIndex, part: int, triangle: int, origin: F64, direction: F64, t: float) -> float:
    """The hit's distance again in float64 (Embree's is float32): the ray against the triangle's plane."""
    corners = index.triangle(part, triangle)
    normal = np.cross(corners[1] - corners[0], corners[2] - corners[0])
    facing = float(normal @ direction)
    if abs(facing) < 1e-12 * float(np.linalg.norm(normal)) * float(np.linalg.norm(direction)):
        return t  # grazing: the plane says nothing better
    exact = float(normal @ (corners[0] - origin)) / facing
    return exact if abs(exact - t) <= 1e-3 * (1.0 + abs(t)) else t


def _triple(values: F64) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))


# -- the pick: a ray through a pixel of the view ---------------------------------------------------------


def pick(state: WorldState, camera: Camera, x: float, y: float, aspect: float) -> RayHit | None:
    """The closest hit through the point (x, y) of the view (0..1 from the top left) that no cut plane
    removed: what is on screen there. None for the background or a point outside the view."""
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        return None
    spread = math.tan(math.radians(camera.fov) / 2)
    toward = np.array([(2.0 * x - 1.0) * spread * aspect, (1.0 - 2.0 * y) * spread, -1.0])
    hits = raycast(state, camera.position, camera.rotation @ toward, keep=_not_cut_away(state))
    return hits[0] if hits else None


def _not_cut_away(state: WorldState) -> RowFilter | None:
    """Drops hits on the side a plane cuts away, for the planes that apply to the hit's entity (as drawn:
    the plane's filter mask shares a bit with the entity's, the first MAX_CUT_PLANES planes)."""
    planes = state.cut_planes[:MAX_CUT_PLANES]
    if not planes:
        return None
    equations = np.array([p.plane for p in planes])
    masks = np.array([p.object_filter_mask & ALL_BITS for p in planes], dtype=np.int64)

    def keep(row: int, position: F64) -> bool:
        applies = (masks & int(state.cut_mask[row])) != 0
        cut = equations[:, :3] @ position + equations[:, 3] > 0
        return not bool((applies & cut).any())

    return keep
