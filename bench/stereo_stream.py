"""Stereo streaming for headsets through the real product: fps and pose → photon latency, with and
without depth.

A real ``openrr serve`` (HTTPS, loopback) starts a render server for a v1 session preloading the ~100k-
triangle model of ``bench.render_stream`` (medium.glb). One connection, driven by ``openrr.client`` as a
headset's browser would drive it: ``xr.start`` with eyes of 960 x 1080 (side by side, depth below when on),
then ``xr.pose`` at 72 Hz (a Quest's display rate) for a head 3.5 m from the model, turning ±15° at 0.25 Hz
and swaying 10 cm, with eyes 64 mm apart and a 90° x 96° field of view. ``predictMs`` is 0 here, so what is
measured is the raw round trip.

Per configuration, over a 10 s window after 2 s of warm-up:

* fps decoded and new pictures per second (each from a newer pose);
* pose → photon: from sending a pose to decoding the first frame rendered from it or a later pose
  (``input_latencies_ms``, as the 2D benchmark's input → frame);
* the eyes' resolution scale the server chose to hold its frame budget (frame messages' ``xr.scale``),
  the render and encode times, and the CPU of the render server and of this client.

The receiver decodes on the same 2 cores as the render server: the numbers are lower bounds for a headset
on another machine.

    .venv/bin/python -m bench.stereo_stream [--runs 2] [--fps 30] [--bitrate 8000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import openrr_server, write_result
from bench.render_stream import (
    _sleep_checked,
    cpu_between,
    cpu_mark,
    create_session,
    render_process,
    stop_session,
    window_report,
    write_models,
)
from openrr.client.connection import RenderConnection
from openrr.client.rest import ArrClient
from openrr.client.session import connect_session
from openrr.client.signalling import VideoSettings
from openrr.client.stereo import head_views, projection

EYE_W, EYE_H = 960, 1080
POSE_HZ = 72.0
WARMUP_S = 2.0
WINDOW_S = 10.0
ANSWER_GRACE_S = 1.0
IPD = 0.064
# 90 degrees across and 96 up and down (as a Quest 2 eye, made symmetric)
PROJECTION = projection(-1.0, 1.0, -math.tan(math.radians(48)), math.tan(math.radians(48)))
CONFIGS = {"depth": True, "noDepth": False}


def head_pose(t: float) -> dict[str, Any]:
    """A head 3.5 m in front of the model, turning ±15 degrees and swaying 10 cm (t in seconds)."""
    yaw = math.radians(15) * math.sin(2 * math.pi * 0.25 * t)
    orientation = (0.0, math.sin(yaw / 2), 0.0, math.cos(yaw / 2))
    position = (0.1 * math.sin(2 * math.pi * 0.25 * t), 0.0, 3.5)
    return head_views(position, orientation, ipd=IPD, left_projection=PROJECTION)


async def _poses(rc: RenderConnection) -> None:
    period, started = 1.0 / POSE_HZ, time.monotonic()
    next_at = started
    while True:
        now = time.monotonic()
        rc.send_xr_pose({"time": (now - started) * 1000.0 + 1.0, **head_pose(now - started)})
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def measure(
    arr: ArrClient, session_id: str, render: psutil.Process, control: psutil.Process, args: argparse.Namespace
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, depth in CONFIGS.items():
        video = VideoSettings(fps=args.fps, bitrate=args.bitrate)
        rc = await connect_session(arr, session_id, video=video, timeout=30)
        background: list[asyncio.Task[Any]] = []
        try:
            started = await rc.start_xr(EYE_W, EYE_H, depth=depth)
            background.append(asyncio.create_task(_poses(rc)))
            await _sleep_checked(WARMUP_S, background)
            n0, t0, c0 = len(rc.stats_messages), time.monotonic(), cpu_mark(render, control)
            await _sleep_checked(WINDOW_S, background)
            c1, t1 = cpu_mark(render, control), time.monotonic()
            await _sleep_checked(ANSWER_GRACE_S, background)
            report = window_report(rc, t0, t1, list(rc.stats_messages)[n0:], moving=True)
            scales = [
                float(m.meta["xr"]["scale"])
                for m in rc.log.matched(t0)
                if m.received_at <= t1 and isinstance(m.meta.get("xr"), dict)
            ]
            out[name] = {
                "frame": started["frame"],
                "eye": {"width": EYE_W, "height": EYE_H},
                "depth": depth,
                "fpsDecoded": report["fpsDecoded"],
                "newPicturesPerSecond": report["newPicturesPerSecond"],
                "poseToPhotonMs": report["inputLatencyMs"],
                "posesSent": report["posesSent"],
                "posesShown": report["posesShown"],
                "scaleMedian": round(statistics.median(scales), 3) if scales else None,
                "scaleMin": min(scales) if scales else None,
                "renderMsMedian": report["frameRenderMsMedian"],
                "encodeMsMedian": report["frameEncodeMsMedian"],
                "cpu": cpu_between(c0, c1),
                "renderServerRssMiB": round(render.memory_info().rss / 2**20, 1),
                "server": report["server"],
            }
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await rc.close()
        await asyncio.sleep(1.0)  # the server resets the scene after a client leaves
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2, help="repeat everything (a fresh session each time)")
    parser.add_argument("--fps", type=int, default=30, help="the video's frame rate (the server's budget)")
    parser.add_argument("--bitrate", type=int, default=8_000_000, help="bit/s")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="openrr-bench-models-") as tmp:
        root = Path(tmp)
        triangles = write_models(root)["medium"]
        with openrr_server("--model-root", str(root)) as server:
            account_root = root / server.account_id
            account_root.mkdir()
            for model in root.glob("*.glb"):
                model.rename(account_root / model.name)
            token = server.token()
            with ArrClient(server.url, server.account_id, server.key, verify=str(server.verify)) as arr:
                for i in range(args.runs):
                    session_id, _ = create_session(server, "medium.glb", token)
                    render = render_process(server, session_id)
                    try:
                        control = psutil.Process(server.proc.pid)
                        run = asyncio.run(measure(arr, session_id, render, control, args))
                    finally:
                        stop_session(server, session_id, token, render)
                    runs.append(run)
                    for name, r in run.items():
                        print(
                            f"run {i + 1} {name}: {r['fpsDecoded']} fps, pose->photon {r['poseToPhotonMs']}, "
                            f"scale {r['scaleMedian']}, render {r['renderMsMedian']} ms, encode "
                            f"{r['encodeMsMedian']} ms"
                        )
    summary = {
        name: {
            "fps": [r[name]["fpsDecoded"] for r in runs],
            "poseToPhotonP50Ms": [(r[name]["poseToPhotonMs"] or {}).get("p50") for r in runs],
            "poseToPhotonP90Ms": [(r[name]["poseToPhotonMs"] or {}).get("p90") for r in runs],
            "scaleMedian": [r[name]["scaleMedian"] for r in runs],
            "renderMsMedian": [r[name]["renderMsMedian"] for r in runs],
            "encodeMsMedian": [r[name]["encodeMsMedian"] for r in runs],
        }
        for name in CONFIGS
    }
    path = write_result(
        "stereo_stream",
        {
            "settings": {
                "model": f"medium.glb of bench.render_stream, {triangles:,} triangles",
                "eyes": f"2 x {EYE_W}x{EYE_H}, side by side (depth below when on)",
                "video": f"H.264, {args.fps} fps, {args.bitrate} bit/s",
                "poses": f"{POSE_HZ:g} Hz, head turning +-15 deg and swaying 10 cm at 0.25 Hz, predictMs 0",
                "windowSeconds": WINDOW_S,
            },
            "summary": summary,
            "runs": runs,
        },
    )
    print(json.dumps(summary, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
