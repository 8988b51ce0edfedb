"""Routes of the v1 session API, each answering the seed document's example requests as documented."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from openrr.api.deps import AuthorizedAccount, runtime
from openrr.api.responses import ArrJSON
from openrr.api.v1.wire import lease_minutes, parse_body, parse_models, properties_body
from openrr.domain.ids import check_resource_id, new_uuid
from openrr.domain.session import Size
from openrr.errors import InvalidInput

router = APIRouter(prefix="/v1/accounts/{account_id}/sessions", tags=["sessions (v1)"])

_TIMESPAN_SCHEMA = {"type": "string", "example": "04:00:00", "description": "[d.]hh:mm:ss"}


def _json_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """OpenAPI for a JSON body the handler parses itself (v1 keys are case-insensitive)."""
    schema = {"type": "object", "properties": properties, "required": required}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_CREATE_BODY = _json_body(
    {
        "maxLeaseTime": _TIMESPAN_SCHEMA,
        # null binds like an absent list, as it did in ASP.NET
        "models": {"type": ["array", "null"], "items": {"type": "string"}},
        "size": {"type": "string", "example": "standard"},
    },
    ["maxLeaseTime", "size"],
)
_UPDATE_BODY = _json_body({"maxLeaseTime": _TIMESPAN_SCHEMA}, ["maxLeaseTime"])


def _required(body: dict[str, Any], key: str) -> Any:
    if key.lower() not in body:
        raise InvalidInput(f"The {key} field is required.", target=key)
    return body[key.lower()]


async def _create(request: Request, account: str) -> Response:
    body = parse_body(await request.body())
    lease = lease_minutes(_required(body, "maxLeaseTime"))
    size = Size.parse(_required(body, "size"))
    models = parse_models(body.get("models"))
    session_id = new_uuid()
    await runtime(request).sessions.create(account, session_id, size, lease, models)
    return ArrJSON(
        {"sessionId": session_id},
        status_code=202,
        headers={"Location": f"/v1/accounts/{account}/sessions/{session_id}"},
    )


@router.post("/create", status_code=202, response_class=ArrJSON, openapi_extra=_CREATE_BODY, summary="Create")
async def create_session(request: Request, account: AuthorizedAccount) -> Response:
    return await _create(request, account)


@router.post("/create/", status_code=202, response_class=ArrJSON, include_in_schema=False)
async def create_session_slash(request: Request, account: AuthorizedAccount) -> Response:
    return await _create(request, account)


async def _properties(request: Request, account: str, session_id: str) -> Response:
    check_resource_id(session_id)
    service = runtime(request).sessions
    return ArrJSON(properties_body(await service.get(account, session_id), service.now()))


@router.get("/{session_id}/properties", response_class=ArrJSON, summary="Get session properties")
async def get_properties(request: Request, account: AuthorizedAccount, session_id: str) -> Response:
    return await _properties(request, account, session_id)


@router.get("/{session_id}/properties/", response_class=ArrJSON, include_in_schema=False)
async def get_properties_slash(request: Request, account: AuthorizedAccount, session_id: str) -> Response:
    return await _properties(request, account, session_id)


@router.patch("/{session_id}", response_class=Response, openapi_extra=_UPDATE_BODY, summary="Update lease")
async def update_session(request: Request, account: AuthorizedAccount, session_id: str) -> Response:
    check_resource_id(session_id)
    body = parse_body(await request.body())
    lease = lease_minutes(_required(body, "maxLeaseTime"))
    # v1 leases are totals ("set 2 h to extend a 1 h session by 1 h"); repeating the same total is fine.
    await runtime(request).sessions.update_lease(account, session_id, lease, allow_equal=True)
    return Response(status_code=200)


@router.delete("/{session_id}", status_code=204, response_class=Response, summary="Stop")
async def stop_session(request: Request, account: AuthorizedAccount, session_id: str) -> Response:
    check_resource_id(session_id)
    await runtime(request).sessions.stop(account, session_id)
    return Response(status_code=204)


async def _list(request: Request, account: str) -> Response:
    rt = runtime(request)
    sessions = await rt.sessions.list_active(account, limit=10_000)
    now = rt.sessions.now()
    return ArrJSON({"sessions": [properties_body(s, now) for s in sessions]})


@router.get("", response_class=ArrJSON, summary="List active sessions")
async def list_sessions(request: Request, account: AuthorizedAccount) -> Response:
    return await _list(request, account)


@router.get("/", response_class=ArrJSON, include_in_schema=False)
async def list_sessions_slash(request: Request, account: AuthorizedAccount) -> Response:
    return await _list(request, account)
