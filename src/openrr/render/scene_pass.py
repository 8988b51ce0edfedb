"""One pass over the scene's draws: the uniforms and GL state already set, so that each draw writes only
what changed since the draw before it.

Apart from ``renderer.py``, which decides what is drawn and in which order (culling, levels of detail,
opaque before blended): this is the per-draw bookkeeping that keeps redundant uniform writes and GL state
changes out of the draw loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import moderngl
import numpy as np
from numpy.typing import NDArray

from openrr.model.components import ShellSettings
from openrr.model.mesh import F32, F64, Material
from openrr.render import shaders, state_shading

GL_CLIP_DISTANCE0 = 0x3000  # moderngl names no clip distances: enabled with enable_direct


@dataclass(frozen=True)
class NodeMatrices:
    """Per drawn node (by its index in the pass): what its draws' uniforms and face winding need."""

    models: NDArray[np.float32]  # world matrices, column-major for GL
    normals: NDArray[np.float32]  # (M^-1)^T of the 3x3 part, column-major
    mirrored: NDArray[np.bool_]  # a negative determinant: the faces' winding flips
    colors: F32  # the colour override (NaN: none)
    tints: F32  # the tint, RGBA with alpha the strength (0 where none)
    cut_bits: NDArray[np.int32]  # bit i: cut plane i applies (0: nothing cuts the node)
    selected: NDArray[np.bool_]  # drawn into the outline's mask

    @classmethod
    def of(
        cls,
        worlds: F64,
        colors: F32,
        tints: F32 | None = None,
        cut_bits: NDArray[np.int32] | None = None,
        selected: NDArray[np.bool_] | None = None,
    ) -> NodeMatrices:
        count = len(worlds)
        return cls(
            models=np.ascontiguousarray(worlds.transpose(0, 2, 1), dtype=np.float32),
            normals=np.ascontiguousarray(np.linalg.inv(worlds[:, :3, :3]), dtype=np.float32),
            mirrored=np.linalg.det(worlds[:, :3, :3]) < 0,
            colors=colors,
            tints=np.zeros((count, 4), np.float32) if tints is None else np.nan_to_num(tints, nan=0.0),
            cut_bits=np.zeros(count, np.int32) if cut_bits is None else cut_bits,
            selected=np.zeros(count, bool) if selected is None else selected,
        )


class ScenePass:
    """The state one scene pass has set so far on ``ctx`` and on each program's uniforms."""

    def __init__(self, ctx: moderngl.Context, frame_uniforms: dict[str, Any], nodes: NodeMatrices) -> None:
        self.ctx = ctx
        self.nodes = nodes
        self._frame_uniforms = frame_uniforms
        self._prepared: set[int] = set()  # the uniform sets that have this frame's uniforms
        # Per program, the material state last set.
        self._materials: dict[int, tuple[Material, tuple[float, ...] | None]] = {}
        self._culling: bool | None = None
        self._front: str | None = None
        self._culled: str | None = None
        self._clipping = False  # GL's default, and how every pass leaves it (see set_clipping)
        # The states' per-draw uniforms (tint, cut planes, see-through, mask) last written, per program.
        self._states: dict[int, dict[str, Any]] = {}
        self._mode = state_shading.shell_uniforms(None)
        self.shell = False  # the draws from now on are see-through (the shell variant)

    def set_see_through(self, shell: ShellSettings | None) -> None:
        """The draws from now on: see-through with ``shell``'s look, or (None) ordinary."""
        self._mode = state_shading.shell_uniforms(shell)
        self.shell = shell is not None

    def set_uniforms(
        self, uniforms: dict[str, Any], material: Material, textures: dict[int, Any], node: int
    ) -> None:
        """The frame's, the node's and the material's uniforms of one draw of ``node``."""
        if id(uniforms) not in self._prepared:
            for name, value in self._frame_uniforms.items():
                if name in uniforms:
                    uniform = uniforms[name]
                    # Arrays may have lost unused trailing elements to the compiler.
                    uniform.write(value[: 4 * uniform.dimension * uniform.array_length])
            self._prepared.add(id(uniforms))
        uniforms["u_model"].write(self.nodes.models[node].tobytes())
        if "u_normal_matrix" in uniforms:
            uniforms["u_normal_matrix"].write(self.nodes.normals[node].tobytes())
        override = self.nodes.colors[node]
        key = (material, tuple(override.tolist()) if np.isfinite(override[0]) else None)
        if self._materials.get(id(uniforms)) != key:
            for name, value in shaders.material_uniforms(material, textures, override).items():
                if name in uniforms:
                    uniforms[name].value = value
            self._materials[id(uniforms)] = key
        self._set_states(uniforms, node)

    def _set_states(self, uniforms: dict[str, Any], node: int) -> None:
        written = self._states.setdefault(id(uniforms), {})
        wanted = self._mode | {
            "u_tint": tuple(self.nodes.tints[node].tolist()),
            "u_cut_apply": int(self.nodes.cut_bits[node]),
            "u_selected": 1.0 if self.nodes.selected[node] else 0.0,
        }
        for name, value in wanted.items():
            if written.get(name) != value and name in uniforms:
                uniforms[name].value = value
                written[name] = value

    def set_clipping(self, node: int | None) -> None:
        """The cut planes' clip distances on for a draw of ``node`` if a plane cuts through it, off
        otherwise; None: off, at the end of the pass (programs without them must not run with them on)."""
        on = node is not None and bool(self.nodes.cut_bits[node])
        if self._clipping != on:
            switch = self.ctx.enable_direct if on else self.ctx.disable_direct
            for i in range(state_shading.MAX_CUT_PLANES):
                switch(GL_CLIP_DISTANCE0 + i)
            self._clipping = on

    def set_faces(self, node: int, material: Material, *, back: bool = False) -> None:
        """Winding and culling for one draw of ``node``: its front faces (back faces too where the
        material is double-sided), or with ``back`` only its back faces."""
        if self._front != (want := "ccw" if self.nodes.mirrored[node] else "cw"):
            self.ctx.front_face = self._front = want
        if self._culling != (cull := back or not material.double_sided):
            (self.ctx.enable if cull else self.ctx.disable)(moderngl.CULL_FACE)
            self._culling = cull
        if cull and self._culled != (culled := "front" if back else "back"):
            self.ctx.cull_face = self._culled = culled
