"""Conversions per account: at most ``--max-conversions-per-account`` queued or running (403 QuotaExceeded),
and queued ones started in turn across accounts rather than first come, first served."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import httpx
import pytest

from openrr.domain.clock import ManualClock
from openrr.services.conversion_queue import fair_order
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
    settings_body,
)
from tests.api.test_conversions_store import conversion
from tests.conftest import Account
from tests.fakes import FakeHost

T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
async def runtime(
    open_runtime: OpenRuntime, fake_host: FakeHost, containers: Path, converter: FakeConverter
) -> Runtime:
    rt = await open_runtime(converter, max_conversions_per_account=2, conversion_workers=1)
    fake_host.attach(rt.sessions)
    return rt


async def put(
    client: httpx.AsyncClient, account: Account, cid: str, asset: str, containers: Path
) -> httpx.Response:
    body = settings_body(containers, asset, input_prefix="models", output_prefix=cid)
    return await client.put(
        f"/accounts/{account.id}/conversions/{cid}", params=V, json=body, headers=account.auth
    )


def folder_of(containers: Path, who: Account) -> Path:
    """``who``'s folder in the container root (file: containers are per account), with its containers."""
    folder = containers.parent / who.id
    for name in ("input", "output"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    return folder


async def test_an_account_at_its_limit_gets_quota_exceeded(
    client: httpx.AsyncClient, account: Account, other_account: Account, containers: Path, runtime: Runtime
) -> None:
    put_blob(containers / "input", "models/a.glb")
    for cid in ("c1", "c2"):
        assert (await put(client, account, cid, "a.glb", containers)).status_code == 201
    over = await put(client, account, "c3", "a.glb", containers)
    assert over.status_code == 403, over.text
    error = over.json()["error"]
    assert error["code"] == "QuotaExceeded"
    assert "2 conversions queued or running" in error["message"]
    assert (await put(client, account, "c1", "a.glb", containers)).status_code == 200  # a repeat is fine
    other = folder_of(containers, other_account)
    put_blob(other / "input", "models/a.glb")
    assert (await put(client, other_account, "c1", "a.glb", other)).status_code == 201
    await run_queue(runtime)  # once they have ended, there is room again
    assert (await put(client, account, "c3", "a.glb", containers)).status_code == 201


async def test_queued_conversions_start_in_turn_across_accounts(
    client: httpx.AsyncClient,
    account: Account,
    other_account: Account,
    containers: Path,
    runtime: Runtime,
    converter: FakeConverter,
    clock: ManualClock,
) -> None:
    # The first account queues two before the other queues one: one worker takes them a1, b1, a2.
    for who, cid in ((account, "a1"), (account, "a2"), (other_account, "b1")):
        folder = folder_of(containers, who)
        put_blob(folder / "input", f"models/{cid}.glb")
        assert (await put(client, who, cid, f"{cid}.glb", folder)).status_code == 201
        clock.advance(1)
    await run_queue(runtime)
    assert [model.name for model, _ in converter.calls] == ["a1.glb", "b1.glb", "a2.glb"]


def test_fair_order_takes_accounts_in_turn() -> None:
    def queued(account: str, cid: str, minute: int) -> object:
        return dataclasses.replace(conversion(account, cid), created_at=T0 + dt.timedelta(minutes=minute))

    q = [
        queued("A", "a1", 0),
        queued("A", "a2", 1),
        queued("A", "a3", 2),
        queued("B", "b1", 3),
        queued("C", "c1", 4),
    ]
    ids = [c.id for c in fair_order(q, [], {})]  # type: ignore[arg-type]
    assert ids == ["a1", "b1", "c1", "a2", "a3"]
    # B has one running here: the others go first; A started most recently: after C
    ids = [c.id for c in fair_order(q, ["B"], {"A": 7, "C": 3})]  # type: ignore[arg-type]
    assert ids == ["c1", "a1", "b1", "a2", "a3"]
