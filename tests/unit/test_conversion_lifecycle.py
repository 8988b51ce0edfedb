"""The conversion lifecycle table of openrr.domain.conversion: a pure ``apply``, illegal events raise."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from openrr.domain.conversion import (
    TRANSITIONS,
    Conversion,
    ConversionInput,
    ConversionOutput,
    ConversionStatus,
    Event,
    next_status,
)
from openrr.errors import IllegalTransition

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
S = ConversionStatus


def queued() -> Conversion:
    return Conversion(
        "acc",
        "c1",
        ConversionInput("file:///in", "models/", "box.glb"),
        ConversionOutput("file:///out", "", "box.arrAsset"),
        S.NOT_STARTED,
        T0,
        input_sas="sv=1&sig=in",
        output_sas="sv=1&sig=out",
    )


def test_ended_conversions_take_no_event() -> None:
    for status in (S.SUCCEEDED, S.FAILED, S.CANCELLED):
        assert status.terminal
        for event in Event:
            with pytest.raises(IllegalTransition):
                next_status(status, event)
    assert {s for (s, _e) in TRANSITIONS} == {S.NOT_STARTED, S.RUNNING}


def test_a_queued_conversion_cannot_succeed_or_be_requeued() -> None:
    for event in (Event.SUCCEED, Event.REQUEUE):
        with pytest.raises(IllegalTransition):
            queued().apply(event, T0)


def test_a_run_stamps_its_start_and_its_end_drops_the_sas() -> None:
    later = T0 + dt.timedelta(minutes=5)
    running = queued().apply(Event.START, T0, worker="me", heartbeat_at=T0, attempts=1)
    assert running.status is S.RUNNING
    assert running.started_at == T0
    assert (running.worker, running.heartbeat_at, running.attempts) == ("me", T0, 1)
    done = running.apply(Event.SUCCEED, later, output_uri="file:///out/box.arrAsset")
    assert done.status is S.SUCCEEDED
    assert done.ended_at == later
    assert done.output_uri == "file:///out/box.arrAsset"
    assert (done.input_sas, done.output_sas, done.worker, done.heartbeat_at) == (None, None, None, None)
    assert running.status is S.RUNNING  # pure: the conversion it was applied to is unchanged


def test_a_requeued_conversion_belongs_to_no_process() -> None:
    running = queued().apply(Event.START, T0, worker="me", heartbeat_at=T0)
    again = running.apply(Event.REQUEUE, T0)
    assert again.status is S.NOT_STARTED
    assert (again.worker, again.heartbeat_at) == (None, None)
    assert again.input_sas == "sv=1&sig=in"  # still needed for the next run
    failed = queued().apply(Event.FAIL, T0, error_code="InternalServerError")
    assert failed.status is S.FAILED
    assert failed.error_code == "InternalServerError"
    assert failed.input_sas is None


def test_same_request_ignores_the_sas() -> None:
    assert queued().same_request(dataclasses.replace(queued(), input_sas=None, output_sas="other"))
    other = dataclasses.replace(queued(), output=ConversionOutput("file:///out", "x/", "box.arrAsset"))
    assert not queued().same_request(other)
