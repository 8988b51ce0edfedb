"""The render server's HTTP edge, shared by its two apps (handshake port and inspector port).

What every request meets before and around a route: bounded request heads and bodies, the documented JSON
error shape for aiohttp's own errors and for bugs, the connect-token check, and the offer's body schema.
Apart from the server because none of it depends on a session's state: the server's routes and the
inspector's use it alike.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from openrr.protocol.handshake import ConnectTokenRefused, RenderSpec, check_connect_token

log = logging.getLogger("openrr.render")

MAX_OFFER_BYTES = 256 * 1024
MAX_INSPECTOR_BODY = 4096
# Request heads: aiohttp's parser enforces these before a handler runs, answering 400 past either.
MAX_HEADER_FIELD = 8190
MAX_HEADER_FIELDS = 100


class VideoRequest(BaseModel):
    """What a client may ask of the video in its offer (anything left out: the session's defaults)."""

    model_config = ConfigDict(extra="forbid")
    width: int | None = Field(default=None, ge=160, le=3840, multiple_of=2)
    height: int | None = Field(default=None, ge=120, le=2160, multiple_of=2)
    fps: int | None = Field(default=None, ge=1, le=60)
    bitrate: int | None = Field(default=None, ge=100_000, le=50_000_000)
    codec: str | None = Field(default=None, pattern="^(h264|vp8)$")


class OfferBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = Field(pattern="^offer$")
    sdp: str = Field(min_length=1, max_length=MAX_OFFER_BYTES)
    video: VideoRequest | None = None


def describe(exc: ValidationError) -> str:
    """The first few problems of an invalid body, one line."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:5]
    )


def check_bearer(request: web.Request, spec: RenderSpec) -> None:
    """Only a connect token of ``spec``'s session (``protocol.handshake.check_connect_token``) gets through:
    anything else raises 401 with the JSON error body."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise http_error(401, "Unauthorized", "A bearer connect token of this session is required.")
    try:
        check_connect_token(token.strip(), secret=spec.connect_secret, session_id=spec.session_id)
    except ConnectTokenRefused as exc:
        raise http_error(401, "Unauthorized", f"The connect token is not valid: {exc}.") from None


def http_error(status: int, code: str, message: str) -> web.HTTPException:
    """The HTTP error to raise, with the documented body ``{"error": {"code", "message"}}``."""
    body = json.dumps({"error": {"code": code, "message": message}})
    cls = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        403: web.HTTPForbidden,
        409: web.HTTPConflict,
        503: web.HTTPServiceUnavailable,
    }[status]
    return cls(text=body, content_type="application/json")


_ERROR_CODES = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own errors (unknown path, wrong method, body too large) in the documented error shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        code = _ERROR_CODES.get(exc.status, "BadRequest" if exc.status < 500 else "InternalError")
        body = json.dumps({"error": {"code": code, "message": exc.reason}})
        return web.Response(status=exc.status, text=body, content_type="application/json")
    except Exception:  # a bug: the client gets the error shape, the log gets the traceback
        log.exception("%s %s failed", request.method, request.path)
        body = json.dumps({"error": {"code": "InternalError", "message": "The render server failed."}})
        return web.Response(status=500, text=body, content_type="application/json")


@web.middleware
async def read_body_first(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bound the body before the route (and so the token check) runs: a Content-Length over the app's
    ``client_max_size`` is refused unread, and a chunked body is read only up to it (413 either way)."""
    if request.content_length is not None and request.content_length > request.client_max_size:
        raise web.HTTPRequestEntityTooLarge(
            max_size=request.client_max_size, actual_size=request.content_length
        )
    if request.body_exists:
        await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size; kept for the route
    return await handler(request)


def bounded_app(client_max_size: int) -> web.Application:
    """An app of the render server: bodies bounded to ``client_max_size``, errors in the JSON shape."""
    return web.Application(client_max_size=client_max_size, middlewares=[json_errors, read_body_first])


def http_runner(app: web.Application) -> web.AppRunner:
    """A runner for one of the render server's apps, with bounded request heads and no access log (the
    URLs it would log may carry tokens)."""
    return web.AppRunner(
        app,
        access_log=None,
        max_line_size=MAX_HEADER_FIELD,
        max_field_size=MAX_HEADER_FIELD,
        max_headers=MAX_HEADER_FIELDS,
    )
