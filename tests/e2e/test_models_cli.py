"""``openrr models …`` as a user runs it, against a real control plane with the real converter: upload a
GLB and a .gltf folder with ``--wait``, list, show, rename, delete; a broken model fails with its log; a
converted model streams in a session of its account by its library URL."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openrr.client.rest import ArrClient
from openrr.client.session import connect_session
from tests.e2e.checks import wait_gone
from tests.e2e.server import OpenRRServer
from tests.render import fixtures

pytestmark = pytest.mark.e2e


def _models(server: OpenRRServer, *args: str) -> subprocess.CompletedProcess[str]:
    return server.cli("models", *args, "--config", str(server.config_path), timeout=180)


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr}"
    return json.loads(done.stdout)


def test_cli_model_library(openrr_server: OpenRRServer, tmp_path: Path) -> None:
    server = openrr_server
    glb = fixtures.two_node_glb(tmp_path)
    folder = tmp_path / "quad"
    folder.mkdir()
    fixtures.textured_gltf(folder)

    model = _json(_models(server, "upload", str(glb), "--name", "Two nodes", "--wait", "--json"))
    assert (model["name"], model["status"], model["progress"]) == ("Two nodes", "Succeeded", 1.0)
    assert model["statistics"]["triangles"] > 12
    assert model["url"] == f"library/{model['id']}/asset/model.arrAsset"
    quad = _json(_models(server, "upload", str(folder), "--wait", "--json"))
    assert (quad["name"], quad["entry"], quad["files"]) == ("quad", "quad.gltf", 3)
    assert (quad["statistics"]["triangles"], quad["statistics"]["materials"]) == (2, 1)

    broken = _models(server, "upload", str(fixtures.broken_glb(tmp_path)), "--wait")
    assert broken.returncode == 1
    assert "ConversionProcessFailed" in broken.stderr
    assert "broken.glb" in broken.stderr  # the conversion's log, printed

    listed = _json(_models(server, "list", "--json"))
    assert [(m["name"], m["status"]) for m in listed] == [
        ("Two nodes", "Succeeded"),
        ("quad", "Succeeded"),
        ("broken", "Failed"),
    ]
    table = _models(server, "list")
    assert table.returncode == 0
    assert "Two nodes" in table.stdout
    assert "Failed" in table.stdout
    shown = _models(server, "show", "quad")
    assert shown.returncode == 0
    assert "triangles" in shown.stdout
    assert quad["url"] in shown.stdout

    renamed = _models(server, "rename", "quad", "Striped quad")
    assert renamed.returncode == 0, renamed.stderr
    assert _json(_models(server, "show", "Striped quad", "--json"))["id"] == quad["id"]
    missing = _models(server, "show", "quad")
    assert missing.returncode == 1
    assert "ModelNotFound" in missing.stderr
    deleted = _models(server, "delete", "broken")
    assert deleted.returncode == 0, deleted.stderr
    assert [m["name"] for m in _json(_models(server, "list", "--json"))] == ["Two nodes", "Striped quad"]

    # A session of the account loads the converted model by its library URL, and shows it.
    session_id = server.create_v1([model["url"]], lease="0:10:0")
    with server.api() as api:
        api.wait_status(session_id, "Ready", timeout=30)

    async def stream() -> None:
        account = server.account
        with ArrClient(server.url, account.id, account.key, verify=str(server.cert)) as arr:
            async with await connect_session(arr, session_id, timeout=15) as conn:
                hello = conn.hello
                assert hello is not None
                assert len(hello["models"]) == 1, hello
                await conn.wait_frames(10, timeout=20)
                latest = conn.latest
                assert latest is not None
                image = latest.image()
                assert float(np.abs(image.astype(np.int16) - image[0, 0].astype(np.int16)).mean()) > 1.0

    asyncio.run(stream())
    render = server.render_server(session_id)
    with server.api() as api:
        api.stop(session_id)
    wait_gone(render, timeout=10)
