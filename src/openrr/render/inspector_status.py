"""What the inspector reads of its render server, and the figures it makes of it.

:class:`InspectedServer` is the narrow view the inspector gets instead of the server object (the
render server satisfies it as it stands); :func:`server_status` is the status object ``/history`` carries;
:class:`HistorySampler` is the task, living as long as the inspector app, that turns the tracer's running
totals into one history sample a second. Apart from the routes because none of this knows HTTP, and apart
from the server so that the inspector never imports the server that owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import psutil

from openrr.protocol.handshake import RenderSpec
from openrr.render.tracing import Tracer

if TYPE_CHECKING:
    from openrr.render.connection import ClientConnection
    from openrr.render.pipeline import RenderPipeline

HISTORY_SECONDS = 600
SAMPLE_INTERVAL_S = 1.0

log = logging.getLogger("openrr.render.inspector")  # the inspector's own records, wherever they come from


class InspectedServer(Protocol):
    """The render server as the inspector sees it: read at every request, never kept (the spec changes
    when a pooled server is assigned its session; the client comes and goes)."""

    @property
    def spec(self) -> RenderSpec: ...

    @property
    def started(self) -> float:
        """When the server started, on ``time.monotonic()``."""
        ...

    @property
    def pipeline(self) -> RenderPipeline: ...

    @property
    def client(self) -> ClientConnection | None:
        """The connected client, if one is."""
        ...

    @property
    def clients_served(self) -> int: ...


def server_status(server: InspectedServer, tracer: Tracer) -> dict[str, Any]:
    """The server's current status, as ``/history`` carries it."""
    pipeline = server.pipeline
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
        "framesSent": tracer.totals.frames_sent,
        "traceEvents": len(tracer),
    }


class HistorySampler:
    """One history point a second for the last ``history_seconds``, from the tracer's running totals."""

    def __init__(
        self, server: InspectedServer, tracer: Tracer, history_seconds: int = HISTORY_SECONDS
    ) -> None:
        self.server = server
        self.tracer = tracer
        self.history: deque[dict[str, Any]] = deque(maxlen=max(1, round(history_seconds / SAMPLE_INTERVAL_S)))
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent()  # the first call only starts the measurement
        self._previous = (time.time(), dataclasses.replace(tracer.totals))
        self._task: asyncio.Task[None] | None = None

    def latest(self) -> dict[str, Any]:
        """The newest sample, or {} before the first."""
        return self.history[-1] if self.history else {}

    async def sampling(self, _app: object) -> AsyncIterator[None]:
        """An aiohttp cleanup context: samples while the app runs (once, however many apps install it)."""
        if self._task is not None:  # another inspector app of this server samples already
            yield
            return
        self._task = asyncio.create_task(self._sample_forever())
        try:
            yield
        finally:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL_S)
            try:
                self.history.append(self.sample())
            except Exception:  # a bug must cost a sample, not the plots
                log.exception("inspector sample failed")

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


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
