"""Bounded resources of a session's models: per-model and per-session texture budgets, a model count and a
geometry budget per session, all reported as model load errors while the session keeps streaming; and a
render server past its memory ceiling ends its session in Error, OutOfMemory. (The loader's own
allowance, a texture bomb refused from its header: ``tests/model/test_budget.py``.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from openrr.client.connection import connect
from openrr.client.errors import RenderRequestError
from openrr.protocol.handshake import RenderLimits, RenderSpec
from openrr.render.server import RenderServer
from tests.render import fixtures
from tests.render.control_plane import ACCOUNT, CallbackReceiver, Keys, template
from tests.render.live import live_server
from tests.render.processes import RenderProcesses

MI = 1 << 20


async def test_budgets_refuse_models_and_the_session_streams_on(tmp_path: Path) -> None:
    fixtures.texture_bomb_gltf(tmp_path)  # also writes quad.gltf (16x16 texture)
    fixtures.two_node_glb(tmp_path)
    limits = RenderLimits(texture_pixels_per_model=300, texture_pixels_per_session=500, models_per_session=3)
    async with (
        live_server(tmp_path, limits=limits) as server,
        await connect("127.0.0.1", server.port, server.token()) as conn,
    ):
        await conn.wait_frames(2, timeout=10)

        async def refused(url: str, model_id: str) -> str:
            with pytest.raises(RenderRequestError) as err:
                await conn.load_model(url, model_id)
            assert err.value.code == "ModelLoadFailed"
            await conn.wait_frames(conn.frames_received + 3, timeout=10)  # still streaming
            return err.value.message

        message = await refused("bomb.gltf", "bomb")
        assert "20000x20000" in message
        assert "the 300 px a model may have in this session's size" in message
        await conn.load_model("quad.gltf", "a")  # 256 px of the session's 500
        message = await refused("quad.gltf", "b")
        assert "the 244 px left of the 500 px of textures this session's size allows" in message
        await conn.load_model("two_nodes.glb", "c")
        await conn.load_model("two_nodes.glb", "d")
        message = await refused("two_nodes.glb", "e")
        assert "already has 3 models loaded or loading" in message
        await conn.unload_model("a")  # gives back its model slot and its texture pixels
        await conn.load_model("quad.gltf", "b")
        assert set(server.server.pipeline.models) == {"b", "c", "d"}


async def test_a_session_geometry_budget(tmp_path: Path) -> None:
    fixtures.two_node_glb(tmp_path)
    async with (
        live_server(tmp_path, limits=RenderLimits(scene_bytes=60_000)) as server,
        await connect("127.0.0.1", server.port, server.token()) as conn,
    ):
        await conn.load_model("two_nodes.glb", "first")  # about 40 kB
        with pytest.raises(RenderRequestError, match="of scene geometry this session's size allows") as err:
            await conn.load_model("two_nodes.glb", "second")
        assert err.value.code == "ModelLoadFailed"
        await conn.wait_frames(conn.frames_received + 3, timeout=10)


async def test_a_preloaded_bomb_fails_the_start(tmp_path: Path) -> None:
    fixtures.texture_bomb_gltf(tmp_path)
    base = template(tmp_path)
    spec = RenderSpec(
        **{
            **base.__dict__,
            "account_id": ACCOUNT,  # a session's local models are read from its account's folder
            "session_id": "s",
            "instance": "i",
            "models": ("bomb.gltf",),
            "limits": RenderLimits(texture_pixels_per_model=MI),
        }
    )
    server = RenderServer(spec)
    try:
        failure = await server.prepare()
    finally:
        await server.shutdown()
    assert failure is not None
    assert failure.code == "ModelLoadFailed"
    assert "20000x20000" in failure.message


async def test_past_its_memory_ceiling_a_render_server_ends_its_session(
    render: RenderProcesses,
    receiver: CallbackReceiver,
    tmp_path: Path,
) -> None:
    """A real render server with a 1 GiB ceiling and no texture budget: decoding the bomb needs 1.6 GB."""
    fixtures.texture_bomb_gltf(tmp_path)
    fixtures.two_node_glb(tmp_path)
    keys = Keys()
    base = template(tmp_path)
    base = RenderSpec(**{**base.__dict__, "limits": RenderLimits(memory_bytes=1 << 30)})
    spec = receiver.session(base, keys, "oom")
    server = await render.start(spec, pooled=False)
    (ready,) = await receiver.wait("oom", "ready")
    async with await connect("127.0.0.1", ready.body["handshakePort"], keys.token("oom")) as conn:
        await conn.wait_frames(2, timeout=20)
        await conn.load_model("two_nodes.glb")  # a model within the ceiling loads as always
        with pytest.raises(RenderRequestError) as err:
            await conn.load_model("bomb.gltf")
        assert err.value.code == "OutOfMemory"
    (failed,) = await receiver.wait("oom", "failed")
    assert failed.body["code"] == "OutOfMemory"
    assert "memory ceiling of 1024 MiB" in failed.body["message"]
    assert await server.exit_code() == 0
    assert not receiver.of("oom", "idle")
