"""LocalHost's warm pool and capacity, with real render-server processes on loopback.

Every server a test starts is stopped by pid in the ``host`` fixture's teardown, whatever the test did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from openrr.errors import HostError
from openrr.hosts.base import Handle, HostState, HostStatus, Slots
from openrr.hosts.local import LocalHost
from tests.render.control_plane import CallbackReceiver, Keys, template, wait_for_log

WAITING = "waiting for a session"


class Tracked:
    """A LocalHost whose every handle is remembered, so that teardown can stop them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.local = LocalHost(log_dir, slots={"standard": 3})
        self.handles: list[Handle] = []

    def track(self, handle: Handle) -> Handle:
        self.handles.append(handle)
        return handle


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Tracked]:
    tracked = Tracked(tmp_path / "logs")
    try:
        yield tracked
    finally:
        # Through the host first: it waits for its children, so asyncio sees them exit.
        for handle in tracked.handles:
            await tracked.local.stop(handle, grace=5)
        await tracked.local.close()
        for handle in tracked.handles:
            kill(handle)


def kill(handle: Handle) -> None:
    """Stop a render server this test started (it leads its own process group), by pid."""
    try:
        proc = psutil.Process(int(handle["pid"]))
        if abs(proc.create_time() - float(handle["createTime"])) > 0.5:
            return  # gone long ago; the pid is someone else's now
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(psutil.Error):
        proc.wait(10)


async def until_exited(local: LocalHost, handle: Handle) -> HostStatus:
    # Polled through the host: a waitpid of our own (psutil's wait) would steal the exit status from it.
    for _ in range(600):
        status = await local.status(handle)
        if not status.running:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle['pid']} still runs")


async def pooled(host: Tracked, models: Path, *, wait: bool = True) -> Handle:
    handle = host.track(await host.local.start_idle(template(models)))
    if wait:
        log = Path(handle["log"])
        await wait_for_log(log, WAITING, lambda: psutil.pid_exists(int(handle["pid"])))
    return handle


async def test_a_pooled_server_takes_its_session(
    host: Tracked, receiver: CallbackReceiver, models: Path
) -> None:
    handle = await pooled(host, models)
    assert handle["pooled"] is True
    assert handle["size"] == "standard"
    assert Path(handle["log"]).parent == host.log_dir / "pool"
    assert (await host.local.status(handle)).running

    spec = receiver.session(template(models), Keys(), "s1", models=("two_nodes.glb",))
    session = await host.local.assign(handle, spec)
    (ready,) = await receiver.wait("s1", "ready")
    assert ready.body["pid"] == handle["pid"] == session["pid"]
    assert session["createTime"] == handle["createTime"]
    assert session["size"] == "standard"
    assert not session.get("pooled")
    # The whole life of the server, warm-up included, is now the session's log.
    log = Path(session["log"])
    assert log == host.log_dir / spec.account_id / "s1.log"
    assert not await asyncio.to_thread(Path(handle["log"]).exists)
    await wait_for_log(log, "ready", lambda: psutil.pid_exists(session["pid"]))
    assert WAITING in await asyncio.to_thread(log.read_text)
    assert json.loads(json.dumps(session)) == session  # the store persists it as JSON

    assert (await host.local.status(session)).running
    await host.local.stop(session, grace=5)
    status = await host.local.status(session)
    assert not status.running
    assert "session s1 stopped" in status.message
    await host.local.stop(session, grace=5)  # idempotent


async def test_a_pooled_server_is_assigned_at_most_once(
    host: Tracked, receiver: CallbackReceiver, models: Path
) -> None:
    handle = await pooled(host, models, wait=False)
    first = receiver.session(template(models), Keys(), "first")
    second = receiver.session(template(models), Keys(), "second")
    await host.local.assign(handle, first)
    with pytest.raises(HostError, match="already assigned"):
        await host.local.assign(handle, second)
    await receiver.wait("first", "ready")
    assert not receiver.of("second", "ready")


async def test_concurrent_assignments_of_one_server_give_it_one_session(
    host: Tracked, receiver: CallbackReceiver, models: Path
) -> None:
    handle = await pooled(host, models, wait=False)
    specs = [receiver.session(template(models), Keys(), f"c{i}") for i in range(2)]
    results = await asyncio.gather(*(host.local.assign(handle, s) for s in specs), return_exceptions=True)
    assert sum(isinstance(r, HostError) for r in results) == 1, results
    winner = "c0" if not isinstance(results[0], BaseException) else "c1"
    await receiver.wait(winner, "ready")


async def test_assigning_what_is_no_waiting_pooled_server_raises(
    host: Tracked, receiver: CallbackReceiver, models: Path
) -> None:
    base = template(models)
    keys = Keys()
    # A session server started the ordinary way is no pooled one.
    started = host.track(await host.local.start(receiver.session(base, keys, "plain")))
    assert started["size"] == "standard"
    assert not started.get("pooled")
    with pytest.raises(HostError, match="not a pooled render server"):
        await host.local.assign({**started, "pooled": True}, receiver.session(base, keys, "x"))
    # A pooled server that died.
    dead = await pooled(host, models)
    os.kill(dead["pid"], signal.SIGKILL)
    await until_exited(host.local, dead)
    with pytest.raises(HostError, match=r"is gone.*killed by signal SIGKILL"):
        await host.local.assign(dead, receiver.session(base, keys, "y"))
    # A pooled server this host stopped.
    stopped = await pooled(host, models, wait=False)
    await host.local.stop(stopped, grace=5)
    with pytest.raises(HostError, match="was stopped"):
        await host.local.assign(stopped, receiver.session(base, keys, "z"))
    # Another host's pooled server (a restarted control plane has none of its own yet).
    other = LocalHost(host.log_dir)
    waiting = await pooled(host, models, wait=False)
    with pytest.raises(HostError, match="not a pooled render server"):
        await other.assign(waiting, receiver.session(base, keys, "w"))
    with pytest.raises(HostError):
        await host.local.assign({"kind": "local"}, receiver.session(base, keys, "v"))
    assert not [c for c in receiver.received if c.kind == "ready" and c.session != "plain"]


async def test_a_session_that_does_not_fit_shows_as_an_exit_with_code_2(
    host: Tracked, receiver: CallbackReceiver, models: Path
) -> None:
    handle = await pooled(host, models)
    spec = receiver.session(template(models, size="premium"), Keys(), "misfit")
    session = await host.local.assign(handle, spec)
    status = await until_exited(host.local, session)
    assert status.state is HostState.EXITED
    assert "code 2" in status.message
    assert "template" in status.message


async def test_a_pooled_server_exits_when_its_control_plane_dies(tmp_path: Path, models: Path) -> None:
    # The control plane is a process of its own here, so that it can die the hard way: kill -9.
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        from pathlib import Path
        from openrr.protocol.handshake import RenderSpec
        from openrr.hosts.local import LocalHost

        async def main():
            host = LocalHost(Path(sys.argv[1]))
            handle = await host.start_idle(RenderSpec.from_json(sys.argv[2]))
            print(json.dumps(handle), flush=True)
            await asyncio.sleep(3600)

        asyncio.run(main())
        """
    )
    control = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(tmp_path / "logs"),
        template(models).to_json(),
        stdout=asyncio.subprocess.PIPE,
    )
    handle: Handle | None = None
    try:
        assert control.stdout is not None
        handle = json.loads(await asyncio.wait_for(control.stdout.readline(), 60))
        assert handle is not None
        server = psutil.Process(int(handle["pid"]))
        await wait_for_log(Path(handle["log"]), WAITING, server.is_running)
        control.kill()
        await control.wait()
        await asyncio.to_thread(server.wait, 30)
        assert "no session assigned" in await asyncio.to_thread(Path(handle["log"]).read_text)
    finally:
        if control.returncode is None:
            control.kill()
            await control.wait()
        if handle is not None:
            kill(handle)


async def test_capacity_counts_pooled_started_and_adopted_servers(
    host: Tracked, receiver: CallbackReceiver, models: Path, tmp_path: Path
) -> None:
    local = host.local

    async def free() -> int | None:
        return (await local.capacity()).slots("standard").free

    capacity = await local.capacity()
    assert capacity.sizes == {"standard": Slots(3, 3)}
    assert capacity.slots("premium") == Slots(None, None)  # no limit configured
    (node,) = capacity.nodes
    assert (node.node_id, node.address, node.alive) == (socket.gethostname(), socket.gethostname(), True)
    assert node.slots == {"standard": Slots(3, 3)}

    keys, base = Keys(), template(models)
    idle = await pooled(host, models, wait=False)
    assert await free() == 2
    plain = host.track(await local.start(receiver.session(base, keys, "plain")))
    assert await free() == 1
    session = await local.assign(idle, receiver.session(base, keys, "assigned"))
    assert await free() == 1  # the same server, now with a session
    await receiver.wait("assigned", "ready")
    await receiver.wait("plain", "ready")
    premium = host.track(await local.start(receiver.session(template(models, size="premium"), keys, "p")))
    assert await free() == 1  # other sizes take no standard slot

    # A restarted control plane counts what it adopts.
    restarted = LocalHost(host.log_dir, slots={"standard": 3})
    assert (await restarted.capacity()).slots("standard").free == 3
    assert (await restarted.adopt(plain)).running
    assert (await restarted.capacity()).slots("standard").free == 2

    await local.stop(session, grace=5)
    assert await free() == 2
    os.kill(plain["pid"], signal.SIGKILL)  # a crash frees the slot as well
    for _ in range(200):
        if await free() == 3:
            break
        await asyncio.sleep(0.05)
    assert await free() == 3
    assert (await restarted.capacity()).slots("standard").free == 3
    await local.stop(premium, grace=5)


async def test_close_stops_waiting_pooled_servers_and_leaves_sessions_running(
    host: Tracked, receiver: CallbackReceiver, models: Path
) -> None:
    waiting = await pooled(host, models, wait=False)
    taken = await pooled(host, models, wait=False)
    session = await host.local.assign(taken, receiver.session(template(models), Keys(), "stays"))
    await receiver.wait("stays", "ready")
    await host.local.close()
    # What a restarted control plane finds: no pooled server, the session's server still serving.
    restarted = LocalHost(host.log_dir)
    assert (await restarted.status(waiting)).state is HostState.GONE
    assert (await restarted.adopt(session)).running
