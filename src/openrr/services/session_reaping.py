"""What the reaper decides for one active session: expire it, fail it, or leave it be, from the time and
its render server's status.

Pure (no store, no host, no clock of its own), so that the rules read in one place and
``SessionService.tick`` only carries them out: a verdict is one lifecycle event and the error the session
records with it, after which the session's render server is released.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from openrr.domain.session import Event, Session, SessionError, Status
from openrr.hosts.base import HostStatus
from openrr.protocol.handshake import CONTROL_PLANE_UNREACHABLE, LEASE_ENDED


@dataclasses.dataclass(frozen=True)
class Verdict:
    event: Event
    error: SessionError | None = None


def verdict(
    session: Session, status: HostStatus | None, now: dt.datetime, start_timeout_s: float
) -> Verdict | None:
    """For an active ``session`` whose render server reports ``status`` (None: it has no server yet), at
    ``now``: the event that ends it, or None while nothing calls for one."""
    expires_at = session.expires_at
    if expires_at is not None and now >= expires_at:
        if status is not None and not status.running and status.reason == LEASE_ENDED:
            return Verdict(Event.EXPIRE, self_stopped(status))
        return Verdict(Event.EXPIRE)
    if status is not None and not status.running:
        return _server_ended(session, status)
    if session.status is Status.STARTING and (now - session.created_at).total_seconds() > start_timeout_s:
        return Verdict(
            Event.FAIL,
            SessionError(
                "RenderServerStartTimeout",
                f"The render server did not become ready within {start_timeout_s:g} s.",
            ),
        )
    return None


def _server_ended(session: Session, status: HostStatus) -> Verdict:
    """An active session whose render server is no longer running: why decides how the session ends."""
    if status.reason == LEASE_ENDED and session.status is Status.READY:
        # Its deadline came a moment before ours (the two clocks ran apart): the lease it is.
        return Verdict(Event.EXPIRE, self_stopped(status))
    if status.reason == CONTROL_PLANE_UNREACHABLE:
        return Verdict(Event.FAIL, SessionError(CONTROL_PLANE_UNREACHABLE, self_stopped(status).message))
    return Verdict(Event.FAIL, SessionError("RenderServerExited", status.message))


def self_stopped(status: HostStatus) -> SessionError:
    """What a session records when its render server ended it by itself (``protocol.handshake``, "Lease")."""
    if status.reason == LEASE_ENDED:
        why = "the session's lease had ended"  # with or without a control plane there to end it
    else:
        why = "the control plane was unreachable for longer than its grace (--control-plane-grace)"
    return SessionError(str(status.reason), f"The render server stopped itself: {why}. {status.message}")
