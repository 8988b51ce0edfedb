"""Routes of the 2021-01-01 session API. Thin: parse, call the session service, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from openrr.api.deps import AuthorizedAccount, check_api_version, runtime
from openrr.api.responses import ArrJSON, rendered_json
from openrr.api.v2021.paging import SkipToken, check_skip_token, page
from openrr.api.v2021.schemas import (
    CreateSessionSettings,
    SessionBodies,
    SessionProperties,
    SessionsList,
    UpdateSessionSettings,
    error_responses,
    session_body,
)
from openrr.domain.ids import check_resource_id
from openrr.domain.session import Size

router = APIRouter(
    tags=["sessions (2021-01-01)"],
    dependencies=[Depends(check_api_version)],
)

ApiVersion = Annotated[
    str,
    Query(
        alias="api-version",
        description="2021-01-01 or 2021-01-01-preview",
        json_schema_extra={"enum": ["2021-01-01", "2021-01-01-preview"]},
    ),
]


# The polled read's bodies (SessionBodies says why they may be remembered).
_bodies = SessionBodies()

_DESCRIBED = {
    400: "The request was malformed.",
    404: "No session with this id.",
    409: "A session with this id exists with other settings.",
    422: "The lease is not larger than the current one, or the session has ended.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(_DESCRIBED, *codes)


@router.put(
    "/accounts/{account_id}/sessions/{session_id}",
    summary="Create a rendering session",
    response_class=ArrJSON,
    status_code=201,
    responses={
        200: {"model": SessionProperties, "description": "The same session was created before."},
        201: {"model": SessionProperties, "description": "Created; the session is Starting."},
        **error_responses(
            {
                **_DESCRIBED,
                403: "The access token was issued for another account; or QuotaExceeded: the account has "
                "as many active sessions as --max-sessions-per-account allows.",
                503: "CapacityExhausted: no render server of this size is free; see Retry-After.",
            },
            400,
            401,
            403,
            409,
            429,
            503,
        ),
    },
)
async def create_session(
    request: Request,
    account: AuthorizedAccount,
    session_id: str,
    settings: CreateSessionSettings,
    api_version: ApiVersion,
) -> Response:
    check_resource_id(session_id)
    service = runtime(request).sessions
    session, created = await service.create(
        account, session_id, Size.parse(settings.size), settings.maxLeaseTimeMinutes
    )
    return ArrJSON(session_body(session, service.now()), status_code=201 if created else 200)


@router.get(
    "/accounts/{account_id}/sessions/{session_id}",
    summary="Get a rendering session",
    response_class=ArrJSON,
    responses={200: {"model": SessionProperties}, **_errors(400, 401, 403, 404, 429)},
)
async def get_session(
    request: Request, account: AuthorizedAccount, session_id: str, api_version: ApiVersion
) -> Response:
    check_resource_id(session_id)
    service = runtime(request).sessions
    return rendered_json(_bodies.render(await service.get(account, session_id), service.now()))


@router.patch(
    "/accounts/{account_id}/sessions/{session_id}",
    summary="Extend the lease of a rendering session",
    response_class=ArrJSON,
    responses={200: {"model": SessionProperties}, **_errors(400, 401, 403, 404, 422, 429)},
)
async def update_session(
    request: Request,
    account: AuthorizedAccount,
    session_id: str,
    settings: UpdateSessionSettings,
    api_version: ApiVersion,
) -> Response:
    check_resource_id(session_id)
    service = runtime(request).sessions
    session = await service.update_lease(account, session_id, settings.maxLeaseTimeMinutes)
    return ArrJSON(session_body(session, service.now()))


@router.post(
    "/accounts/{account_id}/sessions/{session_id}/:stop",
    summary="Stop a rendering session",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Stopped (or had already ended)."}, **_errors(400, 401, 403, 404, 429)},
)
async def stop_session(
    request: Request, account: AuthorizedAccount, session_id: str, api_version: ApiVersion
) -> Response:
    check_resource_id(session_id)
    await runtime(request).sessions.stop(account, session_id)
    return Response(status_code=204)


@router.get(
    "/accounts/{account_id}/sessions",
    summary="List the Starting and Ready sessions of an account",
    response_class=ArrJSON,
    responses={200: {"model": SessionsList}, **_errors(400, 401, 403, 429)},
)
async def list_sessions(
    request: Request,
    account: AuthorizedAccount,
    api_version: ApiVersion,
    skip_token: SkipToken = None,
) -> Response:
    check_skip_token(skip_token)
    rt = runtime(request)
    page_size = rt.settings.server.list_page_size
    sessions = await rt.sessions.list_active(account, after_id=skip_token, limit=page_size + 1)
    now = rt.sessions.now()
    return ArrJSON(
        page(request, api_version, "sessions", sessions, page_size, lambda s: session_body(s, now))
    )
