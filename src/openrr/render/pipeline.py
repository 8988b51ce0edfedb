"""The session's scene, camera and models, and the GL thread that renders them into frames for the video
track.

Threads: the GL context lives on one thread (``openrr-gl``) for its whole life, so everything that
touches the renderer *or the scene* runs there, in submission order: renders, picks, scene edits. The
event loop owns the camera and hands each render a copy of it, so a camera command never waits for a
render. Model files are parsed on another thread (``openrr-load``): a big model loading does not stop
the picture, and only its final insertion into the scene takes a turn on the GL thread.

Frames: :meth:`RenderPipeline.next_frame` is the video track's ``FrameSource``; when each frame is rendered
(ahead of the track's pull, just in time, not at all while nothing changes) is ``render_ahead.py``'s part.
Elsewhere too: what a model may take and how it is fetched (``session_models.py``), and the shapes of the
answers about nodes, picks and the camera (``scene_answers.py``); what a frame is (``frame.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from openrr.memory import OUT_OF_MEMORY, describe
from openrr.model.budget import Allowance, Usage
from openrr.model.errors import ModelLoadError
from openrr.model.scene import Scene
from openrr.model.sources import ModelSourcePolicy, SourceRefused, display_name
from openrr.protocol.handshake import RenderLimits
from openrr.render import spatial
from openrr.render.camera import Camera
from openrr.render.frame import Frame, PipelineClosed
from openrr.render.lod_builder import LodBuilder
from openrr.render.moving_detail import MovingDetail
from openrr.render.node_edits import edit_node
from openrr.render.render_ahead import RenderAhead
from openrr.render.renderer import Renderer, is_software
from openrr.render.scene_answers import camera_json, node_json, pick_json
from openrr.render.session_models import (
    LoadedModel,
    ModelError,
    allowance_left,
    fetch_model,
    load_progress,
    relative_to_roots,
    restore_preloaded,
)
from openrr.render.xr_mode import XrMode

log = logging.getLogger(__name__)
T = TypeVar("T")

# The default view: a little above and in front of the scene, looking at its centre (then framed).
_DEFAULT_EYE = (0.0, 0.6, 3.0)
_RECENT_FRAMES = 8
_NO_IMAGE: NDArray[np.uint8] = np.zeros((0, 0, 3), dtype=np.uint8)


ProgressSink = Callable[[float, str], None]


class RenderPipeline:
    """Scene, camera and renderer of one render server; see the module doc for the threading rules."""

    def __init__(
        self,
        width: int,
        height: int,
        *,
        policy: ModelSourcePolicy,
        polygon_limit: int | None = None,
        fxaa: bool | None = None,
        max_model_bytes: int | None = None,
        limits: RenderLimits | None = None,
        frame_budget_ms: float | None = None,
    ) -> None:
        self.width, self.height = width, height
        self.policy = policy
        self.polygon_limit = polygon_limit
        self._fxaa = fxaa
        self.max_model_bytes = max_model_bytes
        self.limits = limits or RenderLimits()
        self._pending: dict[str, Usage] = {}  # parsed models not in self.models yet: already spent
        # Called (on the event loop) when a load ran out of memory under the process's ceiling: the server
        # then ends the session, as its state after a failed allocation is not to be trusted.
        self.on_out_of_memory: Callable[[str], None] | None = None
        self._gl = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openrr-gl")
        self._loads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openrr-load")
        self._renderer: Renderer | None = None
        self.scene = Scene("session")
        self.camera = Camera.look_at(_DEFAULT_EYE, (0.0, 0.0, 0.0))
        self.models: dict[str, LoadedModel] = {}
        self.xr: XrMode | None = None  # the client's stereo mode (render/xr_mode.py)
        self._loading: set[str] = set()
        self._parsed: dict[str, Scene] = {}  # preloaded models by source, parsed once
        self._preloaded: dict[str, LoadedModel] = {}  # the session's own models: every reset restores them
        self.polygons = 0  # of self.scene: set on the GL thread after each structure change (see stats)
        self._camera_version = 0
        self._pose_id: int | None = None
        self._frame_ids = 0
        self._recent: OrderedDict[int, Frame] = OrderedDict()
        # When frames are rendered (ahead of the track, just in time, or not at all): see render_ahead.py.
        self.frames = RenderAhead(self._render, self._version, self._can_render)
        # Coarser levels while the camera moves, full detail once it stops; levels for raw models.
        self.detail = MovingDetail(self.changed, frame_budget_ms)
        self.lods = LodBuilder(self.on_gl, self.on_loads, lambda: self.scene, self.changed, self._allowance)
        self._closed = False
        self.gl_renderer = ""
        self.frames_rendered, self.render_ms_total, self.render_ms_last = 0, 0.0, 0.0  # stats

    # -- lifetime ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the GL context on the GL thread (about 0.1 s on llvmpipe)."""
        self._renderer = await self.on_gl(self._create_renderer)
        self.gl_renderer = self._renderer.gl_renderer
        log.info("renderer: %s, %dx%d", self.gl_renderer, self.width, self.height)

    def _create_renderer(self) -> Renderer:
        renderer = Renderer(self.width, self.height, polygon_limit=self.polygon_limit)
        # FXAA costs about 7 ms a 720p frame on llvmpipe, a fifth of the frame budget: by default it is on
        # for GPUs only.
        renderer.fxaa = self._fxaa if self._fxaa is not None else not is_software(renderer.gl_renderer)
        renderer.set_scene(self.scene)
        return renderer

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.frames.cancel()
        self.detail.cancel()
        self.lods.close()
        await self.frames.settle()
        renderer, self._renderer = self._renderer, None
        if renderer is not None:
            await asyncio.get_running_loop().run_in_executor(self._gl, renderer.release)
        self._gl.shutdown(wait=True)
        self._loads.shutdown(wait=False, cancel_futures=True)

    async def on_gl(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the GL thread, after what was submitted before: all scene reads and edits go here."""
        if self._closed:
            raise PipelineClosed
        return await asyncio.get_running_loop().run_in_executor(self._gl, fn)

    async def on_loads(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the load thread, after the loads submitted before: what a model may take is decided
        there, one model (or one mesh's levels of detail) at a time."""
        if self._closed:
            raise PipelineClosed
        return await asyncio.get_running_loop().run_in_executor(self._loads, fn)

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            raise PipelineClosed
        return self._renderer

    # -- frames -----------------------------------------------------------------------------------------

    def _version(self) -> tuple[int, ...]:
        # While the picture changes with time alone (a pulsing outline), a new version per frame interval.
        animating = self._renderer is not None and self._renderer.animating
        tick = int(time.monotonic() / (self.frame_interval or 1 / 30)) if animating else -1
        return (
            self._camera_version,
            self.scene.structure_revision,
            self.scene.state_revision,
            id(self.scene),
            tick,
            self.detail.step,
        )

    def _can_render(self) -> bool:
        return not self._closed and self._renderer is not None

    async def _render(self) -> Frame:
        camera = self.camera.copy()
        pose_id = self._pose_id
        self._frame_ids += 1
        frame_id = self._frame_ids
        renderer, size, xr = self.renderer, (self.width, self.height), self.xr
        eyes = xr.snapshot() if xr is not None else None
        moving = self.detail.begin() if xr is None else False  # stereo: always full detail (xr_mode.py)

        def draw() -> Frame:
            started = time.time()
            if xr is not None:
                stereo, meta = xr.draw(renderer, eyes)
                pose = eyes.pose_id if eyes is not None else None
                return Frame(stereo, frame_id, pose, started, xr.render_ms, xr.triangles, meta)
            if (renderer.width, renderer.height) != size:  # back from stereo (see start_xr)
                renderer.resize(*size)
            renderer.transparent = False
            image = self.detail.render(renderer, camera, moving)
            return Frame(image, frame_id, pose_id, started, renderer.stats.frame_ms, renderer.stats.triangles)

        frame = await asyncio.get_running_loop().run_in_executor(self._gl, draw)
        self._recent[frame_id] = dataclasses.replace(frame, image=_NO_IMAGE)  # the facts, not the pixels
        while len(self._recent) > _RECENT_FRAMES:
            self._recent.popitem(last=False)
        self.frames_rendered += 1
        self.render_ms_total += frame.render_ms
        self.render_ms_last = frame.render_ms
        return frame

    @property
    def frame_interval(self) -> float | None:
        """The track's frame interval in seconds, once known: renders then start just in time for it."""
        return self.frames.frame_interval

    @frame_interval.setter
    def frame_interval(self, seconds: float | None) -> None:
        self.frames.frame_interval = seconds

    async def next_frame(self) -> tuple[NDArray[np.uint8], int]:
        """The track's ``FrameSource``: the newest frame, and the next one set rendering (see
        :meth:`RenderAhead.next_frame <openrr.render.render_ahead.RenderAhead.next_frame>`)."""
        frame = await self.frames.next_frame()
        if frame is None:
            raise PipelineClosed
        return frame.image, frame.frame_id

    async def latest_frame(self) -> Frame:
        """The newest frame; waits for the render in flight, or renders one when the picture changed."""
        latest = await self.frames.newest()
        if latest is None:
            raise PipelineClosed
        return latest

    def changed(self) -> None:
        """Something in the picture changed (call it after a scene edit): see :meth:`RenderAhead.touch`."""
        self.frames.touch()

    def frame_info(self, frame_id: int) -> Frame | None:
        """A recent frame by id (the track reports frames after encoding, when newer ones may exist)."""
        return self._recent.get(frame_id)

    # -- camera -----------------------------------------------------------------------------------------

    def camera_changed(self, pose_id: int | None) -> None:
        self._camera_version += 1
        if pose_id is not None:
            self._pose_id = pose_id
        self.detail.pose()
        self.changed()

    def camera_json(self) -> dict[str, Any]:
        return camera_json(self.camera)

    async def frame_scene(self, pose_id: int | None = None, *, from_above: bool = False) -> None:
        """Fit the scene in the view: keeping the viewing direction (a client's ``camera.frame``), or
        ``from_above`` as model viewers open a model (a first model, a reset)."""
        bounds = await self.on_gl(self.scene.bounds)
        if from_above:
            self.camera.frame_from_above(bounds, self.width / self.height)
        else:
            self.camera.frame(bounds, self.width / self.height)
        self.camera_changed(pose_id)

    @property
    def pose_id(self) -> int | None:
        return self._pose_id

    async def start_xr(self, mode: XrMode | None) -> None:
        """Stereo from the next frame on (``mode``), or 2D again (None): as after a resize, no frame of the
        other kind is sent afterwards."""
        self.xr = mode
        await self.resize(self.width, self.height, force=True)

    # -- size -------------------------------------------------------------------------------------------

    async def resize(self, width: int, height: int, *, force: bool = False) -> None:
        if (width, height) == (self.width, self.height) and not force:
            return
        await self.frames.settle()  # no frame of the old size may become the newest after this
        self.width, self.height = width, height  # the next render resizes the renderer (see _render)
        self.frames.latest = None
        self._camera_version += 1
        self.changed()

    # -- models -----------------------------------------------------------------------------------------

    async def load(
        self,
        url: str,
        model_id: str | None = None,
        progress: ProgressSink | None = None,
        *,
        preload: bool = False,
    ) -> LoadedModel:
        """Load a model into the scene; raises ModelError with the data-channel error code."""
        model_id = model_id or display_name(url)
        if model_id in self.models or model_id in self._loading:
            raise ModelError("ModelAlreadyLoaded", f"a model with id {model_id!r} is already loaded")
        most = self.limits.models_per_session
        if most is not None and len(self.models) + len(self._loading) >= most:
            raise ModelError(
                "ModelLoadFailed",
                f"{display_name(url)}: this session already has {most} models loaded or loading, the "
                "most its size allows; unload one first",
            )
        self._loading.add(model_id)
        try:
            return await self._load(url, model_id, progress, preload)
        finally:
            self._loading.discard(model_id)

    async def _load(
        self, url: str, model_id: str, progress: ProgressSink | None, preload: bool
    ) -> LoadedModel:
        scene = self.scene  # a reset meanwhile (the client left) must not receive this model
        # The load stops when its client left (the scene was reset) or the server is closing.
        report = load_progress(lambda: self._closed or (self.scene is not scene and not preload), progress)

        def fetch() -> tuple[str, Scene]:
            # On the load thread, which runs one load at a time: what this one takes is pending before the
            # next one asks for its allowance.
            source, parsed, used = fetch_model(
                url,
                policy=self.policy,
                parsed=self._parsed,
                allowance=self._allowance,
                progress=report,
                max_bytes=self.max_model_bytes,
            )
            self._pending[model_id] = used
            return source, parsed

        try:
            source, parsed = await asyncio.get_running_loop().run_in_executor(self._loads, fetch)
        except (SourceRefused, ModelLoadError, MemoryError) as exc:
            raise self._load_failed(url, model_id, exc) from None
        try:
            return await self._insert(url, model_id, source, parsed, scene, preload)
        finally:
            self._pending.pop(model_id, None)

    def _load_failed(self, url: str, model_id: str, exc: Exception) -> ModelError:
        """The data-channel error for a load that failed before its model reached the scene."""
        if isinstance(exc, SourceRefused):
            return ModelError("ModelSourceRefused", exc.message)
        if isinstance(exc, ModelLoadError):
            # Name the model as the client did, not by where it resolved to on this machine.
            return ModelError("ModelLoadFailed", relative_to_roots(str(exc), self.policy))
        self._pending.pop(model_id, None)
        message = describe(self.limits.memory_bytes)
        log.error("loading %s: %s", display_name(url), message)
        if self.on_out_of_memory is not None:
            self.on_out_of_memory(message)
        return ModelError(OUT_OF_MEMORY, message)

    def _allowance(self) -> Allowance:
        """What the next model may take: the per-model limits, or what is left of the session's."""
        spent = sum((m.usage for m in list(self.models.values())), Usage())  # read on the load thread
        return allowance_left(self.limits, sum(list(self._pending.values()), spent))

    async def _insert(
        self, url: str, model_id: str, source: str, parsed: Scene, scene: Scene, preload: bool
    ) -> LoadedModel:
        if preload:
            self._parsed[source] = parsed
        used = self._pending.get(model_id, Usage())

        def insert() -> LoadedModel:
            if self.scene is not scene:
                raise ModelError("ModelLoadFailed", "the scene was reset while the model loaded")
            roots = scene.add_scene(parsed)
            spatial.pending_builds(scene)  # the BVHs build in the background from now on
            self.polygons = scene.polygon_count
            return LoadedModel(
                model_id, url, source, [n.id for n in roots], len(parsed), parsed.polygon_count, preload, used
            )

        loaded = await self.on_gl(insert)
        self.models[model_id] = loaded
        self._pending.pop(model_id, None)  # counted in self.models from now: not twice
        self.lods.start(parsed, loaded.levels)
        self.changed()
        if preload:
            self._preloaded[model_id] = loaded
        if len(self.models) == 1:
            await self.frame_scene(from_above=True)  # the first model: show it whole
        return loaded

    async def unload(self, model_id: str) -> None:
        model = self.models.pop(model_id, None)
        if model is None:
            raise ModelError("ModelNotFound", f"no model with id {model_id!r} is loaded")
        # Its levels of detail go with it; a preloaded model's stay on its parsed meshes, which a reset
        # restores.
        self.lods.stop(model.levels, release=not model.preloaded)

        def remove() -> None:
            for root in model.roots:
                if root in self.scene:
                    self.scene.remove_node(root)
            self.polygons = self.scene.polygon_count

        await self.on_gl(remove)
        self.changed()

    async def reset(self) -> None:
        """A clean slate for the next client: only the preloaded models, untouched, and the default view."""
        fresh, kept = restore_preloaded(self._preloaded, self._parsed)

        def swap() -> None:
            self.scene = fresh
            self.renderer.set_scene(fresh)
            self.polygons = fresh.polygon_count

        await self.on_gl(swap)
        self.changed()
        for model in self.models.values():
            if not model.preloaded:
                self.lods.stop(model.levels, release=True)
        self.models = kept
        self.camera = Camera.look_at(_DEFAULT_EYE, (0.0, 0.0, 0.0))
        self._pose_id = None
        self.xr = None
        await self.frame_scene(from_above=True)

    # -- nodes and picking ------------------------------------------------------------------------------

    async def set_node(
        self,
        key: int | str,
        *,
        transform: list[float] | None,
        visible: bool | None,
        color: tuple[float, float, float, float] | None,
        clear_color: bool,
    ) -> dict[str, Any]:
        node = await self.on_gl(
            lambda: edit_node(
                self.scene, key, transform=transform, visible=visible, color=color, clear_color=clear_color
            )
        )
        self.changed()
        return node

    async def spatial_ready(self) -> None:
        """Wait for the BVHs of the scene's meshes here, on the event loop, so that a spatial query sent to
        the GL thread afterwards does not hold up the picture there. Raises ModelError ``Busy`` past
        ``spatial.BUILD_WAIT_S``."""
        scene = self.scene
        builds = await self.on_gl(lambda: spatial.pending_builds(scene))
        if builds:
            futures = [asyncio.wrap_future(b) for b in builds]
            _, waiting = await asyncio.wait(futures, timeout=spatial.BUILD_WAIT_S)
            if waiting:
                raise ModelError("Busy", f"{len(waiting)} BVHs are still being built; ask again shortly")

    async def pick(self, x: float, y: float) -> dict[str, Any] | None:
        """What is on screen at (x, y) of the view: a ray cast (``spatial.pick``)."""
        camera = self.camera.copy()
        await self.spatial_ready()

        def hit() -> dict[str, Any] | None:
            if self.polygon_limit is not None and self.scene.polygon_count > self.polygon_limit:
                return None  # the picture is the limit's checkerboard, not the scene
            try:
                found = spatial.pick(self.scene.world(), camera, x, y, self.width / self.height)
            except spatial.IndexNotReady as exc:
                raise ModelError("Busy", f"{exc}; pick again shortly") from None
            return pick_json(self.scene, found)

        return await self.on_gl(hit)

    async def describe_nodes(self) -> list[dict[str, Any]]:
        return await self.on_gl(lambda: [node_json(n) for n in self.scene.nodes()])

    # -- stats ------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        renderer = self._renderer
        frames = max(1, self.frames_rendered)
        return {
            "renderMs": round(self.render_ms_last, 2),
            "renderMsAvg": round(self.render_ms_total / frames, 2),
            "framesRendered": self.frames_rendered,
            "polygons": self.polygons,
            "polygonsDrawn": renderer.stats.triangles if renderer is not None else 0,
            "points": renderer.stats.scene_points if renderer is not None else 0,
            "pointsDrawn": renderer.stats.points if renderer is not None else 0,
            "polygonLimit": self.polygon_limit,
            "limitExceeded": bool(renderer is not None and renderer.limit_exceeded),
            "limitMessage": renderer.limit_message if renderer is not None else None,
            "poseId": self._pose_id,
            "width": self.width,
            "height": self.height,
            "glRenderer": self.gl_renderer,
        }
