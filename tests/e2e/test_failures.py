"""Crashes: a render server dies under a running control plane, and the control plane itself is killed -9."""

from __future__ import annotations

import signal

import httpx
import pytest

from tests.e2e.checks import assert_port_closed, wait_gone
from tests.e2e.server import OpenRRServer

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("sig", "named"),
    [
        (signal.SIGKILL, "signal SIGKILL"),
        # A real-time signal without a Signals member used to crash the reaper (ValueError) every pass,
        # leaving the session Ready with a dead render server.
        (signal.SIGRTMIN + 6, f"signal {signal.SIGRTMIN + 6}"),
    ],
    ids=["SIGKILL", "SIGRTMIN+6"],
)
def test_killed_render_server_puts_session_into_error(
    openrr_server: OpenRRServer, sig: int, named: str
) -> None:
    server = openrr_server
    with server.api() as api:
        api.create("doomed")
        ready = api.wait_status("doomed", "Ready")
        render = server.render_server("doomed")
        assert render.alive

        render.send(sig)
        failed = api.wait_status("doomed", "Error", timeout=5)
        assert failed["error"]["code"] == "RenderServerExited"
        assert failed["error"]["message"].startswith(f"The render server was killed by {named}.")
        assert "hostname" not in failed
        wait_gone(render, timeout=2)
        assert_port_closed(ready["hostname"], ready["handshakePort"])

        # An ended session is no longer listed and cannot be extended.
        assert api.http.get("/sessions").json()["sessions"] == []
        extend = api.http.patch("/sessions/doomed", json={"maxLeaseTimeMinutes": 120})
        assert extend.status_code == 422, extend.text


def test_control_plane_restart_adopts_running_render_servers(openrr_server: OpenRRServer) -> None:
    server = openrr_server
    ids = ("keep-a", "keep-b", "short-lease", "dies-while-down")
    with server.api() as api:
        for session_id in ids:
            api.create(session_id, lease=1 if session_id == "short-lease" else 60)
        before = {session_id: api.wait_status(session_id, "Ready") for session_id in ids}
    renders = {session_id: server.render_server(session_id) for session_id in ids}
    assert all(r.alive for r in renders.values())

    server.kill9()
    assert all(r.alive for r in renders.values()), "render servers must outlive the control plane"
    renders["dies-while-down"].send(signal.SIGKILL)
    wait_gone(renders["dies-while-down"], timeout=5)
    server.restart()

    with server.api() as api:
        for session_id in ("keep-a", "keep-b", "short-lease"):
            after = api.get(session_id)
            assert after["status"] == "Ready", after
            for field in ("hostname", "handshakePort", "arrInspectorPort", "maxLeaseTimeMinutes"):
                assert after[field] == before[session_id][field], (session_id, field)
            assert server.render_server(session_id) == renders[session_id]  # the same process: adopted
            assert renders[session_id].alive
            health = httpx.get(f"http://{after['hostname']}:{after['handshakePort']}/health", timeout=5)
            assert health.status_code == 200
            # Connect tokens of the restarted control plane still open the adopted server (the session's
            # connect secret is persisted with it).
            handshake = httpx.get(
                f"http://{after['hostname']}:{after['handshakePort']}/handshake",
                headers={"Authorization": f"Bearer {server.connect_token(session_id)}"},
                timeout=5,
            )
            assert handshake.status_code == 200, handshake.text

        dead = api.wait_status("dies-while-down", "Error", timeout=5)
        assert dead["error"]["code"] == "RenderServerExited"
        assert "gone" in dead["error"]["message"]

        listed = sorted(s["id"] for s in api.http.get("/sessions").json()["sessions"])
        assert listed == ["keep-a", "keep-b", "short-lease"]

        # The restarted control plane stops a server it adopted (not its child) by pid.
        api.stop("keep-a")
        assert api.get("keep-a")["status"] == "Stopped"
        wait_gone(renders["keep-a"], timeout=5)
        assert_port_closed(before["keep-a"]["hostname"], before["keep-a"]["handshakePort"])
        assert renders["keep-b"].alive
        assert api.get("keep-b")["status"] == "Ready"
