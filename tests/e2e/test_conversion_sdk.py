"""Conversions end to end: the stock SDK's ``begin_asset_conversion`` against Azurite containers with SAS
through a real ``openrr serve``, a session that loads the converted asset and streams it, the documented
errors through the SDK, and a conversion that survives a ``kill -9`` of its control plane."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mixedreality.remoterendering import (
    AssetConversionInputSettings,
    AssetConversionOutputSettings,
    AssetConversionStatus,
    RemoteRenderingClient,
)

from openrr.client.rest import ArrClient
from openrr.client.session import connect_session
from openrr.model.arrasset.layout import MAGIC
from tests.azurite import KEY, Azurite
from tests.e2e.checks import wait_gone
from tests.e2e.server import OpenRRServer, Proc, wait_for
from tests.e2e.test_sdk import _client_kwargs, _trust
from tests.render import fixtures

pytestmark = pytest.mark.e2e


class ConversionServer(OpenRRServer):
    """``openrr serve`` that may load models from loopback URLs (Azurite), which only a flag allows."""

    @staticmethod
    def env() -> dict[str, str]:
        env = OpenRRServer.env()
        env["OPENRR_ALLOW_PRIVATE_MODEL_URLS"] = "1"
        return env


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    server.start()
    try:
        server.create_container("input")
        server.create_container("output")
        models = tmp_path_factory.mktemp("models")
        server.put("input", "models/box.glb", fixtures.two_node_glb(models).read_bytes())
        server.put("input", "broken/broken.glb", fixtures.broken_glb(models).read_bytes())
        yield server
    finally:
        server.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[OpenRRServer]]:
    """Control planes the test starts; teardown stops them and everything they started, by pid."""
    started: list[OpenRRServer] = []
    yield started
    survivors: list[str] = []
    for server in started:
        _running, left = server.cleanup()
        survivors.extend(str(p) for p in left)
    assert not survivors, f"processes left behind: {survivors}"


def start(servers: list[OpenRRServer], data_dir: Path, **options: Any) -> OpenRRServer:
    server = ConversionServer(data_dir, video_width=320, video_height=180, **options)
    servers.append(server)
    server.start()
    return server


def test_sdk_conversion_with_sas_then_a_session_streams_the_asset(
    azurite: Azurite, servers: list[OpenRRServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The endpoint is known to the service, without a key: every request must bring its SAS.
    server = start(servers, tmp_path / "data", storage_account=f"devstoreaccount1@{azurite.endpoint}")
    _trust(server, monkeypatch)
    conversion_id = f"sdk-{uuid.uuid4()}"
    read_sas, write_sas = azurite.sas("input", "rl"), azurite.sas("output", "w")

    with RemoteRenderingClient(**_client_kwargs(server)) as client:  # type: ignore[arg-type]
        poller = client.begin_asset_conversion(
            conversion_id=conversion_id,
            input_settings=AssetConversionInputSettings(
                storage_container_uri=f"{azurite.endpoint}/input",
                storage_container_read_list_sas=read_sas,
                blob_prefix="models",
                relative_input_asset_path="box.glb",
            ),
            output_settings=AssetConversionOutputSettings(
                storage_container_uri=f"{azurite.endpoint}/output",
                storage_container_write_sas=write_sas,
                blob_prefix=conversion_id,
            ),
        )
        conversion = poller.result(timeout=60)
        assert conversion.status == AssetConversionStatus.SUCCEEDED
        asset_uri = f"{azurite.endpoint}/output/{conversion_id}/box.arrAsset"
        assert conversion.output is not None
        assert conversion.output.asset_uri == asset_uri
        assert conversion.settings.output_settings.blob_prefix == conversion_id + "/"
        assert conversion.settings.output_settings.output_asset_filename == "box.arrAsset"
        assert conversion.settings.input_settings.storage_container_read_list_sas is None
        assert client.get_asset_conversion(conversion_id).status == AssetConversionStatus.SUCCEEDED
        assert conversion_id in [c.id for c in client.list_asset_conversions()]

        # a missing input: accepted, then Failed, which the SDK's poller raises
        missing = client.begin_asset_conversion(
            conversion_id=f"{conversion_id}-missing",
            input_settings=AssetConversionInputSettings(
                storage_container_uri=f"{azurite.endpoint}/input",
                storage_container_read_list_sas=read_sas,
                relative_input_asset_path="nothing/here.glb",
            ),
            output_settings=AssetConversionOutputSettings(
                storage_container_uri=f"{azurite.endpoint}/output", storage_container_write_sas=write_sas
            ),
        )
        with pytest.raises(HttpResponseError) as failed:
            missing.result(timeout=60)
        assert failed.value.error is not None
        assert failed.value.error.code == "ConversionProcessFailed"

        # no SAS and the account is not linked with a key: refused at once
        with pytest.raises(HttpResponseError) as denied:
            client.begin_asset_conversion(
                conversion_id=f"{conversion_id}-denied",
                input_settings=AssetConversionInputSettings(
                    storage_container_uri=f"{azurite.endpoint}/input",
                    relative_input_asset_path="models/box.glb",
                ),
                output_settings=AssetConversionOutputSettings(
                    storage_container_uri=f"{azurite.endpoint}/output", storage_container_write_sas=write_sas
                ),
            )
        assert denied.value.status_code == 403
        assert denied.value.error is not None
        assert denied.value.error.code == "DelegatedResourceAccessError"

    # The SDK's clients (its STS client is never closed) keep connections to the control plane until they
    # are collected; the exceptions above hold them in reference cycles.
    del client, poller, missing, failed, denied
    gc.collect()

    names = azurite.names("output", conversion_id + "/")
    prefix = conversion_id + "/box"
    expected = [f"{prefix}.arrAsset", f"{prefix}.info.json", f"{prefix}.log", f"{prefix}.result.json"]
    assert names == [*expected, f"{prefix}.service.log"]
    assert azurite.get("output", f"{prefix}.arrAsset").startswith(MAGIC)

    # A v1 session preloads the converted asset straight from the output container, and streams it.
    model_url = f"{asset_uri}?{azurite.sas('output', 'r')}"
    session_id = server.create_v1([model_url], lease="0:10:0")
    with server.api() as api:
        api.wait_status(session_id, "Ready", timeout=30)

    async def stream() -> None:
        account = server.account
        with ArrClient(server.url, account.id, account.key, verify=str(server.cert)) as arr:
            async with await connect_session(arr, session_id, timeout=15) as conn:
                hello = conn.hello
                assert hello is not None, hello
                assert len(hello["models"]) == 1, hello
                await conn.wait_frames(10, timeout=20)
                image = conn.latest.image()
                assert image.shape == (180, 320, 3)
                # the model is in the picture: not one flat background colour
                assert float(np.abs(image.astype(np.int16) - image[0, 0].astype(np.int16)).mean()) > 1.0

    asyncio.run(stream())
    render = server.render_server(session_id)
    resp = httpx.delete(
        f"{server.url}/v1/accounts/{server.account.id}/sessions/{session_id}",
        headers={"Authorization": f"Bearer {server.token()}"},
        verify=server.ssl_context(),
    )
    assert resp.status_code == 204, resp.text
    wait_gone(render, timeout=10)


def _conversion_row(server: OpenRRServer, conversion_id: str) -> dict[str, object]:
    with contextlib.closing(sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True, timeout=10)) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT status, attempts FROM conversions WHERE id = ?", (conversion_id,)).fetchone()
        return dict(row) if row else {}


def _worker_of(server: OpenRRServer) -> Proc | None:
    assert server.proc is not None
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(server.proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "openrr.assets.worker" in " ".join(child.cmdline()):
                    return Proc(child.pid, child.create_time(), "conversion worker")
    return None


def test_a_conversion_survives_kill_9_of_its_control_plane(
    azurite: Azurite, servers: list[OpenRRServer], tmp_path: Path
) -> None:
    # Linked with the key to the server's account this time: the requests carry no SAS. The key goes in on
    # standard input, and the listing shows the link without it.
    server = start(servers, tmp_path / "data")
    data_dir = ("--data-dir", str(server.data_dir))
    storage, endpoint = azurite.linked.split("=", 1)[0], azurite.endpoint
    linked = server.cli(
        "accounts",
        "link-storage",
        *data_dir,
        server.account.id,
        f"{storage}@{endpoint}",
        "--key-stdin",
        stdin=KEY + "\n",
    )
    assert linked.returncode == 0, linked.stderr
    listed = server.cli("accounts", "list-storage", *data_dir, server.account.id, "--json")
    assert json.loads(listed.stdout) == [{"name": storage, "endpoint": endpoint, "hasKey": True}]
    assert KEY not in listed.stdout + linked.stdout + linked.stderr
    conversion_id = f"restart-{uuid.uuid4()}"
    with server.api() as api:
        resp = api.http.put(
            f"/conversions/{conversion_id}",
            json={
                "settings": {
                    "inputLocation": {
                        "storageContainerUri": f"{azurite.endpoint}/input",
                        "blobPrefix": "models",
                        "relativeInputAssetPath": "box.glb",
                    },
                    "outputLocation": {
                        "storageContainerUri": f"{azurite.endpoint}/output",
                        "blobPrefix": "restart",
                    },
                }
            },
        )
        assert resp.status_code == 201, resp.text

    # Freeze the converter while it runs, then kill the control plane: the conversion stays Running.
    worker = wait_for(lambda: _worker_of(server), timeout=20, interval=0.005, what="the conversion worker")
    worker.send(signal.SIGSTOP)
    assert _conversion_row(server, conversion_id)["status"] == "Running"
    server.kill9()
    worker.send(signal.SIGCONT)
    # the orphaned converter notices its parent is gone and exits by itself
    wait_for(lambda: not worker.alive, timeout=10, what="the orphaned conversion worker to exit")
    assert _conversion_row(server, conversion_id) == {"status": "Running", "attempts": 1}

    server.restart()
    with server.api() as api:
        done = wait_for(
            lambda: (lambda b: b if b["status"] in ("Succeeded", "Failed") else None)(
                api.http.get(f"/conversions/{conversion_id}").json()
            ),
            timeout=60,
            interval=0.2,
            what="the conversion to end after the restart",
        )
    assert done["status"] == "Succeeded", done
    assert done["output"]["outputAssetUri"] == f"{azurite.endpoint}/output/restart/box.arrAsset"
    assert _conversion_row(server, conversion_id) == {"status": "Succeeded", "attempts": 2}
    assert azurite.get("output", "restart/box.arrAsset").startswith(MAGIC)


def test_cli_uploads_converts_and_prints_the_asset(
    azurite: Azurite, servers: list[OpenRRServer], tmp_path: Path
) -> None:
    """``openrr conversions`` as Conversion.ps1 -UseContainerSas, then with the service's file: containers."""
    root = tmp_path / "containers"
    root.mkdir()
    server = start(
        servers,
        tmp_path / "data",
        storage_account=f"devstoreaccount1@{azurite.endpoint}",
        container_root=str(root),
    )
    containers = root / server.account.id  # file: containers are per account: ROOT/ACCOUNT_ID/CONTAINER
    (containers / "output").mkdir(parents=True)
    (containers / "input").mkdir()
    local = tmp_path / "upload"
    local.mkdir()
    fixtures.two_node_glb(local)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return server.cli("conversions", *args, "--config", str(server.config_path), timeout=120)

    done = cli(
        "create",
        "--id",
        "cli-blob",
        "--local-dir",
        str(local),
        "--storage-account",
        "devstoreaccount1",
        "--storage-endpoint",
        azurite.endpoint,
        "--storage-key",
        KEY,
        "--use-container-sas",
        "--input-container",
        f"{azurite.endpoint}/input",
        "--input-folder",
        "cli",
        "--input-asset",
        "two_nodes.glb",
        "--output-container",
        f"{azurite.endpoint}/output",
        "--output-folder",
        "cli-out",
        "--poll-interval",
        "0.5",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    conversion = json.loads(done.stdout)
    assert conversion["status"] == "Succeeded"
    assert conversion["output"]["outputAssetUri"] == f"{azurite.endpoint}/output/cli-out/two_nodes.arrAsset"
    assert azurite.names("input", "cli/") == ["cli/two_nodes.glb"]
    assert azurite.get("output", "cli-out/two_nodes.arrAsset").startswith(MAGIC)

    # file: containers on the service's machine, and the human-readable output
    done = cli(
        "create",
        "--id",
        "cli-local",
        "--local-dir",
        str(local),
        "--input-container",
        (containers / "input").as_uri(),
        "--input-asset",
        "two_nodes.glb",
        "--output-container",
        (containers / "output").as_uri(),
        "--poll-interval",
        "0.5",
    )
    assert done.returncode == 0, done.stderr
    assert (containers / "output" / "two_nodes.arrAsset").as_uri() in done.stdout.replace("\n", "")
    assert (containers / "output" / "two_nodes.arrAsset").read_bytes().startswith(MAGIC)

    fetched = json.loads(cli("get", "cli-blob", "--json").stdout)
    assert fetched["status"] == "Succeeded"
    listed = json.loads(cli("list", "--json").stdout)
    assert [c["id"] for c in listed] == ["cli-blob", "cli-local"]

    # a failure exits 1 and says why; an unknown id too
    failed = cli(
        "create",
        "--no-upload",
        "--input-container",
        (containers / "input").as_uri(),
        "--input-asset",
        "missing.glb",
        "--output-container",
        (containers / "output").as_uri(),
        "--poll-interval",
        "0.5",
    )
    assert failed.returncode == 1
    assert "ConversionProcessFailed" in failed.stderr
    unknown = cli("get", "no-such-conversion")
    assert unknown.returncode == 1
    assert "ConversionNotFound" in unknown.stderr
    assert "Traceback" not in unknown.stderr + failed.stderr
