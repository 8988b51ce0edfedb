"""Streaming through the real product: fps, glass-to-glass and input → frame latency, first frame, CPU.

A real `openrr serve` (HTTPS, loopback) starts one real render server per session; the client is
`openrr.client` in this process, receiving and decoding the H.264 stream at 1280x720. Per model a
v1 session preloads the GLB, and then, on one connection:

* static window (8 s): the camera stays put; after a short settle the server sends its unchanged
  picture five times a second, so the decoded fps and CPU show what a still session costs;
* moving window (10 s): `camera.orbit` steps of 1° with pose ids are sent 30 times a second (fired
  without waiting for each ack, so the cadence holds under load), so every frame must be rendered anew.
  Decoded fps, new pictures per second, glass-to-glass and input → frame latency, and the CPU time of the
  render server and of this client process (user + system, psutil) are measured over the window;
* stop: the orbit stops; time to full detail is from the last pose sent to the first decoded frame that
  draws all the scene's triangles (``triangles`` of its ``frame`` message): while the camera moves, a
  big model is drawn at a coarser level of detail that fits the server's frame budget
  (``--frame-budget-ms``; levels of a raw GLB are built in the background after its load), and once
  the camera stops the server renders full detail by itself;
* first frame (10 connections): connect, wait for the first decoded frame, close; the next connection
  retries while the server still answers ClientAlreadyConnected/NotReady after the previous one left.

Latencies use the client library's own helpers (``glass_to_glass_ms``, ``input_latencies_ms``,
``percentiles`` — what ``RenderConnection.measure()`` computes) over the exact window: poses sent in the
window, answered by frames up to 1 s after it (``measure()`` has no end bound, so poses sent just before
it is called would be cut off). ``measure()``'s own report over the window is stored alongside.

The receiver decodes H.264 on the same 2 cores as the render server: the numbers are lower bounds for a
server streaming to a client on another machine.

Models (generated with trimesh, PBR material, smooth normals):
  medium.glb: icosphere(subdivisions=6, r=1) + icosphere(subdivisions=5, r=0.5) = 81,920 + 20,480
              = 102,400 triangles;
  large.glb:  icosphere(subdivisions=8, r=1) = 1,310,720 triangles.

  features:   medium.glb with the scene API's costliest state on (issue 14): 8 cut planes (on entities
              of their own, each cutting a cap off the big sphere), the big sphere selected (outline)
              and the small one see-through, set through ``conn.scene`` before the windows.

Goals (2 cores, no GPU, 1280x720): moving-camera fps ≥ 30 (~100k, with or without the features) and
≥ 25 (~1.3M); glass-to-glass p50 ≤ 45 ms; input → frame ≤ 70 ms; full detail ≤ 300 ms after the camera
stops; connect → first frame ≤ 0.3 s.

    .venv/bin/python -m bench.render_stream [--runs 2] [--models medium,large,features]
        [--frame-budget-ms MS] (1000: full detail always, the comparison without a budget)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psutil
import trimesh

from bench.common import Server, openrr_server, percentile, write_result
from openrr.client.connection import RenderConnection
from openrr.client.errors import RenderConnectError
from openrr.client.measurements import (
    Matched,
    best_clock_sample,
    fps,
    glass_to_glass_ms,
    input_latencies_ms,
    percentiles,
)
from openrr.client.rest import ArrClient
from openrr.client.session import connect_session

V = {"api-version": "2021-01-01"}
WIDTH, HEIGHT = 1280, 720
STATIC_S = 8.0
MOVING_S = 10.0
WARMUP_S = 1.5
ANSWER_GRACE_S = 1.0  # after the moving window: poses sent in it may still be answered
STOP_WAIT_S = 3.0  # after the last pose: how long to wait for the full-detail frame
FULL_DETAIL_GOAL_MS = 300.0
ORBIT_HZ = 30.0
ORBIT_STEP_DEG = 1.0
PING_INTERVAL_S = 0.5
CONNECTIONS = 10
GOALS = {
    "medium": {"movingFps": 30.0},
    "features": {"movingFps": 30.0},
    "large": {"movingFps": 25.0},
    "latencyP50Ms": 45.0,
    "inputLatencyMs": 70.0,
    "fullDetailAfterStopMs": FULL_DETAIL_GOAL_MS,
    "firstFrameS": 0.3,
}


# ---- models -----------------------------------------------------------------------------------------------
def _sphere(subdivisions: int, radius: float, rgba: tuple[int, int, int, int]) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    mesh.vertex_normals = mesh.vertices / radius  # exact; set normals are exported as NORMAL
    material = trimesh.visual.material.PBRMaterial(
        name=f"M{subdivisions}", baseColorFactor=rgba, metallicFactor=0.0, roughnessFactor=0.6
    )
    mesh.visual = trimesh.visual.TextureVisuals(material=material)
    return cast(trimesh.Trimesh, mesh)  # icosphere is unannotated


def write_models(root: Path) -> dict[str, int]:
    """medium.glb and large.glb in ``root``; returns their triangle counts."""
    counts: dict[str, int] = {}
    medium = trimesh.Scene()
    big = _sphere(6, 1.0, (200, 80, 40, 255))
    small = _sphere(5, 0.5, (40, 120, 220, 255))
    medium.add_geometry(big, node_name="Big", geom_name="BigMesh")
    medium.add_geometry(
        small,
        node_name="Small",
        geom_name="SmallMesh",
        transform=trimesh.transformations.translation_matrix([1.6, 0.0, 0.0]),
    )
    (root / "medium.glb").write_bytes(medium.export(file_type="glb"))
    counts["medium"] = len(big.faces) + len(small.faces)
    large = trimesh.Scene()
    sphere = _sphere(8, 1.0, (180, 180, 190, 255))
    large.add_geometry(sphere, node_name="Sphere", geom_name="SphereMesh")
    (root / "large.glb").write_bytes(large.export(file_type="glb"))
    counts["large"] = len(sphere.faces)
    counts["features"] = counts["medium"]
    return counts


MODEL_FILES = {"medium": "medium.glb", "large": "large.glb", "features": "medium.glb"}
CUT_NORMALS = [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1), (1, 1, 1), (-1, -1, 1)]


async def apply_scene_features(rc: RenderConnection) -> None:
    """8 cut planes each cutting a cap off the big sphere, the big sphere selected, the small one
    see-through: what the issue's goal measures the stream with."""
    scene = rc.scene
    entities = {e.name: e for e in await scene.entities()}
    await scene.set_outline(color=(1.0, 0.8, 0.0), pulse_rate=0.0)
    for i, normal in enumerate(CUT_NORMALS):
        length = sum(c * c for c in normal) ** 0.5
        unit = tuple(c / length for c in normal)
        plane = await scene.create_entity(f"cut{i}", position=tuple(0.85 * c for c in unit))
        await plane.create_component(
            "CutPlane", normal=unit, fade_color=(0.1, 0.6, 1.0, 1.0), fade_length=0.05
        )
    await entities["Big"].set_state(selected=True)
    await entities["Small"].set_state(see_through=True)


# ---- sessions ---------------------------------------------------------------------------------------------
def create_session(server: Server, model: str, token: str) -> tuple[str, float]:
    """A v1 session preloading ``model``; returns its id and the seconds until it was Ready."""
    auth = {"Authorization": f"Bearer {token}"}
    with server.client() as c:
        start = time.perf_counter()
        resp = c.post(
            f"/v1/accounts/{server.account_id}/sessions/create",
            json={"maxLeaseTime": "0:30:0", "models": [model], "size": "standard"},
            headers=auth,
        )
        if resp.status_code != 202:
            raise RuntimeError(f"create: {resp.status_code} {resp.text}")
        session_id = str(resp.json()["sessionId"])
        deadline = time.monotonic() + 120
        while True:
            body = c.get(
                f"/accounts/{server.account_id}/sessions/{session_id}", params=V, headers=auth
            ).json()
            if body["status"] == "Ready":
                return session_id, time.perf_counter() - start
            if body["status"] != "Starting" or time.monotonic() > deadline:
                raise RuntimeError(f"session {session_id} is {body['status']}: {body.get('error')}")
            time.sleep(0.05)


def stop_session(server: Server, session_id: str, token: str, proc: psutil.Process | None) -> None:
    with server.client() as c:
        c.post(
            f"/accounts/{server.account_id}/sessions/{session_id}/:stop",
            params=V,
            headers={"Authorization": f"Bearer {token}"},
        ).raise_for_status()
    if proc is not None:  # the next session must not share the cores with this one's exit
        with contextlib.suppress(psutil.Error):
            proc.wait(15)


def render_process(server: Server, session_id: str) -> psutil.Process:
    """The session's render server process (from the store's host handle, create time checked)."""
    with contextlib.closing(sqlite3.connect(server.data_dir / "openrr.db")) as db:
        row = db.execute("SELECT host_handle FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None or row[0] is None:
        raise RuntimeError(f"session {session_id} has no host handle")
    handle = json.loads(row[0])
    proc = psutil.Process(int(handle["pid"]))
    if abs(proc.create_time() - float(handle["createTime"])) > 0.5:
        raise RuntimeError(f"pid {handle['pid']} is not the render server of {session_id}")
    return proc


# ---- measuring --------------------------------------------------------------------------------------------
@dataclass
class CpuMark:
    at: float
    render: float
    client: float
    control: float
    busy: float
    total: float


def cpu_mark(render: psutil.Process, control: psutil.Process) -> CpuMark:
    def used(p: psutil.Process) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    system = psutil.cpu_times()
    total = float(sum(system))
    idle = float(system.idle + getattr(system, "iowait", 0.0))
    return CpuMark(time.monotonic(), used(render), used(psutil.Process()), used(control), total - idle, total)


def cpu_between(a: CpuMark, b: CpuMark) -> dict[str, float]:
    wall = b.at - a.at
    render, client, control = (
        (b.render - a.render) / wall,
        (b.client - a.client) / wall,
        (b.control - a.control) / wall,
    )
    busy = (b.busy - a.busy) / max(b.total - a.total, 1e-9)
    return {
        "renderServerCores": round(render, 3),
        "clientCores": round(client, 3),
        "controlPlaneCores": round(control, 3),
        "machineBusyFraction": round(busy, 3),
        # whatever else ran on the machine meanwhile (other users' processes): a noise indicator
        "otherCores": round(max(0.0, busy * (psutil.cpu_count() or 1) - render - client - control), 3),
    }


def _rounded(p: dict[str, float] | None) -> dict[str, float] | None:
    return None if p is None else {k: round(v, 1) for k, v in p.items()}


def _median(values: Iterable[float]) -> float | None:
    data = list(values)
    return round(statistics.median(data), 2) if data else None


def server_stats(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the server's pushed ``stats`` messages (one a second) over a window."""
    out: dict[str, Any] = {"messages": len(messages)}
    for key in ("fps", "renderMs", "encodeMs", "frameMs", "cpuPercent", "rssMiB", "bitrate"):
        values = [float(m[key]) for m in messages if isinstance(m.get(key), int | float)]
        out[key] = _median(values)
    if messages:
        last = messages[-1]
        for key in ("polygons", "polygonsDrawn", "encoder", "codec", "width", "height", "glRenderer"):
            out[key] = last.get(key)
    return out


def window_report(
    rc: RenderConnection, t0: float, t1: float, stats: list[dict[str, Any]], moving: bool
) -> dict[str, Any]:
    """What the library's helpers make of the frames and poses in [t0, t1]."""
    arrivals = [t for t in rc.log.arrivals(t0) if t <= t1]
    matched_all = rc.log.matched()
    in_window = [m for m in matched_all if t0 <= m.received_at <= t1]
    best = best_clock_sample(rc.clock_samples)
    offset = best.offset if best is not None else 0.0
    # Pictures rendered in the window, each at its first arrival (repeats are left out by frameId).
    latency = glass_to_glass_ms([m for m in matched_all if m.received_at <= t1], offset, t0)
    first_seen: dict[Any, float] = {}
    for m in matched_all:
        first_seen.setdefault(m.meta.get("frameId"), m.received_at)
    new_pictures = [t for t in first_seen.values() if t0 <= t <= t1]
    unique: dict[Any, Matched] = {m.meta.get("frameId"): m for m in in_window}
    out: dict[str, Any] = {
        "seconds": round(t1 - t0, 2),
        "framesDecoded": len(arrivals),
        "fpsDecoded": round(fps(arrivals) or 0.0, 2),
        "newPicturesPerSecond": round(len(new_pictures) / (t1 - t0), 2),
        "matchedFrames": len(in_window),
        "latencyMs": _rounded(percentiles(latency)),
        "latencySamples": len(latency),
        "frameRenderMsMedian": _median(
            float(m.meta["renderMs"])
            for m in unique.values()
            if isinstance(m.meta.get("renderMs"), int | float)
        ),
        "frameEncodeMsMedian": _median(
            float(m.meta["encodeMs"]) for m in in_window if isinstance(m.meta.get("encodeMs"), int | float)
        ),
        "server": server_stats(stats),
    }
    if moving:
        poses = [(p, t) for p, t in rc.poses if t0 <= t <= t1]
        inputs = input_latencies_ms(poses, matched_all)
        out |= {
            "posesSent": len(poses),
            "posesShown": len(inputs),
            "inputLatencyMs": _rounded(percentiles(inputs)),
        }
    return out


async def _keep_pinging(rc: RenderConnection) -> None:
    while True:
        await asyncio.sleep(PING_INTERVAL_S)
        await rc.ping()


async def _orbit(rc: RenderConnection, acks: list[asyncio.Task[dict[str, Any]]]) -> None:
    """``camera.orbit`` 30 times a second, each with a pose id, without waiting for the acks."""
    period = 1.0 / ORBIT_HZ
    next_at = time.monotonic()
    while True:
        acks.append(asyncio.create_task(rc.orbit(ORBIT_STEP_DEG)))
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def _sleep_checked(seconds: float, tasks: list[asyncio.Task[Any]]) -> None:
    """Sleep, but fail at once if a background task failed (a lost connection, a refused request)."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 0.1))
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]


def triangles_drawn(matched: list[Matched]) -> dict[str, Any]:
    """Triangles of the frames in ``matched`` (per ``frameId``): median, least and most."""
    counts = {m.meta.get("frameId"): m.meta.get("triangles") for m in matched}
    values = [int(v) for v in counts.values() if isinstance(v, int)]
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": int(statistics.median(values)), "min": min(values), "max": max(values)}


async def full_detail_after_stop(
    rc: RenderConnection, orbit: asyncio.Task[Any], polygons: int | None
) -> dict[str, Any]:
    """Stop the orbit; the time from the last pose sent to the first decoded frame drawing all
    ``polygons`` triangles (None when none came within ``STOP_WAIT_S``)."""
    orbit.cancel()
    await asyncio.gather(orbit, return_exceptions=True)
    last_pose = rc.poses[-1][1] if rc.poses else time.monotonic()
    deadline = time.monotonic() + STOP_WAIT_S
    found: Matched | None = None
    while found is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        found = next((m for m in rc.log.matched(last_pose) if m.meta.get("triangles") == polygons), None)
    after = rc.log.matched(last_pose)
    return {
        "fullDetailMs": None if found is None else round((found.received_at - last_pose) * 1000, 1),
        "polygons": polygons,
        "framesAfterStop": len({m.meta.get("frameId") for m in after}),
    }


async def stream_windows(
    arr: ArrClient, session_id: str, render: psutil.Process, control: psutil.Process, features: bool
) -> dict[str, Any]:
    rc = await connect_session(arr, session_id, timeout=20)
    background: list[asyncio.Task[Any]] = []
    acks: list[asyncio.Task[dict[str, Any]]] = []
    try:
        hello = rc.hello or {}
        await rc.sync_clock(5)
        if features:
            await apply_scene_features(rc)
        await rc.wait_frames(15, timeout=30)
        background.append(asyncio.create_task(_keep_pinging(rc)))

        # Static camera.
        n0, t0 = len(rc.stats_messages), time.monotonic()
        c0 = cpu_mark(render, control)
        await _sleep_checked(STATIC_S, background)
        c1, t1 = cpu_mark(render, control), time.monotonic()
        static = window_report(rc, t0, t1, list(rc.stats_messages)[n0:], moving=False)
        static["cpu"] = cpu_between(c0, c1)

        # Moving camera: warm up, then the window, then a grace period for the window's poses.
        background.append(asyncio.create_task(_orbit(rc, acks)))
        await _sleep_checked(WARMUP_S, background)
        n0, t0 = len(rc.stats_messages), time.monotonic()
        c0 = cpu_mark(render, control)
        await _sleep_checked(MOVING_S, background)
        c1, t1 = cpu_mark(render, control), time.monotonic()
        rss_mib = render.memory_info().rss / 2**20
        await _sleep_checked(ANSWER_GRACE_S, background)
        moving = window_report(rc, t0, t1, list(rc.stats_messages)[n0:], moving=True)
        moving["cpu"] = cpu_between(c0, c1)
        moving["renderServerRssMiB"] = round(rss_mib, 1)
        moving["libraryMeasure"] = (await rc.measure(since=t0)).to_json()  # no end bound: see doc
        moving["libraryMeasure"]["note"] = f"since the window start, {ANSWER_GRACE_S:g} s past its end"
        moving["trianglesDrawn"] = triangles_drawn([m for m in rc.log.matched(t0) if m.received_at <= t1])
        orbit = background.pop()
        moving["stop"] = await full_detail_after_stop(rc, orbit, moving["server"].get("polygons"))
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        results = await asyncio.gather(*acks, return_exceptions=True)
        await rc.close()
    failed = [r for r in results if isinstance(r, BaseException)]
    video = hello.get("video") or {}
    return {
        "video": {k: video.get(k) for k in ("width", "height", "fps", "bitrate", "codec")},
        "modelsInHello": [
            {"polygons": m.get("polygons"), "nodes": m.get("nodes")} for m in hello.get("models", [])
        ],
        "static": static,
        "moving": moving,
        "orbitAcksFailed": len(failed),
        "firstError": repr(failed[0]) if failed else None,
    }


async def first_frames(arr: ArrClient, session_id: str, count: int) -> dict[str, Any]:
    """Connect, first frame, close; ``count`` times. Refused attempts while the server is still busy with
    the previous client are retried (and counted)."""
    first: list[float] = []
    since_try: list[float] = []
    refused = 0
    for _ in range(count):
        tried = time.monotonic()
        while True:
            try:
                rc = await connect_session(arr, session_id, timeout=20)
                break
            except RenderConnectError as exc:
                if exc.code not in ("ClientAlreadyConnected", "NotReady") or time.monotonic() - tried > 30:
                    raise
                refused += 1
                await asyncio.sleep(0.02)
        try:
            await rc.wait_frames(1, timeout=20)
            assert rc.first_frame_at is not None
            assert rc.started_at is not None
            first.append(rc.first_frame_at - rc.started_at)
            since_try.append(rc.first_frame_at - tried)
        finally:
            await rc.close()
    return {
        "connections": len(first),
        "p50_s": round(percentile(first, 0.5), 3),
        "p95_s": round(percentile(first, 0.95), 3),
        "max_s": round(max(first), 3),
        "refusedAttempts": refused,
        "fromFirstAttempt_p50_s": round(percentile(since_try, 0.5), 3),
        "fromFirstAttempt_max_s": round(max(since_try), 3),
        "seconds": [round(s, 3) for s in first],
    }


def measure_model(server: Server, arr: ArrClient, token: str, model: str) -> dict[str, Any]:
    session_id, ready_s = create_session(server, MODEL_FILES[model], token)
    render = render_process(server, session_id)
    control = psutil.Process(server.proc.pid)
    try:
        streamed = asyncio.run(stream_windows(arr, session_id, render, control, model == "features"))
        streamed["firstFrame"] = asyncio.run(first_frames(arr, session_id, CONNECTIONS))
    finally:
        stop_session(server, session_id, token, render)
    return {"sessionId": session_id, "createToReadyS": round(ready_s, 2), **streamed}


# ---- summary ----------------------------------------------------------------------------------------------
def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in runs[0]["models"]:
        per = [r["models"][name] for r in runs]
        goal_fps = float(GOALS[name]["movingFps"])  # type: ignore[index]
        summary[name] = {
            "triangles": runs[0]["triangles"][name],
            "movingFps": [m["moving"]["fpsDecoded"] for m in per],
            "movingNewPicturesPerSecond": [m["moving"]["newPicturesPerSecond"] for m in per],
            "staticFps": [m["static"]["fpsDecoded"] for m in per],
            "latencyMs": [m["moving"]["latencyMs"] for m in per],
            "inputLatencyMs": [m["moving"]["inputLatencyMs"] for m in per],
            "firstFrameS": [{"p50": m["firstFrame"]["p50_s"], "p95": m["firstFrame"]["p95_s"]} for m in per],
            "renderServerCores": [m["moving"]["cpu"]["renderServerCores"] for m in per],
            "clientCores": [m["moving"]["cpu"]["clientCores"] for m in per],
            "otherLoadCores": [m["moving"]["cpu"]["otherCores"] for m in per],
            "renderServerRssMiB": [m["moving"]["renderServerRssMiB"] for m in per],
            "serverRenderMs": [m["moving"]["server"]["renderMs"] for m in per],
            "serverEncodeMs": [m["moving"]["server"]["encodeMs"] for m in per],
            "movingTrianglesMedian": [m["moving"]["trianglesDrawn"]["median"] for m in per],
            "fullDetailAfterStopMs": [m["moving"]["stop"]["fullDetailMs"] for m in per],
            "goals": {
                f"moving fps >= {goal_fps:g}": _met(all(m["moving"]["fpsDecoded"] >= goal_fps for m in per)),
                "glass-to-glass p50 <= 45 ms": _met(
                    all(
                        (m["moving"]["latencyMs"] or {}).get("p50", 1e9) <= GOALS["latencyP50Ms"] for m in per
                    )
                ),
                "input -> frame p50 <= 70 ms": _met(
                    all(
                        (m["moving"]["inputLatencyMs"] or {}).get("p50", 1e9) <= GOALS["inputLatencyMs"]
                        for m in per
                    )
                ),
                "full detail <= 300 ms after the camera stops": _met(
                    all((m["moving"]["stop"]["fullDetailMs"] or 1e9) <= FULL_DETAIL_GOAL_MS for m in per)
                ),
                "first frame p50 <= 0.3 s": _met(
                    all(m["firstFrame"]["p50_s"] <= GOALS["firstFrameS"] for m in per)
                ),
            },
        }
    return summary


def _fmt(p: Mapping[str, float] | None) -> str:
    return "-" if p is None else f"p50 {p['p50']:.0f} / p90 {p['p90']:.0f} ms"


def print_run(index: int, run: dict[str, Any]) -> None:
    for name, m in run["models"].items():
        mv, st, ff = m["moving"], m["static"], m["firstFrame"]
        print(
            f"run {index} · {name} ({run['triangles'][name]:,} triangles, Ready in {m['createToReadyS']} s)"
        )
        print(
            f"  moving: {mv['fpsDecoded']} fps decoded, {mv['newPicturesPerSecond']} new pictures/s; "
            f"glass-to-glass {_fmt(mv['latencyMs'])}; input → frame {_fmt(mv['inputLatencyMs'])} "
            f"({mv['posesShown']}/{mv['posesSent']} poses shown)"
        )
        print(
            f"          server renderMs {mv['server']['renderMs']}, encodeMs {mv['server']['encodeMs']}, "
            f"fps {mv['server']['fps']}; render server {mv['cpu']['renderServerCores']} cores, "
            f"client {mv['cpu']['clientCores']} cores, other load {mv['cpu']['otherCores']} cores, "
            f"RSS {mv['renderServerRssMiB']} MiB"
        )
        print(
            f"          triangles drawn while moving {mv['trianglesDrawn']}; full detail "
            f"{mv['stop']['fullDetailMs']} ms after the last pose"
        )
        print(
            f"  static: {st['fpsDecoded']} fps decoded, {st['newPicturesPerSecond']} new pictures/s; "
            f"render server {st['cpu']['renderServerCores']} cores, client {st['cpu']['clientCores']} cores"
        )
        print(
            f"  first frame: p50 {ff['p50_s']} s, p95 {ff['p95_s']} s, max {ff['max_s']} s "
            f"({ff['refusedAttempts']} refused attempts)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2, help="repeat everything (fresh sessions each time)")
    parser.add_argument(
        "--models", default="medium,large,features", help="comma-separated: medium, large, features"
    )
    parser.add_argument(
        "--frame-budget-ms",
        type=float,
        default=None,
        help="the render servers' frame budget (default: the server's); 1000 draws full detail always",
    )
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="openrr-bench-models-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        triangles = write_models(root)
        print(f"models written in {time.perf_counter() - started:.1f} s: {triangles}")
        flags = ["--model-root", str(root), "--video-width", str(WIDTH), "--video-height", str(HEIGHT)]
        if args.frame_budget_ms is not None:
            flags += ["--frame-budget-ms", str(args.frame_budget_ms)]
        with openrr_server(*flags) as server:
            # A session reads models only from its account's folder of each model root.
            account_root = root / server.account_id
            account_root.mkdir()
            for model in root.glob("*.glb"):
                model.rename(account_root / model.name)
            token = server.token()
            with ArrClient(server.url, server.account_id, server.key, verify=str(server.verify)) as arr:
                for i in range(args.runs):
                    run: dict[str, Any] = {"triangles": triangles, "models": {}}
                    for name in models:
                        run["models"][name] = measure_model(server, arr, token, name)
                    runs.append(run)
                    print_run(i + 1, run)
    summary = summarize(runs)
    # A run of some of the models keeps its own file, so the full run's record stays.
    full = set(models) == set(MODEL_FILES)
    name = "render_stream" if full else "render_stream_" + "_".join(models)
    if args.frame_budget_ms is not None:
        name += f"_budget{args.frame_budget_ms:g}"
    path = write_result(
        name,
        {
            "settings": {
                "video": f"{WIDTH}x{HEIGHT}, server defaults otherwise (30 fps, 3 Mbit/s, H.264)",
                "frameBudgetMs": args.frame_budget_ms or "server default",
                "staticSeconds": STATIC_S,
                "movingSeconds": MOVING_S,
                "orbit": f"{ORBIT_STEP_DEG:g} deg yaw x {ORBIT_HZ:g}/s, each with a poseId",
                "firstFrameConnections": CONNECTIONS,
                "models": {
                    "medium": "icosphere(6, r=1) + icosphere(5, r=0.5), 102,400 triangles",
                    "large": "icosphere(8, r=1), 1,310,720 triangles",
                    "features": "medium, with 8 cut planes, an outline and a see-through entity",
                },
            },
            "goals": GOALS,
            "summary": summary,
            "runs": runs,
        },
    )
    print(json.dumps(summary, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
