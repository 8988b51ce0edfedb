"""Stereo mode end to end: a real render server, the Python client over WebRTC, H.264 in between.

The scene and the geometry are test_xr_geometry.py's (a plate 1.99 m ahead, a sphere of 0.5 m beyond it),
here at 320 x 320 pixels an eye, so the focal length is 160 px and the plate's disparity 5.15 px. What the
codec adds is bounded here: the disparity within a pixel, and the sphere's surface reconstructed from the
streamed depth with a median error under 1 cm and 95 % of its pixels within 3 cm (the codec moves depth
levels by a few steps, each about 5 mm at that distance).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio

from openrr.client.connection import RenderConnection, connect
from openrr.client.errors import RenderRequestError
from openrr.client.signalling import VideoSettings
from openrr.client.stereo import StereoFrame, head_views, symmetric_projection
from tests.render.live import LiveServer, live_server
from tests.render.test_xr_geometry import IPD, PLATE_Z, SPHERE_CENTRE, SPHERE_RADIUS, scene_file

pytestmark = pytest.mark.asyncio(loop_scope="module")

EYE = 320
IDENTITY = (0.0, 0.0, 0.0, 1.0)
PROJECTION = symmetric_projection(90)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    models = tmp_path_factory.mktemp("xr-live") / "models"
    models.mkdir()
    shutil.copy(scene_file(models.parent), models / "scene.glb")
    async with live_server(models) as live:
        yield live


def connection(server: LiveServer) -> RenderConnection:
    # 10 fps: a 100 ms frame budget, so the eyes keep their full resolution on a busy test machine.
    video = VideoSettings(fps=10, bitrate=6_000_000)
    return RenderConnection("127.0.0.1", server.port, server.token(), video=video, timeout=30)


def pose(
    time_ms: float, position: tuple[float, float, float] = (0, 0, 0), **extra: object
) -> dict[str, object]:
    return {"time": time_ms, **head_views(position, IDENTITY, ipd=IPD, left_projection=PROJECTION), **extra}


def plate_centre(frame: StereoFrame, eye: int) -> tuple[float, float]:
    distance = frame.distance(eye)
    ys, xs = np.nonzero(np.isfinite(distance) & (distance < 2.2))
    assert len(xs) > 500
    return float(xs.mean()), float(ys.mean())


async def test_stereo_frames_carry_disparity_depth_and_their_pose_through_the_codec(
    server: LiveServer,
) -> None:
    async with connection(server) as conn:
        await conn.load_model("scene.glb", "scene")
        started = await conn.start_xr(EYE, EYE)
        assert started["frame"] == {"width": 2 * EYE, "height": 2 * EYE}
        assert started["eyes"][1] == {
            "eye": "right",
            "color": [EYE, 0, EYE, EYE],
            "depth": [EYE, EYE, EYE, EYE],
        }
        pose_id = conn.send_xr_pose(pose(1000.0))
        frame = await conn.xr_frame(pose_id)
        assert frame.image.shape == (2 * EYE, 2 * EYE, 3)
        assert frame.pose_id == pose_id

        scale = frame.xr["scale"]
        focal = frame.xr["size"][0] / 2  # tan(45 degrees) = 1
        (left_x, left_y), (right_x, right_y) = plate_centre(frame, 0), plate_centre(frame, 1)
        assert left_x - right_x == pytest.approx(focal * IPD / (-PLATE_Z - 0.01), abs=1.0)
        assert left_y == pytest.approx(right_y, abs=0.5)

        for eye in (0, 1):
            positions = frame.positions(eye)
            on_sphere = np.linalg.norm(positions - SPHERE_CENTRE, axis=-1)
            sphere = np.isfinite(on_sphere) & (on_sphere < SPHERE_RADIUS * 1.3)
            assert sphere.sum() > 1_000 * scale**2
            error = np.abs(on_sphere[sphere] - SPHERE_RADIUS)
            print(
                eye,
                scale,
                sphere.sum(),
                np.median(error),
                np.percentile(error, 95),
                left_x - right_x,
            )
            assert np.median(error) < 0.01
            assert np.percentile(error, 95) < 0.03

        await conn.end_xr()
        await conn.wait_frames(conn.frames_received + 3)
        latest = conn.latest
        assert latest is not None
        assert (latest.width, latest.height) == (320, 180)  # the 2D view again, at its own size
        meta = conn.log.meta_for(latest.pts)
        assert meta is not None
        assert "xr" not in meta


async def test_frames_are_rendered_for_the_predicted_pose(server: LiveServer) -> None:
    async with connection(server) as conn:
        await conn.start_xr(EYE, EYE, depth=False)
        speed = 0.001  # 1 m/s to the right, in metres per millisecond
        pose_id = 0
        for step in range(6):
            t = 2000.0 + 11.0 * step
            pose_id = conn.send_xr_pose(pose(t, (speed * t, 0.0, 0.0), predictMs=80.0))
        frame = await conn.xr_frame(pose_id)
        assert frame.xr["time"] == pytest.approx(2055.0 + 80.0)
        left = frame.xr["views"][0]["position"]
        # Where the left eye will be 80 ms after the newest pose, not where it was.
        assert left[0] == pytest.approx(speed * (2055.0 + 80.0) - IPD / 2, abs=1e-4)


async def test_a_pose_needs_the_stereo_mode_and_bad_input_keeps_the_session(server: LiveServer) -> None:
    async with await connect("127.0.0.1", server.port, server.token()) as conn:
        with pytest.raises(RenderRequestError) as refused:
            await conn.request({"type": "xr.pose", "poseId": 1, **pose(1.0)})
        assert refused.value.code == "BadMessage"
        assert "xr.start" in str(refused.value)
        bad = pose(1.0)
        bad["views"][0]["projection"] = [1.0] * 16  # type: ignore[index]
        with pytest.raises(RenderRequestError, match="perspective"):
            await conn.request({"type": "xr.pose", "poseId": 2, **bad}, validate=False)
        await conn.wait_frames(conn.frames_received + 2)  # still streaming
