"""The spatial-query requests of protocol v2 (``raycast``, ``query.box``, ``query.sphere``,
``query.orientedBox``) answered against a scene, as the data channel sends them.

Apart from ``spatial.py`` and ``spatial_volumes.py``, which hold the index and the geometry: this is the
protocol's side (the requests' fields, the answers' shapes, the error codes). Call on the thread that owns
the scene (the GL thread). The BVHs are per mesh and shared by every scene; per scene,
``spatial.pending_builds`` remembers which meshes were handed to the builder, so a reset's new scene starts
clean and reuses the BVHs of the meshes it shares with the old one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from openrr.model.scene import Scene
from openrr.protocol.scene_api import QueryBox, QueryOrientedBox, QuerySphere, RayCast
from openrr.render import spatial
from openrr.render.camera import quat_to_matrix
from openrr.render.session_models import ModelError
from openrr.render.spatial import IndexNotReady, RayHit
from openrr.render.spatial_volumes import Box, Sphere, Volume, query

SpatialRequest = RayCast | QueryBox | QuerySphere | QueryOrientedBox


def answer_query(scene: Scene, request: SpatialRequest) -> tuple[str, dict[str, Any]]:
    """The answer's type and fields: ("raycast.result", {"hits": [...]}) or ("query.result",
    {"entities": [...]}). Raises ModelError ``BadMessage`` for a degenerate request, ``Busy`` when the
    BVHs it needs are still being built after ``spatial.BUILD_WAIT_S``."""
    spatial.pending_builds(scene)
    state = scene.world()
    try:
        if isinstance(request, RayCast):
            origin, direction = _vector(request.origin), _vector(request.direction)
            if not math.isfinite(float(np.linalg.norm(direction))) or not np.linalg.norm(direction) > 0:
                raise ModelError("BadMessage", "a ray's direction must be a finite, non-zero vector")
            hits = spatial.raycast(
                state,
                origin,
                direction,
                max_distance=request.maxDistance,
                mode=request.mode,
                max_hits=request.maxHits,
            )
            return "raycast.result", {"hits": [hit_json(h) for h in hits]}
        return "query.result", {"entities": query(state, _volume(request), request.maxResults)}
    except IndexNotReady as exc:
        raise ModelError("Busy", f"{exc}; ask again shortly") from None


def _volume(request: QueryBox | QuerySphere | QueryOrientedBox) -> Volume:
    if isinstance(request, QueryBox):
        low, high = _vector(request.min), _vector(request.max)
        return Box((low + high) / 2, (high - low) / 2, np.eye(3))
    if isinstance(request, QuerySphere):
        return Sphere(_vector(request.center), float(request.radius))
    rotation = np.array(request.rotation, dtype=np.float64)
    if not np.linalg.norm(rotation) > 1e-12:
        raise ModelError("BadMessage", "an oriented box's rotation must not be the zero quaternion")
    return Box(_vector(request.center), _vector(request.halfExtents), quat_to_matrix(rotation))


def _vector(values: tuple[float, float, float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array(values, dtype=np.float64)


def hit_json(hit: RayHit) -> dict[str, Any]:
    return {
        "entity": hit.entity,
        "part": hit.part,
        "position": [round(v, 6) for v in hit.position],
        "normal": [round(v, 6) + 0.0 for v in hit.normal],
        "distance": round(hit.distance, 6),
    }
