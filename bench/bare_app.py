"""The baseline of bench/get_throughput.py: a bare Starlette route returning a session-sized JSON body."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BODY = {
    "id": "bench",
    "creationTime": "2026-11-23T12:00:00.000000Z",
    "arrInspectorPort": 50001,
    "handshakePort": 50000,
    "elapsedTimeMinutes": 0,
    "hostname": "127.0.0.1",
    "maxLeaseTimeMinutes": 60,
    "size": "Standard",
    "status": "Ready",
    "teraflops": 8.1,
}


async def session(_request: Request) -> JSONResponse:
    return JSONResponse(BODY)


app = Starlette(routes=[Route("/accounts/{account_id}/sessions/{session_id}", session)])
