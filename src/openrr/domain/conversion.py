"""Asset conversions: what one is, the lifecycle table, and the error codes a conversion ends with.

The lifecycle is one table (h11's rule). The conversion services feed it events; nothing else ever sets a
status. Every change is stored as a compare-and-set on ``Conversion.version``.

    NotStarted ──start──▶ Running ──succeed──▶ Succeeded
        │                  │  └─────fail────▶ Failed
        └──────fail──────▶ Failed (never started: interrupted too often)
                           └──requeue──▶ NotStarted  (its control plane died; run again)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from openrr.errors import IllegalTransition

ASSET_SUFFIX = ".arrAsset"

# The error codes a conversion shows (ARR's): a container the service cannot use when the conversion is
# created; what only the run shows (a missing input asset, a corrupt model) once it ran.
ACCESS_ERROR = "DelegatedResourceAccessError"
PROCESS_FAILED = "ConversionProcessFailed"
INTERNAL_ERROR = "InternalServerError"
INPUT_DENIED = "InputContainerAccessDenied"
OUTPUT_DENIED = "OutputContainerAccessDenied"
CHECK_LOGS = "Check logs in output container for details."


class ConversionStatus(enum.StrEnum):
    # Case-exact: the stock SDK compares these strings with ==.
    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    CANCELLED = "Cancelled"
    FAILED = "Failed"
    SUCCEEDED = "Succeeded"

    @property
    def terminal(self) -> bool:
        return self in (ConversionStatus.CANCELLED, ConversionStatus.FAILED, ConversionStatus.SUCCEEDED)


class Event(enum.StrEnum):
    START = "start"
    SUCCEED = "succeed"
    FAIL = "fail"
    REQUEUE = "requeue"


S = ConversionStatus
TRANSITIONS: dict[tuple[ConversionStatus, Event], ConversionStatus] = {
    (S.NOT_STARTED, Event.START): S.RUNNING,
    (S.NOT_STARTED, Event.FAIL): S.FAILED,
    (S.RUNNING, Event.SUCCEED): S.SUCCEEDED,
    (S.RUNNING, Event.FAIL): S.FAILED,
    (S.RUNNING, Event.REQUEUE): S.NOT_STARTED,
}


def next_status(current: ConversionStatus, event: Event) -> ConversionStatus:
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise IllegalTransition(
            f"A {current.value} conversion cannot take the event {event.value!r}."
        ) from None


@dataclasses.dataclass(frozen=True)
class ConversionInput:
    """Where a conversion reads: every blob under ``blob_prefix`` ("" = the whole container)."""

    container_uri: str
    blob_prefix: str
    asset_path: str  # relative to blob_prefix


@dataclasses.dataclass(frozen=True)
class ConversionOutput:
    """Where a conversion writes: ``blob_prefix`` + each output's name."""

    container_uri: str
    blob_prefix: str
    asset_filename: str  # ends in .arrAsset


@dataclasses.dataclass(frozen=True)
class Conversion:
    """A conversion as stored. Its status changes only through ``apply``, which the conversion services call.

    ``input_sas``/``output_sas`` are the request's shared access signatures: never shown, and dropped once
    the conversion ends. ``worker`` names the control-plane process running it and ``heartbeat_at`` is when
    that process last confirmed it, so that a conversion whose process died is found and run again.
    """

    account_id: str
    id: str
    input: ConversionInput
    output: ConversionOutput
    status: ConversionStatus
    created_at: dt.datetime
    input_sas: str | None = dataclasses.field(default=None, repr=False)
    output_sas: str | None = dataclasses.field(default=None, repr=False)
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    output_uri: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    worker: str | None = None
    heartbeat_at: dt.datetime | None = None
    version: int = 0

    def same_request(self, other: Conversion) -> bool:
        """Whether ``other`` asks for the same conversion (SAS aside: they are not part of the settings)."""
        return self.input == other.input and self.output == other.output

    # ---- transitions (pure: they return a new Conversion) --------------------------------------------
    def apply(self, event: Event, now: dt.datetime, **changes: object) -> Conversion:
        """This conversion after ``event``: the table's next status, timestamps, and the given field changes.

        Raises IllegalTransition for an event the table does not allow in the current status.
        """
        status = next_status(self.status, event)
        fields: dict[str, object] = {"status": status}
        if status is S.RUNNING:
            fields["started_at"] = now
        if status.terminal:
            # The SAS are needed only to run: they do not outlive the conversion.
            fields.update(ended_at=now, input_sas=None, output_sas=None, worker=None, heartbeat_at=None)
        if status is S.NOT_STARTED:
            fields.update(worker=None, heartbeat_at=None)
        fields.update(changes)
        return dataclasses.replace(self, **fields)  # type: ignore[arg-type]
