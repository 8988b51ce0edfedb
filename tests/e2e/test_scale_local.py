"""The local host's warm pool, slots and idle stop, with a real ``openrr serve`` and real render servers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from tests.e2e.server import OpenRRServer, wait_for

pytestmark = pytest.mark.e2e


def _standard(server: OpenRRServer) -> dict[str, Any]:
    done = server.cli("cluster", "status", "--data-dir", str(server.data_dir), "--json")
    assert done.returncode == 0, done.stderr
    return dict(next(s for s in json.loads(done.stdout)["sizes"] if s["size"] == "Standard"))


def test_pooled_creates_and_slots_on_the_local_host(openrr_factory: Callable[..., OpenRRServer]) -> None:
    server = openrr_factory(local_slots="standard=2", warm_pool="standard=1")
    wait_for(lambda: _standard(server)["pool"]["idle"] == 1, timeout=30, what="a pooled render server")
    with server.api() as api:
        t0 = time.monotonic()
        api.create("first")
        api.wait_status("first", "Ready")
        print(f"pooled create → Ready: {time.monotonic() - t0:.2f} s")
        api.create("second")
        api.wait_status("second", "Ready")
        standard = _standard(server)
        assert (standard["total"], standard["free"], standard["sessions"]) == (2, 0, 2)
        assert standard["pool"]["taken"] >= 1

        full = api.http.put("/sessions/third", json={"maxLeaseTimeMinutes": 10, "size": "Standard"})
        assert full.status_code == 503
        assert full.json()["error"]["code"] == "CapacityExhausted"

        first = server.render_server("first")
        api.stop("first")
        wait_for(lambda: not first.alive, timeout=15, what="the first render server to exit")
        # The freed slot serves the next create (pooled again or cold, as the pool refills meanwhile).
        wait_for(lambda: _standard(server)["sessions"] == 1, timeout=15, what="the slot to be released")
        api.create("third")
        assert api.wait_status("third", "Ready")["status"] == "Ready"
        # Both slots are sessions' now, so the pool cannot refill until one ends.
        assert _standard(server)["pool"]["idle"] == 0
        api.stop("third")
        wait_for(lambda: _standard(server)["pool"]["idle"] == 1, timeout=30, what="the pool to refill")

    # On SIGTERM the control plane shuts down properly: the pooled server waiting for a session goes too,
    # while the sessions' render servers keep running (they outlive the control plane on purpose).
    assert server.proc is not None
    sessions = {server.render_server(sid).pid for sid in ("first", "second", "third")}
    children = psutil.Process(server.proc.pid).children()
    pooled = [p for p in children if "openrr.render" in " ".join(p.cmdline()) and p.pid not in sessions]
    assert len(pooled) == 1
    assert server.stop() == 0
    wait_for(lambda: _gone(pooled[0]), timeout=15, what="the pooled render server to exit")
    assert server.render_server("second").alive


def _gone(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_idle_stop_ends_a_session_nobody_uses(openrr_factory: Callable[..., OpenRRServer]) -> None:
    server = openrr_factory(idle_stop_minutes="0.02")  # 1.2 s
    with server.api() as api:
        api.create("idle")
        api.wait_status("idle", "Ready")
        render = server.render_server("idle")
        stopped = api.wait_status("idle", "Stopped", timeout=30)
        assert stopped["error"]["code"] == "IdleTimeout"
        assert "no client connected" in stopped["error"]["message"]
        wait_for(lambda: not render.alive, timeout=15, what="the idle render server to exit")
