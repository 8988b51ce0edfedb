"""The render pipeline without WebRTC: frames, render-ahead, camera, models, nodes, picking and reset."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from openrr.model.sources import ModelSourcePolicy
from openrr.render import render_ahead as render_ahead_module
from openrr.render.pipeline import RenderPipeline
from openrr.render.session_models import ModelError
from tests.render import fixtures

W, H = 320, 180


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[RenderPipeline]:
    fixtures.two_node_glb(tmp_path)
    p = RenderPipeline(W, H, policy=ModelSourcePolicy(roots=(tmp_path,)))
    await p.start()
    yield p
    await p.close()


def red(image: np.ndarray) -> int:
    return int(((image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)).sum())


def blue(image: np.ndarray) -> int:
    return int(((image[..., 2] > 150) & (image[..., 0] < 80) & (image[..., 1] < 80)).sum())


def on_screen(pipeline: RenderPipeline, name: str) -> tuple[float, float]:
    """Where the centre of node ``name``'s bounds is on screen, as pick coordinates."""
    bounds = pipeline.scene.world_bounds(pipeline.scene.node(name).id)
    assert bounds is not None
    camera = pipeline.camera
    near, far = camera.clip_planes(pipeline.scene.bounds())
    clip = (
        camera.projection_matrix(W / H, near, far)
        @ camera.view_matrix()
        @ np.append(bounds.mean(axis=0), 1.0)
    )
    x, y = clip[:2] / clip[3]
    return (x + 1) / 2, (1 - y) / 2


def red_centre(image: np.ndarray) -> tuple[float, float]:
    """Where the red box is on screen, as pick coordinates (0..1 from the top left): the model is framed
    from above and to the side, so it is found, not assumed."""
    rows, columns = np.nonzero((image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80))
    assert len(rows) > 0
    return (float(np.median(columns)) + 0.5) / W, (float(np.median(rows)) + 0.5) / H


async def test_empty_scene_renders_background(pipeline: RenderPipeline) -> None:
    frame = await pipeline.latest_frame()
    assert frame.image.shape == (H, W, 3)
    assert red(frame.image) == 0
    assert blue(frame.image) == 0


async def test_load_frames_the_model_and_shows_it(pipeline: RenderPipeline) -> None:
    progress: list[float] = []
    loaded = await pipeline.load("two_nodes.glb", "m", lambda f, _m: progress.append(f))
    assert (loaded.nodes, loaded.polygons) == (3, 1292)
    frame = await pipeline.latest_frame()
    assert red(frame.image) > 500
    assert blue(frame.image) > 500
    # Red box on the left half, blue sphere on the right half.
    assert red(frame.image[:, : W // 2]) == red(frame.image)
    assert blue(frame.image[:, W // 2 :]) == blue(frame.image)
    await pipeline.load("two_nodes.glb", "m2")  # same file, another id: allowed
    with pytest.raises(ModelError) as err:
        await pipeline.load("two_nodes.glb", "m")
    assert err.value.code == "ModelAlreadyLoaded"


async def test_unchanged_state_is_not_rendered_again_and_a_camera_move_is(pipeline: RenderPipeline) -> None:
    await pipeline.load("two_nodes.glb")
    first = await pipeline.latest_frame()
    again = await pipeline.latest_frame()
    assert again.frame_id == first.frame_id  # nothing changed: the same frame is sent again
    pipeline.camera.orbit(180, 0)
    pipeline.camera_changed(pose_id=42)
    moved = await pipeline.latest_frame()
    assert moved.frame_id > first.frame_id
    assert moved.pose_id == 42
    # Seen from behind, the box is on the right.
    assert red(moved.image[:, W // 2 :]) == red(moved.image) > 0
    info = pipeline.frame_info(moved.frame_id)
    assert info is not None
    assert info.pose_id == 42
    assert info.image.size == 0


async def test_render_ahead_starts_the_next_frame_when_the_pose_changed_meanwhile(
    pipeline: RenderPipeline,
) -> None:
    await pipeline.load("two_nodes.glb")
    await pipeline.latest_frame()
    pipeline.camera.orbit(10, 0)
    pipeline.camera_changed(1)
    pending = pipeline.latest_frame()
    pipeline.camera.orbit(10, 0)  # arrives while frame for pose 1 renders
    pipeline.camera_changed(2)
    frame = await pending
    assert frame.pose_id in (1, 2)
    newer = await pipeline.latest_frame()  # the render started ahead carries pose 2
    assert newer.pose_id == 2


async def test_bad_sources_and_files_raise_model_errors(pipeline: RenderPipeline, tmp_path: Path) -> None:
    broken = fixtures.broken_glb(tmp_path)
    with pytest.raises(ModelError) as err:
        await pipeline.load("/etc/passwd")
    assert err.value.code == "ModelSourceRefused"
    with pytest.raises(ModelError) as err:
        await pipeline.load(str(broken))
    assert err.value.code == "ModelLoadFailed"
    with pytest.raises(ModelError) as err:
        await pipeline.load("missing.glb")
    assert err.value.code == "ModelLoadFailed"
    with pytest.raises(ModelError) as err:
        await pipeline.unload("nothing")
    assert err.value.code == "ModelNotFound"
    assert pipeline.models == {}
    assert (await pipeline.latest_frame()).image.shape == (H, W, 3)  # still rendering


async def test_no_pick_past_the_polygon_limit(tmp_path: Path) -> None:
    """The picture is a checkerboard past the limit: nothing of the scene is on screen to pick."""
    fixtures.two_node_glb(tmp_path)
    pipeline = RenderPipeline(W, H, policy=ModelSourcePolicy(roots=(tmp_path,)), polygon_limit=1000)
    await pipeline.start()
    try:
        await pipeline.load("two_nodes.glb", "m")  # 1,292 triangles
        x, y = on_screen(pipeline, "RedBox")  # the frame is a checkerboard: the box is found by projection
        assert await pipeline.pick(x, y) is None
        pipeline.polygon_limit = 2000
        hit = await pipeline.pick(x, y)
        assert hit is not None
        assert hit["node"]["name"] == "RedBox"
    finally:
        await pipeline.close()


async def test_node_edits_pick_and_unload(pipeline: RenderPipeline) -> None:
    await pipeline.load("two_nodes.glb", "m")
    x, y = red_centre((await pipeline.latest_frame()).image)
    hit = await pipeline.pick(x, y)
    assert hit is not None
    assert hit["node"]["name"] == "RedBox"
    assert await pipeline.pick(0.5, 0.02) is None
    node = await pipeline.set_node("RedBox", transform=None, visible=False, color=None, clear_color=False)
    assert node["visible"] is False
    assert red((await pipeline.latest_frame()).image) == 0
    assert await pipeline.pick(x, y) is None  # hidden: the ray goes through
    await pipeline.set_node("BlueSphere", transform=None, visible=None, color=(1, 0, 0, 1), clear_color=False)
    frame = await pipeline.latest_frame()
    assert blue(frame.image) == 0
    assert red(frame.image[:, W // 2 :]) > 500
    with pytest.raises(ModelError) as err:
        await pipeline.set_node("Nope", transform=None, visible=True, color=None, clear_color=False)
    assert err.value.code == "NodeNotFound"
    await pipeline.unload("m")
    frame = await pipeline.latest_frame()
    assert red(frame.image) == 0
    assert blue(frame.image) == 0


async def test_reset_keeps_preloaded_models_untouched_and_drops_the_rest(pipeline: RenderPipeline) -> None:
    await pipeline.load("two_nodes.glb", "pre", preload=True)
    await pipeline.load("two_nodes.glb", "client")
    await pipeline.set_node("RedBox", transform=None, visible=False, color=None, clear_color=False)
    pipeline.camera.orbit(90, 0)
    pipeline.camera_changed(5)
    await pipeline.unload("pre")  # even a preloaded model the client unloaded comes back
    await pipeline.reset()
    assert list(pipeline.models) == ["pre"]
    assert pipeline.stats()["polygons"] == 1292
    assert pipeline.pose_id is None
    nodes = await pipeline.describe_nodes()
    assert [n["name"] for n in nodes] == ["Scene", "BlueSphere", "RedBox"]
    assert all(n["visible"] for n in nodes)
    frame = await pipeline.latest_frame()
    assert red(frame.image[:, : W // 2]) > 500


async def test_polygon_limit_shows_the_checkerboard_and_says_why(tmp_path: Path) -> None:
    fixtures.two_node_glb(tmp_path)
    p = RenderPipeline(W, H, policy=ModelSourcePolicy(roots=(tmp_path,)), polygon_limit=1000)
    await p.start()
    try:
        await p.load("two_nodes.glb")
        frame = await p.latest_frame()
        stats = p.stats()
        assert stats["limitExceeded"] is True
        assert "1000" in stats["limitMessage"].replace(",", "")
        assert red(frame.image) == 0
        assert blue(frame.image) == 0
    finally:
        await p.close()


async def test_resize_changes_the_frame_size(pipeline: RenderPipeline) -> None:
    await pipeline.resize(640, 360)
    assert (await pipeline.latest_frame()).image.shape == (360, 640, 3)


async def test_an_unchanged_picture_slows_down_until_something_changes(
    pipeline: RenderPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render_ahead_module, "SETTLE_S", 0.0)
    monkeypatch.setattr(render_ahead_module, "IDLE_FRAME_INTERVAL_S", 0.4)
    await pipeline.load("two_nodes.glb")
    _, first = await pipeline.next_frame()
    started = time.monotonic()
    _, again = await pipeline.next_frame()  # nothing changed: waits the idle interval
    assert again == first
    assert time.monotonic() - started >= 0.35

    monkeypatch.setattr(render_ahead_module, "IDLE_FRAME_INTERVAL_S", 30.0)

    async def move() -> None:
        await asyncio.sleep(0.1)
        pipeline.camera.orbit(20, 0)
        pipeline.camera_changed(9)

    mover = asyncio.create_task(move())
    started = time.monotonic()
    _, moved = await pipeline.next_frame()  # woken by the change, long before the interval
    await mover
    assert moved != first
    assert time.monotonic() - started < 5


async def test_with_a_frame_interval_the_next_render_starts_just_in_time(pipeline: RenderPipeline) -> None:
    await pipeline.load("two_nodes.glb")
    pipeline.frame_interval = 0.5  # far longer than a render of this scene takes
    await pipeline.next_frame()
    pipeline.camera.orbit(10, 0)
    pipeline.camera_changed(1)
    # The render is scheduled for later (just before the next slot), not started at once...
    assert pipeline.frames.ahead is not None
    assert pipeline.frames.inflight is None or pipeline.frames.inflight.done()
    await asyncio.sleep(0.6)
    # ...and then it ran, from the pose current at that time.
    frame = await pipeline.latest_frame()
    assert frame.pose_id == 1
    assert pipeline.frames.ahead is None


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Answers with a body that never ends: a byte every 50 ms, no Content-Length."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(2000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the client hung up: what the test wants

    def log_message(self, *args: object) -> None:
        pass


async def test_a_trickling_download_stops_when_the_scene_is_reset(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fixtures.two_node_glb(tmp_path)
    policy = ModelSourcePolicy(roots=(tmp_path,), allow_private_urls=True)
    p = RenderPipeline(W, H, policy=policy)
    await p.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/slow.glb"
        loading = asyncio.create_task(p.load(url))
        await asyncio.sleep(0.3)
        await p.reset()  # the client left
        started = time.monotonic()
        with pytest.raises(ModelError) as err:
            await loading
        assert "cancelled" in err.value.message
        assert time.monotonic() - started < 5
        loaded = await p.load("two_nodes.glb")  # the load thread is free again
        assert loaded.polygons == 1292
    finally:
        await p.close()
        server.shutdown()
        server.server_close()
