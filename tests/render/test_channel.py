"""Data-channel requests against a real render server: bad messages, model loads with progress, node edits.

The server keeps serving through every error: frames still arrive after each one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from openrr.client.connection import RenderConnection, connect
from openrr.client.errors import RenderRequestError
from openrr.render.process import configure_logging
from tests.render import fixtures
from tests.render.live import live_server


@pytest.fixture
async def conn(tmp_path: Path) -> AsyncIterator[RenderConnection]:
    fixtures.two_node_glb(tmp_path)
    fixtures.broken_glb(tmp_path)
    fixtures.textured_gltf(tmp_path)
    async with live_server(tmp_path) as server, await connect("127.0.0.1", server.port, server.token()) as c:
        await c.wait_frames(2, timeout=10)
        yield c


async def still_streaming(conn: RenderConnection) -> None:
    await conn.wait_frames(conn.frames_received + 3, timeout=10)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "teleport"}, "BadMessage"),
        ({"type": "camera.orbit", "yaw": "left"}, "BadMessage"),
        ({"type": "camera.zoom", "factor": -2}, "BadMessage"),
        ({"type": "camera.set", "position": [0, 0, 1], "orientation": [0, 0, 0, 0]}, "BadMessage"),
        ({"type": "pick", "x": 2, "y": 0.5}, "BadMessage"),
        ({"type": "node.set", "node": "Scene", "transform": [1, 2, 3]}, "BadMessage"),
        ({"type": "ping", "extra": True}, "BadMessage"),
        ({"v": 3, "type": "ping"}, "BadMessage"),
        ({"type": "model.unload", "modelId": "nothing"}, "ModelNotFound"),
        ({"type": "node.set", "node": 99999, "visible": False}, "NodeNotFound"),
    ],
)
async def test_bad_requests_get_errors_and_the_stream_goes_on(
    conn: RenderConnection, message: dict[str, Any], code: str
) -> None:
    with pytest.raises(RenderRequestError) as err:
        await conn.request(message, validate=False, timeout=10)
    assert err.value.code == code
    assert err.value.message
    await still_streaming(conn)


async def test_model_loads_report_progress_and_errors(conn: RenderConnection, tmp_path: Path) -> None:
    progress: list[dict[str, Any]] = []
    loaded = await conn.load_model("two_nodes.glb", "pair", on_progress=progress.append)
    assert (loaded["modelId"], loaded["nodes"], loaded["polygons"]) == ("pair", 3, 1292)
    fractions = [p["fraction"] for p in progress]
    assert fractions
    assert fractions == sorted(fractions)
    assert all(p["modelId"] == "pair" for p in progress)
    with pytest.raises(RenderRequestError) as err:
        await conn.load_model("two_nodes.glb", "pair")
    assert err.value.code == "ModelAlreadyLoaded"
    for source, code in [
        ("broken.glb", "ModelLoadFailed"),
        ("missing.glb", "ModelLoadFailed"),
        ("../../etc/passwd", "ModelSourceRefused"),
        ("ftp://example.org/a.glb", "ModelSourceRefused"),
        ("http://127.0.0.1:9/a.glb?sig=secret", "ModelSourceRefused"),
    ]:
        with pytest.raises(RenderRequestError) as err:
            await conn.load_model(source)
        assert err.value.code == code, (source, err.value)
        assert "secret" not in err.value.message
        assert str(tmp_path) not in err.value.message
    textured = await conn.load_model("quad.gltf", "tex")
    assert textured["nodes"] >= 1
    stats = await conn.stats()
    assert stats["polygons"] == 1292 + textured["polygons"]
    await conn.unload_model("pair")
    assert (await conn.stats())["polygons"] == textured["polygons"]
    await still_streaming(conn)


async def test_node_edits_and_picks(conn: RenderConnection) -> None:
    await conn.load_model("two_nodes.glb")
    hidden = await conn.set_node("RedBox", visible=False)
    assert hidden["node"]["visible"] is False
    hits = [await conn.pick(x / 20, 0.5) for x in range(1, 20)]
    names = {h["node"]["name"] for h in hits if h["node"] is not None}
    assert names == {"BlueSphere"}
    await conn.set_node("RedBox", visible=True, color=(0, 1, 0, 1))
    hits = [await conn.pick(x / 20, 0.5) for x in range(1, 20)]
    assert {h["node"]["name"] for h in hits if h["node"] is not None} == {"RedBox", "BlueSphere"}
    pong = await conn.ping()
    assert pong.rtt >= 0


def test_render_server_logging_keeps_download_urls_out(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("httpx", "httpcore"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    configure_logging()
    # httpx logs "HTTP Request: GET <url with its SAS query>" at INFO: that must not be recorded.
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)
