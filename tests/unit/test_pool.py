"""The warm pool's bookkeeping with starts that take time: a create claims a server still starting, and a
claim given up (timeout, cancelled create) never loses the server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from openrr.domain.session import Size
from openrr.hosts.base import Handle
from openrr.protocol.handshake import RenderSpec
from openrr.services.pool import PoolState, WarmPool
from tests.fakes import FakeHost
from tests.render import control_plane


class SlowStarts(FakeHost):
    """A fake host whose pooled starts finish only when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def start_idle(self, template: RenderSpec) -> Handle:
        await self.go.wait()
        return await super().start_idle(template)


def template(size: Size) -> RenderSpec:
    return control_plane.template(Path("models"), size=size.value)


def _standard(pool: WarmPool) -> PoolState:
    return next(s for s in pool.states() if s.size == Size.STANDARD.value)


async def _fill_until_one_starts(pool: WarmPool) -> asyncio.Task[None]:
    """A refill pass whose one start is under way (held by ``SlowStarts.go``)."""
    filling = asyncio.create_task(pool.fill())
    for _ in range(100):
        if _standard(pool).starting:
            break
        await asyncio.sleep(0)
    assert _standard(pool).starting == 1
    return filling


async def test_a_create_takes_a_server_that_is_still_starting() -> None:
    host = SlowStarts()
    pool = WarmPool(host, {Size.STANDARD: 1}, template)
    filling = await _fill_until_one_starts(pool)
    taking = asyncio.create_task(pool.take(Size.STANDARD))
    await asyncio.sleep(0.01)
    assert not taking.done()  # waits for the start instead of starting another one cold
    host.go.set()
    handle = await taking
    await filling
    assert handle is not None
    assert handle["pooled"]
    state = _standard(pool)
    assert (state.idle, state.taken, state.missed) == (0, 1, 0)  # it went to the create, not the pool
    assert host.idle_starts == 1


async def test_a_claim_that_times_out_leaves_the_server_to_the_pool() -> None:
    host = SlowStarts()
    pool = WarmPool(host, {Size.STANDARD: 1}, template, claim_timeout=0.05)
    filling = await _fill_until_one_starts(pool)
    assert await pool.take(Size.STANDARD) is None  # the caller starts one cold
    host.go.set()
    await filling
    state = _standard(pool)
    assert (state.idle, state.missed) == (1, 1)
    assert await pool.take(Size.STANDARD) is not None  # the next create gets it
    await pool.close()


async def test_a_cancelled_create_does_not_lose_its_claimed_server() -> None:
    host = SlowStarts()
    pool = WarmPool(host, {Size.STANDARD: 1}, template)
    filling = await _fill_until_one_starts(pool)
    taking = asyncio.create_task(pool.take(Size.STANDARD))
    await asyncio.sleep(0.01)
    taking.cancel()
    await asyncio.gather(taking, return_exceptions=True)
    host.go.set()
    await filling
    assert _standard(pool).idle == 1
    await pool.close()
    assert all(server.stopped for server in host.servers.values())  # closing stops what it holds
