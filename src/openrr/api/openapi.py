"""The served OpenAPI document, corrected to say what the API really answers.

FastAPI documents a 422 ``HTTPValidationError`` on every operation with parameters; openrr answers validation
errors with 400 and ARR's error body (v1: problem details). This pass replaces those entries and adds the
statuses every operation can give (401, 403, 429 and 400 for a bad account id), so that clients and
schemathesis' status-code check see the truth.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_ARR_ERROR = {"$ref": "#/components/schemas/ErrorResponse"}
_PROBLEM = {"$ref": "#/components/schemas/ProblemDetails"}
_PROBLEM_SCHEMA = {
    "type": "object",
    "title": "ProblemDetails",
    "description": "The v1 API's error body (as ASP.NET wrote it).",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "traceId": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
    "required": ["title", "status"],
}
_COMMON = {
    "400": "The request was malformed (including the account id or api-version).",
    "401": "The access token is missing, forged or expired.",
    "403": "The access token was issued for another account.",
    "429": "Too many requests for this account; see Retry-After.",
}
_STS = {
    "400": "The account id or api-version is malformed.",
    "401": "Wrong account id or key (empty body).",
    "429": "Too many token requests for this account; see Retry-After.",
}


def _error_response(description: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _is_validation_entry(response: dict[str, Any]) -> bool:
    content = response.get("content", {}).get("application/json", {})
    return bool(content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"))


def build(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ProblemDetails"] = _PROBLEM_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        sts = path.endswith("/token")
        body = _PROBLEM if path.startswith("/v1/") else _ARR_ERROR
        for method, operation in operations.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if "422" in responses and _is_validation_entry(responses["422"]):
                del responses["422"]
            for status, description in (_STS if sts else _COMMON).items():
                if status not in responses:
                    error_body = None if sts and status == "401" else _ARR_ERROR if sts else body
                    responses[status] = _error_response(description, error_body)
            if path.startswith("/v1/") and "{session_id}" in path and "404" not in responses:
                responses["404"] = _error_response("No session with this id.", body)
            if path.startswith("/v1/") and method == "patch" and "422" not in responses:
                responses["422"] = _error_response(
                    "The lease is smaller than the current one, or the session has ended.", body
                )
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
