"""Wiring: opens the store, builds the services on one clock and one host, and runs the background loops.

Several replicas may share one store (PostgreSQL). Each answers every request; the reaper runs in one of
them at a time, the holder of the store's ``reaper`` lease, so expiries and failures are settled once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from typing import Any

from openrr.config.control_plane import SessionSettings
from openrr.config.render_servers import RenderServerSettings
from openrr.config.settings import Settings
from openrr.domain.account import SigningKey
from openrr.domain.clock import Clock, SystemClock
from openrr.domain.session import Size
from openrr.extras import needs
from openrr.hosts.base import Host
from openrr.hosts.local import LocalHost
from openrr.private import private_dir
from openrr.protocol.handshake import RenderSettings
from openrr.services.accounts import AccountService
from openrr.services.conversion_config import ConversionConfig
from openrr.services.conversion_runner import Runner
from openrr.services.conversions import ConversionService
from openrr.services.metrics import Metrics
from openrr.services.model_upload import UploadLimits
from openrr.services.models import ModelLibrary
from openrr.services.pool import WarmPool
from openrr.services.session_config import SessionConfig
from openrr.services.sessions import SessionService
from openrr.services.throttle import TokenBuckets
from openrr.services.tokens import MAX_TOKEN_LIFETIME, TokenIssuer, UnknownSigningKey, new_signing_key
from openrr.storage import StorageAccess
from openrr.store.sql import SqlStore, open_store

log = logging.getLogger(__name__)
# How often each control plane reads the store's signing keys (a rotation reaches every replica this fast),
# and how long a key outlives its successor: every token it signed has expired by then.
KEY_REFRESH_S = 5.0
KEY_RETIREMENT = MAX_TOKEN_LIFETIME + dt.timedelta(hours=1)

REAPER_LEASE = "reaper"


@dataclasses.dataclass
class Runtime:
    settings: Settings
    clock: Clock
    store: SqlStore
    host: Host
    tokens: TokenIssuer
    accounts: AccountService
    sessions: SessionService
    throttle: TokenBuckets
    sts_throttle: TokenBuckets
    # Failed key checks per client address: a flood of wrong keys is slowed at its source, and never drains
    # the bucket of the account it names (whose owner would then be locked out).
    sts_failures: TokenBuckets
    conversions: ConversionService
    models: ModelLibrary  # each account's uploaded models (openrr.services.models)
    metrics: Metrics = dataclasses.field(default_factory=Metrics)  # this runtime's own registry
    pool: WarmPool | None = None
    # Names this process among the replicas on one store (lease holder, logs, cluster status).
    replica_id: str = dataclasses.field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    )
    _reaper: asyncio.Task[None] | None = None
    _keys_task: asyncio.Task[None] | None = None
    _keys_read_at: float = -float("inf")
    _stopping: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        host: Host | None = None,
        clock: Clock | None = None,
        callback_ca: str | None = None,
        conversion_runner: Runner | None = None,
    ) -> Runtime:
        clock = clock or SystemClock()
        server = settings.server
        private_dir(server.data_dir)
        store = await open_store(server.resolved_store_url)
        await store.signing_key(new_signing_key(clock.now()))  # the first start makes the first key
        tokens = TokenIssuer(await store.signing_keys(), clock)
        host = host or await open_host(settings)
        metrics = Metrics()
        config = session_config(settings, callback_ca)
        sessions = SessionService(store, host, tokens, clock, config, metrics=metrics)
        pool = None
        if settings.hosts.warm_pool_targets:
            pool = WarmPool(
                host,
                settings.hosts.warm_pool_targets,
                sessions.render_spec,
                holding=store.count_holding_by_size,
                stop_grace=settings.sessions.stop_grace,
                claim_timeout=settings.sessions.start_timeout,
            )
            sessions.pool = pool
        limits = settings.limits
        # The model library lives in the first model root, where sessions of the account look first.
        library_root = settings.render.model_roots[0].resolve() if settings.render.model_roots else None
        conversions = ConversionService(
            store,
            clock,
            StorageAccess(
                container_roots=tuple(root.resolve() for root in settings.conversions.container_roots),
                accounts=settings.conversions.linked_accounts,
                library_roots=(library_root,) if library_root else (),
            ),
            conversion_config(settings),
            runner=conversion_runner,
        )
        return cls(
            settings=settings,
            clock=clock,
            store=store,
            host=host,
            tokens=tokens,
            accounts=AccountService(store, clock),
            sessions=sessions,
            throttle=TokenBuckets(
                clock, rate=limits.throttle_rate, burst=limits.throttle_burst, what="data-plane"
            ),
            sts_throttle=TokenBuckets(
                clock, rate=limits.sts_throttle_rate, burst=limits.sts_throttle_burst, what="token"
            ),
            sts_failures=TokenBuckets(
                clock,
                rate=limits.sts_failure_rate,
                burst=limits.sts_failure_burst,
                what="failed token",
                whose="from this address",
            ),
            conversions=conversions,
            models=ModelLibrary(
                store,
                clock,
                conversions,
                library_root,
                UploadLimits(
                    limits.max_upload_mib << 20,
                    limits.max_upload_files,
                    limits.max_library_mib << 20,
                    limits.max_library_models,
                ),
                retention=dt.timedelta(days=settings.sessions.retention_days),  # as _reap_forever purges
            ),
            metrics=metrics,
            pool=pool,
        )

    # ---- signing keys -----------------------------------------------------------------------------------
    async def verify(self, token: str, *, audience: str) -> dict[str, Any]:
        """``tokens.verify``, reading the store's keys again (at most once a second) when the token names a
        key this process has not seen: ``openrr keys rotate`` on another machine, or another replica."""
        try:
            return self.tokens.verify(token, audience=audience)
        except UnknownSigningKey:
            if asyncio.get_running_loop().time() - self._keys_read_at < 1.0:
                raise
        await self.refresh_keys()
        return self.tokens.verify(token, audience=audience)

    async def refresh_keys(self) -> Sequence[SigningKey]:
        """Take up the store's key ring (returned, newest first): a rotation's new key signs from now on; a
        revoked one is refused."""
        self._keys_read_at = asyncio.get_running_loop().time()
        keys = await self.store.signing_keys()
        if keys:
            self.tokens.set_keys(keys)
        return keys

    async def _watch_keys(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), KEY_REFRESH_S)
            try:
                keys = await self.refresh_keys()
                # Keys older than the current one by more than any token's life sign nothing still valid.
                if len(keys) > 1 and keys[-1].created_at < keys[0].created_at - KEY_RETIREMENT:
                    await self.store.drop_signing_keys(keys[0].kid, keys[0].created_at - KEY_RETIREMENT)
            except Exception:
                log.exception("reading the signing keys failed; trying again")

    async def start_background(self) -> None:
        """Re-adopt running render servers, then run the reaper until ``close``."""
        await self.sessions.adopt_all()
        self._reaper = asyncio.create_task(self._reap_forever(), name="openrr-reaper")
        self._keys_task = asyncio.create_task(self._watch_keys(), name="openrr-keys")
        self.conversions.start()
        # Library folders left by a crash mid-upload (or a removal that failed) belong to no model.
        try:
            await self.models.sweep()
        except Exception:
            log.exception("sweeping the model library failed; the next upload of each account does it")
        if self.pool is not None:
            self.pool.start()

    async def _reap_forever(self) -> None:
        retention = dt.timedelta(days=self.settings.sessions.retention_days)
        # Long enough that a busy replica keeps it, short enough that a dead one's is taken over quickly.
        lease_ttl = dt.timedelta(seconds=max(10.0, 5 * self.settings.sessions.reaper_interval))
        last_purge = -float("inf")
        leading = False
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                was_leading = leading
                leading = await self.store.try_lease(
                    REAPER_LEASE, self.replica_id, lease_ttl, self.clock.now()
                )
                if leading != was_leading:
                    log.info(
                        "replica %s %s the reaper", self.replica_id, "runs" if leading else "no longer runs"
                    )
                if leading:
                    await self.sessions.tick()
                    if loop.time() - last_purge >= self.settings.sessions.purge_interval:
                        await self._purge(retention)
                        last_purge = loop.time()
            except Exception:
                log.exception("reaper pass failed; trying again next interval")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.sessions.reaper_interval)

    async def _purge(self, retention: dt.timedelta) -> None:
        purged = await self.sessions.purge(retention)
        if purged:
            log.info("purged %d ended sessions older than %s", purged, retention)
        purged = await self.conversions.purge(retention)
        if purged:
            log.info("purged %d ended conversions older than %s", purged, retention)

    async def cluster_status(self) -> dict[str, Any]:
        """What ``openrr cluster status`` shows: the host's slots and nodes, this replica's pool."""
        capacity = await self.host.capacity()
        holding = await self.store.count_holding_by_size()
        pools = {state.size: state for state in self.pool.states()} if self.pool else {}
        sizes = []
        for size in Size:
            slots = capacity.slots(size.value)
            pool = pools.get(size.value)
            sizes.append(
                {
                    "size": size.value,
                    "total": slots.total,
                    "free": slots.free,
                    "sessions": holding.get(size.value, 0),
                    "pool": dataclasses.asdict(pool) if pool else None,
                }
            )
        nodes = [
            {
                "nodeId": node.node_id,
                "address": node.address,
                "alive": node.alive,
                "slots": {
                    name: {"total": slot.total, "free": slot.free}
                    for name, slot in sorted(node.slots.items())
                },
            }
            for node in capacity.nodes
        ]
        return {
            "host": self.host.name,
            "replica": self.replica_id,
            "reaper": await self.store.lease_holder(REAPER_LEASE, self.clock.now()),
            "sizes": sizes,
            "nodes": nodes,
        }

    async def close(self) -> None:
        self._stopping.set()
        if self._keys_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._keys_task, timeout=5)
        if self._reaper is not None:
            # Let a pass in progress finish: a query cancelled halfway leaves its connection behind.
            self._stopping.set()
            try:
                await asyncio.wait_for(self._reaper, timeout=self.settings.sessions.stop_grace + 5)
            except TimeoutError:
                log.warning("the reaper pass did not finish in time; cancelled")
        if self.pool is not None:
            await self.pool.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.sessions.drain(), timeout=self.settings.sessions.stop_grace + 5)
        with contextlib.suppress(Exception):  # the next replica takes over without waiting for it to expire
            await self.store.release_lease(REAPER_LEASE, self.replica_id)
        await self.conversions.close()
        await self.host.close()
        await self.store.close()


def session_config(settings: Settings, callback_ca: str | None) -> SessionConfig:
    """What the session service needs of the settings: where render servers bind and call back, their
    timings, limits and quotas, and the settings each one's spec carries."""
    render, sessions = settings.render, settings.sessions
    return SessionConfig(
        render_bind_host=render.render_host,
        render_advertise_host=render.render_advertise_host or render.render_host,
        callback_base_url=settings.server.callback_base_url,
        callback_ca=callback_ca,
        start_timeout_s=sessions.start_timeout,
        stop_grace_s=sessions.stop_grace,
        teraflops={Size.STANDARD: sessions.teraflops_standard, Size.PREMIUM: sessions.teraflops_premium},
        render=render_settings(render, sessions),
        polygon_limits={Size.STANDARD: render.standard_polygon_limit},  # Premium: unlimited, as in ARR
        render_limits=render.limits,
        max_sessions_per_account=settings.limits.max_sessions_per_account,
        max_lease_minutes=sessions.max_lease_minutes,
        connect_token_minutes=sessions.connect_token_minutes,
    )


def render_settings(render: RenderServerSettings, sessions: SessionSettings) -> RenderSettings:
    """The settings every render server's spec carries (openrr.protocol.handshake)."""
    return RenderSettings(
        # Absolute: the render server must not depend on the control plane's working directory.
        model_roots=tuple(str(root.resolve()) for root in render.model_roots),
        tls_cert=str(render.render_tls_cert.resolve()) if render.render_tls_cert else None,
        tls_key=str(render.render_tls_key.resolve()) if render.render_tls_key else None,
        allow_private_model_urls=render.allow_private_model_urls,
        model_libraries=tuple(str(folder.resolve()) for folder in render.model_libraries),
        video_width=render.video_width,
        video_height=render.video_height,
        video_fps=render.video_fps,
        video_bitrate=render.video_bitrate,
        frame_budget_ms=render.frame_budget_ms,
        stun_urls=render.stun_urls,
        turn_urls=render.turn_urls,
        turn_username=render.turn_username,
        turn_credential=render.turn_credential,
        idle_stop_s=sessions.idle_stop_minutes * 60 if sessions.idle_stop_minutes else None,
        heartbeat_s=sessions.heartbeat_interval,
        control_plane_grace_s=sessions.control_plane_grace,
    )


def conversion_config(settings: Settings) -> ConversionConfig:
    conversions = settings.conversions
    return ConversionConfig(
        work_dir=settings.server.conversion_dir.resolve(),
        workers=conversions.conversion_workers,
        timeout_s=conversions.conversion_timeout,
        max_input_bytes=conversions.conversion_max_input_mb << 20,
        max_per_account=settings.limits.max_conversions_per_account,
        memory_bytes=conversions.converter_memory_bytes,
    )


async def open_host(settings: Settings) -> Host:
    """The host ``--host-backend`` names, connected."""
    hosts = settings.hosts
    if hosts.host_backend == "ray":
        with needs("ray", "--host-backend ray"):
            from openrr.hosts.ray import RayHost  # imports ray (about a second): only when it is used

        assert hosts.ray_address is not None  # Settings checks it
        ray_host = RayHost(
            hosts.ray_address,
            namespace=hosts.ray_namespace,
            auth_token_file=str(hosts.ray_auth_token_file) if hosts.ray_auth_token_file else None,
            # Placing an actor counts against the session's start.
            start_timeout_s=settings.sessions.start_timeout,
            allow_unauthenticated=hosts.ray_allow_unauthenticated,
        )
        await ray_host.connect()
        return ray_host
    return LocalHost(settings.server.log_dir / "sessions", slots=hosts.local_slot_counts)
