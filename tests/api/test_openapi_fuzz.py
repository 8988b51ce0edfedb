"""Schemathesis against the app's own /openapi.json, in-process: no input may make the API answer 5xx.

The run is schemathesis' engine, as ``schemathesis run`` does it: examples, the coverage phase (boundary
values, each constraint broken in turn, undeclared methods), fuzzing with positive and negative data, and
stateful sequences along the links it infers. Every request carries a valid access token of one account and
that account's id in the path, so that requests get past authorisation and reach the handlers.

Checks besides ``not_a_server_error`` are those that the served schema supports:

* ``negative_data_rejection``: data that breaks the schema is answered 4xx;
* ``status_code_conformance``: every status answered is one the document lists (api/openapi.py);
* ``response_schema_conformance``, ``content_type_conformance``, ``response_headers_conformance``:
  documented responses look as documented;
* ``missing_required_header``, ``unsupported_method`` (undeclared methods get 405 with ``Allow``),
  ``ensure_resource_availability``.

Left out on purpose:

* ``positive_data_acceptance``: the served schema is looser than the ARR contract, which the handlers enforce
  (id characters, lease ranges, sizes, api-versions; unknown sessions are 404);
* ``use_after_free``: ARR keeps stopped sessions readable (notes §9.9);
* ``allow_header_conformance``: Starlette's 405 names the methods of the first route on the path only;
* ``ignored_auth``, ``object_level_authorization``: auth is not declared in the schema (tests/api covers it).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.config import CacheConfig
from schemathesis.engine import Status, StopReason, events
from schemathesis.python import asgi as schemathesis_asgi

from openrr.api.app import create_app
from openrr.config import Settings
from openrr.domain.clock import ManualClock
from openrr.services.runtime import Runtime
from tests.conftest import Account
from tests.fakes import FakeHost

CHECKS = [
    "not_a_server_error",
    "negative_data_rejection",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "missing_required_header",
    "unsupported_method",
    "ensure_resource_availability",
]
MAX_EXAMPLES = 60  # per operation and phase: about 1,100 requests, 15 s on 2 cores
SEED = 20261123


class LifespanApp:
    """The control plane behind an ASGI lifespan, counting the statuses it answers.

    Schemathesis drives ASGI apps from one event loop in a thread of its own. The runtime (SQLAlchemy
    engine, the fake host's tasks) must live on that loop, so it is opened at lifespan startup, which
    schemathesis runs there before the first request, and closed at lifespan shutdown.
    """

    def __init__(self, settings: Settings, host: FakeHost, clock: ManualClock) -> None:
        self.settings, self.host, self.clock = settings, host, clock
        self.runtime: Runtime | None = None
        self.app: Any = None
        self.account_id = ""
        self.token = ""
        self.statuses: collections.Counter[tuple[str, int]] = collections.Counter()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        route = scope["path"].split("/")[1] + " " + scope["method"]

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.statuses[route, message["status"]] += 1
            await send(message)

        await self.app(scope, receive, counting_send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._open()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.runtime is not None:
                    await self.runtime.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _open(self) -> None:
        rt = await Runtime.open(self.settings, host=self.host, clock=self.clock)
        self.host.attach(rt.sessions)
        self.runtime = rt
        created = await rt.accounts.create("fuzz")
        self.account_id = created.account_id
        self.token, _ = rt.tokens.issue_account_token(created.account_id)
        self.app = create_app(rt)


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Overrides conftest's: SQLite, or PostgreSQL (which refuses NUL in text) where a test asks for it."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def target(
    settings_factory: Callable[..., Settings], store_url: str, fake_host: FakeHost, clock: ManualClock
) -> Iterator[LifespanApp]:
    app = LifespanApp(settings_factory(store_url=store_url), fake_host, clock)
    try:
        yield app
    finally:
        schemathesis_asgi.shutdown_lifespans()  # closes the runtime on schemathesis' loop


def _describe(event: events.ScenarioFinished) -> Iterator[str]:
    for checks in event.recorder.checks.values():
        for check in checks:
            if check.failure_info is not None:
                failure = check.failure_info.failure
                yield (
                    f"[{event.phase.value}] {event.label}: {check.name}: {failure.title}\n"
                    f"{failure.message}\n{check.failure_info.code_sample}"
                )


def test_schemathesis_finds_no_server_errors(target: LifespanApp) -> None:
    # An explicit config: no schemathesis.toml from the working directory, no cache of earlier runs.
    config = schemathesis.Config(seed=SEED, cache=CacheConfig(enabled=False))
    schema = schemathesis.openapi.from_asgi("/openapi.json", target, config=config)
    # The offer relay forwards to the session's render server, which the fake host never starts: a
    # correct 502 RenderServerUnreachable there is not a bug. tests/api/test_web.py covers the relay's bad
    # input (and its 502/504) on its own.
    schema = schema.exclude(path_regex="^/openrr/")
    schema.config.update(
        parameters={"account_id": target.account_id},
        headers={"Authorization": f"Bearer {target.token}"},
    )
    schema.config.checks.update(included_check_names=CHECKS)
    schema.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,  # Hypothesis' derandomize; schemathesis' settings have deadline=None
        database="none",
    )

    failures: list[str] = []
    phases: dict[str, Status] = {}
    stop_reason = None
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.status in (Status.FAILURE, Status.ERROR):
            failures.extend(
                list(_describe(event)) or [f"[{event.phase.value}] {event.label}: {event.status}"]
            )
        elif isinstance(event, events.NonFatalError):
            failures.append(f"[{event.phase}] {event.label}: {event.value!r}\n{event.info.code_sample}")
        elif isinstance(event, events.FatalError):
            failures.append(f"engine error: {event.exception!r}")
        elif isinstance(event, events.PhaseFinished):
            phases[event.phase.name.value] = event.status
        elif isinstance(event, events.EngineFinished):
            stop_reason = event.stop_reason

    assert not failures, "\n\n".join(failures)
    assert stop_reason is StopReason.COMPLETED, stop_reason
    for phase in ("coverage", "fuzzing", "stateful"):
        assert phases.get(phase) is Status.SUCCESS, phases
    # The run reached the handlers of every API: sessions were created, read and rejected.
    for route in ("accounts PUT", "accounts GET", "v1 POST"):
        assert any(r == route and 200 <= s < 300 for r, s in target.statuses), (route, target.statuses)
        assert any(r == route and 400 <= s < 500 for r, s in target.statuses), (route, target.statuses)


_DEEP = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
_LONG_INT = b"1" * 5000  # longer than int() converts by default
_V1_BODY = b'{"maxLeaseTime": %s, "size": %s}'
_BODY = b'{"maxLeaseTimeMinutes": %s, "size": %s}'
# Inputs the generator does not reach (its strings are short and its JSON is shallow), each of which made
# some handler fail with 500 once: deep nesting, huge integers, timespans of too many days, lone surrogates
# echoed in error messages, NUL in a query parameter that reaches PostgreSQL.
HOSTILE: list[tuple[str, str, dict[str, str], bytes]] = (
    [
        (method, path, {}, body)
        for method, path in (
            ("POST", "/v1/accounts/{a}/sessions/create"),
            ("PATCH", "/v1/accounts/{a}/sessions/s1"),
        )
        for body in (
            _DEEP,
            b"[" * 100_000 + b"]" * 100_000,
            _V1_BODY % (_LONG_INT, b'"standard"'),
            _V1_BODY % (b'"' + _LONG_INT + b'.00:00:00"', b'"standard"'),
            _V1_BODY % (b'"99999999999999999999.00:00:00"', b'"standard"'),
            _V1_BODY % (b'"\\ud800"', b'"standard"'),
            _V1_BODY % (b'"01:00:00"', b'"\\ud800"'),
            b'{"maxLeaseTime": "01:00:00", "size": "standard", "models": ["\\u0000", "\\ud800"]}',
        )
    ]
    + [
        (method, "/accounts/{a}/sessions/s1", {"api-version": "2021-01-01"}, body)
        for method in ("PUT", "PATCH")
        for body in (
            _DEEP,
            _BODY % (_LONG_INT, b'"Standard"'),
            _BODY % (b"1e400", b'"Standard"'),
            _BODY % (b"-9223372036854775809", b'"Standard"'),
            _BODY % (b"5", b'"\\ud800"'),
            _BODY % (b"5", b'"Standard\\u0000"'),
        )
    ]
    + [
        ("GET", "/accounts/{a}/sessions", {"api-version": "2021-01-01", "$skipToken": token}, b"")
        for token in ("\x00", "a\x00b", "\u00e9", "\U0001f600", "z" * 256)
    ]
)


@pytest.mark.parametrize(
    "store_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_hostile_inputs_get_4xx(runtime: Runtime, account: Account) -> None:
    # Not conftest's client: it re-raises the app's exceptions, and this test wants every bad answer at once.
    transport = httpx.ASGITransport(app=create_app(runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as client:
        await _send_hostile(client, account)


async def _send_hostile(client: httpx.AsyncClient, account: Account) -> None:
    await client.put(
        f"/accounts/{account.id}/sessions/s1",
        params={"api-version": "2021-01-01"},
        json={"maxLeaseTimeMinutes": 30, "size": "Standard"},
        headers=account.auth,
    )
    wrong = []
    for method, path, params, body in HOSTILE:
        resp = await client.request(
            method,
            path.format(a=account.id),
            params=params,
            content=body,
            headers={**account.auth, "content-type": "application/json"},
        )
        if not 200 <= resp.status_code < 500 or (resp.status_code >= 400 and not resp.json()):
            wrong.append(f"{method} {path} {params} {body[:80]!r}: {resp.status_code} {resp.text}")
    assert not wrong, "\n".join(wrong)
