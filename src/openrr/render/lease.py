"""The render server's side of its session's lease (``protocol.handshake``, "Lease").

Once ready the server heartbeats the control plane and keeps the lease deadline its answers give. It stops
itself at the lease end, or when the control plane has not answered for longer than the grace; a
heartbeat answered 404/409/410 means the session is over. Deadlines are kept on the monotonic clock: a
wall-clock jump moves nothing. Apart from the server because the lease is arithmetic and one loop, with
the decision to stop handed back as a value (:class:`SelfStop`) for the server to act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from openrr.protocol.handshake import (
    CONTROL_PLANE_UNREACHABLE,
    EXIT_CONTROL_PLANE_UNREACHABLE,
    EXIT_LEASE_ENDED,
    EXIT_REJECTED,
    LEASE_ENDED,
    MAX_LEASE_REMAINING_S,
)
from openrr.render.control_plane import ControlPlane

log = logging.getLogger("openrr.render")


@dataclasses.dataclass(frozen=True)
class SelfStop:
    """Why the server ends its session: the exit ``code``; with a ``reason`` (a ``self-stop`` reason of
    ``protocol.handshake``) the server decided, says ``why`` in its self-stop line and tells a connected
    client ``bye``. Without one the control plane decided (it refused a heartbeat)."""

    code: int
    reason: str | None = None
    why: str = ""
    bye: str = ""


@dataclasses.dataclass
class Lease:
    """The lease deadline and the last contact with the control plane, on ``time.monotonic()``."""

    deadline: float | None = None
    last_contact: float = 0.0

    def start(self, lease_minutes: float | None, answer: Mapping[str, Any], now: float) -> None:
        """The ready report was accepted at ``now``: the lease clock starts, from the answer's
        ``leaseRemainingSeconds`` or else from the spec's ``lease_minutes``, and so does the grace."""
        self.last_contact = now
        if lease_minutes is not None:
            self.deadline = now + lease_minutes * 60.0
        self.take(answer, now)

    def take(self, answer: Mapping[str, Any], now: float) -> None:
        """The lease end an answer of the control plane gives, if it gives one that makes sense."""
        remaining = answer.get("leaseRemainingSeconds")
        if isinstance(remaining, bool) or not isinstance(remaining, int | float):
            return  # absent or null (the lease has not started): keep what we had
        if not 0 <= remaining <= MAX_LEASE_REMAINING_S:  # NaN fails both comparisons too
            log.warning("ignoring a lease of %r s left from the control plane", remaining)
            return
        self.deadline = now + float(remaining)

    def verdict(self, now: float, grace: float, session_id: str) -> SelfStop | None:
        """Whether the server must stop itself now: at the lease end, or past the grace without contact."""
        if self.deadline is not None and now >= self.deadline:
            return SelfStop(
                EXIT_LEASE_ENDED,
                LEASE_ENDED,
                f"the lease of session {session_id} has ended",
                "The session's lease has ended.",
            )
        if now - self.last_contact > grace:
            return SelfStop(
                EXIT_CONTROL_PLANE_UNREACHABLE,
                CONTROL_PLANE_UNREACHABLE,
                f"the control plane has not answered for {now - self.last_contact:.0f} s, longer "
                f"than the grace of {grace:g} s",
                "The session was stopped: the service is unreachable.",
            )
        return None


async def keep_lease(lease: Lease, plane: ControlPlane, stopping: asyncio.Event) -> SelfStop | None:
    """Once ready, until ``stopping`` is set (None) or the server must stop (why): heartbeat every
    ``heartbeat_s`` (sooner when the lease ends first) and follow the lease."""
    settings = plane.spec.settings
    interval, grace = settings.heartbeat_s, settings.control_plane_grace_s
    ssl_ctx = plane.ssl()
    async with plane.heartbeat_session() as http:
        while not stopping.is_set():
            now = time.monotonic()
            wake = now + interval
            if lease.deadline is not None:
                wake = min(wake, lease.deadline)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), max(0.0, wake - now))
            if stopping.is_set():
                return None
            beat = await plane.heartbeat(http, ssl_ctx)
            if beat.refused:
                log.error("the control plane says this session is over: exiting")
                return SelfStop(EXIT_REJECTED)
            now = time.monotonic()
            if beat.answer is not None:
                lease.last_contact = now
                lease.take(beat.answer, now)
            stop = lease.verdict(now, grace, plane.spec.session_id)
            if stop is not None:
                return stop
    return None
