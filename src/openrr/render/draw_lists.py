"""Which draws a frame makes, in which order: levels of detail, each part with the material the scene
gives it, opaque before blended before see-through.

Apart from ``renderer.py``, which owns the GL objects and issues the draws: this decides, from the world
state and the camera, what goes into each of the frame's passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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
Draw = tuple[int, G, Material]  # (index into the frame's rows, primitive on the GPU, its material)


@dataclass
class DrawLists(Generic[G]):
    """Draws as (index into the frame's rows, primitive, material). ``opaque``: grouped by program and
    material; ``blended`` and ``see_through``: far to near."""

    opaque: list[Draw[G]] = field(default_factory=list)
    blended: list[Draw[G]] = field(default_factory=list)
    see_through: list[Draw[G]] = field(default_factory=list)


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
    parts: Callable[[int, Mesh, Mesh], Sequence[tuple[G, Material]]],
) -> DrawLists[G]:
    """The draws of the nodes in ``rows`` at their levels of detail (``parts(node_id, base, level)``:
    the uploaded primitives of ``level``, one of ``base``'s meshes, with the materials the node's parts have;
    ``height``: the frame's, in pixels)."""
    lists: DrawLists[G] = DrawLists()
    blended: list[tuple[float, Draw[G]]] = []
    see_through: list[tuple[float, Draw[G]]] = []
    eye = camera.position
    pixels = pixels_per_unit(camera, height, state, rows, worlds)
    for i, row in enumerate(rows):
        base = state.meshes[row]
        assert base is not None  # rows with meshes only
        draws = [
            (i, gpu, material)
            for gpu, material in parts(int(state.ids[row]), base, choose_lod(base, pixels[i]))
        ]
        distance = -float(np.sum((state.bounds[row].mean(axis=0) - eye) ** 2))
        for draw in draws:
            if state.see_through[row]:
                see_through.append((distance, draw))
            elif draw[2].alpha_mode == "BLEND":
                blended.append((distance, draw))
            else:
                lists.opaque.append(draw)
    lists.opaque.sort(key=lambda draw: (id(draw[1].program), id(draw[2])))
    lists.blended = [draw for _, draw in sorted(blended, key=lambda item: item[0])]  # far to near
    lists.see_through = [draw for _, draw in sorted(see_through, key=lambda item: item[0])]
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
