"""The one error tree of openrr.

Services and the store raise these; only ``openrr.api`` turns them into HTTP statuses and the error bodies of
each API version. Foreign exceptions (SQLAlchemy, OS, HTTP clients) are translated once, where they enter.

    OpenRRError                      code           typical HTTP mapping
    ├── InvalidInput                 BadRequest                  400
    ├── AuthenticationFailed         Unauthorized                401
    ├── Forbidden                    Forbidden                   403
    │   └── QuotaExceeded            QuotaExceeded               403
    ├── NotFound                     NotFound                    404
    ├── Conflict                     Conflict                    409
    ├── PayloadTooLarge              PayloadTooLarge             413
    ├── Unprocessable                UnprocessableEntity         422
    ├── Throttled                    TooManyRequests             429 (+ Retry-After)
    ├── CapacityExhausted            CapacityExhausted           503 (+ Retry-After)
    ├── TryAgain                     ServiceUnavailable          503 (+ Retry-After)
    ├── Unavailable                  ServiceUnavailable          503 (no Retry-After: not configured)
    ├── InsufficientStorage          InsufficientStorage         507
    └── HostError                    RenderServerError           (never reaches a client as such:
                                                                  the session goes to Error instead)
"""

from __future__ import annotations


class OpenRRError(Exception):
    """Base of every error openrr raises on purpose. ``code`` is the ARR-style error code."""

    code = "InternalServerError"

    def __init__(self, message: str, *, code: str | None = None, target: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.target = target


class InvalidInput(OpenRRError):
    code = "BadRequest"


class AuthenticationFailed(OpenRRError):
    code = "Unauthorized"


class Forbidden(OpenRRError):
    code = "Forbidden"


class QuotaExceeded(Forbidden):
    """The account is at its limit (e.g. concurrent sessions); retrying will not help until it changes."""

    code = "QuotaExceeded"


class NotFound(OpenRRError):
    code = "NotFound"


class Conflict(OpenRRError):
    code = "Conflict"


class Unprocessable(OpenRRError):
    code = "UnprocessableEntity"


class PayloadTooLarge(OpenRRError):
    code = "PayloadTooLarge"


class Throttled(OpenRRError):
    code = "TooManyRequests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CapacityExhausted(OpenRRError):
    """No render server of the size can be started now; a later retry may find one free."""

    code = "CapacityExhausted"

    def __init__(self, message: str, *, retry_after: int = 10) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TryAgain(OpenRRError):
    """A transient condition that the caller should simply retry."""

    code = "ServiceUnavailable"


class Unavailable(OpenRRError):
    """A feature this service is not set up for: retrying will not help until its operator changes that."""

    code = "ServiceUnavailable"


class InsufficientStorage(OpenRRError):
    """The service's disk (or the user's disk quota there) is full: nothing of the request was kept."""

    code = "InsufficientStorage"


class HostError(OpenRRError):
    code = "RenderServerError"


class IllegalTransition(OpenRRError):
    """A lifecycle event that the state table does not allow: a bug in the caller, or a lost race."""

    code = "Conflict"
