"""RayHost on a real two-node Ray cluster (head 127.0.0.2, node 127.0.0.3) with real render servers.

Slots of the shared cluster: head render_standard 2 + render_premium 1, node2 render_standard 1. Each test
leaves every slot free (``make_host``'s teardown kills what is left in the test namespace). The node-death
test replaces the node it kills; it runs last. Timings are printed (``-s``), never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import httpx
import psutil
import pytest
import ray

from openrr.errors import HostError
from openrr.hosts.base import HostState
from openrr.hosts.ray import RayHost
from openrr.protocol.handshake import HEALTH_PATH, RenderSpec
from tests.ray_cluster import HEAD_IP, NODE2_IP, RayCluster, ray_cluster_context
from tests.ray_host.conftest import NAMESPACE, Callbacks, session_of, wait_until

pytestmark = pytest.mark.timeout(240)

MakeHost = Callable[..., Any]
READY_TIMEOUT = 90.0  # several render servers warming up at once on 2 cores


async def started(host: RayHost, spec: RenderSpec) -> dict[str, Any]:
    """``host.start`` returns once the actor is registered; this waits until its render server runs and
    returns the handle with where it runs (nodeIp, pid)."""
    handle = await host.start(spec)
    info = await host.wait_started(handle)
    assert info is not None
    return {**handle, **info}


async def start_ready(
    host: RayHost, spec: RenderSpec, callbacks: Callbacks
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start ``spec`` and wait for its ready callback; returns (handle, ready report)."""
    began = time.monotonic()
    handle = await started(host, spec)
    created = time.monotonic() - began
    report = await wait_until(lambda: callbacks.report(spec.instance), READY_TIMEOUT, "the ready callback")
    print(
        f"\n  {spec.size} on {handle['nodeIp']}: actor + child {created:.2f} s, ready after "
        f"{time.monotonic() - began:.2f} s"
    )
    return handle, report


def process_gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


async def named_actors() -> list[str]:
    actors = await asyncio.to_thread(ray.util.list_named_actors, all_namespaces=True)
    return [a["name"] for a in actors if a["namespace"] == NAMESPACE]


async def test_sessions_spread_over_both_nodes_and_fill_the_cluster(
    make_host: MakeHost, make_spec: Callable[..., RenderSpec], callbacks: Callbacks
) -> None:
    host = await make_host()
    before = await host.capacity()
    assert before.slots("Standard").total == 3
    assert before.slots("Standard").free == 3
    assert before.slots("Premium").total == 1
    assert before.slots("Premium").free == 1
    assert {n.address for n in before.nodes if n.alive} >= {HEAD_IP, NODE2_IP}

    specs = [make_spec("Standard") for _ in range(3)] + [make_spec("Premium")]
    started = await asyncio.gather(*(start_ready(host, spec, callbacks) for spec in specs))

    # SPREAD: three standard sessions on 2 + 1 slots must use both nodes.
    assert {handle["nodeIp"] for handle, _ in started[:3]} == {HEAD_IP, NODE2_IP}
    async with httpx.AsyncClient(timeout=5) as http:
        for handle, report in started:
            assert report["hostname"] == handle["nodeIp"]  # bound and advertised on its node
            health = await http.get(f"http://{report['hostname']}:{report['handshakePort']}{HEALTH_PATH}")
            assert health.status_code == 200, health.text
            assert (await host.status(handle)).state is HostState.RUNNING

    full = await host.capacity()
    assert full.slots("Standard").free == 0
    assert full.slots("Premium").free == 0
    for node in full.nodes:
        if node.alive:
            assert all(slots.free == 0 for slots in node.slots.values()), node

    # No slot left: start fails at once and leaves no pending actor behind.
    actors = await named_actors()
    with pytest.raises(HostError, match="slots of the Ray cluster are taken"):
        await host.start(make_spec("Premium"))
    assert await named_actors() == actors

    # stop frees each slot by the time it returns, and the render server process is gone.
    for handle, _ in started:
        await host.stop(handle, 2.0)
        assert process_gone(handle["pid"])  # the cluster runs on this machine
        assert (await host.status(handle)).state is HostState.GONE
    await host.stop(started[0][0], 2.0)  # idempotent
    after = await host.capacity()
    assert after.slots("Standard").free == 3
    assert after.slots("Premium").free == 1


async def test_killed_actor_and_killed_render_server_are_reported(
    make_host: MakeHost, make_spec: Callable[..., RenderSpec], callbacks: Callbacks
) -> None:
    host = await make_host()
    (killed_actor, _), (killed_child, _) = await asyncio.gather(
        start_ready(host, make_spec(), callbacks), start_ready(host, make_spec(), callbacks)
    )

    # ray.kill of the actor: the render server dies with it (PR_SET_PDEATHSIG).
    actor = await asyncio.to_thread(ray.get_actor, killed_actor["actor"], namespace=NAMESPACE)
    await asyncio.to_thread(ray.kill, actor)
    status = await wait_until(lambda: _not_running(host, killed_actor), 30, "the killed actor to be reported")
    print(f"\n  killed actor: {status}")
    assert status.state in (HostState.EXITED, HostState.GONE)
    assert status.message
    await wait_until(lambda: process_gone(killed_actor["pid"]), 10, "the orphaned render server to die")

    # kill -9 of the render server: its actor reports the signal.
    os.kill(killed_child["pid"], signal.SIGKILL)
    status = await wait_until(lambda: _not_running(host, killed_child), 30, "the killed child to be seen")
    print(f"  killed render server: {status}")
    assert status.state is HostState.EXITED
    assert "signal SIGKILL" in status.message

    await host.stop(killed_actor, 1.0)
    await host.stop(killed_child, 1.0)
    assert (await host.capacity()).slots("Standard").free == 3


async def _running(host: RayHost, handle: dict[str, Any]) -> bool:
    return (await host.status(handle)).running


async def _not_running(host: RayHost, handle: dict[str, Any]) -> Any:
    status = await host.status(handle)
    return None if status.running else status


async def test_a_new_driver_adopts_and_stops_a_session(
    make_host: MakeHost, make_spec: Callable[..., RenderSpec], callbacks: Callbacks, ray_cluster: RayCluster
) -> None:
    host = await make_host()
    handle, _ = await start_ready(host, make_spec(), callbacks)
    # A restarted control plane is a new process, hence a new Ray driver: the handle alone must do.
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        from openrr.hosts.ray import RayHost

        async def main():
            handle = json.loads(sys.argv[2])
            host = RayHost(sys.argv[1], namespace=handle["namespace"])
            await host.connect()
            adopted = await host.adopt(handle)
            await host.stop(handle, 2.0)
            after = await host.status(handle)
            free = (await host.capacity()).slots("Standard").free
            await host.close()
            print(json.dumps([adopted.state, after.state, free]))

        asyncio.run(main())
        """
    )
    began = time.monotonic()
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script, ray_cluster.address, json.dumps(handle)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_env_without_ray(), **ray_cluster.driver_env()},
    )
    print(f"\n  second driver: {time.monotonic() - began:.2f} s")
    assert result.returncode == 0, result.stderr[-3000:]
    adopted, after, free = json.loads(result.stdout.strip().splitlines()[-1])
    assert (adopted, after, free) == ("running", "gone", 3)
    assert process_gone(handle["pid"])
    assert (await host.adopt(handle)).state is HostState.GONE


def _env_without_ray() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}


async def test_a_driver_without_the_token_is_refused(ray_cluster: RayCluster) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from openrr.errors import HostError
        from openrr.hosts.ray import RayHost

        async def main():
            try:
                await RayHost(sys.argv[1]).connect()
            except HostError as exc:
                print("refused:", exc)
                return
            print("accepted")

        asyncio.run(main())
        """
    )
    env = {**_env_without_ray(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}
    env["RAY_NUM_REDIS_GET_RETRIES"] = "2"  # a refused driver retries for 20 s otherwise
    env["HOME"] = str(ray_cluster.base_dir)  # no ~/.ray/auth_token of this machine's user either
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script, ray_cluster.address],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    print("\n  " + result.stdout.strip()[:300])
    assert result.stdout.startswith("refused:"), result.stdout + result.stderr[-2000:]
    assert "AuthenticationError" in result.stdout


async def test_a_pooled_server_takes_its_session(
    make_host: MakeHost, make_spec: Callable[..., RenderSpec], callbacks: Callbacks
) -> None:
    host = await make_host()
    template = make_spec("Standard", template=True)
    began = time.monotonic()
    idle = await host.start_idle(template)
    assert idle["pooled"] is True
    assert idle["nodeIp"] in (HEAD_IP, NODE2_IP)
    assert (await host.status(idle)).running
    assert (await host.capacity()).slots("Standard").free == 2  # a pooled server holds its slot

    spec = session_of(template, make_spec("Standard"))
    session = await host.assign(idle, spec)
    assert "pooled" not in session
    assert (session["actor"], session["pid"]) == (idle["actor"], idle["pid"])  # the same server
    report = await wait_until(lambda: callbacks.report(spec.instance), READY_TIMEOUT, "the ready callback")
    print(f"\n  pooled start to ready (assigned at once): {time.monotonic() - began:.2f} s")
    assert report["hostname"] == session["nodeIp"]
    async with httpx.AsyncClient(timeout=5) as http:
        health = await http.get(f"http://{report['hostname']}:{report['handshakePort']}{HEALTH_PATH}")
    assert health.status_code == 200

    with pytest.raises(HostError, match="pooled"):  # a pooled server is assigned at most once
        await host.assign(idle, session_of(template, make_spec("Standard")))
    await host.stop(session, 2.0)
    assert (await host.capacity()).slots("Standard").free == 3

    # Closing the host stops the pooled servers it still holds (sessions it leaves running).
    another = await host.start_idle(template)
    await host.close()
    await make_host()  # named_actors() needs a driver, and that one just left
    assert another["actor"] not in await named_actors()
    await wait_until(lambda: process_gone(another["pid"]), 10, "the pooled render server to exit")


async def test_an_unwatched_pooled_server_exits_by_itself(
    make_host: MakeHost, make_spec: Callable[..., RenderSpec]
) -> None:
    host = await make_host(pool_idle_timeout_s=3.0)
    idle = await host.start_idle(make_spec("Premium", template=True))
    assert (await host.capacity()).slots("Premium").free == 0

    # Polled (as the pool does), it outlives its idle timeout.
    watched_until = time.monotonic() + 4.5
    while time.monotonic() < watched_until:
        assert (await host.status(idle)).running
        await asyncio.sleep(1.0)

    # Unwatched (its control plane died), it stops its server and exits, freeing the slot.
    began = time.monotonic()
    await wait_until(lambda: _named_actor_missing(idle["actor"]), 30, "the unwatched pooled actor to exit")
    print(f"\n  unwatched pooled actor gone {time.monotonic() - began:.2f} s after its last poll")
    await wait_until(lambda: process_gone(idle["pid"]), 10, "its render server to exit")
    await wait_until(lambda: _premium_free(host), 10, "its slot to be free", interval=0.1)
    status = await host.status(idle)
    assert status.state in (HostState.EXITED, HostState.GONE)
    assert status.message
    with pytest.raises(HostError, match=r"gone|could not take"):
        await host.assign(idle, make_spec("Premium"))


async def _named_actor_missing(name: str) -> bool:
    return name not in await named_actors()


async def _premium_free(host: RayHost) -> bool:
    return (await host.capacity()).slots("Premium").free == 1


async def test_racing_starts_for_the_last_slot_leave_no_pending_actor(
    make_host: MakeHost, make_spec: Callable[..., RenderSpec]
) -> None:
    # Both may pass the free-slot check; the one Ray cannot place is killed after start_timeout_s (long
    # enough for the winner's new worker process to start on a busy 2-core machine).
    host = await make_host(start_timeout_s=10.0)
    results = await asyncio.gather(
        started(host, make_spec("Premium")), started(host, make_spec("Premium")), return_exceptions=True
    )
    handles = [r for r in results if isinstance(r, dict)]
    errors = [r for r in results if isinstance(r, BaseException)]
    print(f"\n  the loser: {errors}")
    assert len(handles) == 1
    assert len(errors) == 1
    assert isinstance(errors[0], HostError)
    assert await named_actors() == [handles[0]["actor"]]
    await host.stop(handles[0], 1.0)
    assert (await host.capacity()).slots("Premium").free == 1


async def test_a_hung_actor_is_unknown_then_gone(
    make_host: MakeHost, make_spec: Callable[..., RenderSpec]
) -> None:
    host = await make_host(poll_timeout_s=0.5, max_unanswered_polls=3)
    handle = await started(host, make_spec())
    worker = psutil.Process(psutil.Process(handle["pid"]).ppid())  # the actor's Ray worker process
    worker.suspend()  # SIGSTOP: a hung node, as far as polls can tell
    try:
        states = [(await host.status(handle)).state for _ in range(3)]
        last = await host.status(handle)
    finally:
        worker.resume()
    print(f"\n  hung actor: {states}, then {last}")
    assert states[:2] == [HostState.RUNNING, HostState.RUNNING]  # not answering is not dead yet
    assert states[2] is HostState.GONE
    assert last.state is HostState.GONE
    assert "stopped answering" in last.message
    await wait_until(lambda: _running(host, handle), 10, "the resumed actor to answer")  # it recovers
    await host.stop(handle, 1.0)


def test_a_cluster_fixture_stops_exactly_its_own_processes(ray_cluster: RayCluster) -> None:
    shared = [p for p in ray_cluster.processes() if p.name in ("gcs_server", "raylet") and p.process()]
    assert shared
    with ray_cluster_context(nodes=1) as mini:
        mine = mini.processes()
        assert {p.name for p in mine} >= {"gcs_server", "raylet"}
        assert not set(mine) & set(ray_cluster.processes())
    assert all(p.process() is None for p in mine)  # every process of the mini cluster is gone...
    assert all(p.process() is not None for p in shared)  # ...and the shared cluster's daemons are not


async def test_a_dead_node_takes_its_sessions_down(
    make_host: MakeHost, make_spec: Callable[..., RenderSpec], callbacks: Callbacks, ray_cluster: RayCluster
) -> None:
    """Runs last: it kills the second node and then replaces it."""
    host = await make_host()
    handles: list[dict[str, Any]] = []
    while not any(h["nodeIp"] == NODE2_IP for h in handles) and len(handles) < 3:
        handles.append((await start_ready(host, make_spec(), callbacks))[0])
    victim = next(h for h in handles if h["nodeIp"] == NODE2_IP)
    survivors = [h for h in handles if h is not victim]

    node = next(n for n in ray_cluster.nodes if n.ip == NODE2_IP and not n.stopped)
    began = time.monotonic()
    await asyncio.to_thread(ray_cluster.kill_node, node)
    status = await wait_until(lambda: _not_running(host, victim), 60, "the dead node's session to stop")
    print(f"\n  dead node seen after {time.monotonic() - began:.2f} s: {status}")
    assert status.message
    for handle in survivors:
        assert (await host.status(handle)).running
    capacity = await wait_until(lambda: _without_node(host, NODE2_IP), 60, "the node to be marked dead")
    assert capacity.slots("Standard").total == 2
    dead = [n for n in capacity.nodes if n.address == NODE2_IP and not n.alive]
    assert dead
    assert all(not slots.total for slots in dead[0].slots.values())
    await host.stop(victim, 1.0)  # idempotent on a dead node

    # The cluster heals: a fresh node on the same address takes sessions again.
    await asyncio.to_thread(ray_cluster.start_node)
    await wait_until(lambda: _standard_total(host, 3), 60, "the new node's slots")
    for handle in survivors:
        await host.stop(handle, 2.0)


async def _without_node(host: RayHost, address: str) -> Any:
    capacity = await host.capacity()
    alive = [n for n in capacity.nodes if n.address == address and n.alive]
    return None if alive else capacity


async def _standard_total(host: RayHost, total: int) -> bool:
    return (await host.capacity()).slots("Standard").total == total
