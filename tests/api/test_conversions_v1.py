"""The v1 conversion API in-process (notes §4.2): the documentation's bodies, states and spellings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from openrr.services.runtime import Runtime
from tests.api.conversion_fixtures import (  # noqa: F401
    container_root_fixture,
    containers_fixture,
    converter_fixture,
    open_runtime_fixture,
    put_blob,
    run_queue,
    runtime_fixture,
)
from tests.conftest import Account

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def body(asset: str = "sphere.glb", **output: Any) -> dict[str, Any]:
    """The documentation's StorageInputWithFolderPath example, on the local container roots."""
    return {
        "input": {
            "storageAccountName": "local",
            "blobContainerName": "input",
            "folderPath": "geometry/sphere",
            "inputAssetPath": asset,
        },
        "output": {
            "storageAccountName": "local",
            "blobContainerName": "output",
            "folderPath": "converted",
            **output,
        },
    }


async def create(client: httpx.AsyncClient, account: Account, data: object, action: str = "create") -> str:
    resp = await client.post(
        f"/v1/accounts/{account.id}/conversions/{action}", json=data, headers=account.auth
    )
    assert resp.status_code == 202, resp.text
    assert list(resp.json()) == ["conversionId"]
    cid = str(resp.json()["conversionId"])
    assert UUID.fullmatch(cid)
    assert resp.headers["location"] == f"/v1/accounts/{account.id}/conversions/{cid}"
    return cid


async def status(client: httpx.AsyncClient, account: Account, cid: str) -> dict[str, Any]:
    resp = await client.get(f"/v1/accounts/{account.id}/conversions/{cid}", headers=account.auth)
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


async def test_linked_storage_walkthrough(
    client: httpx.AsyncClient, account: Account, containers: Path, runtime: Runtime
) -> None:
    put_blob(containers / "input", "geometry/sphere/sphere.glb", b"glTF sphere")
    cid = await create(client, account, body(outputAsssetFileName="convertedsphere.arrAsset"))
    assert await status(client, account, cid) == {"conversionId": cid, "status": "Created", "error": None}
    await run_queue(runtime)
    done = await status(client, account, cid)
    assert done == {
        "conversionId": cid,
        "status": "Success",
        "error": None,
        "convertedAsset": {
            "storageAccountName": "local",
            "blobContainerName": "output",
            "assetFilePath": "converted/convertedsphere.arrAsset",
        },
    }
    assert (containers / "output" / "converted" / "convertedsphere.arrAsset").read_bytes() == b"glTF sphere"
    listed = await client.get(f"/v1/accounts/{account.id}/conversions", headers=account.auth)
    assert listed.json() == {"conversions": [done]}
    # the same conversion through the 2021 API
    resp = await client.get(
        f"/accounts/{account.id}/conversions/{cid}",
        params={"api-version": "2021-01-01"},
        headers=account.auth,
    )
    assert resp.json()["output"]["outputAssetUri"].endswith("/output/converted/convertedsphere.arrAsset")


async def test_failure_has_a_message(
    client: httpx.AsyncClient, account: Account, containers: Path, runtime: Runtime
) -> None:
    cid = await create(client, account, body("missing.glb"))
    await run_queue(runtime)
    failed = await status(client, account, cid)
    assert failed["status"] == "Failure"
    assert "convertedAsset" not in failed
    assert "missing.glb" in failed["error"]


@pytest.mark.parametrize(
    "action",
    [
        "createWithSharedAccessSignature",
        "createwithsharedaccesssignature",
        "CreateWithSharedAccessSignature/",
    ],
)
async def test_sas_variant_and_its_spellings(
    client: httpx.AsyncClient, account: Account, containers: Path, action: str
) -> None:
    data = body()
    data["input"]["containerReadListSas"] = "?sv=1&sp=rl&sig=SECRET"
    data["output"]["containerWriteSas"] = "?sv=1&sp=w&sig=SECRET"
    cid = await create(client, account, data, action)
    assert "SECRET" not in str(await status(client, account, cid))
    del data["output"]["containerWriteSas"]
    resp = await client.post(
        f"/v1/accounts/{account.id}/conversions/{action}", json=data, headers=account.auth
    )
    assert resp.status_code == 400
    assert resp.json()["errors"] == {"output.containerWriteSas": [resp.json()["title"]]}


async def test_keys_and_paths_are_case_insensitive(
    client: httpx.AsyncClient, account: Account, containers: Path
) -> None:
    data = {
        "INPUT": {
            "storageaccountname": "local",
            "BlobContainerName": "input",
            "FolderPath": "/geometry/sphere/",
            "inputassetpath": "sphere.glb",
        },
        "Output": {"StorageAccountName": "local", "blobcontainername": "output", "extra": 1},
        "unknown": True,
    }
    for path in ("conversions/Create", "conversion/create", "conversions/create/", "conversion/CREATE/"):
        resp = await client.post(f"/v1/accounts/{account.id}/{path}", json=data, headers=account.auth)
        assert resp.status_code == 202, (path, resp.text)


async def test_errors(client: httpx.AsyncClient, account: Account, containers: Path) -> None:
    base = f"/v1/accounts/{account.id}/conversions"
    cases: list[tuple[object, int]] = [
        ({}, 400),
        ({"input": {}, "output": {}}, 400),
        (body("sphere.txt"), 400),  # unsupported format
        (body("../sphere.glb"), 400),
        (body(outputAssetFilename="sphere.glb"), 400),
        ({**body(), "input": {**body()["input"], "blobContainerName": "../etc"}}, 400),
        (
            {**body(), "input": {**body()["input"], "storageAccountName": "unlinked"}},
            403,
        ),  # no SAS, not linked
        ({**body(), "output": {**body()["output"], "blobContainerName": "nope"}}, 403),  # no such folder
    ]
    for data, expected in cases:
        resp = await client.post(f"{base}/create", json=data, headers=account.auth)
        assert resp.status_code == expected, (data, resp.text)
        problem = resp.json()
        assert problem["status"] == expected
        assert problem["title"]
    resp = await client.post(f"{base}/create", content=b"{'single': 'quotes'}", headers=account.auth)
    assert resp.status_code == 400
    resp = await client.post(f"{base}/somethingelse", json=body(), headers=account.auth)
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET"
    assert (await client.get(f"{base}/nope", headers=account.auth)).status_code == 404
    assert (await client.get(f"{base}/bad:id", headers=account.auth)).status_code == 400
    assert (await client.get(base)).status_code == 401
