"""Response helpers shared by every API version: JSON with ARR's content type, and the MS-CV header."""

from __future__ import annotations

import base64
import json
import os
import secrets
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SUPPORTED_API_VERSIONS = ("2021-01-01-preview", "2021-01-01")
STS_API_VERSIONS = ("2019-02-28-preview",)


class ArrJSON(JSONResponse):
    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return render_json(content)


def render_json(content: Any) -> bytes:
    """The body ``ArrJSON(content)`` answers: compact JSON in UTF-8."""
    try:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate echoed from the request: escape, as JSON allows
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


def rendered_json(body: bytes) -> Response:
    """``ArrJSON(content)`` for a ``body`` already rendered by ``render_json(content)``: the same status,
    headers (Starlette's ``Response`` derives them from the body and media type alone) and body."""
    return Response(body, media_type=ArrJSON.media_type)


def new_cv() -> str:
    """A correlation vector like ARR's: 22 base64 characters of 16 random bytes, a dot, a counter."""
    if not _cvs:
        # Every response carries one: made 256 at a time, one system call for their random bytes.
        raw = secrets.token_bytes(16 * 256)
        _cvs.extend(base64.b64encode(raw[i : i + 16]).decode()[:22] + ".0" for i in range(0, len(raw), 16))
    return _cvs.pop()


_cvs: list[str] = []
os.register_at_fork(after_in_child=_cvs.clear)  # a forked child must not hand out its parent's next CVs

_SUPPORTED_HEADER = ", ".join(SUPPORTED_API_VERSIONS).encode()
# HSTS on HTTPS responses only (RFC 6797 §7.2: a browser ignores it over HTTP): a year, this host only.
HSTS = b"max-age=31536000"
_MS_CV = b"ms-cv"


def _added_headers(https: bool, data_plane: bool, get: bool) -> tuple[tuple[bytes, bytes], ...]:
    headers = [(b"x-content-type-options", b"nosniff")]
    if https:
        headers.append((b"strict-transport-security", HSTS))
    if data_plane:
        headers.append((b"api-supported-versions", _SUPPORTED_HEADER))
    if get:
        headers += [(b"cache-control", b"no-store,no-cache"), (b"pragma", b"no-cache")]
    return tuple(headers)


# What ArrHeaders adds after MS-CV, by (HTTPS, data plane, a GET of an ARR path): made once, not per answer.
_ADDED = {
    (https, data_plane, get): _added_headers(https, data_plane, get)
    for https in (False, True)
    for data_plane in (False, True)
    for get in (False, True)
}


class ArrHeaders:
    """ASGI middleware adding the headers every ARR response carries (notes §2.4, §9.18), and on every
    response served over HTTPS ``Strict-Transport-Security``, so a browser never sends this service's tokens
    over plain HTTP later (behind a TLS-terminating proxy, with ``--insecure-http``, the proxy sets it).

    Written as plain ASGI rather than BaseHTTPMiddleware: it runs on every request and must stay cheap.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        arr_path = path.startswith(("/accounts/", "/Accounts/", "/v1/"))
        data_plane = arr_path and not path.endswith("/token")
        added = _ADDED[scope.get("scheme") == "https", data_plane, arr_path and scope["method"] == "GET"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                for name, _ in headers:
                    if name.lower() == _MS_CV:  # an answer that has its own (none of openrr's so far)
                        break
                else:
                    headers.append((_MS_CV, new_cv().encode()))
                headers += added
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
