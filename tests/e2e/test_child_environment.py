"""Render servers get an allow-listed environment (``openrr.child_env``): a control plane whose environment
holds secrets starts a real render server, and that server's ``/proc/PID/environ`` holds none of them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from openrr.protocol.handshake import SPEC_ENV
from tests.e2e.server import OpenRRServer

pytestmark = pytest.mark.e2e


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def test_render_servers_inherit_no_secret_of_the_control_plane(
    openrr_factory: Callable[..., OpenRRServer], tmp_path: Path
) -> None:
    store = tmp_path / "data0" / "openrr.db"  # the factory's first data dir: the store the tests read
    secrets = {
        "OPENRR_STORE_URL": f"sqlite:///{store}",
        "OPENRR_TURN_CREDENTIAL": "turn-secret-3141",
        "AZURE_STORAGE_KEY": "c3RvcmFnZS1zZWNyZXQ=",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-2718",
        "SECRET_X": "x-secret-1618",
        "HTTPS_PROXY": "http://user:proxy-secret@127.0.0.1:9",
        "RAY_AUTH_TOKEN": "ray-secret-1414",
    }
    server = openrr_factory(
        extra_env=secrets,
        turn_url="turn:127.0.0.1:3478",
        turn_username="render",
        # Given as a variable above: the render server gets it through its spec, for its own ICE, only.
        warm_pool="standard=1",
    )
    with server.api() as api:
        api.create("s1")
        api.wait_status("s1", "Ready", timeout=60)
    render = server.render_server("s1")
    env = _environ(render.pid)
    leaked = {name for name in env if name in secrets}
    assert not leaked, leaked
    for value in secrets.values():
        for name, found in env.items():
            if name != SPEC_ENV:
                assert value not in found, name
    # What it does get: its spec, which carries the TURN credential for its ICE and nothing of the store.
    spec = json.loads(env[SPEC_ENV])
    assert spec["settings"]["turn_credential"] == "turn-secret-3141"
    assert str(store) not in env[SPEC_ENV]
    assert "PATH" in env
