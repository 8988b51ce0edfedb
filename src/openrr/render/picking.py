"""Picking by an ID-buffer render of the one pixel under the cursor.

Why an ID buffer and not a CPU ray cast: the ID pass draws exactly what the colour pass draws (same
transforms, culling, visibility, double-sidedness), so the answer always agrees with the picture; a
pick matrix narrows the view frustum to that pixel, so frustum culling drops nearly every node and the
rasteriser touches a single pixel; and the triangles already sit in GPU buffers, whereas a numpy ray
cast would have to walk every triangle of every candidate node in Python-driven batches (seconds for the
multi-million-triangle scenes a render server is for). The depth of the hit comes back with the id and
gives the world-space hit point for free.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import moderngl
import numpy as np
from numpy.typing import NDArray

from openrr.render import shaders

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class PickHit:
    """The node whose surface is visible at the picked pixel, and the world-space point hit."""

    node_id: int
    position: tuple[float, float, float]


@dataclass(frozen=True)
class PickItem:
    """One node to draw into the ID buffer: its world matrix and its primitives' (id VAO, double-sided)."""

    node_id: int
    world: F64
    primitives: Sequence[tuple[Any, bool]]


def pick_matrix(x: float, y: float, width: int, height: int) -> F64:
    """Maps the pixel around (x, y) (pixels from the top left, continuous) onto a whole 1x1 viewport.

    It is applied after the renderer's projection, whose clip space already has y = -1 at the top row.
    """
    centre_x = -1.0 + 2.0 * x / width
    centre_y = -1.0 + 2.0 * y / height
    matrix = np.eye(4)
    matrix[0, 0], matrix[0, 3] = width, -centre_x * width
    matrix[1, 1], matrix[1, 3] = height, -centre_y * height
    return matrix


class Picker:
    """Owns the 1x1 ID framebuffer and the ID program of one GL context (use on the context's thread)."""

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        self.program: Any = ctx.program(vertex_shader=shaders.ID_VERTEX, fragment_shader=shaders.ID_FRAGMENT)
        self._ids = ctx.texture((1, 1), 4)
        self._depth = ctx.depth_texture((1, 1))
        self.framebuffer = ctx.framebuffer(color_attachments=[self._ids], depth_attachment=self._depth)

    def vertex_array(self, positions: Any, indices: Any) -> Any:
        """An ID-pass VAO over a primitive's position and index buffers."""
        return self.ctx.vertex_array(
            self.program, [(positions, "3f", "in_position")], index_buffer=indices, index_element_size=4
        )

    def pick(self, view_projection: F64, items: Iterable[PickItem]) -> PickHit | None:
        """Render ``items`` through ``view_projection`` (already multiplied by ``pick_matrix``)."""
        ctx = self.ctx
        self.framebuffer.use()
        self.framebuffer.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.BLEND)
        self.program["u_view_proj"].write(view_projection.T.astype(np.float32).tobytes())
        for item in items:
            packed = (item.node_id + 1).to_bytes(4, "little")
            self.program["u_id"].value = tuple(b / 255.0 for b in packed)
            self.program["u_model"].write(item.world.T.astype(np.float32).tobytes())
            mirrored = np.linalg.det(item.world[:3, :3]) < 0
            ctx.front_face = "ccw" if mirrored else "cw"  # the y-flipped projection turns winding around
            for vao, double_sided in item.primitives:
                if double_sided:
                    ctx.disable(moderngl.CULL_FACE)
                else:
                    ctx.enable(moderngl.CULL_FACE)
                vao.render(moderngl.TRIANGLES)
        code = int.from_bytes(self.framebuffer.read(components=4), "little")
        if code == 0:
            return None
        depth = float(np.frombuffer(self.framebuffer.read(attachment=-1, dtype="f4"), dtype=np.float32)[0])
        # The hit lies on the pick frustum's axis: clip (0, 0, z) mapped back to world space.
        point = np.linalg.inv(view_projection) @ np.array([0.0, 0.0, depth * 2.0 - 1.0, 1.0])
        x, y, z = (float(c) for c in point[:3] / point[3])
        return PickHit(code - 1, (x, y, z))

    def release(self) -> None:
        for resource in (self.framebuffer, self._ids, self._depth, self.program):
            resource.release()
