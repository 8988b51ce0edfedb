"""Wire format of the 2021-01-01 session API (shared/reference/arr/stable-2021-01-01/mr-arr.json).

Request bodies are pydantic models (FastAPI validates them and documents them in /openapi.json). Responses are
built by ``session_body`` as plain dicts: the key order and the omission of fields while Starting must match
what the real service sent (notes §2.4), which a response model would blur.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from openrr.api.responses import render_json
from openrr.domain.session import Session, Status

StrictInt = Annotated[int, Field(strict=True)]


class CreateSessionSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")
    maxLeaseTimeMinutes: StrictInt = Field(
        description="Minutes the session runs after reaching Ready; between 0 and 1440."
    )
    size: str = Field(description="Standard or Premium (any letter case).", examples=["Standard"])


class UpdateSessionSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")
    maxLeaseTimeMinutes: StrictInt = Field(
        description="The new lease in minutes: larger than the current one and at most 1440."
    )


class ErrorDetail(BaseModel):
    code: str
    message: str
    target: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


# What an error status means wherever an account's token is checked and throttled.
_COMMON_ERRORS = {
    401: "The access token is missing, forged or expired.",
    403: "The access token was issued for another account.",
    429: "Too many requests for this account; see Retry-After.",
}


def error_responses(described: Mapping[int, str], *codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses, in the ARR error shape; ``described`` adds to or
    overrides the common texts."""
    texts = {**_COMMON_ERRORS, **described}
    return {code: {"model": ErrorResponse, "description": texts[code]} for code in codes}


class SessionProperties(BaseModel):
    """Documentation of the response body (the API writes it with ``session_body``)."""

    id: str
    creationTime: dt.datetime | None = None
    arrInspectorPort: int | None = Field(default=None, ge=49152, le=65534)
    handshakePort: int | None = Field(default=None, ge=49152, le=65534)
    elapsedTimeMinutes: int | None = None
    hostname: str | None = None
    maxLeaseTimeMinutes: int | None = None
    size: Literal["Standard", "Premium"]
    status: Literal["Starting", "Ready", "Stopped", "Expired", "Error"]
    teraflops: float | None = None
    error: ErrorDetail | None = None


class SessionsList(BaseModel):
    sessions: list[SessionProperties]
    next_link: str | None = Field(default=None, alias="@nextLink")


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def session_body(s: Session, now: dt.datetime) -> dict[str, Any]:
    body: dict[str, Any] = {"id": s.id, "creationTime": iso(s.created_at)}
    if s.endpoint is not None and s.status is Status.READY:
        body["arrInspectorPort"] = s.endpoint.inspector_port
        body["handshakePort"] = s.endpoint.handshake_port
    body["elapsedTimeMinutes"] = s.elapsed_minutes(now)
    if s.endpoint is not None and s.status is Status.READY:
        body["hostname"] = s.endpoint.hostname
    body["maxLeaseTimeMinutes"] = s.lease_minutes
    body["size"] = s.size.value
    body["status"] = s.status.value
    if s.teraflops is not None:
        body["teraflops"] = s.teraflops
    if s.error is not None and not s.status.active:
        # A non-null error makes the SDK's poller raise: right for Error and for a session the service
        # stopped by itself (idle stop: the only Stopped session with an error), wrong while active.
        body["error"] = {"code": s.error.code, "message": s.error.message}
    return body


class SessionBodies:
    """``session_body`` rendered (``render_json``), remembered per session: a polled session answers the same
    bytes until it changes or another minute has elapsed, and building and encoding the body would cost more
    than the rest of the route.

    The bytes are those ``session_body`` would give now: an entry serves only the very ``Session`` object it
    was rendered from (a frozen snapshot; every change of a session makes a new one), and only while
    ``elapsedTimeMinutes``, the one part of the body that depends on the time, is what it was. Bounded like
    the session cache: the oldest entry goes first.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._entries: dict[tuple[str, str], tuple[Session, int, bytes]] = {}

    def render(self, s: Session, now: dt.datetime) -> bytes:
        key = (s.account_id, s.id)
        elapsed = s.elapsed_minutes(now)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is s and entry[1] == elapsed:
            return entry[2]
        body = render_json(session_body(s, now))
        self._entries.pop(key, None)
        self._entries[key] = (s, elapsed, body)
        while len(self._entries) > self._max:
            del self._entries[next(iter(self._entries))]
        return body
