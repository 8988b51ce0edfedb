"""The render server's inspector (ARR's ArrInspector) on the session's inspector port: its routes.

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

``/health`` and ``/stats`` (token) stay with the server (``server.py``). "token" is a connect token of
this session, checked by the ``authorise`` callable the server gives, as ``/stats`` checks it. The page is
opened as ``http://host:inspectorPort/#token=…``: the fragment never reaches a server; the page keeps the
token in ``sessionStorage``, takes it out of the address bar and sends it as ``Authorization: Bearer``
(without one it asks for it). ``/metrics`` is open because Prometheus scrapers cannot present a
per-session JWT; it exposes counters and gauges only.

Data sources, each in a module of its own: the log ring buffer (``logbuffer.py``, attached to the root
logger at start), the trace recorder (``tracing.py``, fed by the client connection), the history sampler
and status (``inspector_status.py``, which also defines the narrow view of the server the inspector
reads) and the Prometheus metrics (``inspector_metrics.py``).
"""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from openrr.render.frame import PipelineClosed
from openrr.render.inspector_metrics import InspectorMetrics
from openrr.render.inspector_status import (
    HISTORY_SECONDS,
    SAMPLE_INTERVAL_S,
    HistorySampler,
    InspectedServer,
    server_status,
)
from openrr.render.logbuffer import LEVELS, LOG_BUFFER, LOG_LIMIT_DEFAULT, LogBuffer
from openrr.render.tracing import TRACE_CAPACITY, Tracer

#: Lets a request through or raises the HTTP error that answers it (401 with the JSON error body).
Authorise = Callable[[web.Request], None]

STATIC = Path(__file__).resolve().parents[1] / "web" / "static" / "inspector"
MAX_SCENE_NODES = 5000
_ASSETS = {
    "inspector.js": "application/javascript",
    "inspector.css": "text/css",
}
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
_COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class Inspector:
    """The inspector of one render server: its data, its routes, its metrics registry.

    ``server`` is read at every request; ``authorise`` guards every route marked "token" above.
    """

    def __init__(
        self,
        server: InspectedServer,
        authorise: Authorise,
        *,
        logs: LogBuffer | None = None,
        trace_capacity: int = TRACE_CAPACITY,
        history_seconds: int = HISTORY_SECONDS,
    ) -> None:
        self.server = server
        self.authorise = authorise
        self.logs = logs if logs is not None else LOG_BUFFER
        self.tracer = Tracer(trace_capacity)
        self.sampler = HistorySampler(server, self.tracer, history_seconds)
        # Both read at every scrape: a ``logs`` replaced later (tests give it their own) is the one counted.
        self.metrics = InspectorMetrics(
            server, self.tracer, latest_sample=self.sampler.latest, log_counts=lambda: self.logs.counts
        )
        self.tracer.on_frame = self.metrics.observe
        self._plotly: dict[bool, bytes] = {}
        self._plotly_lock = asyncio.Lock()

    def install(self, app: web.Application) -> None:
        """Add the inspector's routes and its sampler to the inspector app."""
        router = app.router
        router.add_get("/", self.page)
        router.add_get("/assets/{name}", self.asset)
        router.add_get("/history", self.history_json)
        router.add_get("/log", self.log_json)
        router.add_get("/scene", self.scene_json)
        router.add_get("/trace", self.trace_json)
        router.add_get("/metrics", make_aiohttp_handler(self.metrics.registry))
        app.cleanup_ctx.append(self.sampler.sampling)

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
        self.authorise(request)
        since = _query_float(request, "since", 0.0)
        samples = [s for s in list(self.sampler.history) if s["t"] > since]
        return _json(
            {
                "intervalSeconds": SAMPLE_INTERVAL_S,
                "samples": samples,
                "status": server_status(self.server, self.tracer),
            },
        )

    async def log_json(self, request: web.Request) -> web.Response:
        self.authorise(request)
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
        self.authorise(request)
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
        self.authorise(request)
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


# ---- helpers ----------------------------------------------------------------------------------------------


def plotly_js_path() -> Path | None:
    """``plotly.min.js`` from the installed ``plotly`` package (found without importing it)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


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
