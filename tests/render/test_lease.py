"""Real render servers keep their session's lease without the control plane (``protocol.handshake``, "Lease"):
they heartbeat, follow renewals, and stop themselves at the lease end or when the control plane has not
answered for longer than the grace. Loopback only; every process is stopped by pid (``render`` fixture)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from openrr.protocol.handshake import (
    CONTROL_PLANE_UNREACHABLE,
    EXIT_CONTROL_PLANE_UNREACHABLE,
    EXIT_LEASE_ENDED,
    EXIT_REJECTED,
    LEASE_ENDED,
    SELF_STOP_LOG,
)
from tests.render.control_plane import Callback, CallbackReceiver, Keys, template, wait_for_log
from tests.render.processes import RenderProcesses


async def test_a_server_follows_renewals_and_stops_itself_at_its_lease_end(
    render: RenderProcesses, receiver: CallbackReceiver, models: Path
) -> None:
    base = template(models, heartbeat_s=0.3, control_plane_grace_s=600.0)
    spec = receiver.session(base, Keys(), "leased")
    lease: dict[str, float] = {}

    def answer(callback: Callback) -> tuple[int, dict[str, Any]]:
        now = time.monotonic()
        if callback.kind == "ready":
            lease["first_end"] = lease["end"] = now + 2.0
        elif callback.kind == "heartbeat" and "renewed" not in lease:
            lease["renewed"] = now
            lease["end"] += 2.0  # a renewal: the next answers carry the later end
        return 200, {"status": "Ready", "leaseRemainingSeconds": max(0.0, lease.get("end", now) - now)}

    receiver.answer = answer
    server = await render.start(spec, pooled=False)
    code = await server.exit_code(timeout=90)
    exited = time.monotonic()
    assert code == EXIT_LEASE_ENDED, server.log_text()
    assert f"{SELF_STOP_LOG} {LEASE_ENDED}: " in server.log_text()
    beats = receiver.of("leased", "heartbeat")
    assert all(b.body == {"instance": spec.instance} for b in beats)
    assert all(b.authorization == f"Bearer {spec.callback_token}" for b in beats)
    # It did not stop at the first end: the renewal reached it, and it stopped only after the renewed one.
    assert any(b.at >= lease["first_end"] for b in beats)
    assert exited >= lease["end"]


async def test_an_assigned_pooled_server_gives_up_on_an_unreachable_control_plane(
    render: RenderProcesses, receiver: CallbackReceiver, models: Path
) -> None:
    base = template(models, heartbeat_s=0.2, control_plane_grace_s=1.5)
    spec = receiver.session(base, Keys(), "orphaned")
    # Ready is accepted; from then on every heartbeat fails, as through a proxy whose control plane is gone.
    receiver.answer = lambda c: (200, {}) if c.kind == "ready" else (503, {"error": "unavailable"})
    server = await render.start(base)
    await wait_for_log(server.log, "waiting for a session", server.alive)
    await server.assign(spec)
    code = await server.exit_code(timeout=90)
    exited = time.monotonic()
    assert code == EXIT_CONTROL_PLANE_UNREACHABLE, server.log_text()
    assert f"{SELF_STOP_LOG} {CONTROL_PLANE_UNREACHABLE}: " in server.log_text()
    (ready,) = receiver.of("orphaned", "ready")
    beats = receiver.of("orphaned", "heartbeat")
    assert len(beats) >= 2  # it kept trying before it gave up
    # The grace counts from the last answer (the ready one): it gave up no sooner.
    assert exited - ready.at >= 1.5


async def test_a_server_whose_session_is_over_exits_at_the_next_heartbeat(
    render: RenderProcesses, receiver: CallbackReceiver, models: Path
) -> None:
    base = template(models, heartbeat_s=0.2, control_plane_grace_s=600.0)
    spec = receiver.session(base, Keys(), "stale")
    receiver.answer = lambda c: (200, {}) if c.kind == "ready" else (409, {"error": {"code": "Conflict"}})
    server = await render.start(spec, pooled=False)
    assert await server.exit_code(timeout=90) == EXIT_REJECTED, server.log_text()
    assert SELF_STOP_LOG not in server.log_text()  # the control plane ended it: no self-stop to report
    assert len(receiver.of("stale", "heartbeat")) == 1
