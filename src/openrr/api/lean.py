"""A FastAPI route class with a fast path for the requests that poll.

FastAPI's dependency solver and per-parameter pydantic validation cost more than everything else a GET of a
session does (bench/get_throughput.py: about 70 % of the request). For an operation whose inputs are all
plain strings from the path and the query, and whose dependencies are ``async def`` functions of the same
kind, ``LeanRoute`` calls the dependencies and the endpoint directly. Everything else about the route —
OpenAPI, response classes, error handling — stays FastAPI's, and any operation the fast path cannot
serve exactly (bodies, headers, constraints, sync functions) keeps FastAPI's own handler.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

_SIMPLE = (str, str | None)


@dataclasses.dataclass(frozen=True)
class _Param:
    name: str
    alias: str
    in_path: bool
    required: bool
    default: Any


@dataclasses.dataclass(frozen=True)
class _Plan:
    call: Callable[..., Awaitable[Any]]
    params: tuple[_Param, ...]
    request_name: str | None
    dependencies: tuple[tuple[str | None, _Plan], ...]

    async def run(self, request: Request) -> Any:
        kwargs: dict[str, Any] = {}
        for name, dependency in self.dependencies:
            result = await dependency.run(request)
            if name is not None:
                kwargs[name] = result
        if self.request_name is not None:
            kwargs[self.request_name] = request
        missing = []
        for p in self.params:
            value = request.path_params.get(p.alias) if p.in_path else request.query_params.get(p.alias)
            if value is None:
                if p.required:
                    missing.append(
                        {
                            "type": "missing",
                            "loc": ("path" if p.in_path else "query", p.alias),
                            "msg": "Field required",
                            "input": None,
                        }
                    )
                value = p.default
            kwargs[p.name] = value
        if missing:
            raise RequestValidationError(missing)
        return await self.call(**kwargs)


def _plan(dependant: Dependant) -> _Plan | None:
    """How to serve ``dependant`` without the solver, or None if only FastAPI can serve it exactly."""
    call = dependant.call
    if call is None or not inspect.iscoroutinefunction(call):
        return None
    if dependant.body_params or dependant.header_params or dependant.cookie_params:
        return None
    other = (
        dependant.http_connection_param_name,
        dependant.websocket_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    if any(other):
        return None
    params = []
    for field, in_path in [(f, True) for f in dependant.path_params] + [
        (f, False) for f in dependant.query_params
    ]:
        info = field.field_info
        if info.annotation not in _SIMPLE or info.metadata:
            return None
        required = info.is_required()
        params.append(_Param(field.name, field.alias, in_path, required, None if required else info.default))
    dependencies = []
    for sub in dependant.dependencies:
        sub_plan = _plan(sub)
        if sub_plan is None:
            return None
        dependencies.append((sub.name, sub_plan))
    return _Plan(call, tuple(params), dependant.request_param_name, tuple(dependencies))


class LeanRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        plan = _plan(self.dependant)
        if plan is None or self.response_model is not None:
            return super().get_route_handler()

        async def handler(request: Request) -> Response:
            response: Response = await plan.run(request)
            return response

        return handler
