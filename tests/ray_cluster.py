"""A real, private Ray cluster on loopback for tests: a head on 127.0.0.2 and a second node on 127.0.0.3.

Why so much ceremony (see notes/stack-feasibility.md §4):
  * 127.0.0.1 would be rewritten to the machine's LAN address, so the nodes use 127.0.0.2 / 127.0.0.3.
  * Two nodes on one machine collide on Ray's default ports, and a parallel test run would too: every port
    option gets a port found free here, and each node its own worker-port range.
  * ``ray stop`` kills every Ray process on the machine. Each ``ray start`` runs in its own session
    (``start_new_session``), so every process it forks (gcs_server, raylet, agents, workers, and the render
    servers actors start) carries that session's id. Ray puts each worker in a process group of its own,
    so membership is by session, not by group. Stopping signals exactly the pids found in our sessions,
    SIGTERM first and then SIGKILL (some Ray daemons outlive SIGTERM), and checks that each process ever
    seen in them is gone. If the test process dies without its teardown, a small watcher process kills
    the processes of those sessions.
  * Token auth is on (as in production): the fixture makes a random token; ``driver_env()`` carries it to
    drivers (``openrr serve --host-backend ray``), ``token_file`` holds it for ``RayHost(auth_token_file=)``.
  * The GCS health check runs faster than Ray's default (about 15 s to declare a node dead) so node-death
    tests stay short.

Fixture ``ray_cluster`` (session scope, two nodes): import ``ray_cluster_fixture`` into a conftest.py to
use it. ``ray_cluster_context`` / ``RayCluster`` give a private cluster of your own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NotRequired, TypedDict

import psutil
import pytest

HEAD_IP = "127.0.0.2"
NODE2_IP = "127.0.0.3"
HEAD_RESOURCES = {"render_standard": 2, "render_premium": 1}
NODE2_RESOURCES = {"render_standard": 1}
# Every address a Ray process of a test cluster may bind; a chosen port must be free on all of them.
_LOOPBACKS = ("127.0.0.1", HEAD_IP, NODE2_IP)
_OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's minimum is 75 MiB; CI machines have little memory
_WORKER_PORTS = 60  # per node: one per worker process (a few actors + prestarted workers)
# Unix sockets live under each node's temp dir, BASE/<n>/session_<date>_<time>_<usec>_<pid>/sockets/
# plasma_store: about BASE + 66 characters, and AF_UNIX paths must stay below 108 bytes.
_MAX_TEMP_DIR = 36
# Fast node-death detection (Ray's default: 3 s period x 5 failures after a 5 s initial delay).
_FAST_HEALTH_CHECK = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


# Crash safety: if the test process dies without its teardown (SIGKILL, a fatal Ray abort), this small
# process, started with the cluster, kills the processes of the sessions listed in the registry file.
# Normal stops empty the registry first and then end the watcher.
_WATCHER = """
import os, signal, sys, time
parent, registry = int(sys.argv[1]), sys.argv[2]
while os.getppid() == parent:
    time.sleep(0.5)
try:
    groups = [int(g) for g in open(registry).read().split()]
except (OSError, ValueError):
    groups = []
for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    try:
        if os.getsid(pid) in groups:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""


def ray_executable() -> str | None:
    """The ``ray`` CLI of the running interpreter's environment (None: Ray is not installed)."""
    candidate = Path(sys.executable).parent / "ray"
    if candidate.is_file():
        return str(candidate)
    return shutil.which("ray")


def _bindable(port: int) -> bool:
    for host in _LOOPBACKS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


class _Ports:
    """Hands out ports that are free on every loopback address, never the same one twice."""

    def __init__(self) -> None:
        self.taken: set[int] = set()

    def one(self) -> int:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in self.taken and _bindable(port):
                self.taken.add(port)
                return port
        raise RuntimeError("no free port found on the loopback addresses")

    def range(self, size: int) -> tuple[int, int]:
        # Below Linux's ephemeral range (32768+), so outgoing connections do not grab them meanwhile.
        for _ in range(200):
            low = random.randrange(20000, 32000 - size)
            ports = range(low, low + size)
            if not self.taken.intersection(ports) and all(_bindable(p) for p in ports):
                self.taken.update(ports)
                return low, low + size - 1
        raise RuntimeError(f"no free range of {size} ports found on the loopback addresses")


class RayServeOptions(TypedDict):
    """The ``openrr serve`` options that point it at a cluster (``RayCluster.serve_options``)."""

    host_backend: str
    ray_address: str
    ray_namespace: str
    ray_auth_token_file: NotRequired[str]


@dataclasses.dataclass(frozen=True)
class _Proc:
    pid: int
    create_time: float
    name: str = dataclasses.field(default="", compare=False)

    def process(self) -> psutil.Process | None:
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.5 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None


@dataclasses.dataclass
class RayNode:
    """One ``ray start`` and everything it forked: one session (``pgid``: the session and first group id,
    the exited CLI's pid), whose processes Ray spreads over several process groups."""

    name: str
    ip: str
    resources: dict[str, int]
    temp_dir: Path
    pgid: int
    log: Path
    seen: set[_Proc] = dataclasses.field(default_factory=set)
    stopped: bool = False

    def members(self) -> list[psutil.Process]:
        """The live processes of this node's session (workers and render servers included)."""
        found = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getsid(proc.pid) == self.pgid and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (ProcessLookupError, psutil.Error):
                continue
        return found

    def refresh(self) -> list[psutil.Process]:
        """Record every current member, so teardown can prove each one is gone."""
        members = self.members()
        for proc in members:
            with contextlib.suppress(psutil.Error):
                self.seen.add(_Proc(proc.pid, proc.create_time(), proc.name()))
        return members

    def alive(self) -> list[_Proc]:
        return [p for p in self.seen if p.process() is not None]

    def signal(self, sig: signal.Signals) -> None:
        # Each pid is signalled as found in our session a moment ago: a session id cannot be reused while
        # a process of the session lives, and each pid was just checked to be one.
        for proc in self.refresh():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, sig)

    def kill(self, grace: float = 2.0) -> list[_Proc]:
        """SIGTERM the group, SIGKILL what is left after ``grace``; returns survivors (should be none)."""
        self.signal(signal.SIGTERM)
        _wait(lambda: not self.alive(), grace)
        self.signal(signal.SIGKILL)
        _wait(lambda: not self.alive(), 10.0)
        self.stopped = True
        return self.alive()


def _wait(done: object, timeout: float) -> bool:
    assert callable(done)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.05)
    return bool(done())


class RayCluster:
    """A private Ray cluster: ``start()`` brings up the head (and ``start_node`` more nodes); ``stop()``
    ends exactly the processes it started.

    ``address`` is the GCS address for ``ray.init``/``RayHost``; ``driver_env()`` is what a driver process
    needs in its environment (token auth, no usage stats); ``token_file`` holds the token for
    ``RayHost(auth_token_file=...)``; ``serve_options()`` are the matching ``openrr serve`` options.
    ``kill_node(node)`` kills one node the way a crash would; ``start_node()`` adds (or replaces) one.
    Render servers started by actors run in their node's session, so they go with it.
    """

    def __init__(self, base_dir: Path | None = None, *, token: str | None = None, auth: bool = True) -> None:
        """``auth=False``: a cluster without token authentication (only to test that openrr refuses one)."""
        self.auth = auth
        self._own_base = base_dir is None or len(str(base_dir)) > _MAX_TEMP_DIR
        self.base_dir = Path(tempfile.mkdtemp(prefix="rr")) if self._own_base else Path(str(base_dir))
        if len(str(self.base_dir)) > _MAX_TEMP_DIR:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            raise RuntimeError(f"temp dir {self.base_dir} is too long for Ray's Unix socket paths")
        self.token = token or secrets.token_hex(32)
        self.token_file = self.base_dir / "token"
        self.token_file.write_text(self.token)
        self.token_file.chmod(0o600)
        self.ports = _Ports()
        self.gcs_port = self.ports.one()
        self.address = f"{HEAD_IP}:{self.gcs_port}"
        self.nodes: list[RayNode] = []
        self._ray = ray_executable()
        self._registry = self.base_dir / "groups"
        self._registry.write_text("")
        self._watcher: subprocess.Popen[bytes] | None = None

    # ---- environment ----------------------------------------------------------------------------------
    def driver_env(self) -> dict[str, str]:
        """Environment additions a driver (test process, ``openrr serve``) needs to join this cluster."""
        if not self.auth:
            return {"RAY_USAGE_STATS_ENABLED": "0"}
        return {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def serve_options(self, namespace: str = "openrr") -> RayServeOptions:
        """``openrr serve`` options for this cluster, as ``OpenRRServer(**options)`` takes them
        (``--host-backend ray --ray-address … --ray-namespace … --ray-auth-token-file …``)."""
        options: RayServeOptions = {
            "host_backend": "ray",
            "ray_address": self.address,
            "ray_namespace": namespace,
        }
        if self.auth:
            options["ray_auth_token_file"] = str(self.token_file)
        return options

    def _node_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "OPENRR_"))}
        env.update(self.driver_env())
        env.update(_FAST_HEALTH_CHECK)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # ---- lifecycle ------------------------------------------------------------------------------------
    def start(self, resources: dict[str, int] | None = None, *, timeout: float = 90.0) -> RayNode:
        """Start the head node on ``HEAD_IP``."""
        return self._start(
            "head", HEAD_IP, HEAD_RESOURCES if resources is None else resources, head=True, timeout=timeout
        )

    def start_node(
        self, ip: str = NODE2_IP, resources: dict[str, int] | None = None, *, timeout: float = 90.0
    ) -> RayNode:
        """Start one more node (another loopback address); a killed node can be replaced this way."""
        name = f"node{len(self.nodes) + 1}"
        return self._start(name, ip, NODE2_RESOURCES if resources is None else resources, timeout=timeout)

    def _start(
        self, name: str, ip: str, resources: dict[str, int], *, head: bool = False, timeout: float
    ) -> RayNode:
        if self._ray is None:
            raise RuntimeError("the ray executable is not installed")
        self._start_watcher()
        temp_dir = self.base_dir / str(len(self.nodes))  # short: see _MAX_TEMP_DIR
        temp_dir.mkdir()
        low, high = self.ports.range(_WORKER_PORTS)
        env = self._node_env()
        args = [
            self._ray,
            "start",
            f"--node-ip-address={ip}",
            "--num-cpus=1",
            f"--resources={json.dumps(resources)}",
            f"--object-store-memory={_OBJECT_STORE_BYTES}",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
            f"--node-manager-port={self.ports.one()}",
            f"--object-manager-port={self.ports.one()}",
            f"--dashboard-agent-listen-port={self.ports.one()}",
            f"--dashboard-agent-grpc-port={self.ports.one()}",
            f"--metrics-export-port={self.ports.one()}",
            f"--runtime-env-agent-port={self.ports.one()}",
            f"--min-worker-port={low}",
            f"--max-worker-port={high}",
        ]
        if head:
            args += [
                "--head",
                f"--port={self.gcs_port}",
                "--include-dashboard=false",
                # No --ray-client-server-port: Ray Client needs ray[client], and openrr does not use it.
            ]
            # The autoscaler monitor's metrics server otherwise takes a fixed port (44217) that a
            # parallel test run would also want.
            env["AUTOSCALER_METRIC_PORT"] = str(self.ports.one())
        else:
            args.append(f"--address={self.address}")
        log = self.base_dir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.base_dir,
                start_new_session=True,  # its own session: see the module docstring
            )
        node = RayNode(name, ip, dict(resources), temp_dir, pgid=proc.pid, log=log)
        with contextlib.suppress(psutil.Error):
            node.seen.add(_Proc(proc.pid, psutil.Process(proc.pid).create_time(), "ray start"))
        self.nodes.append(node)
        self._register()  # before waiting: a crash meanwhile must not leak the half-started node
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        node.refresh()
        if code != 0:
            node.kill(grace=1.0)
            raise RuntimeError(f"ray start ({name}) failed with {code}:\n{self.log_tail(node)}")
        return node

    def kill_node(self, node: RayNode) -> None:
        """Kill one node at once (SIGKILL to its whole group), as a crashed machine would go."""
        node.signal(signal.SIGKILL)
        _wait(lambda: not node.alive(), 10.0)
        node.stopped = True
        self._register()

    def _register(self) -> None:
        live = [str(node.pgid) for node in self.nodes if not node.stopped]
        self._registry.write_text(" ".join(live))

    def _start_watcher(self) -> None:
        if self._watcher is not None:
            return
        self._watcher = subprocess.Popen(
            [sys.executable, "-c", _WATCHER, str(os.getpid()), str(self._registry)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outside the groups it may have to kill
        )

    def refresh(self) -> None:
        for node in self.nodes:
            if not node.stopped:
                node.refresh()

    def processes(self) -> list[_Proc]:
        """Every process seen in any of this cluster's groups so far."""
        self.refresh()
        return [p for node in self.nodes for p in node.seen]

    def stop(self) -> list[str]:
        """Stop every node (workers first, head last); returns the processes that survived."""
        survivors: list[str] = []
        for node in reversed(self.nodes):
            node.refresh()
            survivors += [f"{p.name} (pid {p.pid}, {node.name})" for p in node.kill()]
        self._register()
        if self._watcher is not None:
            self._watcher.kill()  # our own child: its pid cannot have been reused before this wait
            self._watcher.wait(5)
            self._watcher = None
        if self._own_base and not survivors:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        return survivors

    @staticmethod
    def log_tail(node: RayNode, lines: int = 30) -> str:
        try:
            return "\n".join(node.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def ray_cluster_context(base_dir: Path | None = None, *, nodes: int = 2) -> Iterator[RayCluster]:
    """A started cluster (head + ``nodes - 1`` more) that is stopped, and checked, on exit."""
    if ray_executable() is None:
        pytest.skip("Ray is not installed here (no `ray` executable)")
    cluster = RayCluster(base_dir)
    try:
        cluster.start()
        if nodes > 1:
            cluster.start_node()
        yield cluster
    finally:
        survivors = cluster.stop()
    assert not survivors, f"Ray processes left behind: {survivors}"


class _Shared:
    """The session's cluster, shared by every conftest that imports the fixture: pytest keeps one
    session-scoped value per conftest that defines it, and one cluster per session is plenty."""

    context: contextlib.AbstractContextManager[RayCluster] | None = None
    cluster: RayCluster | None = None
    users = 0


@pytest.fixture(scope="session", name="ray_cluster")
def ray_cluster_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """One two-node cluster for the whole test session (starting one takes about 10 s); its teardown
    fails if any of its processes survive."""
    if _Shared.cluster is None:
        context: contextlib.AbstractContextManager[RayCluster] = ray_cluster_context(
            tmp_path_factory.mktemp("ray")
        )
        _Shared.cluster = context.__enter__()
        _Shared.context = context
    _Shared.users += 1
    try:
        yield _Shared.cluster
    finally:
        _Shared.users -= 1
        if _Shared.users == 0 and _Shared.context is not None:
            context, _Shared.context, _Shared.cluster = _Shared.context, None, None
            context.__exit__(None, None, None)
