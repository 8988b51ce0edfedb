"""The render server's inspector (ARR's ArrInspector) on the session's inspector port.

Routes, added to :meth:`RenderServer.inspector_app` by :meth:`Inspector.install`:

===============================  =====  ==========================================================
``GET /``                        open   the inspector page (``web/static/inspector/index.html``)
``GET /assets/{name}``           open   ``inspector.js``, ``inspector.css``, ``plotly.min.js`` (the copy
                                        the pinned ``plotly`` package ships; nothing from the internet)
``GET /history?since=T``         token  one sample a second for the last ``HISTORY_SECONDS`` (those
                                        after ``T``, epoch seconds) and the server's current status
``GET /log?level=INFO&limit=N``  token  the newest ``N`` (default 200) log records at or above level
``GET /scene``                   token  the loaded models and the node hierarchy
``GET /trace``                   token  a timing capture to download: Chrome tracing JSON
``GET /metrics``                 open   Prometheus text (numbers only, no names, URLs, log text or client
                                        state such as whether a client is connected)
===============================  =====  ==========================================================

``/health`` and ``/stats`` (token) stay in ``server.py``. "token" is the account's bearer access token,
checked as ``/stats`` checks it. The page is opened as ``http://host:inspectorPort/#token=…``: the
fragment never reaches a server; the page keeps the token in ``sessionStorage``, takes it out of the
address bar and sends it as ``Authorization: Bearer`` (without one it asks for it). ``/metrics`` is open
because Prometheus scrapers cannot present a per-session JWT; it exposes counters and gauges only.

Data sources: :class:`LogBuffer` is a logging handler keeping the last records (``main()`` attaches it
to the root logger); :class:`Tracer` keeps a bounded ring of trace events fed by the client connection
with every frame sent (the ``Frame`` the pipeline rendered and the ``SentFrame`` the track encoded) and
every command; the sampler (a task living as long as the inspector app) turns the tracer's running
totals into one history sample a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import importlib.util
import itertools
import json
import logging
import os
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from openrr.model.sources import display_name
from openrr.protocol import datachannel as protocol
from openrr.render.pipeline import Frame, PipelineClosed
from openrr.render.track import SentFrame

if TYPE_CHECKING:
    from openrr.render.server import RenderServer

STATIC = Path(__file__).resolve().parents[1] / "web" / "static" / "inspector"
LOG_CAPACITY = 1000  # records kept; the page shows the newest 200 of those at the chosen level
LOG_LIMIT_DEFAULT = 200
MAX_LOG_MESSAGE = 8192
TRACE_CAPACITY = 20_000  # events: about 5 minutes at 30 fps (a render and an encode span per frame)
HISTORY_SECONDS = 600
SAMPLE_INTERVAL_S = 1.0
MAX_SCENE_NODES = 5000
LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}

# Trace "threads": the GL thread renders, the encoder thread encodes, the event loop takes commands.
RENDER_TID, ENCODE_TID, LOOP_TID = 1, 2, 3
_THREAD_NAMES = {
    RENDER_TID: "openrr-gl (render)",
    ENCODE_TID: "openrr-encode (encode)",
    LOOP_TID: "event loop (commands)",
}
_SECONDS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
_ASSETS = {
    "inspector.js": "application/javascript",
    "inspector.css": "text/css",
}
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
_COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


# ---- the log ring buffer ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LogLine:
    seq: int
    time: float  # epoch seconds
    levelno: int
    level: str
    logger: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": round(self.time, 3),
            "level": self.level,
            "logger": self.logger,
            "message": self.message,
        }


class LogBuffer(logging.Handler):
    """A logging handler that keeps the last ``capacity`` records, formatted, for ``/log``.

    Thread-safe: records arrive from any thread (``Handler.handle`` holds the handler's lock around
    :meth:`emit`, and :meth:`lines` takes the same lock).
    """

    def __init__(self, capacity: int = LOG_CAPACITY) -> None:
        super().__init__()
        self.capacity = capacity
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self._formatter = logging.Formatter()
        #: records seen since start, per level name (for /metrics)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + self._formatter.formatException(record.exc_info)
            elif record.exc_text:
                message += "\n" + record.exc_text
            if record.stack_info:
                message += "\n" + self._formatter.formatStack(record.stack_info)
        except Exception:
            self.handleError(record)
            return
        if len(message) > MAX_LOG_MESSAGE:
            message = message[:MAX_LOG_MESSAGE] + " …"
        self._lines.append(
            LogLine(next(self._seq), record.created, record.levelno, record.levelname, record.name, message)
        )
        self.counts[record.levelname] += 1

    def lines(self, level: int = logging.NOTSET, limit: int = LOG_LIMIT_DEFAULT) -> list[LogLine]:
        """The newest ``limit`` records at or above ``level``, oldest first."""
        self.acquire()
        try:
            kept = list(self._lines)
        finally:
            self.release()
        matching = [line for line in kept if line.levelno >= level]
        return matching[-limit:] if limit > 0 else []


#: the render server's buffer: ``main()`` attaches it to the root logger
LOG_BUFFER = LogBuffer()


def install_log_buffer(logger: logging.Logger | None = None, buffer: LogBuffer = LOG_BUFFER) -> LogBuffer:
    """Attach ``buffer`` to ``logger`` (the root logger by default), once."""
    target = logger if logger is not None else logging.getLogger()
    if buffer not in target.handlers:
        target.addHandler(buffer)
    return buffer


# ---- the trace recorder -----------------------------------------------------------------------------------


@dataclasses.dataclass
class FrameTotals:
    """Running totals since the server started (all clients), read by the sampler and /metrics."""

    frames_sent: int = 0
    keyframes: int = 0
    bytes_sent: int = 0
    encode_ms: float = 0.0
    renders: int = 0
    render_ms: float = 0.0


@dataclasses.dataclass(frozen=True)
class _Event:
    ph: str  # "X" complete, "i" instant
    name: str
    cat: str
    tid: int
    ts: int  # µs since the epoch
    dur: int  # µs ("X" only)
    scope: str  # "t" thread, "p" process ("i" only)
    args: dict[str, Any]


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _loop_clock() -> float:
    """The event loop's clock (``SentFrame.captured_at`` is on it), or ``time.monotonic`` outside one."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


FrameObserver = Callable[[float | None, float], None]  # (render ms or None, encode ms)


class Tracer:
    """A bounded ring of trace events and running frame totals.

    :meth:`frame` is called on the event loop for every frame sent: a render span on the GL thread (once
    per rendered frame; an unchanged picture is sent again without a render) and an encode span on the
    encoder thread. :meth:`command` and :meth:`instant` add instant events.
    """

    def __init__(self, capacity: int = TRACE_CAPACITY, *, on_frame: FrameObserver | None = None) -> None:
        self.capacity = capacity
        self._events: deque[_Event] = deque(maxlen=capacity)
        self._last_rendered = 0
        self.totals = FrameTotals()
        self.on_frame = on_frame

    def __len__(self) -> int:
        return len(self._events)

    def frame(self, sent: SentFrame, rendered: Frame | None) -> None:
        render_ms: float | None = None
        if rendered is not None and rendered.frame_id > self._last_rendered:
            self._last_rendered = rendered.frame_id
            render_ms = rendered.render_ms
            self._events.append(
                _Event(
                    "X",
                    "render",
                    "render",
                    RENDER_TID,
                    _us(rendered.started),
                    max(1, _us(rendered.render_ms / 1000)),
                    "",
                    {
                        "frameId": rendered.frame_id,
                        "poseId": rendered.pose_id,
                        "triangles": rendered.triangles,
                    },
                )
            )
            self.totals.renders += 1
            self.totals.render_ms += rendered.render_ms
        # The encode began when the frame was taken from the pipeline (on the loop's clock).
        began = sent.captured_at + (time.time() - _loop_clock())
        self._events.append(
            _Event(
                "X",
                "encode keyframe" if sent.keyframe else "encode",
                "encode",
                ENCODE_TID,
                _us(began),
                max(1, _us(sent.encode_ms / 1000)),
                "",
                {"frameId": sent.frame_id, "pts": sent.pts, "keyframe": sent.keyframe, "bytes": sent.size},
            )
        )
        totals = self.totals
        totals.frames_sent += 1
        totals.keyframes += int(sent.keyframe)
        totals.bytes_sent += sent.size
        totals.encode_ms += sent.encode_ms
        if self.on_frame is not None:
            self.on_frame(render_ms, sent.encode_ms)

    def instant(self, name: str, *, cat: str = "session", process_wide: bool = True, **args: Any) -> None:
        self._events.append(
            _Event("i", name, cat, LOOP_TID, _us(time.time()), 0, "p" if process_wide else "t", args)
        )

    def command(self, request: protocol.Request) -> None:
        """An instant event for a data-channel request (pings and stats requests are left out)."""
        args: dict[str, Any]
        if request.type.startswith("camera."):
            args = request.model_dump(exclude={"v", "type"}, exclude_none=True)
        elif isinstance(request, protocol.ModelLoad):
            # Never the URL's query string or credentials (a SAS token must not reach a capture).
            args = {"modelId": request.modelId or display_name(request.url)}
        elif isinstance(request, protocol.ModelUnload):
            args = {"modelId": request.modelId}
        elif isinstance(request, protocol.NodeSet):
            args = {"node": request.node}
        elif isinstance(request, protocol.Pick):
            args = {"x": request.x, "y": request.y}
        else:
            return
        if request.id is not None:
            args["id"] = request.id
        self.instant(request.type, cat="command", process_wide=False, **args)

    def chrome_trace(self, process_name: str) -> dict[str, Any]:
        """The events as Chrome tracing JSON (``chrome://tracing``, Perfetto): timestamps in µs."""
        pid = os.getpid()
        events: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": process_name}}
        ]
        for tid, name in _THREAD_NAMES.items():
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
            events.append(
                {"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}}
            )
        for e in list(self._events):
            event: dict[str, Any] = {
                "name": e.name,
                "cat": e.cat,
                "ph": e.ph,
                "ts": e.ts,
                "pid": pid,
                "tid": e.tid,
                "args": e.args,
            }
            if e.ph == "X":
                event["dur"] = e.dur
            else:
                event["s"] = e.scope
            events.append(event)
        return {"traceEvents": events, "displayTimeUnit": "ms"}


# ---- the inspector ----------------------------------------------------------------------------------------


class Inspector:
    """The inspector of one render server: its data, its routes, its metrics registry."""

    def __init__(
        self,
        server: RenderServer,
        *,
        logs: LogBuffer | None = None,
        trace_capacity: int = TRACE_CAPACITY,
        history_seconds: int = HISTORY_SECONDS,
    ) -> None:
        self.server = server
        self.logs = logs if logs is not None else LOG_BUFFER
        self.tracer = Tracer(trace_capacity, on_frame=self._observe)
        self.history: deque[dict[str, Any]] = deque(maxlen=max(1, round(history_seconds / SAMPLE_INTERVAL_S)))
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent()  # the first call only starts the measurement
        self._previous = (time.time(), dataclasses.replace(self.tracer.totals))
        self._sampler: asyncio.Task[None] | None = None
        self._plotly: dict[bool, bytes] = {}
        self._plotly_lock = asyncio.Lock()
        # Metrics: a registry of this server's own, never prometheus_client's global one.
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._render_seconds = Histogram(
            "openrr_render_frame_render_seconds",
            "Time to render a frame on the GL thread (readback included).",
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self._encode_seconds = Histogram(
            "openrr_render_frame_encode_seconds",
            "Time to convert and encode a frame on the encoder thread.",
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_ServerCollector(self))

    # -- wiring -----------------------------------------------------------------------------------------

    def install(self, app: web.Application) -> None:
        """Add the inspector's routes and its sampler to the inspector app."""
        router = app.router
        router.add_get("/", self.page)
        router.add_get("/assets/{name}", self.asset)
        router.add_get("/history", self.history_json)
        router.add_get("/log", self.log_json)
        router.add_get("/scene", self.scene_json)
        router.add_get("/trace", self.trace_json)
        router.add_get("/metrics", make_aiohttp_handler(self.registry))
        app.cleanup_ctx.append(self._sampling)

    def _observe(self, render_ms: float | None, encode_ms: float) -> None:
        if render_ms is not None:
            self._render_seconds.observe(render_ms / 1000)
        self._encode_seconds.observe(encode_ms / 1000)

    # -- the sampler ------------------------------------------------------------------------------------

    async def _sampling(self, _app: web.Application) -> AsyncIterator[None]:
        if self._sampler is not None:  # another inspector app of this server samples already
            yield
            return
        self._sampler = asyncio.create_task(self._sample_forever())
        try:
            yield
        finally:
            task, self._sampler = self._sampler, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL_S)
            try:
                self.history.append(self.sample())
            except Exception:  # a bug must cost a sample, not the plots
                logging.getLogger(__name__).exception("inspector sample failed")

    def sample(self) -> dict[str, Any]:
        """One history point: the figures since the previous sample."""
        now = time.time()
        totals = dataclasses.replace(self.tracer.totals)
        then, before = self._previous
        self._previous = (now, totals)
        elapsed = max(now - then, 1e-3)
        frames = totals.frames_sent - before.frames_sent
        renders = totals.renders - before.renders
        render_ms = totals.render_ms - before.render_ms
        encode_ms = totals.encode_ms - before.encode_ms
        client = self.server.client
        pipeline = self.server.pipeline.stats()
        mean_render = render_ms / renders if renders else None
        mean_encode = encode_ms / frames if frames else None
        # As the stats message's frameMs: render + encode (a picture sent again unchanged: encode only).
        frame_ms = None if mean_encode is None else mean_encode + (mean_render or 0.0)
        return {
            "t": round(now, 3),
            "fps": round(frames / elapsed, 2),
            "frameMs": _round(frame_ms),
            "renderMs": _round(mean_render),
            "encodeMs": _round(mean_encode),
            "bitrate": round((totals.bytes_sent - before.bytes_sent) * 8 / elapsed),
            "targetBitrate": client.track.stats().target_bitrate if client is not None else None,
            "cpuPercent": round(self._process.cpu_percent(), 1),
            "rssMiB": round(self._process.memory_info().rss / 2**20, 1),
            "polygons": pipeline["polygons"],
            "polygonsDrawn": pipeline["polygonsDrawn"],
            "clientConnected": client is not None,
        }

    def status(self) -> dict[str, Any]:
        server, pipeline = self.server, self.server.pipeline
        client = server.client
        track = client.track.stats() if client is not None else None
        stats = pipeline.stats()
        return {
            "sessionId": server.spec.session_id,
            "size": server.spec.size,
            "pid": os.getpid(),
            "uptimeSeconds": round(time.monotonic() - server.started, 1),
            "clientConnected": client is not None,
            "clientsServed": server.clients_served,
            "codec": track.codec if track is not None else None,
            "encoder": track.encoder if track is not None else None,
            "targetFps": client.encoder.fps if client is not None else None,
            "width": pipeline.width,
            "height": pipeline.height,
            "glRenderer": pipeline.gl_renderer,
            "models": len(pipeline.models),
            "polygonLimit": pipeline.polygon_limit,
            "limitExceeded": stats["limitExceeded"],
            "limitMessage": stats["limitMessage"],
            "framesRendered": pipeline.frames_rendered,
            "framesSent": self.tracer.totals.frames_sent,
            "traceEvents": len(self.tracer),
        }

    # -- handlers ---------------------------------------------------------------------------------------

    async def page(self, _request: web.Request) -> web.StreamResponse:
        return _file(STATIC / "index.html", "text/html", {"Content-Security-Policy": _PAGE_CSP})

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "plotly.min.js":
            return await self._plotly_js(request)
        if name not in _ASSETS:
            raise web.HTTPNotFound()
        return _file(STATIC / name, _ASSETS[name], {})

    async def _plotly_js(self, request: web.Request) -> web.StreamResponse:
        path = plotly_js_path()
        if path is None:
            raise web.HTTPNotFound(text="plotly.min.js is not installed (pip install plotly)")
        gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
        async with self._plotly_lock:
            body = self._plotly.get(gzipped)
            if body is None:
                # 4.8 MB: read (and compress, for browsers that take gzip) once, off the event loop.
                raw = await asyncio.to_thread(path.read_bytes)
                body = await asyncio.to_thread(gzip.compress, raw, 6) if gzipped else raw
                self._plotly[gzipped] = body
        etag = f'"plotly-{path.stat().st_size}-{int(path.stat().st_mtime)}"'
        headers = {**_COMMON_HEADERS, "ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, content_type="application/javascript", headers=headers)

    async def history_json(self, request: web.Request) -> web.Response:
        self.server._check_token(request)
        since = _query_float(request, "since", 0.0)
        samples = [s for s in list(self.history) if s["t"] > since]
        return _json(
            {"intervalSeconds": SAMPLE_INTERVAL_S, "samples": samples, "status": self.status()},
        )

    async def log_json(self, request: web.Request) -> web.Response:
        self.server._check_token(request)
        name = request.query.get("level", "DEBUG").upper()
        if name not in LEVELS:
            raise _bad_request(f"level must be one of {', '.join(LEVELS)}")
        limit = _query_int(request, "limit", LOG_LIMIT_DEFAULT, 1, self.logs.capacity)
        lines = self.logs.lines(LEVELS[name], limit)
        return _json(
            {
                "level": name,
                "limit": limit,
                "capacity": self.logs.capacity,
                "lines": [x.to_json() for x in lines],
            }
        )

    async def scene_json(self, request: web.Request) -> web.Response:
        self.server._check_token(request)
        pipeline = self.server.pipeline
        scene = pipeline.scene
        revision = f"{id(scene)}.{scene.structure_revision}.{scene.state_revision}"
        try:
            nodes = await pipeline.describe_nodes()
        except PipelineClosed:
            raise web.HTTPServiceUnavailable(
                text=json.dumps({"error": {"code": "Stopping", "message": "The session is stopping."}}),
                content_type="application/json",
            ) from None
        return _json(
            {
                "revision": revision,
                "models": [{**m.describe(), "rootNodes": m.roots} for m in pipeline.models.values()],
                "nodeCount": len(nodes),
                "truncated": len(nodes) > MAX_SCENE_NODES,
                "nodes": nodes[:MAX_SCENE_NODES],
                "polygons": pipeline.stats()["polygons"],
                "camera": pipeline.camera_json(),
            }
        )

    async def trace_json(self, request: web.Request) -> web.Response:
        self.server._check_token(request)
        session = self.server.spec.session_id
        name = f"openrr render server, session {session}"

        def encode() -> bytes:
            return json.dumps(self.tracer.chrome_trace(name), separators=(",", ":")).encode()

        body = await asyncio.to_thread(encode)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return web.Response(
            body=body,
            content_type="application/json",
            headers={
                **_COMMON_HEADERS,
                "Cache-Control": "no-store",
                "Content-Disposition": f'attachment; filename="openrr-trace-{session}-{stamp}.json"',
            },
        )


class _ServerCollector:
    """The render server's figures at scrape time, as Prometheus metrics (a prometheus_client collector)."""

    def __init__(self, inspector: Inspector) -> None:
        self.inspector = inspector

    def collect(self) -> Iterator[Metric]:
        inspector = self.inspector
        server, pipeline = inspector.server, inspector.server.pipeline
        totals = inspector.tracer.totals
        client = server.client
        latest = inspector.history[-1] if inspector.history else {}
        stats = pipeline.stats()

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"openrr_render_{name}", doc, value=value)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"openrr_render_{name}", doc, value=value)

        yield gauge(
            "uptime_seconds", "Seconds since the render server started.", time.monotonic() - server.started
        )
        # Whether a client is connected, and how many came, is client state: /stats and /history (token).
        yield counter("frames_rendered", "Frames rendered.", pipeline.frames_rendered)
        yield counter("frames_sent", "Video frames encoded and sent.", totals.frames_sent)
        yield counter("keyframes_sent", "Keyframes encoded and sent.", totals.keyframes)
        yield counter("video_sent_bytes", "Encoded video bytes sent.", totals.bytes_sent)
        yield gauge("fps", "Frames sent per second (last sample).", latest.get("fps") or 0.0)
        yield gauge(
            "bitrate_bits_per_second", "Video bits sent per second (last sample).", latest.get("bitrate") or 0
        )
        target = client.track.stats().target_bitrate if client is not None else 0
        yield gauge("target_bitrate_bits_per_second", "The encoder's target bitrate (0: no client).", target)
        yield gauge("polygons", "Polygons in the scene.", stats["polygons"])
        yield gauge("polygons_drawn", "Polygons drawn in the last frame.", stats["polygonsDrawn"])
        yield gauge(
            "polygon_limit_exceeded",
            "1 while the scene is over the size's polygon limit.",
            int(stats["limitExceeded"]),
        )
        yield gauge("models_loaded", "Models loaded.", len(pipeline.models))
        yield gauge("scene_nodes", "Nodes in the scene.", len(pipeline.scene))
        yield gauge("width_pixels", "Video width.", pipeline.width)
        yield gauge("height_pixels", "Video height.", pipeline.height)
        records = CounterMetricFamily("openrr_render_log_records", "Log records, by level.", labels=["level"])
        for level in LEVELS:
            records.add_metric([level.lower()], inspector.logs.counts.get(level, 0))
        yield records


# ---- helpers ----------------------------------------------------------------------------------------------


def plotly_js_path() -> Path | None:
    """``plotly.min.js`` from the installed ``plotly`` package (found without importing it)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _file(path: Path, content_type: str, extra: dict[str, str]) -> web.FileResponse:
    headers = {**_COMMON_HEADERS, "Cache-Control": "no-cache", "Content-Type": content_type, **extra}
    return web.FileResponse(path, headers=headers)


def _json(body: dict[str, Any]) -> web.Response:
    return web.json_response(body, headers={**_COMMON_HEADERS, "Cache-Control": "no-store"})


def _bad_request(message: str) -> web.HTTPBadRequest:
    body = json.dumps({"error": {"code": "BadRequest", "message": message}})
    return web.HTTPBadRequest(text=body, content_type="application/json")


def _query_int(request: web.Request, key: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_request(f"{key} must be an integer") from None
    if not low <= value <= high:
        raise _bad_request(f"{key} must be between {low} and {high}")
    return value


def _query_float(request: web.Request, key: str, default: float) -> float:
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _bad_request(f"{key} must be a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _bad_request(f"{key} must be a finite number")
    return value
