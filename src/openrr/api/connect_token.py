"""``POST /openrr/accounts/{accountId}/sessions/{sessionId}/connectToken``: a client's credential for one
session's render server.

Render servers never see an account's access token: the offer relay, the viewer, the inspector link,
``openrr connect`` and ``openrr.client`` first trade the account token for a connect token here. It is good
for that session's render server alone (handshake, offer, inspector), for at most ``--connect-token-minutes``
and never past the lease. Authorised like the 2021-01-01 session API (the account's bearer token, its
data-plane throttle); no api-version, since this is not an ARR operation.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from openrr.api.deps import AuthorizedAccount, runtime
from openrr.api.responses import ArrJSON
from openrr.api.v2021.schemas import error_responses, iso
from openrr.api.web import render_url
from openrr.domain.ids import check_resource_id

CONNECT_TOKEN_PATH = "/openrr/accounts/{account_id}/sessions/{session_id}/connectToken"

router = APIRouter(tags=["render servers"])


class ConnectToken(BaseModel):
    token: str = Field(
        description="Bearer token for the session's render server (handshake, offer, inspector)."
    )
    expiresOn: str = Field(description="When the token expires (UTC, ISO 8601).")
    handshakeUrl: str = Field(description="The render server's handshake port: https with TLS, else http.")
    inspectorUrl: str = Field(description="The render server's inspector port, likewise.")


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ConnectToken, "description": "A connect token for the session's render server."},
    **error_responses(
        {
            400: "The session id is not valid.",
            404: "The session does not exist (SessionNotFound).",
            409: "The session is not Ready (SessionNotReady, with its status), or was started by an older "
            "openrr without connect tokens (SessionNotConnectable).",
        },
        400,
        401,
        403,
        404,
        409,
        429,
    ),
}


@router.post(
    CONNECT_TOKEN_PATH,
    summary="Get a connect token for the session's render server",
    response_class=ArrJSON,
    responses=_RESPONSES,
)
async def connect_token(request: Request, account: AuthorizedAccount, session_id: str) -> Response:
    check_resource_id(session_id)
    rt = runtime(request)
    session, token, expires = await rt.sessions.connect_token(account, session_id)
    endpoint = session.endpoint
    assert endpoint is not None  # a Ready session has one
    body = {
        "token": token,
        "expiresOn": iso(expires),
        "handshakeUrl": render_url(rt.settings.render, endpoint.hostname, endpoint.handshake_port),
        "inspectorUrl": render_url(rt.settings.render, endpoint.hostname, endpoint.inspector_port),
    }
    return ArrJSON(body, headers={"Cache-Control": "no-store"})
