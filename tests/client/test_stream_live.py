"""The streaming client (``openrr.client.connection``) against the real render server (``RenderServer``
in this test's event loop).

No control plane: the server is started as ``tests.render.live`` does and the client connects with
``connect(host, port, token)``. The session-lookup path (``connect_session``) and the CLI are covered in
``test_stream_units.py`` against a fake.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from openrr.client.connection import connect
from openrr.client.errors import RenderConnectError, RenderRequestError
from openrr.client.signalling import VideoSettings
from tests.render import fixtures
from tests.render.live import LiveServer, live_server


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveServer]:
    fixtures.two_node_glb(tmp_path)
    async with live_server(tmp_path, models=("two_nodes.glb",)) as server:
        yield server


async def test_video_protocol_and_measurements_against_the_render_server(live: LiveServer) -> None:
    video = VideoSettings(width=320, height=180, fps=30, codec="h264")
    async with await connect("127.0.0.1", live.port, live.token(), video=video) as conn:
        hello = conn.hello
        assert hello is not None
        assert hello["sessionId"] == "live-session"
        assert conn.codec == "h264"
        assert conn.answer_video["width"] == 320
        await conn.sync_clock(5)
        await conn.wait_frames(5)
        window = conn.first_frame_at
        for _ in range(6):
            ack = await conn.orbit(5.0)
            assert ack["type"] == "ack"
            await asyncio.sleep(0.1)
        await conn.wait_frames(conn.frames_received + 10)
        await asyncio.sleep(0.2)  # the last frames' messages

        hit = await conn.pick(0.5, 0.5)
        assert hit["type"] == "pick.result"
        with pytest.raises(RenderRequestError) as refused:
            await conn.set_node("no-such-node", visible=False)
        assert refused.value.code == "NodeNotFound"
        stats = await conn.stats()
        assert stats["codec"] == "h264"
        assert stats["frames"] > 0

        m = await conn.measure(window)
        image = conn.latest_image()
    assert image is not None
    assert image.shape == (180, 320, 3)
    assert image.dtype == np.uint8
    assert image.std() > 1, "the scene, not a blank picture"
    assert (m.width, m.height, m.codec) == (320, 180, "h264")
    assert m.frames >= 15
    assert m.fps is not None
    assert m.fps > 0  # a rate was measured; how high is bench.render_stream's to say, not a test's
    assert m.first_frame_seconds is not None
    assert m.first_frame_seconds < 10
    # Every decoded frame found its frame message, whatever the server's pts origin.
    assert m.matched_frames >= m.frames - 3
    assert m.latency_ms is not None
    assert 0 < m.latency_ms["p50"] < 2000
    assert m.poses == 6
    assert m.input_latency_ms is not None
    assert 0 < m.input_latency_ms["p50"] < 2000
    assert m.rtt_ms is not None
    assert m.video_bytes > 0


async def test_one_client_at_a_time(live: LiveServer) -> None:
    async with await connect("127.0.0.1", live.port, live.token()) as first:
        await first.wait_frames(1)
        with pytest.raises(RenderConnectError) as refused:
            await connect("127.0.0.1", live.port, live.token())
        assert (refused.value.status, refused.value.code) == (409, "ClientAlreadyConnected")
    with pytest.raises(RenderConnectError) as bad:
        await connect("127.0.0.1", live.port, "not-a-jwt")
    assert (bad.value.status, bad.value.code) == (401, "Unauthorized")
