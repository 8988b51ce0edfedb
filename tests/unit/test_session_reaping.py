"""The reaper's rules (openrr.services.session_reaping), read as a table: for an active session, the time
and its render server's status decide the event that ends it, and the error it records."""

from __future__ import annotations

import datetime as dt

import pytest

from openrr.domain.session import Event, Session, SessionError, Size, Status
from openrr.hosts.base import HostState, HostStatus
from openrr.protocol.handshake import CONTROL_PLANE_UNREACHABLE, LEASE_ENDED
from openrr.services.session_reaping import Verdict, verdict

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
RUNNING = HostStatus(HostState.RUNNING)
LEASE_ENDED_BY_SERVER = SessionError(
    LEASE_ENDED, "The render server stopped itself: the session's lease had ended. exit code 6"
)


def _session(status: Status, *, lease_minutes: int = 10) -> Session:
    ready_at = T0 + dt.timedelta(seconds=5) if status is Status.READY else None
    return Session("acc", "s1", Size.STANDARD, lease_minutes, status, T0, ready_at=ready_at)


def _exited(reason: str | None = None) -> HostStatus:
    return HostStatus(HostState.EXITED, "exit code 6", reason)


def test_a_running_ready_session_within_its_lease_is_left_alone() -> None:
    assert verdict(_session(Status.READY), RUNNING, T0 + dt.timedelta(minutes=1), 60.0) is None


def test_a_lease_that_ran_out_expires_the_session_with_no_error() -> None:
    decided = verdict(_session(Status.READY), RUNNING, T0 + dt.timedelta(minutes=11), 60.0)
    assert decided == Verdict(Event.EXPIRE)


def test_a_server_that_ended_the_lease_itself_is_recorded_on_expiry() -> None:
    decided = verdict(_session(Status.READY), _exited(LEASE_ENDED), T0 + dt.timedelta(minutes=11), 60.0)
    assert decided == Verdict(Event.EXPIRE, LEASE_ENDED_BY_SERVER)


def test_a_server_whose_lease_deadline_came_first_expires_the_session() -> None:
    decided = verdict(_session(Status.READY), _exited(LEASE_ENDED), T0 + dt.timedelta(minutes=9), 60.0)
    assert decided == Verdict(Event.EXPIRE, LEASE_ENDED_BY_SERVER)


def test_a_server_that_lost_its_control_plane_fails_the_session() -> None:
    decided = verdict(_session(Status.READY), _exited(CONTROL_PLANE_UNREACHABLE), T0, 60.0)
    why = "the control plane was unreachable for longer than its grace (--control-plane-grace)"
    message = f"The render server stopped itself: {why}. exit code 6"
    assert decided == Verdict(Event.FAIL, SessionError(CONTROL_PLANE_UNREACHABLE, message))


@pytest.mark.parametrize("status", [Status.STARTING, Status.READY])
def test_a_server_that_exited_otherwise_fails_the_session(status: Status) -> None:
    decided = verdict(_session(status), _exited(), T0, 60.0)
    assert decided == Verdict(Event.FAIL, SessionError("RenderServerExited", "exit code 6"))


def test_a_starting_session_past_its_start_timeout_fails() -> None:
    assert verdict(_session(Status.STARTING), None, T0 + dt.timedelta(seconds=60), 60.0) is None
    decided = verdict(_session(Status.STARTING), RUNNING, T0 + dt.timedelta(seconds=61), 60.0)
    timeout = SessionError("RenderServerStartTimeout", "The render server did not become ready within 60 s.")
    assert decided == Verdict(Event.FAIL, timeout)
