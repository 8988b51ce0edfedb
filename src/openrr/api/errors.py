"""Maps openrr's error tree to status codes and to the error body of the API that was called.

2021-01-01 and the STS: ``{"error": {"code", "message"[, "target"]}}``.
v1 (an ASP.NET service in its day): problem details ``{"type", "title", "status", "traceId", "errors"}``.
Only 429 and 503 carry Retry-After: the SDK retries any 4xx that has one (notes §9.14).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from openrr import errors
from openrr.api.responses import ArrJSON, new_cv

log = logging.getLogger(__name__)

STATUS: dict[type[errors.OpenRRError], int] = {
    errors.InvalidInput: 400,
    errors.AuthenticationFailed: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.IllegalTransition: 409,
    errors.PayloadTooLarge: 413,
    errors.Unprocessable: 422,
    errors.Throttled: 429,
    errors.CapacityExhausted: 503,
    errors.TryAgain: 503,
    errors.Unavailable: 503,
    errors.InsufficientStorage: 507,
    errors.HostError: 500,
}

_HTTP_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "UnprocessableEntity",
    429: "TooManyRequests",
    500: "InternalServerError",
}

_V1_TYPES = {
    400: "https://tools.ietf.org/html/rfc7231#section-6.5.1",
    401: "https://tools.ietf.org/html/rfc7235#section-3.1",
    403: "https://tools.ietf.org/html/rfc7231#section-6.5.3",
    404: "https://tools.ietf.org/html/rfc7231#section-6.5.4",
    409: "https://tools.ietf.org/html/rfc7231#section-6.5.8",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: "https://tools.ietf.org/html/rfc7231#section-6.6.1",
    503: "https://tools.ietf.org/html/rfc7231#section-6.6.4",
}


def status_of(exc: errors.OpenRRError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(
    request: Request, status: int, code: str, message: str, *, target: str | None = None, retry_after: int = 0
) -> Response:
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if status in (429, 503) and retry_after:
        headers["Retry-After"] = str(retry_after)
    path = request.url.path
    if path.startswith("/v1/"):
        body: dict[str, Any] = {
            "type": _V1_TYPES.get(status, "about:blank"),
            "title": message,
            "status": status,
            "traceId": new_cv(),
            "errors": {target or code: [message]},
        }
        return ArrJSON(body, status_code=status, headers=headers)
    if status == 401 and _is_sts(path):
        return Response(status_code=401)  # the real STS answers a wrong key with an empty 401
    error: dict[str, Any] = {"code": code, "message": message}
    if target:
        error["target"] = target
    return ArrJSON({"error": error}, status_code=status, headers=headers)


def _is_sts(path: str) -> bool:
    return path.lower().startswith("/accounts/") and path.lower().endswith("/token")


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    parts = []
    target = None
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        if err.get("type") == "json_invalid":
            return "The request body is not valid JSON.", None
        if not loc and err.get("type") == "missing":
            return "The request body is missing.", None
        where = ".".join(loc)
        target = target or where or None
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "The request was malformed. " + "; ".join(parts), target


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.OpenRRError)
    async def _openrr(request: Request, exc: errors.OpenRRError) -> Response:
        retry_after = exc.retry_after if isinstance(exc, errors.Throttled | errors.CapacityExhausted) else 0
        if isinstance(exc, errors.TryAgain):
            retry_after = 1
        return error_response(
            request, status_of(exc), exc.code, exc.message, target=exc.target, retry_after=retry_after
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        message, target = _validation_message(exc)
        return error_response(request, 400, "BadRequest", message, target=target)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no resource at {request.url.path}."
        response = error_response(request, exc.status_code, code, detail)
        if exc.headers:
            response.headers.update(exc.headers)  # e.g. the Allow header RFC 9110 requires on a 405
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "InternalServerError", "An internal server error occurred.")
