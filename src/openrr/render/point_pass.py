"""Point clouds drawn as GL points (``PointPass``): their buffers on the GPU, the point programs, and the
per-frame choice of how many points of each cloud to draw.

Apart from ``renderer.py`` (meshes): points have no materials, parts or triangles, and their level of
detail is a prefix of their buffers (``openrr.model.points``), so a draw is one ``glDrawArrays`` of the
first ``count`` points. Per frame, each visible cloud in the frustum gets the smallest prefix dense
enough for its size on screen (points about a pixel apart at its nearest), and all of them together at
most the scene's point budget (``PointCloudSettings.budget``), shared in proportion to what each wants.
While the camera moves, the frame budget's detail step scales that budget as it does the triangles
(``point_budget``); a still frame gets all of it.

A point is a square of ``size`` pixels: its world-space size (the spacing of the prefix drawn, so that a
sparser prefix still covers the surface, times ``PointCloudSettings.size_scale``) projected at its depth,
between 1 and ``max_pixels``. Squares rather than discs: a disc needs a ``discard``, which turns off the
early depth test on llvmpipe. Colours are the points' own (linear RGBA8), or a light grey, unlit as in
ARR; the entity's colour override, tint, selection (the outline's mask) and cut planes (clip distances,
as meshes) apply. Not applied, to keep the pass one cheap draw per cloud: the see-through look (points
are drawn opaque) and the cut planes' fade colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import moderngl
import numpy as np

from openrr.model.mesh import F64
from openrr.model.points import PointCloud, points_for
from openrr.model.scene import Scene
from openrr.model.world import WorldState
from openrr.render.camera import Camera, boxes_in_frustum, frustum_planes
from openrr.render.frame_budget import DETAIL_STEPS
from openrr.render.state_shading import MAX_CUT_PLANES, STATES_VERTEX, cut_bits, cut_uniforms

GL_CLIP_DISTANCE0 = 0x3000
DEFAULT_COLOR = (0.8, 0.8, 0.8, 1.0)  # linear: points without colours

_VERTEX = """
uniform mat4 u_view_proj;
uniform mat4 u_model;
uniform float u_size;      // world size of a point (node scale included)
uniform float u_focal;     // pixels per unit at distance 1
uniform float u_max_px;
in vec3 in_position;
#ifdef HAS_COLORS
in vec4 in_color;
#endif
out vec4 v_color;
uniform vec4 u_default_color;
// STATES BLOCK
void main() {
    vec4 world = u_model * vec4(in_position, 1.0);
    gl_Position = u_view_proj * world;
    gl_PointSize = clamp(u_size * u_focal / max(gl_Position.w, 1e-6), 1.0, u_max_px);
    states_clip(world.xyz);
#ifdef HAS_COLORS
    v_color = in_color;
#else
    v_color = u_default_color;
#endif
}
"""

_FRAGMENT = """#version 330 core
uniform vec4 u_override;   // a < 0: none
uniform vec4 u_tint;       // rgb, a = strength
uniform float u_selected;
in vec4 v_color;
layout(location = 0) out vec4 f_color;
layout(location = 1) out vec4 f_selected;  // the outline's mask (only while one is attached)
void main() {
    vec4 c = u_override.a >= 0.0 ? u_override : v_color;
    c.rgb = mix(c.rgb, u_tint.rgb, u_tint.a);
    f_color = vec4(pow(clamp(c.rgb, 0.0, 1.0), vec3(1.0 / 2.2)), 1.0);
    f_selected = vec4(u_selected, 0.0, 0.0, u_selected);
}
"""


def point_program_source(colors: bool, cuts: bool) -> tuple[str, str]:
    """(vertex, fragment) sources of the point program with per-point ``colors`` and ``cuts``."""
    defines = f"#define MAX_CUT_PLANES {MAX_CUT_PLANES}\n" + ("#define HAS_CUTS\n" if cuts else "")
    header = "#version 330 core\n" + ("#define HAS_COLORS\n" if colors else "")
    return header + _VERTEX.replace("// STATES BLOCK\n", defines + STATES_VERTEX), _FRAGMENT


@dataclass(eq=False)
class _GpuCloud:
    cloud: PointCloud
    buffers: list[Any]
    content: list[tuple[Any, str, str]]
    vaos: dict[bool, Any] = field(default_factory=dict)  # by cuts: the vertex array of each program


def point_budget(budget: int, detail: float) -> int:
    """The points a frame may draw at ``detail`` (a fraction of ``frame_budget.DETAIL_STEPS``): the scene's
    budget scaled as the triangles are, so that a moving camera thins a big cloud as it coarsens the
    meshes; the whole budget at full detail (a still camera)."""
    return max(1, math.floor(budget * detail))


@dataclass(frozen=True)
class PointPlan:
    """A frame's point draws at its detail, and the points each detail step would draw from its view (for
    the frame budget's cost model, as ``DrawLists.step_triangles``)."""

    draws: list[PointDraw]
    step_points: tuple[int, ...]


@dataclass(frozen=True)
class PointDraw:
    """One cloud's draw in a frame: its row in the world state, the points drawn and their world size."""

    row: int
    count: int
    size: float
    cut_bits: int


class PointPass:
    """The point clouds of the renderer's scene on the GPU, and their draws."""

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        self._clouds: dict[int, _GpuCloud] = {}
        self._programs: dict[tuple[bool, bool], tuple[Any, dict[str, Any]]] = {}

    def sync(self, scene: Scene | None) -> None:
        """Upload the clouds of ``scene`` not on the GPU yet, release those it no longer has."""
        wanted = {id(n.points): n.points for n in scene.point_clouds()} if scene is not None else {}
        for gone in set(self._clouds) - set(wanted):
            self._release(self._clouds.pop(gone))
        for key, cloud in wanted.items():
            if key not in self._clouds and cloud is not None:
                positions = self.ctx.buffer(cloud.positions)
                content = [(positions, "3f", "in_position")]
                if cloud.colors is not None:
                    content.append((self.ctx.buffer(cloud.colors), "4f1", "in_color"))
                self._clouds[key] = _GpuCloud(cloud, [b for b, _, _ in content], content)

    def plan(
        self,
        scene: Scene,
        state: WorldState,
        camera: Camera,
        view_projection: F64,
        height: int,
        detail: float = 1.0,
    ) -> PointPlan:
        """This frame's draws: visible clouds in the frustum and not cut away whole, each with its
        prefix (within the budget at ``detail``) and its point size."""
        # Each node with its cloud, paired here: the arrays below are indexed alike.
        pairs = [
            (n, n.points)
            for n in scene.point_clouds()
            if n.points is not None and state.visible[state.row[n.id]]
        ]
        if not pairs:
            return PointPlan([], ())
        rows = np.array([state.row[n.id] for n, _ in pairs], dtype=np.int64)
        worlds = state.world[rows]
        boxes = np.stack([_box(scene, n.id) for n, _ in pairs])
        keep = boxes_in_frustum(frustum_planes(view_projection), boxes)
        bits, gone = cut_bits(state.cut_planes, state.cut_mask[rows], boxes)
        keep &= ~gone
        scales = np.linalg.norm(worlds[:, :3, :3], axis=1).max(axis=1)
        nearest = np.clip(camera.position, boxes[:, 0], boxes[:, 1])
        distance = np.maximum(np.linalg.norm(nearest - camera.position, axis=1), 1e-9)
        pixels = _focal(camera, height) * scales / distance
        settings = scene.point_cloud
        picked = [i for i in range(len(pairs)) if keep[i]]

        def counts(budget: int) -> list[int]:
            """The points of each picked cloud within ``budget``, shared in proportion to what each wants."""
            wanted = [points_for(pairs[i][1], float(pixels[i]), budget) for i in picked]
            share = min(1.0, budget / max(sum(wanted), 1))
            return [max(1, math.floor(want * share)) for want in wanted]

        draws = []
        for i, count in zip(picked, counts(point_budget(settings.budget, detail)), strict=True):
            size = settings.size_scale * pairs[i][1].spacing_at(count) * float(scales[i])
            draws.append(PointDraw(int(rows[i]), count, size, int(bits[i])))
        step_points = tuple(sum(counts(point_budget(settings.budget, step))) for step in DETAIL_STEPS)
        return PointPlan(draws, step_points)

    def render(
        self,
        scene: Scene,
        state: WorldState,
        camera: Camera,
        view_projection: F64,
        height: int,
        detail: float = 1.0,
    ) -> tuple[int, tuple[int, ...]]:
        """Draw this frame's clouds (``plan``), depth-tested, into the bound target; the points drawn and
        the points each detail step would draw."""
        plan = self.plan(scene, state, camera, view_projection, height, detail)
        draws = plan.draws
        if not draws:
            return 0, plan.step_points
        ctx = self.ctx
        ctx.enable(moderngl.DEPTH_TEST | moderngl.PROGRAM_POINT_SIZE)
        ctx.disable(moderngl.BLEND | moderngl.CULL_FACE)
        frame: dict[str, Any] = {
            "u_view_proj": view_projection.T.astype(np.float32).tobytes(),
            "u_focal": _focal(camera, height),
            "u_max_px": scene.point_cloud.max_pixels,
            "u_default_color": DEFAULT_COLOR,
        }
        cut_frame = cut_uniforms(state.cut_planes) if any(d.cut_bits for d in draws) else {}
        drawn = 0
        for d in draws:
            gpu = self._clouds[id(scene.node(int(state.ids[d.row])).points)]
            cuts = bool(d.cut_bits)
            program, uniforms = self._program(gpu.cloud.colors is not None, cuts)
            vao = gpu.vaos.get(cuts)
            if vao is None:
                vao = gpu.vaos[cuts] = ctx.vertex_array(program, gpu.content, skip_errors=True)
            self._set_uniforms(uniforms, frame | cut_frame, state, d)
            self._clipping(cuts)
            vao.render(moderngl.POINTS, vertices=d.count)
            drawn += d.count
        self._clipping(False)
        ctx.disable(moderngl.PROGRAM_POINT_SIZE)
        return drawn, plan.step_points

    def _set_uniforms(
        self, uniforms: dict[str, Any], frame: dict[str, Any], state: WorldState, d: PointDraw
    ) -> None:
        values = dict(frame)
        values["u_model"] = state.world[d.row].T.astype(np.float32).tobytes()
        values["u_size"] = d.size
        color = state.color[d.row]
        values["u_override"] = tuple(color.tolist()) if np.isfinite(color[0]) else (0.0, 0.0, 0.0, -1.0)
        tint = state.tint[d.row]
        values["u_tint"] = tuple(tint.tolist()) if np.isfinite(tint[0]) else (0.0, 0.0, 0.0, 0.0)
        values["u_selected"] = 1.0 if state.selected[d.row] else 0.0
        values["u_cut_apply"] = d.cut_bits
        for name, value in values.items():
            uniform = uniforms.get(name)
            if uniform is None:
                continue
            if isinstance(value, bytes):
                uniform.write(value[: 4 * uniform.dimension * uniform.array_length])
            else:
                uniform.value = value

    def _clipping(self, on: bool) -> None:
        switch = self.ctx.enable_direct if on else self.ctx.disable_direct
        for i in range(MAX_CUT_PLANES):
            switch(GL_CLIP_DISTANCE0 + i)

    def _program(self, colors: bool, cuts: bool) -> tuple[Any, dict[str, Any]]:
        key = (colors, cuts)
        if key not in self._programs:
            vertex, fragment = point_program_source(colors, cuts)
            program: Any = self.ctx.program(vertex_shader=vertex, fragment_shader=fragment)
            uniforms = {n: program[n] for n in program if isinstance(program[n], moderngl.Uniform)}
            self._programs[key] = (program, uniforms)
        return self._programs[key]

    def _release(self, gpu: _GpuCloud) -> None:
        for vao in gpu.vaos.values():
            vao.release()
        for buffer in gpu.buffers:
            buffer.release()

    def release(self) -> None:
        for gpu in self._clouds.values():
            self._release(gpu)
        self._clouds = {}
        for program, _ in self._programs.values():
            program.release()
        self._programs = {}


def _focal(camera: Camera, height: int) -> float:
    """Pixels per world unit at distance 1 along the view axis."""
    return height / (2 * math.tan(math.radians(camera.fov) / 2))


def _box(scene: Scene, node_id: int) -> F64:
    box = scene.world_bounds(node_id)
    assert box is not None  # a node with points has bounds
    return box
