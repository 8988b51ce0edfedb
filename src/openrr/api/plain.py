"""Plain Starlette routes in front of FastAPI's, for the operations without a request model: the polled reads.

FastAPI's per-request machinery (its dependency solver, per-parameter validation, two exit stacks a request)
cost more than everything else a GET of a session does. Every API operation here whose inputs are only its
path's strings and two known query parameters is therefore also served by a ``PlainRoute`` placed before
FastAPI's routes: the router takes the first full match, so FastAPI's route for it still documents it in the
OpenAPI document and still answers its other methods, but never serves it.

A plain route calls the same endpoint function, with what FastAPI would have given it, in FastAPI's order:
the api-version check of the 2021 routers first, then the caller's authorisation, then the endpoint.
Exceptions take the same way out (the app's exception handlers), so every status, header and body is the
same; ``tests/unit/test_plain_routes.py`` compares both on every such operation.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from openrr.api.deps import AuthorizedAccount, authorize, check_api_version

# The query parameters an endpoint may take, by parameter name: the aliases its annotations declare.
QUERY = {"api_version": "api-version", "skip_token": "$skipToken"}
# The dependencies a plain route runs itself: the router's api-version check, and the caller's account.
AUTHORIZED = "account"
_PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


class PlainRoute(Route):
    """A Starlette route that matches only its own methods, and like FastAPI's names itself in the scope.

    Another method on its path is no match at all (not Starlette's partial match), so FastAPI's routes answer
    it as before: their 405 lists the methods of the first of them. The request metrics label a request with
    the matched route's path template (``openrr.api.metrics``).
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.FULL:
            return Match.NONE, {}
        child_scope["route"] = self
        return match, child_scope


def plain_routes(routes: Iterable[APIRoute]) -> list[PlainRoute]:
    """A ``PlainRoute`` for each of ``routes`` that takes nothing but its path, ``QUERY`` and the caller."""
    return [_plain(route) for route in routes if _servable(route)]


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


def _plain(route: APIRoute) -> PlainRoute:
    endpoint: Callable[..., Awaitable[Response]] = route.endpoint
    parameters = inspect.signature(endpoint).parameters
    checks_version = any(depends.dependency is check_api_version for depends in route.dependencies)
    authorized = AUTHORIZED in parameters
    query = {name: alias for name, alias in QUERY.items() if name in parameters}

    async def serve(request: Request) -> Response:
        kwargs: dict[str, Any] = {}
        if checks_version:
            await check_api_version(request)
        if authorized:
            kwargs[AUTHORIZED] = await authorize(request, request.path_params["account_id"])
        for name, value in request.path_params.items():
            if name in parameters:
                kwargs[name] = value
        for name, alias in query.items():
            kwargs[name] = request.query_params.get(alias)
        return await endpoint(request, **kwargs)

    methods = set(route.methods or ())
    plain = PlainRoute(route.path, serve, methods=list(methods), name=route.name)
    plain.methods = methods  # only these: Starlette would add HEAD to a GET, FastAPI does not
    return plain
