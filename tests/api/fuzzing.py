"""Schemathesis' engine against the control plane in-process: what ``test_openapi_fuzz`` and
``bench.fuzz_api`` share.

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
import dataclasses
from collections.abc import Iterator
from typing import Any

import schemathesis
from schemathesis.config import CacheConfig
from schemathesis.engine import Status, StopReason, events
from schemathesis.schemas import BaseSchema

from openrr.api.app import create_app
from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.services.runtime import Runtime
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
                except Exception as exc:  # noqa: BLE001 - the ASGI lifespan protocol reports any start-up failure to the server
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


def _describe(event: events.ScenarioFinished) -> Iterator[str]:
    for checks in event.recorder.checks.values():
        for check in checks:
            if check.failure_info is not None:
                failure = check.failure_info.failure
                yield (
                    f"[{event.phase.value}] {event.label}: {check.name}: {failure.title}\n"
                    f"{failure.message}\n{check.failure_info.code_sample}"
                )


@dataclasses.dataclass
class Outcome:
    failures: list[str]
    phases: dict[str, Status]
    stop_reason: StopReason | None
    #: test cases sent, per operation label ("GET /accounts/{account_id}/sessions")
    cases: collections.Counter[str]


def run(target: LifespanApp, *, max_examples: int, exclude_path_regex: str | None = None) -> Outcome:
    """Every phase of schemathesis over ``/openapi.json``, with a valid token of the target's account."""
    # An explicit config: no schemathesis.toml from the working directory, no cache of earlier runs.
    config = schemathesis.Config(seed=SEED, cache=CacheConfig(enabled=False))
    schema: BaseSchema = schemathesis.openapi.from_asgi("/openapi.json", target, config=config)
    if exclude_path_regex is not None:
        schema = schema.exclude(path_regex=exclude_path_regex)
    schema.config.update(
        parameters={"account_id": target.account_id},
        headers={"Authorization": f"Bearer {target.token}"},
    )
    schema.config.checks.update(included_check_names=CHECKS)
    schema.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        max_examples=max_examples,
        deterministic=True,  # Hypothesis' derandomize; schemathesis' settings have deadline=None
        database="none",
    )
    outcome = Outcome([], {}, None, collections.Counter())
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for node in event.recorder.cases.values():
                outcome.cases[node.value.operation.label] += 1
            if event.status in (Status.FAILURE, Status.ERROR):
                outcome.failures.extend(
                    list(_describe(event)) or [f"[{event.phase.value}] {event.label}: {event.status}"]
                )
        elif isinstance(event, events.NonFatalError):
            outcome.failures.append(
                f"[{event.phase}] {event.label}: {event.value!r}\n{event.info.code_sample}"
            )
        elif isinstance(event, events.FatalError):
            outcome.failures.append(f"engine error: {event.exception!r}")
        elif isinstance(event, events.PhaseFinished):
            outcome.phases[event.phase.name.value] = event.status
        elif isinstance(event, events.EngineFinished):
            outcome.stop_reason = event.stop_reason
    return outcome
