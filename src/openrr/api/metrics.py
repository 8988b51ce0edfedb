"""``GET /metrics`` (Prometheus text format) and the ASGI middleware that times every request.

The endpoint is open, like ``/health``: it exposes only aggregate numbers (see services/metrics.py), no
account or session ids. ``openrr serve --no-metrics`` leaves both the endpoint and the middleware out.
"""

from __future__ import annotations

from time import perf_counter

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openrr.services.metrics import Metrics
from openrr.services.runtime import Runtime

# The route label of requests that matched no API route: 404s, the OpenAPI document, static files.
OTHER_ROUTE = "other"


class RequestMetrics:
    """Pure ASGI middleware: duration and status of each HTTP request, by route template.

    The route is read after the request, from ``scope["route"]``, which FastAPI's router sets to the
    matched ``APIRoute``: its ``path`` is the template, never the raw path (ids would make the label set
    unbounded).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.observe = metrics.observe_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500  # what ServerErrorMiddleware answers if the app raises before responding

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            self.observe(
                scope["method"], OTHER_ROUTE if route is None else route.path, status, perf_counter() - start
            )


def install(app: FastAPI, runtime: Runtime) -> None:
    """Add ``GET /metrics`` and, outermost, the request timing (call after every other middleware)."""
    metrics = runtime.metrics

    @app.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        return Response(await metrics.scrape(runtime.store), headers={"content-type": CONTENT_TYPE_LATEST})

    app.add_middleware(RequestMetrics, metrics=metrics)
