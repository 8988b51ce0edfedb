"""The 2021-01-01 conversion API in-process, with ``file:`` containers and a fake converter.

Statuses and bodies as ARR's recordings show them (notes §2.4, §9.12): 201 new / 200 identical repeat / 409
other settings, SAS never echoed, blobPrefix ending with "/", the default output name, output only on
Succeeded; synchronous 400 and 403 DelegatedResourceAccessError, asynchronous ConversionProcessFailed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from openrr.services.runtime import Runtime
from tests.api.conversion_fixtures import (  # noqa: F401
    FakeConverter,
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

SAS = "?sv=2020-10-02&sp=rl&sig=SECRETSIGNATURE"


def url(account: Account, conversion_id: str = "") -> str:
    base = f"/accounts/{account.id}/conversions"
    return f"{base}/{conversion_id}" if conversion_id else base


async def put(
    client: httpx.AsyncClient, account: Account, conversion_id: str, body: object, **kw: Any
) -> httpx.Response:
    kw.setdefault("headers", account.auth)
    return await client.put(url(account, conversion_id), params=V, json=body, **kw)


async def get(client: httpx.AsyncClient, account: Account, conversion_id: str) -> dict[str, Any]:
    resp = await client.get(url(account, conversion_id), params=V, headers=account.auth)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_create_normalises_and_never_echoes_sas(
    client: httpx.AsyncClient, account: Account, containers: Path
) -> None:
    body = settings_body(containers, "box.glb", input_prefix="Input", output_prefix="c1", input_sas=SAS)
    body["settings"]["outputLocation"]["storageContainerWriteSas"] = SAS  # type: ignore[index]
    resp = await put(client, account, "c1", body)
    assert resp.status_code == 201, resp.text
    assert "SECRETSIGNATURE" not in resp.text
    created = resp.json()
    assert list(created) == ["id", "creationTime", "settings", "error", "status"]
    assert created["id"] == "c1"
    assert created["status"] == "NotStarted"
    assert created["error"] is None
    assert created["creationTime"].endswith("Z")
    assert created["settings"] == {
        "inputLocation": {
            "storageContainerUri": (containers / "input").as_uri(),
            "blobPrefix": "Input/",
            "relativeInputAssetPath": "box.glb",
        },
        "outputLocation": {
            "storageContainerUri": (containers / "output").as_uri(),
            "blobPrefix": "c1/",
            "outputAssetFilename": "box.arrAsset",
        },
    }
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert resp.headers["api-supported-versions"] == "2021-01-01-preview, 2021-01-01"
    assert "retry-after" not in resp.headers
    assert "SECRETSIGNATURE" not in json.dumps(await get(client, account, "c1"))


async def test_create_is_idempotent_and_conflicts_on_other_settings(
    client: httpx.AsyncClient, account: Account, containers: Path
) -> None:
    body = settings_body(containers)
    first = await put(client, account, "c1", body)
    assert first.status_code == 201
    again = await put(client, account, "c1", body)
    assert again.status_code == 200
    assert again.json() == first.json()
    # the normalised settings are what count: "models/" is "models", the default name is the default
    same = settings_body(containers, input_prefix="models/", filename="box.arrAsset", input_sas="?sv=other")
    assert (await put(client, account, "c1", same)).status_code == 200
    for other in (
        settings_body(containers, "other.glb"),
        settings_body(containers, output_prefix="elsewhere"),
        settings_body(containers, filename="renamed.arrAsset"),
        settings_body(containers, input_prefix=None),
    ):
        resp = await put(client, account, "c1", other)
        assert resp.status_code == 409, resp.text
        assert resp.json()["error"]["code"] == "Conflict"
    # the same id in another account is another conversion
    assert (await get(client, account, "c1"))["status"] == "NotStarted"


async def test_conversion_runs_to_succeeded_with_outputs_first(
    client: httpx.AsyncClient, account: Account, containers: Path, runtime: Runtime, converter: FakeConverter
) -> None:
    put_blob(containers / "input", "models/box.glb", b"glTF box")
    put_blob(containers / "input", "models/textures/wood.png", b"png")
    put_blob(containers / "input", "elsewhere/ignored.glb", b"not downloaded")
    resp = await put(client, account, "c1", settings_body(containers, output_prefix="results/c1"))
    assert resp.status_code == 201
    await run_queue(runtime)
    done = await get(client, account, "c1")
    assert list(done) == ["id", "creationTime", "settings", "output", "error", "status"]
    assert done["status"] == "Succeeded"
    assert done["error"] is None
    asset = containers / "output" / "results" / "c1" / "box.arrAsset"
    assert done["output"] == {"outputAssetUri": asset.as_uri()}
    assert asset.read_bytes() == b"glTF box"
    outputs = sorted(p.name for p in asset.parent.iterdir())
    assert outputs == [
        "box.arrAsset",
        "box.info.json",
        "box.log",
        "box.result.json",
        "box.service.log",
    ]
    # only the blobs under the prefix were downloaded, with their folders
    assert converter.seen_files == [["box.glb", "textures/wood.png"]]
    service_log = (asset.parent / "box.service.log").read_text()
    assert "uploading" in service_log
    # the scratch folder is gone
    assert not any(runtime.settings.server.conversion_dir.resolve().iterdir())


async def test_missing_input_fails_asynchronously_with_logs_in_the_output(
    client: httpx.AsyncClient, account: Account, containers: Path, runtime: Runtime
) -> None:
    resp = await put(client, account, "c1", settings_body(containers, "missing.glb"))
    assert resp.status_code == 201  # accepted, as ARR did
    await run_queue(runtime)
    failed = await get(client, account, "c1")
    assert failed["status"] == "Failed"
    assert "output" not in failed
    assert failed["error"]["code"] == "ConversionProcessFailed"
    assert "Check logs in output container" in failed["error"]["message"]
    out = containers / "output" / "out"
    assert sorted(p.name for p in out.iterdir()) == ["missing.result.json", "missing.service.log"]
    result = json.loads((out / "missing.result.json").read_text())
    assert result[-1] == {"result": "failed"}
    assert "missing.glb" in (out / "missing.service.log").read_text()


@pytest.mark.parametrize("content", [b"corrupt model", b"partial asset"])
async def test_a_bad_model_fails_and_publishes_no_asset(
    client: httpx.AsyncClient, account: Account, containers: Path, runtime: Runtime, content: bytes
) -> None:
    put_blob(containers / "input", "models/box.glb", content)
    assert (await put(client, account, "c1", settings_body(containers))).status_code == 201
    await run_queue(runtime)
    failed = await get(client, account, "c1")
    assert failed["status"] == "Failed"
    assert failed["error"]["code"] == "ConversionProcessFailed"
    out = containers / "output" / "out"
    names = sorted(p.name for p in out.iterdir())
    assert "box.arrAsset" not in names
    assert {"box.log", "box.result.json", "box.service.log"} <= set(names)


async def test_an_output_that_cannot_be_written_fails_instead_of_succeeding(
    client: httpx.AsyncClient, account: Account, containers: Path, runtime: Runtime
) -> None:
    put_blob(containers / "input", "models/box.glb")
    assert (await put(client, account, "c1", settings_body(containers))).status_code == 201
    (containers / "output" / "out").write_text("a file where the output folder should be")
    await run_queue(runtime)
    failed = await get(client, account, "c1")
    assert failed["status"] == "Failed"
    assert "output" not in failed
    assert failed["error"]["code"] == "InternalServerError"


async def test_blobs_that_leave_the_container_are_not_read(
    client: httpx.AsyncClient, account: Account, containers: Path, runtime: Runtime, converter: FakeConverter
) -> None:
    secret = containers.parent / "secret.txt"
    secret.write_text("outside")
    put_blob(containers / "input", "models/box.glb")
    os.symlink(secret, containers / "input" / "models" / "leak.txt")
    os.symlink(containers.parent, containers / "input" / "models" / "up")
    assert (await put(client, account, "c1", settings_body(containers))).status_code == 201
    await run_queue(runtime)
    assert (await get(client, account, "c1"))["status"] == "Succeeded"
    assert converter.seen_files == [["box.glb"]]


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"asset": "box.txt"}, "settings.inputLocation.relativeInputAssetPath"),
        ({"asset": "box"}, "settings.inputLocation.relativeInputAssetPath"),
        ({"asset": "../box.glb"}, "settings.inputLocation.relativeInputAssetPath"),
        ({"asset": "/etc/box.glb"}, "settings.inputLocation.relativeInputAssetPath"),
        ({"asset": "a\\..\\box.glb"}, "settings.inputLocation.relativeInputAssetPath"),
        ({"asset": "a/./box.glb"}, "settings.inputLocation.relativeInputAssetPath"),
        ({"input_prefix": "../models"}, "settings.inputLocation.blobPrefix"),
        ({"input_prefix": "/models"}, "settings.inputLocation.blobPrefix"),
        ({"output_prefix": "a/../../b"}, "settings.outputLocation.blobPrefix"),
        ({"filename": "box.glb"}, "settings.outputLocation.outputAssetFilename"),
        ({"filename": "sub/box.arrAsset"}, "settings.outputLocation.outputAssetFilename"),
        ({"filename": "../box.arrAsset"}, "settings.outputLocation.outputAssetFilename"),
        ({"filename": ".arrAsset"}, "settings.outputLocation.outputAssetFilename"),
        ({"input_uri": "ftp://host/container"}, "settings.inputLocation.storageContainerUri"),
        ({"input_uri": "not a uri"}, "settings.inputLocation.storageContainerUri"),
        ({"input_uri": "https://acct.blob.core.windows.net"}, "settings.inputLocation.storageContainerUri"),
        (
            {"output_uri": "https://a.blob.core.windows.net/c?sv=1&sig=2"},
            "settings.outputLocation.storageContainerUri",
        ),
        ({"input_sas": "sv=1\nsig=2"}, "settings.inputLocation.storageContainerReadListSas"),
    ],
)
async def test_bad_settings_are_400(
    client: httpx.AsyncClient, account: Account, containers: Path, change: dict[str, Any], target: str
) -> None:
    resp = await put(client, account, "c1", settings_body(containers, **change))
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "BadRequest"
    assert error["target"] == target
    assert "sig=2" not in resp.text
    assert (await client.get(url(account, "c1"), params=V, headers=account.auth)).status_code == 404


async def test_malformed_bodies_are_400(
    client: httpx.AsyncClient, account: Account, containers: Path
) -> None:
    good = settings_body(containers)
    bad_bodies: list[object] = [
        {},
        {"settings": {}},
        {"settings": {"inputLocation": good["settings"]["inputLocation"]}},  # type: ignore[index]
        {"settings": {"inputLocation": {"storageContainerUri": 5}, "outputLocation": {}}},
        [],
    ]
    for body in bad_bodies:
        resp = await put(client, account, "c1", body)
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json()["error"]["code"] == "BadRequest"
    for raw in (b"", b"{", b"\xff"):
        resp = await client.put(
            url(account, "c1"),
            params=V,
            content=raw,
            headers={**account.auth, "content-type": "application/json"},
        )
        assert resp.status_code == 400
    for bad_id in ("bad:id", "x" * 257):
        assert (await put(client, account, bad_id, good)).status_code == 400


@pytest.mark.parametrize(
    ("change", "which"),
    [
        ({"input_uri": "file:///etc"}, "input"),  # outside the container roots
        ({"output_uri": "file:///srv/../etc"}, "output"),
        ({"input_uri": "file:///nonexistent-container-root/x"}, "input"),
        ({"input_uri": "https://acct.blob.core.windows.net/input"}, "input"),  # Azure, no SAS, not linked
        ({"input_uri": "https://storage.example.com/input"}, "input"),  # not an endpoint the service knows
        ({"input_uri": "http://127.0.0.1:1/devstoreaccount1/input", "input_sas": "sv=1"}, "input"),
    ],
)
async def test_containers_the_service_cannot_use_are_403_delegated_resource_access_error(
    client: httpx.AsyncClient, account: Account, containers: Path, change: dict[str, Any], which: str
) -> None:
    resp = await put(client, account, "c1", settings_body(containers, **change))
    assert resp.status_code == 403, resp.text
    error = resp.json()["error"]
    assert error["code"] == "DelegatedResourceAccessError"
    assert error["target"] == f"settings.{which}Location.storageContainerUri"
    assert "retry-after" not in resp.headers


async def test_a_missing_container_folder_is_403(
    client: httpx.AsyncClient, account: Account, containers: Path
) -> None:
    missing = (containers / "nope").as_uri()
    for body in (settings_body(containers, input_uri=missing), settings_body(containers, output_uri=missing)):
        resp = await put(client, account, "c1", body)
        assert resp.status_code == 403
        assert resp.json()["error"]["code"] == "DelegatedResourceAccessError"


async def test_get_list_and_auth(
    client: httpx.AsyncClient, account: Account, other_account: Account, containers: Path
) -> None:
    assert (await client.get(url(account, "nope"), params=V, headers=account.auth)).status_code == 404
    for i in range(5):
        assert (await put(client, account, f"c{i}", settings_body(containers))).status_code == 201
    seen: list[str] = []
    resp = await client.get(url(account), params=V, headers=account.auth)
    pages = 0
    while True:
        assert resp.status_code == 200, resp.text
        page = resp.json()
        pages += 1
        seen += [c["id"] for c in page["conversions"]]
        if "@nextLink" not in page:
            break
        assert httpx.URL(page["@nextLink"]).params["api-version"] == "2021-01-01"
        resp = await client.get(page["@nextLink"], headers=account.auth)
    assert seen == [f"c{i}" for i in range(5)]
    assert pages == 3
    # another account sees none of them, and may not use this account's path
    other = await client.get(url(other_account), params=V, headers=other_account.auth)
    assert other.json() == {"conversions": []}
    for method, path in (("GET", url(account, "c1")), ("GET", url(account)), ("PUT", url(account, "c9"))):
        for headers, status in (({}, 401), (other_account.auth, 403)):
            resp = await client.request(
                method, path, params=V, headers=headers, json=settings_body(containers)
            )
            assert resp.status_code == status, (method, path, resp.text)
    assert (await client.get(url(account), headers=account.auth)).status_code == 400  # no api-version


async def test_accounts_are_kept_apart_in_file_containers_and_linked_storage(
    client: httpx.AsyncClient,
    runtime: Runtime,
    account: Account,
    other_account: Account,
    containers: Path,
    container_root: Path,
) -> None:
    put_blob(containers / "input", "models/box.glb")
    theirs = container_root / other_account.id
    (theirs / "input").mkdir(parents=True)
    (theirs / "output").mkdir()
    # the first account's containers, named by their full path, are not the other account's to use
    resp = await put(client, other_account, "c1", settings_body(containers))
    assert resp.status_code == 403, resp.text
    assert "outside this account's folders" in resp.json()["error"]["message"]
    # nor is a path that climbs from the other account's folder into the first one's
    sneaky = (theirs / "input").as_uri() + f"/../../{account.id}/input"
    resp = await put(client, other_account, "c1", settings_body(theirs, input_uri=sneaky))
    assert resp.status_code == 403, resp.text
    assert (await put(client, account, "c1", settings_body(containers))).status_code == 201

    # Storage linked with a key to the first account: it tries the key (the endpoint is down: unreachable);
    # for the other account the same container needs a SAS.
    await runtime.accounts.link_storage(account.id, "mystore=a2V5a2V5@http://127.0.0.1:9/mystore")
    linked = settings_body(containers, input_uri="http://127.0.0.1:9/mystore/input")
    resp = await put(client, account, "c2", linked)
    assert resp.status_code == 403, resp.text
    assert "cannot be reached" in resp.json()["error"]["message"], resp.text
    resp = await put(client, other_account, "c2", settings_body(theirs, input_uri=linked_uri(linked)))
    assert resp.status_code == 403, resp.text
    message = resp.json()["error"]["message"]
    assert "linked to this account" in message
    assert "a2V5a2V5" not in resp.text
    await runtime.accounts.unlink_storage(account.id, "mystore")
    resp = await put(client, account, "c3", linked)
    assert resp.status_code == 403
    assert "linked to this account" in resp.json()["error"]["message"]


def linked_uri(body: dict[str, Any]) -> str:
    return str(body["settings"]["inputLocation"]["storageContainerUri"])
