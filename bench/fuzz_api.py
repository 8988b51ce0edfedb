"""Schemathesis over every operation of the control plane, with valid credentials, 1,000+ cases each.

The same engine and checks as ``tests/api/test_openapi_fuzz.py`` (``tests/api/fuzzing.py``: no 5xx, no
status, header, content type or body outside the OpenAPI document, schema-breaking data refused), in
process, but with ``--max-examples`` cases per operation and phase, and the offer relay included: every
session reports ready at a stand-in render server on loopback that answers offers as a render server does.
Writes ``bench/results/fuzz_api.json`` with the cases sent per operation.

    .venv/bin/python -m bench.fuzz_api                 # 1,000 examples per operation and phase
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from schemathesis.engine import Status, StopReason
from schemathesis.python import asgi as schemathesis_asgi
from tests.api.fuzzing import LifespanApp, run
from tests.fakes import FakeHost

from bench.common import write_result
from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.protocol.handshake import OFFER_PATH
from openrr.render.http import OfferBody
from openrr.render.process import bind_in_range

ANSWER = {"type": "answer", "sdp": "v=0\r\n", "video": {"width": 1280, "height": 720}}


class StandIn:
    """A render server's offer endpoint on loopback, on a thread of its own (schemathesis has the main
    one): a connect token and a JSON offer in, an answer out."""

    def __init__(self) -> None:
        self.port = 0
        self.offers = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _offer(self, request: web.Request) -> web.Response:
        self.offers += 1
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return web.json_response({"error": {"code": "Unauthorized", "message": "no token"}}, status=401)
        try:  # the render server's own validation of an offer, as it answers a bad one
            OfferBody.model_validate_json(await request.read())
        except ValidationError as exc:
            error = {"code": "BadRequest", "message": f"Invalid offer: {exc.error_count()} errors"}
            return web.json_response({"error": error}, status=400)
        return web.json_response(ANSWER)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post(OFFER_PATH, self._offer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # In ARR's port range, as a render server's: the session's body documents handshakePort so.
        sock = bind_in_range("127.0.0.1")
        await web.SockSite(self._runner, sock).start()
        self.port = sock.getsockname()[1]

    def __enter__(self) -> StandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-examples", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="openrr-fuzz-") as tmp, StandIn() as stand_in:
        settings = Settings.load(
            {
                "data_dir": Path(tmp) / "data",
                "store_url": f"sqlite:///{Path(tmp) / 'store.db'}",
                "throttle_rate": 0,
                "sts_throttle_rate": 0,
                "sts_failure_rate": 0,
                # Every session the run creates holds a slot until it is stopped: no quota or capacity
                # answer should stand in for the handler's own.
                "max_sessions_per_account": 1_000_000,
                "local_slots": ("standard=1000000", "premium=1000000"),
            }
        )
        host = FakeHost()
        host.render_address = ("127.0.0.1", stand_in.port)
        clock = ManualClock(dt.datetime.now(dt.UTC))
        target = LifespanApp(settings, host, clock)
        started = time.monotonic()
        try:
            outcome = run(target, max_examples=args.max_examples)
        finally:
            schemathesis_asgi.shutdown_lifespans()
        seconds = time.monotonic() - started
        offers = stand_in.offers
    server_errors = sum(n for (_, status), n in target.statuses.items() if status >= 500)
    result: dict[str, Any] = {
        "max_examples": args.max_examples,
        "seconds": round(seconds, 1),
        "requests": sum(target.statuses.values()),
        "responses_5xx": server_errors,
        "failures": outcome.failures[:20],
        "failure_count": len(outcome.failures),
        "phases": {name: status.name for name, status in outcome.phases.items()},
        "completed": outcome.stop_reason is StopReason.COMPLETED,
        "cases_per_operation": dict(sorted(outcome.cases.items())),
        "fewest_cases": min(outcome.cases.values()) if outcome.cases else 0,
        "offers_relayed_to_the_stand_in": offers,
        "statuses": {f"{route} {status}": n for (route, status), n in sorted(target.statuses.items())},
    }
    result["met"] = (
        result["completed"]
        and not outcome.failures
        and server_errors == 0
        and result["fewest_cases"] >= 1000
        and all(status is Status.SUCCESS for status in outcome.phases.values())
    )
    path = write_result("fuzz_api", result)
    for key in ("seconds", "requests", "responses_5xx", "failure_count", "fewest_cases", "met"):
        print(f"{key:>16}: {result[key]}")
    for label, count in result["cases_per_operation"].items():
        print(f"{count:>7}  {label}")
    for failure in outcome.failures[:5]:
        print(failure)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
