"""The Ray actor behind ``RayHost``: it supervises one ``python -m openrr.render`` process on its node.

The render server itself is unchanged: the actor only starts it (with the spec in ``SPEC_ENV``, as the
local host does), watches it, stops it and reports on it. Its addresses are rewritten to the node's IP
first, because only the node knows where it runs.

Fate sharing: the child must not outlive its actor (``ray.kill``, a crashed worker, a dead node), or it
would hold a port and a GPU with no slot accounted for. It is started with ``PR_SET_PDEATHSIG = SIGKILL``,
which the kernel fires when the *thread* that forked it ends; async actor methods all run on one
event-loop thread that lives as long as the actor, so the child is forked from there. Orderly exits
(``stop``, the pool watchdog, ``exit_actor``'s atexit hooks) kill it explicitly as well.

Pooled actors: nobody but their control plane knows they exist, so one that has not been polled for
``pool_idle_timeout_s`` (its control plane is gone) stops its child and exits.

Session actors outlive their control plane as their render server does. But once that server has ended
(it stops itself at its lease end, or when its control plane has been unreachable too long: see
``protocol.handshake``, "Lease") and nobody has polled for ``pool_idle_timeout_s``, the actor would hold its
slot for nothing: it leaves its last ``poll`` answer in Ray's internal KV store (``EXIT_KV_NAMESPACE``,
key ``exit_key(namespace, name)``), where a returning control plane's ``RayHost.status`` finds it, and exits.

Logs: the child writes to a file on the node (``log_dir``, else ``logs/openrr/`` in the Ray session's
directory); ``poll`` sends its last lines back, since the control plane cannot read the node's files.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import ray

from openrr.child_env import child_env
from openrr.compat.ray import kv_put
from openrr.hosts.exits import describe_exit, self_stop_reason
from openrr.protocol.handshake import POOL_ENV, SPEC_ENV, RenderSpec

_PR_SET_PDEATHSIG = 1
# Where a session actor whose render server has ended leaves its last poll before it exits (module doc).
EXIT_KV_NAMESPACE = b"openrr-exits"


def exit_key(namespace: str, name: str) -> bytes:
    return f"{namespace}/{name}".encode()


def _libc_prctl() -> Any:
    # Looked up once in the parent: the forked child only calls it (no dlopen between fork and exec).
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl


def render_env(spec_json: str, *, pooled: bool) -> dict[str, str]:
    # An allow-list (openrr.child_env): the worker's environment holds the cluster's auth token (RAY_*)
    # and whatever the node exported, and a render server loads models from anywhere.
    return child_env({SPEC_ENV: spec_json, **({POOL_ENV: "1"} if pooled else {})})


@dataclasses.dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    log: str


@ray.remote(num_cpus=0, max_restarts=0)
class RenderSupervisor:
    """One render server process; every method returns plain dicts (they travel through Ray)."""

    def __init__(self, name: str, pool_idle_timeout_s: float = 60.0, log_dir: str | None = None) -> None:
        self._name = name
        self._idle_timeout = pool_idle_timeout_s
        self._log_dir = log_dir
        self._node_ip: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        self._node_id = ray.get_runtime_context().get_node_id()
        self._child: _Child | None = None
        self._pooled = False
        self._assigned = False
        self._last_poll = time.monotonic()
        self._watchdog: asyncio.Task[None] | None = None
        self._prctl = _libc_prctl()
        atexit.register(self._kill_child)

    # ---- start ----------------------------------------------------------------------------------------
    async def start(self, spec_json: str, pooled: bool) -> dict[str, Any]:
        """Launch the render server (a pooled one waits on stdin for its session); returns ``info``."""
        if self._child is not None:
            raise RuntimeError("this actor already runs a render server")
        spec = self._on_node(spec_json)
        log_path = self._log_path()
        self._pooled = pooled
        self._last_poll = time.monotonic()
        # Blocking, deliberately: the child is forked from the event loop's thread, because PR_SET_PDEATHSIG
        # fires when the forking thread ends and only this one lives as long as the actor (module doc); and
        # with no await until the child is recorded, a poll or stop that arrives meanwhile cannot find an
        # actor without a child. Opening a local file and one fork take milliseconds.
        with open(log_path, "ab") as log:  # noqa: ASYNC230 -- no await before the child is recorded
            proc = subprocess.Popen(  # noqa: ASYNC220 -- must fork from the loop thread (above)
                [sys.executable, "-m", "openrr.render"],
                stdin=subprocess.PIPE if pooled else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=render_env(spec.to_json(), pooled=pooled),
                preexec_fn=self._die_with_parent,  # PR_SET_PDEATHSIG: see the module docstring
                close_fds=True,
            )
        self._child = _Child(proc, str(log_path))
        self._watchdog = asyncio.create_task(self._watch_idle() if pooled else self._watch_session())
        return self._info()

    async def assign(self, spec_json: str) -> dict[str, Any]:
        """Give a pooled render server its session (the spec, as one line on its stdin).

        No await in here: two assignments cannot interleave. Until one succeeds the idle watchdog keeps
        running, so a pooled actor whose assignment failed still expires when nobody watches it."""
        child = self._child
        if not self._pooled or child is None:
            raise RuntimeError("this actor has no pooled render server")
        if self._assigned:
            raise RuntimeError("this pooled render server was already assigned a session")
        if child.proc.poll() is not None or child.proc.stdin is None:
            raise RuntimeError(describe_exit(child.proc.returncode, child.log))
        spec = self._on_node(spec_json)
        try:
            child.proc.stdin.write(spec.to_json().encode() + b"\n")
            child.proc.stdin.flush()
        except OSError as exc:  # the server died between the check and the write
            raise RuntimeError(f"The pooled render server did not take its session ({exc}).") from None
        finally:
            with contextlib.suppress(OSError):
                child.proc.stdin.close()  # after a failed write: end of input, the server exits
        self._assigned = True
        self._stop_watchdog()
        self._watchdog = asyncio.create_task(self._watch_session())
        return self._info()

    def _on_node(self, spec_json: str) -> RenderSpec:
        # Bind and advertise the node's own address: a template and its assignment are rewritten alike,
        # so their shared fields still match.
        spec = RenderSpec.from_json(spec_json)
        return dataclasses.replace(spec, bind_host=self._node_ip, advertise_host=self._node_ip)

    def _log_path(self) -> Path:
        if self._log_dir:
            directory = Path(self._log_dir)
        else:
            context = ray.get_runtime_context()
            directory = Path(context.get_temp_dir()) / context.get_session_name() / "logs" / "openrr"
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{self._name}.log"

    def _die_with_parent(self) -> None:
        # Runs in the forked child before exec.
        if self._prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)

    def _info(self) -> dict[str, Any]:
        assert self._child is not None
        return {
            "nodeId": self._node_id,
            "nodeIp": self._node_ip,
            "pid": self._child.proc.pid,
            "log": self._child.log,
        }

    # ---- watch ----------------------------------------------------------------------------------------
    async def poll(self) -> dict[str, Any]:
        """``{running, code, message, reason}``; ``message`` describes an exit, with the log's last lines;
        ``reason`` says why the server stopped itself, if it did (``openrr.hosts.exits.self_stop_reason``)."""
        self._last_poll = time.monotonic()
        child = self._child
        if child is None:
            return {"running": False, "code": None, "message": "No render server was started."}
        code = child.proc.poll()
        if code is None:
            return {"running": True, "code": None, "message": ""}
        message = describe_exit(code, child.log)
        return {
            "running": False,
            "code": code,
            "message": message,
            "reason": self_stop_reason(code, child.log),
        }

    async def _watch_idle(self) -> None:
        interval = max(0.05, min(1.0, self._idle_timeout / 4))
        while not self._assigned:
            await asyncio.sleep(interval)
            if not self._assigned and time.monotonic() - self._last_poll > self._idle_timeout:
                # exit_actor() only works inside an actor task: ask ourselves to run one.
                ray.get_runtime_context().current_actor.expire.remote()
                return

    async def expire(self) -> None:
        """End an unclaimed pooled server and this actor (its control plane stopped asking about it)."""
        if self._assigned:
            return
        self._kill_child()
        ray.actor.exit_actor()  # type: ignore[no-untyped-call]

    async def _watch_session(self) -> None:
        interval = max(0.05, min(1.0, self._idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            child = self._child
            ended = child is not None and child.proc.poll() is not None
            if ended and time.monotonic() - self._last_poll > self._idle_timeout:
                ray.get_runtime_context().current_actor.retire.remote()  # exit_actor needs an actor task
                return

    async def retire(self) -> None:
        """End this actor, whose session's render server has ended and whose control plane is not asking
        (see the module doc): its last poll stays in the KV store for the control plane to read later."""
        last = await self.poll()
        if last["running"]:
            return
        context = ray.get_runtime_context()
        key = exit_key(context.namespace, self._name)
        await asyncio.to_thread(kv_put, key, json.dumps(last).encode(), EXIT_KV_NAMESPACE)
        ray.actor.exit_actor()  # type: ignore[no-untyped-call]

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    # ---- stop -----------------------------------------------------------------------------------------
    async def stop(self, grace: float) -> dict[str, Any]:
        """SIGTERM, SIGKILL after ``grace`` seconds; returns the final ``poll``. Idempotent."""
        self._stop_watchdog()
        child = self._child
        if child is not None and child.proc.poll() is None:
            if child.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    child.proc.stdin.close()  # a pooled server also exits at end of input
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
            if not await _wait_exit(child.proc, grace):
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
                await _wait_exit(child.proc, 5.0)
        return await self.poll()

    def _kill_child(self) -> None:
        child = self._child
        if child is not None and child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(2.0)


async def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True
