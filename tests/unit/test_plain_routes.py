"""The plain routes answer exactly as FastAPI's own handlers do, and step aside where they cannot."""

from __future__ import annotations

import re
from typing import Annotated, get_args

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel

from openrr.api.app import create_app
from openrr.api.deps import AuthorizedAccount, check_api_version
from openrr.api.plain import QUERY, PlainRoute, plain_routes
from openrr.api.sts import ApiVersion as StsApiVersion
from openrr.api.v2021.paging import SkipToken
from openrr.api.v2021.routes import ApiVersion
from openrr.domain.session import Size
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
