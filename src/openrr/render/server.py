"""The render server process: binds its ports, calls the control plane back, serves until told to stop.

Ports: the handshake port (client handshake, health) and the inspector port (live stats) are picked at
random in ARR's range 49152–65534 and bound here, so the ports reported are the ports really held.

Start: the GL context is created and the spec's models are loaded *before* the ready report, so a Ready
session shows its models from the first frame; a model that cannot be loaded is reported to the control
plane as ``ModelLoadFailed`` (the session goes to Error with the loader's message) and the process exits 5.

Clients: POST ``OFFER_PATH`` (see ``protocol.handshake``) opens the one ``ClientConnection`` a session may
have; when it ends the scene is reset for the next client.

Pooled start (``POOL_ENV=1``, see ``protocol.handshake``): the spec is a template. The server warms up (GL
context, one frame of the empty scene so the shaders compile) while it already listens on stdin for its
session's spec, one JSON line. End of input before that line: exit 0, nobody needs it. A line that is
not a ``RenderSpec`` or does not fit the template: exit 2. Otherwise the server takes that spec and goes on
as a normal start does from the model preload on. Only then does stdin stop mattering: an assigned server
outlives its control plane like any other.

Idle stop: with ``settings.idle_stop_s`` set, once ready, a server that has had no client for that long
(since ready, or since its last client left) POSTs ``IDLE_SUFFIX`` once and keeps serving; stopping it is
the control plane's decision.

Lifecycle: SIGTERM or SIGINT → the client gets a ``bye`` and the connection closes; graceful exit 0.
If the control plane answers the ready callback with 404/409/410 the session is gone or served by
another instance: exit 3 without serving. If no answer comes before the ready deadline: exit 4.

Lease and heartbeats (``protocol.handshake``, "Lease"): once ready the server heartbeats the control plane and
keeps the lease deadline its answers give. It stops itself, as on SIGTERM, at the lease end (exit 6) or when
the control plane has not answered for longer than the grace (exit 7), and exits 3 when a heartbeat is
answered 404/409/410. Deadlines are kept on the monotonic clock: a wall-clock jump moves nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import random
import signal
import socket
import ssl
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from openrr import log_redaction
from openrr.memory import OUT_OF_MEMORY
from openrr.protocol.handshake import (
    CONTROL_PLANE_UNREACHABLE,
    EXIT_CONTROL_PLANE_UNREACHABLE,
    EXIT_LEASE_ENDED,
    EXIT_REJECTED,
    FAILED_SUFFIX,
    HANDSHAKE_PATH,
    HEALTH_PATH,
    HEARTBEAT_SUFFIX,
    IDLE_SUFFIX,
    LEASE_ENDED,
    MAX_LEASE_REMAINING_S,
    OFFER_PATH,
    POOL_ENV,
    PORT_RANGE,
    PROTOCOL,
    READY_SUFFIX,
    SELF_STOP_LOG,
    SHARED_FIELDS,
    SPEC_ENV,
    ConnectTokenRefused,
    ReadyReport,
    RenderSpec,
    check_connect_token,
)
from openrr.render.connection import ClientConnection, OfferRejected
from openrr.render.encoder import EncoderConfig
from openrr.render.ice import IceSettings
from openrr.render.inspector import Inspector, install_log_buffer
from openrr.render.pipeline import ModelError, RenderPipeline
from openrr.render.sources import ModelSourcePolicy, display_name

log = logging.getLogger("openrr.render")

EXIT_BAD_ASSIGNMENT = 2
EXIT_NO_CONTROL_PLANE = 4
EXIT_MODEL_FAILED = 5
EXIT_TLS_FAILED = 8  # after 6 and 7, the self-stops of openrr.protocol.handshake
MAX_OFFER_BYTES = 256 * 1024
# A session spec is a few KiB; its model list (URLs with SAS tokens) is what can make it long.
MAX_ASSIGNMENT_BYTES = 16 * 2**20
MAX_INSPECTOR_BODY = 4096
# Request heads: aiohttp's parser enforces these before a handler runs, answering 400 past either.
MAX_HEADER_FIELD = 8190
MAX_HEADER_FIELDS = 100


class AssignmentRejected(Exception):
    """The session spec given to a pooled server is not one it can serve (exit 2)."""


def bind_in_range(host: str, attempts: int = 200) -> socket.socket:
    """A listening TCP socket on a free random port in PORT_RANGE."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    last: OSError | None = None
    for _ in range(attempts):
        port = random.randint(*PORT_RANGE)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            last = exc
            sock.close()
    raise OSError(f"no free port in {PORT_RANGE[0]}-{PORT_RANGE[1]} on {host}: {last}")


class VideoRequest(BaseModel):
    """What a client may ask of the video in its offer (anything left out: the session's defaults)."""

    model_config = ConfigDict(extra="forbid")
    width: int | None = Field(default=None, ge=160, le=3840, multiple_of=2)
    height: int | None = Field(default=None, ge=120, le=2160, multiple_of=2)
    fps: int | None = Field(default=None, ge=1, le=60)
    bitrate: int | None = Field(default=None, ge=100_000, le=50_000_000)
    codec: str | None = Field(default=None, pattern="^(h264|vp8)$")


class OfferBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = Field(pattern="^offer$")
    sdp: str = Field(min_length=1, max_length=MAX_OFFER_BYTES)
    video: VideoRequest | None = None


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


class RenderServer:
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
        )
        self.pipeline.on_out_of_memory = self._out_of_memory
        self.serving = False  # ready reported and accepted: failures from here on end the session
        self._out_of_memory_report: asyncio.Task[None] | None = None
        self.client: ClientConnection | None = None
        self.clients_served = 0
        self._offer_lock = asyncio.Lock()
        self._watchers: set[asyncio.Task[None]] = set()
        self.inspector = Inspector(self)  # the inspector port's page, data, trace and /metrics
        # Idle stop (settings.idle_stop_s): one timer per period without a client, armed once ready.
        self._idle_armed = False
        self._idle_since = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_report: asyncio.Task[None] | None = None
        # Lease and heartbeats (see the module doc): deadlines on time.monotonic().
        self.exit_code = 0  # what the process exits with once ``stopping`` is set (0: told to stop)
        self.self_stop: str | None = None  # the self-stop line, logged again as the process's last line
        self._bye = "The session was stopped."  # what a connected client is told when the server stops
        self.lease_deadline: float | None = None
        self.last_contact = 0.0

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

    # ---- authorisation --------------------------------------------------------------------------------
    def _check_token(self, request: web.Request) -> None:
        """Only a connect token of this session (``protocol.handshake.check_connect_token``) gets through."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _error(401, "Unauthorized", "A bearer connect token of this session is required.")
        try:
            check_connect_token(
                token.strip(), secret=self.spec.connect_secret, session_id=self.spec.session_id
            )
        except ConnectTokenRefused as exc:
            raise _error(401, "Unauthorized", f"The connect token is not valid: {exc}.") from None

    # ---- handlers ---------------------------------------------------------------------------------------
    async def health(self, _request: web.Request) -> web.Response:
        """Open to anyone who can reach the port: whether the server runs, and nothing else (no session
        id, no client state, no uptime); the session's account sees those through ``HANDSHAKE_PATH``."""
        return web.json_response({"status": "stopping" if self.stopping.is_set() else "ok"})

    async def handshake(self, request: web.Request) -> web.Response:
        self._check_token(request)
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
        self._check_token(request)
        if self.stopping.is_set():
            raise _error(503, "Stopping", "The session is stopping.")
        try:
            body = OfferBody.model_validate_json(await request.read())
        except ValidationError as exc:
            raise _error(400, "BadRequest", f"Invalid offer: {_describe(exc)}") from None
        async with self._offer_lock:  # two offers at once: the second sees the first's connection
            if self.client is not None:
                raise _error(
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
            self._idle_stop_clock()
            try:
                sdp = await client.answer(body.sdp)
            except OfferRejected as exc:
                self._idle_restart_clock()
                await client.close(str(exc))
                raise _error(400, "BadRequest", str(exc)) from None
            except BaseException:
                self._idle_restart_clock()
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
                self._idle_restart_clock()

    async def stats(self, request: web.Request) -> web.Response:
        self._check_token(request)
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
        app = web.Application(
            client_max_size=MAX_OFFER_BYTES + 4096, middlewares=[json_errors, read_body_first]
        )
        app.router.add_get(HEALTH_PATH, self.health)
        app.router.add_get(HANDSHAKE_PATH, self.handshake)
        app.router.add_post(OFFER_PATH, self.offer)
        return app

    def inspector_app(self) -> web.Application:
        # The inspector takes no request bodies at all (every route is a GET).
        app = web.Application(client_max_size=MAX_INSPECTOR_BODY, middlewares=[json_errors, read_body_first])
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
        self._idle_armed = False
        self._idle_stop_clock()
        client = self.client
        if client is not None:
            await client.close("the session stopped", notify=self._bye)
        for watcher in list(self._watchers):
            with contextlib.suppress(Exception):
                await watcher
        await self.pipeline.close()

    # ---- idle stop ----------------------------------------------------------------------------------------
    def start_idle_clock(self) -> None:
        """Once ready: from now on, no client for ``settings.idle_stop_s`` is reported (once a period)."""
        if self.spec.settings.idle_stop_s is None:
            return
        self._idle_armed = True
        if self.client is None:
            self._idle_restart_clock()

    def _idle_restart_clock(self) -> None:
        """No client from now on: a new idle period starts."""
        limit = self.spec.settings.idle_stop_s
        if not self._idle_armed or limit is None or self.stopping.is_set():
            return
        self._idle_stop_clock()
        self._idle_since = time.monotonic()
        self._idle_timer = asyncio.get_running_loop().call_later(max(0.0, limit), self._idle_due)

    def _idle_stop_clock(self) -> None:
        """A client came (or the server stops): this idle period is over, and so is its report."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        report, self._idle_report = self._idle_report, None
        if report is not None and not report.done():
            report.cancel()

    def _idle_due(self) -> None:
        self._idle_timer = None
        if self.stopping.is_set() or self.client is not None:
            return
        self._idle_report = asyncio.create_task(self.report_idle(time.monotonic() - self._idle_since))

    async def report_idle(self, seconds: float) -> None:
        """Tell the control plane nobody used this session for ``seconds``; it decides to stop it."""
        log.info("no client for %.1f s: reporting the session idle", seconds)
        body = {"instance": self.spec.instance, "idleSeconds": round(seconds, 3)}
        try:
            await self._callback(IDLE_SUFFIX, body)
        except TimeoutError as exc:
            log.warning("%s", exc)

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

    # ---- control-plane callbacks ------------------------------------------------------------------------
    async def report_ready(self, report: ReadyReport) -> bool:
        """POST the ready report until accepted. False means the control plane rejected this server.

        Accepted: the lease clock starts, from the answer's ``leaseRemainingSeconds`` or else from the
        spec's ``lease_minutes``, and so does the grace (the control plane answered just now)."""
        answer = await self._callback(READY_SUFFIX, report.to_json())
        if answer is None:
            return False
        now = time.monotonic()
        self.last_contact = now
        if self.spec.lease_minutes is not None:
            self.lease_deadline = now + self.spec.lease_minutes * 60.0
        self._take_lease(answer, now)
        return True

    def _take_lease(self, answer: Mapping[str, Any], now: float) -> None:
        """The lease end an answer of the control plane gives, if it gives one that makes sense."""
        remaining = answer.get("leaseRemainingSeconds")
        if isinstance(remaining, bool) or not isinstance(remaining, int | float):
            return  # absent or null (the lease has not started): keep what we had
        if not 0 <= remaining <= MAX_LEASE_REMAINING_S:  # NaN fails both comparisons too
            log.warning("ignoring a lease of %r s left from the control plane", remaining)
            return
        self.lease_deadline = now + float(remaining)

    def stop_self(self, code: int, reason: str, why: str, bye: str) -> None:
        """End the session from this side: the one ``self-stop`` log line, then a stop as on SIGTERM."""
        if self.stopping.is_set():
            return
        self.self_stop = f"{SELF_STOP_LOG} {reason}: {why}"
        log.warning("%s", self.self_stop)
        self.exit_code = code
        self._bye = bye
        self.stopping.set()

    async def keep_lease(self) -> None:
        """Once ready, until stopped: heartbeat, follow the lease, stop at its end or past the grace."""
        settings = self.spec.settings
        interval, grace = settings.heartbeat_s, settings.control_plane_grace_s
        timeout = aiohttp.ClientTimeout(total=max(1.0, min(10.0, 2 * interval)))
        ssl_ctx = self._ssl()
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as http:  # as _callback
            while not self.stopping.is_set():
                now = time.monotonic()
                wake = now + interval
                if self.lease_deadline is not None:
                    wake = min(wake, self.lease_deadline)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), max(0.0, wake - now))
                if self.stopping.is_set():
                    return
                if not await self._heartbeat(http, ssl_ctx):
                    log.error("the control plane says this session is over: exiting")
                    self.exit_code = EXIT_REJECTED
                    self.stopping.set()
                    return
                now = time.monotonic()
                if self.lease_deadline is not None and now >= self.lease_deadline:
                    self.stop_self(
                        EXIT_LEASE_ENDED,
                        LEASE_ENDED,
                        f"the lease of session {self.spec.session_id} has ended",
                        "The session's lease has ended.",
                    )
                elif now - self.last_contact > grace:
                    self.stop_self(
                        EXIT_CONTROL_PLANE_UNREACHABLE,
                        CONTROL_PLANE_UNREACHABLE,
                        f"the control plane has not answered for {now - self.last_contact:.0f} s, longer "
                        f"than the grace of {grace:g} s",
                        "The session was stopped: the service is unreachable.",
                    )

    async def _heartbeat(self, http: aiohttp.ClientSession, ssl_ctx: ssl.SSLContext | bool) -> bool:
        """One heartbeat. False: the control plane says the session is over (exit). A 2xx answer counts as
        contact and may move the lease; anything else (no answer, 5xx, 401/403) counts as no contact."""
        url = self.spec.callback_url + HEARTBEAT_SUFFIX
        try:
            async with http.post(
                url, json={"instance": self.spec.instance}, headers=self._auth(), ssl=ssl_ctx
            ) as resp:
                if resp.status in (404, 409, 410):
                    log.error("heartbeat refused: %s %s", resp.status, (await resp.text())[:500])
                    return False
                if resp.status >= 300:
                    log.warning("heartbeat answered %s %s", resp.status, (await resp.text())[:500])
                    return True
                try:
                    answer = await resp.json(content_type=None)
                except ValueError:
                    answer = None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("heartbeat failed: %s", exc or type(exc).__name__)
            return True
        now = time.monotonic()
        self.last_contact = now
        if isinstance(answer, dict):
            self._take_lease(answer, now)
        return True

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.spec.callback_token}"}

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.spec.callback_url.startswith("https://") and self.spec.callback_ca:
            return ssl.create_default_context(cafile=self.spec.callback_ca)
        return True

    async def report_failed(self, code: str, message: str) -> bool:
        """Tell the control plane this server cannot serve the session (it goes to Error)."""
        body = {"instance": self.spec.instance, "code": code, "message": message[:2000]}
        return await self._callback(FAILED_SUFFIX, body) is not None

    async def _callback(self, suffix: str, body: Mapping[str, object]) -> dict[str, Any] | None:
        """POST until answered; the answer's JSON object on 2xx ({} if it is none), None when refused,
        TimeoutError past the ready deadline."""
        ssl_ctx = self._ssl()
        deadline = time.monotonic() + self.spec.ready_deadline_s
        delay = 0.05
        headers = self._auth()
        # trust_env=False (aiohttp's default, said here because it matters): no proxy from the environment
        # sees the callback token. The URL is the control plane's own (--public-url), never a client's.
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as http:
            while True:
                try:
                    async with http.post(
                        self.spec.callback_url + suffix, json=body, headers=headers, ssl=ssl_ctx
                    ) as resp:
                        if resp.status < 300:
                            try:
                                answer = await resp.json(content_type=None)
                            except ValueError:
                                answer = None
                            return answer if isinstance(answer, dict) else {}
                        text = await resp.text()
                        if resp.status in (401, 403, 404, 409, 410):
                            log.error("control plane refused %s: %s %s", suffix, resp.status, text)
                            return None
                        log.warning("%s answered %s %s; retrying", suffix, resp.status, text)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    log.warning("%s failed (%s); retrying", suffix, exc)
                if time.monotonic() + delay > deadline:
                    raise TimeoutError(f"the control plane did not answer {suffix} in time")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


def _error(status: int, code: str, message: str) -> web.HTTPException:
    body = json.dumps({"error": {"code": code, "message": message}})
    cls = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        403: web.HTTPForbidden,
        409: web.HTTPConflict,
        503: web.HTTPServiceUnavailable,
    }[status]
    return cls(text=body, content_type="application/json")


_ERROR_CODES = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own errors (unknown path, wrong method, body too large) in the documented error shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        code = _ERROR_CODES.get(exc.status, "BadRequest" if exc.status < 500 else "InternalError")
        body = json.dumps({"error": {"code": code, "message": exc.reason}})
        return web.Response(status=exc.status, text=body, content_type="application/json")
    except Exception:  # a bug: the client gets the error shape, the log gets the traceback
        log.exception("%s %s failed", request.method, request.path)
        body = json.dumps({"error": {"code": "InternalError", "message": "The render server failed."}})
        return web.Response(status=500, text=body, content_type="application/json")


def serving_tls(spec: RenderSpec) -> ssl.SSLContext | None:
    """The server-side TLS context of the handshake and inspector ports, or None for plain HTTP."""
    settings = spec.settings
    if not settings.tls_cert or not settings.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


def http_runner(app: web.Application) -> web.AppRunner:
    """A runner for one of the render server's apps, with bounded request heads and no access log (the
    URLs it would log may carry tokens)."""
    return web.AppRunner(
        app,
        access_log=None,
        max_line_size=MAX_HEADER_FIELD,
        max_field_size=MAX_HEADER_FIELD,
        max_headers=MAX_HEADER_FIELDS,
    )


@web.middleware
async def read_body_first(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bound the body before the route (and so the token check) runs: a Content-Length over the app's
    ``client_max_size`` is refused unread, and a chunked body is read only up to it (413 either way)."""
    if request.content_length is not None and request.content_length > request.client_max_size:
        raise web.HTTPRequestEntityTooLarge(
            max_size=request.client_max_size, actual_size=request.content_length
        )
    if request.body_exists:
        await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size; kept for the route
    return await handler(request)


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:5]
    )


def _max_rss_kib() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


async def serve(spec: RenderSpec, *, pooled: bool = False) -> int:
    """Run one render server; returns the exit code. ``pooled``: ``spec`` is a template, and the session
    comes as one line on stdin (see the module doc)."""
    server = RenderServer(spec)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stopping.set)
    try:
        if pooled:
            code = await _wait_for_session(server)
            if code is not None:
                return code
        return await _serve(server, warmed=pooled)
    finally:
        await server.shutdown()
        log.info("render server for session %s stopped", server.spec.session_id or "(none: pooled)")
        if server.self_stop is not None:
            # Last, so a host reading the log's last lines (its exit code lost) finds why: hosts.exits.
            log.warning("%s", server.self_stop)


async def read_line(stream: TextIO | None) -> bytes:
    """One line of ``stream`` without blocking the event loop; b"" at end of input."""
    try:
        fd = os.dup(stream.fileno()) if stream is not None else None
    except (OSError, ValueError):  # no descriptor behind it
        fd = None
    if fd is None:  # started with stdin closed: nothing can ever come
        return b""
    # A duplicate that the transport may close: fd 0 stays taken, so nothing opened later lands on it.
    pipe = os.fdopen(fd, "rb")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_ASSIGNMENT_BYTES)
    try:
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except ValueError:  # a regular file (``< spec.json``): its reads never block
        with pipe:
            return await asyncio.to_thread(pipe.readline, MAX_ASSIGNMENT_BYTES)
    try:
        return await reader.readline()
    finally:
        transport.close()


async def _wait_for_session(server: RenderServer) -> int | None:
    """A pooled server: warm up, then wait for the session's spec on stdin and take it. None: go on
    serving it; otherwise the exit code."""
    started = time.monotonic()
    # Reading starts at once: the host may write the assignment while the warm-up is still running.
    reading = asyncio.create_task(read_line(sys.stdin))
    warming = asyncio.create_task(server.warm_up())
    stopping = asyncio.create_task(server.stopping.wait())
    try:
        await asyncio.wait({warming, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not warming.done():
            return 0
        warming.result()  # a GL failure ends the process as it does in a normal start
        log.info(
            "pooled render server (size %s) warmed up in %.2f s; waiting for a session",
            server.spec.size,
            time.monotonic() - started,
        )
        await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not reading.done():
            return 0
        try:
            line = reading.result()
        except ValueError as exc:  # longer than MAX_ASSIGNMENT_BYTES
            log.error("cannot take the session: %s", exc)
            return EXIT_BAD_ASSIGNMENT
    finally:
        for task in (reading, warming, stopping):
            task.cancel()
    if not line:
        log.info("no session assigned (end of input): exiting")
        return 0
    waited = time.monotonic() - started
    try:
        server.assign(RenderSpec.from_json(line.decode()))
    except (ValueError, TypeError, AttributeError) as exc:  # what json and RenderSpec raise on bad input
        log.error("cannot take the session: not a valid render spec: %s", exc)
        return EXIT_BAD_ASSIGNMENT
    except AssignmentRejected as exc:
        log.error("cannot take the session: %s", exc)
        return EXIT_BAD_ASSIGNMENT
    log.info("assigned session %s, %.2f s after start", server.spec.session_id, waited)
    return None


async def _serve(server: RenderServer, *, warmed: bool = False) -> int:
    spec = server.spec
    preparing = asyncio.create_task(server.preload() if warmed else server.prepare())
    stopping = asyncio.create_task(server.stopping.wait())
    try:
        await asyncio.wait({preparing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not preparing.done():
            preparing.cancel()
            return 0
        failure = preparing.result()
        if failure is not None:
            log.error("cannot serve the session: %s", failure.message)
            try:
                code = OUT_OF_MEMORY if failure.code == OUT_OF_MEMORY else "ModelLoadFailed"
                await server.report_failed(code, failure.message)
            except TimeoutError as exc:
                log.error("%s", exc)
            return EXIT_MODEL_FAILED

        try:
            tls = serving_tls(spec)
        except (OSError, ssl.SSLError) as exc:
            message = f"the render server cannot use its TLS certificate and key: {exc}"
            log.error("cannot serve the session: %s", message)
            with contextlib.suppress(TimeoutError):
                await server.report_failed("RenderServerTlsFailed", message)
            return EXIT_TLS_FAILED
        handshake_sock = bind_in_range(spec.bind_host)
        inspector_sock = bind_in_range(spec.bind_host)
        runners = []
        try:
            for app, sock in (
                (server.handshake_app(), handshake_sock),
                (server.inspector_app(), inspector_sock),
            ):
                runner = http_runner(app)
                await runner.setup()
                await web.SockSite(runner, sock, ssl_context=tls).start()
                runners.append(runner)
            report = ReadyReport(
                instance=spec.instance,
                hostname=spec.advertise_host,
                handshake_port=handshake_sock.getsockname()[1],
                inspector_port=inspector_sock.getsockname()[1],
                teraflops=spec.teraflops,
                pid=os.getpid(),
            )
            log.info(
                "session %s listening on %s (handshake %d, inspector %d)",
                spec.session_id,
                spec.bind_host,
                report.handshake_port,
                report.inspector_port,
            )
            reporting = asyncio.create_task(server.report_ready(report))
            await asyncio.wait({reporting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not reporting.done():
                reporting.cancel()
                return 0
            if reporting.exception() is not None:
                log.error("%s", reporting.exception())
                return EXIT_NO_CONTROL_PLANE
            if not reporting.result():
                return EXIT_REJECTED
            log.info("ready")
            server.serving = True
            server.start_idle_clock()
            keeping = asyncio.create_task(server.keep_lease())
            try:
                await asyncio.wait({keeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if keeping.done() and keeping.exception() is not None:
                    # A bug must not leave a server running with no lease kept: stop, as on SIGTERM.
                    log.error("keeping the lease failed", exc_info=keeping.exception())
                    server.exit_code = 1
                    server.stopping.set()
                await stopping
            finally:
                keeping.cancel()
            return server.exit_code
        finally:
            await server.shutdown()  # the client first: its connection still needs the event loop
            for runner in runners:
                await runner.cleanup()
    finally:
        stopping.cancel()


def configure_logging() -> None:
    # Model URLs carry SAS tokens in their query: no log line may show one (openrr.log_redaction).
    log_redaction.install()
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO: noise in a render server's log (redacted like any other line).
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_log_buffer()  # the inspector's /log: the last records, from every logger


def main() -> int:
    configure_logging()
    raw = os.environ.get(SPEC_ENV)
    if not raw:
        print(f"openrr.render: {SPEC_ENV} is not set; render servers are started by the control plane.")
        return 2
    try:
        spec = RenderSpec.from_json(raw)
    except (ValueError, TypeError) as exc:
        print(f"openrr.render: invalid {SPEC_ENV}: {exc}")
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(spec, pooled=os.environ.get(POOL_ENV) == "1"))
    return 0
