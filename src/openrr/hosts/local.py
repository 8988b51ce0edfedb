"""Render servers as local processes of this machine (the default host).

Each server runs in its own session (process group), so neither Ctrl-C nor a kill -9 of the control plane
takes it down: a restarted control plane adopts it again from the handle ``{pid, createTime, log, size}``.
The create time guards against a recycled pid. Children of this process are reaped by asyncio; adopted ones
are not our children any more, so their liveness is read through psutil.

Warm pool: a pooled server (``start_idle``) keeps the read end of a pipe as its stdin; ``assign`` writes the
session's spec into it and closes it. The pipe is also how a pooled server learns that this control plane
is gone: the kernel closes the write end, the server reads end of input and exits. Its log starts in
``log_dir/pool/`` and moves to the session's place on assignment.

Capacity: ``slots`` caps the render servers of each size on this machine; whatever this host started,
keeps pooled or adopted and is still running takes a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import psutil

from openrr.child_env import child_env
from openrr.errors import HostError
from openrr.hosts.base import Capacity, Handle, HostState, HostStatus, NodeCapacity, Slots
from openrr.hosts.exits import describe_exit, self_stop_reason
from openrr.protocol.handshake import POOL_ENV, SPEC_ENV, RenderSpec

# How long an assignment may wait for a pooled server to take it off the pipe (it reads from its start).
_ASSIGN_TIMEOUT_S = 30.0
# Pooled servers stop at once on SIGTERM or end of input: this is only for a hung one.
_POOL_STOP_GRACE_S = 5.0
_TAKEN_KEPT = 1024


class LocalHost:
    name = "local"

    def __init__(
        self,
        log_dir: Path,
        *,
        python: str = sys.executable,
        slots: Mapping[str, int] | None = None,
    ) -> None:
        self._log_dir = log_dir
        self._python = python
        self._slots = {size.lower(): total for size, total in (slots or {}).items()}
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._waiters: set[asyncio.Task[int]] = set()
        self._known: dict[int, Handle] = {}  # every live server this host counts, by pid
        self._pooled: dict[int, Handle] = {}  # pooled children waiting for a session
        self._taken: dict[int, str] = {}  # pooled children no longer waiting, and why

    # ---- start ----------------------------------------------------------------------------------------
    async def start(self, spec: RenderSpec) -> Handle:
        log_path = self._session_log(spec)
        proc = await self._spawn(spec, log_path, pooled=False)
        return self._register(self._handle(proc.pid, log_path, spec.size))

    async def start_idle(self, template: RenderSpec) -> Handle:
        """A pooled server for ``template``'s size and settings; its handle has ``"pooled": True``."""
        pool_dir = self._log_dir / "pool"
        pool_dir.mkdir(parents=True, exist_ok=True)
        log_path = pool_dir / f"{template.size}-{secrets.token_hex(4)}.log"
        proc = await self._spawn(template, log_path, pooled=True)
        handle = self._register({**self._handle(proc.pid, log_path, template.size), "pooled": True})
        self._pooled[proc.pid] = handle
        self._taken.pop(proc.pid, None)  # a recycled pid of an old pooled server
        return handle

    def _note_taken(self, pid: int, why: str) -> None:
        # Only for a clearer error on a stale pooled handle: the most recent ones are plenty.
        self._taken.pop(pid, None)
        self._taken[pid] = why
        while len(self._taken) > _TAKEN_KEPT:
            del self._taken[next(iter(self._taken))]

    async def assign(self, handle: Handle, spec: RenderSpec) -> Handle:
        """Hand ``spec`` to a pooled server of this host; returns the session's handle (as ``start``'s).

        Raises ``HostError`` when the handle is no pooled server of this host, when that server is gone,
        or when it was assigned before. Whether the server accepts the spec is told by its callbacks and
        by ``status``, as for any start.
        """
        pid = _pid(handle)
        own = self._pooled.get(pid)
        if own is None or own.get("createTime") != handle.get("createTime"):
            why = self._taken.get(pid) if own is None else None
            raise HostError(
                f"The pooled render server {pid} {why}."
                if why
                else f"Process {pid} is not a pooled render server of this control plane."
            )
        # Taken before the first await: a concurrent assign of the same server fails instead of writing.
        del self._pooled[pid]
        self._note_taken(pid, "was already assigned a session")
        proc = self._children.get(pid)
        status = await self.status(own)
        if proc is None or proc.stdin is None or not status.running:
            self._note_taken(pid, "is gone")
            await self.stop(own, _POOL_STOP_GRACE_S)  # only forgets it: nothing runs
            raise HostError(f"The pooled render server {pid} is gone. {status.message}".strip())
        stdin = proc.stdin
        failure: BaseException | None = None
        try:
            stdin.write(spec.to_json().encode() + b"\n")
            await asyncio.wait_for(stdin.drain(), _ASSIGN_TIMEOUT_S)
        except (ConnectionError, TimeoutError) as exc:
            failure = exc
        finally:
            stdin.close()
            with contextlib.suppress(ConnectionError):
                await stdin.wait_closed()
        if failure is not None:
            # Dead, or hung before reading its input: either way of no use, and it must not hold a slot.
            self._note_taken(pid, "is gone")
            await self.stop(own, _POOL_STOP_GRACE_S)
            why = str(failure) or type(failure).__name__
            raise HostError(f"The pooled render server {pid} did not take its session ({why}).")
        log_path = self._session_log(spec)
        try:
            # The server keeps writing to the same open file, now under the session's name.
            os.replace(own["log"], log_path)
        except OSError:
            log_path = Path(own["log"])
        handle = self._handle(pid, log_path, spec.size, create_time=float(own["createTime"]))
        return self._register(handle)

    def _session_log(self, spec: RenderSpec) -> Path:
        log_dir = self._log_dir / spec.account_id
        log_dir.mkdir(parents=True, exist_ok=True)
        return log_dir / f"{spec.session_id}.log"

    async def _spawn(self, spec: RenderSpec, log_path: Path, *, pooled: bool) -> asyncio.subprocess.Process:
        # An allow-listed environment: none of the control plane's secrets (openrr.child_env).
        env = child_env({SPEC_ENV: spec.to_json(), **({POOL_ENV: "1"} if pooled else {})})
        try:
            with await asyncio.to_thread(log_path.open, "ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    self._python,
                    "-m",
                    "openrr.render",
                    # Only a pooled server gets a pipe: a session server must not notice our exit.
                    stdin=asyncio.subprocess.PIPE if pooled else asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
        except OSError as exc:
            raise HostError(f"Could not start the render server: {exc}") from None
        self._children[proc.pid] = proc
        # Reap the child as soon as it exits so it never lingers as a zombie.
        waiter = asyncio.create_task(proc.wait())
        self._waiters.add(waiter)
        waiter.add_done_callback(self._waiters.discard)
        return proc

    def _handle(self, pid: int, log_path: Path, size: str, *, create_time: float | None = None) -> Handle:
        if create_time is None:
            try:
                create_time = psutil.Process(pid).create_time()
            except psutil.Error:
                create_time = 0.0
        return {"kind": self.name, "pid": pid, "createTime": create_time, "log": str(log_path), "size": size}

    def _register(self, handle: Handle) -> Handle:
        self._known[_pid(handle)] = handle
        return handle

    # ---- watch ----------------------------------------------------------------------------------------
    def _process(self, handle: Handle) -> psutil.Process | None:
        try:
            proc = psutil.Process(int(handle["pid"]))
            if abs(proc.create_time() - float(handle.get("createTime", 0))) > 0.5:
                return None  # the pid was recycled by another process
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (psutil.Error, KeyError, TypeError, ValueError):
            return None

    async def status(self, handle: Handle) -> HostStatus:
        child = self._children.get(int(handle.get("pid", -1)))
        gone = self._process(handle) is None
        if child is not None and child.returncode is None and gone:
            # Our child exited but asyncio's child watcher has not delivered the exit status yet (the
            # process is a zombie, or reaped a moment ago): wait for it so the signal/code is reported.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.wait(), 1.0)
        log = handle.get("log")
        if child is not None and child.returncode is not None:
            code = child.returncode
            return HostStatus(HostState.EXITED, describe_exit(code, log), self_stop_reason(code, log))
        if gone:
            return HostStatus(HostState.GONE, describe_exit(None, log), self_stop_reason(None, log))
        return HostStatus(HostState.RUNNING)

    async def adopt(self, handle: Handle) -> HostStatus:
        status = await self.status(handle)
        if status.running:
            self._register(dict(handle))
        return status

    def _alive(self, pid: int, handle: Handle) -> bool:
        child = self._children.get(pid)
        if child is not None and child.returncode is not None:
            return False
        return self._process(handle) is not None

    async def capacity(self) -> Capacity:
        """Slots per size from ``slots``; a server counts while it runs, pooled ones included."""
        live: Counter[str] = Counter()
        for pid, handle in list(self._known.items()):
            if self._alive(pid, handle):
                live[str(handle.get("size", "")).lower()] += 1  # handles say "Standard"; slots "standard"
            else:
                del self._known[pid]
        sizes = {size: Slots(total, max(0, total - live[size])) for size, total in self._slots.items()}
        machine = socket.gethostname()
        return Capacity(sizes=sizes, nodes=(NodeCapacity(machine, machine, True, dict(sizes)),))

    # ---- stop -----------------------------------------------------------------------------------------
    async def stop(self, handle: Handle, grace: float) -> None:
        pid = int(handle.get("pid", -1))
        child = self._children.get(pid)
        if self._pooled.pop(pid, None) is not None:
            self._note_taken(pid, "was stopped")
            if child is not None and child.stdin is not None:
                child.stdin.close()  # end of input: it exits by itself, SIGTERM or not
        proc = self._process(handle)
        if proc is None:
            if child is not None and child.returncode is None:
                # Exited, not yet reaped: let asyncio collect it rather than drop it unseen.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.wait(), 1.0)
            self._children.pop(pid, None)
            self._known.pop(pid, None)
            return
        self._signal(pid, signal.SIGTERM)
        if not await self._wait_gone(handle, child, grace):
            self._signal(pid, signal.SIGKILL)
            await self._wait_gone(handle, child, 5.0)
        self._children.pop(pid, None)
        self._known.pop(pid, None)

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        # The server leads its own process group: signal the group so helpers it started go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)

    async def _wait_gone(
        self, handle: Handle, child: asyncio.subprocess.Process | None, timeout: float
    ) -> bool:
        if child is not None:
            try:
                await asyncio.wait_for(child.wait(), timeout)
                return True
            except TimeoutError:
                return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self._process(handle) is None:
                return True
            await asyncio.sleep(0.05)
        return self._process(handle) is None

    async def close(self) -> None:
        # Pooled servers without a session serve nobody once we are gone (at end of input they would exit
        # anyway): stop them now. Session servers outlive the control plane on purpose; only stop watching.
        pooled = list(self._pooled.values())
        await asyncio.gather(*(self.stop(handle, _POOL_STOP_GRACE_S) for handle in pooled))
        for waiter in list(self._waiters):
            waiter.cancel()
        # The children stay known: a stop after close still waits for their exit through asyncio, which
        # must see it (a child it never saw exit is reported as a leak).


def _pid(handle: Handle) -> int:
    try:
        return int(handle["pid"])
    except (KeyError, TypeError, ValueError):
        raise HostError(f"Not a render server handle of the local host: {handle!r}") from None
