"""``openrr keys rotate`` against a running control plane: no downtime, and ``--revoke`` really revokes."""

from __future__ import annotations

import json

import httpx
import jwt

from tests.e2e.server import OpenRRServer, wait_for


def lists(server: OpenRRServer, token: str) -> int:
    account = server.account
    resp = httpx.get(
        f"{server.url}/accounts/{account.id}/sessions",
        params={"api-version": "2021-01-01"},
        headers={"Authorization": f"Bearer {token}"},
        verify=server.ssl_context(),
    )
    return resp.status_code


def test_keys_rotate_and_revoke_on_a_running_service(openrr_server: OpenRRServer) -> None:
    old_token = openrr_server.token()
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    done = openrr_server.cli("keys", "rotate", "--data-dir", str(openrr_server.data_dir), "--json")
    assert done.returncode == 0, done.stderr
    keys = json.loads(done.stdout)["keys"]
    new_kid = keys[0]["kid"]
    assert keys[0]["current"]
    assert new_kid != old_kid
    assert old_kid in [k["kid"] for k in keys]
    assert "PRIVATE" not in done.stdout

    # The running service takes the new key up by itself, and the old token keeps working meanwhile.
    def signs_with_new_key() -> bool:
        return bool(jwt.get_unverified_header(openrr_server.token())["kid"] == new_kid)

    wait_for(signs_with_new_key, timeout=20, interval=0.5, what="the new key to sign tokens")
    new_token = openrr_server.token()
    assert lists(openrr_server, old_token) == 200
    assert lists(openrr_server, new_token) == 200

    done = openrr_server.cli(
        "keys", "rotate", "--revoke", "--data-dir", str(openrr_server.data_dir), "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["revoked"] == 2
    wait_for(lambda: lists(openrr_server, new_token) == 401, timeout=20, interval=0.5, what="the revocation")
    assert lists(openrr_server, old_token) == 401
    assert lists(openrr_server, openrr_server.token()) == 200

    listed = openrr_server.cli("keys", "list", "--data-dir", str(openrr_server.data_dir), "--json")
    assert [k["current"] for k in json.loads(listed.stdout)] == [True]
