"""Fixtures for the Ray host tests: the shared two-node cluster, a stand-in for the control plane's
ready callback, render specs, and a connected ``RayHost``."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import ray

from openrr.hosts.ray import RayHost
from openrr.protocol.handshake import HEARTBEAT_SUFFIX, READY_SUFFIX, RenderSettings, RenderSpec
from tests.ray_cluster import RayCluster, ray_cluster_fixture  # noqa: F401  (fixture ray_cluster)

ACCOUNT = "00000000-0000-0000-0000-0000000000ab"


class Callbacks:
    """The control plane's ``/ready`` endpoint, in a thread: records each render server's ReadyReport (and
    answers heartbeats 200, with no lease).

    Listens on 127.0.0.1, which the nodes (127.0.0.2, 127.0.0.3) reach like any other loopback address.
    """

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self.reports: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        callbacks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Authorization") != f"Bearer {callbacks.token}":
                    self.send_response(401)
                elif self.path.endswith(READY_SUFFIX):
                    report = json.loads(body)
                    with callbacks._lock:
                        callbacks.reports[report["instance"]] = report
                    self.send_response(200)
                elif self.path.endswith(HEARTBEAT_SUFFIX):
                    self.send_response(200)  # no lease given: the server keeps serving
                else:
                    self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def report(self, instance: str) -> dict[str, Any] | None:
        with self._lock:
            return self.reports.get(instance)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def callbacks() -> Iterator[Callbacks]:
    server = Callbacks()
    yield server
    server.close()


@pytest.fixture
def make_spec(callbacks: Callbacks) -> Callable[..., RenderSpec]:
    """``make_spec(size="Standard", template=False)``: a session's spec (or a pooled template) whose ready
    callback goes to ``callbacks``; the host rewrites its addresses to the node's."""

    def make(size: str = "Standard", *, template: bool = False) -> RenderSpec:
        session = "" if template else "s-" + secrets.token_hex(4)
        return RenderSpec(
            account_id="" if template else ACCOUNT,
            session_id=session,
            instance="" if template else secrets.token_hex(8),
            size=size,
            models=(),
            bind_host="127.0.0.1",
            advertise_host="127.0.0.1",
            teraflops=1.0,
            callback_url="" if template else f"{callbacks.url}/internal/render/{ACCOUNT}/{session}",
            callback_token="" if template else callbacks.token,
            callback_ca=None,
            connect_secret="" if template else secrets.token_urlsafe(32),
            ready_deadline_s=60.0,
            # Small frames: the warm-up frame on llvmpipe is what a start waits for.
            settings=RenderSettings(video_width=320, video_height=180),
        )

    return make


def session_of(template: RenderSpec, spec: RenderSpec) -> RenderSpec:
    """``spec``'s session on ``template``'s shared fields (what a pooled server accepts)."""
    return dataclasses.replace(
        template,
        account_id=spec.account_id,
        session_id=spec.session_id,
        instance=spec.instance,
        callback_url=spec.callback_url,
        callback_token=spec.callback_token,
    )


@pytest.fixture
def ray_env() -> Iterator[None]:
    """RayHost(auth_token_file=) sets RAY_AUTH_* in this process: undo it after each test."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("RAY_")}
    yield
    for key in [k for k in os.environ if k.startswith("RAY_")]:
        del os.environ[key]
    os.environ.update(saved)


NAMESPACE = "openrr-test"
# How long a test waits for the shared cluster to show every slot free: Ray reports a killed actor's
# resources back a raylet report after the kill, later still on a loaded machine.
IDLE_TIMEOUT = 60.0


async def _connected(cluster: RayCluster) -> RayHost:
    host = RayHost(cluster.address, namespace=NAMESPACE, auth_token_file=str(cluster.token_file))
    await host.connect()
    return host


def _busy(capacity: Any) -> dict[str, tuple[int | None, int | None]]:
    return {
        size: (slots.total, slots.free) for size, slots in capacity.sizes.items() if slots.free != slots.total
    }


async def wait_cluster_idle(cluster: RayCluster, *, stop_leftovers: bool) -> list[str]:
    """Wait (bounded) until every render slot of the cluster shows free; with ``stop_leftovers``, first stop
    every named actor left in any namespace (the cluster belongs to this test session, so whatever runs
    there was started by a test). Returns the actors it stopped; fails naming what still holds slots."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("RAY_")}
    host = await _connected(cluster)
    stopped: list[str] = []
    try:
        if stop_leftovers:
            for actor in await asyncio.to_thread(ray.util.list_named_actors, all_namespaces=True):
                handle = {"kind": "ray", "actor": actor["name"], "namespace": actor["namespace"]}
                await host.stop(handle, 1.0)
                stopped.append(f"{actor['namespace']}/{actor['name']}")
        deadline = time.monotonic() + IDLE_TIMEOUT
        while _busy(capacity := await host.capacity()):
            if time.monotonic() > deadline:
                actors = await asyncio.to_thread(ray.util.list_named_actors, all_namespaces=True)
                raise AssertionError(
                    f"the shared Ray cluster still has slots taken after {IDLE_TIMEOUT:g} s "
                    f"(size: (total, free)) {_busy(capacity)}; named actors: {actors}"
                )
            await asyncio.sleep(0.2)
        return stopped
    finally:
        await host.close()
        for key in [k for k in os.environ if k.startswith("RAY_")]:
            del os.environ[key]
        os.environ.update(saved)


@pytest.fixture(autouse=True)
async def whole_cluster(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Each test that uses the shared cluster starts with all of its slots free, and leaves them so: its
    leftovers are stopped and their slots seen free again before the next test starts (teardown runs after
    the test's own fixtures, such as ``make_host`` and ``ray_serve``, have stopped what they know of)."""
    if "ray_cluster" not in request.fixturenames:
        yield
        return
    cluster: RayCluster = request.getfixturevalue("ray_cluster")
    await wait_cluster_idle(cluster, stop_leftovers=False)
    yield
    left = await wait_cluster_idle(cluster, stop_leftovers=True)
    if left:
        print(f"actors the test left on the shared cluster, now stopped: {left}")


@pytest.fixture
async def make_host(ray_cluster: RayCluster, ray_env: None) -> AsyncIterator[Callable[..., Any]]:
    """``await make_host(**options)``: a connected RayHost on the shared cluster. Teardown stops every
    actor left in the test namespace (a failed test must not hold slots of the next) and closes them."""
    hosts: list[RayHost] = []

    async def make(**options: Any) -> RayHost:
        options.setdefault("namespace", NAMESPACE)
        host = RayHost(ray_cluster.address, auth_token_file=str(ray_cluster.token_file), **options)
        await host.connect()
        hosts.append(host)
        return host

    yield make

    if not hosts:
        return
    cleaner = await make()  # the test may have closed its hosts already
    for actor in await asyncio.to_thread(ray.util.list_named_actors, all_namespaces=True):
        if actor["namespace"] == NAMESPACE:
            await cleaner.stop({"kind": "ray", "actor": actor["name"], "namespace": NAMESPACE}, 1.0)
    for host in hosts:
        await host.close()


async def wait_until(probe: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Await ``probe()`` (sync or async) until truthy; fail after ``timeout`` seconds."""

    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})")
        await asyncio.sleep(interval)
