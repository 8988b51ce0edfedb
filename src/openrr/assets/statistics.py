"""ARR's statistics of a conversion: ``inputStatistics``, the parts counts of ``outputStatistics`` and
the bounds its ``boundingBox`` and the recentering use. Pure functions of a scene and its point clouds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.model.points import PointCloud
from openrr.model.scene import Scene


def bounds(scene: Scene) -> NDArray[np.float64]:
    """The world box of every mesh and point cloud (``Node.points``), hidden ones too; zeros for none."""
    whole = scene.bounds(visible_only=False)
    return np.zeros((2, 3)) if whole is None else whole


def input_statistics(scene: Scene, points: dict[int, PointCloud]) -> dict[str, Any]:
    """ARR's ``inputStatistics``: mesh parts are primitives; depth counts a root as 1."""
    parts = {id(p): p for m in scene.meshes() for p in m.primitives}
    faces = [p.triangle_count for p in parts.values()]
    depth: dict[int, int] = {}
    for node in scene.nodes():
        depth[node.id] = 1 + (depth[node.parent] if node.parent is not None else 0)
    point_count = sum(c.count for c in points.values())
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


def texture_count(scene: Scene) -> int:
    """The distinct images the scene's materials use (a texture shared by materials counts once)."""
    seen: set[int] = set()
    for mesh in scene.meshes():
        for part in mesh.primitives:
            m = part.material
            for texture in (
                m.base_color_texture,
                m.metallic_roughness_texture,
                m.normal_texture,
                m.occlusion_texture,
                m.emissive_texture,
            ):
                if texture is not None:
                    seen.add(id(texture))
    return len(seen)


def parts(scene: Scene) -> dict[str, int]:
    """ARR's ``numMeshPartsCreated`` (distinct parts in the asset, levels of detail not counted, a point
    cloud one part) and ``numMeshPartsInstanced`` (parts used by more than one node); ``numPoints``
    (ARR counts a point cloud's points) where the scene has point clouds."""
    uses: dict[int, int] = {}
    for node in scene.nodes():
        if node.mesh is not None:
            for p in node.mesh.primitives:
                uses[id(p)] = uses.get(id(p), 0) + 1
    clouds = scene.point_clouds()
    counts = {
        "numMeshPartsCreated": len(uses) + len(clouds),
        "numMeshPartsInstanced": sum(1 for n in uses.values() if n > 1),
    }
    if clouds:
        counts["numPoints"] = scene.point_count
    return counts
