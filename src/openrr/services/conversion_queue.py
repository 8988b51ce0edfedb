"""The conversion queue of one control-plane process: a dispatcher that claims queued conversions, runs
them (``ConversionJob``), and requeues those whose process died.

Turns: the dispatcher claims NotStarted conversions while fewer than ``workers`` run in this process, in turn
across accounts (``fair_order``): the account with the fewest conversions running here first, oldest first
within an account, so one account's backlog does not hold up the others.

Restarts: a running conversion carries the id of its control-plane process (``worker_identity``) and a
heartbeat. A conversion whose process is gone (same host, pid no longer that process) or whose heartbeat is
stale (another host) is requeued, at most ``max_attempts`` times in all; then it fails with the reason. On a
clean shutdown a process requeues its own conversions at once. A conversion is never left Running by a dead
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import shutil
import socket
from collections.abc import Mapping, Sequence

import psutil

from openrr.domain.clock import Clock
from openrr.domain.conversion import INTERNAL_ERROR, Conversion, ConversionStatus, Event
from openrr.services.conversion_config import ConversionConfig
from openrr.services.conversion_job import ConversionJob
from openrr.store.base import StaleWrite, Store

log = logging.getLogger(__name__)

S = ConversionStatus
# How many queued conversions (oldest first) the dispatcher looks at to take them in turn across accounts.
_FAIR_WINDOW = 500


def worker_identity() -> str:
    """This process, as other control planes can check it: ``host/pid/create-time``."""
    me = psutil.Process()
    return f"{socket.gethostname()}/{me.pid}/{me.create_time():.3f}"


def worker_is_dead(identity: str) -> bool:
    """Whether the control-plane process ``identity`` is known to be gone (only decidable on its host)."""
    host, _, rest = identity.partition("/")
    pid, _, created = rest.partition("/")
    if host != socket.gethostname():
        return False
    try:
        proc = psutil.Process(int(pid))
        dead: bool = abs(proc.create_time() - float(created)) > 0.5 or proc.status() == psutil.STATUS_ZOMBIE
        return dead
    except (psutil.Error, ValueError):
        return True


def fair_order(
    queued: Sequence[Conversion], running_accounts: Sequence[str], last_started: Mapping[str, int]
) -> list[Conversion]:
    """``queued`` (oldest first) in the order to start them, one account at a time: first the accounts with
    fewer conversions running (``running_accounts``: one entry per running conversion), then the one that
    started a conversion least recently (``last_started``: a rising number per start), then the one whose
    oldest queued conversion is older; oldest first within an account."""
    by_account: dict[str, list[Conversion]] = {}
    for c in queued:
        by_account.setdefault(c.account_id, []).append(c)
    running = {account: running_accounts.count(account) for account in by_account}
    last = {account: last_started.get(account, -1) for account in by_account}
    order: list[Conversion] = []
    turn = max(last_started.values(), default=0)
    while by_account:
        account = min(by_account, key=lambda a: (running[a], last[a], by_account[a][0].created_at))
        order.append(by_account[account].pop(0))
        running[account] += 1
        turn += 1
        last[account] = turn
        if not by_account[account]:
            del by_account[account]
    return order


class ConversionQueue:
    """Claims and runs the store's queued conversions as the process ``worker_id``."""

    def __init__(
        self, store: Store, clock: Clock, config: ConversionConfig, job: ConversionJob, worker_id: str
    ) -> None:
        self._store = store
        self._clock = clock
        self._config = config
        self._job = job
        self.worker_id = worker_id
        self._jobs: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Turns between accounts (fair_order): when each account last had a conversion started here.
        self._starts = 0
        self._last_started: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Run the dispatcher until ``close``: it claims and runs conversions, and requeues orphans."""
        if self._dispatcher is None:
            # Scratch folders left by a process that died are of no use: their conversions start afresh.
            shutil.rmtree(self._config.work_dir, ignore_errors=True)
            self._dispatcher = asyncio.create_task(self._dispatch_forever(), name="openrr-conversions")

    def wake(self) -> None:
        """Look at the queue now rather than at the next poll (a conversion was queued, or one ended)."""
        self._wake.set()

    async def _dispatch_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("conversion dispatcher pass failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config.poll_s)
            self._wake.clear()

    async def tick(self) -> None:
        """One pass, as the dispatcher makes it: requeue conversions whose process died, heartbeat our own,
        claim and start queued ones. The conversions it starts run on as tasks after it returns."""
        await self._recover()
        await self._dispatch()

    async def close(self) -> None:
        """Stop the dispatcher and the running jobs; their conversions go back to the queue."""
        self._closing = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)

    async def stop(self, account_id: str, conversion_id: str) -> None:
        """Stop the conversion's run in this process, if it has one (its conversion was ended meanwhile),
        and wait until the run is over: its converter killed, its scratch folder removed."""
        job = self._jobs.get((account_id, conversion_id))
        if job is not None:
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)

    # ---- claiming -----------------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        free = self._config.workers - len(self._jobs)
        if free <= 0 or self._closing:
            return
        queue = await self._store.conversions_with_status([S.NOT_STARTED], limit=_FAIR_WINDOW)
        for queued in fair_order(queue, [account for account, _ in self._jobs], self._last_started)[:free]:
            key = (queued.account_id, queued.id)
            if key in self._jobs:
                continue
            now = self._clock.now()
            claim = queued.apply(
                Event.START, now, attempts=queued.attempts + 1, worker=self.worker_id, heartbeat_at=now
            )
            try:
                claimed = await self._store.update_conversion(claim)
            except StaleWrite:
                continue  # another process claimed it
            self._starts += 1
            self._last_started[queued.account_id] = self._starts
            task = asyncio.create_task(self._execute(claimed), name=f"conversion {queued.id}")
            self._jobs[key] = task
            task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        for key, job in list(self._jobs.items()):
            if job is task:
                del self._jobs[key]
        self._wake.set()

    async def _execute(self, c: Conversion) -> None:
        try:
            await self._job.run(c)
        except asyncio.CancelledError:
            if self._closing:  # a clean shutdown: back to the queue, and this attempt does not count
                with contextlib.suppress(Exception):
                    await self._requeue_own(c)
            raise
        except Exception:
            log.exception("conversion %s/%s: the run failed unexpectedly", c.account_id, c.id)

    async def _requeue_own(self, c: Conversion) -> None:
        current = await self._store.get_conversion(c.account_id, c.id)
        if current is not None and current.status is S.RUNNING and current.worker == self.worker_id:
            await self._store.update_conversion(
                current.apply(Event.REQUEUE, self._clock.now(), attempts=current.attempts - 1)
            )

    # ---- recovery -----------------------------------------------------------------------------------
    async def _recover(self) -> None:
        now = self._clock.now()
        for c in await self._store.conversions_with_status([S.RUNNING], limit=1000):
            if c.worker == self.worker_id and (c.account_id, c.id) in self._jobs:
                await self._heartbeat(c, now)
            elif self._orphaned(c, now):
                with contextlib.suppress(StaleWrite):
                    await self._requeue(c, "its control-plane process stopped")

    async def _heartbeat(self, c: Conversion, now: dt.datetime) -> None:
        if c.heartbeat_at is None or now - c.heartbeat_at >= dt.timedelta(seconds=self._config.heartbeat_s):
            with contextlib.suppress(StaleWrite):
                await self._store.update_conversion(dataclasses.replace(c, heartbeat_at=now))

    def _orphaned(self, c: Conversion, now: dt.datetime) -> bool:
        """Whether running ``c`` has no live process: ours but not running here, no worker, a worker known
        to be dead, or a heartbeat older than ``stale_after_s``."""
        if c.worker == self.worker_id or c.worker is None or worker_is_dead(c.worker):
            return True
        stale = dt.timedelta(seconds=self._config.stale_after_s)
        return c.heartbeat_at is None or now - c.heartbeat_at >= stale

    async def _requeue(self, c: Conversion, why: str) -> Conversion:
        now = self._clock.now()
        if c.attempts >= self._config.max_attempts:
            log.warning("conversion %s/%s failed: %s, %d times", c.account_id, c.id, why, c.attempts)
            return await self._store.update_conversion(
                c.apply(
                    Event.FAIL,
                    now,
                    error_code=INTERNAL_ERROR,
                    error_message=f"The conversion was interrupted {c.attempts} times ({why}); "
                    "it is not run again.",
                )
            )
        log.info("conversion %s/%s requeued: %s", c.account_id, c.id, why)
        return await self._store.update_conversion(c.apply(Event.REQUEUE, now))
