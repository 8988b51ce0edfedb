"""A session streams its model: real control plane, real render server, a WebRTC client on loopback.

The picture the client receives is compared with an offline render of the same scene, by the same
renderer, from the camera the server reports; so is the picture after a camera command.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from openrr.client.connection import RenderConnection
from openrr.client.errors import RenderConnectError, RenderRequestError
from openrr.client.rest import ArrClient
from openrr.client.session import connect_session
from openrr.model.loader import load_model
from openrr.render.camera import Camera
from openrr.render.renderer import Renderer, is_software
from tests.e2e.checks import wait_gone
from tests.e2e.server import OpenRRServer
from tests.render import fixtures

pytestmark = pytest.mark.e2e
W, H = 320, 180


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    fixtures.two_node_glb(root)
    fixtures.broken_glb(root)
    return root


@pytest.fixture
def streaming_server(openrr_factory: Callable[..., OpenRRServer], models: Path) -> OpenRRServer:
    root = models.parent / "model-root"
    root.mkdir()
    server = openrr_factory(model_root=str(root), video_width=W, video_height=H)
    # Sessions read their account's folder of the model root: the development account's holds the models.
    (root / server.account.id).symlink_to(models, target_is_directory=True)
    return server


@pytest.fixture
def arr(streaming_server: OpenRRServer) -> Iterator[ArrClient]:
    account = streaming_server.account
    with ArrClient(
        streaming_server.url, account.id, account.key, verify=str(streaming_server.cert)
    ) as client:
        yield client


def camera_of(camera_json: dict[str, Any]) -> Camera:
    return Camera(camera_json["position"], camera_json["orientation"], camera_json["fov"])


def view_position(camera_json: dict[str, Any], point: tuple[float, float, float]) -> tuple[float, float]:
    """Where a world point appears in the view, as fractions from the top left."""
    camera = camera_of(camera_json)
    clip = camera.projection_matrix(W / H, 0.1, 100) @ camera.view_matrix() @ np.array([*point, 1.0])
    ndc = clip[:3] / clip[3]
    return float((ndc[0] + 1) / 2), float((1 - ndc[1]) / 2)


def offline(models: Path, camera_json: dict[str, Any]) -> NDArray[np.uint8]:
    """The frame the server should be sending: same model, same renderer, same camera."""
    scene = load_model(models / "two_nodes.glb")
    camera = camera_of(camera_json)
    with Renderer(W, H) as renderer:
        renderer.fxaa = not is_software(renderer.gl_renderer)  # as the render server decides
        renderer.set_scene(scene)
        return renderer.render(camera)


async def connect_next(arr: ArrClient, session_id: str) -> RenderConnection:
    """Connect the client after one that just closed. The render server frees its one client slot when it
    sees the old peer connection close and has reset the scene; an offer may arrive before that (the
    close is a UDP packet, the offer an HTTP request), and is then refused with ClientAlreadyConnected.
    A real client retries such a refusal; so does this one, for a bounded time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        try:
            return await connect_session(arr, session_id, timeout=15)
        except RenderConnectError as exc:
            if exc.code != "ClientAlreadyConnected" or loop.time() > deadline:
                raise
        await asyncio.sleep(0.2)


def difference(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    """Mean absolute difference per channel, 0..255 (video coding noise at this size is a few units)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


async def fresh_image(conn: RenderConnection, after_pose: int) -> NDArray[np.uint8]:
    """The first frame decoded after the server rendered pose ``after_pose`` (plus a few for quality)."""
    await conn.wait_frames(conn.frames_received + 8, timeout=10)
    for _ in range(100):
        latest = conn.latest
        assert latest is not None
        meta = conn.log.meta(latest.pts)
        if meta is not None and (meta.get("poseId") or 0) >= after_pose:
            await conn.wait_frames(conn.frames_received + 5, timeout=10)  # past the first P-frames
            return conn.latest.image()  # type: ignore[union-attr]
        await conn.wait_frames(conn.frames_received + 1, timeout=10)
    raise AssertionError(f"no frame of pose {after_pose} arrived")


async def test_the_client_sees_the_model_steers_it_picks_and_is_alone(
    streaming_server: OpenRRServer, arr: ArrClient, models: Path, tmp_path: Path
) -> None:
    server = streaming_server
    session_id = server.create_v1(["two_nodes.glb"])
    with server.api() as api:
        api.wait_status(session_id, "Ready", timeout=30)

    conn = await connect_session(arr, session_id, timeout=15)
    try:
        hello = conn.hello
        assert hello is not None
        assert hello["video"]["width"] == W
        assert hello["video"]["codec"] == "h264"
        assert [m["nodes"] for m in hello["models"]] == [3]
        await conn.wait_frames(15, timeout=15)
        image = conn.latest.image()  # type: ignore[union-attr]
        assert image.shape == (H, W, 3)
        expected = offline(models, hello["camera"])
        assert difference(image, expected) < 6, "the streamed picture is not the model's render"
        blank = np.broadcast_to(expected[:1, :1], expected.shape)  # background colour only
        assert difference(image, blank) > 3 * difference(image, expected)

        # A camera command: the picture turns into the offline render of the new pose.
        ack = await conn.orbit(180)
        after = await fresh_image(conn, conn.poses[-1][0])
        turned = offline(models, ack["camera"])
        assert difference(after, turned) < 6
        assert difference(after, expected) > 2 * difference(after, turned)
        Image.fromarray(after).save(tmp_path / "after-orbit.png")

        # Seen from behind, the red box is on the right: pick it where it should be.
        x, y = view_position(ack["camera"], (fixtures.RED_X, 0.0, 0.0))
        assert x > 0.5
        hit = await conn.pick(x, y)
        assert hit["node"]["name"] == "RedBox", hit
        miss = await conn.pick(0.5, 0.02)
        assert miss["node"] is None

        # Bad messages and a broken model get errors on the channel; frames keep coming.
        with pytest.raises(RenderRequestError) as err:
            await conn.load_model("broken.glb")
        assert err.value.code == "ModelLoadFailed"
        with pytest.raises(RenderRequestError) as err:
            await conn.load_model("/etc/passwd")
        assert err.value.code == "ModelSourceRefused"
        before = conn.frames_received
        await conn.wait_frames(before + 10, timeout=10)

        # A second client is refused while this one is connected.
        with pytest.raises(RenderConnectError) as refused:
            await connect_session(arr, session_id, timeout=15)
        assert refused.value.code == "ClientAlreadyConnected"

        stats = await conn.stats()
        assert stats["polygons"] == 1292
        assert stats["fps"] > 0
        assert stats["codec"] == "h264"
    finally:
        await conn.close()

    # The next client starts from a clean slate: the preloaded model, the default camera.
    async with await connect_next(arr, session_id) as again:
        assert again.hello is not None
        assert again.hello["camera"] == hello["camera"]
        await again.wait_frames(10, timeout=15)

        # Stopping the session ends the stream and the process.
        render_proc = server.render_server(session_id)
        with server.api() as api:
            api.stop(session_id)
        for _ in range(300):
            if not again.connected and not render_proc.alive:
                break
            await asyncio.sleep(0.05)
        assert not again.connected, "the stream did not end"
        wait_gone(render_proc, timeout=15)
        assert again.bye_reason is not None
        assert "stopped" in again.bye_reason


async def test_a_preload_that_fails_puts_the_session_in_error(streaming_server: OpenRRServer) -> None:
    session_id = streaming_server.create_v1(["broken.glb"])
    with streaming_server.api() as api:
        body = api.wait_status(session_id, "Error", timeout=30)
    assert body["error"]["code"] == "ModelLoadFailed"
    assert "broken.glb" in body["error"]["message"]


def test_openrr_connect_reports_frames_and_saves_a_snapshot(
    streaming_server: OpenRRServer, tmp_path: Path
) -> None:
    session_id = f"cli-{uuid.uuid4()}"
    with streaming_server.api() as api:
        api.create(session_id)
        api.wait_status(session_id, "Ready", timeout=30)
    snapshot = tmp_path / "snap.png"
    done = streaming_server.cli(
        "connect",
        session_id,
        "--frames",
        "20",
        "--json",
        "--snapshot",
        str(snapshot),
        "--load",
        "two_nodes.glb",
        "--orbit",
        "60",
        "--config",
        str(streaming_server.config_path),
        "--ca-cert",
        str(streaming_server.cert),
    )
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(done.stdout)
    assert report["frames"] >= 20
    assert (report["width"], report["height"]) == (W, H)
    assert report["firstFrameSeconds"] > 0
    assert report["loaded"] == [{"modelId": "two_nodes.glb", "nodes": 3, "polygons": 1292}]
    assert report["inputLatencyMs"]["p50"] > 0
    assert report["latencyMs"]["p50"] > 0
    with Image.open(snapshot) as picture:
        assert picture.size == (W, H)

    missing = streaming_server.cli(
        "connect",
        "nope",
        "--frames",
        "1",
        "--config",
        str(streaming_server.config_path),
        "--ca-cert",
        str(streaming_server.cert),
    )
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
