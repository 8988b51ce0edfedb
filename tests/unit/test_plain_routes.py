"""The plain routes answer exactly as FastAPI's own handlers do, and step aside where they cannot."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Annotated, get_args

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response, StreamingResponse

from openrr.api.app import create_app
from openrr.api.deps import AuthorizedAccount, check_api_version
from openrr.api.plain import QUERY, PlainRoute, QueryCache, plain_routes
from openrr.api.responses import render_json
from openrr.api.sts import ApiVersion as StsApiVersion
from openrr.api.v2021.paging import SkipToken
from openrr.api.v2021.routes import ApiVersion
from openrr.api.v2021.schemas import SessionBodies, session_body
from openrr.domain.clock import ManualClock
from openrr.domain.session import Endpoint, Event, Session, Size, Status
from openrr.errors import Conflict
from openrr.services.runtime import Runtime
from tests.conftest import Account
from tests.fakes import FakeHost

_RANDOM = re.compile(
    rb'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|eyJ[\w.-]+|(?<="traceId":")[^"]+'
)
V = "api-version=2021-01-01"


async def who(request: Request, account: str) -> str:
    return f"{account}@{request.url.path}"


class Body(BaseModel):
    n: int


def make_app() -> FastAPI:
    router = APIRouter()

    @router.get("/a/{account}/items/{item}")
    async def item(
        request: Request,
        caller: Annotated[str, Depends(who)],
        item: str,
        version: Annotated[str, Query(alias="api-version")],
        token: Annotated[str | None, Query(alias="$skip")] = None,
    ) -> dict[str, object]:
        return {"caller": caller, "item": item, "version": version, "token": token}

    @router.post("/a/{account}/items")
    async def create(account: str, body: Body) -> dict[str, int]:
        return {"n": body.n}

    @router.get("/accounts/{account_id}/things/{thing}", dependencies=[Depends(check_api_version)])
    async def thing(request: Request, account: AuthorizedAccount, thing: str) -> dict[str, str]:
        return {"thing": thing}

    app = FastAPI()
    app.router.routes.extend(router.routes)  # as openrr.api.app does
    return app


def test_only_routes_of_plain_inputs_get_a_plain_route() -> None:
    routes = {r.path: r for r in make_app().router.routes if isinstance(r, APIRoute)}
    assert [r.path for r in plain_routes(routes.values())] == ["/accounts/{account_id}/things/{thing}"]
    assert not plain_routes([routes["/a/{account}/items"]])  # a body: FastAPI's handler
    assert not plain_routes([routes["/a/{account}/items/{item}"]])  # a dependency of its own


def test_the_query_aliases_are_the_endpoints_own() -> None:
    """A plain route passes ``api_version`` and ``skip_token`` from the aliases the annotations declare."""
    for annotation, name in (
        (ApiVersion, "api_version"),
        (StsApiVersion, "api_version"),
        (SkipToken, "skip_token"),
    ):
        _, query = get_args(annotation)  # Annotated[str, Query(...)]: the type, then the one Query
        assert query.alias == QUERY[name]


def _fastapi_only(app: FastAPI) -> FastAPI:
    app.router.routes[:] = [r for r in app.router.routes if not isinstance(r, PlainRoute)]
    return app


def _answer(resp: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """All of an answer but its random parts: the MS-CV header, new ids and tokens."""
    headers = [(k, _RANDOM.sub(b"RANDOM", v)) for k, v in resp.headers.raw if k.lower() != b"ms-cv"]
    return resp.status_code, headers, _RANDOM.sub(b"RANDOM", resp.content)


async def test_same_answers_as_fastapi(runtime: Runtime, fake_host: FakeHost, account: Account) -> None:
    await runtime.sessions.create(account.id, "s1", Size.STANDARD, 30)
    await fake_host.settle()
    a, auth = account.id, account.auth
    key = {"Authorization": f"Bearer {account.id}:{account.key}"}
    bad = {"Authorization": "Bearer nope"}
    v1_create = b'{"maxLeaseTime": "0:30:0", "size": "standard"}'
    requests: list[tuple[str, str, dict[str, str], bytes | None]] = [
        ("GET", f"/accounts/{a}/sessions/s1?{V}", auth, None),
        ("GET", f"/accounts/{a}/sessions/s1?{V}&api-version=1", auth, None),
        ("GET", f"/accounts/{a}/sessions/s1", auth, None),  # missing api-version
        ("GET", f"/accounts/{a}/sessions/s1?api-version=1999", auth, None),
        ("GET", f"/accounts/{a}/sessions/missing?{V}", auth, None),
        ("GET", f"/accounts/{a}/sessions/bad%20id?{V}", auth, None),
        ("GET", f"/accounts/{a}/sessions/s1?{V}", bad, None),
        ("GET", f"/accounts/{a}/sessions/s1?{V}", {}, None),
        ("GET", f"/accounts/00000000-0000-0000-0000-000000000000/sessions/s1?{V}", auth, None),
        ("HEAD", f"/accounts/{a}/sessions/s1?{V}", auth, None),
        ("GET", f"/accounts/{a}/sessions?{V}", auth, None),
        ("GET", f"/accounts/{a}/sessions?{V}&$skipToken=s0", auth, None),
        ("GET", f"/accounts/{a}/conversions/none?{V}", auth, None),
        ("GET", f"/accounts/{a}/conversions?{V}", auth, None),
        ("GET", f"/accounts/{a}/token", key, None),
        ("GET", f"/Accounts/{a}/token?api-version=2019-02-28-preview", key, None),
        ("GET", f"/accounts/{a}/token?api-version=2", key, None),
        ("GET", f"/v1/accounts/{a}/sessions/s1/properties", auth, None),
        ("GET", f"/v1/accounts/{a}/sessions/s1/properties/", auth, None),
        ("GET", f"/v1/accounts/{a}/sessions/missing/properties", auth, None),
        ("GET", f"/v1/accounts/{a}/sessions", auth, None),
        ("GET", f"/v1/accounts/{a}/sessions/", bad, None),
        ("GET", f"/v1/accounts/{a}/conversions", auth, None),
        ("GET", f"/v1/accounts/{a}/conversions/none", auth, None),
        ("POST", f"/v1/accounts/{a}/sessions/create", auth, b"{"),
        ("POST", f"/v1/accounts/{a}/sessions/create", auth, b'{"size": "standard"}'),
        ("POST", f"/v1/accounts/{a}/sessions/create", auth, v1_create),
        ("POST", f"/v1/accounts/{a}/conversions/nonsense", auth, b"{}"),
        ("PATCH", f"/v1/accounts/{a}/sessions/s1", auth, b'{"maxLeaseTime": "0:40:0"}'),
        ("POST", f"/accounts/{a}/sessions/s1/:stop?{V}", auth, None),
        ("DELETE", f"/v1/accounts/{a}/sessions/s1", auth, None),
        ("POST", f"/accounts/{a}/sessions/s1/:stop?{V}", auth, None),
    ]
    # Each request goes to FastAPI's handler and then to the plain route, so both see the same state.
    fastapi = httpx.ASGITransport(app=_fastapi_only(create_app(runtime)))
    plain = httpx.ASGITransport(app=create_app(runtime))
    async with (
        httpx.AsyncClient(transport=fastapi, base_url="https://openrr.test") as by_fastapi,
        httpx.AsyncClient(transport=plain, base_url="https://openrr.test") as by_plain,
    ):
        for method, url, headers, body in requests:
            expected = _answer(await by_fastapi.request(method, url, headers=headers, content=body))
            got = _answer(await by_plain.request(method, url, headers=headers, content=body))
            assert got == expected, (method, url)
    assert any(isinstance(r, PlainRoute) for r in create_app(runtime).router.routes)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_methods_are_those_of_fastapis_route(method: str) -> None:
    app = make_app()
    app.router.routes[:0] = plain_routes(r for r in app.router.routes if isinstance(r, APIRoute))
    (plain,) = [r for r in app.router.routes if isinstance(r, PlainRoute)]
    assert plain.methods == {"GET"}, method


def _failing_route() -> APIRoute:
    """A plain-servable route failing as its path says: before the answer began or after, handled or not."""
    router = APIRouter()

    @router.get("/accounts/{account_id}/failing/{how}", dependencies=[Depends(check_api_version)])
    async def failing(request: Request, how: str) -> Response:
        if how == "midway":

            async def chunks() -> AsyncIterator[bytes]:
                yield b"{"
                raise Conflict("too late to answer with this")

            return StreamingResponse(chunks())
        raise {
            "unexpected": RuntimeError("boom"),
            "openrr": Conflict("a conflict", target="how"),
            "http": StarletteHTTPException(418, "short and stout"),
        }[how]

    (route,) = [r for r in router.routes if isinstance(r, APIRoute)]
    return route


@pytest.mark.parametrize("how", ["unexpected", "openrr", "http", "midway"])
async def test_failures_take_the_same_way_out(runtime: Runtime, how: str) -> None:
    """The dispatcher answers an exception with the app's handler for it, as Starlette's exception middleware
    and route wrapper do; one without a handler, or one after the answer began, goes up to the 500 handler."""
    route = _failing_route()
    fastapi, plain = create_app(runtime), create_app(runtime)
    fastapi.router.routes[:0] = [route]
    plain.router.routes[:0] = [*plain_routes([route]), route]
    url = f"/accounts/a/failing/{how}?{V}"
    answers = []
    for app in (_fastapi_only(fastapi), plain):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as c:
            answers.append(_answer(await c.get(url)))
        raising = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=raising, base_url="https://openrr.test") as c:
            if how in ("unexpected", "midway"):  # what the server logs: the error, or the late handled one
                message = "boom" if how == "unexpected" else "handled exception, but response already started"
                with pytest.raises(RuntimeError, match=message):
                    await c.get(url)
            else:
                assert (await c.get(url)).status_code in (409, 418)
    assert answers[1] == answers[0]
    assert answers[0][0] == {"unexpected": 500, "openrr": 409, "http": 418, "midway": 200}[how]


async def test_a_plain_route_taken_out_is_no_longer_dispatched(runtime: Runtime, account: Account) -> None:
    app = create_app(runtime)
    served: list[str] = []
    (plain,) = [r for r in app.router.routes if isinstance(r, PlainRoute) and r.name == "get_session"][:1]
    original = plain.serve

    async def spy(request: Request) -> Response:
        served.append(request.url.path)
        return await original(request)

    plain.serve = spy
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://openrr.test") as c:
        await c.get(f"/accounts/{account.id}/sessions/none?{V}", headers=account.auth)
        assert served == [f"/accounts/{account.id}/sessions/none"]
        app.router.routes.remove(plain)
        resp = await c.get(f"/accounts/{account.id}/sessions/none?{V}", headers=account.auth)
    assert resp.status_code == 404
    assert len(served) == 1  # FastAPI's own route answered


def test_a_query_string_is_parsed_as_starlette_does() -> None:
    queries = QueryCache(max_entries=2)
    for raw in (b"api-version=1&api-version=2", b"a=%20+b&c", b"", b"api-version=1&api-version=2", b"x=\xff"):
        assert queries.get(raw) == QueryParams(raw)
        assert queries.get(raw) is queries.get(raw)


def test_a_remembered_session_body_is_the_one_session_body_gives(clock: ManualClock) -> None:
    bodies = SessionBodies(max_entries=2)
    start = clock.now()
    session = Session("a", "s1", Size.STANDARD, 30, Status.STARTING, start).apply(
        Event.READY, start, endpoint=Endpoint("render.test", 50000, 50001, 8.1)
    )

    def check(s: Session, seconds: float) -> bytes:
        now = start + dt.timedelta(seconds=seconds)
        body = bodies.render(s, now)
        assert body == render_json(session_body(s, now))
        return body

    first = check(session, 0)
    assert check(session, 59) is first  # remembered: the same snapshot, the same minute
    assert b'"elapsedTimeMinutes":1' in check(session, 61)
    longer = session.with_lease(45)
    assert b'"maxLeaseTimeMinutes":45' in check(longer, 61)
    again = dataclasses.replace(longer)  # an equal snapshot read again is rendered again, to the same bytes
    assert check(again, 61) is not check(longer, 61)
    stopped = again.apply(Event.STOP, start + dt.timedelta(minutes=2))
    assert b'"status":"Stopped"' in check(stopped, 3600)
    assert b'"elapsedTimeMinutes":2' in check(stopped, 7200)
    kept = check(stopped, 7200)
    for other in ("s2", "s3"):  # past the bound, the oldest entries go
        check(dataclasses.replace(session, id=other), 0)
    assert check(stopped, 7200) is not kept
