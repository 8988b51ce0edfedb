"""The warm pool: render servers started ahead of demand, so that a create is Ready in well under a second.

A pooled server has done the slow part of a start (interpreter, imports, GL context, shader compile) and
waits for its session (see ``Host.start_idle``/``Host.assign``). Every session still gets a server of its
own that nobody used before: a pooled server is assigned once and never returns to the pool.

Slots: pooled servers hold host slots like sessions do, so sessions + pooled servers must never exceed
the slots, or a cold start would wait for a slot a pooled server holds. Hence: the pool refills only into
slots that neither sessions (counted in the store) nor pooled servers hold, and the host also reports
free; and a create always takes a pooled server if there is one, even one still starting, before it
starts one cold. Each control-plane replica keeps its own pool (a local pooled server listens to the
stdin pipe of the process that started it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from openrr.domain.session import Size
from openrr.errors import HostError
from openrr.hosts.base import Handle, Host
from openrr.protocol.handshake import RenderSpec

log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)  # members are compared by identity
class _Member:
    handle: Handle
    started: float  # time.monotonic() at start_idle


@dataclasses.dataclass(eq=False)
class _Starting:
    """A start_idle in flight. A create that finds no idle server claims it and gets its handle."""

    done: asyncio.Future[Handle | None]
    claimed: bool = False


@dataclasses.dataclass(frozen=True)
class PoolState:
    size: str
    target: int
    idle: int  # started and waiting for a session (some may still be warming up)
    starting: int  # start_idle calls in flight
    taken: int  # sessions served from the pool since this process started
    missed: int  # creates that found the pool empty and started cold


class WarmPool:
    def __init__(
        self,
        host: Host,
        targets: dict[Size, int],
        template: Callable[[Size], RenderSpec],
        *,
        holding: Callable[[], Awaitable[dict[str, int]]] | None = None,
        interval: float = 1.0,
        stop_grace: float = 5.0,
        claim_timeout: float = 60.0,
    ) -> None:
        self._host = host
        self._targets = {size: n for size, n in targets.items() if n > 0}
        self._template = template
        self._holding = holding  # sessions holding a slot, by size value (the store's count)
        self._interval = interval
        self._stop_grace = stop_grace
        self._claim_timeout = claim_timeout
        self._members: dict[Size, collections.deque[_Member]] = {s: collections.deque() for s in Size}
        self._starting: dict[Size, list[_Starting]] = {s: [] for s in Size}
        self._taken: dict[Size, int] = dict.fromkeys(Size, 0)
        self._missed: dict[Size, int] = dict.fromkeys(Size, 0)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        return bool(self._targets)

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="openrr-warm-pool")

    async def take(self, size: Size) -> Handle | None:
        """A pooled server of this size, oldest first (the most likely to be warm), else one still starting
        (waited for), else None: the caller starts one cold."""
        self._wake.set()  # refill in the background, whatever happens here
        members = self._members[size]
        if members:
            self._taken[size] += 1
            return members.popleft().handle
        starting = next((s for s in self._starting[size] if not s.claimed), None)
        if starting is None:
            if size in self._targets:
                self._missed[size] += 1
            return None
        starting.claimed = True
        try:
            handle = await asyncio.wait_for(asyncio.shield(starting.done), self._claim_timeout)
        except TimeoutError:
            self._unclaim(size, starting)
            handle = None
        except asyncio.CancelledError:  # the create itself was cancelled
            self._unclaim(size, starting)
            raise
        if handle is None:
            self._missed[size] += 1
        else:
            self._taken[size] += 1
        return handle

    def _unclaim(self, size: Size, starting: _Starting) -> None:
        """A create gave up on the start it claimed: the server must join the pool, not be lost."""
        if not starting.done.done():
            starting.claimed = False  # _start_one adds it to the pool when it is up
            return
        handle = starting.done.result()
        if handle is not None:
            self._members[size].appendleft(_Member(handle, time.monotonic()))

    def states(self) -> list[PoolState]:
        return [
            PoolState(
                size=size.value,
                target=self._targets.get(size, 0),
                idle=len(self._members[size]),
                starting=len(self._starting[size]),
                taken=self._taken[size],
                missed=self._missed[size],
            )
            for size in Size
        ]

    async def fill(self) -> None:
        """One pass: forget pooled servers that died, then start what is missing into free slots."""
        holding: dict[str, int] | None = None  # asked only when something is missing (most passes: not)
        for size, target in self._targets.items():
            await self._prune(size)
            pooled = len(self._members[size]) + len(self._starting[size])
            missing = target - pooled
            if missing <= 0:
                continue
            slots = (await self._host.capacity()).slots(size.value)
            room = missing
            if slots.free is not None:
                room = min(room, slots.free)
            if slots.total is not None:
                if holding is None:
                    holding = await self._holding() if self._holding is not None else {}
                room = min(room, slots.total - holding.get(size.value, 0) - pooled)
            if room > 0:
                await asyncio.gather(*(self._start_one(size) for _ in range(room)))

    async def _prune(self, size: Size) -> None:
        # A status call is also what keeps a Ray pooled server alive (it exits when nobody asks).
        dead = []
        for member in list(self._members[size]):
            status = await self._host.status(member.handle)
            if not status.running:
                log.warning("a pooled %s render server is gone: %s", size.value, status.message)
                dead.append(member)
        for member in dead:
            with contextlib.suppress(ValueError):  # taken while we asked: the session's problem now
                self._members[size].remove(member)
            await self._host.stop(member.handle, self._stop_grace)  # frees what is left of its slot

    async def _start_one(self, size: Size) -> None:
        starting = _Starting(asyncio.get_running_loop().create_future())
        self._starting[size].append(starting)
        handle: Handle | None = None
        try:
            handle = await self._host.start_idle(self._template(size))
        except HostError as exc:
            log.warning("could not start a pooled %s render server: %s", size.value, exc.message)
        finally:
            self._starting[size].remove(starting)
            if starting.claimed and not self._closed:
                starting.done.set_result(handle)  # a create waits for exactly this server
                handle = None
            else:
                starting.done.set_result(None)
        if handle is None:
            return
        if self._closed:
            await self._host.stop(handle, self._stop_grace)
            return
        self._members[size].append(_Member(handle, time.monotonic()))

    async def _run(self) -> None:
        while True:
            try:
                await self.fill()
            except Exception:
                log.exception("warm pool pass failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    async def close(self) -> None:
        """Stop the refill loop and every pooled server (they have no session: nothing is lost)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        members = [m for deque in self._members.values() for m in deque]
        for deque in self._members.values():
            deque.clear()
        await asyncio.gather(
            *(self._host.stop(m.handle, self._stop_grace) for m in members), return_exceptions=True
        )
