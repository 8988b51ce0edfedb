"""Conversions survive their control plane: requeued when its process is gone, failed with a reason after
too many interruptions, never left Running. (tests/e2e/test_conversion_sdk.py kills a real one.)"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path

import httpx

from openrr.domain.clock import ManualClock
from openrr.domain.conversion import Conversion, ConversionStatus
from openrr.services.conversion_queue import worker_identity, worker_is_dead
from openrr.services.runtime import Runtime
from tests.api.conversion_fixtures import (  # noqa: F401
    FakeConverter,
    OpenRuntime,
    V,
    container_root_fixture,
    containers_fixture,
    converter_fixture,
    open_runtime_fixture,
    put_blob,
    run_queue,
    runtime_fixture,
    settings_body,
)
from tests.conftest import Account

DEAD_HERE = f"{socket.gethostname()}/999999999/1.000"
ELSEWHERE = "another-host/1234/1.000"


async def create(client: httpx.AsyncClient, account: Account, containers: Path, cid: str = "c1") -> None:
    put_blob(containers / "input", "models/box.glb")
    resp = await client.put(
        f"/accounts/{account.id}/conversions/{cid}",
        params=V,
        json=settings_body(containers),
        headers=account.auth,
    )
    assert resp.status_code == 201, resp.text


async def claim_as(runtime: Runtime, account: Account, worker: str, attempts: int = 1) -> Conversion:
    """Mark the conversion Running by ``worker``, as if that process had claimed it."""
    c = await runtime.conversions.get(account.id, "c1")
    now = runtime.clock.now()
    return await runtime.store.update_conversion(
        dataclasses.replace(
            c,
            status=ConversionStatus.RUNNING,
            worker=worker,
            heartbeat_at=now,
            started_at=now,
            attempts=attempts,
        )
    )


def test_worker_identity() -> None:
    assert not worker_is_dead(worker_identity())
    assert worker_is_dead(DEAD_HERE)
    assert worker_is_dead(f"{socket.gethostname()}/1/1.000")  # pid 1 exists, but was not created then
    assert not worker_is_dead(ELSEWHERE)  # cannot tell from here: the heartbeat decides


async def test_a_conversion_of_a_dead_process_is_run_again(
    client: httpx.AsyncClient, account: Account, containers: Path, runtime: Runtime
) -> None:
    await create(client, account, containers)
    await claim_as(runtime, account, DEAD_HERE)
    await run_queue(runtime)
    done = await runtime.conversions.get(account.id, "c1")
    assert done.status is ConversionStatus.SUCCEEDED
    assert done.attempts == 2
    assert done.input_sas is None
    assert done.worker is None


async def test_too_many_interruptions_fail_with_the_reason(
    client: httpx.AsyncClient, account: Account, containers: Path, runtime: Runtime
) -> None:
    await create(client, account, containers)
    await claim_as(runtime, account, DEAD_HERE, attempts=3)
    await run_queue(runtime)
    failed = await runtime.conversions.get(account.id, "c1")
    assert failed.status is ConversionStatus.FAILED
    assert failed.error_code == "InternalServerError"
    assert failed.error_message
    assert "interrupted 3 times" in failed.error_message
    body = (await client.get(f"/accounts/{account.id}/conversions/c1", params=V, headers=account.auth)).json()
    assert body["status"] == "Failed"
    assert body["error"]["code"] == "InternalServerError"


async def test_another_hosts_conversion_is_left_alone_until_its_heartbeat_is_stale(
    client: httpx.AsyncClient, account: Account, containers: Path, runtime: Runtime, clock: ManualClock
) -> None:
    await create(client, account, containers)
    await claim_as(runtime, account, ELSEWHERE)
    await run_queue(runtime)
    assert (await runtime.conversions.get(account.id, "c1")).status is ConversionStatus.RUNNING
    clock.advance(runtime.conversions.config.stale_after_s + 1)
    await run_queue(runtime)
    assert (await runtime.conversions.get(account.id, "c1")).status is ConversionStatus.SUCCEEDED


async def test_a_clean_shutdown_requeues_and_the_next_process_finishes(
    open_runtime: OpenRuntime, client: httpx.AsyncClient, account: Account, containers: Path, runtime: Runtime
) -> None:
    put_blob(containers / "input", "models/box.glb", b"hang until stopped")
    await create(client, account, containers)
    runtime.conversions.start()
    for _ in range(200):
        if (await runtime.conversions.get(account.id, "c1")).status is ConversionStatus.RUNNING:
            break
        await asyncio.sleep(0.01)
    await runtime.conversions.close()
    requeued = await runtime.conversions.get(account.id, "c1")
    assert requeued.status is ConversionStatus.NOT_STARTED
    assert requeued.attempts == 0

    put_blob(containers / "input", "models/box.glb", b"glTF, fixed")
    second = await open_runtime(FakeConverter())
    await run_queue(second)
    assert (await second.conversions.get(account.id, "c1")).status is ConversionStatus.SUCCEEDED
