"""The conversions table on SQLite and PostgreSQL, and hostile conversion requests on both (never a 500)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from openrr.api.app import create_app
from openrr.config.settings import Settings
from openrr.domain.account import Account
from openrr.domain.clock import ManualClock
from openrr.domain.conversion import Conversion, ConversionInput, ConversionOutput, ConversionStatus
from openrr.services.runtime import Runtime
from openrr.store.base import Admission, StaleWrite
from openrr.store.sql import SqlStore, open_store
from tests.api.conversion_fixtures import FakeConverter
from tests.conftest import Account as ApiAccount
from tests.fakes import FakeHost
from tests.store.helpers import BACKENDS, T0


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    s = await open_store(store_url)
    try:
        yield s
    finally:
        await s.close()


def conversion(
    account_id: str, cid: str, *, at: dt.datetime = T0, sas: str | None = "sv=1&sig=x"
) -> Conversion:
    return Conversion(
        account_id=account_id,
        id=cid,
        input=ConversionInput("https://a.blob.core.windows.net/input", "models/", "box.glb"),
        output=ConversionOutput("file:///srv/out", "", "box.arrAsset"),
        status=ConversionStatus.NOT_STARTED,
        created_at=at,
        input_sas=sas,
    )


async def test_insert_get_update_list_purge(store: SqlStore) -> None:
    account = Account(str(uuid.uuid4()), "a", T0, "h1", "h2")
    await store.add_account(account)
    first = conversion(account.id, "c1")
    assert await store.insert_conversion(first) is Admission.INSERTED
    assert await store.insert_conversion(dataclasses.replace(first, input_sas=None)) is Admission.EXISTS
    assert await store.get_conversion(account.id, "c1") == first
    assert await store.get_conversion(account.id, "nope") is None

    running = dataclasses.replace(
        first, status=ConversionStatus.RUNNING, worker="h/1/2.0", heartbeat_at=T0, started_at=T0, attempts=1
    )
    stored = await store.update_conversion(running)
    assert stored.version == 1
    assert (await store.get_conversion(account.id, "c1")) == stored
    with pytest.raises(StaleWrite):
        await store.update_conversion(running)  # the version it was read at is gone

    for i, offset in ((3, 1), (2, 2)):
        inserted = await store.insert_conversion(
            conversion(account.id, f"c{i}", at=T0 + dt.timedelta(minutes=offset))
        )
        assert inserted is Admission.INSERTED
    assert [c.id for c in await store.list_conversions(account.id, limit=2)] == ["c1", "c2"]
    assert [c.id for c in await store.list_conversions(account.id, after_id="c2")] == ["c3"]
    queued = await store.conversions_with_status([ConversionStatus.NOT_STARTED])
    assert [c.id for c in queued] == ["c3", "c2"]  # oldest first
    assert [c.id for c in await store.conversions_with_status([ConversionStatus.RUNNING])] == ["c1"]

    ended = dataclasses.replace(
        stored, status=ConversionStatus.SUCCEEDED, ended_at=T0, output_uri="file:///x"
    )
    await store.update_conversion(ended)
    assert await store.purge_conversions_ended_before(T0) == 0
    assert await store.purge_conversions_ended_before(T0 + dt.timedelta(seconds=1)) == 1
    assert [c.id for c in await store.list_conversions(account.id)] == ["c2", "c3"]


@pytest.fixture
async def hostile_client(
    settings_factory: Callable[..., Settings],
    store_url: str,
    fake_host: FakeHost,
    clock: ManualClock,
    tmp_path: Path,
) -> AsyncIterator[tuple[httpx.AsyncClient, ApiAccount]]:
    containers = tmp_path / "containers"
    containers.mkdir()
    settings = settings_factory(store_url=store_url, container_roots=(containers,))
    rt = await Runtime.open(settings, host=fake_host, clock=clock, conversion_runner=FakeConverter())
    created = await rt.accounts.create("hostile")
    (containers / created.account_id / "input").mkdir(parents=True)
    token, _ = rt.tokens.issue_account_token(created.account_id)
    # not conftest's client: it re-raises the app's exceptions, and this test wants every bad answer at once
    transport = httpx.ASGITransport(app=create_app(rt), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://openrr.test") as client:
        yield client, ApiAccount(created.account_id, created.primary_key, token)
    await rt.close()


_BAD = ["\x00", "a\x00b", "\ud800", "x" * 5000, "\u202e", "\n"]


async def test_hostile_conversion_requests_get_4xx(
    hostile_client: tuple[httpx.AsyncClient, ApiAccount],
) -> None:
    client, account = hostile_client
    base = {
        "storageContainerUri": "file:///srv/containers/input",
        "blobPrefix": "p",
        "relativeInputAssetPath": "box.glb",
    }
    wrong = []
    # json.dumps escapes lone surrogates (\ud800), as a hostile client would send them
    headers = {**account.auth, "content-type": "application/json"}
    for bad in _BAD:
        for key in (
            "storageContainerUri",
            "blobPrefix",
            "relativeInputAssetPath",
            "storageContainerReadListSas",
        ):
            body = {"settings": {"inputLocation": {**base, key: bad}, "outputLocation": {**base, key: bad}}}
            for path, params in (
                (f"/accounts/{account.id}/conversions/c1", {"api-version": "2021-01-01"}),
                (f"/v1/accounts/{account.id}/conversions/createWithSharedAccessSignature", {}),
            ):
                if path.startswith("/v1"):
                    section = {"storageAccountName": bad, "blobContainerName": bad, "folderPath": bad}
                    v1 = {
                        "input": {**section, "inputAssetPath": bad, "containerReadListSas": bad},
                        "output": {**section, "containerWriteSas": bad},
                    }
                    resp = await client.post(path, content=json.dumps(v1), headers=headers)
                else:
                    resp = await client.put(path, params=params, content=json.dumps(body), headers=headers)
                if not 400 <= resp.status_code < 500 or not resp.json():
                    wrong.append(f"{path} {key}={bad[:20]!r}: {resp.status_code} {resp.text[:200]}")
        if bad == "\ud800":
            continue  # a URL cannot carry it
        resp = await client.get(
            f"/accounts/{account.id}/conversions",
            params={"api-version": "2021-01-01", "$skipToken": bad},
            headers=account.auth,
        )
        if resp.status_code != 400:
            wrong.append(f"list $skipToken={bad[:20]!r}: {resp.status_code}")
    assert not wrong, "\n".join(wrong)
