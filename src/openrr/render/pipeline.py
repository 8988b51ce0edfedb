"""The session's scene and the render-ahead loop that turns it into frames for the video track.

Threads: the GL context lives on one thread (``openrr-gl``) for its whole life, so everything that
touches the renderer *or the scene* runs there, in submission order: renders, picks, scene edits. The
event loop owns the camera and hands each render a copy of it, so a camera command never waits for a
render. Model files are parsed on another thread (``openrr-load``): a big model loading does not stop
the picture, and only its final insertion into the scene takes a turn on the GL thread.

Render ahead: :meth:`RenderPipeline.next_frame` (the track's ``FrameSource``) returns the newest finished
frame and has the next one rendered from the newest camera pose before the encoder asks again, so
rendering frame N+1 overlaps encoding frame N (on a 2-core machine: one core each). It starts as late as
the render time allows, so the frame is fresh when taken (see ``_schedule_ahead``). If the camera and
scene have not changed since the newest frame, nothing is rendered and that frame is sent again.
If the render in flight is not done yet, the track waits for it: fps then follows the render rate
instead of repeating stale frames that cost encoder time. A picture that stays unchanged is sent at the
full rate for a moment, then five times a second until the next change (see ``next_frame``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from aiortc.mediastreams import MediaStreamError
from numpy.typing import NDArray

from openrr.memory import OUT_OF_MEMORY, describe
from openrr.model.budget import Allowance, BudgetExceeded, Usage, bytes_text, pixels_text, usage
from openrr.model.errors import ModelLoadError
from openrr.model.loader import load_model
from openrr.model.scene import Scene
from openrr.model.sources import CheckedURL, ModelSourcePolicy, SourceRefused, display_name
from openrr.protocol.handshake import RenderLimits
from openrr.render.camera import Camera
from openrr.render.renderer import Renderer

log = logging.getLogger(__name__)
T = TypeVar("T")

# The default view: a little above and in front of the scene, looking at its centre (then framed).
_DEFAULT_EYE = (0.0, 0.6, 3.0)
_RECENT_FRAMES = 8
LOAD_DEADLINE_S = 300.0  # a whole model load, download included
SETTLE_S = 0.5
_AHEAD_MARGIN_S = 0.003
IDLE_FRAME_INTERVAL_S = 0.2
_NO_IMAGE: NDArray[np.uint8] = np.zeros((0, 0, 3), dtype=np.uint8)


@dataclasses.dataclass(frozen=True)
class Frame:
    """One rendered picture and what produced it."""

    image: NDArray[np.uint8]
    frame_id: int
    pose_id: int | None
    started: float  # time.time() when the render began (the "glass" a latency is measured from)
    render_ms: float
    triangles: int


@dataclasses.dataclass
class LoadedModel:
    model_id: str
    url: str  # as the client gave it; shown only as display_name(url)
    source: str  # the url as checked by the source policy
    roots: list[int]  # scene node ids of the model's roots
    nodes: int
    polygons: int
    preloaded: bool
    usage: Usage = dataclasses.field(default_factory=Usage)

    def describe(self) -> dict[str, Any]:
        return {
            "modelId": self.model_id,
            "url": display_name(self.url),
            "nodes": self.nodes,
            "polygons": self.polygons,
        }


class ModelError(Exception):
    """A model command that failed; ``code`` is the data-channel error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PipelineClosed(MediaStreamError):
    """The pipeline was closed (the server is stopping); as a ``MediaStreamError`` it ends the track."""


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
    ) -> None:
        self.width, self.height = width, height
        self.policy = policy
        self.polygon_limit = polygon_limit
        self._fxaa = fxaa
        self._max_model_bytes = max_model_bytes
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
        self._loading: set[str] = set()
        self._parsed: dict[str, Scene] = {}  # preloaded models by source, parsed once
        self._preloaded: dict[str, LoadedModel] = {}  # the session's own models: every reset restores them
        self._polygons = 0  # of self.scene, counted on the GL thread after each change (see stats)
        self._camera_version = 0
        self._pose_id: int | None = None
        self._frame_ids = 0
        self._latest: Frame | None = None
        self._recent: OrderedDict[int, Frame] = OrderedDict()
        self._latest_version: tuple[int, ...] | None = None
        self._inflight: asyncio.Task[Frame] | None = None
        self._changed = asyncio.Event()
        # Render-ahead timing (see _schedule_ahead); frame_interval is set by the connection's track.
        self.frame_interval: float | None = None
        self._ahead: asyncio.TimerHandle | None = None
        self._last_pull = 0.0
        self._render_s = 0.0  # smoothed render time
        self._last_sent_id = -1
        self._last_new_frame = float("-inf")
        self._closed = False
        self.gl_renderer = ""
        # stats
        self.frames_rendered = 0
        self.render_ms_total = 0.0
        self.render_ms_last = 0.0

    # -- lifetime ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the GL context on the GL thread (about 0.1 s on llvmpipe)."""
        self._renderer = await self._on_gl(self._create_renderer)
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
        self._cancel_ahead()
        await self._settle()
        renderer, self._renderer = self._renderer, None
        if renderer is not None:
            await asyncio.get_running_loop().run_in_executor(self._gl, renderer.release)
        self._gl.shutdown(wait=True)
        self._loads.shutdown(wait=False, cancel_futures=True)

    async def _on_gl(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise PipelineClosed
        return await asyncio.get_running_loop().run_in_executor(self._gl, fn)

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            raise PipelineClosed
        return self._renderer

    # -- frames -----------------------------------------------------------------------------------------

    def _version(self) -> tuple[int, ...]:
        return (
            self._camera_version,
            self.scene.structure_revision,
            self.scene.state_revision,
            id(self.scene),
        )

    async def _render(self) -> Frame:
        camera = self.camera.copy()
        pose_id = self._pose_id
        version = self._version()
        self._frame_ids += 1
        frame_id = self._frame_ids
        renderer = self.renderer

        def draw() -> Frame:
            started = time.time()
            image = renderer.render(camera)
            return Frame(image, frame_id, pose_id, started, renderer.stats.frame_ms, renderer.stats.triangles)

        frame = await asyncio.get_running_loop().run_in_executor(self._gl, draw)
        self._latest, self._latest_version = frame, version
        self._recent[frame_id] = dataclasses.replace(frame, image=_NO_IMAGE)  # the facts, not the pixels
        while len(self._recent) > _RECENT_FRAMES:
            self._recent.popitem(last=False)
        self.frames_rendered += 1
        self.render_ms_total += frame.render_ms
        self.render_ms_last = frame.render_ms
        seconds = frame.render_ms / 1000
        self._render_s = seconds if self._render_s == 0 else 0.7 * self._render_s + 0.3 * seconds
        return frame

    def _start_render(self) -> asyncio.Task[Frame]:
        task = asyncio.create_task(self._render())
        task.add_done_callback(_log_failure)
        self._inflight = task
        return task

    async def next_frame(self) -> tuple[NDArray[np.uint8], int]:
        """The track's ``FrameSource``: the newest frame, and the next one set rendering.

        A picture that stopped changing is sent at the full frame rate for ``SETTLE_S`` (the encoder
        refines it), then only every ``IDLE_FRAME_INTERVAL_S`` until something changes: a still session
        costs almost nothing, and a change is rendered and sent at once, without waiting for a slot.
        """
        loop = asyncio.get_running_loop()
        self._changed.clear()
        if self._unchanged() and loop.time() - self._last_new_frame > SETTLE_S:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), IDLE_FRAME_INTERVAL_S)
        frame = await self.latest_frame()
        if frame.frame_id != self._last_sent_id:
            self._last_sent_id = frame.frame_id
            self._last_new_frame = loop.time()
        return frame.image, frame.frame_id

    def _unchanged(self) -> bool:
        inflight = self._inflight
        return (
            self._latest is not None
            and (inflight is None or inflight.done())
            and self._latest_version == self._version()
        )

    def _touch(self) -> None:
        """Something in the picture changed: wake a track waiting on an unchanged picture, and have the
        change rendered ahead of the next pull."""
        self._changed.set()
        self._schedule_ahead()

    async def latest_frame(self) -> Frame:
        """The newest frame; see the module doc for when this waits for a render."""
        if self._closed:
            raise PipelineClosed
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            # Rendered from the pose of when it began, which is the newest a frame can have by now.
            await asyncio.shield(inflight)
        elif self._latest is None or self._latest_version != self._version():
            self._cancel_ahead()
            await self._start_render()
        latest = self._latest
        if latest is None:
            raise PipelineClosed
        self._last_pull = asyncio.get_running_loop().time()
        self._schedule_ahead()
        return latest

    def _schedule_ahead(self) -> None:
        """Start the next render so that it ends just before the encoder asks for it.

        Without a frame interval (no track) or when rendering takes a whole interval, that is at once:
        render and encode then overlap fully (throughput). When rendering is quicker, starting at once
        would leave the frame waiting for its slot, older than it needs to be: it starts ``frame_interval
        - render time`` after the last pull instead, from the pose current then (latency).
        """
        inflight = self._inflight
        if (
            self._closed
            or self._renderer is None
            or self._ahead is not None
            or (inflight is not None and not inflight.done())
            or self._latest is None
            or self._latest_version == self._version()
        ):
            return
        loop = asyncio.get_running_loop()
        delay = 0.0
        if self.frame_interval is not None:
            delay = self._last_pull + self.frame_interval - self._render_s - _AHEAD_MARGIN_S - loop.time()
        if delay <= 0:
            self._start_render()
        else:
            self._ahead = loop.call_later(delay, self._ahead_due)

    def _ahead_due(self) -> None:
        self._ahead = None
        self._schedule_ahead()

    def _cancel_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead.cancel()
            self._ahead = None

    async def _settle(self) -> None:
        inflight = self._inflight
        if inflight is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(inflight)

    def frame_info(self, frame_id: int) -> Frame | None:
        """A recent frame by id (the track reports frames after encoding, when newer ones may exist)."""
        return self._recent.get(frame_id)

    # -- camera -----------------------------------------------------------------------------------------

    def camera_changed(self, pose_id: int | None) -> None:
        self._camera_version += 1
        if pose_id is not None:
            self._pose_id = pose_id
        self._touch()

    def camera_json(self) -> dict[str, Any]:
        c = self.camera
        return {
            "position": [round(float(v), 6) for v in c.position],
            "orientation": [round(float(v), 6) for v in c.orientation],
            "fov": c.fov,
            "target": [round(float(v), 6) for v in c.target],
        }

    async def frame_scene(self, pose_id: int | None = None) -> None:
        bounds = await self._on_gl(self.scene.bounds)
        self.camera.frame(bounds, self.width / self.height)
        self.camera_changed(pose_id)

    @property
    def pose_id(self) -> int | None:
        return self._pose_id

    # -- size -------------------------------------------------------------------------------------------

    async def resize(self, width: int, height: int) -> None:
        if (width, height) == (self.width, self.height):
            return
        await self._settle()  # no frame of the old size may become the newest after this
        await self._on_gl(lambda: self.renderer.resize(width, height))
        self.width, self.height = width, height
        self._latest = None
        self._camera_version += 1
        self._touch()

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
        loop = asyncio.get_running_loop()
        scene = self.scene  # a reset meanwhile (the client left) must not receive this model
        deadline = time.monotonic() + LOAD_DEADLINE_S

        def report(fraction: float, message: str) -> None:
            # Called by the loader on the load thread as it goes; raising here aborts the load, which is
            # how a load stops when its client left, the server is closing, or it takes too long.
            if self._closed or (self.scene is not scene and not preload):
                raise ModelLoadError("the load was cancelled: the client left or the server is stopping")
            if time.monotonic() > deadline:
                raise ModelLoadError(f"the load took longer than {LOAD_DEADLINE_S:.0f} s")
            if progress is not None:
                loop.call_soon_threadsafe(progress, fraction, message)

        def fetch() -> tuple[str, Scene]:
            # On the load thread: the policy may resolve host names (blocking), the loader blocks.
            checked = self.policy.guard(url)
            source = checked.url if isinstance(checked, CheckedURL) else checked
            cached = self._parsed.get(source)
            if cached is not None:  # a preloaded model again, under another id: it counts again
                try:
                    self._allowance().check(usage(cached), display_name(url))
                except BudgetExceeded as exc:
                    raise ModelLoadError(exc.message) from None
                self._pending[model_id] = usage(cached)
                return source, cached
            # The download's first request connects to what this check saw: no second lookup to rebind.
            allowance = self._allowance()
            kwargs: dict[str, Any] = {
                "progress": report,
                "guard": self.policy.guard_after(checked),
                "allowance": allowance,
            }
            if self._max_model_bytes is not None:
                kwargs["max_bytes"] = self._max_model_bytes
            parsed = load_model(source, **kwargs)
            self._pending[model_id] = allowance.used
            return source, parsed

        try:
            source, parsed = await loop.run_in_executor(self._loads, fetch)
        except SourceRefused as exc:
            raise ModelError("ModelSourceRefused", exc.message) from None
        except ModelLoadError as exc:
            # Name the model as the client did, not by where it resolved to on this machine.
            raise ModelError("ModelLoadFailed", _relative_to_roots(str(exc), self.policy)) from None
        except MemoryError:
            self._pending.pop(model_id, None)
            message = describe(self.limits.memory_bytes)
            log.error("loading %s: %s", display_name(url), message)
            if self.on_out_of_memory is not None:
                self.on_out_of_memory(message)
            raise ModelError(OUT_OF_MEMORY, message) from None
        try:
            return await self._insert(url, model_id, source, parsed, scene, preload)
        finally:
            self._pending.pop(model_id, None)

    def _allowance(self) -> Allowance:
        """What the next model may take: the per-model limits, or what is left of the session's."""
        limits = self.limits
        spent = sum((m.usage for m in list(self.models.values())), Usage())  # read on the load thread
        spent = sum(list(self._pending.values()), spent)
        allowance = Allowance()
        per_model, per_session = limits.texture_pixels_per_model, limits.texture_pixels_per_session
        if per_model is not None:
            allowance.texture_pixels = per_model
            allowance.texture_limit = f"the {pixels_text(per_model)} a model may have in this session's size"
        if per_session is not None and (per_model is None or per_session - spent.texture_pixels < per_model):
            allowance.texture_pixels = max(per_session - spent.texture_pixels, 0)
            allowance.texture_limit = (
                f"the {pixels_text(allowance.texture_pixels)} left of the {pixels_text(per_session)} of "
                "textures this session's size allows"
            )
        if limits.scene_bytes is not None:
            allowance.geometry_bytes = max(limits.scene_bytes - spent.geometry_bytes, 0)
            allowance.geometry_limit = (
                f"the {bytes_text(allowance.geometry_bytes)} left of the {bytes_text(limits.scene_bytes)} "
                "of scene geometry this session's size allows"
            )
        return allowance

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
            self._polygons = scene.polygon_count
            return LoadedModel(
                model_id, url, source, [n.id for n in roots], len(parsed), parsed.polygon_count, preload, used
            )

        loaded = await self._on_gl(insert)
        self._touch()
        self.models[model_id] = loaded
        if preload:
            self._preloaded[model_id] = loaded
        if len(self.models) == 1:
            await self.frame_scene()  # the first model: show it whole
        return loaded

    async def unload(self, model_id: str) -> None:
        model = self.models.pop(model_id, None)
        if model is None:
            raise ModelError("ModelNotFound", f"no model with id {model_id!r} is loaded")

        def remove() -> None:
            for root in model.roots:
                if root in self.scene:
                    self.scene.remove_node(root)
            self._polygons = self.scene.polygon_count

        await self._on_gl(remove)
        self._touch()

    async def reset(self) -> None:
        """A clean slate for the next client: only the preloaded models, untouched, and the default view."""
        fresh = Scene("session")
        kept: dict[str, LoadedModel] = {}
        for model in self._preloaded.values():  # even those the last client unloaded
            roots = fresh.add_scene(self._parsed[model.source])
            kept[model.model_id] = dataclasses.replace(model, roots=[n.id for n in roots])

        def swap() -> None:
            self.scene = fresh
            self.renderer.set_scene(fresh)
            self._polygons = fresh.polygon_count

        await self._on_gl(swap)
        self._touch()
        self.models = kept
        self.camera = Camera.look_at(_DEFAULT_EYE, (0.0, 0.0, 0.0))
        self._pose_id = None
        await self.frame_scene()

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
        def edit() -> dict[str, Any]:
            try:
                node = self.scene.node(key)
            except KeyError:
                raise ModelError("NodeNotFound", f"no node {key!r} in the scene") from None
            if transform is not None:
                # glTF matrices are column-major; ours are row-major.
                node.transform = np.array(transform, dtype=np.float64).reshape(4, 4).T
            if visible is not None:
                node.visible = visible
            if clear_color:
                node.color = None
            elif color is not None:
                try:
                    node.color = color
                except ValueError as exc:
                    raise ModelError("BadMessage", str(exc)) from None
            return node_json(node)

        node = await self._on_gl(edit)
        self._touch()
        return node

    async def pick(self, x: float, y: float) -> dict[str, Any] | None:
        camera = self.camera.copy()

        def hit() -> dict[str, Any] | None:
            found = self.renderer.pick_hit(camera, x * self.width, y * self.height)
            if found is None or found.node_id not in self.scene:
                return None
            node = self.scene.node(found.node_id)
            return {
                "node": {"id": node.id, "name": node.name},
                "position": [round(float(v), 6) for v in found.position],
            }

        return await self._on_gl(hit)

    async def describe_nodes(self) -> list[dict[str, Any]]:
        return await self._on_gl(lambda: [node_json(n) for n in self.scene.nodes()])

    # -- stats ------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        renderer = self._renderer
        frames = max(1, self.frames_rendered)
        return {
            "renderMs": round(self.render_ms_last, 2),
            "renderMsAvg": round(self.render_ms_total / frames, 2),
            "framesRendered": self.frames_rendered,
            "polygons": self._polygons,
            "polygonsDrawn": renderer.stats.triangles if renderer is not None else 0,
            "polygonLimit": self.polygon_limit,
            "limitExceeded": bool(renderer is not None and renderer.limit_exceeded),
            "limitMessage": renderer.limit_message if renderer is not None else None,
            "poseId": self._pose_id,
            "width": self.width,
            "height": self.height,
            "glRenderer": self.gl_renderer,
        }


def is_software(gl_renderer: str) -> bool:
    """Whether the GL renderer is Mesa's CPU rasteriser (llvmpipe, softpipe) rather than a GPU."""
    name = gl_renderer.lower()
    return "llvmpipe" in name or "softpipe" in name


def _relative_to_roots(message: str, policy: ModelSourcePolicy) -> str:
    for root in policy.folders:  # resolved paths inside a root become relative to it
        for form in {str(root), str(root.resolve())}:
            message = message.replace(form.rstrip("/") + "/", "")
    return message


def node_json(node: Any) -> dict[str, Any]:
    return {
        "id": node.id,
        "name": node.name,
        "parent": node.parent,
        "mesh": node.mesh is not None,
        "visible": node.visible,
    }


def _log_failure(task: asyncio.Task[Frame]) -> None:
    # A render ahead that nobody awaited must still have its failure seen (and retrieved).
    if not task.cancelled() and (exc := task.exception()) is not None and not isinstance(exc, PipelineClosed):
        log.error("render failed: %s", exc, exc_info=exc)
