"""The render server process: binds its ports, calls the control plane back, serves until told to stop.

Ports: the handshake port (client handshake, health) and the inspector port (live stats) are picked at
random in ARR's range 49152–65534 and bound here, so the ports reported are the ports really held.

Lifecycle: SIGTERM or SIGINT → graceful exit 0. If the control plane answers the ready callback with
404/409/410 the session is gone or served by another instance: exit 3 without serving. If no answer comes
before the ready deadline: exit 4.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import socket
import ssl
import sys
import time

import aiohttp
import jwt
from aiohttp import web

from openrr.handshake import (
    HANDSHAKE_PATH,
    HEALTH_PATH,
    PORT_RANGE,
    PROTOCOL,
    READY_SUFFIX,
    SPEC_ENV,
    ReadyReport,
    RenderSpec,
)

log = logging.getLogger("openrr.render")

EXIT_REJECTED = 3
EXIT_NO_CONTROL_PLANE = 4


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


class RenderServer:
    def __init__(self, spec: RenderSpec) -> None:
        self.spec = spec
        self.started = time.monotonic()
        self.stopping = asyncio.Event()

    # ---- authorisation --------------------------------------------------------------------------------
    def _check_token(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _error(401, "Unauthorized", "A bearer access token of the session's account is required.")
        try:
            claims = jwt.decode(
                token.strip(),
                self.spec.token_public_key,
                algorithms=["EdDSA"],
                audience="openrr",
                issuer="openrr",
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise _error(401, "Unauthorized", f"The access token is not valid: {exc}.") from None
        if claims.get("sub") != self.spec.account_id:
            raise _error(403, "Forbidden", "The access token was issued for another account.")

    # ---- handlers ---------------------------------------------------------------------------------------
    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "stopping" if self.stopping.is_set() else "ok",
                "sessionId": self.spec.session_id,
                "uptimeSeconds": round(time.monotonic() - self.started, 3),
            }
        )

    async def handshake(self, request: web.Request) -> web.Response:
        self._check_token(request)
        return web.json_response(
            {
                "protocol": PROTOCOL,
                "sessionId": self.spec.session_id,
                "size": self.spec.size,
                "models": list(self.spec.models),
            }
        )

    async def stats(self, request: web.Request) -> web.Response:
        self._check_token(request)
        usage = os.times()
        return web.json_response(
            {
                "sessionId": self.spec.session_id,
                "pid": os.getpid(),
                "uptimeSeconds": round(time.monotonic() - self.started, 3),
                "cpuSeconds": round(usage.user + usage.system, 3),
                "maxRssKiB": _max_rss_kib(),
            }
        )

    def handshake_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(HEALTH_PATH, self.health)
        app.router.add_get(HANDSHAKE_PATH, self.handshake)
        return app

    def inspector_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(HEALTH_PATH, self.health)
        app.router.add_get("/stats", self.stats)
        return app

    # ---- control-plane callback -------------------------------------------------------------------------
    async def report_ready(self, report: ReadyReport) -> bool:
        """POST the ready report until accepted. False means the control plane rejected this server."""
        ssl_ctx: ssl.SSLContext | bool = True
        if self.spec.callback_url.startswith("https://") and self.spec.callback_ca:
            ssl_ctx = ssl.create_default_context(cafile=self.spec.callback_ca)
        deadline = time.monotonic() + self.spec.ready_deadline_s
        delay = 0.05
        headers = {"Authorization": f"Bearer {self.spec.callback_token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            while True:
                try:
                    async with http.post(
                        self.spec.callback_url + READY_SUFFIX,
                        json=report.to_json(),
                        headers=headers,
                        ssl=ssl_ctx,
                    ) as resp:
                        if resp.status < 300:
                            return True
                        text = await resp.text()
                        if resp.status in (401, 403, 404, 409, 410):
                            log.error("control plane refused the ready report: %s %s", resp.status, text)
                            return False
                        log.warning("ready report answered %s %s; retrying", resp.status, text)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    log.warning("ready report failed (%s); retrying", exc)
                if time.monotonic() + delay > deadline:
                    raise TimeoutError("the control plane did not accept the ready report in time")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


def _error(status: int, code: str, message: str) -> web.HTTPException:
    body = json.dumps({"error": {"code": code, "message": message}})
    cls = {401: web.HTTPUnauthorized, 403: web.HTTPForbidden}[status]
    return cls(text=body, content_type="application/json")


def _max_rss_kib() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


async def serve(spec: RenderSpec) -> int:
    server = RenderServer(spec)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stopping.set)

    handshake_sock = bind_in_range(spec.bind_host)
    inspector_sock = bind_in_range(spec.bind_host)
    runners = []
    for app, sock in ((server.handshake_app(), handshake_sock), (server.inspector_app(), inspector_sock)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
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
    code = 0
    try:
        reporting = asyncio.create_task(server.report_ready(report))
        stopping = asyncio.create_task(server.stopping.wait())
        await asyncio.wait({reporting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if reporting.done():
            if reporting.exception() is not None:
                log.error("%s", reporting.exception())
                code = EXIT_NO_CONTROL_PLANE
            elif not reporting.result():
                code = EXIT_REJECTED
            else:
                log.info("ready; models to preload: %s", list(spec.models))
                await stopping
        else:
            reporting.cancel()
        stopping.cancel()
    finally:
        for runner in runners:
            await runner.cleanup()
    log.info("render server for session %s exits with %d", spec.session_id, code)
    return code


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
        return asyncio.run(serve(spec))
    return 0
