"""``openrr sessions …`` as a user runs it: subprocesses against a real control plane, via arrconfig.json."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.checks import assert_render_server_serves, wait_gone
from tests.e2e.server import OpenRRServer

pytestmark = pytest.mark.e2e


def _sessions(server: OpenRRServer, *args: str) -> subprocess.CompletedProcess[str]:
    return server.cli("sessions", *args, "--config", str(server.config_path))


def _json(done: subprocess.CompletedProcess[str]) -> object:
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr}"
    return json.loads(done.stdout)


def test_cli_session_lifecycle(openrr_server: OpenRRServer) -> None:
    server = openrr_server
    other = server.create_account()

    created = _json(_sessions(server, "create", "--id", "cli-session", "--json"))
    assert isinstance(created, dict)
    assert created["id"] == "cli-session"
    assert created["status"] == "Ready"  # create waits for Ready
    assert created["maxLeaseTimeMinutes"] == 60  # maxLeaseTime 01:00:00 from arrconfig.json
    assert created["size"] == "Standard"
    assert created["hostname"] == "127.0.0.1"
    render = server.render_server("cli-session")
    assert render.alive
    assert_render_server_serves(server, "cli-session", created["hostname"], created["handshakePort"], other)

    fetched = _json(_sessions(server, "get", "cli-session", "--json"))
    assert isinstance(fetched, dict)
    assert fetched["status"] == "Ready"
    assert fetched["handshakePort"] == created["handshakePort"]
    assert fetched["arrInspectorPort"] == created["arrInspectorPort"]

    listed = _json(_sessions(server, "list", "--json"))
    assert isinstance(listed, list)
    assert [s["id"] for s in listed] == ["cli-session"]

    updated = _json(_sessions(server, "update", "cli-session", "--lease", "90", "--json"))
    assert isinstance(updated, dict)
    assert updated["maxLeaseTimeMinutes"] == 90
    assert updated["status"] == "Ready"

    shorter = _sessions(server, "update", "cli-session", "--lease", "30", "--json")
    assert shorter.returncode != 0
    assert shorter.stdout == ""
    assert "has to be bigger" in shorter.stderr

    stopped = _json(_sessions(server, "stop", "cli-session", "--json"))
    assert isinstance(stopped, dict)
    assert stopped["status"] == "Stopped"
    assert "hostname" not in stopped
    wait_gone(render, timeout=5)

    assert _json(_sessions(server, "list", "--json")) == []
    again = _json(_sessions(server, "get", "cli-session", "--json"))
    assert isinstance(again, dict)
    assert again["status"] == "Stopped"


def test_cli_get_unknown_session(openrr_server: OpenRRServer) -> None:
    done = _sessions(openrr_server, "get", "no-such-session", "--json")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "error:" in done.stderr
    assert "SessionNotFound" in done.stderr
    assert "no-such-session" in done.stderr
    assert "Traceback" not in done.stderr
