"""Render servers as local processes of this machine (the default host).

Each server runs in its own session (process group), so neither Ctrl-C nor a kill -9 of the control plane
takes it down: a restarted control plane adopts it again from the handle ``{pid, createTime, log}``. The
create time guards against a recycled pid. Children of this process are reaped by asyncio; adopted ones
are not our children any more, so their liveness is read through psutil.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import psutil

from openrr.errors import HostError
from openrr.handshake import SPEC_ENV, RenderSpec
from openrr.hosts.base import Handle, HostState, HostStatus

_LOG_TAIL_LINES = 8


def _tail(path: str | None) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-_LOG_TAIL_LINES:])


def _describe_exit(code: int | None, log: str | None) -> str:
    if code is None:
        how = "The render server process is gone"
    elif code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:  # e.g. real-time signals other than SIGRTMIN/SIGRTMAX have no enum member
            name = str(-code)
        how = f"The render server was killed by signal {name}"
    else:
        how = f"The render server exited with code {code}"
    tail = _tail(log)
    return f"{how}." + (f" Last log lines: {tail}" if tail else "")


class LocalHost:
    name = "local"

    def __init__(self, log_dir: Path, *, python: str = sys.executable) -> None:
        self._log_dir = log_dir
        self._python = python
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._waiters: set[asyncio.Task[int]] = set()

    async def start(self, spec: RenderSpec) -> Handle:
        log_dir = self._log_dir / spec.account_id
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{spec.session_id}.log"
        env = dict(os.environ)
        env[SPEC_ENV] = spec.to_json()
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            with open(log_path, "ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    self._python,
                    "-m",
                    "openrr.render",
                    stdin=asyncio.subprocess.DEVNULL,
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
        try:
            create_time = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            create_time = 0.0
        return {"kind": self.name, "pid": proc.pid, "createTime": create_time, "log": str(log_path)}

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
        if child is not None and child.returncode is not None:
            return HostStatus(HostState.EXITED, _describe_exit(child.returncode, handle.get("log")))
        if gone:
            return HostStatus(HostState.GONE, _describe_exit(None, handle.get("log")))
        return HostStatus(HostState.RUNNING)

    async def adopt(self, handle: Handle) -> HostStatus:
        return await self.status(handle)

    async def stop(self, handle: Handle, grace: float) -> None:
        pid = int(handle.get("pid", -1))
        child = self._children.get(pid)
        proc = self._process(handle)
        if proc is None:
            self._children.pop(pid, None)
            return
        self._signal(pid, signal.SIGTERM)
        if not await self._wait_gone(handle, child, grace):
            self._signal(pid, signal.SIGKILL)
            await self._wait_gone(handle, child, 5.0)
        self._children.pop(pid, None)

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
        # Render servers outlive the control plane on purpose; only stop watching them.
        for waiter in list(self._waiters):
            waiter.cancel()
        self._children.clear()
