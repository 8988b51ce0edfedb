"""The inspector: its log ring buffer, its trace recorder, and its endpoints on a real render server."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from openrr.client.connection import connect
from openrr.protocol import datachannel as protocol
from openrr.render.frame import Frame
from openrr.render.inspector import plotly_js_path
from openrr.render.logbuffer import LogBuffer, install_log_buffer
from openrr.render.tracing import ENCODE_TID, LOOP_TID, RENDER_TID, Tracer
from openrr.render.track import SentFrame
from tests.render import fixtures
from tests.render.live import LiveServer, live_server

# ---- the log ring buffer ---------------------------------------------------------------------------------


@pytest.fixture
def buffered() -> Iterator[tuple[logging.Logger, LogBuffer]]:
    logger = logging.getLogger("openrr.test.inspector")
    buffer = LogBuffer(capacity=5)
    logger.addHandler(buffer)
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, buffer
    finally:
        logger.removeHandler(buffer)
        logger.setLevel(logging.NOTSET)


def test_the_log_buffer_keeps_the_newest_records(buffered: tuple[logging.Logger, LogBuffer]) -> None:
    logger, buffer = buffered
    for i in range(8):
        logger.info("line %d", i)
    lines = buffer.lines()
    assert [line.message for line in lines] == [f"line {i}" for i in range(3, 8)]
    assert [line.seq for line in lines] == list(range(4, 9))
    assert lines[-1].level == "INFO"
    assert lines[-1].logger == "openrr.test.inspector"
    assert abs(lines[-1].time - time.time()) < 5
    assert [line.message for line in buffer.lines(limit=2)] == ["line 6", "line 7"]
    assert buffer.counts["INFO"] == 8


def test_the_log_buffer_filters_by_level_and_keeps_tracebacks(
    buffered: tuple[logging.Logger, LogBuffer],
) -> None:
    logger, buffer = buffered
    logger.debug("debug")
    logger.warning("careful")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it failed")
    logger.info("x" * 20_000)
    assert [line.level for line in buffer.lines(logging.WARNING)] == ["WARNING", "ERROR"]
    assert [line.level for line in buffer.lines(logging.ERROR)] == ["ERROR"]
    failed = buffer.lines(logging.ERROR)[0].message
    assert failed.startswith("it failed\nTraceback")
    assert "ValueError: boom" in failed
    assert len(buffer.lines()[-1].message) < 9000  # long messages are cut
    assert buffer.lines(logging.DEBUG)[0].to_json().keys() == {"seq", "time", "level", "logger", "message"}


def test_install_log_buffer_attaches_once() -> None:
    logger = logging.getLogger("openrr.test.install")
    buffer = LogBuffer()
    try:
        assert install_log_buffer(logger, buffer) is buffer
        install_log_buffer(logger, buffer)
        assert logger.handlers.count(buffer) == 1
    finally:
        logger.removeHandler(buffer)


# ---- the trace recorder ----------------------------------------------------------------------------------


def _frame(frame_id: int, started: float, render_ms: float = 4.0) -> Frame:
    return Frame(np.zeros((0, 0, 3), dtype=np.uint8), frame_id, 7, started, render_ms, 1292)


def _sent(frame_id: int, captured_at: float, *, keyframe: bool = False) -> SentFrame:
    return SentFrame(frame_id, frame_id * 3000, keyframe, 1500, 6.0, captured_at)


def _check_chrome_trace(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The shape chrome://tracing and Perfetto read (JSON object format); returns the non-metadata events."""
    doc = json.loads(json.dumps(doc))  # plain JSON all the way down
    events = doc["traceEvents"]
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event["name"], str)
        assert event["ph"] in ("X", "i", "M")
        assert isinstance(event["pid"], int)
        assert isinstance(event["tid"], int)
        if event["ph"] == "X":
            assert isinstance(event["ts"], int)
            assert isinstance(event["dur"], int)
            assert event["dur"] > 0
        if event["ph"] == "i":
            assert isinstance(event["ts"], int)
            assert event["s"] in ("t", "p", "g")
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert len(names) == 3
    return [e for e in events if e["ph"] != "M"]


async def test_the_tracer_records_render_and_encode_spans_in_microseconds() -> None:
    observed: list[tuple[float | None, float]] = []
    tracer = Tracer(capacity=100, on_frame=lambda r, e: observed.append((r, e)))
    loop_now = asyncio.get_running_loop().time()
    wall_now = time.time()
    tracer.frame(_sent(1, loop_now - 0.010, keyframe=True), _frame(1, wall_now - 0.020))
    tracer.frame(_sent(1, loop_now - 0.005), _frame(1, wall_now - 0.020))  # sent again unchanged
    tracer.frame(_sent(2, loop_now), None)  # its facts already gone from the pipeline
    events = _check_chrome_trace(tracer.chrome_trace("test"))
    renders = [e for e in events if e["cat"] == "render"]
    encodes = [e for e in events if e["cat"] == "encode"]
    assert len(renders) == 1
    assert len(encodes) == 3
    assert renders[0]["tid"] == RENDER_TID
    assert {e["tid"] for e in encodes} == {ENCODE_TID}
    assert renders[0]["ts"] == round((wall_now - 0.020) * 1e6)
    assert renders[0]["dur"] == 4000
    assert renders[0]["args"] == {"frameId": 1, "poseId": 7, "triangles": 1292}
    assert encodes[0]["name"] == "encode keyframe"
    assert encodes[0]["dur"] == 6000
    # encode spans move from the loop's clock to the wall clock
    assert abs(encodes[2]["ts"] - wall_now * 1e6) < 50_000
    assert (tracer.totals.frames_sent, tracer.totals.renders, tracer.totals.keyframes) == (3, 1, 1)
    assert tracer.totals.bytes_sent == 4500
    assert observed == [(4.0, 6.0), (None, 6.0), (None, 6.0)]


def test_the_tracer_records_commands_without_secrets_and_is_bounded() -> None:
    tracer = Tracer(capacity=10)
    tracer.command(protocol.parse('{"v": 1, "type": "camera.orbit", "yaw": 5, "id": 3, "poseId": 9}'))
    tracer.command(protocol.parse('{"v": 1, "type": "ping", "t": 1}'))
    tracer.command(protocol.parse('{"v": 1, "type": "stats.get"}'))
    url = "https://user:pw@example.org/car.glb?sig=SECRET"
    tracer.command(protocol.parse(json.dumps({"v": 1, "type": "model.load", "url": url})))
    tracer.instant("client connected", codec="h264")
    events = _check_chrome_trace(tracer.chrome_trace("test"))
    assert [e["name"] for e in events] == ["camera.orbit", "model.load", "client connected"]
    orbit = events[0]
    assert orbit["tid"] == LOOP_TID
    assert orbit["s"] == "t"
    assert orbit["args"] == {"yaw": 5.0, "pitch": 0.0, "poseId": 9, "id": 3}
    assert "SECRET" not in json.dumps(events)
    assert "pw" not in json.dumps(events[1])
    assert events[2]["s"] == "p"
    for i in range(30):
        tracer.instant(f"e{i}")
    assert len(tracer) == 10
    assert [e["name"] for e in _check_chrome_trace(tracer.chrome_trace("test"))][-1] == "e29"


# ---- the endpoints ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def inspector_of(live: LiveServer) -> AsyncIterator[str]:
    runner = web.AppRunner(live.server.inspector_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def inspected(tmp_path: Path) -> AsyncIterator[tuple[LiveServer, str, LogBuffer]]:
    fixtures.two_node_glb(tmp_path)
    logs = LogBuffer()
    logger = logging.getLogger("openrr")
    logger.addHandler(logs)
    logger.setLevel(logging.INFO)
    try:
        async with live_server(tmp_path, models=("two_nodes.glb",)) as live:
            live.server.inspector.logs = logs
            async with inspector_of(live) as url:
                yield live, url, logs
    finally:
        logger.removeHandler(logs)
        logger.setLevel(logging.NOTSET)


DATA_PATHS = ["/history", "/log", "/scene", "/trace", "/stats"]


async def test_data_endpoints_need_a_connect_token_of_the_session(
    inspected: tuple[LiveServer, str, LogBuffer],
) -> None:
    live, url, _ = inspected
    async with aiohttp.ClientSession() as http:
        for path in DATA_PATHS:
            async with http.get(url + path) as resp:
                assert resp.status == 401, path
                assert (await resp.json())["error"]["code"] == "Unauthorized"
            for other in (live.token(session="other-session"), live.account_token()):
                async with http.get(url + path, headers={"Authorization": f"Bearer {other}"}) as resp:
                    assert resp.status == 401, path
            async with http.get(url + path, headers={"Authorization": "Bearer not-a-jwt"}) as resp:
                assert resp.status == 401, path
            async with http.get(url + path, headers={"Authorization": f"Bearer {live.token()}"}) as resp:
                assert resp.status == 200, path


async def test_the_page_and_its_assets_are_served_without_a_token(
    inspected: tuple[LiveServer, str, LogBuffer],
) -> None:
    _, url, _ = inspected
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        async with http.get(url + "/") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
            page = await resp.text()
        assert 'src="assets/plotly.min.js"' in page
        assert 'src="assets/inspector.js"' in page
        for name, kind in [("inspector.js", "application/javascript"), ("inspector.css", "text/css")]:
            async with http.get(f"{url}/assets/{name}") as resp:
                assert (resp.status, resp.content_type) == (200, kind)
        for name in ["nothing.js", "..%2Fserver.py", "index.html"]:
            async with http.get(f"{url}/assets/{name}") as resp:
                assert resp.status == 404, name
        plotly = plotly_js_path()
        assert plotly is not None
        async with http.get(url + "/assets/plotly.min.js", headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await resp.read()) == plotly.read_bytes()
            etag = resp.headers["ETag"]
        async with http.get(url + "/assets/plotly.min.js", headers={"Accept-Encoding": "identity"}) as resp:
            assert "Content-Encoding" not in resp.headers
            assert len(await resp.read()) == plotly.stat().st_size
        async with http.get(url + "/assets/plotly.min.js", headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304


async def test_log_and_scene(inspected: tuple[LiveServer, str, LogBuffer]) -> None:
    live, url, _ = inspected
    logging.getLogger("openrr.render.test").warning("a warning for the inspector")
    logging.getLogger("openrr.render.test").info("an info line")
    headers = {"Authorization": f"Bearer {live.token()}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(url + "/log?level=warning&limit=50") as resp:
            body = await resp.json()
        assert body["level"] == "WARNING"
        assert body["limit"] == 50
        assert [line["message"] for line in body["lines"]] == ["a warning for the inspector"]
        async with http.get(url + "/log") as resp:
            messages = [line["message"] for line in (await resp.json())["lines"]]
        assert messages[-2:] == ["a warning for the inspector", "an info line"]
        async with http.get(url + "/log?limit=1") as resp:
            assert [line["message"] for line in (await resp.json())["lines"]] == ["an info line"]
        for query in ["level=LOUD", "limit=0", "limit=many", "limit=100000"]:
            async with http.get(url + "/log?" + query) as resp:
                assert resp.status == 400, query
                assert (await resp.json())["error"]["code"] == "BadRequest"

        async with http.get(url + "/scene") as resp:
            scene = await resp.json()
        names = {node["name"]: node for node in scene["nodes"]}
        assert {"Scene", "RedBox", "BlueSphere"} <= names.keys()
        assert names["RedBox"]["parent"] == names["Scene"]["id"]
        assert names["RedBox"]["mesh"] is True
        assert [m["modelId"] for m in scene["models"]] == ["two_nodes.glb"]
        assert scene["models"][0]["rootNodes"] == [names["Scene"]["id"]]
        assert scene["polygons"] == 1292
        assert scene["nodeCount"] == 3
        assert not scene["truncated"]
        async with http.get(url + "/scene") as resp:
            assert (await resp.json())["revision"] == scene["revision"]
        async with http.get(url + "/history?since=abc") as resp:
            assert resp.status == 400


def _metrics(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(families: dict[str, Any], name: str, **labels: str) -> float:
    for family in families.values():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise KeyError(name)


async def test_frames_flow_into_history_trace_and_metrics(
    inspected: tuple[LiveServer, str, LogBuffer],
) -> None:
    live, url, _ = inspected
    headers = {"Authorization": f"Bearer {live.token()}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/metrics") as resp:  # no token: numbers only
            assert resp.status == 200
            before = _metrics(await resp.text())
        assert _value(before, "openrr_render_frames_sent_total") == 0

        async with await connect("127.0.0.1", live.port, live.token()) as conn:
            await conn.wait_frames(3, timeout=10)
            for _ in range(4):
                await conn.orbit(10)
                await asyncio.sleep(0.2)
            await conn.wait_frames(conn.frames_received + 5, timeout=10)
            await asyncio.sleep(1.6)  # at least one sample with the client on
            async with http.get(url + "/history", headers=headers) as resp:
                history = await resp.json()
            async with http.get(url + "/metrics") as resp:
                text = await resp.text()
        await asyncio.sleep(0.3)  # the disconnect
        async with http.get(url + "/trace", headers=headers) as resp:
            assert resp.status == 200
            disposition = resp.headers["Content-Disposition"]
            trace = json.loads(await resp.read())

    samples = history["samples"]
    assert len(samples) >= 2
    assert all(b["t"] > a["t"] for a, b in itertools.pairwise(samples))
    live_samples = [s for s in samples if s["clientConnected"] and s["fps"] > 0]
    assert live_samples, samples
    last = live_samples[-1]
    assert last["frameMs"] > 0
    assert last["encodeMs"] > 0
    assert last["bitrate"] > 0
    assert last["polygons"] == 1292
    assert last["rssMiB"] > 10
    assert last["cpuPercent"] >= 0
    status = history["status"]
    assert status["sessionId"] == "live-session"
    assert status["clientConnected"] is True
    assert status["framesSent"] > 0
    assert status["codec"] in ("h264", "vp8")

    families = _metrics(text)
    assert _value(families, "openrr_render_frames_sent_total") > 5
    assert _value(families, "openrr_render_video_sent_bytes_total") > 0
    assert "client_connected" not in text
    assert "clients_served" not in text
    assert _value(families, "openrr_render_polygons") == 1292
    assert _value(families, "openrr_render_frame_encode_seconds_count") > 5
    assert _value(families, "openrr_render_frame_render_seconds_count") >= 1
    assert _value(families, "openrr_render_log_records_total", level="info") > 0
    assert _value(families, "process_resident_memory_bytes") > 0
    assert "live-session" not in text
    assert "two_nodes" not in text

    assert disposition.startswith('attachment; filename="openrr-trace-live-session-')
    events = _check_chrome_trace(trace)
    names = [e["name"] for e in events]
    assert names.count("camera.orbit") == 4
    assert "client connected" in names
    assert "client disconnected" in names
    renders = [e for e in events if e["cat"] == "render"]
    encodes = [e for e in events if e["cat"] == "encode"]
    assert len(renders) >= 4
    assert len(encodes) >= 8
    assert all(e["pid"] == os.getpid() for e in events)
    # spans of one thread do not overlap (a trace viewer would nest them otherwise)
    for spans in (renders, encodes):
        ordered = sorted(spans, key=lambda e: e["ts"])
        assert all(a["ts"] + a["dur"] <= b["ts"] + 1000 for a, b in itertools.pairwise(ordered))
    # and they are on the wall clock, now
    assert abs(encodes[-1]["ts"] / 1e6 - time.time()) < 30
