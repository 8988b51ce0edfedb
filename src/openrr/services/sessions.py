"""Rendering sessions: create, read, extend, stop, and the events that move them through their lifecycle.

All status changes go through ``Session.apply`` (the lifecycle table) and a compare-and-set write; a lost race
is retried from a fresh read. Render servers are released (stopped) after the state change is stored, in the
background, and the ``host_released`` flag records that it happened: whatever is not released yet (the
control plane died in between) is released by the reaper later.

Beside this module: ``session_config`` (what the service is configured with, and the render-server spec it
derives), ``session_cache`` (the read cache polling clients hit) and ``session_reaping`` (the reaper's rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Sequence

from openrr.domain.clock import Clock
from openrr.domain.ids import check_resource_id
from openrr.domain.session import (
    MAX_LEASE_MINUTES,
    Endpoint,
    Event,
    Session,
    SessionError,
    Size,
    Status,
    check_create_lease,
)
from openrr.errors import (
    CapacityExhausted,
    Conflict,
    HostError,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    TryAgain,
    Unprocessable,
)
from openrr.hosts.base import Capacity, Handle, Host
from openrr.protocol.handshake import ReadyReport, RenderSpec
from openrr.services.metrics import Metrics
from openrr.services.pool import WarmPool
from openrr.services.session_cache import SessionCache
from openrr.services.session_config import SessionConfig, render_spec
from openrr.services.session_reaping import verdict
from openrr.services.tokens import TokenIssuer
from openrr.store.base import Admission, StaleWrite, Store

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 20
_CAPACITY_TTL_S = 2.0


class SessionService:
    def __init__(
        self,
        store: Store,
        host: Host,
        tokens: TokenIssuer,
        clock: Clock,
        config: SessionConfig,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._host = host
        self._tokens = tokens
        self._clock = clock
        self.config = config
        self._releases: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._cache = SessionCache(config.cache_ttl_s)
        self._loading: dict[tuple[str, str], asyncio.Future[Session]] = {}
        self._metrics = metrics
        self.pool: WarmPool | None = None  # set by the runtime when a warm pool is configured
        self._capacity: tuple[float, Capacity] | None = None  # (time.monotonic(), the host's answer)
        self._capacity_lock = asyncio.Lock()

    # ---- queries ----------------------------------------------------------------------------------------
    async def get(self, account_id: str, session_id: str) -> Session:
        """The session, from the read cache if it is fresh (see SessionCache), else from the store."""
        cached = self._cache.get(account_id, session_id)
        if cached is not None:
            return cached
        # Single flight: when an entry goes stale under load, one read refreshes it for every waiter
        # instead of each request queueing its own read behind the others.
        key = (account_id, session_id)
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(account_id, session_id))
            self._loading[key] = loading
            loading.add_done_callback(lambda _f: self._loading.pop(key, None))
        return await asyncio.shield(loading)

    async def _load(self, account_id: str, session_id: str) -> Session:
        session = await self._store.get_session(account_id, session_id)
        if session is None:
            self._cache.forget(account_id, session_id)
            raise NotFound(
                f"No session with id '{session_id}' exists in this account.", code="SessionNotFound"
            )
        self._cache.put(session)
        return session

    async def list_active(
        self, account_id: str, *, after_id: str | None = None, limit: int = 100
    ) -> Sequence[Session]:
        return await self._store.list_sessions(
            account_id, statuses=(Status.STARTING, Status.READY), after_id=after_id, limit=limit
        )

    def now(self) -> dt.datetime:
        return self._clock.now()

    # ---- commands ---------------------------------------------------------------------------------------
    async def create(
        self,
        account_id: str,
        session_id: str,
        size: Size,
        lease_minutes: int,
        models: Sequence[str] = (),
    ) -> tuple[Session, bool]:
        """Create and start a session. Returns (session, created).

        Idempotent: the same id with the same size and lease returns the existing session with created=False;
        other settings raise Conflict.
        """
        check_resource_id(session_id)
        check_create_lease(lease_minutes)
        cap = self.config.max_lease_minutes
        if lease_minutes > cap:
            raise InvalidInput(
                f"The maxLeaseTimeMinutes value cannot be larger than {cap} on this service.",
                target="maxLeaseTimeMinutes",
            )
        session = Session(
            account_id=account_id,
            id=session_id,
            size=size,
            lease_minutes=lease_minutes,
            status=Status.STARTING,
            created_at=self._clock.now(),
            models=tuple(models),
            connect_secret=secrets.token_urlsafe(32),
        )
        quota = self.config.max_sessions_per_account
        slots = (await self._host_capacity()).slots(size.value).total
        admission = await self._store.insert_session(session, max_active_per_account=quota, size_slots=slots)
        if admission is Admission.EXISTS:
            existing = await self._load(account_id, session_id)
            if existing.size == size and existing.lease_minutes == lease_minutes:
                return existing, False
            raise Conflict("A session already exists under the given ID with other settings.")
        if admission is Admission.OVER_QUOTA:
            raise QuotaExceeded(
                f"The account already has {quota} active sessions, the most this service allows; stop one "
                "or wait for one to end."
            )
        if admission is Admission.NO_CAPACITY:
            if not slots:
                raise CapacityExhausted(f"This service has no {size.value} render servers.")
            raise CapacityExhausted(
                f"All {slots} {size.value} render servers are in use; try again later or use another size."
            )
        return await self._launch(session), True

    async def _host_capacity(self) -> Capacity:
        """The host's slots, asked at most every ``_CAPACITY_TTL_S``: totals change only when machines come
        or go, and asking a Ray cluster is three round trips to its head, too many for every create."""
        async with self._capacity_lock:
            if self._capacity is None or time.monotonic() - self._capacity[0] > _CAPACITY_TTL_S:
                self._capacity = (time.monotonic(), await self._host.capacity())
            return self._capacity[1]

    def render_spec(self, size: Size, session: Session | None = None, instance: str = "") -> RenderSpec:
        """The spec a render server gets; without a session, the template a pooled server warms up with."""
        return render_spec(self.config, self._tokens, size, session, instance)

    async def _launch(self, session: Session) -> Session:
        instance = secrets.token_hex(8)
        spec = self.render_spec(session.size, session, instance)
        try:
            handle = await self._start(spec, session.size)
        except HostError as exc:
            return await self._fail(session, "RenderServerStartFailed", exc.message)
        handle["instance"] = instance
        # A server that was just started is not released, even if the session was stopped meanwhile.
        launched = await self._mutate(
            session, lambda s: dataclasses.replace(s, host_handle=handle, host_released=False)
        )
        if not launched.status.active:
            self._release_soon(launched)
        return launched

    async def _start(self, spec: RenderSpec, size: Size) -> Handle:
        """A pooled server if one is waiting, else a cold start."""
        pooled = await self.pool.take(size) if self.pool is not None else None
        if pooled is not None:
            try:
                return await self._host.assign(pooled, spec)
            except HostError as exc:
                log.warning("a pooled render server could not take session %s: %s", spec.session_id, exc)
                with contextlib.suppress(Exception):
                    await self._host.stop(pooled, self.config.stop_grace_s)
        return await self._host.start(spec)

    async def ready(self, account_id: str, session_id: str) -> Session:
        """The session if it is Ready; 409 ``SessionNotReady`` saying why otherwise."""
        session = await self.get(account_id, session_id)
        if session.status is not Status.READY or session.endpoint is None:
            why = {
                Status.STARTING: "it is still starting; try again when it is Ready",
                Status.STOPPED: "it was stopped",
                Status.EXPIRED: "its lease expired",
                Status.ERROR: "it failed",
            }.get(session.status, "it is not Ready")
            raise Conflict(
                f"The session '{session_id}' is {session.status.value}: {why}.", code="SessionNotReady"
            )
        return session

    async def connect_token(self, account_id: str, session_id: str) -> tuple[Session, str, dt.datetime]:
        """A connect token for the session's render server (``protocol.handshake``), and when it expires:
        after ``connect_token_minutes`` or at the end of the lease, whichever comes first."""
        session = await self.ready(account_id, session_id)
        if not session.connect_secret:
            raise Conflict(
                f"The session '{session_id}' was started by an older openrr that had no connect tokens; "
                "stop it and create a new one.",
                code="SessionNotConnectable",
            )
        now = self._clock.now()
        expires = now + dt.timedelta(minutes=self.config.connect_token_minutes)
        if session.expires_at is not None:
            expires = min(expires, session.expires_at)
        token = self._tokens.issue_connect_token(account_id, session_id, session.connect_secret, expires)
        return session, token, expires

    async def update_lease(
        self, account_id: str, session_id: str, lease_minutes: int, *, allow_equal: bool = False
    ) -> Session:
        def change(s: Session) -> Session:
            if not s.status.active:
                raise Unprocessable(f"The session is {s.status.value}; only active sessions can be updated.")
            cap = self.config.max_lease_minutes
            if lease_minutes > cap:
                suffix = "" if cap == MAX_LEASE_MINUTES else " on this service"
                raise Unprocessable(f"The maxLeaseTimeMinutes value cannot be larger than {cap}{suffix}.")
            if lease_minutes < s.lease_minutes or (lease_minutes == s.lease_minutes and not allow_equal):
                raise Unprocessable(
                    f"The maxLeaseTimeMinutes value ({lease_minutes}) has to be bigger than the current "
                    f"value ({s.lease_minutes})."
                )
            return s.with_lease(lease_minutes)

        return await self._mutate(await self.get(account_id, session_id), change)

    async def stop(self, account_id: str, session_id: str) -> Session:
        """Stop a session. Stopping an ended session changes nothing (idempotent)."""
        session = await self.get(account_id, session_id)
        if not session.status.active:
            return session
        stopped = await self._transition(session, Event.STOP)
        self._release_soon(stopped)
        return stopped

    async def mark_ready(self, account_id: str, session_id: str, report: ReadyReport) -> Session:
        """The render server's ready callback. Conflict tells a stale or orphaned server to exit."""
        session = await self.get(account_id, session_id)
        handle = session.host_handle
        if handle is None and session.status is Status.STARTING:
            raise TryAgain("The session is still being launched; call back again.")
        if (handle or {}).get("instance") != report.instance:
            raise Conflict("This render server is not the one serving the session.")
        if session.status is Status.READY:
            return session  # a retried callback
        if session.status is not Status.STARTING:
            raise Conflict(f"The session is {session.status.value}.")
        endpoint = Endpoint(report.hostname, report.handshake_port, report.inspector_port, report.teraflops)
        ready = await self._transition(session, Event.READY, endpoint=endpoint)
        if self._metrics is not None and ready.ready_at is not None:  # a retried callback returned above
            self._metrics.observe_ready(ready.size.value, (ready.ready_at - ready.created_at).total_seconds())
        return ready

    async def report_failure(
        self, account_id: str, session_id: str, instance: str, code: str, message: str
    ) -> Session:
        session = await self._reported_by(account_id, session_id, instance)
        if not session.status.active:
            return session
        return await self._fail(session, code, message)

    async def _reported_by(self, account_id: str, session_id: str, instance: str) -> Session:
        """The session a render server reports on; Conflict (the server exits) if it is not the one."""
        session = await self.get(account_id, session_id)
        if (session.host_handle or {}).get("instance") != instance:
            raise Conflict("This render server is not the one serving the session.")
        return session

    async def heartbeat(self, account_id: str, session_id: str, instance: str) -> Session:
        """A ready render server's heartbeat (see ``openrr.protocol.handshake``, "Lease"): the session, whose
        ``lease_remaining`` the answer carries. Conflict (the server exits) once it has ended or when the
        caller is not the session's server; NotFound when the session is gone."""
        session = await self._reported_by(account_id, session_id, instance)
        if not session.status.active:
            raise Conflict(f"The session is {session.status.value}.")
        return session

    def lease_remaining(self, session: Session) -> float | None:
        """Seconds until the lease ends (0 once it has); None while it has not started."""
        expires_at = session.expires_at
        if expires_at is None:
            return None
        return max(0.0, round((expires_at - self._clock.now()).total_seconds(), 3))

    async def stop_idle(
        self, account_id: str, session_id: str, instance: str, idle_seconds: float
    ) -> Session:
        """The render server's idle report: stop the session and say why (``--idle-stop-minutes``)."""
        session = await self._reported_by(account_id, session_id, instance)
        if not session.status.active:
            return session
        minutes = idle_seconds / 60
        error = SessionError(
            "IdleTimeout",
            f"The session was stopped after {minutes:.3g} minutes with no client connected.",
        )
        stopped = await self._transition(session, Event.STOP, error=error)
        self._release_soon(stopped)
        return stopped

    # ---- reaper -------------------------------------------------------------------------------------------
    async def adopt_all(self) -> None:
        """After a restart: reattach every persisted render server, then settle what changed meanwhile."""
        for session in await self._store.sessions_needing_attention():
            if session.host_handle:
                try:
                    await self._host.adopt(session.host_handle)
                except Exception:  # one bad handle must not stop the others from being adopted
                    log.exception(
                        "adopting the render server of %s/%s failed", session.account_id, session.id
                    )
        await self.tick()

    async def tick(self) -> None:
        """One pass of the reaper: expire, detect dead servers, time out starts, release servers."""
        now = self._clock.now()
        for session in await self._store.sessions_needing_attention():
            try:
                await self._settle(session, now)
            except StaleWrite:
                continue  # someone else moved it; the next tick sees the new state
            except Exception:
                log.exception("reaper: settling %s/%s failed", session.account_id, session.id)

    async def _settle(self, session: Session, now: dt.datetime) -> None:
        """Carry out the reaper's verdict on ``session`` (``session_reaping``); release an ended one's
        render server."""
        self._cache.put(session)
        if not session.status.active:
            self._release_soon(session)
            return
        handle = session.host_handle
        status = await self._host.status(handle) if handle is not None else None
        decided = verdict(session, status, now, self.config.start_timeout_s)
        if decided is not None:
            self._release_soon(await self._transition(session, decided.event, error=decided.error))

    async def purge(self, retention: dt.timedelta) -> int:
        purged = await self._store.purge_ended_before(self._clock.now() - retention)
        if purged:
            self._cache.clear()
        return purged

    async def drain(self) -> None:
        """Wait for background releases (tests, shutdown)."""
        while self._releases:
            await asyncio.gather(*list(self._releases.values()), return_exceptions=True)

    # ---- internals -------------------------------------------------------------------------------------
    async def _fail(self, session: Session, code: str, message: str) -> Session:
        failed = await self._transition(session, Event.FAIL, error=SessionError(code, message))
        self._release_soon(failed)
        return failed

    async def _transition(
        self,
        session: Session,
        event: Event,
        *,
        endpoint: Endpoint | None = None,
        error: SessionError | None = None,
    ) -> Session:
        now = self._clock.now()
        return await self._mutate(session, lambda s: s.apply(event, now, endpoint=endpoint, error=error))

    async def _mutate(self, session: Session, change: Callable[[Session], Session]) -> Session:
        """Apply ``change`` and store it with compare-and-set, re-reading and re-applying on a lost race."""
        for _ in range(_CAS_ATTEMPTS):
            try:
                stored = await self._store.update_session(change(session))
            except StaleWrite:
                session = await self._load(session.account_id, session.id)  # never the cache: it lost
                continue
            self._cache.put(stored)
            return stored
        raise StaleWrite(f"session {session.id} kept changing under us")

    def _release_soon(self, session: Session) -> None:
        key = (session.account_id, session.id)
        if session.host_released or key in self._releases:
            return
        task = asyncio.create_task(self._release(session))
        self._releases[key] = task
        task.add_done_callback(lambda _t: self._releases.pop(key, None))

    async def _release(self, session: Session) -> None:
        try:
            if session.host_handle:
                await self._host.stop(session.host_handle, self.config.stop_grace_s)
            await self._mutate(session, lambda s: dataclasses.replace(s, host_released=True))
        except Exception:
            log.exception("releasing the render server of %s/%s failed", session.account_id, session.id)
