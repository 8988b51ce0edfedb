"""Plain Starlette routes in front of FastAPI's, for the operations without a request model: the polled reads.

FastAPI's per-request machinery (its dependency solver, per-parameter validation, two exit stacks a request)
cost more than everything else a GET of a session does. Every API operation here whose inputs are only its
path's strings and two known query parameters is therefore also served by a ``PlainRoute`` placed before
FastAPI's routes: the router takes the first full match, so FastAPI's route for it still documents it in the
OpenAPI document and still answers its other methods, but never serves it.

``PlainDispatch``, the innermost of openrr's middlewares, serves a request a plain route matches straight
away: the router would pick that route, and the layers between (Starlette's exception middleware, FastAPI's
exit stack, the router, Starlette's request wrapper) cost as much as the route's own work on a polled GET.

A plain route calls the same endpoint function, with what FastAPI would have given it, in FastAPI's order:
the api-version check of the 2021 routers first, then the caller's authorisation, then the endpoint.
Exceptions take the same way out (the app's exception handlers), so every status, header and body is the
same; ``tests/unit/test_plain_routes.py`` compares both on every such operation.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openrr.api.deps import AuthorizedAccount, authorize, check_api_version, supported_api_version

# The query parameters an endpoint may take, by parameter name: the aliases its annotations declare.
QUERY = {"api_version": "api-version", "skip_token": "$skipToken"}
# The dependencies a plain route runs itself: the router's api-version check, and the caller's account.
AUTHORIZED = "account"
_PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
Endpoint = Callable[[Request], Awaitable[Response]]


class PlainRoute(Route):
    """A Starlette route that matches only its own methods, and like FastAPI's names itself in the scope.

    Another method on its path is no match at all (not Starlette's partial match), so FastAPI's routes answer
    it as before: their 405 lists the methods of the first of them. The request metrics label a request with
    the matched route's path template (``openrr.api.metrics``).
    """

    methods: set[str]

    def __init__(self, path: str, serve: Endpoint, *, methods: set[str], name: str) -> None:
        super().__init__(path, serve, methods=list(methods), name=name)
        self.methods = methods  # only these: Starlette would add HEAD to a GET, FastAPI does not
        self.serve = serve

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.FULL:
            return Match.NONE, {}
        child_scope["route"] = self
        return match, child_scope


def plain_routes(routes: Iterable[APIRoute]) -> list[PlainRoute]:
    """A ``PlainRoute`` for each of ``routes`` that takes nothing but its path, ``QUERY`` and the caller."""
    queries = QueryCache()
    return [_plain(route, queries) for route in routes if _servable(route)]


class QueryCache:
    """Parsed query strings by their bytes. A polling client sends the same one on every request, and parsing
    it costs more than all the checks that read it. The value is what ``request.query_params`` would be
    (``QueryParams`` of the same bytes), immutable, so one can serve every request that sent those bytes.
    Emptied when full: a caller sending ever new query strings costs no more than ``max_entries`` of them."""

    def __init__(self, max_entries: int = 256) -> None:
        self._max = max_entries
        self._parsed: dict[bytes, QueryParams] = {}

    def get(self, raw: bytes) -> QueryParams:
        params = self._parsed.get(raw)
        if params is None:
            if len(self._parsed) >= self._max:
                self._parsed.clear()
            params = self._parsed[raw] = QueryParams(raw)
        return params


def _servable(route: APIRoute) -> bool:
    """Whether the endpoint takes only what a plain route gives: the request, the caller's account (as
    ``AuthorizedAccount``), its path's strings and ``QUERY``; with no dependency but the api-version check."""
    if any(depends.dependency is not check_api_version for depends in route.dependencies):
        return False
    hints = typing.get_type_hints(route.endpoint, include_extras=True)
    if AUTHORIZED in hints and hints[AUTHORIZED] is not AuthorizedAccount:
        return False
    names = set(inspect.signature(route.endpoint).parameters) - {"request", AUTHORIZED}
    return names <= set(_PATH_PARAM.findall(route.path)) | set(QUERY)


def _plain(route: APIRoute, queries: QueryCache) -> PlainRoute:
    endpoint: Callable[..., Awaitable[Response]] = route.endpoint
    parameters = inspect.signature(endpoint).parameters
    checks_version = any(depends.dependency is check_api_version for depends in route.dependencies)
    authorized = AUTHORIZED in parameters
    query = {name: alias for name, alias in QUERY.items() if name in parameters}
    path_names = [name for name in _PATH_PARAM.findall(route.path) if name in parameters]

    async def serve(request: Request) -> Response:
        kwargs: dict[str, Any] = {}
        params = queries.get(request.scope["query_string"])
        if checks_version:
            supported_api_version(params.get("api-version"))  # check_api_version, on the parsed query
        if authorized:
            kwargs[AUTHORIZED] = await authorize(request, request.path_params["account_id"])
        path_params = request.path_params
        for name in path_names:
            kwargs[name] = path_params[name]
        for name, alias in query.items():
            kwargs[name] = params.get(alias)
        return await endpoint(request, **kwargs)

    return PlainRoute(route.path, serve, methods=set(route.methods or ()), name=route.name)


class PlainDispatch:
    """Pure ASGI middleware, the innermost of openrr's: a request that a plain route matches is served here.

    What the stack below would do with such a request, done the same way in one step:
      * The router takes the first route that matches fully. The plain routes lead its list (``create_app``)
        and never match partially, so the first of the leading ``PlainRoute``\\ s that matches is the router's
        pick too; the scope gets the keys the router gives it. The routes are read from the router on every
        request: a plain route taken out of its list is no longer served here either.
      * Starlette's exception middleware and the route's own wrapper answer an exception with the app's
        handler for it (for an ``HTTPException``, the handler of its status code first), through the same
        ``send``; ``_handler`` reads the same table. An exception without a handler goes up unchanged, to the
        500 handler of ``ServerErrorMiddleware`` (outside openrr's middlewares, as before).
      * FastAPI's exit-stack middleware is there to close a request's uploaded files: plain routes take none.
    """

    def __init__(self, app: ASGIApp, *, router: Router, handlers: Mapping[Any, Callable[..., Any]]) -> None:
        self.app = app
        self.router = router
        # As FastAPI splits them: 500 and Exception go to ServerErrorMiddleware, the rest to the exception
        # middleware (whose own defaults, for HTTPException and WebSocketException, FastAPI's replace or an
        # HTTP request never meets).
        self.status_handlers = {k: v for k, v in handlers.items() if isinstance(k, int) and k != 500}
        self.class_handlers = {
            k: v for k, v in handlers.items() if not isinstance(k, int) and k is not Exception
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._match(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
        else:
            await self._serve(route, scope, receive, send)

    def _match(self, scope: Scope) -> PlainRoute | None:
        method = scope["method"]
        for route in self.router.routes:
            if not isinstance(route, PlainRoute):
                return None
            if method in route.methods:  # another method is no match (PlainRoute.matches): no regex needed
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self.router)
                    scope.update(child_scope)
                    return route
        return None

    async def _serve(self, route: PlainRoute, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        started = False

        async def sender(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            response = await route.serve(request)
            await response(scope, receive, sender)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            if started:
                raise RuntimeError("Caught handled exception, but response already started.") from exc
            if inspect.iscoroutinefunction(handler):
                answer = await handler(request, exc)
            else:
                answer = await run_in_threadpool(handler, request, exc)
            if answer is not None:
                await answer(scope, receive, sender)
            exc.__traceback__ = None  # as Starlette: a reused exception instance would pile up tracebacks

    def _handler(self, exc: Exception) -> Callable[..., Any] | None:
        if isinstance(exc, HTTPException) and exc.status_code in self.status_handlers:
            return self.status_handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in self.class_handlers:
                return self.class_handlers[cls]
        return None
