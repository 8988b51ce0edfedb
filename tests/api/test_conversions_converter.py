"""Conversions with the real converter process (openrr.assets.worker → openrr.assets.convert),
in-process control plane, file: containers: success, and each kind of bad input with its documented error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from openrr.model.arrasset.layout import MAGIC
from openrr.services import conversion_settings
from openrr.services.runtime import Runtime
from tests.api.conversion_fixtures import (  # noqa: F401
    OpenRuntime,
    V,
    container_root_fixture,
    containers_fixture,
    open_runtime_fixture,
    run_queue,
    settings_body,
)
from tests.conftest import Account
from tests.render import fixtures


@pytest.fixture
def timeout() -> float:
    return 120.0


@pytest.fixture
async def runtime(open_runtime: OpenRuntime, timeout: float) -> Runtime:
    return await open_runtime(conversion_timeout=timeout)  # the real converter process


async def convert(
    client: httpx.AsyncClient, account: Account, runtime: Runtime, containers: Path, asset: str
) -> dict[str, Any]:
    resp = await client.put(
        f"/accounts/{account.id}/conversions/c1",
        params=V,
        json=settings_body(containers, asset),
        headers=account.auth,
    )
    assert resp.status_code == 201, resp.text
    await run_queue(runtime)
    resp = await client.get(f"/accounts/{account.id}/conversions/c1", params=V, headers=account.auth)
    body: dict[str, Any] = resp.json()
    return body


def test_the_accepted_extensions_are_the_converters() -> None:
    from openrr.assets import readers

    known = set(readers.formats())
    assert set(conversion_settings.SUPPORTED_EXTENSIONS) == known


async def test_a_model_converts(
    client: httpx.AsyncClient, account: Account, runtime: Runtime, containers: Path
) -> None:
    models = containers / "input" / "models"
    models.mkdir()
    source = fixtures.two_node_glb(models)
    done = await convert(client, account, runtime, containers, source.name)
    assert done["status"] == "Succeeded", done
    out = containers / "output" / "out"
    asset = out / f"{source.stem}.arrAsset"
    assert done["output"]["outputAssetUri"] == asset.as_uri()
    assert asset.read_bytes().startswith(MAGIC)
    result = json.loads((out / f"{source.stem}.result.json").read_text())
    assert result[-1]["result"] in ("succeeded", "succeeded with warnings")
    info = json.loads((out / f"{source.stem}.info.json").read_text())
    assert info["inputStatistics"]["numMeshes"] >= 1
    assert (out / f"{source.stem}.log").read_text()
    assert "converting" in (out / f"{source.stem}.service.log").read_text()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(lambda d: fixtures.broken_glb(d), "invalid glTF data", id="corrupt"),
        pytest.param(lambda d: _write(d / "empty.glb", b""), "not a glTF file", id="empty"),
        pytest.param(
            lambda d: _with_settings(fixtures.two_node_glb(d), '{"scaling": "big"}'),
            "scaling must be a number",
            id="bad-setting",
        ),
        pytest.param(
            lambda d: _with_settings(fixtures.two_node_glb(d), "{not json"),
            "not valid JSON",
            id="settings-not-json",
        ),
        # a format ARR took, read by its own reader: a damaged file fails with the reader's reason
        pytest.param(lambda d: _write(d / "model.fbx", b"Kaydara FBX Binary"), "invalid FBX data", id="fbx"),
    ],
)
async def test_bad_input_fails_with_its_reason_and_no_asset(
    client: httpx.AsyncClient,
    account: Account,
    runtime: Runtime,
    containers: Path,
    make: Callable[[Path], Path],
    reason: str,
) -> None:
    models = containers / "input" / "models"
    models.mkdir()
    source = make(models)
    failed = await convert(client, account, runtime, containers, source.name)
    assert failed["status"] == "Failed", failed
    assert failed["error"]["code"] == "ConversionProcessFailed"
    assert reason in failed["error"]["message"]
    assert "Check logs in output container" in failed["error"]["message"]
    out = containers / "output" / "out"
    names = {p.name for p in out.iterdir()}
    assert f"{source.stem}.arrAsset" not in names
    assert {f"{source.stem}.result.json", f"{source.stem}.log", f"{source.stem}.service.log"} <= names
    result = json.loads((out / f"{source.stem}.result.json").read_text())
    assert result[-1] == {"result": "failed"}


@pytest.mark.parametrize("timeout", [0.01])
async def test_a_conversion_past_its_timeout_is_killed_and_fails(
    client: httpx.AsyncClient, account: Account, runtime: Runtime, containers: Path
) -> None:
    models = containers / "input" / "models"
    models.mkdir()
    source = fixtures.two_node_glb(models)
    failed = await convert(client, account, runtime, containers, source.name)
    assert failed["status"] == "Failed"
    assert "did not finish within" in failed["error"]["message"]
    assert not (containers / "output" / "out" / f"{source.stem}.arrAsset").exists()


def _with_settings(model: Path, text: str) -> Path:
    model.with_name(model.stem + ".ConversionSettings.json").write_text(text)
    return model


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
