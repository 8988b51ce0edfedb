"""``openrr connect``: connect to a session's render server over WebRTC, receive video and report on it.

The command looks the session up through the REST API (it must be Ready), offers a WebRTC connection to
``hostname:handshakePort`` (plain HTTP signalling, see ``protocol.handshake``), syncs clocks with pings,
receives ``--frames`` video frames and prints what it measured: fps, resolution, codec, time to the first
frame, glass-to-glass latency, data-channel round trip and, with ``--orbit``, input → frame latency.

``--load MODEL`` (repeatable) loads models after connecting (a path inside the server's model roots or
an http(s) URL), showing their progress on stderr, before the frames are counted; the camera frames the
first one. They stay loaded until this client leaves.

``--orbit DEG`` is off by default so that connecting only looks and leaves the session's camera where it
is. With it, the camera orbits DEG degrees per second in ten ``camera.orbit`` steps a second, each with a
``poseId``, and every step's time to the first frame showing it is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from openrr.cli.connection import connection_options, resolve_options
from openrr.cli.output import console, fail, print_json
from openrr.client.rest import ApiError, ArrClient
from openrr.extras import MissingExtra, needs

if TYPE_CHECKING:
    from openrr.cli.connection import Connection
    from openrr.client.connection import RenderConnection
    from openrr.client.signalling import Codec, VideoSettings

Report = tuple[dict[str, Any], Any]  # the report, and the last picture as an RGB array (or None)

_ORBIT_STEP_S = 0.1
_PING_INTERVAL_S = 0.5
_JOIN_GRACE_S = 0.5  # how long the last frames' data-channel messages may trail their video
_JOIN_POLL_S = 0.02
_HINTS = {
    "ClientAlreadyConnected": "another client is connected to this session (one client at a time, as in ARR)",
    "Unauthorized": "the render server did not accept the connect token",
    "NotReady": "the render server is not ready yet",
    "Stopping": "the render server is stopping",
}


@click.command()
@connection_options
@click.argument("session_id")
@click.option(
    "--frames",
    "frame_count",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Video frames to receive.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    help="Seconds allowed to connect, and to wait for each next frame.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--snapshot",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Save the last frame received as a PNG file.",
)
@click.option("--width", type=click.IntRange(min=16), help="Video width to ask for.")
@click.option("--height", type=click.IntRange(min=16), help="Video height to ask for.")
@click.option("--fps", type=click.IntRange(min=1), help="Frame rate to ask for.")
@click.option("--bitrate", type=click.IntRange(min=1), help="Video bitrate to ask for, in bit/s.")
@click.option("--codec", type=click.Choice(["h264", "vp8"], case_sensitive=False), help="Video codec.")
@click.option(
    "--orbit",
    type=float,
    default=0.0,
    show_default=True,
    metavar="DEG",
    help="Orbit the camera DEG degrees per second while receiving, to measure input → frame latency "
    "(0: leave the camera alone).",
)
@click.option(
    "--load",
    "models",
    multiple=True,
    metavar="MODEL",
    help="Load this model after connecting (repeatable): a path in the server's model roots or a URL.",
)
def connect(
    session_id: str,
    frame_count: int,
    timeout: float,
    as_json: bool,
    snapshot: Path | None,
    width: int | None,
    height: int | None,
    fps: int | None,
    bitrate: int | None,
    codec: str | None,
    orbit: float,
    models: tuple[str, ...],
    **opts: Any,
) -> None:
    """Connect to a Ready session's render server over WebRTC, receive video and report on it."""
    # The WebRTC stack (aiortc, PyAV) is imported here, not at module level, so other commands and
    # `openrr --help` start without loading it, and a machine without it gets a one-line error.
    try:
        with needs("render", "openrr connect"):
            from openrr.client.signalling import VideoSettings
    except MissingExtra as exc:
        fail(exc.message)

    video = VideoSettings(
        width=width,
        height=height,
        fps=fps,
        bitrate=bitrate,
        codec=cast("Codec", codec.lower()) if codec else None,
    )
    report, image = _run_or_fail(
        resolve_options(opts),
        lambda client: _run(client, session_id, video, frame_count, timeout, orbit, models, as_json),
        timeout,
    )
    if snapshot is not None:
        _save_snapshot(image, snapshot)
        report["snapshot"] = str(snapshot)
    if as_json:
        print_json(report)
    else:
        _print_report(report)


def _run_or_fail(
    conn: Connection, run: Callable[[ArrClient], Coroutine[Any, Any, Report]], timeout: float
) -> Report:
    """``run`` with a client of the service; each way it can fail ends the command with its message
    (exit 1)."""
    from openrr.client.errors import RenderConnectError, RenderRequestError, SessionNotReadyError

    try:
        with conn.client() as client:
            return asyncio.run(run(client))
    except ApiError as exc:
        fail(f"{exc.code}: {exc.message}" if exc.status else exc.message)
    except SessionNotReadyError as exc:
        fail(exc.message)
    except RenderConnectError as exc:
        hint = _HINTS.get(exc.code)
        fail(f"{hint}: {exc}" if hint else str(exc))
    except RenderRequestError as exc:
        fail(f"the render server refused a request: {exc}")
    except KeyboardInterrupt:
        fail("interrupted")
    except TimeoutError as exc:
        fail(str(exc) or f"timed out after {timeout:g} s")


def _save_snapshot(image: Any, snapshot: Path) -> None:
    if image is None:
        fail("no frame to save")
    from PIL import Image

    try:
        Image.fromarray(image).save(snapshot, format="PNG")
    except OSError as exc:
        fail(f"cannot write {snapshot}: {exc}")


async def _run(
    client: ArrClient,
    session_id: str,
    video: VideoSettings,
    frame_count: int,
    timeout: float,
    orbit: float,
    models: tuple[str, ...] = (),
    quiet: bool = False,
) -> Report:
    """Connect, load ``models``, receive ``frame_count`` frames (orbiting and pinging meanwhile) and
    return the report and the last picture."""
    from openrr.client.session import connect_session

    rc = await connect_session(client, session_id, video=video, timeout=timeout)
    background: list[asyncio.Task[None]] = []
    loaded: list[dict[str, Any]] = []
    try:
        for model in models:
            loaded.append(await _load(rc, model, quiet))
        await rc.sync_clock(5)
        try:
            await rc.wait_frames(1, timeout)
        except TimeoutError:
            raise TimeoutError(f"no video frame arrived within {timeout:g} s of connecting") from None
        window = rc.first_frame_at
        background.append(asyncio.create_task(_keep_pinging(rc)))
        if orbit:
            background.append(asyncio.create_task(_orbit(rc, orbit)))
        await _receive(rc, frame_count, timeout)
        await _stop(background)
        await _let_last_messages_join(rc, window)
        server = await _server_stats(rc)
        measured = await rc.measure(window)
        image = rc.latest_image()
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await rc.close()
    report: dict[str, Any] = {
        "sessionId": session_id,
        "host": rc.host,
        "port": rc.port,
        **measured.to_json(),
        "video": rc.answer_video,
        "orbitDegreesPerSecond": orbit or None,
        "loaded": [{k: m[k] for k in ("modelId", "nodes", "polygons") if k in m} for m in loaded],
        "server": _server_summary(server),
    }
    return report, image


async def _receive(rc: RenderConnection, frame_count: int, timeout: float) -> None:
    """Until ``frame_count`` frames in all have arrived; TimeoutError when none comes for ``timeout``."""
    while rc.frames_received < frame_count:
        try:
            await rc.wait_frames(rc.frames_received + 1, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"the video stalled: no frame for {timeout:g} s "
                f"({rc.frames_received} of {frame_count} received)"
            ) from None


async def _stop(background: list[asyncio.Task[None]]) -> None:
    """Cancel the background tasks; the first one that had failed raises its error here."""
    for task in background:
        task.cancel()
    results = await asyncio.gather(*background, return_exceptions=True)
    background.clear()
    for result in results:
        if isinstance(result, Exception):
            raise result


async def _let_last_messages_join(rc: RenderConnection, window: float | None) -> None:
    """A frame's data-channel message can trail its video (they travel on different transports): give
    the last ones up to ``_JOIN_GRACE_S`` to arrive. This polls, since the connection signals no event
    when a ``frame`` message comes; the loop is bounded by the deadline and by its count alike."""
    deadline = time.monotonic() + _JOIN_GRACE_S
    for _ in range(math.ceil(_JOIN_GRACE_S / _JOIN_POLL_S)):
        if len(rc.log.matched(window)) >= len(rc.log.arrivals(window)) or time.monotonic() >= deadline:
            return
        await asyncio.sleep(_JOIN_POLL_S)


async def _server_stats(rc: RenderConnection) -> dict[str, Any] | None:
    """The server's own ``stats``, or None: the report stands without the server's view."""
    from openrr.client.errors import RenderRequestError

    try:
        return await rc.stats()
    except (RenderRequestError, TimeoutError):
        return None


async def _load(rc: RenderConnection, model: str, quiet: bool) -> dict[str, Any]:
    from rich.console import Console

    from openrr.model.sources import display_name

    err = Console(stderr=True)

    shown = display_name(model)  # no SAS token on the screen

    def progress(message: dict[str, Any]) -> None:
        if not quiet:
            fraction = message.get("fraction", 0)
            err.print(f"loading {shown}: {fraction:.0%} {message.get('message', '')}", markup=False)

    loaded = await rc.load_model(model, on_progress=progress)
    if not quiet:
        counts = f"{loaded.get('nodes')} nodes, {loaded.get('polygons')} polygons"
        err.print(f"loaded {shown}: {counts}", markup=False)
    return loaded


async def _keep_pinging(rc: RenderConnection) -> None:
    """Round trips during reception: RTT under load, and more samples for the clock offset."""
    while True:
        await asyncio.sleep(_PING_INTERVAL_S)
        await rc.ping()


async def _orbit(rc: RenderConnection, degrees_per_second: float) -> None:
    step = degrees_per_second * _ORBIT_STEP_S
    next_at = time.monotonic()
    while True:
        await rc.orbit(step)
        next_at += _ORBIT_STEP_S
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def _server_summary(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    keys = (
        "fps",
        "frameMs",
        "renderMs",
        "encodeMs",
        "bitrate",
        "encoder",
        "polygons",
        "cpuPercent",
        "rssMiB",
    )
    return {k: stats[k] for k in keys if k in stats}


def _fmt_ms(p: dict[str, float] | None) -> str:
    if p is None:
        return "-"
    return f"p50 {p['p50']:.1f} · p90 {p['p90']:.1f} · p99 {p['p99']:.1f} ms"


def _print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"session {report['sessionId']} ({report['host']}:{report['port']})")
    table.add_column("measure")
    table.add_column("value")

    def row(name: str, value: Any) -> None:
        table.add_row(name, "-" if value is None else str(value))

    row("frames", report["frames"])
    row("fps", report["fps"])
    row("resolution", f"{report['width']}x{report['height']}")
    row("codec", report["codec"])
    row("first frame", None if report["firstFrameSeconds"] is None else f"{report['firstFrameSeconds']} s")
    row("glass-to-glass latency", _fmt_ms(report["latencyMs"]))
    row("input → frame latency", _fmt_ms(report["inputLatencyMs"]))
    row("data-channel round trip", _fmt_ms(report["rttMs"]))
    row("clock offset", None if report["clockOffsetMs"] is None else f"{report['clockOffsetMs']} ms")
    row("video bytes", report["videoBytes"])
    row("bytes received", report["bytesReceived"])
    row("packets lost", report["packetsLost"])
    with contextlib.suppress(KeyError):
        row("snapshot", report["snapshot"])
    server = report.get("server") or {}
    for key, value in server.items():
        row(f"server {key}", value)
    console.print(table)
