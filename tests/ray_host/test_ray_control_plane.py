"""``openrr serve --host-backend ray`` end to end on the real two-node cluster: a pooled create is Ready fast,
sessions fill both nodes, capacity exhaustion is the documented 503, a killed actor gives Error, a
restarted control plane re-adopts its sessions, ``openrr cluster status`` shows it all, and stopping frees
every slot."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import ray

from openrr.hosts.ray import RayHost
from tests.e2e.server import OpenRRServer, wait_for
from tests.ray_cluster import RayCluster

pytestmark = pytest.mark.e2e


@pytest.fixture
def ray_serve(ray_cluster: RayCluster, tmp_path: Path) -> Iterator[OpenRRServer]:
    namespace = f"e2e-{secrets.token_hex(4)}"  # this test's actors only
    server = OpenRRServer(
        tmp_path / "data",
        warm_pool="standard=1",
        start_timeout="60",
        **ray_cluster.serve_options(namespace),
    )
    server.start(timeout=60)
    try:
        yield server
    finally:
        t0 = time.monotonic()
        code = server.stop(grace=30)
        print(f"serve stopped with {code} after {time.monotonic() - t0:.1f} s")
        _, survivors = server.cleanup()
        # A pooled actor of the killed incarnation would hold its slot until it expires unwatched (60 s):
        # the next tests share the cluster, so stop whatever is left in this test's namespace now.
        left = asyncio.run(_stop_namespace(ray_cluster, namespace))
        assert not survivors, survivors
        print(f"actors left in the namespace at teardown: {left}")


async def _stop_namespace(cluster: RayCluster, namespace: str) -> list[str]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("RAY_")}
    host = RayHost(cluster.address, namespace=namespace, auth_token_file=str(cluster.token_file))
    await host.connect()
    try:
        actors = await asyncio.to_thread(ray.util.list_named_actors, all_namespaces=True)
        names = [a["name"] for a in actors if a["namespace"] == namespace]
        for name in names:
            await host.stop({"kind": "ray", "actor": name, "namespace": namespace}, 1.0)
        return names
    finally:
        await host.close()
        for key in [k for k in os.environ if k.startswith("RAY_")]:
            del os.environ[key]
        os.environ.update(saved)


def _status(server: OpenRRServer) -> dict[str, Any]:
    done = server.cli("cluster", "status", "--data-dir", str(server.data_dir), "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _standard(status: dict[str, Any]) -> dict[str, Any]:
    return dict(next(s for s in status["sizes"] if s["size"] == "Standard"))


def test_ray_sessions_through_the_control_plane(ray_serve: OpenRRServer, ray_cluster: RayCluster) -> None:
    server = ray_serve
    total = _standard(_status(server))["total"]
    assert total == 3  # the shared cluster: 2 standard slots on the head, 1 on the second node

    # The pool warms one server up; a create then takes it.
    wait_for(lambda: _standard(_status(server))["pool"]["idle"] == 1, timeout=60, what="a pooled server")
    with server.api() as api:
        t0 = time.monotonic()
        api.create("warm")
        ready = api.wait_status("warm", "Ready", timeout=30)
        print(f"pooled create → Ready: {time.monotonic() - t0:.2f} s")
        assert _standard(_status(server))["pool"]["taken"] == 1

        # Fill the cluster: the remaining slots, whichever way they are started (pooled or cold).
        for sid in ("fill-1", "fill-2"):
            api.create(sid)
        hosts = {ready["hostname"]}
        for sid in ("fill-1", "fill-2"):
            hosts.add(api.wait_status(sid, "Ready", timeout=60)["hostname"])
        assert hosts == {"127.0.0.2", "127.0.0.3"}  # both nodes serve sessions

        # Nothing is free: the documented error, and nothing is stored for the refused id.
        full = api.http.put("/sessions/too-many", json={"maxLeaseTimeMinutes": 10, "size": "Standard"})
        assert full.status_code == 503, full.text
        assert full.json()["error"]["code"] == "CapacityExhausted"
        assert full.headers["Retry-After"]
        assert api.http.get("/sessions/too-many").status_code == 404

        status = _status(server)
        standard = _standard(status)
        assert standard["sessions"] == 3
        assert standard["free"] == 0
        assert {node["address"] for node in status["nodes"] if node["alive"]} >= {"127.0.0.2", "127.0.0.3"}
        table = server.cli("cluster", "status", "--data-dir", str(server.data_dir))
        assert table.returncode == 0
        assert "127.0.0.3" in table.stdout
        assert "Standard" in table.stdout

        # A killed actor (its worker process: the parent of the render server) turns its session to Error.
        render_pid = _render_pid(server, "fill-1")
        actor_worker = psutil.Process(render_pid).parent()
        assert actor_worker is not None
        actor_worker.send_signal(signal.SIGKILL)
        failed = api.wait_status("fill-1", "Error", timeout=30)
        assert failed["error"]["code"] == "RenderServerExited"
        print("killed actor:", failed["error"]["message"])
        wait_for(
            lambda: not psutil.pid_exists(render_pid), timeout=10, what="the render server to die with it"
        )

    # A restarted control plane re-adopts the Ray sessions: still Ready, and it can stop them.
    server.kill9()
    server.restart(timeout=60)
    with server.api() as api:
        assert api.get("warm")["status"] == "Ready"
        assert api.get("fill-2")["status"] == "Ready"
        for sid in ("warm", "fill-2"):
            api.stop(sid)

    # Every session slot comes back; the pool may take one again (a stale pooled actor of the killed
    # control plane also holds one until it exits by itself, unwatched).
    def freed() -> bool:
        standard = _standard(_status(server))
        return bool(standard["sessions"] == 0 and standard["free"] + standard["pool"]["idle"] >= 2)

    wait_for(freed, timeout=60, interval=0.5, what="the slots to be free again")


def _render_pid(server: OpenRRServer, session_id: str) -> int:
    """The render server of a session: from its handle (a pooled start records the pid), else by the
    spec in its environment (a cold start's handle is stored before Ray has placed the actor)."""
    for row in server.rows():
        if row["id"] == session_id and (row["host_handle"] or {}).get("pid"):
            return int(row["host_handle"]["pid"])
    marker = f'"session_id": "{session_id}"'
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "openrr.render" in " ".join(proc.info["cmdline"] or ()) and marker in proc.environ().get(
                "OPENRR_RENDER_SPEC", ""
            ):
                return int(proc.pid)
        except psutil.Error:
            continue
    raise AssertionError(f"no render server found for {session_id}")
