"""LeanRoute answers exactly as FastAPI's own handler does, and steps aside where it cannot."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel

from openrr.api.lean import LeanRoute, _plan


async def who(request: Request, account: str) -> str:
    return f"{account}@{request.url.path}"


class Body(BaseModel):
    n: int


def make_app(route_class: type[APIRoute]) -> FastAPI:
    router = APIRouter(route_class=route_class)

    @router.get("/a/{account}/items/{item}")
    async def item(
        request: Request,
        caller: Annotated[str, Depends(who)],
        item: str,
        version: Annotated[str, Query(alias="api-version")],
        token: Annotated[str | None, Query(alias="$skip")] = None,
    ) -> dict[str, object]:
        return {
            "caller": caller,
            "item": item,
            "version": version,
            "token": token,
            "q": str(request.query_params),
        }

    @router.post("/a/{account}/items")
    async def create(account: str, body: Body) -> dict[str, int]:
        return {"n": body.n}

    app = FastAPI()
    app.router.routes.extend(router.routes)  # as openrr.api.app does
    return app


@pytest.mark.parametrize(
    ("method", "url", "json"),
    [
        ("GET", "/a/x/items/7?api-version=1", None),
        ("GET", "/a/x/items/7?api-version=1&$skip=k", None),
        ("GET", "/a/x/items/7", None),  # missing required query
        ("GET", "/a/x/items/7?api-version=1&api-version=2", None),
        ("POST", "/a/x/items", {"n": 3}),
        ("POST", "/a/x/items", {"n": "three"}),
    ],
)
async def test_same_answers_as_fastapi(method: str, url: str, json: object) -> None:
    answers = []
    for route_class in (APIRoute, LeanRoute):
        transport = httpx.ASGITransport(app=make_app(route_class))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            resp = await client.request(method, url, json=json)
            answers.append((resp.status_code, resp.json()))
    assert answers[0] == answers[1]


def test_only_plain_string_routes_take_the_fast_path() -> None:
    routes = {r.path: r for r in make_app(LeanRoute).router.routes if isinstance(r, APIRoute)}
    assert _plan(routes["/a/{account}/items/{item}"].dependant) is not None
    assert _plan(routes["/a/{account}/items"].dependant) is None  # a body: FastAPI's handler
