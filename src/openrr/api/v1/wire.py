"""v1 wire format: lenient JSON, .NET timespans, case-insensitive JSON keys, and the session properties body.

The original service was ASP.NET with JSON.NET: it read bodies leniently (single-quoted strings and keys,
unquoted keys, comments, trailing commas: the seed's own PowerShell examples send ``{ 'maxLeaseTime':
'4:0:0', ... }``), bound keys case-insensitively, ignored unknown keys, and wrote leases as TimeSpan strings
(``4:0:0``, ``04:00:00``, ``1.00:00:00``). JSON5 (pyjson5) accepts those relaxations; the 2021-01-01 API
stays strict JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any

import pyjson5

from openrr.domain.session import Session, Status
from openrr.errors import InvalidInput
from openrr.protocol.builtin_models import BUILTIN_MODELS, is_builtin

_NEAR = re.compile(r"near (\d+)")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$", re.ASCII)


def parse_timespan(value: object, *, field: str = "maxLeaseTime") -> dt.timedelta:
    """Parse ``[d.]h:m[:s[.fffffff]]``; hours < 24, minutes and seconds < 60, as .NET does."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a timespan string such as '04:00:00'.", target=field)
    m = _TIMESPAN.match(value.strip())
    if not m:
        raise InvalidInput(f"{field} '{value}' is not a timespan such as '04:00:00'.", target=field)
    days, hours, minutes, seconds, fraction = m.groups()
    h, mi, se = int(hours), int(minutes), int(seconds or 0)
    out_of_range = InvalidInput(f"{field} '{value}' has a component out of range.", target=field)
    if h > 23 or mi > 59 or se > 59:
        raise out_of_range
    try:
        return dt.timedelta(
            days=int(days or 0),
            hours=h,
            minutes=mi,
            seconds=se,
            microseconds=int((fraction or "0").ljust(6, "0")[:6]),
        )
    except (OverflowError, ValueError):  # more days than a timedelta holds, or than int() converts
        raise out_of_range from None


def lease_minutes(value: object, *, field: str = "maxLeaseTime") -> int:
    """A lease timespan in whole minutes, rounded up (the service keeps leases in minutes)."""
    return math.ceil(parse_timespan(value, field=field).total_seconds() / 60)


def format_timespan(delta: dt.timedelta) -> str:
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{days}.{text}" if days else text


def parse_body(raw: bytes) -> dict[str, Any]:
    """A JSON object (read as leniently as JSON.NET did) with lower-cased keys. Empty body = empty object."""
    if not raw.strip():
        return {}
    try:
        # Strict JSON first: it is what every SDK sends, and the C parser is the fastest.
        data = json.loads(raw)
    # ValueError: malformed, not UTF-8, or an integer longer than int() converts; RecursionError: too deep.
    except (ValueError, RecursionError):
        data = _lenient(raw)
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object.")
    return {str(k).lower(): v for k, v in data.items()}


def _lenient(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark, as Windows tools write one, is not content
    except UnicodeDecodeError:
        raise InvalidInput("The request body is not UTF-8 text.") from None
    try:
        # pyjson5 bounds nesting itself (Json5NestingTooDeep is a Json5DecoderException).
        return pyjson5.decode(text)
    except (pyjson5.Json5Exception, ValueError, OverflowError) as exc:
        raise InvalidInput(f"The request body is not valid JSON: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    # pyjson5's messages quote parser internals (b'object'); only the position is worth passing on.
    near = _NEAR.search(str(exc.args[0]) if exc.args else "")
    return f"near character {near.group(1)}." if near else "it could not be parsed."


def parse_models(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise InvalidInput("models must be an array of asset URLs.", target="models")
    for model in value:
        if is_builtin(model) and model.lower() not in BUILTIN_MODELS:
            raise InvalidInput(
                f"{model[:100]!r} is not a builtin model; openrr has {', '.join(sorted(BUILTIN_MODELS))}.",
                target="models",
            )
    return tuple(value)


def _message(s: Session) -> str | None:
    if s.error is not None:
        return s.error.message
    if s.status is Status.EXPIRED:
        return "The session lease has expired."
    return None


def properties_body(s: Session, now: dt.datetime) -> dict[str, Any]:
    ready = s.status is Status.READY and s.endpoint is not None
    body: dict[str, Any] = {
        "message": _message(s),
        "sessionElapsedTime": format_timespan(s.elapsed(now)),
        "sessionHostname": s.endpoint.hostname if ready and s.endpoint else "",
        "sessionId": s.id,
        "sessionMaxLeaseTime": format_timespan(dt.timedelta(minutes=s.lease_minutes)),
        "sessionSize": s.size.value,
        "sessionStatus": s.status.value,
    }
    if s.teraflops is not None:
        body["teraflops"] = s.teraflops
    if ready and s.endpoint:
        body["handshakePort"] = s.endpoint.handshake_port
        body["arrInspectorPort"] = s.endpoint.inspector_port
    return body
