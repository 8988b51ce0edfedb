"""ARR's statistics of a conversion: ``inputStatistics``, the parts counts of ``outputStatistics`` and
the bounds its ``boundingBox`` and the recentering use. Pure functions of a scene and its point clouds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.model.arrasset.layout import PointCloud
from openrr.model.scene import Scene


def bounds(scene: Scene, points: dict[int, PointCloud]) -> NDArray[np.float64]:
    boxes = []
    whole = scene.bounds(visible_only=False)
    if whole is not None:
        boxes.append(whole)
    for node_id, cloud in points.items():
        world = scene.world_transform(node_id)
        moved = cloud.positions @ world[:3, :3].T + world[:3, 3]
        boxes.append(np.stack([moved.min(axis=0), moved.max(axis=0)]))
    if not boxes:
        return np.zeros((2, 3))
    stacked = np.stack(boxes)
    out: NDArray[np.float64] = np.stack([stacked[:, 0].min(axis=0), stacked[:, 1].max(axis=0)])
    return out


def input_statistics(scene: Scene, points: dict[int, PointCloud]) -> dict[str, Any]:
    """ARR's ``inputStatistics``: mesh parts are primitives; depth counts a root as 1."""
    parts = {id(p): p for m in scene.meshes() for p in m.primitives}
    faces = [p.triangle_count for p in parts.values()]
    depth: dict[int, int] = {}
    for node in scene.nodes():
        depth[node.id] = 1 + (depth[node.parent] if node.parent is not None else 0)
    point_count = sum(len(c.positions) for c in points.values())
    stats = {
        "numMeshes": len(parts) + len(points),
        "numFaces": sum(faces),
        "numVertices": sum(len(p.positions) for p in parts.values()) + point_count,
        "numMaterial": len({id(p.material) for p in parts.values()}),
        "numFacesSmallestMesh": min(faces, default=0),
        "numFacesBiggestMesh": max(faces, default=0),
        "numNodes": len(scene),
        "numMeshUsagesInScene": sum(len(n.mesh.primitives) for n in scene.nodes() if n.mesh is not None)
        + len(points),
        "maxNodeDepth": max(depth.values(), default=0),
    }
    if points:
        stats["numPoints"] = point_count
    return stats


def parts(scene: Scene) -> dict[str, int]:
    """ARR's ``numMeshPartsCreated`` (distinct parts in the asset, levels of detail not counted) and
    ``numMeshPartsInstanced`` (parts used by more than one node)."""
    uses: dict[int, int] = {}
    for node in scene.nodes():
        if node.mesh is not None:
            for p in node.mesh.primitives:
                uses[id(p)] = uses.get(id(p), 0) + 1
    return {"numMeshPartsCreated": len(uses), "numMeshPartsInstanced": sum(1 for n in uses.values() if n > 1)}
