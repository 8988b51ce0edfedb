"""Response helpers shared by every API version: JSON with ARR's content type, and the MS-CV header."""

from __future__ import annotations

import base64
import json
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
    """A correlation vector like ARR's: 22 base64 characters, a dot, a counter."""
    return base64.b64encode(secrets.token_bytes(16)).decode()[:22] + ".0"


_SUPPORTED_HEADER = ", ".join(SUPPORTED_API_VERSIONS).encode()
# HSTS on HTTPS responses only (RFC 6797 §7.2: a browser ignores it over HTTP): a year, this host only.
HSTS = b"max-age=31536000"


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
        is_get = scope["method"] == "GET"
        arr_path = path.startswith(("/accounts/", "/Accounts/", "/v1/"))
        data_plane = arr_path and not path.endswith("/token")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"ms-cv" not in names:
                    headers.append((b"ms-cv", new_cv().encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                if https:
                    headers.append((b"strict-transport-security", HSTS))
                if data_plane:
                    headers.append((b"api-supported-versions", _SUPPORTED_HEADER))
                if arr_path and is_get:
                    headers.append((b"cache-control", b"no-store,no-cache"))
                    headers.append((b"pragma", b"no-cache"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
