"""Every 2021 session response body, checked against the published swaggers (tests/reference/arr/).

Each response must have a status code that the swagger lists for its operation and a body valid against the
schema the swagger gives for that code (error responses without a schema there — 401, 403, 429 — against
``error_response``, which is what openrr sends). Validation is stricter than the swagger in one way: no
definition may carry keys it does not declare, so openrr cannot drift into inventing fields.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.services.runtime import Runtime
from tests.conftest import Account
from tests.fakes import FakeHost

REFERENCE = Path(__file__).resolve().parent.parent / "reference" / "arr"
SWAGGERS = {
    "2021-01-01": REFERENCE / "stable-2021-01-01" / "mr-arr.json",
    "2021-01-01-preview": REFERENCE / "preview-2021-01-01-preview" / "mr-arr.json",
}
PAGE_SIZE = 2

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    dt.datetime.fromisoformat(value.replace("z", "Z"))
    return True


class Swagger:
    """One swagger file: its operations by id, and strict validators for its definitions."""

    def __init__(self, path: Path) -> None:
        self.doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        strict = copy.deepcopy(self.doc)
        for definition in strict["definitions"].values():
            if definition.get("type") == "object" and "properties" in definition:
                definition["additionalProperties"] = False
            for prop in definition.get("properties", {}).values():
                # x-nullable (a Swagger 2.0 extension, e.g. a conversion's "error": null) also allows null
                if prop.get("x-nullable") and "$ref" in prop:
                    prop["anyOf"] = [{"$ref": prop.pop("$ref")}, {"type": "null"}]
                    prop.pop("type", None)
        # Swagger 2.0 schemas are JSON Schema draft 4 plus x-* keys, which validators ignore.
        self._uri = f"urn:openrr-test:{path.parent.name}"
        self._registry: Registry[Any] = Registry().with_resource(
            self._uri, Resource.from_contents(strict, default_specification=DRAFT4)
        )
        self._validators: dict[str, jsonschema.Draft4Validator] = {}
        self.operations: dict[str, tuple[str, str, dict[str, Any]]] = {
            op["operationId"]: (method.upper(), template, op)
            for template, ops in self.doc["paths"].items()
            for method, op in ops.items()
            if isinstance(op, dict) and "operationId" in op
        }

    def validator(self, ref: str) -> jsonschema.Draft4Validator:
        assert ref.startswith("#/definitions/"), ref
        if ref not in self._validators:
            self._validators[ref] = jsonschema.Draft4Validator(
                {"$ref": f"{self._uri}{ref}"}, registry=self._registry, format_checker=_FORMATS
            )
        return self._validators[ref]

    def validate(self, ref: str, body: object) -> None:
        errors = sorted(self.validator(ref).iter_errors(body), key=lambda e: list(e.absolute_path))
        assert not errors, f"{ref}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
        )

    def check(self, operation_id: str, resp: httpx.Response) -> Any:
        """Status listed for the operation, body valid against its schema; returns the parsed body."""
        method, template, op = self.operations[operation_id]
        assert resp.request.method == method
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template))
        assert re.fullmatch(pattern, resp.request.url.path), (resp.request.url.path, template)
        listed = op["responses"]
        assert str(resp.status_code) in listed, (
            f"{operation_id} answered {resp.status_code}; the swagger lists {sorted(listed)}: {resp.text}"
        )
        return self.check_body(resp, listed[str(resp.status_code)].get("schema", {}).get("$ref"))

    def check_body(self, resp: httpx.Response, ref: str | None = None) -> Any:
        if resp.status_code == 204:
            assert resp.content == b""
            return None
        if ref is None:
            assert resp.status_code >= 400, "a success response the swagger gives no schema for"
            ref = "#/definitions/error_response"
        assert resp.headers["content-type"] == "application/json; charset=utf-8"
        body = resp.json()
        self.validate(ref, body)
        return body


@functools.cache
def swagger(version: str) -> Swagger:
    return Swagger(SWAGGERS[version])


@pytest.fixture(params=sorted(SWAGGERS))
def api(request: pytest.FixtureRequest) -> str:
    version: str = request.param
    return version


@pytest.fixture
async def runtime(
    settings_factory: Callable[..., Settings], store_url: str, fake_host: FakeHost, clock: ManualClock
) -> AsyncIterator[Runtime]:
    """The conftest runtime with small list pages, so that paging shows up after a few sessions."""
    settings = settings_factory(store_url=store_url, list_page_size=PAGE_SIZE)
    rt = await Runtime.open(settings, host=fake_host, clock=clock)
    fake_host.attach(rt.sessions)
    yield rt
    await rt.close()


class Api:
    """The 2021 session operations of one account at one api-version."""

    def __init__(self, client: httpx.AsyncClient, account: Account, version: str) -> None:
        self.client, self.account, self.version = client, account, version
        self.swagger = swagger(version)

    def url(self, session_id: str | None = None, suffix: str = "") -> str:
        base = f"/accounts/{self.account.id}/sessions"
        return base if session_id is None else f"{base}/{session_id}{suffix}"

    @property
    def params(self) -> dict[str, str]:
        return {"api-version": self.version}

    async def create(
        self, session_id: str, lease: object = 30, size: object = "Standard", **kw: Any
    ) -> httpx.Response:
        kw.setdefault("headers", self.account.auth)
        kw.setdefault("params", self.params)
        kw.setdefault("json", {"maxLeaseTimeMinutes": lease, "size": size})
        return await self.client.put(self.url(session_id), **kw)

    async def get(self, session_id: str, **kw: Any) -> httpx.Response:
        kw.setdefault("headers", self.account.auth)
        kw.setdefault("params", self.params)
        return await self.client.get(self.url(session_id), **kw)

    async def update(self, session_id: str, lease: object, **kw: Any) -> httpx.Response:
        kw.setdefault("headers", self.account.auth)
        kw.setdefault("params", self.params)
        return await self.client.patch(self.url(session_id), json={"maxLeaseTimeMinutes": lease}, **kw)

    async def stop(self, session_id: str, **kw: Any) -> httpx.Response:
        kw.setdefault("headers", self.account.auth)
        kw.setdefault("params", self.params)
        return await self.client.post(self.url(session_id, "/:stop"), **kw)

    async def list(self, **kw: Any) -> httpx.Response:
        kw.setdefault("headers", self.account.auth)
        kw.setdefault("params", self.params)
        return await self.client.get(self.url(), **kw)

    def check(self, operation_id: str, resp: httpx.Response, status: int) -> Any:
        assert resp.status_code == status, resp.text
        return self.swagger.check(operation_id, resp)

    async def status_of(self, session_id: str, expected: str) -> dict[str, Any]:
        body: dict[str, Any] = self.check("RemoteRendering_GetSession", await self.get(session_id), 200)
        assert body["status"] == expected, body
        return body


@pytest.fixture
def arr(client: httpx.AsyncClient, account: Account, api: str) -> Api:
    return Api(client, account, api)


def test_the_copies_are_the_swaggers_of_their_versions() -> None:
    for version, path in SWAGGERS.items():
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert doc["swagger"] == "2.0"
        assert doc["info"]["version"] == version
        assert doc["parameters"]["api_version"]["x-example"] == version


def test_the_validator_rejects_what_the_swagger_forbids() -> None:
    """The checks below would be vacuous if the validator let everything through."""
    sw = swagger("2021-01-01")
    good = {"id": "s1", "creationTime": "2026-11-23T12:00:00.000000Z", "size": "Standard", "status": "Ready"}
    sw.validate("#/definitions/session_properties", good)
    bad: list[dict[str, Any]] = [
        {k: v for k, v in good.items() if k != "status"},
        {**good, "status": "ready"},
        {**good, "size": "standard"},
        {**good, "handshakePort": 80},
        {**good, "creationTime": "yesterday"},
        {**good, "elapsedTimeMinutes": 1.5},
        {**good, "error": {"code": "X"}},
        {**good, "sessionId": "s1"},
    ]
    for body in bad:
        with pytest.raises(AssertionError):
            sw.validate("#/definitions/session_properties", body)
    with pytest.raises(AssertionError):
        sw.validate("#/definitions/sessions_list", {"sessions": [{**good, "status": "Unknown"}]})
    with pytest.raises(AssertionError):
        sw.validate("#/definitions/error_response", {"error": {"code": "BadRequest"}})


async def test_lifecycle_bodies(arr: Api, fake_host: FakeHost, runtime: Runtime, clock: ManualClock) -> None:
    fake_host.auto_ready = False
    created = arr.check("RemoteRendering_CreateSession", await arr.create("starting", 20), 201)
    assert created["status"] == "Starting"
    again = arr.check("RemoteRendering_CreateSession", await arr.create("starting", 20), 200)
    assert again["id"] == "starting"
    await arr.status_of("starting", "Starting")

    fake_host.auto_ready = True
    arr.check("RemoteRendering_CreateSession", await arr.create("ready", 20, "Premium"), 201)
    await fake_host.settle()
    clock.advance(minutes=2)
    ready = await arr.status_of("ready", "Ready")
    assert {"hostname", "handshakePort", "arrInspectorPort", "teraflops"} <= set(ready)

    updated = arr.check("RemoteRendering_UpdateSession", await arr.update("ready", 25), 200)
    assert updated["maxLeaseTimeMinutes"] == 25

    stopped = arr.check("RemoteRendering_StopSession", await arr.stop("ready"), 204)
    assert stopped is None
    await arr.status_of("ready", "Stopped")
    # stopping an ended session is not an error either
    arr.check("RemoteRendering_StopSession", await arr.stop("ready"), 204)

    arr.check("RemoteRendering_CreateSession", await arr.create("crashes"), 201)
    await fake_host.settle()
    fake_host.crash("crashes")
    await runtime.sessions.tick()
    crashed = await arr.status_of("crashes", "Error")
    assert crashed["error"]["code"]
    assert crashed["error"]["message"]

    fake_host.fail_start = True
    failed = arr.check("RemoteRendering_CreateSession", await arr.create("never-starts"), 201)
    assert failed["status"] == "Error"
    assert failed["error"]["code"]
    fake_host.fail_start = False

    arr.check("RemoteRendering_CreateSession", await arr.create("expires", 1), 201)
    await fake_host.settle()
    clock.advance(minutes=1, seconds=1)
    await runtime.sessions.tick()
    expired = await arr.status_of("expires", "Expired")
    assert "error" not in expired
    await runtime.sessions.drain()


async def test_list_pages(arr: Api, fake_host: FakeHost) -> None:
    empty = arr.check("RemoteRendering_ListSessions", await arr.list(), 200)
    assert empty == {"sessions": []}

    fake_host.auto_ready = False
    for i in range(3):
        arr.check("RemoteRendering_CreateSession", await arr.create(f"starting-{i}", 10 + i), 201)
    fake_host.auto_ready = True
    for i in range(2):
        arr.check("RemoteRendering_CreateSession", await arr.create(f"ready-{i}", 10, "Premium"), 201)
    await fake_host.settle()
    arr.check("RemoteRendering_CreateSession", await arr.create("stopped"), 201)
    arr.check("RemoteRendering_StopSession", await arr.stop("stopped"), 204)

    seen: list[str] = []
    statuses: set[str] = set()
    pages = 0
    resp = await arr.list()
    while True:
        page = arr.check("RemoteRendering_ListSessions", resp, 200)
        pages += 1
        assert 1 <= len(page["sessions"]) <= PAGE_SIZE
        seen += [s["id"] for s in page["sessions"]]
        statuses |= {s["status"] for s in page["sessions"]}
        if "@nextLink" not in page:
            break
        next_link = httpx.URL(page["@nextLink"])
        assert next_link.params["api-version"] == arr.version
        # the SDK follows @nextLink verbatim
        resp = await arr.client.get(page["@nextLink"], headers=arr.account.auth)
    assert pages == 3
    assert sorted(seen) == sorted([f"starting-{i}" for i in range(3)] + [f"ready-{i}" for i in range(2)])
    assert statuses == {"Starting", "Ready"}


async def test_error_bodies(arr: Api, other_account: Account, fake_host: FakeHost) -> None:
    arr.check("RemoteRendering_CreateSession", await arr.create("s1", 30), 201)
    await fake_host.settle()
    no_token: dict[str, str] = {}
    forged = {"Authorization": "Bearer not.a.token"}

    # 400: the only operation whose swagger lists it is create
    for lease, size in ((-1, "Standard"), (1441, "Standard"), ("30", "Standard"), (30, "Huge"), (30, None)):
        body = arr.check("RemoteRendering_CreateSession", await arr.create("s2", lease, size), 400)
        assert body["error"]["code"] == "BadRequest"
    for raw in (b"", b"{", b"[]", b'{"size": "Standard"}'):
        resp = await arr.create(
            "s2", headers={**arr.account.auth, "content-type": "application/json"}, content=raw
        )
        arr.check("RemoteRendering_CreateSession", resp, 400)
    arr.check("RemoteRendering_CreateSession", await arr.create("bad:id"), 400)
    arr.check("RemoteRendering_CreateSession", await arr.create("x" * 257), 400)

    # 401 and 403 on every operation
    for headers, status in ((no_token, 401), (forged, 401), (other_account.auth, 403)):
        arr.check("RemoteRendering_CreateSession", await arr.create("s3", headers=headers), status)
        arr.check("RemoteRendering_GetSession", await arr.get("s1", headers=headers), status)
        arr.check("RemoteRendering_UpdateSession", await arr.update("s1", 40, headers=headers), status)
        arr.check("RemoteRendering_StopSession", await arr.stop("s1", headers=headers), status)
        arr.check("RemoteRendering_ListSessions", await arr.list(headers=headers), status)
    resp = await arr.get("s1", headers=no_token)
    assert resp.headers["www-authenticate"] == 'Bearer error="invalid_token"'

    # 404
    arr.check("RemoteRendering_GetSession", await arr.get("nope"), 404)
    arr.check("RemoteRendering_UpdateSession", await arr.update("nope", 40), 404)
    arr.check("RemoteRendering_StopSession", await arr.stop("nope"), 404)

    # 409: same id, other settings
    for lease, size in ((31, "Standard"), (30, "Premium")):
        body = arr.check("RemoteRendering_CreateSession", await arr.create("s1", lease, size), 409)
        assert body["error"]["code"] == "Conflict"

    # 422: a lease that is not larger, too large, or on an ended session
    for lease in (30, 29, 1441):
        body = arr.check("RemoteRendering_UpdateSession", await arr.update("s1", lease), 422)
        assert body["error"]["code"] == "UnprocessableEntity"
    arr.check("RemoteRendering_StopSession", await arr.stop("s1"), 204)
    arr.check("RemoteRendering_UpdateSession", await arr.update("s1", 60), 422)


async def test_throttled_bodies(arr: Api, runtime: Runtime) -> None:
    runtime.throttle.rate, runtime.throttle.burst = 0.01, 1
    arr.check("RemoteRendering_ListSessions", await arr.list(), 200)
    resp = await arr.list()
    arr.check("RemoteRendering_ListSessions", resp, 429)
    assert int(resp.headers["retry-after"]) >= 1
    arr.check("RemoteRendering_GetSession", await arr.get("s1"), 429)
    arr.check("RemoteRendering_CreateSession", await arr.create("s1"), 429)


async def test_errors_the_swagger_does_not_list_still_have_error_bodies(arr: Api) -> None:
    """400s on operations whose swagger lists no 400 (openrr validates more than the swagger says), 405."""
    sw = arr.swagger
    arr.check("RemoteRendering_CreateSession", await arr.create("s1", 30), 201)
    responses = [
        await arr.get("bad:id"),
        await arr.update("s1", "40"),
        await arr.update("s1", None),
        await arr.client.patch(arr.url("s1"), params=arr.params, headers=arr.account.auth, content=b"{"),
        await arr.stop("bad:id"),
        await arr.client.get(arr.url(), headers=arr.account.auth),
        await arr.client.get(arr.url(), params={"api-version": "2020-01-01"}, headers=arr.account.auth),
        await arr.client.get(arr.url("s1"), params={"api-version": "1"}, headers=arr.account.auth),
        await arr.list(params={**arr.params, "$skipToken": "x" * 300}),
        await arr.list(params={**arr.params, "$skipToken": "a\x00b"}),
        await arr.client.get("/accounts/not-a-uuid/sessions", params=arr.params, headers=arr.account.auth),
    ]
    for resp in responses:
        assert resp.status_code == 400, (resp.request.url, resp.text)
        sw.check_body(resp)
    resp = await arr.client.delete(arr.url("s1"), params=arr.params, headers=arr.account.auth)
    assert resp.status_code == 405
    assert "PUT" in resp.headers["allow"]
    sw.check_body(resp)


# ---- conversions ------------------------------------------------------------------------------------------
@pytest.fixture
async def conversions_api(
    settings_factory: Callable[..., Settings], tmp_path: Path, fake_host: FakeHost, clock: ManualClock
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime, Account, Account, Path]]:
    """A control plane of its own with file: containers and the fake converter, and two accounts."""
    from tests.api.conversion_fixtures import FakeConverter

    root = tmp_path / "containers"
    root.mkdir()
    settings = settings_factory(
        store_url=f"sqlite:///{tmp_path / 'conversions.db'}", container_roots=(root,), list_page_size=2
    )
    rt = await Runtime.open(settings, host=fake_host, clock=clock, conversion_runner=FakeConverter())
    accounts = []
    for name in ("conversions", "other"):
        created = await rt.accounts.create(name)
        token, _ = rt.tokens.issue_account_token(created.account_id)
        accounts.append(Account(created.account_id, created.primary_key, token))
    containers = root / accounts[0].id  # the first account's folder in the container root
    (containers / "input").mkdir(parents=True)
    (containers / "output").mkdir()
    from openrr.api.app import create_app

    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as client:
        yield client, rt, accounts[0], accounts[1], containers
    await rt.close()


async def test_conversion_bodies(
    conversions_api: tuple[httpx.AsyncClient, Runtime, Account, Account, Path], api: str
) -> None:
    from tests.api.conversion_fixtures import put_blob, run_queue, settings_body

    client, rt, account, other, containers = conversions_api
    sw = swagger(api)
    params = {"api-version": api}
    base = f"/accounts/{account.id}/conversions"

    def check(operation_id: str, resp: httpx.Response, status: int) -> Any:
        assert resp.status_code == status, resp.text
        return sw.check(operation_id, resp)

    put_blob(containers / "input", "models/box.glb")
    good = settings_body(containers, input_sas="?sv=1&sig=S", output_sas="?sv=1&sig=S")
    created = check(
        "RemoteRendering_CreateConversion",
        await client.put(f"{base}/ok", params=params, json=good, headers=account.auth),
        201,
    )
    assert created["status"] == "NotStarted"
    assert created["error"] is None
    check(
        "RemoteRendering_CreateConversion",
        await client.put(f"{base}/ok", params=params, json=good, headers=account.auth),
        200,
    )
    other_settings = settings_body(containers, "other.glb")
    check(
        "RemoteRendering_CreateConversion",
        await client.put(f"{base}/ok", params=params, json=other_settings, headers=account.auth),
        409,
    )
    check(
        "RemoteRendering_CreateConversion",
        await client.put(
            f"{base}/missing",
            params=params,
            json=settings_body(containers, "missing.glb"),
            headers=account.auth,
        ),
        201,
    )
    check(
        "RemoteRendering_CreateConversion",
        await client.put(
            f"{base}/bad", params=params, json=settings_body(containers, "box.txt"), headers=account.auth
        ),
        400,
    )
    denied = settings_body(containers, input_uri="file:///etc")
    body = check(
        "RemoteRendering_CreateConversion",
        await client.put(f"{base}/bad", params=params, json=denied, headers=account.auth),
        403,
    )
    assert body["error"]["code"] == "DelegatedResourceAccessError"

    await run_queue(rt)
    succeeded = check(
        "RemoteRendering_GetConversion",
        await client.get(f"{base}/ok", params=params, headers=account.auth),
        200,
    )
    assert succeeded["status"] == "Succeeded"
    assert succeeded["output"]["outputAssetUri"]
    failed = check(
        "RemoteRendering_GetConversion",
        await client.get(f"{base}/missing", params=params, headers=account.auth),
        200,
    )
    assert failed["status"] == "Failed"
    assert failed["error"]["code"] == "ConversionProcessFailed"
    check(
        "RemoteRendering_GetConversion",
        await client.get(f"{base}/nope", params=params, headers=account.auth),
        404,
    )

    check(
        "RemoteRendering_CreateConversion",
        await client.put(f"{base}/third", params=params, json=good, headers=account.auth),
        201,
    )
    resp = await client.get(base, params=params, headers=account.auth)
    page = check("RemoteRendering_ListConversions", resp, 200)
    assert len(page["conversions"]) == 2
    assert "@nextLink" in page
    page = check(
        "RemoteRendering_ListConversions", await client.get(page["@nextLink"], headers=account.auth), 200
    )
    assert [c["id"] for c in page["conversions"]] == ["third"]
    assert "@nextLink" not in page

    for headers, status in (({}, 401), ({"Authorization": "Bearer not.a.token"}, 401), (other.auth, 403)):
        check(
            "RemoteRendering_CreateConversion",
            await client.put(f"{base}/x", params=params, json=good, headers=headers),
            status,
        )
        check(
            "RemoteRendering_GetConversion",
            await client.get(f"{base}/ok", params=params, headers=headers),
            status,
        )
        check(
            "RemoteRendering_ListConversions", await client.get(base, params=params, headers=headers), status
        )
