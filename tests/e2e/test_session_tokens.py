"""Render servers take only connect tokens of their own session (real control plane, real render servers)."""

from __future__ import annotations

import httpx

from tests.e2e.server import OpenRRServer


def test_a_render_server_refuses_account_tokens_and_other_sessions_tokens(
    openrr_server: OpenRRServer,
) -> None:
    with openrr_server.api() as api:
        for sid in ("first", "second"):
            api.create(sid, lease=30)
        ready = {sid: api.wait_status(sid, "Ready", timeout=60) for sid in ("first", "second")}
    tokens = {sid: openrr_server.connect_token(sid) for sid in ready}
    account_token = openrr_server.token()
    for sid, session in ready.items():
        other = "second" if sid == "first" else "first"
        handshake = f"http://{session['hostname']}:{session['handshakePort']}/handshake"
        stats = f"http://{session['hostname']}:{session['arrInspectorPort']}/stats"
        for url in (handshake, stats):
            own = httpx.get(url, headers={"Authorization": f"Bearer {tokens[sid]}"}, timeout=10)
            assert own.status_code == 200, own.text
            assert own.json()["sessionId"] == sid
            for refused in (tokens[other], account_token):
                resp = httpx.get(url, headers={"Authorization": f"Bearer {refused}"}, timeout=10)
                assert resp.status_code == 401, resp.text
                assert resp.json()["error"]["code"] == "Unauthorized"
