"""The control plane's ASGI application."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import Response

from openrr import __version__
from openrr.api import errors, internal, openapi, sts
from openrr.api.responses import ArrHeaders, ArrJSON
from openrr.api.v1 import routes as v1
from openrr.api.v2021 import routes as v2021
from openrr.services.runtime import Runtime

DESCRIPTION = """
openrr speaks the Azure Remote Rendering session contract:

* **STS** — `GET /accounts/{id}/token` with `Authorization: Bearer {accountId}:{accountKey}` returns a
  24-hour access token; every other call sends `Authorization: Bearer {token}`.
* **2021-01-01** (and `2021-01-01-preview`) — `/accounts/{id}/sessions/...?api-version=2021-01-01`.
* **v1** — `/v1/accounts/{id}/sessions/...` with timespan leases.

Errors have the body `{"error": {"code", "message"}}` (v1: problem details). Too many requests get 429 with
`Retry-After` in seconds.
"""


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="openrr",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        default_response_class=ArrJSON,
    )
    app.state.runtime = runtime
    errors.install(app)
    openapi.install(app)
    app.include_router(sts.router)
    app.include_router(v2021.router)
    app.include_router(v1.router)
    app.include_router(internal.router)

    @app.get("/health", include_in_schema=False)
    async def health() -> Response:
        return ArrJSON({"status": "ok", "version": __version__})

    app.add_middleware(ArrHeaders)
    return app
