"""The control plane's ASGI application."""

from __future__ import annotations

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from openrr import __version__
from openrr.api import cluster, connect_token, errors, internal, metrics, model_routes, openapi, sts
from openrr.api import web as web_ui
from openrr.api.cors import SessionCors
from openrr.api.limits import BodyLimit, body_limits
from openrr.api.plain import PlainDispatch, plain_routes
from openrr.api.responses import ArrHeaders, ArrJSON
from openrr.api.v1 import conversions as v1_conversions
from openrr.api.v1 import routes as v1
from openrr.api.v2021 import conversions as v2021_conversions
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
        docs_url=None,  # served below from local files: a self-hosted service must not need a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
        default_response_class=ArrJSON,
        # openrr exports its own metrics; FastAPI's OpenTelemetry hooks cost a check on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    errors.install(app)
    openapi.install(app)
    # The routers' routes go straight into the app's route list: they carry their full paths and router
    # dependencies already, and FastAPI's nested include machinery costs tens of microseconds a request.
    # Placed first: the data plane is what clients call all the time, not the documentation.
    routers = (v2021.router, v2021_conversions.router, sts.router, v1.router, v1_conversions.router)
    api_routes = [
        route
        for router in (*routers, connect_token.router, model_routes.router, internal.router, cluster.router)
        for route in router.routes
    ]
    # In front of them all, the ARR operations without a request model (the polled reads among them) on
    # plain Starlette routes: FastAPI's routes still document them, and serve the rest (openrr.api.plain).
    plain = plain_routes(
        route for router in routers for route in router.routes if isinstance(route, APIRoute)
    )
    app.router.routes[:0] = [*plain, *api_routes]

    app.mount("/docs/static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="openrr API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )

    @app.get("/health", include_in_schema=False)
    async def health() -> Response:
        return ArrJSON({"status": "ok", "version": __version__})

    web_ui.install(app)  # the browser pages at /ui/ and their offer relay
    # Innermost: a request for a plain route is served there, past the exception middleware and the router.
    app.add_middleware(PlainDispatch, router=app.router, handlers=app.exception_handlers)
    # Inside ArrHeaders, so that a 413 carries MS-CV like every other answer.
    app.add_middleware(BodyLimit, limits=body_limits(runtime.settings.limits))
    app.add_middleware(ArrHeaders)
    if runtime.settings.server.cors_origins:
        # Outside ArrHeaders and the limits: a preflight is answered here, before any of them.
        app.add_middleware(SessionCors, origins=runtime.settings.server.cors_origins)
    if runtime.settings.server.metrics:
        metrics.install(app, runtime)  # GET /metrics, and request timing as the outermost middleware
    return app
