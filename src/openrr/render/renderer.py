"""The offscreen renderer: moderngl on a standalone EGL context (NVIDIA when present, Mesa llvmpipe else).

Threading: a GL context is current on the thread that created it. Create the ``Renderer`` on the thread
that will use it (the render server's single-thread executor) and call it only from there.

Image orientation: the projection is followed by a y flip, so the framebuffer stores the image top row
first and ``render`` returns rows top to bottom without a copy-and-flip (the flip reverses triangle
winding, hence ``front_face = "cw"``). No MSAA: on llvmpipe it costs about 3x; ``fxaa=True`` adds a cheap
post-process instead.

Scenes: ``set_scene`` once; geometry and textures go to the GPU on the next render, once per distinct
mesh/texture. Node transform, visibility and colour changes cost nothing to apply: each frame reads
``Scene.world()``. Adding or removing nodes uploads or releases only the meshes concerned.

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

from openrr.model.mesh import F64, Mesh, Primitive
from openrr.model.scene import Scene
from openrr.model.world import WorldState
from openrr.render import shaders
from openrr.render.camera import Camera, boxes_in_frustum, frustum_planes
from openrr.render.draw_lists import DrawLists, choose_lod, draw_lists
from openrr.render.glcalls import GLCalls
from openrr.render.outline import OutlinePass, pulse_color, pulsing, screen_box
from openrr.render.picking import Picker, PickHit, PickItem, pick_matrix
from openrr.render.scene_pass import NodeMatrices, ScenePass
from openrr.render.shaders import Background, DirectionalLight, Hemisphere, default_lights
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


@dataclass(eq=False)
class _GpuPrimitive:
    primitive: Primitive
    program: Any
    uniforms: dict[str, Any]  # the program's active uniforms by name (moderngl's lookup is a linear scan)
    vao: Any
    id_vao: Any
    resources: list[Any]
    content: list[tuple[Any, str, str]]  # the vertex array's (buffer, format, attribute)
    textures: dict[int, Any] = field(default_factory=dict)  # texture unit -> moderngl.Texture
    cut: tuple[Any, dict[str, Any], Any] | None = None  # program, uniforms, vao with cut planes (lazily)


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
        self.background = Background()
        self.lights: list[DirectionalLight] = default_lights()
        self.ambient = Hemisphere()
        self.stats = RenderStats()  # of the last finished frame (read from other threads)
        self._stats = RenderStats()  # of the frame being drawn
        self.limit_exceeded = False
        self.limit_message: str | None = None
        self._scene: Scene | None = None
        self._synced: tuple[Scene | None, int, bool] | None = None  # what the GPU holds now
        self._meshes: dict[int, tuple[Mesh, list[_GpuPrimitive]]] = {}
        self._textures: dict[int, tuple[NDArray[np.uint8], Any]] = {}
        self._programs: dict[tuple[bool, bool, bool, bool], tuple[Any, dict[str, Any]]] = {}
        self._picker = Picker(self.ctx)
        full = shaders.FULLSCREEN_VERTEX
        self._gradient: Any = self.ctx.program(vertex_shader=full, fragment_shader=shaders.GRADIENT_FRAGMENT)
        self._checker: Any = self.ctx.program(vertex_shader=full, fragment_shader=shaders.CHECKER_FRAGMENT)
        self._fxaa: Any = self.ctx.program(vertex_shader=full, fragment_shader=shaders.FXAA_FRAGMENT)
        self._quads = {p: self.ctx.vertex_array(p, []) for p in (self._gradient, self._checker, self._fxaa)}
        self._outline = OutlinePass(self.ctx, full)
        self.clock: Callable[[], float] = time.monotonic  # seconds; the outline's pulse follows it
        self._animating = False
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
        if scene is not None and not self.limit_exceeded:
            for mesh in scene.meshes():
                wanted[id(mesh)] = mesh
                wanted.update((id(level.mesh), level.mesh) for level in mesh.lods)
        for gone in set(self._meshes) - set(wanted):
            for gpu in self._meshes.pop(gone)[1]:
                _release(gpu)
        for key_, mesh in wanted.items():
            if key_ not in self._meshes:
                self._meshes[key_] = (mesh, [self._upload(p) for p in mesh.primitives])
        used = {id(t) for _, gpus in self._meshes.values() for g in gpus for t in g.textures.values()}
        for key_ in [k for k, (_, tex) in self._textures.items() if id(tex) not in used]:
            self._textures.pop(key_)[1].release()
        self._synced = key

    def _upload(self, primitive: Primitive) -> _GpuPrimitive:
        ctx = self.ctx
        variant = (primitive.normals is not None, primitive.uvs is not None, primitive.colors is not None)
        program, uniforms = self._program((*variant, False))
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
        id_vao = self._picker.vertex_array(positions, indices)
        gpu = _GpuPrimitive(primitive, program, uniforms, vao, id_vao, resources, content)
        material = primitive.material
        if primitive.uvs is not None:
            for unit, image in enumerate(shaders.material_textures(material)):
                if image is not None:
                    gpu.textures[unit] = self._texture(image)
        return gpu

    def _program(self, variant: tuple[bool, bool, bool, bool]) -> tuple[Any, dict[str, Any]]:
        """The mesh program for (normals, uvs, colours, cut planes), compiled once."""
        if variant not in self._programs:
            vertex, fragment = shaders.mesh_program_source(*variant)
            program: Any = self.ctx.program(vertex_shader=vertex, fragment_shader=fragment)
            uniforms = {n: program[n] for n in program if isinstance(program[n], moderngl.Uniform)}
            for name, unit in shaders.TEXTURE_UNITS.items():
                if name in uniforms:
                    uniforms[name].value = unit
            self._programs[variant] = (program, uniforms)
        return self._programs[variant]

    def _vertex_array(self, program: Any, content: list[tuple[Any, str, str]], indices: Any) -> Any:
        return self.ctx.vertex_array(
            program, content, index_buffer=indices, index_element_size=4, skip_errors=True
        )

    def _cut_variant(self, gpu: _GpuPrimitive) -> tuple[Any, dict[str, Any], Any]:
        """The program, uniforms and vertex array that draw ``gpu`` with cut planes (made on first use)."""
        if gpu.cut is None:
            p = gpu.primitive
            program, uniforms = self._program(
                (p.normals is not None, p.uvs is not None, p.colors is not None, True)
            )
            gpu.cut = (program, uniforms, self._vertex_array(program, gpu.content, gpu.resources[1]))
        return gpu.cut

    def _texture(self, image: NDArray[np.uint8]) -> Any:
        if id(image) not in self._textures:
            largest = int(self.ctx.info["GL_MAX_TEXTURE_SIZE"])
            step = -(-max(image.shape[:2]) // largest)  # decimate what the GL cannot hold at all
            pixels = np.ascontiguousarray(image[::step, ::step])
            texture = self.ctx.texture((pixels.shape[1], pixels.shape[0]), 4, pixels)
            texture.build_mipmaps()
            texture.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
            self._textures[id(image)] = (image, texture)  # holding the array keeps its id() unique
        return self._textures[id(image)][1]

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
        self._animating = False
        self._fbo.use()
        self._draw_background()
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

    def _draw_background(self) -> None:
        top, bottom = self.background.top, self.background.bottom
        self._fbo.clear(*top, 1.0, depth=1.0)
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
        lists: DrawLists[_GpuPrimitive] = draw_lists(camera, self.height, state, rows, worlds, self._meshes)
        frame_uniforms = shaders.frame_uniforms(
            camera.position, camera.rotation, view_projection, self.lights, self.ambient
        )
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
        self._draw_lists(scene_pass, lists, target)
        if outline is not None and box is not None:
            self._outline.draw_line(self._fbo, box, pulse_color(outline, self.clock()))
            self._animating = pulsing(outline)
        self._stats.nodes_drawn = len(rows)

    def _draw_lists(self, scene_pass: ScenePass, lists: DrawLists[_GpuPrimitive], target: Any) -> None:
        ctx = self.ctx
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.BLEND)
        target.depth_mask = True
        for node, gpu in lists.opaque:
            self._draw(scene_pass, node, gpu)
        if lists.blended or lists.see_through:
            # Blended materials, then see-through entities (ARR's shell look): depth-tested against the
            # opaque picture, writing no depth, so what is behind them shows through.
            ctx.enable(moderngl.BLEND)
            ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
            target.depth_mask = False
            for node, gpu in lists.blended:
                self._draw(scene_pass, node, gpu)
            scene_pass.set_see_through(self._scene.shell if self._scene is not None else None)
            for node, gpu in lists.see_through:
                self._draw(scene_pass, node, gpu)
        target.depth_mask = True
        ctx.disable(moderngl.BLEND)
        scene_pass.set_clipping(None)

    def _draw(self, scene_pass: ScenePass, node: int, gpu: _GpuPrimitive) -> None:
        material = gpu.primitive.material
        program, uniforms, vao = (
            self._cut_variant(gpu)
            if scene_pass.nodes.cut_bits[node]
            else (gpu.program, gpu.uniforms, gpu.vao)
        )
        scene_pass.set_uniforms(uniforms, material, gpu.textures, node)
        for unit, texture in gpu.textures.items():
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

    # -- picking ---------------------------------------------------------------------------------------

    def pick_hit(self, camera: Camera, x: float, y: float) -> PickHit | None:
        """The node visible at pixel (x, y) (from the top left, continuous: the first pixel's centre is
        (0.5, 0.5)) and the world point hit, or None for background. See picking.py for the method."""
        self._sync()
        if self._scene is None or self.limit_exceeded or not (0 <= x < self.width and 0 <= y < self.height):
            return None
        state = self._scene.world()
        view_projection = pick_matrix(x, y, self.width, self.height) @ self._view_projection(camera, state)
        rows = self._candidates(state, view_projection)
        items = [
            PickItem(
                int(state.ids[row]),
                state.world[row],
                [
                    (g.id_vao, g.primitive.material.double_sided)
                    for g in self._meshes[id(state.meshes[row])][1]
                ],
            )
            for row in rows
        ]
        return self._picker.pick(view_projection, items)

    def pick(self, camera: Camera, x: float, y: float) -> int | None:
        """The id of the node visible at pixel (x, y), or None; see ``pick_hit``."""
        hit = self.pick_hit(camera, x, y)
        return None if hit is None else hit.node_id

    # -- lifetime --------------------------------------------------------------------------------------

    def release(self) -> None:
        """Free every GPU resource and the context; the renderer is unusable afterwards."""
        self._scene = None
        self._sync()
        self._picker.release()
        self._outline.release()
        self.ctx.release()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _release(gpu: _GpuPrimitive) -> None:
    for resource in (gpu.vao, gpu.id_vao, *gpu.resources):
        resource.release()
    if gpu.cut is not None:
        gpu.cut[2].release()


def is_software(gl_renderer: str) -> bool:
    """Whether the GL renderer is Mesa's CPU rasteriser (llvmpipe, softpipe) rather than a GPU."""
    name = gl_renderer.lower()
    return "llvmpipe" in name or "softpipe" in name
