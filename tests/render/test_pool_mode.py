"""Real ``python -m openrr.render`` processes in pool mode, and the idle stop: loopback only.

Every process is started through the ``render`` fixture, which stops it by pid whatever the test did.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from openrr.compat.aioice import loopback_host_candidates
from openrr.protocol.handshake import (
    DATA_CHANNEL_LABEL,
    HANDSHAKE_PATH,
    OFFER_PATH,
    POOL_ENV,
    SPEC_ENV,
    RenderSettings,
)
from openrr.render.process import EXIT_BAD_ASSIGNMENT
from tests.render.control_plane import (
    CallbackReceiver,
    Keys,
    template,
    wait_for_log,
)
from tests.render.processes import RenderProcesses

WAITING = "waiting for a session"


async def get(url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(url, headers=headers)


async def test_an_assigned_pooled_server_preloads_and_reports_ready_for_its_session(
    render: RenderProcesses, receiver: CallbackReceiver, models: Path
) -> None:
    keys = Keys()
    base = template(models)
    spec = receiver.session(base, keys, "pooled-1", models=("two_nodes.glb",))
    server = await render.start(base)
    await wait_for_log(server.log, WAITING, server.alive)
    assert not receiver.received  # a pooled server has no session to report for yet

    assigned_at = time.monotonic()
    await server.assign(spec)
    (ready,) = await receiver.wait("pooled-1", "ready")
    pooled_s = ready.at - assigned_at

    assert ready.body["instance"] == spec.instance
    assert ready.body["pid"] == server.proc.pid
    assert ready.authorization == f"Bearer {spec.callback_token}"
    base_url = f"http://{ready.body['hostname']}:{ready.body['handshakePort']}"
    # The assigned spec's key and account guard the session, not the template's blank ones.
    handshake = await get(base_url + HANDSHAKE_PATH, keys.token("pooled-1"))
    assert handshake.status_code == 200, handshake.text
    assert handshake.json()["sessionId"] == "pooled-1"
    assert handshake.json()["models"] == ["two_nodes.glb"]
    assert (await get(base_url + HANDSHAKE_PATH, Keys().token("pooled-1"))).status_code == 401
    assert (await get(base_url + HANDSHAKE_PATH, keys.token("pooled-2"))).status_code == 401
    assert (await get(base_url + HANDSHAKE_PATH, keys.account_token())).status_code == 401
    inspector = f"http://{ready.body['hostname']}:{ready.body['arrInspectorPort']}"
    stats = (await get(inspector + "/stats", keys.token("pooled-1"))).json()
    assert stats["sessionId"] == "pooled-1"
    assert [m["url"] for m in stats["models"]] == ["two_nodes.glb"]
    assert stats["models"][0]["nodes"] > 0

    # For comparison: the same session started cold, as a non-pooled server.
    cold_spec = receiver.session(base, keys, "cold-1", models=("two_nodes.glb",))
    spawned_at = time.monotonic()
    cold = await render.start(cold_spec, pooled=False)
    (cold_ready,) = await receiver.wait("cold-1", "ready")
    cold_s = cold_ready.at - spawned_at
    print(f"\nassignment → ready (pooled): {pooled_s:.3f} s; spawn → ready (cold): {cold_s:.3f} s")

    for process in (server, cold):
        process.proc.send_signal(signal.SIGTERM)
        assert await process.exit_code() == 0
    assert not receiver.of("pooled-1", "failed")


async def test_an_assignment_written_before_the_warm_up_ended_is_taken(
    render: RenderProcesses, receiver: CallbackReceiver, models: Path
) -> None:
    base = template(models)
    spec = receiver.session(base, Keys(), "early", models=("two_nodes.glb",))
    server = await render.start(base)
    await server.assign(spec)  # the interpreter has not even imported openrr yet
    (ready,) = await receiver.wait("early", "ready")
    assert ready.body["instance"] == spec.instance
    log = server.log_text()
    assert log.index(WAITING) < log.index("assigned session early")


async def test_an_assignment_from_a_file_on_stdin_is_taken(
    render: RenderProcesses, receiver: CallbackReceiver, models: Path, tmp_path: Path
) -> None:
    # A regular file cannot go through asyncio's pipe reader: this is the other way in (``< spec.json``).
    base = template(models)
    spec = receiver.session(base, Keys(), "from-file")
    line = tmp_path / "assignment.json"
    line.write_text(spec.to_json() + "\n")
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{SPEC_ENV: base.to_json(), POOL_ENV: "1"})
    with (
        await asyncio.to_thread(line.open, "rb") as stdin,
        await asyncio.to_thread((tmp_path / "from-file.log").open, "wb") as out,
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "openrr.render", stdin=stdin, stdout=out, stderr=out, env=env
        )
    try:
        (ready,) = await receiver.wait("from-file", "ready")
        assert ready.body["pid"] == proc.pid
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


@pytest.mark.parametrize("when", ["waiting", "warming up"])
async def test_end_of_input_without_a_session_exits_0(
    render: RenderProcesses, receiver: CallbackReceiver, models: Path, when: str
) -> None:
    server = await render.start(template(models))
    if when == "waiting":
        await wait_for_log(server.log, WAITING, server.alive)
    assert server.proc.stdin is not None
    server.proc.stdin.close()
    assert await server.exit_code() == 0, server.log_text()
    assert "no session assigned" in server.log_text()
    assert not receiver.received


async def test_sigterm_while_waiting_exits_0(render: RenderProcesses, models: Path) -> None:
    server = await render.start(template(models))
    await wait_for_log(server.log, WAITING, server.alive)
    server.proc.send_signal(signal.SIGTERM)
    assert await server.exit_code() == 0, server.log_text()


@pytest.mark.parametrize(
    "change",
    [
        {"size": "premium"},
        {"settings": RenderSettings(video_width=640, video_height=360)},
        {"polygon_limit": 1000},
        {"bind_host": "::1"},
        {"advertise_host": "localhost"},
        {"teraflops": 2.0},
    ],
    ids=lambda change: next(iter(change)),
)
async def test_a_session_that_does_not_fit_the_template_exits_2(
    render: RenderProcesses, receiver: CallbackReceiver, models: Path, change: dict[str, Any]
) -> None:
    base = template(models)
    spec = dataclasses.replace(receiver.session(base, Keys(), "misfit"), **change)
    server = await render.start(base)
    await server.assign(spec)
    assert await server.exit_code() == EXIT_BAD_ASSIGNMENT, server.log_text()
    assert f"differs from this pooled server's template in: {next(iter(change))}" in server.log_text()
    assert not receiver.received


@pytest.mark.parametrize(
    "line",
    ["{not json", '["a", "list"]', '{"session_id": "s"}', "\xff", ""],
    ids=["not-json", "not-an-object", "missing-fields", "not-utf8", "blank-line"],
)
async def test_a_line_that_is_not_a_render_spec_exits_2(
    render: RenderProcesses, receiver: CallbackReceiver, models: Path, line: str
) -> None:
    server = await render.start(template(models))
    assert server.proc.stdin is not None
    server.proc.stdin.write(line.encode("latin-1") + b"\n")
    server.proc.stdin.close()
    assert await server.exit_code() == EXIT_BAD_ASSIGNMENT, server.log_text()
    assert "not a valid render spec" in server.log_text()
    assert not receiver.received


async def make_offer() -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.createDataChannel(DATA_CHANNEL_LABEL, ordered=True)
    with loopback_host_candidates():
        await pc.setLocalDescription(await pc.createOffer())
    return pc


async def connect(base_url: str, token: str) -> RTCPeerConnection:
    pc = await make_offer()
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(
            base_url + OFFER_PATH,
            json={"type": "offer", "sdp": pc.localDescription.sdp},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert resp.status_code == 200, resp.text
    await pc.setRemoteDescription(RTCSessionDescription(resp.json()["sdp"], "answer"))
    for _ in range(400):
        if pc.connectionState == "connected":
            return pc
        await asyncio.sleep(0.05)
    await pc.close()
    raise AssertionError(f"the client did not connect: {pc.connectionState}")


async def test_idle_stop_reports_once_per_period_without_a_client(
    render: RenderProcesses, receiver: CallbackReceiver, models: Path
) -> None:
    idle_s = 0.5
    keys = Keys()
    base = template(models, idle_stop_s=idle_s)
    spec = receiver.session(base, keys, "idle")
    server = await render.start(base)
    await server.assign(spec)
    (ready,) = await receiver.wait("idle", "ready")
    (idle,) = await receiver.wait("idle", "idle")
    assert idle.body["instance"] == spec.instance
    assert idle.body["idleSeconds"] >= idle_s
    assert idle.at - ready.at >= idle_s
    assert idle.authorization == f"Bearer {spec.callback_token}"

    # Reported once: the server keeps serving, and says nothing more while the period goes on.
    await asyncio.sleep(idle_s * 4)
    assert len(receiver.of("idle", "idle")) == 1
    base_url = f"http://127.0.0.1:{ready.body['handshakePort']}"
    assert (await get(base_url + "/health")).json()["status"] == "ok"

    # A connected client holds the clock, however long it stays.
    pc = await connect(base_url, keys.token(spec.session_id))
    try:
        assert (await get(base_url + HANDSHAKE_PATH, keys.token(spec.session_id))).json()["clientConnected"]
        await asyncio.sleep(idle_s * 4)
        assert len(receiver.of("idle", "idle")) == 1
    finally:
        await pc.close()
    left_at = time.monotonic()
    # Its departure starts a new period, reported once more.
    _, again = await receiver.wait("idle", "idle", count=2)
    assert again.at - left_at >= idle_s
    assert again.body["idleSeconds"] >= idle_s
    server.proc.send_signal(signal.SIGTERM)
    assert await server.exit_code() == 0


async def test_without_idle_stop_nothing_is_reported(
    render: RenderProcesses, receiver: CallbackReceiver, models: Path
) -> None:
    base = template(models)
    spec = receiver.session(base, Keys(), "busy")
    server = await render.start(spec, pooled=False)
    await receiver.wait("busy", "ready")
    await asyncio.sleep(1.0)
    assert [c.kind for c in receiver.received] == ["ready"]
    server.proc.send_signal(signal.SIGTERM)
    assert await server.exit_code() == 0
