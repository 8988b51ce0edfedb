"""Rendering sessions: sizes, the lifecycle table and lease arithmetic.

The lifecycle is one table (h11's rule). Services feed it events; nothing else ever sets a status.

    Starting ──ready──▶ Ready ──stop──▶ Stopped
       │  │               │ └──expire──▶ Expired
       │  └──stop──▶ Stopped└──fail───▶ Error
       └──fail──▶ Error

The lease counts from Ready: a session is Expired once it has been Ready for ``lease_minutes``.
``elapsed_minutes`` is the time spent in Ready, rounded down, frozen when the session ends.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math

from openrr.errors import IllegalTransition, InvalidInput

MAX_LEASE_MINUTES = 1440


class Size(enum.StrEnum):
    STANDARD = "Standard"
    PREMIUM = "Premium"

    @classmethod
    def parse(cls, value: object) -> Size:
        """Sizes are accepted in any letter case (v1 clients send ``standard``)."""
        if isinstance(value, str):
            for size in cls:
                if size.value.lower() == value.strip().lower():
                    return size
        raise InvalidInput(
            f"Unknown session size {value!r}; expected one of: {', '.join(s.value for s in cls)}.",
            target="size",
        )


class Status(enum.StrEnum):
    # Case-exact: the stock SDK compares these strings with ==.
    STARTING = "Starting"
    READY = "Ready"
    STOPPED = "Stopped"
    EXPIRED = "Expired"
    ERROR = "Error"

    @property
    def active(self) -> bool:
        return self in (Status.STARTING, Status.READY)


class Event(enum.StrEnum):
    READY = "ready"
    STOP = "stop"
    EXPIRE = "expire"
    FAIL = "fail"


TRANSITIONS: dict[tuple[Status, Event], Status] = {
    (Status.STARTING, Event.READY): Status.READY,
    (Status.STARTING, Event.STOP): Status.STOPPED,
    (Status.STARTING, Event.FAIL): Status.ERROR,
    (Status.READY, Event.STOP): Status.STOPPED,
    (Status.READY, Event.EXPIRE): Status.EXPIRED,
    (Status.READY, Event.FAIL): Status.ERROR,
}


def next_status(current: Status, event: Event) -> Status:
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise IllegalTransition(f"A {current.value} session cannot take the event {event.value!r}.") from None


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where the session's render server listens, as it reported itself when ready."""

    hostname: str
    handshake_port: int
    inspector_port: int
    teraflops: float


@dataclasses.dataclass(frozen=True)
class SessionError:
    code: str
    message: str


@dataclasses.dataclass(frozen=True)
class Session:
    account_id: str
    id: str
    size: Size
    lease_minutes: int
    status: Status
    created_at: dt.datetime
    models: tuple[str, ...] = ()
    ready_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    endpoint: Endpoint | None = None
    teraflops: float | None = None
    error: SessionError | None = None
    host_handle: dict[str, object] | None = None
    host_released: bool = False
    # The key of the session's connect tokens: a secret shared with its render server only (never in an API
    # answer, a log or a repr). None for sessions stored before session-scoped tokens existed.
    connect_secret: str | None = dataclasses.field(default=None, repr=False)
    version: int = 0

    # ---- lease arithmetic -------------------------------------------------------------------------------
    @property
    def expires_at(self) -> dt.datetime | None:
        """When a Ready session expires; None while Starting or after it ended."""
        if self.status is not Status.READY or self.ready_at is None:
            return None
        return self.ready_at + dt.timedelta(minutes=self.lease_minutes)

    def elapsed_minutes(self, now: dt.datetime) -> int:
        if self.ready_at is None:
            return 0
        end = self.ended_at if self.ended_at is not None else now
        return max(0, math.floor((end - self.ready_at).total_seconds() / 60))

    def elapsed(self, now: dt.datetime) -> dt.timedelta:
        if self.ready_at is None:
            return dt.timedelta(0)
        end = self.ended_at if self.ended_at is not None else now
        return max(dt.timedelta(0), end - self.ready_at)

    # ---- transitions (pure: they return a new Session) -----------------------------------------------
    def apply(
        self,
        event: Event,
        now: dt.datetime,
        *,
        endpoint: Endpoint | None = None,
        error: SessionError | None = None,
    ) -> Session:
        status = next_status(self.status, event)
        changes: dict[str, object] = {"status": status}
        if event is Event.READY:
            if endpoint is None:
                raise IllegalTransition(
                    "A session becomes Ready only with the endpoint of its render server."
                )
            changes.update(ready_at=now, endpoint=endpoint, teraflops=endpoint.teraflops)
        else:
            # Terminal: hostname and ports disappear (as in ARR); teraflops stay.
            changes.update(ended_at=now, endpoint=None, error=error)
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def with_lease(self, minutes: int) -> Session:
        return dataclasses.replace(self, lease_minutes=minutes)


def check_create_lease(minutes: int) -> int:
    if minutes < 0:
        raise InvalidInput("The maxLeaseTimeMinutes value cannot be negative.", target="maxLeaseTimeMinutes")
    if minutes > MAX_LEASE_MINUTES:
        raise InvalidInput(
            f"The maxLeaseTimeMinutes value cannot be larger than {MAX_LEASE_MINUTES}.",
            target="maxLeaseTimeMinutes",
        )
    return minutes
