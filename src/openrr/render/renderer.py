"""The offscreen renderer: moderngl on a standalone EGL context (NVIDIA when present, Mesa llvmpipe else).

Threading: a GL context is current on the thread that created it. Create the ``Renderer`` on the thread
that will use it (the render server's single-thread executor) and call it only from there.

Image orientation: the projection is followed by a y flip, so the framebuffer stores the image top row
first and ``render`` returns rows top to bottom without a copy-and-flip (the flip reverses triangle
winding, hence ``front_face = "cw"``). No MSAA: on llvmpipe it costs about 3x; ``fxaa=True`` adds a cheap
post-process instead.

Scenes: ``set_scene`` once; geometry goes to the GPU on the next render, once per distinct mesh, and
textures on first use, once per distinct image. Node transform, visibility and colour changes cost
nothing to apply: each frame reads ``Scene.world()``. Adding or removing nodes uploads or releases only
the meshes concerned. Each part is drawn with ``Scene.material_of`` (a client's material edits show in the
next frame; the loaded materials are never changed); the scene's lights and sky (``render/lights.py``,
``render/sky.py``) are read every frame too.

Hierarchical states cost only where used: cut planes are compiled into the program variant drawn for the
entities a plane cuts through (their back faces then drawn too, after the front ones, to show the
inside); see-through entities come last, blended; the selection mask for the outline is written only
while something selected is on screen (state_shading.py, outline.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import moderngl
import numpy as np
from numpy.typing import NDArray

from openrr.model.mesh import F64, Material, Mesh, Primitive
from openrr.model.scene import Scene
from openrr.model.world import WorldState
from openrr.render import shaders
from openrr.render.camera import Camera, boxes_in_frustum, frustum_planes
from openrr.render.draw_lists import DrawLists, choose_lod, draw_lists
from openrr.render.glcalls import GLCalls
from openrr.render.lights import punctual_uniforms
from openrr.render.outline import OutlinePass, pulse_color, pulsing, screen_box
from openrr.render.part_materials import MaterialTextures, lod_parts
from openrr.render.point_pass import PointPass
from openrr.render.scene_pass import NodeMatrices, ScenePass
from openrr.render.shaders import Background, DirectionalLight, Hemisphere, default_lights
from openrr.render.sky import SKY_UNIT, SkyPass
from openrr.render.state_shading import cut_bits, cut_uniforms

__all__ = ["Background", "DirectionalLight", "Hemisphere", "RenderStats", "Renderer", "choose_lod"]
_FLIP_Y = np.diag([1.0, -1.0, 1.0, 1.0])


@dataclass
class RenderStats:
    """Figures of the last ``render`` call (``frame_ms`` includes the readback)."""

    frame_ms: float = 0.0
    draw_calls: int = 0
    triangles: int = 0
    nodes_drawn: int = 0
    nodes_culled: int = 0
    points: int = 0  # of point clouds drawn (render/point_pass.py)
    scene_points: int = 0  # of the scene's point clouds
    step_triangles: tuple[int, ...] = ()  # per frame_budget.DETAIL_STEPS: what each would have drawn
    step_points: tuple[int, ...] = ()  # the same for points (empty: no point cloud in view)


@dataclass(eq=False)
class _GpuPrimitive:
    primitive: Primitive
    program: Any
    uniforms: dict[str, Any]  # the program's active uniforms by name (moderngl's lookup is a linear scan)
    vao: Any
    resources: list[Any]
    content: list[tuple[Any, str, str]]  # the vertex array's (buffer, format, attribute)
    # (program, uniforms, vao) of the other variants drawn (cut planes, sky, lights, shell), made lazily.
    variants: dict[shaders.MeshVariant, tuple[Any, dict[str, Any], Any]] = field(default_factory=dict)
    has_uv: bool = field(init=False)

    def __post_init__(self) -> None:
        self.has_uv = self.primitive.uvs is not None


class Renderer:
    """Renders a ``Scene`` seen by a ``Camera`` into RGB frames of ``width`` x ``height`` pixels.

    ``polygon_limit``: past it the scene is not uploaded and a checkerboard is drawn instead, as ARR
    did; ``limit_exceeded`` and ``limit_message`` say so.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        polygon_limit: int | None = None,
        fxaa: bool = False,
        device_index: int = 0,
    ) -> None:
        # backend="egl" for both GPUs and llvmpipe: no X display, no environment variables needed.
        settings: dict[str, Any] = {"backend": "egl", "device_index": device_index}
        self.ctx = moderngl.create_context(standalone=True, require=330, **settings)
        self.gl_renderer = str(self.ctx.info["GL_RENDERER"])
        self._calls = GLCalls.load()  # draw and read back without holding the GIL (see glcalls.py)
        self.polygon_limit = polygon_limit
        self.fxaa = fxaa
        # Below 1 while the camera moves under a frame budget (draw_lists.choose_lod, point_budget).
        self.detail = 1.0
        self.background = Background()
        # AR on pass-through and see-through devices: clear to black and never draw the sky, so that the
        # client can take the background away (protocol/xr.py).
        self.transparent = False
        self.lights: list[DirectionalLight] = default_lights()
        self.ambient = Hemisphere()
        self.stats = RenderStats()  # of the last finished frame (read from other threads)
        self._stats = RenderStats()  # of the frame being drawn
        self.limit_exceeded = False
        self.limit_message: str | None = None
        self._scene: Scene | None = None
        self._synced: tuple[Scene | None, int, bool] | None = None  # what the GPU holds now
        self._meshes: dict[int, tuple[Mesh, list[_GpuPrimitive]]] = {}
        self._textures = MaterialTextures(self.ctx)
        self._parts: dict[tuple[int, int], tuple[int, ...]] = {}  # (base, level) mesh ids -> base parts
        self._programs: dict[shaders.MeshVariant, tuple[Any, dict[str, Any]]] = {}
        full = shaders.FULLSCREEN_VERTEX
        self._gradient: Any = self.ctx.program(vertex_shader=full, fragment_shader=shaders.GRADIENT_FRAGMENT)
        self._checker: Any = self.ctx.program(vertex_shader=full, fragment_shader=shaders.CHECKER_FRAGMENT)
        self._fxaa: Any = self.ctx.program(vertex_shader=full, fragment_shader=shaders.FXAA_FRAGMENT)
        self._quads = {p: self.ctx.vertex_array(p, []) for p in (self._gradient, self._checker, self._fxaa)}
        self._sky = SkyPass(self.ctx)
        self._points = PointPass(self.ctx)
        self._outline = OutlinePass(self.ctx, full)
        self.clock: Callable[[], float] = time.monotonic  # seconds; the outline's pulse follows it
        self._animating = False
        self._lights_on = False  # the frame being drawn has scene lights (see _variant)
        self._targets: list[Any] = []
        self.resize(width, height)

    # -- frame buffers ---------------------------------------------------------------------------------

    def resize(self, width: int, height: int) -> None:
        if width < 1 or height < 1:
            raise ValueError("the frame size must be positive")
        for target in self._targets:
            target.release()
        self.width, self.height = width, height
        self._color = self.ctx.texture((width, height), 4)
        self._depth = self.ctx.depth_renderbuffer((width, height))
        self._fbo = self.ctx.framebuffer(color_attachments=[self._color], depth_attachment=self._depth)
        self._post_color = self.ctx.texture((width, height), 4)
        self._post = self.ctx.framebuffer(color_attachments=[self._post_color])
        self._outline.resize(width, height)
        # The scene's target while something is selected: the mesh programs' second output is the mask.
        self._fbo_selection = self.ctx.framebuffer(
            color_attachments=[self._color, self._outline.mask], depth_attachment=self._depth
        )
        self._targets = [
            self._fbo_selection,
            self._fbo,
            self._color,
            self._depth,
            self._post,
            self._post_color,
        ]

    @property
    def aspect(self) -> float:
        return self.width / self.height

    @property
    def animating(self) -> bool:
        """Whether the last frame changes with time alone (a pulsing selection outline): the next frame
        differs although nothing was edited."""
        return self._animating

    # -- scene -----------------------------------------------------------------------------------------

    @property
    def scene(self) -> Scene | None:
        return self._scene

    def set_scene(self, scene: Scene | None) -> None:
        """Render ``scene`` from now on; meshes it no longer references are released on the next render."""
        self._scene = scene

    def _sync(self) -> None:
        scene = self._scene
        count = scene.polygon_count if scene is not None else 0
        self.limit_exceeded = self.polygon_limit is not None and count > self.polygon_limit
        self.limit_message = (
            f"the scene has {count} polygons, more than the limit of {self.polygon_limit} for this size"
            if self.limit_exceeded
            else None
        )
        # The scene itself, not its id(): a new scene may reuse a collected one's id and revision.
        key = (scene, scene.structure_revision if scene is not None else 0, self.limit_exceeded)
        if key == self._synced:  # Scene has no __eq__: compared by identity
            return
        wanted: dict[int, Mesh] = {}
        self._parts = {}
        if scene is not None and not self.limit_exceeded:
            for mesh in scene.meshes():
                wanted[id(mesh)] = mesh
                for level in mesh.lods:
                    wanted[id(level.mesh)] = level.mesh
                    self._parts[id(mesh), id(level.mesh)] = lod_parts(mesh, level.mesh)
        for gone in set(self._meshes) - set(wanted):
            for gpu in self._meshes.pop(gone)[1]:
                _release(gpu)
        for key_, mesh in wanted.items():
            if key_ not in self._meshes:
                self._meshes[key_] = (mesh, [self._upload(p) for p in mesh.primitives])
        self._points.sync(scene if not self.limit_exceeded else None)
        self._synced = key

    def _sync_textures(self) -> None:
        scene = self._scene
        meshes = self._meshes.values()
        self._textures.sync(
            scene.materials if scene is not None else None,
            lambda: [p.material for mesh, _ in meshes for p in mesh.primitives],
            self._synced,
        )

    def _upload(self, primitive: Primitive) -> _GpuPrimitive:
        ctx = self.ctx
        variant = (primitive.normals is not None, primitive.uvs is not None, primitive.colors is not None)
        program, uniforms = self._program(shaders.MeshVariant(*variant))
        positions = ctx.buffer(primitive.positions)
        indices = ctx.buffer(primitive.indices)
        resources = [positions, indices]
        content = [(positions, "3f", "in_position")]
        for array, fmt, name in (
            (primitive.normals, "3f", "in_normal"),
            (primitive.uvs, "2f", "in_uv"),
            (primitive.colors, "4f", "in_color"),
        ):
            if array is not None:
                resources.append(ctx.buffer(array))
                content.append((resources[-1], fmt, name))
        vao = self._vertex_array(program, content, indices)
        return _GpuPrimitive(primitive, program, uniforms, vao, resources, content)

    def _program(self, variant: shaders.MeshVariant) -> tuple[Any, dict[str, Any]]:
        """The mesh program of ``variant``, compiled once."""
        if variant not in self._programs:
            vertex, fragment = shaders.mesh_program_source(variant)
            program: Any = self.ctx.program(vertex_shader=vertex, fragment_shader=fragment)
            uniforms = {n: program[n] for n in program if isinstance(program[n], moderngl.Uniform)}
            for name, unit in (*shaders.TEXTURE_UNITS.items(), ("u_env_tex", SKY_UNIT)):
                if name in uniforms:
                    uniforms[name].value = unit
            self._programs[variant] = (program, uniforms)
        return self._programs[variant]

    def _vertex_array(self, program: Any, content: list[tuple[Any, str, str]], indices: Any) -> Any:
        return self.ctx.vertex_array(
            program, content, index_buffer=indices, index_element_size=4, skip_errors=True
        )

    def _variant(self, gpu: _GpuPrimitive, cuts: bool, shell: bool) -> tuple[Any, dict[str, Any], Any]:
        """The program, uniforms and vertex array that draw ``gpu`` with what this draw needs: cut planes,
        the see-through shell, and the frame's sky and lights (made on first use)."""
        sky, lights = self._sky.active, self._lights_on
        if not (cuts or shell or sky or lights):
            return gpu.program, gpu.uniforms, gpu.vao
        p = gpu.primitive
        key = shaders.MeshVariant(
            p.normals is not None, p.uvs is not None, p.colors is not None, cuts, sky, lights, shell
        )
        found = gpu.variants.get(key)
        if found is None:
            program, uniforms = self._program(key)
            found = (program, uniforms, self._vertex_array(program, gpu.content, gpu.resources[1]))
            gpu.variants[key] = found
        return found

    # -- rendering -------------------------------------------------------------------------------------

    def _view_projection(self, camera: Camera, state: WorldState | None) -> F64:
        bounds = self._scene.bounds() if self._scene is not None and state is not None else None
        near, far = camera.clip_planes(bounds)
        projection: F64 = _FLIP_Y @ camera.projection_matrix(self.aspect, near, far) @ camera.view_matrix()
        return projection

    def _candidates(self, state: WorldState, view_projection: F64) -> NDArray[np.int64]:
        """Rows to draw: visible, with an uploaded mesh, not degenerate, inside the frustum."""
        rows = np.flatnonzero(state.has_mesh & state.visible)
        rows = rows[np.abs(np.linalg.det(state.world[rows, :3, :3])) > 1e-30]
        inside = boxes_in_frustum(frustum_planes(view_projection), state.bounds[rows])
        drawn: NDArray[np.int64] = rows[inside]
        return drawn

    def render(self, camera: Camera) -> NDArray[np.uint8]:
        """Draw the scene and return the frame: RGB uint8, shape (height, width, 3), top row first."""
        start = time.perf_counter()
        self._stats = RenderStats()
        self._sync()
        self._sync_textures()
        self._sky.set_sky(self._scene.sky if self._scene is not None and not self.limit_exceeded else None)
        self._animating = False
        self._fbo.use()
        self._draw_background(camera)
        if self.limit_exceeded:
            self._checker["u_cell"].value = max(self.height / 12.0, 4.0)
            self._fullscreen(self._checker)
        elif self._scene is not None:
            self._draw_scene(camera, self._scene.world())
        target = self._fbo
        if self.fxaa:
            self._post.use()
            self._color.use(location=0)
            self._fxaa["u_texel"].value = (1.0 / self.width, 1.0 / self.height)
            self._fullscreen(self._fxaa)
            target = self._post
        frame = np.empty((self.height, self.width, 3), dtype=np.uint8)
        if self._calls is not None:
            target.use()  # bound for reading; the wait for the rasterizer happens without the GIL
            self._calls.read_rgb(frame)
        else:
            target.read_into(frame, components=3, alignment=1)
        self._stats.frame_ms = (time.perf_counter() - start) * 1000.0
        self.stats = self._stats
        return frame

    def read_depth(self) -> NDArray[np.float32]:
        """The depth buffer of the last ``render`` (window depth 0..1, 1 where nothing was drawn), shape
        (height, width), top row first like the frame."""
        depth = np.empty((self.height, self.width), dtype=np.float32)
        self._fbo.use()
        if self._calls is not None:
            self._calls.read_depth(depth)
        else:  # moderngl leaves the read buffer at GL_NONE after a depth read: a colour read restores it
            depth[:] = np.frombuffer(
                self._fbo.read(attachment=-1, dtype="f4", alignment=1), np.float32
            ).reshape(depth.shape)
            self._fbo.read(viewport=(0, 0, 1, 1), components=3)
        return depth

    def _draw_background(self, camera: Camera) -> None:
        top, bottom = self.background.top, self.background.bottom
        if self.transparent:
            self._fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            return
        self._fbo.clear(*top, 1.0, depth=1.0)
        if self._sky.active:
            view = camera.view_matrix()
            view[:3, 3] = 0.0  # directions only: the sky is infinitely far
            self._sky.draw_background(_FLIP_Y @ camera.projection_matrix(self.aspect, 0.1, 10.0) @ view)
            return
        if bottom is not None and bottom != top:
            self._gradient["u_top"].value = top
            self._gradient["u_bottom"].value = bottom
            self._gradient["u_height"].value = float(self.height)
            self._fullscreen(self._gradient)

    def _fullscreen(self, program: Any) -> None:
        """One screen-covering triangle; depth, culling and blending off (the scene pass leaves them on)."""
        self.ctx.disable(moderngl.DEPTH_TEST | moderngl.CULL_FACE | moderngl.BLEND)
        self._quads[program].render(moderngl.TRIANGLES, vertices=3)

    def _draw_scene(self, camera: Camera, state: WorldState) -> None:
        ctx = self.ctx
        view_projection = self._view_projection(camera, state)
        rows = self._candidates(state, view_projection)
        bits, gone = cut_bits(state.cut_planes, state.cut_mask[rows], state.bounds[rows])
        rows, bits = rows[~gone], bits[~gone]  # wholly on the cut-away side of a plane: nothing to draw
        self._stats.nodes_culled = int((state.has_mesh & state.visible).sum()) - len(rows)
        worlds = state.world[rows]
        lists: DrawLists[_GpuPrimitive] = draw_lists(
            camera, self.height, state, rows, worlds, self._meshes, self._material_of(state), self.detail
        )
        self._stats.step_triangles = lists.step_triangles
        frame_uniforms = shaders.frame_uniforms(
            camera.position, camera.rotation, view_projection, self.lights, self.ambient
        )
        frame_uniforms.update(punctual_uniforms(state.lights))
        self._lights_on = bool(state.lights)
        frame_uniforms.update(self._sky.frame_uniforms())
        self._sky.bind()
        if bits.any():  # the cut variants' frame uniforms; nothing else reads them
            frame_uniforms |= cut_uniforms(state.cut_planes)
        selected = state.selected[rows]
        nodes = NodeMatrices.of(worlds, state.color[rows], state.tint[rows], bits, selected)
        scene_pass = ScenePass(ctx, frame_uniforms, nodes)
        outline = self._scene.outline if self._scene is not None else None
        box = screen_box(state.bounds[rows[selected]], view_projection, self.width, self.height)
        target = self._fbo
        if outline is not None and box is not None:
            self._outline.clear()
            target = self._fbo_selection  # the scene's draws also write the selection mask
        target.use()
        assert self._scene is not None
        self._stats.points, self._stats.step_points = self._points.render(
            self._scene, state, camera, view_projection, self.height, self.detail
        )
        self._stats.scene_points = self._scene.point_count
        self._draw_lists(scene_pass, lists, target)
        if outline is not None and box is not None:
            self._outline.draw_line(self._fbo, box, pulse_color(outline, self.clock()))
            self._animating = pulsing(outline)
        self._stats.nodes_drawn = len(rows)

    def _material_of(self, state: WorldState) -> Callable[[int, Mesh, int], Material]:
        """What part ``index`` of ``mesh`` (the base mesh of ``row`` or one of its levels) is drawn with."""
        scene = self._scene
        assert scene is not None

        def material_of(row: int, mesh: Mesh, index: int) -> Material:
            base = state.meshes[row]
            assert base is not None
            part = index if mesh is base else self._parts[id(base), id(mesh)][index]
            if part < 0:  # a level's primitive standing for no base part: its own material's version
                return scene.materials.current(mesh.primitives[index].material)
            return scene.material_of(scene.node(int(state.ids[row])), part)

        return material_of

    def _draw_lists(self, scene_pass: ScenePass, lists: DrawLists[_GpuPrimitive], target: Any) -> None:
        ctx = self.ctx
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.BLEND)
        target.depth_mask = True
        for draw in lists.opaque:
            self._draw(scene_pass, *draw)
        if lists.blended or lists.see_through:
            # Blended materials, then see-through entities (ARR's shell look): depth-tested against the
            # opaque picture, writing no depth, so what is behind them shows through.
            ctx.enable(moderngl.BLEND)
            ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
            target.depth_mask = False
            for draw in lists.blended:
                self._draw(scene_pass, *draw)
            scene_pass.set_see_through(self._scene.shell if self._scene is not None else None)
            for draw in lists.see_through:
                self._draw(scene_pass, *draw)
        target.depth_mask = True
        ctx.disable(moderngl.BLEND)
        scene_pass.set_clipping(None)

    def _draw(self, scene_pass: ScenePass, node: int, gpu: _GpuPrimitive, material: Material) -> None:
        textures = self._textures.of(material) if gpu.has_uv else {}  # no uvs: textures are ignored
        program, uniforms, vao = self._variant(gpu, bool(scene_pass.nodes.cut_bits[node]), scene_pass.shell)
        scene_pass.set_uniforms(uniforms, material, textures, node)
        for unit, texture in textures.items():
            texture.use(location=unit)
        scene_pass.set_faces(node, material)
        scene_pass.set_clipping(node)
        self._draw_triangles(program, vao, gpu.primitive.indices.size)
        if scene_pass.nodes.cut_bits[node] and not material.double_sided:
            # The inside shows through the cut: the back faces too (shaded with the flipped normal),
            # after the front faces, so that the depth test rejects the many they hide before shading.
            scene_pass.set_faces(node, material, back=True)
            self._draw_triangles(program, vao, gpu.primitive.indices.size)
            self._stats.draw_calls += 1
        self._stats.draw_calls += 1
        self._stats.triangles += gpu.primitive.triangle_count

    def _draw_triangles(self, program: Any, vao: Any, index_count: int) -> None:
        if self._calls is not None:
            self._calls.draw_triangles(program, vao, index_count)
        else:
            vao.render(moderngl.TRIANGLES)

    # -- lifetime --------------------------------------------------------------------------------------

    def release(self) -> None:
        """Free every GPU resource and the context; the renderer is unusable afterwards."""
        self._scene = None
        self._sync()
        self._sync_textures()
        self._sky.release()
        self._points.release()
        self._outline.release()
        self.ctx.release()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _release(gpu: _GpuPrimitive) -> None:
    for resource in (gpu.vao, *gpu.resources):
        resource.release()
    for _, _, vao in gpu.variants.values():
        vao.release()


def is_software(gl_renderer: str) -> bool:
    """Whether the GL renderer is Mesa's CPU rasteriser (llvmpipe, softpipe) rather than a GPU."""
    name = gl_renderer.lower()
    return "llvmpipe" in name or "softpipe" in name
