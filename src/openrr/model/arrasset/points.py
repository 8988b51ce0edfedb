"""Point clouds in a renderer that draws triangles only: each point becomes a small octahedron.

Apart from the reader because it is a way of showing points, not of reading them: the points themselves
stay in ``Asset.points``, and a future point renderer would skip this.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from openrr.model.arrasset.layout import PointCloud
from openrr.model.mesh import Material, Primitive

log = logging.getLogger("openrr.assets")

MAX_OCTAHEDRA = 2_500_000  # points shown as octahedra at most: 20 million triangles, ARR's Standard limit


def shown_as_octahedra(cloud: PointCloud) -> Primitive:
    """``cloud`` as octahedra; past ``MAX_OCTAHEDRA`` points, every n-th point only (and a warning)."""
    positions, colors = cloud.positions, cloud.colors
    if len(positions) > MAX_OCTAHEDRA:
        step = -(-len(positions) // MAX_OCTAHEDRA)
        log.warning(
            "showing every %dth of %d points: octahedra past %d points",
            step,
            len(positions),
            MAX_OCTAHEDRA,
        )
        positions = positions[::step]
        colors = colors[::step] if colors is not None else None
    return octahedra(positions, colors, cloud.point_size)


_OCTAHEDRON = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float32
)
_OCTAHEDRON_FACES = np.array(
    [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]], dtype=np.uint32
)


def octahedra(positions: NDArray[np.float32], colors: NDArray[np.float32] | None, size: float) -> Primitive:
    """Each point as an octahedron of edge-to-edge width ``size`` (6 vertices, 8 outward triangles)."""
    count = len(positions)
    vertices = (positions[:, None, :] + _OCTAHEDRON[None] * np.float32(size / 2)).reshape(-1, 3)
    normals = np.broadcast_to(_OCTAHEDRON[None], (count, 6, 3)).reshape(-1, 3)
    faces = (_OCTAHEDRON_FACES[None] + (np.arange(count, dtype=np.uint32) * 6)[:, None, None]).reshape(-1, 3)
    rgba = None if colors is None else np.repeat(colors, 6, axis=0)
    material = Material(name="points", metallic_factor=0.0, roughness_factor=1.0)
    return Primitive(vertices, faces, material, normals=normals, uvs=None, colors=rgba)
