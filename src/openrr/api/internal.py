"""Callbacks from render servers (see protocol.handshake): ready, failed, idle and heartbeat. Not part of any
ARR API. Each is authorised by the session's own render-server credential only (``_render_server``), and each
that names an instance answers 409 unless that instance is the session's server."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from openrr.api.deps import bearer, runtime
from openrr.api.responses import ArrJSON
from openrr.domain.ids import check_resource_id, parse_account_id
from openrr.errors import Forbidden
from openrr.protocol.handshake import (
    FAILED_SUFFIX,
    HEARTBEAT_SUFFIX,
    IDLE_SUFFIX,
    PORT_RANGE,
    READY_SUFFIX,
    ReadyReport,
)
from openrr.services.tokens import RENDER_AUDIENCE

router = APIRouter(prefix="/internal/render/{account_id}/{session_id}", include_in_schema=False)

Port = Annotated[int, Field(strict=True, ge=PORT_RANGE[0], le=PORT_RANGE[1])]


class ReadyBody(BaseModel):
    instance: str = Field(max_length=64)
    hostname: str = Field(min_length=1, max_length=255)
    handshakePort: Port
    arrInspectorPort: Port
    teraflops: float = Field(ge=0)
    pid: int = Field(ge=0)


class FailedBody(BaseModel):
    instance: str = Field(max_length=64)
    code: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9]{0,63}$")
    message: str = Field(max_length=4000)


class IdleBody(BaseModel):
    instance: str = Field(max_length=64)
    idleSeconds: float = Field(ge=0, le=10**7)


class HeartbeatBody(BaseModel):
    instance: str = Field(max_length=64)


async def _render_server(request: Request, account_id: str, session_id: str) -> tuple[str, str]:
    """The (account, session) whose render-server credential this request carries."""
    account = parse_account_id(account_id)
    check_resource_id(session_id)
    claims = await runtime(request).verify(bearer(request), audience=RENDER_AUDIENCE)
    if claims.get("sub") != session_id or claims.get("accountId") != account:
        raise Forbidden("This credential belongs to another session.")
    return account, session_id


RenderServer = Annotated[tuple[str, str], Depends(_render_server)]


@router.post(READY_SUFFIX)
async def ready(request: Request, caller: RenderServer, body: ReadyBody) -> Response:
    report = ReadyReport(
        instance=body.instance,
        hostname=body.hostname,
        handshake_port=body.handshakePort,
        inspector_port=body.arrInspectorPort,
        teraflops=body.teraflops,
        pid=body.pid,
    )
    sessions = runtime(request).sessions
    session = await sessions.mark_ready(*caller, report)
    return ArrJSON(
        {"status": session.status.value, "leaseRemainingSeconds": sessions.lease_remaining(session)}
    )


@router.post(FAILED_SUFFIX)
async def failed(request: Request, caller: RenderServer, body: FailedBody) -> Response:
    session = await runtime(request).sessions.report_failure(*caller, body.instance, body.code, body.message)
    return ArrJSON({"status": session.status.value})


@router.post(IDLE_SUFFIX)
async def idle(request: Request, caller: RenderServer, body: IdleBody) -> Response:
    session = await runtime(request).sessions.stop_idle(*caller, body.instance, body.idleSeconds)
    return ArrJSON({"status": session.status.value})


@router.post(HEARTBEAT_SUFFIX)
async def heartbeat(request: Request, caller: RenderServer, body: HeartbeatBody) -> Response:
    """A ready server's heartbeat: the answer carries the lease as it stands now (renewals included)."""
    sessions = runtime(request).sessions
    session = await sessions.heartbeat(*caller, body.instance)
    return ArrJSON(
        {"status": session.status.value, "leaseRemainingSeconds": sessions.lease_remaining(session)}
    )
