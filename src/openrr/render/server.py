"""One session's render server: its state, its HTTP routes, its start and stop.

:class:`RenderServer` owns the render pipeline and the one client a session may have: POST ``OFFER_PATH``
(see ``protocol.handshake``) opens the one ``ClientConnection``; when it ends the scene is reset for the
next client. It serves the handshake app (health, handshake, offer) and the inspector app (health,
``/stats`` and the inspector's routes, ``inspector.py``), both behind the HTTP edge of ``http.py``.

Around it, each in a module of its own: the process that binds the ports and runs it (``process.py``), its
calls to the control plane (``control_plane.py``), the lease it keeps once ready (``lease.py``) and the idle
clock (``idle.py``): with ``settings.idle_stop_s`` set, once ready, a server that has had no client for
that long (since ready, or since its last client left) POSTs ``IDLE_SUFFIX`` once and keeps serving;
stopping it is the control plane's decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time

from aiohttp import web
from pydantic import ValidationError

from openrr.memory import OUT_OF_MEMORY
from openrr.model.sources import ModelSourcePolicy, display_name
from openrr.protocol.handshake import (
    HANDSHAKE_PATH,
    HEALTH_PATH,
    OFFER_PATH,
    PROTOCOL,
    SELF_STOP_LOG,
    SHARED_FIELDS,
    ReadyReport,
    RenderSpec,
)
from openrr.render.connection import ClientConnection, OfferRejected
from openrr.render.control_plane import ControlPlane
from openrr.render.encoder import EncoderConfig
from openrr.render.http import (
    MAX_INSPECTOR_BODY,
    MAX_OFFER_BYTES,
    OfferBody,
    VideoRequest,
    bounded_app,
    check_bearer,
    describe,
    http_error,
)
from openrr.render.ice import IceSettings
from openrr.render.idle import IdleClock
from openrr.render.inspector import Inspector
from openrr.render.lease import Lease, SelfStop, keep_lease
from openrr.render.pipeline import RenderPipeline
from openrr.render.session_models import ModelError

log = logging.getLogger("openrr.render")


class AssignmentRejected(Exception):
    """The session spec given to a pooled server is not one it can serve (exit 2)."""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


class RenderServer:
    """The render server of the session ``spec`` (a pooled server's template until :meth:`assign`).

    ``stopping`` set means stop: by a signal, the lease, an out-of-memory load or the control plane; the
    process then exits with ``exit_code``.
    """

    def __init__(self, spec: RenderSpec) -> None:
        self.spec = spec
        self.started = time.monotonic()
        self.stopping = asyncio.Event()
        self.ice = IceSettings(
            stun_urls=spec.settings.stun_urls,
            turn_urls=spec.settings.turn_urls,
            turn_username=spec.settings.turn_username,
            turn_credential=spec.settings.turn_credential,
        )
        self.pipeline = RenderPipeline(
            spec.settings.video_width,
            spec.settings.video_height,
            policy=ModelSourcePolicy.from_spec(spec),
            polygon_limit=spec.polygon_limit,
            limits=spec.limits,
            frame_budget_ms=spec.settings.frame_budget_ms,
        )
        self.pipeline.on_out_of_memory = self._out_of_memory
        self.serving = False  # ready reported and accepted: failures from here on end the session
        self._out_of_memory_report: asyncio.Task[None] | None = None
        self.client: ClientConnection | None = None
        self.clients_served = 0
        self._offer_lock = asyncio.Lock()
        self._watchers: set[asyncio.Task[None]] = set()
        # The inspector port's page, data, trace and /metrics: it reads this server, and guards its data
        # routes with the same token check as /stats.
        self.inspector = Inspector(self, self.authorise)
        # settings is one of SHARED_FIELDS: an assigned spec keeps the template's idle_stop_s.
        self.idle = IdleClock(
            spec.settings.idle_stop_s,
            stopping=self.stopping,
            busy=lambda: self.client is not None,
            report=lambda seconds: self.control_plane.report_idle(seconds),
        )
        self.lease = Lease()  # deadlines on time.monotonic(), kept once ready (lease.py)
        self.exit_code = 0  # what the process exits with once ``stopping`` is set (0: told to stop)
        self.self_stop: str | None = None  # the self-stop line, logged again as the process's last line
        self._bye = "The session was stopped."  # what a connected client is told when the server stops

    @property
    def control_plane(self) -> ControlPlane:
        """The callbacks of the session this server serves now (a pooled server's spec changes once)."""
        return ControlPlane(self.spec)

    def assign(self, spec: RenderSpec) -> None:
        """Give a pooled server its session: from now on everything reads ``spec``.

        Raises ``AssignmentRejected`` when ``spec`` differs from the template in a field the server was
        built for (``SHARED_FIELDS``): its pipeline and warm-up would not match the session.
        """
        differing = [name for name in SHARED_FIELDS if getattr(spec, name) != getattr(self.spec, name)]
        if differing:
            raise AssignmentRejected(
                f"the session's spec differs from this pooled server's template in: {', '.join(differing)}"
            )
        self.spec = spec
        # The template had no account, so no local model folders: the session's are its account's.
        self.pipeline.policy = ModelSourcePolicy.from_spec(spec)

    def authorise(self, request: web.Request) -> None:
        """Only a connect token of this session gets through (``http.check_bearer``: 401 otherwise)."""
        check_bearer(request, self.spec)

    # ---- handlers ---------------------------------------------------------------------------------------
    async def health(self, _request: web.Request) -> web.Response:
        """Open to anyone who can reach the port: whether the server runs, and nothing else (no session
        id, no client state, no uptime); the session's account sees those through ``HANDSHAKE_PATH``."""
        return web.json_response({"status": "stopping" if self.stopping.is_set() else "ok"})

    async def handshake(self, request: web.Request) -> web.Response:
        self.authorise(request)
        return web.json_response(
            {
                "protocol": PROTOCOL,
                "sessionId": self.spec.session_id,
                "size": self.spec.size,
                # Without query strings or credentials: a model URL's SAS is the account's secret.
                "models": [display_name(m) for m in self.spec.models],
                "offerPath": OFFER_PATH,
                "clientConnected": self.client is not None,
            }
        )

    async def offer(self, request: web.Request) -> web.Response:
        """WebRTC signalling: one offer in, one answer out; a second client is refused while one is on."""
        self.authorise(request)
        if self.stopping.is_set():
            raise http_error(503, "Stopping", "The session is stopping.")
        try:
            body = OfferBody.model_validate_json(await request.read())
        except ValidationError as exc:
            raise http_error(400, "BadRequest", f"Invalid offer: {describe(exc)}") from None
        async with self._offer_lock:  # two offers at once: the second sees the first's connection
            if self.client is not None:
                raise http_error(
                    409,
                    "ClientAlreadyConnected",
                    "Another client is connected to this session; only one client can be connected at a "
                    "time.",
                )
            defaults, video = self.spec.settings, body.video or VideoRequest()
            width = video.width or defaults.video_width
            height = video.height or defaults.video_height
            encoder = EncoderConfig(
                codec="vp8" if video.codec == "vp8" else "h264",
                width=width,
                height=height,
                fps=video.fps or round(defaults.video_fps),
                bitrate=video.bitrate or defaults.video_bitrate,
            )
            await self.pipeline.resize(width, height)
            self.pipeline.frame_interval = 1 / encoder.fps
            client = ClientConnection(
                session_id=self.spec.session_id,
                pipeline=self.pipeline,
                encoder=encoder,
                ice=self.ice,
                loopback=is_loopback(self.spec.advertise_host),
                tracer=self.inspector.tracer,
            )
            # The idle clock stops now: a report sent while this client connects would end its session.
            self.idle.stop()
            try:
                sdp = await client.answer(body.sdp)
            except OfferRejected as exc:
                self.idle.restart()
                await client.close(str(exc))
                raise http_error(400, "BadRequest", str(exc)) from None
            except BaseException:
                self.idle.restart()
                await client.close("the offer could not be answered")  # no half-open peer left behind
                raise
            self.client = client
            self.clients_served += 1
            watcher = asyncio.create_task(self._after_client(client))
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)
        log.info("client connected from %s (%dx%d %s)", request.remote, width, height, client.codec)
        return web.json_response(
            {
                "type": "answer",
                "sdp": sdp,
                "video": {
                    "width": width,
                    "height": height,
                    "fps": encoder.fps,
                    "bitrate": encoder.bitrate,
                    "codec": client.codec,
                },
            }
        )

    async def _after_client(self, client: ClientConnection) -> None:
        """When a client leaves: a clean slate (ARR: models unloaded), then the next one may come."""
        await client.closed.wait()
        await client.close(client.close_reason)  # waits for its teardown to finish
        try:
            if not self.stopping.is_set():
                await self.pipeline.reset()
        except Exception:
            log.exception("resetting the scene after a client left failed")
        finally:
            if self.client is client:
                self.client = None
                self.idle.restart()

    async def stats(self, request: web.Request) -> web.Response:
        self.authorise(request)
        usage = os.times()
        client = self.client
        return web.json_response(
            {
                "sessionId": self.spec.session_id,
                "pid": os.getpid(),
                "uptimeSeconds": round(time.monotonic() - self.started, 3),
                "cpuSeconds": round(usage.user + usage.system, 3),
                "maxRssKiB": _max_rss_kib(),
                "clientConnected": client is not None,
                "clientsServed": self.clients_served,
                "models": [m.describe() for m in self.pipeline.models.values()],
                "render": await client.stats() if client is not None else self.pipeline.stats(),
            }
        )

    def handshake_app(self) -> web.Application:
        app = bounded_app(MAX_OFFER_BYTES + 4096)
        app.router.add_get(HEALTH_PATH, self.health)
        app.router.add_get(HANDSHAKE_PATH, self.handshake)
        app.router.add_post(OFFER_PATH, self.offer)
        return app

    def inspector_app(self) -> web.Application:
        # The inspector takes no request bodies at all (every route is a GET).
        app = bounded_app(MAX_INSPECTOR_BODY)
        app.router.add_get(HEALTH_PATH, self.health)
        app.router.add_get("/stats", self.stats)
        self.inspector.install(app)
        return app

    # ---- start and stop ---------------------------------------------------------------------------------
    async def prepare(self) -> ModelError | None:
        """A normal start: the GL context and the spec's models; the first model error, if any."""
        await self.pipeline.start()
        failure = await self._load_models()
        if failure is None:
            # One frame now compiles the shaders and uploads the meshes (0.3-0.4 s on llvmpipe), which the
            # first client would otherwise wait for.
            await self.pipeline.latest_frame()
        return failure

    async def warm_up(self) -> None:
        """What a pooled server does before it has a session: the GL context and one frame of the empty
        scene, which compiles the shaders."""
        await self.pipeline.start()
        await self.pipeline.latest_frame()

    async def preload(self) -> ModelError | None:
        """After ``warm_up``: the spec's models, and one frame that uploads their meshes."""
        failure = await self._load_models()
        if failure is None:
            await self.pipeline.latest_frame()  # no work when no model changed the scene
        return failure

    async def _load_models(self) -> ModelError | None:
        for url in self.spec.models:
            try:
                loaded = await self.pipeline.load(url, preload=True)
            except ModelError as exc:
                return exc
            log.info("preloaded %s: %d nodes, %d polygons", url, loaded.nodes, loaded.polygons)
        return None

    async def shutdown(self) -> None:
        self.idle.disarm()
        client = self.client
        if client is not None:
            await client.close("the session stopped", notify=self._bye)
        for watcher in list(self._watchers):
            with contextlib.suppress(Exception):
                await watcher
        await self.pipeline.close()

    def _out_of_memory(self, message: str) -> None:
        """A load hit the memory ceiling while serving: the session ends in Error with why (before it
        serves, the failed preload reports it instead)."""
        if self.serving and self._out_of_memory_report is None:
            self._out_of_memory_report = asyncio.create_task(self._end_out_of_memory(message))

    async def _end_out_of_memory(self, message: str) -> None:
        try:
            await self.report_failed(OUT_OF_MEMORY, message)
        except TimeoutError as exc:
            log.error("%s", exc)
        self.stopping.set()

    # ---- ready, lease and self-stop ---------------------------------------------------------------------
    def start_idle_clock(self) -> None:
        """Once ready: from now on, no client for ``settings.idle_stop_s`` is reported (once a period)."""
        self.idle.arm()

    async def report_ready(self, report: ReadyReport) -> bool:
        """POST the ready report until accepted. False means the control plane rejected this server.

        Accepted: the lease clock starts (``Lease.start``), and so does the grace (the control plane
        answered just now)."""
        answer = await self.control_plane.report_ready(report)
        if answer is None:
            return False
        self.lease.start(self.spec.lease_minutes, answer, time.monotonic())
        return True

    async def report_failed(self, code: str, message: str) -> bool:
        """Tell the control plane this server cannot serve the session (it goes to Error)."""
        return await self.control_plane.report_failed(code, message)

    async def keep_lease(self) -> None:
        """Once ready, until stopped: heartbeat, follow the lease, stop at its end or past the grace."""
        stop = await keep_lease(self.lease, self.control_plane, self.stopping)
        if stop is not None:
            self.stop_self(stop)

    def stop_self(self, stop: SelfStop) -> None:
        """End the session from this side, as on SIGTERM. With a reason: the one ``self-stop`` log line
        (unless a stop is under way already). Without one (the control plane refused a heartbeat): its
        exit code, whatever else is under way."""
        if stop.reason is None:
            self.exit_code = stop.code
            self.stopping.set()
            return
        if self.stopping.is_set():
            return
        self.self_stop = f"{SELF_STOP_LOG} {stop.reason}: {stop.why}"
        log.warning("%s", self.self_stop)
        self.exit_code = stop.code
        self._bye = stop.bye
        self.stopping.set()


def _max_rss_kib() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
