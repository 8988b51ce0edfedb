"""The render server process: binds its ports, calls the control plane back, serves until told to stop.

``python -m openrr.render`` (``__main__.py``) runs :func:`main`; this module holds the process's life from
the spec in its environment to its exit code, and leaves what a session's server does to ``server.py``.

Ports: the handshake port (client handshake, health) and the inspector port (live stats) are picked at
random in ARR's range 49152–65534 and bound here, so the ports reported are the ports really held.

Start: the GL context is created and the spec's models are loaded *before* the ready report, so a Ready
session shows its models from the first frame; a model that cannot be loaded is reported to the control
plane as ``ModelLoadFailed`` (the session goes to Error with the loader's message) and the process exits 5.
A TLS certificate or key that cannot be used is reported as ``RenderServerTlsFailed``: exit 8.

Pooled start (``POOL_ENV=1``, see ``protocol.handshake``): the spec is a template. The server warms up (GL
context, one frame of the empty scene so the shaders compile) while it already listens on stdin for its
session's spec, one JSON line. End of input before that line: exit 0, nobody needs it. A line that is
not a ``RenderSpec`` or does not fit the template: exit 2. Otherwise the server takes that spec and goes on
as a normal start does from the model preload on. Only then does stdin stop mattering: an assigned server
outlives its control plane like any other.

Lifecycle: SIGTERM or SIGINT → the client gets a ``bye`` and the connection closes; graceful exit 0.
If the control plane answers the ready callback with 404/409/410 the session is gone or served by
another instance: exit 3 without serving. If no answer comes before the ready deadline: exit 4. Once
ready, the lease (``lease.py``) may stop the server: exit 6 at the lease end, 7 when the control plane has
not answered for longer than the grace, 3 when a heartbeat is answered 404/409/410.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import ssl
import sys
import time
from typing import TextIO

from aiohttp import web

from openrr import log_redaction
from openrr.memory import OUT_OF_MEMORY
from openrr.protocol.handshake import EXIT_REJECTED, POOL_ENV, PORT_RANGE, SPEC_ENV, ReadyReport, RenderSpec
from openrr.render.http import http_runner
from openrr.render.logbuffer import install_log_buffer
from openrr.render.server import AssignmentRejected, RenderServer

log = logging.getLogger("openrr.render")

EXIT_BAD_ASSIGNMENT = 2
EXIT_NO_CONTROL_PLANE = 4
EXIT_MODEL_FAILED = 5
EXIT_TLS_FAILED = 8  # after 6 and 7, the self-stops of openrr.protocol.handshake
# A session spec is a few KiB; its model list (URLs with SAS tokens) is what can make it long.
MAX_ASSIGNMENT_BYTES = 16 * 2**20


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


def serving_tls(spec: RenderSpec) -> ssl.SSLContext | None:
    """The server-side TLS context of the handshake and inspector ports, or None for plain HTTP."""
    settings = spec.settings
    if not settings.tls_cert or not settings.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


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


async def _first(task: asyncio.Task[object], stopping: asyncio.Task[object]) -> bool:
    """Wait for ``task`` or a stop: True when ``task`` is done; otherwise it is cancelled."""
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return True
    task.cancel()
    return False


async def _serve(server: RenderServer, *, warmed: bool = False) -> int:
    """From the models' preload to the exit code: prepare, listen, report ready, serve until stopped."""
    spec = server.spec
    stopping = asyncio.create_task(server.stopping.wait())
    try:
        code = await _prepare(server, stopping, warmed=warmed)
        if code is not None:
            return code
        try:
            tls = serving_tls(spec)
        except (OSError, ssl.SSLError) as exc:
            return await _tls_failed(server, exc)
        runners: list[web.AppRunner] = []
        try:
            report = await _listen(server, tls, runners)
            code = await _report_ready(server, report, stopping)
            if code is not None:
                return code
            return await _serve_until_stopped(server, stopping)
        finally:
            await server.shutdown()  # the client first: its connection still needs the event loop
            for runner in runners:
                await runner.cleanup()
    finally:
        stopping.cancel()


async def _prepare(server: RenderServer, stopping: asyncio.Task[object], *, warmed: bool) -> int | None:
    """The GL context (unless ``warmed``) and the spec's models. None: go on; otherwise the exit code."""
    preparing = asyncio.create_task(server.preload() if warmed else server.prepare())
    if not await _first(preparing, stopping):
        return 0
    failure = preparing.result()
    if failure is None:
        return None
    log.error("cannot serve the session: %s", failure.message)
    try:
        code = OUT_OF_MEMORY if failure.code == OUT_OF_MEMORY else "ModelLoadFailed"
        await server.report_failed(code, failure.message)
    except TimeoutError as exc:
        log.error("%s", exc)
    return EXIT_MODEL_FAILED


async def _tls_failed(server: RenderServer, exc: Exception) -> int:
    message = f"the render server cannot use its TLS certificate and key: {exc}"
    log.error("cannot serve the session: %s", message)
    with contextlib.suppress(TimeoutError):
        await server.report_failed("RenderServerTlsFailed", message)
    return EXIT_TLS_FAILED


async def _listen(
    server: RenderServer, tls: ssl.SSLContext | None, runners: list[web.AppRunner]
) -> ReadyReport:
    """Bind both ports and serve both apps on them (each runner started is added to ``runners``, for the
    caller to clean up); the ready report that names the ports."""
    spec = server.spec
    handshake_sock = bind_in_range(spec.bind_host)
    inspector_sock = bind_in_range(spec.bind_host)
    for app, sock in ((server.handshake_app(), handshake_sock), (server.inspector_app(), inspector_sock)):
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
    return report


async def _report_ready(
    server: RenderServer, report: ReadyReport, stopping: asyncio.Task[object]
) -> int | None:
    """Tell the control plane the ports. None: accepted, serve; otherwise the exit code."""
    reporting = asyncio.create_task(server.report_ready(report))
    if not await _first(reporting, stopping):
        return 0
    if reporting.exception() is not None:
        log.error("%s", reporting.exception())
        return EXIT_NO_CONTROL_PLANE
    if not reporting.result():
        return EXIT_REJECTED
    return None


async def _serve_until_stopped(server: RenderServer, stopping: asyncio.Task[object]) -> int:
    """Ready: the idle clock runs and the lease is kept until the server is told (or tells itself) to stop."""
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
