"""What the streaming client raises: connecting failed or the connection was lost, the session was not
Ready, or the render server refused a request.

Apart from the connection so that callers (``openrr connect``) can name these errors without loading the
WebRTC stack.
"""

from __future__ import annotations


class RenderConnectError(Exception):
    """Connecting failed or the connection was lost.

    ``status`` is the HTTP status of the offer's answer, 0 when there was none (network error, timeout,
    connection lost). ``code`` is the server's error code (``ClientAlreadyConnected``...) or one of ours:
    ``ConnectionFailed``, ``Timeout``, ``BadAnswer``, ``ConnectionClosed``, ``SessionNotReady``.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}" if self.status else f"{self.code}: {self.message}"


class SessionNotReadyError(RenderConnectError):
    """The session exists but is not Ready (``status`` holds the session's status, e.g. ``Starting``)."""

    def __init__(self, session_id: str, session_status: str, message: str) -> None:
        super().__init__(0, "SessionNotReady", message)
        self.session_id = session_id
        self.session_status = session_status


class RenderRequestError(Exception):
    """The render server answered a data-channel request with an ``error`` message."""

    def __init__(self, code: str, message: str, request_type: str | None = None) -> None:
        super().__init__(code, message, request_type)
        self.code = code
        self.message = message
        self.request_type = request_type

    def __str__(self) -> str:
        where = f"{self.request_type}: " if self.request_type else ""
        return f"{where}{self.code}: {self.message}"
