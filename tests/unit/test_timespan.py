"""v1 timespans: .NET TimeSpan text both ways."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrr.api.v1.wire import format_timespan, lease_minutes, parse_body, parse_timespan
from openrr.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("4:0:0", 240),
        ("04:00:00", 240),
        ("5:0:0", 300),
        ("0:1", 1),
        ("1.00:00:00", 1440),
        ("00:00:30", 1),
        ("0:0:0", 0),
        ("01:30:00.5", 91),
    ],
)
def test_parse(text: str, minutes: int) -> None:
    assert lease_minutes(text) == minutes


@pytest.mark.parametrize(
    "text", ["", "4", "4h", "-1:00:00", "24:00:00", "1:60:00", "1:00:60", "a:b:c", 240, None]
)
def test_refused(text: object) -> None:
    with pytest.raises(InvalidInput):
        parse_timespan(text)


@given(st.integers(min_value=0, max_value=10 * 86400))
def test_round_trip(seconds: int) -> None:
    delta = dt.timedelta(seconds=seconds)
    assert parse_timespan(format_timespan(delta)) == delta


def test_format() -> None:
    assert format_timespan(dt.timedelta(hours=4)) == "04:00:00"
    assert format_timespan(dt.timedelta(days=1, seconds=1)) == "1.00:00:01"


def test_body_keys_are_case_insensitive_and_bad_json_is_refused() -> None:
    assert parse_body(b'{"MaxLeaseTime": "1:0:0", "SIZE": "x"}') == {"maxleasetime": "1:0:0", "size": "x"}
    assert parse_body(b"  ") == {}
    for raw in (b"{", b"[1]", b"\xff\xfe", b'"text"'):
        with pytest.raises(InvalidInput):
            parse_body(raw)
