"""Fakes for control-plane tests: a host whose render servers are plain records the test steers."""

from __future__ import annotations

import asyncio
import dataclasses

from openrr.errors import HostError, TryAgain
from openrr.handshake import ReadyReport, RenderSpec
from openrr.hosts.base import Handle, HostState, HostStatus
from openrr.services.sessions import SessionService


@dataclasses.dataclass
class FakeServer:
    spec: RenderSpec
    state: HostState = HostState.RUNNING
    message: str = ""
    stopped: bool = False
    adopted: bool = False


class FakeHost:
    """A Host whose servers exist only in memory.

    ``auto_ready``: each started server reports ready right away (like a fast render server).
    ``fail_start``: ``start`` raises HostError. ``crash(session_id)`` makes a server exit.
    """

    name = "fake"

    def __init__(self, *, auto_ready: bool = True, fail_start: bool = False) -> None:
        self.auto_ready = auto_ready
        self.fail_start = fail_start
        self.servers: dict[str, FakeServer] = {}
        self.service: SessionService | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._port = 50000

    def attach(self, service: SessionService) -> None:
        self.service = service

    async def start(self, spec: RenderSpec) -> Handle:
        if self.fail_start:
            raise HostError("no render server could be started (fake)")
        key = f"{spec.account_id}/{spec.session_id}/{spec.instance}"
        self.servers[key] = FakeServer(spec)
        if self.auto_ready:
            task = asyncio.create_task(self.report_ready(spec))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return {"kind": self.name, "key": key}

    async def report_ready(self, spec: RenderSpec) -> None:
        assert self.service is not None
        self._port += 2
        report = ReadyReport(spec.instance, "render.test", self._port, self._port + 1, spec.teraflops, 1)
        for _ in range(100):
            try:
                await self.service.mark_ready(spec.account_id, spec.session_id, report)
                return
            except TryAgain:
                await asyncio.sleep(0.001)

    def server(self, session_id: str) -> FakeServer:
        matches = [s for s in self.servers.values() if s.spec.session_id == session_id]
        assert matches, f"no fake server for {session_id}"
        return matches[-1]

    def crash(self, session_id: str, message: str = "The render server exited with code 1.") -> None:
        server = self.server(session_id)
        server.state, server.message = HostState.EXITED, message

    async def settle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def status(self, handle: Handle) -> HostStatus:
        server = self.servers.get(handle["key"])
        if server is None:
            return HostStatus(HostState.GONE, "unknown fake server")
        return HostStatus(server.state, server.message)

    async def adopt(self, handle: Handle) -> HostStatus:
        server = self.servers.get(handle["key"])
        if server is not None:
            server.adopted = True
        return await self.status(handle)

    async def stop(self, handle: Handle, grace: float) -> None:
        server = self.servers.get(handle["key"])
        if server is not None:
            server.stopped = True
            server.state = HostState.EXITED

    async def close(self) -> None:
        await self.settle()
