"""GET /metrics: sessions by status from the store, create → Ready, request latency by route template,
throttled requests; a registry per app; off with --no-metrics."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message, Receive, Scope, Send

from openrr.api.app import create_app
from openrr.api.metrics import OTHER_ROUTE, RequestMetrics
from openrr.config.settings import Settings
from openrr.domain.clock import ManualClock
from openrr.domain.session import Status
from openrr.services.metrics import Metrics
from openrr.services.runtime import Runtime
from tests.conftest import Account
from tests.fakes import FakeHost

V = {"api-version": "2021-01-01"}
SESSION_ROUTE = "/accounts/{account_id}/sessions/{session_id}"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> tuple[Samples, str]:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == CONTENT_TYPE_LATEST
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, resp.text


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def put(client: httpx.AsyncClient, account: Account, sid: str, size: str = "Standard") -> None:
    resp = await client.put(
        f"/accounts/{account.id}/sessions/{sid}",
        params=V,
        json={"maxLeaseTimeMinutes": 30, "size": size},
        headers=account.auth,
    )
    assert resp.status_code == 201, resp.text


async def test_sessions_by_status_come_from_the_store(
    client: httpx.AsyncClient, account: Account, other_account: Account, fake_host: FakeHost
) -> None:
    samples, _ = await scrape(client)
    assert {s.value: sample(samples, "openrr_sessions", status=s.value) for s in Status} == {
        s.value: 0 for s in Status
    }
    for sid in ("a", "b", "c"):
        await put(client, account, sid)
    await put(client, other_account, "a")
    await fake_host.settle()
    stop = await client.post(f"/accounts/{account.id}/sessions/c/:stop", params=V, headers=account.auth)
    assert stop.status_code == 204
    fake_host.auto_ready = False
    await put(client, account, "d")
    samples, text = await scrape(client)
    counts = {s.value: sample(samples, "openrr_sessions", status=s.value) for s in Status}
    assert counts == {"Starting": 1, "Ready": 3, "Stopped": 1, "Expired": 0, "Error": 0}
    # Aggregates only: no account or session id anywhere in the exposition.
    assert account.id not in text
    assert other_account.id not in text


async def test_a_store_that_cannot_be_read_leaves_out_only_the_session_counts(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> dict[Status, int]:
        raise OSError("the database is gone")

    monkeypatch.setattr(runtime.store, "count_sessions_by_status", broken)
    samples, text = await scrape(client)
    assert "# TYPE openrr_sessions gauge" in text
    assert not [key for key in samples if key[0] == "openrr_sessions"]
    assert sample(samples, "openrr_throttled_requests_total", bucket="data-plane") == 0


async def test_create_to_ready_histogram(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost, clock: ManualClock
) -> None:
    fake_host.auto_ready = False
    await put(client, account, "slow")
    await put(client, account, "big", size="Premium")
    samples, _ = await scrape(client)
    assert sample(samples, "openrr_session_create_to_ready_seconds_count", size="Standard") == 0

    clock.advance(3)
    await fake_host.report_ready(fake_host.server("slow").spec)
    await fake_host.report_ready(fake_host.server("slow").spec)  # a retried callback counts once
    clock.advance(40)
    await fake_host.report_ready(fake_host.server("big").spec)
    samples, _ = await scrape(client)
    name = "openrr_session_create_to_ready_seconds"
    assert sample(samples, f"{name}_count", size="Standard") == 1
    assert sample(samples, f"{name}_sum", size="Standard") == pytest.approx(3.0)
    assert sample(samples, f"{name}_bucket", size="Standard", le="2.0") == 0
    assert sample(samples, f"{name}_bucket", size="Standard", le="5.0") == 1
    assert sample(samples, f"{name}_count", size="Premium") == 1
    assert sample(samples, f"{name}_sum", size="Premium") == pytest.approx(43.0)
    assert sample(samples, f"{name}_bucket", size="Premium", le="30.0") == 0
    assert sample(samples, f"{name}_bucket", size="Premium", le="45.0") == 1


async def test_request_latency_by_route_template(
    client: httpx.AsyncClient, account: Account, fake_host: FakeHost
) -> None:
    await put(client, account, "s1")
    await fake_host.settle()
    for _ in range(2):
        resp = await client.get(f"/accounts/{account.id}/sessions/s1", params=V, headers=account.auth)
        assert resp.status_code == 200
    missing = await client.get(f"/accounts/{account.id}/sessions/nope", params=V, headers=account.auth)
    assert missing.status_code == 404
    assert (await client.get("/no/such/path/s1")).status_code == 404
    assert (await client.request("BREW", "/health")).status_code == 405

    samples, text = await scrape(client)
    name = "openrr_http_request_duration_seconds"
    get_ok = {"method": "GET", "route": SESSION_ROUTE, "status": "200"}
    assert sample(samples, f"{name}_count", **get_ok) == 2
    assert sample(samples, f"{name}_bucket", **get_ok, le="+Inf") == 2
    assert 0 < (sample(samples, f"{name}_sum", **get_ok) or 0) < 10
    assert sample(samples, f"{name}_count", method="GET", route=SESSION_ROUTE, status="404") == 1
    assert sample(samples, f"{name}_count", method="PUT", route=SESSION_ROUTE, status="201") == 1
    assert sample(samples, f"{name}_count", method="GET", route=OTHER_ROUTE, status="404") == 1
    assert sample(samples, f"{name}_count", method="other", route="/health", status="405") == 1
    # Buckets are cumulative.
    buckets = [v for (n, labels), v in samples.items() if n == f"{name}_bucket" and labels >= get_ok.items()]
    assert buckets == sorted(buckets)
    assert len(buckets) > 2
    # Templates only: no raw path, no session id.
    assert "s1" not in text
    assert "/no/such" not in text
    assert account.id not in text


async def test_throttled_requests_are_counted_by_bucket(
    client: httpx.AsyncClient, runtime: Runtime, account: Account
) -> None:
    runtime.throttle.rate, runtime.throttle.burst = 0.2, 1
    path = f"/accounts/{account.id}/sessions"
    assert (await client.get(path, params=V, headers=account.auth)).status_code == 200
    for _ in range(2):
        assert (await client.get(path, params=V, headers=account.auth)).status_code == 429
    runtime.sts_throttle.rate, runtime.sts_throttle.burst = 0.5, 1
    sts = {"Authorization": f"Bearer {account.id}:{account.key}"}
    assert (await client.get(f"/accounts/{account.id}/token", headers=sts)).status_code == 200
    assert (await client.get(f"/Accounts/{account.id}/token", headers=sts)).status_code == 429

    samples, _ = await scrape(client)
    assert sample(samples, "openrr_throttled_requests_total", bucket="data-plane") == 2
    assert sample(samples, "openrr_throttled_requests_total", bucket="sts") == 1
    name = "openrr_http_request_duration_seconds_count"
    assert sample(samples, name, method="GET", route="/accounts/{account_id}/sessions", status="429") == 2


async def test_metrics_is_not_in_the_openapi_document_and_each_app_has_its_own_registry(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings_factory: Callable[..., Settings],
    store_url: str,
    fake_host: FakeHost,
    clock: ManualClock,
) -> None:
    assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]
    other = await Runtime.open(settings_factory(store_url=store_url), host=fake_host, clock=clock)
    try:
        assert other.metrics.registry is not runtime.metrics.registry
        transport = httpx.ASGITransport(app=create_app(other))
        async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as c:
            assert (await c.get("/health")).status_code == 200
        await client.get("/health")
        await client.get("/health")
        route = {"method": "GET", "route": "/health", "status": "200"}
        mine, _ = await scrape(client)
        assert sample(mine, "openrr_http_request_duration_seconds_count", **route) == 2
    finally:
        await other.close()
    assert REGISTRY.get_sample_value("openrr_throttled_requests_total", {"bucket": "sts"}) is None


async def test_no_metrics_leaves_out_the_endpoint_and_the_middleware(
    settings_factory: Callable[..., Settings], store_url: str, fake_host: FakeHost, clock: ManualClock
) -> None:
    rt = await Runtime.open(settings_factory(store_url=store_url, metrics=False), host=fake_host, clock=clock)
    try:
        app = create_app(rt)
        middleware: list[object] = [m.cls for m in app.user_middleware]
        assert RequestMetrics not in middleware
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as c:
            assert (await c.get("/metrics")).status_code == 404
    finally:
        await rt.close()


async def test_an_unhandled_error_is_timed_as_a_500() -> None:
    metrics = Metrics()

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    with pytest.raises(RuntimeError, match="boom"):
        await RequestMetrics(broken, metrics)({"type": "http", "method": "GET", "path": "/x"}, receive, send)
    labels = {"method": "GET", "route": OTHER_ROUTE, "status": "500"}
    assert metrics.registry.get_sample_value("openrr_http_request_duration_seconds_count", labels) == 1
