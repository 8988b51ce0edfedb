"""Fakes for control-plane tests: a host whose render servers are plain records the test steers."""

from __future__ import annotations

import asyncio
import dataclasses

from openrr.domain.session import Size
from openrr.errors import HostError, IllegalTransition, TryAgain
from openrr.hosts.base import Capacity, Handle, HostState, HostStatus, NodeCapacity, Slots
from openrr.protocol.handshake import SHARED_FIELDS, ReadyReport, RenderSpec
from openrr.services.sessions import SessionService

# The fields a pooled server warmed up with; the session's spec must keep them (see ``protocol.handshake``).


@dataclasses.dataclass
class FakeServer:
    spec: RenderSpec
    state: HostState = HostState.RUNNING
    message: str = ""
    reason: str | None = None  # why it stopped itself, as HostStatus.reason
    stopped: bool = False
    adopted: bool = False
    pooled: bool = False  # started by start_idle and waiting for its session
    from_pool: bool = False  # a pooled server that was assigned its session


class FakeHost:
    """A Host whose servers exist only in memory.

    ``auto_ready``: each started (or assigned) server reports ready right away (like a fast render server).
    ``fail_start`` / ``fail_start_idle``: ``start`` / ``start_idle`` raise HostError. ``crash(session_id)``
    makes a session's server exit; ``crash_handle(handle)`` any server's, pooled ones included.
    ``slots``: render servers per size (any letter case); ``capacity()`` reports them under the lower-case
    size as ``Capacity`` wants, with free = total - servers of that size still running, pooled or not. As
    with the local host, a start beyond the slots is not refused: keeping within them is the caller's job,
    and ``peak_live`` shows whether it did. ``cold_starts``, ``idle_starts`` and ``assigns`` count
    successful calls.
    """

    name = "fake"

    def __init__(
        self,
        *,
        auto_ready: bool = True,
        fail_start: bool = False,
        fail_start_idle: bool = False,
        slots: dict[str, int] | None = None,
    ) -> None:
        self.auto_ready = auto_ready
        self.fail_start = fail_start
        self.fail_start_idle = fail_start_idle
        self.slots = {Size.parse(size).value.lower(): n for size, n in (slots or {}).items()}
        self.servers: dict[str, FakeServer] = {}  # by handle key: sessions' and waiting pooled servers
        self.service: SessionService | None = None
        self.cold_starts = 0
        self.idle_starts = 0
        self.assigns = 0
        self.peak_live: dict[str, int] = {}  # by lower-case size: the most servers running at once
        self._assigned: dict[str, str] = {}  # pooled key -> the session key it became (the same server)
        self._tasks: set[asyncio.Task[None]] = set()
        self._port = 50000
        #: where every server reports itself ready, when set: (host, port) of a stand-in render server
        self.render_address: tuple[str, int] | None = None
        self._pool_seq = 0

    def attach(self, service: SessionService) -> None:
        self.service = service

    async def start(self, spec: RenderSpec) -> Handle:
        if self.fail_start:
            raise HostError("no render server could be started (fake)")
        key = self._session_key(spec)
        self.servers[key] = FakeServer(spec)
        self.cold_starts += 1
        self._note_live(spec.size)
        self._ready_soon(spec)
        return {"kind": self.name, "key": key}

    async def start_idle(self, template: RenderSpec) -> Handle:
        if self.fail_start_idle:
            raise HostError("no pooled render server could be started (fake)")
        self._pool_seq += 1
        key = f"pool/{template.size}/{self._pool_seq}"
        self.servers[key] = FakeServer(template, pooled=True)
        self.idle_starts += 1
        self._note_live(template.size)
        return {"kind": self.name, "key": key, "pooled": True, "size": template.size}

    async def assign(self, handle: Handle, spec: RenderSpec) -> Handle:
        """Give a waiting pooled server its session: the same server, now under the session's key.

        Raises HostError for a handle that is not a waiting pooled server of this host (unknown, already
        assigned, stopped or exited). A spec whose shared fields differ from the template's is taken and
        then refused by the server, which exits (as a real one does), so ``status`` tells, not ``assign``.
        """
        key = str(handle.get("key"))
        if key in self._assigned:
            raise HostError(f"The pooled render server {key} was already assigned a session.")
        server = self.servers.get(key)
        if server is None or not server.pooled:
            raise HostError(f"{key} is not a pooled render server of this host.")
        del self.servers[key]
        if server.state is not HostState.RUNNING:
            raise HostError(f"The pooled render server {key} is gone. {server.message}".strip())
        template = server.spec
        session_key = self._session_key(spec)
        server.spec, server.pooled, server.from_pool = spec, False, True
        self.servers[session_key] = server
        self._assigned[key] = session_key
        self.assigns += 1
        differing = [f for f in SHARED_FIELDS if getattr(spec, f) != getattr(template, f)]
        if differing:
            server.state = HostState.EXITED
            server.message = f"The session's spec differs from the pooled template in {', '.join(differing)}."
        else:
            self._ready_soon(spec)
        return {"kind": self.name, "key": session_key}

    async def capacity(self) -> Capacity:
        sizes = {size: Slots(total, max(0, total - self.live(size))) for size, total in self.slots.items()}
        return Capacity(sizes=sizes, nodes=(NodeCapacity("fake-node", "fake.test", True, dict(sizes)),))

    def live(self, size: str) -> int:
        """Servers of ``size`` (any letter case) still running, pooled ones included."""
        size = size.lower()
        return sum(
            1 for s in self.servers.values() if s.state is HostState.RUNNING and s.spec.size.lower() == size
        )

    def pooled(self) -> list[FakeServer]:
        """Pooled servers waiting for a session."""
        return [s for s in self.servers.values() if s.pooled]

    def _session_key(self, spec: RenderSpec) -> str:
        return f"{spec.account_id}/{spec.session_id}/{spec.instance}"

    def _note_live(self, size: str) -> None:
        size = size.lower()
        self.peak_live[size] = max(self.peak_live.get(size, 0), self.live(size))

    def _ready_soon(self, spec: RenderSpec) -> None:
        if self.auto_ready:
            task = asyncio.create_task(self.report_ready(spec))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _find(self, handle: Handle) -> FakeServer | None:
        key = str(handle.get("key"))
        return self.servers.get(self._assigned.get(key, key))

    async def report_ready(self, spec: RenderSpec) -> None:
        assert self.service is not None
        self._port += 2
        if self.render_address is not None:  # a stand-in render server that really answers on loopback
            host, port = self.render_address
            report = ReadyReport(spec.instance, host, port, port, spec.teraflops, 1)
        else:
            report = ReadyReport(spec.instance, "render.test", self._port, self._port + 1, spec.teraflops, 1)
        for _ in range(100):
            try:
                await self.service.mark_ready(spec.account_id, spec.session_id, report)
                return
            except TryAgain:
                await asyncio.sleep(0.001)
            except IllegalTransition:
                return  # stopped before it was ready: a real render server hears 409 and exits

    def server(self, session_id: str) -> FakeServer:
        matches = [s for s in self.servers.values() if s.spec.session_id == session_id]
        assert matches, f"no fake server for {session_id}"
        return matches[-1]

    def crash(
        self,
        session_id: str,
        message: str = "The render server exited with code 1.",
        reason: str | None = None,
    ) -> None:
        """The session's server exits; ``reason``: it stopped itself (protocol.handshake: LEASE_ENDED...)."""
        server = self.server(session_id)
        server.state, server.message, server.reason = HostState.EXITED, message, reason

    def crash_handle(self, handle: Handle, message: str = "The render server exited with code 1.") -> None:
        server = self._find(handle)
        assert server is not None, f"no fake server for {handle}"
        server.state, server.message = HostState.EXITED, message

    async def settle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def status(self, handle: Handle) -> HostStatus:
        server = self._find(handle)
        if server is None:
            return HostStatus(HostState.GONE, "unknown fake server")
        return HostStatus(server.state, server.message, server.reason)

    async def adopt(self, handle: Handle) -> HostStatus:
        server = self._find(handle)
        if server is not None:
            server.adopted = True
        return await self.status(handle)

    async def stop(self, handle: Handle, grace: float) -> None:
        server = self._find(handle)
        if server is not None:
            server.stopped = True
            server.state = HostState.EXITED

    async def close(self) -> None:
        await self.settle()
