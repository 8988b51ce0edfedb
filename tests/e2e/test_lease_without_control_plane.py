"""Leases hold without the control plane: a real ``openrr serve`` is killed -9, and its render server ends
the session by itself, at its lease end or once the control plane has been unreachable for longer than
``--control-plane-grace``; the control plane, restarted, records why (``protocol.handshake``, "Lease")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from openrr.protocol.handshake import CONTROL_PLANE_UNREACHABLE, LEASE_ENDED, SELF_STOP_LOG
from tests.e2e.checks import wait_gone
from tests.e2e.server import OpenRRServer

pytestmark = pytest.mark.e2e


def _render_log(server: OpenRRServer, session_id: str) -> str:
    (row,) = [row for row in server.rows() if row["id"] == session_id]
    return Path(row["host_handle"]["log"]).read_text(errors="replace")


def test_a_render_server_gives_up_on_a_control_plane_gone_longer_than_the_grace(
    openrr_factory: Callable[..., OpenRRServer],
) -> None:
    server = openrr_factory(heartbeat_interval=0.3, control_plane_grace=3)
    with server.api() as api:
        api.create("orphan", lease=60)
        api.wait_status("orphan", "Ready", timeout=60)
    render = server.render_server("orphan")
    server.kill9()
    # Nobody stops it now: it has to stop itself, 3 s after the last heartbeat the control plane answered.
    wait_gone(render, timeout=60)
    assert f"{SELF_STOP_LOG} {CONTROL_PLANE_UNREACHABLE}: " in _render_log(server, "orphan")
    server.restart()
    with server.api() as api:
        ended = api.wait_status("orphan", "Error", timeout=20)
    assert ended["error"]["code"] == CONTROL_PLANE_UNREACHABLE, ended
    assert "stopped itself" in ended["error"]["message"]
    assert "control plane was unreachable" in ended["error"]["message"]


def test_a_render_server_ends_its_session_at_the_lease_end_without_its_control_plane(
    openrr_factory: Callable[..., OpenRRServer],
) -> None:
    # The grace is long: only the lease can end this session. The shortest lease there is: one minute.
    server = openrr_factory(heartbeat_interval=0.5, control_plane_grace=3600)
    with server.api() as api:
        api.create("leased", lease=1)
        api.wait_status("leased", "Ready", timeout=60)
    render = server.render_server("leased")
    server.kill9()
    wait_gone(render, timeout=120)
    assert f"{SELF_STOP_LOG} {LEASE_ENDED}: " in _render_log(server, "leased")
    server.restart()
    with server.api() as api:
        ended = api.wait_status("leased", "Expired", timeout=20)
    assert ended["error"]["code"] == LEASE_ENDED, ended
    assert "stopped itself" in ended["error"]["message"]
