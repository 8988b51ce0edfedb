"""Wiring: opens the store, builds the services on one clock and one host, and runs the reaper loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging

from openrr.config import Settings
from openrr.domain.clock import Clock, SystemClock
from openrr.domain.session import Size
from openrr.handshake import RenderSettings
from openrr.hosts.base import Host
from openrr.hosts.local import LocalHost
from openrr.services.accounts import AccountService
from openrr.services.conversions import ConversionConfig, ConversionService, Runner
from openrr.services.metrics import Metrics
from openrr.services.sessions import SessionConfig, SessionService
from openrr.services.throttle import TokenBuckets
from openrr.services.tokens import TokenIssuer, new_signing_key
from openrr.storage import StorageAccess
from openrr.store.sql import SqlStore, open_store

log = logging.getLogger(__name__)


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
    conversions: ConversionService
    metrics: Metrics = dataclasses.field(default_factory=Metrics)  # this runtime's own registry
    _reaper: asyncio.Task[None] | None = None

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
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await open_store(settings.resolved_store_url)
        key = await store.signing_key(new_signing_key(clock.now()))
        tokens = TokenIssuer(key, clock)
        host = host or LocalHost(settings.log_dir / "sessions")
        config = SessionConfig(
            render_bind_host=settings.render_host,
            render_advertise_host=settings.render_advertise_host or settings.render_host,
            callback_base_url=settings.callback_base_url,
            callback_ca=callback_ca,
            start_timeout_s=settings.start_timeout,
            stop_grace_s=settings.stop_grace,
            teraflops={Size.STANDARD: settings.teraflops_standard, Size.PREMIUM: settings.teraflops_premium},
            render=RenderSettings(
                # Absolute: the render server must not depend on the control plane's working directory.
                model_roots=tuple(str(root.resolve()) for root in settings.model_roots),
                allow_private_model_urls=settings.allow_private_model_urls,
                video_width=settings.video_width,
                video_height=settings.video_height,
                video_fps=settings.video_fps,
                video_bitrate=settings.video_bitrate,
                stun_urls=settings.stun_urls,
                turn_urls=settings.turn_urls,
                turn_username=settings.turn_username,
                turn_credential=settings.turn_credential,
            ),
            polygon_limits={Size.STANDARD: settings.standard_polygon_limit},  # Premium: unlimited, as in ARR
        )
        metrics = Metrics()
        return cls(
            settings=settings,
            clock=clock,
            store=store,
            host=host,
            tokens=tokens,
            accounts=AccountService(store, clock),
            sessions=SessionService(store, host, tokens, clock, config, metrics=metrics),
            throttle=TokenBuckets(
                clock, rate=settings.throttle_rate, burst=settings.throttle_burst, what="data-plane"
            ),
            sts_throttle=TokenBuckets(
                clock, rate=settings.sts_throttle_rate, burst=settings.sts_throttle_burst, what="token"
            ),
            conversions=ConversionService(
                store,
                clock,
                StorageAccess(
                    container_roots=tuple(root.resolve() for root in settings.container_roots),
                    accounts=settings.linked_accounts,
                ),
                ConversionConfig(
                    work_dir=settings.conversion_dir.resolve(),
                    workers=settings.conversion_workers,
                    timeout_s=settings.conversion_timeout,
                    max_input_bytes=settings.conversion_max_input_mb << 20,
                ),
                runner=conversion_runner,
            ),
            metrics=metrics,
        )

    async def start_background(self) -> None:
        """Re-adopt running render servers, then run the reaper until ``close``."""
        await self.sessions.adopt_all()
        self._reaper = asyncio.create_task(self._reap_forever(), name="openrr-reaper")
        self.conversions.start()

    async def _reap_forever(self) -> None:
        retention = dt.timedelta(days=self.settings.retention_days)
        last_purge = -float("inf")
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.sessions.tick()
                if loop.time() - last_purge >= self.settings.purge_interval:
                    purged = await self.sessions.purge(retention)
                    last_purge = loop.time()
                    if purged:
                        log.info("purged %d ended sessions older than %s", purged, retention)
                    purged = await self.conversions.purge(retention)
                    if purged:
                        log.info("purged %d ended conversions older than %s", purged, retention)
            except Exception:
                log.exception("reaper pass failed; trying again next interval")
            await asyncio.sleep(self.settings.reaper_interval)

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.sessions.drain(), timeout=self.settings.stop_grace + 5)
        await self.conversions.close()
        await self.host.close()
        await self.store.close()
