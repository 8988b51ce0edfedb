"""Shared checks: a render server really serves its session, and only with a connect token of it."""

from __future__ import annotations

import httpx

from tests.e2e.server import Account, OpenRRServer, Proc, wait_for


def assert_render_server_serves(
    server: OpenRRServer, session_id: str, hostname: str, handshake_port: int, other: Account
) -> None:
    """The handshake port answers plain HTTP: health for anyone, the handshake only with a connect token of
    the session, which only the session's account can get from the control plane."""
    base = f"http://{hostname}:{handshake_port}"
    with httpx.Client(base_url=base, timeout=5) as http:
        health = http.get("/health")
        assert health.status_code == 200, health.text
        assert health.json() == {"status": "ok"}  # no session id or client state for anyone

        anonymous = http.get("/handshake")
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.json()["error"]["code"] == "Unauthorized"

        forged = http.get("/handshake", headers={"Authorization": "Bearer not.a.token"})
        assert forged.status_code == 401, forged.text

        own = http.get("/handshake", headers={"Authorization": f"Bearer {server.connect_token(session_id)}"})
        assert own.status_code == 200, own.text
        assert own.json()["sessionId"] == session_id
        assert own.json()["protocol"] == "openrr-render/1"

        # The account's own access token is not for render servers; another account gets no connect token.
        account_token = http.get("/handshake", headers={"Authorization": f"Bearer {server.token()}"})
        assert account_token.status_code == 401, account_token.text
        foreign = server.connect_token_response(session_id, other)
        assert foreign.status_code == 403, foreign.text
        assert foreign.json()["error"]["code"] == "Forbidden"


def assert_port_closed(hostname: str, port: int) -> None:
    try:
        httpx.get(f"http://{hostname}:{port}/health", timeout=2)
    except httpx.TransportError:
        return
    raise AssertionError(f"{hostname}:{port} still answers")


def wait_gone(proc: Proc, timeout: float = 10.0) -> None:
    wait_for(lambda: not proc.alive, timeout=timeout, what=f"{proc} to exit")
