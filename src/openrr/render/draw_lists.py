"""Which draws a frame makes, in which order: levels of detail, opaque before blended before see-through.

Levels: each mesh is drawn at the coarsest level whose error is within ``LOD_TOLERANCE_PX`` on screen, or
coarser while the camera moves under a frame budget (``detail``: a triangle fraction from
``frame_budget.DETAIL_STEPS``); each frame also counts what every step would draw, for the budget.

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
from openrr.render.frame_budget import DETAIL_STEPS

LOD_TOLERANCE_PX = 1.0  # a level may move vertices by at most this much on screen
_DETAIL_SLACK = 1.3  # a level of up to 1.3x a step's fraction serves that step (steps halve: no overlap)


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
    step_triangles: tuple[int, ...] = ()  # per detail step: the triangles drawn at it from this view


def choose_lod(
    mesh: Mesh, pixels_per_unit: float, tolerance_px: float = LOD_TOLERANCE_PX, detail: float = 1.0
) -> Mesh:
    """The coarsest of ``mesh`` and its levels whose error stays within ``tolerance_px`` pixels; with
    ``detail`` below 1, at most the finest level with no more than about that fraction of the mesh's
    triangles (``_DETAIL_SLACK``: clustering lands near its target, not under it), else the coarsest."""
    chosen = mesh
    for level in mesh.lods:
        if level.error * pixels_per_unit <= tolerance_px:
            chosen = level.mesh
    most = detail * _DETAIL_SLACK * mesh.triangle_count
    if detail < 1.0 and mesh.lods and chosen.triangle_count > most:
        small = [level.mesh for level in mesh.lods if level.mesh.triangle_count <= most]
        chosen = small[0] if small else mesh.lods[-1].mesh
    return chosen


def step_triangles(
    meshes: list[Mesh], pixels: NDArray[np.float64], steps: tuple[float, ...]
) -> tuple[int, ...]:
    """Per detail step, the triangles the frame's ``meshes`` (seen at ``pixels`` per unit) draw at it."""
    fixed = 0  # meshes without levels draw the same at every step
    levelled: list[tuple[Mesh, float]] = []
    for mesh, px in zip(meshes, pixels, strict=True):
        if mesh.lods:
            levelled.append((mesh, float(px)))
        else:
            fixed += mesh.triangle_count
    return tuple(
        fixed + sum(choose_lod(m, px, detail=step).triangle_count for m, px in levelled) for step in steps
    )


def draw_lists(
    camera: Camera,
    height: int,
    state: WorldState,
    rows: NDArray[np.int64],
    worlds: F64,
    meshes: Mapping[int, tuple[Mesh, list[G]]],
    material_of: MaterialOf,
    detail: float = 1.0,
) -> DrawLists[G]:
    """The draws of the nodes in ``rows`` at their levels of detail (``meshes``: the uploaded meshes by
    ``id(mesh)``; ``height``: the frame's, in pixels; ``detail``: see ``choose_lod``)."""
    lists: DrawLists[G] = DrawLists()
    blended: list[tuple[float, int, G, Material]] = []
    see_through: list[tuple[float, int, G, Material]] = []
    eye = camera.position
    pixels = pixels_per_unit(camera, height, state, rows, worlds)
    bases: list[Mesh] = []
    for i, row in enumerate(rows):
        mesh = state.meshes[row]
        assert mesh is not None  # rows with meshes only
        bases.append(mesh)
        if mesh.lods:
            mesh = choose_lod(mesh, pixels[i], detail=detail)
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
    lists.step_triangles = step_triangles(bases, pixels, DETAIL_STEPS)
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
