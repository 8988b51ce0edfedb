"""The render server's lease arithmetic and idle clock on their own, without a process or a control plane
(real servers keeping their lease: test_lease.py)."""

from __future__ import annotations

import asyncio
import math

from openrr.protocol.handshake import (
    CONTROL_PLANE_UNREACHABLE,
    EXIT_CONTROL_PLANE_UNREACHABLE,
    EXIT_LEASE_ENDED,
    LEASE_ENDED,
    MAX_LEASE_REMAINING_S,
)
from openrr.render.idle import IdleClock
from openrr.render.lease import Lease


def test_a_lease_starts_from_the_ready_answer_or_else_from_the_spec() -> None:
    lease = Lease()
    lease.start(2, {}, now=100.0)
    assert (lease.deadline, lease.last_contact) == (220.0, 100.0)
    lease.start(2, {"leaseRemainingSeconds": 30}, now=100.0)
    assert lease.deadline == 130.0
    unleased = Lease()
    unleased.start(None, {"leaseRemainingSeconds": None}, now=5.0)
    assert (unleased.deadline, unleased.last_contact) == (None, 5.0)


def test_a_lease_ignores_answers_that_make_no_sense() -> None:
    lease = Lease(deadline=50.0)
    for remaining in (True, -1, math.nan, MAX_LEASE_REMAINING_S + 1, "30", None):
        lease.take({"leaseRemainingSeconds": remaining}, now=10.0)
        assert lease.deadline == 50.0, remaining
    lease.take({"leaseRemainingSeconds": 0}, now=10.0)
    assert lease.deadline == 10.0


def test_the_verdict_is_the_lease_end_first_then_the_grace() -> None:
    lease = Lease(deadline=100.0, last_contact=0.0)
    assert lease.verdict(50.0, grace=60.0, session_id="s") is None
    gone = lease.verdict(61.0, grace=60.0, session_id="s")
    assert gone is not None
    assert (gone.code, gone.reason) == (EXIT_CONTROL_PLANE_UNREACHABLE, CONTROL_PLANE_UNREACHABLE)
    assert "grace of 60 s" in gone.why
    ended = lease.verdict(100.0, grace=60.0, session_id="s")
    assert ended is not None
    assert (ended.code, ended.reason) == (EXIT_LEASE_ENDED, LEASE_ENDED)
    assert ended.why == "the lease of session s has ended"


async def test_the_idle_clock_reports_once_a_period_and_only_without_a_client() -> None:
    reports: asyncio.Queue[float] = asyncio.Queue()
    client = {"on": False}

    async def report(seconds: float) -> None:
        reports.put_nowait(seconds)

    stopping = asyncio.Event()
    clock = IdleClock(0.0, stopping=stopping, busy=lambda: client["on"], report=report)
    clock.restart()  # not armed yet: nothing runs
    await asyncio.sleep(0.01)
    assert reports.empty()
    clock.arm()
    assert await asyncio.wait_for(reports.get(), 5) >= 0.0
    await asyncio.sleep(0.01)
    assert reports.empty()  # once a period
    client["on"] = True
    clock.restart()  # a period that ends while a client is on is not reported
    await asyncio.sleep(0.01)
    assert reports.empty()
    client["on"] = False
    stopping.set()
    clock.restart()  # a stopping server starts no period
    await asyncio.sleep(0.01)
    assert reports.empty()


async def test_an_idle_clock_without_a_limit_never_runs() -> None:
    reported: list[float] = []

    async def report(seconds: float) -> None:
        reported.append(seconds)

    clock = IdleClock(None, stopping=asyncio.Event(), busy=lambda: False, report=report)
    clock.arm()
    clock.restart()
    await asyncio.sleep(0.01)
    assert reported == []
    clock.disarm()
