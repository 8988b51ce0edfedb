"""Request bodies bounded before any route runs: before authentication, parsing or reading into memory.

``BodyLimit`` answers 413 in the called API's error format (problem details under ``/v1/``, ARR's
``{"error": ...}`` elsewhere) when ``Content-Length`` is over the route's limit, without reading a byte of the
body, or when a body without one (chunked) grows past the limit while it is read. A body within the limit is
read here, whole, and handed to the route as one message; so at most ``limit`` bytes of an unauthenticated
request are ever held (a streamed route, the model upload, is handed the body as it arrives instead,
counted, and reads it to disk itself), and a route that does not read its body costs nothing (uvicorn stops
reading from a socket whose body nobody takes). Heads (request line and headers) are bounded by the HTTP
protocol itself (``openrr.compat.uvicorn_headers``), before an ASGI app sees them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openrr.api.errors import error_response
from openrr.api.model_routes import UPLOAD_PATTERN
from openrr.api.web import RELAY_PATTERN
from openrr.config.control_plane import LimitSettings
from openrr.errors import PayloadTooLarge

_NO_BODY = {"GET", "HEAD", "DELETE", "OPTIONS"}


class BodyLimits:
    """``default`` bytes for every route, or the limit of the first of ``routes`` whose pattern matches the
    whole path. The HTTP protocol asks it too, to buffer nothing of a body it knows will be refused."""

    def __init__(
        self, default: int, routes: Sequence[tuple[str, int]] = (), streamed: Sequence[tuple[str, int]] = ()
    ) -> None:
        self.default = default
        self.routes = [(re.compile(pattern), limit) for pattern, limit in routes]
        self.streamed = [(re.compile(pattern), limit) for pattern, limit in streamed]

    def limit_for(self, path: str) -> int:
        return self.route(path)[0]

    def route(self, path: str) -> tuple[int, bool]:
        """(limit, streamed): a streamed route reads its body itself, as it arrives."""
        for pattern, limit in self.streamed:
            if pattern.fullmatch(path):
                return limit, True
        for pattern, limit in self.routes:
            if pattern.fullmatch(path):
                return limit, False
        return self.default, False


# Multipart framing around an upload's files (boundaries, part headers, the name fields): the files' own
# bytes are bounded exactly by the route (openrr.services.model_upload).
UPLOAD_FRAMING = 1 << 20


def body_limits(limits: LimitSettings) -> BodyLimits:
    """The control plane's limits: ``--max-body-kib`` for the JSON APIs, ``--max-offer-kib`` for the relay,
    ``--max-upload-mib`` for model uploads, whose bodies are streamed to the route rather than read here."""
    return BodyLimits(
        limits.max_body_kib * 1024,
        [(RELAY_PATTERN, limits.max_offer_kib * 1024)],
        [(UPLOAD_PATTERN, (limits.max_upload_mib << 20) + UPLOAD_FRAMING)],
    )


class BodyLimit:
    """Pure ASGI middleware enforcing ``limits``."""

    def __init__(self, app: ASGIApp, *, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _body_headers(scope)
        if declared is None and not chunked and scope["method"] in _NO_BODY:
            # No body can follow (RFC 9112 §6.3): the polling path stays as cheap as it was.
            await self.app(scope, receive, send)
            return
        limit, streamed = self.limits.route(scope["path"])
        if declared is not None and not declared.isdigit():
            await _answer(
                scope, receive, send, 400, "BadRequest", "The Content-Length header is not a number."
            )
            return
        if declared is not None and int(declared) > limit:
            # Not one byte of the body is read. The connection closes after the answer, because the rest of
            # the body would otherwise be taken for the next request.
            await self._refuse(scope, receive, send, limit)
            return
        if streamed:
            await self.app(scope, _counted(receive, limit), send)
            return
        try:
            body = await _read_body(receive, limit)
        except _OverLimit:
            await self._refuse(scope, receive, send, limit)
            return
        if body is not None:  # None: the client left while sending, nobody to answer
            await self.app(scope, _replay(body, receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        size = f"{limit // 1024} KiB" if limit >= 1024 else f"{limit} bytes"
        await _answer(
            scope, receive, send, 413, "PayloadTooLarge", f"The request body is larger than {size}."
        )


class _OverLimit(Exception):
    pass


def _body_headers(scope: Scope) -> tuple[bytes | None, bool]:
    """The request's ``Content-Length`` (None: none), and whether it has a ``Transfer-Encoding``."""
    declared, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = value
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None if the client left first; ``_OverLimit`` as soon as it grows past ``limit``."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            raise _OverLimit
        if not message.get("more_body", False):
            return bytes(body)


async def _answer(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str) -> None:
    response = error_response(Request(scope), status, code, message)
    response.headers["connection"] = "close"
    await response(scope, receive, send)


def _counted(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises PayloadTooLarge (413 in the route's error format) once the body has grown past
    ``limit``: a streamed route holds one chunk at a time, and stops at the limit whatever it declared."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit >> 20} MiB.")
        return message

    return counted


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then whatever the server says next (a disconnect, when the client leaves)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
