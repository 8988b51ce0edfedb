"""Which draws a frame makes, in which order: levels of detail, opaque before blended before see-through.

Apart from ``renderer.py``, which owns the GL objects and issues the draws: this decides, from the world
state and the camera, what goes into each of the frame's passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from openrr.model.mesh import F64, Material, Mesh, Primitive
from openrr.model.world import WorldState
from openrr.render.camera import Camera

LOD_TOLERANCE_PX = 1.0  # a level may move vertices by at most this much on screen


class GpuDraw(Protocol):
    """What ordering needs of a primitive on the GPU."""

    @property
    def primitive(self) -> Primitive: ...
    @property
    def program(self) -> Any: ...


G = TypeVar("G", bound=GpuDraw)
# What a part of a row's mesh is drawn with: (row, the mesh drawn (a level of detail or the base), the
# index of the primitive in it) -> material (``Scene.material_of`` through the level's part map).
MaterialOf = Callable[[int, Mesh, int], Material]


@dataclass
class DrawLists(Generic[G]):
    """Draws as (index into the frame's rows, primitive, material). ``opaque``: grouped by program and
    material; ``blended`` and ``see_through``: far to near."""

    opaque: list[tuple[int, G, Material]] = field(default_factory=list)
    blended: list[tuple[int, G, Material]] = field(default_factory=list)
    see_through: list[tuple[int, G, Material]] = field(default_factory=list)


def choose_lod(mesh: Mesh, pixels_per_unit: float, tolerance_px: float = LOD_TOLERANCE_PX) -> Mesh:
    """The coarsest of ``mesh`` and its levels whose error stays within ``tolerance_px`` pixels."""
    chosen = mesh
    for level in mesh.lods:
        if level.error * pixels_per_unit <= tolerance_px:
            chosen = level.mesh
    return chosen


def draw_lists(
    camera: Camera,
    height: int,
    state: WorldState,
    rows: NDArray[np.int64],
    worlds: F64,
    meshes: Mapping[int, tuple[Mesh, list[G]]],
    material_of: MaterialOf,
) -> DrawLists[G]:
    """The draws of the nodes in ``rows`` at their levels of detail (``meshes``: the uploaded meshes by
    ``id(mesh)``; ``height``: the frame's, in pixels)."""
    lists: DrawLists[G] = DrawLists()
    blended: list[tuple[float, int, G, Material]] = []
    see_through: list[tuple[float, int, G, Material]] = []
    eye = camera.position
    pixels = pixels_per_unit(camera, height, state, rows, worlds)
    for i, row in enumerate(rows):
        mesh = state.meshes[row]
        assert mesh is not None  # rows with meshes only
        if mesh.lods:
            mesh = choose_lod(mesh, pixels[i])
        gpus = meshes[id(mesh)][1]
        distance = -float(np.sum((state.bounds[row].mean(axis=0) - eye) ** 2))
        for index, gpu in enumerate(gpus):
            material = material_of(int(row), mesh, index)
            if state.see_through[row]:
                see_through.append((distance, i, gpu, material))
            elif material.alpha_mode == "BLEND":
                blended.append((distance, i, gpu, material))
            else:
                lists.opaque.append((i, gpu, material))
    lists.opaque.sort(key=lambda item: (id(item[1].program), id(item[2])))
    lists.blended = [(i, g, m) for _, i, g, m in sorted(blended, key=lambda item: item[0])]  # far to near
    lists.see_through = [(i, g, m) for _, i, g, m in sorted(see_through, key=lambda item: item[0])]
    return lists


def pixels_per_unit(
    camera: Camera, height: int, state: WorldState, rows: NDArray[np.int64], worlds: F64
) -> NDArray[np.float64]:
    """Per row, how many pixels one unit of the node's mesh covers at its nearest point (conservative
    for level-of-detail choice: nearer means finer)."""
    bounds = state.bounds[rows]
    nearest = np.clip(camera.position, bounds[:, 0], bounds[:, 1])
    distance = np.maximum(np.linalg.norm(nearest - camera.position, axis=1), 1e-9)
    scale = np.linalg.norm(worlds[:, :3, :3], axis=1).max(axis=1)  # largest axis scale of the node
    focal = height / (2 * math.tan(math.radians(camera.fov) / 2))
    result: NDArray[np.float64] = focal * scale / distance
    return result
