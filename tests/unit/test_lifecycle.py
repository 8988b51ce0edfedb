"""The lifecycle table and lease arithmetic of openrr.domain.session."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrr.domain.session import (
    TRANSITIONS,
    Endpoint,
    Event,
    Session,
    SessionError,
    Size,
    Status,
    check_create_lease,
    next_status,
)
from openrr.errors import IllegalTransition, InvalidInput

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
EP = Endpoint("h", 50000, 50001, 8.1)


def starting(lease: int = 60) -> Session:
    return Session("acc", "s", Size.STANDARD, lease, Status.STARTING, T0)


def test_terminal_states_take_no_event() -> None:
    for status in (Status.STOPPED, Status.EXPIRED, Status.ERROR):
        for event in Event:
            with pytest.raises(IllegalTransition):
                next_status(status, event)


def test_only_ready_sessions_expire_and_starting_cannot_be_ready_twice() -> None:
    with pytest.raises(IllegalTransition):
        next_status(Status.STARTING, Event.EXPIRE)
    with pytest.raises(IllegalTransition):
        next_status(Status.READY, Event.READY)
    assert {s for (s, _e) in TRANSITIONS} == {Status.STARTING, Status.READY}


def test_ready_needs_an_endpoint() -> None:
    with pytest.raises(IllegalTransition):
        starting().apply(Event.READY, T0)


def test_lease_counts_from_ready_and_elapsed_freezes_at_the_end() -> None:
    ready = starting(lease=10).apply(Event.READY, T0 + dt.timedelta(minutes=3), endpoint=EP)
    assert ready.expires_at == T0 + dt.timedelta(minutes=13)
    assert ready.elapsed_minutes(T0 + dt.timedelta(minutes=5, seconds=59)) == 2
    stopped = ready.apply(Event.STOP, T0 + dt.timedelta(minutes=8, seconds=30))
    assert stopped.endpoint is None
    assert stopped.teraflops == 8.1
    assert stopped.expires_at is None
    assert stopped.elapsed_minutes(T0 + dt.timedelta(days=3)) == 5


def test_failure_keeps_its_error() -> None:
    err = SessionError("RenderServerExited", "boom")
    failed = starting().apply(Event.FAIL, T0, error=err)
    assert failed.status is Status.ERROR
    assert failed.error == err
    assert failed.ended_at == T0


@given(st.lists(st.sampled_from(list(Event)), max_size=8))
def test_any_event_sequence_stays_inside_the_table(events: list[Event]) -> None:
    session = starting()
    for event in events:
        try:
            session = session.apply(event, T0, endpoint=EP)
        except IllegalTransition:
            assert (session.status, event) not in TRANSITIONS
            continue
        assert session.status in Status


@pytest.mark.parametrize("value", ["standard", "STANDARD", " Standard ", "premium", "Premium"])
def test_sizes_in_any_case(value: str) -> None:
    assert Size.parse(value).value.lower() == value.strip().lower()


@pytest.mark.parametrize("value", ["huge", "", None, 3, ["Standard"]])
def test_unknown_sizes_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput):
        Size.parse(value)


def test_create_lease_bounds() -> None:
    assert check_create_lease(0) == 0
    assert check_create_lease(1440) == 1440
    with pytest.raises(InvalidInput, match="cannot be negative"):
        check_create_lease(-1)
    with pytest.raises(InvalidInput):
        check_create_lease(1441)
