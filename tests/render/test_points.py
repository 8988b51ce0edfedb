"""Point clouds rendered as points: a generated cloud converted by the converter, loaded from its
.arrAsset and drawn by the renderer (checked by pixels: where, in which colour, how big), the point
budget, the entity states that apply to points, and a real render server streaming a cloud.

The cloud: two flat 1 x 1 squares of points on z = 0, red at x in [-1.5, -0.5] and green at
x in [0.5, 1.5], a grid of 10 x 10 points each (about 3 pixels apart), seen from z = 4 down -Z.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from numpy.typing import NDArray

from openrr.assets.convert import convert_model
from openrr.client.connection import RenderConnection, connect
from openrr.client.errors import RenderRequestError
from openrr.client.scene_types import PointCloudSettings
from openrr.model.components import CutPlane
from openrr.model.loader import load_model
from openrr.model.scene import Scene
from openrr.render.camera import Camera
from openrr.render.moving_detail import MovingDetail
from openrr.render.renderer import Background, Renderer
from tests.render.live import LiveServer, live_server

W, H = 160, 120
EYE_Z = 4.0
BACKGROUND = (0.0, 0.0, 0.0)
Frame = NDArray[np.uint8]


def cloud_ply(directory: Path) -> Path:
    """``squares.ply``: the two squares of points (binary PLY, as numpy writes it)."""
    grid = np.linspace(0.0, 1.0, 10)
    x, y = (a.ravel() for a in np.meshgrid(grid, grid - 0.5))
    red = np.stack([x - 1.5, y, np.zeros_like(x)], axis=1)
    green = np.stack([x + 0.5, y, np.zeros_like(x)], axis=1)
    vertex = np.dtype(
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    )
    rows = np.zeros(2 * len(x), dtype=vertex)
    for axis, name in enumerate("xyz"):
        rows[name] = np.concatenate([red[:, axis], green[:, axis]])
    rows["red"][: len(x)] = 255
    rows["green"][len(x) :] = 255
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(rows)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    path = directory / "squares.ply"
    path.write_bytes(header.encode() + rows.tobytes())
    return path


def converted(directory: Path) -> Path:
    result = convert_model(cloud_ply(directory), directory / "out", "squares")
    assert result.info["outputStatistics"]["numPoints"] == 2 * 100
    return Path(result.asset_path)


def pixel(x: float, y: float) -> tuple[int, int]:
    """The (row, column) of world point (x, y, 0) seen from z = EYE_Z with a 60° field of view."""
    focal = H / 2 / math.tan(math.radians(30.0))
    return round(H / 2 - focal * y / EYE_Z), round(W / 2 + focal * x / EYE_Z)


@pytest.fixture(scope="module")
def asset_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted(tmp_path_factory.mktemp("points"))


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer(W, H) as r:
        r.background = Background(BACKGROUND, None)
        yield r


@pytest.fixture
def scene(asset_path: Path, renderer: Renderer) -> Scene:
    scene = load_model(str(asset_path))
    renderer.set_scene(scene)
    return scene


CAMERA = Camera.look_at((0.0, 0.0, EYE_Z), (0.0, 0.0, 0.0))


def lit(frame: Frame) -> NDArray[np.bool_]:
    return np.asarray(frame.max(axis=2) > 40)


def test_points_appear_where_they_are_in_their_colours(scene: Scene, renderer: Renderer) -> None:
    frame = renderer.render(CAMERA)
    assert scene.node("squares").points is not None
    assert renderer.stats.points == 200  # close enough to want every point; well within the budget
    assert renderer.stats.triangles == 0
    red, green = frame[pixel(-1.0, 0.0)], frame[pixel(1.0, 0.0)]
    assert red.tolist() == [255, 0, 0]
    assert green.tolist() == [0, 255, 0]
    assert not lit(frame)[pixel(0.0, 0.0)]  # between the squares
    assert not lit(frame)[pixel(-1.0, 0.8)]  # above them
    # The squares fill their projected areas: points of one spacing (times 1.25) leave no holes.
    top, left = pixel(-1.45, 0.45)
    bottom, right = pixel(-0.55, -0.45)
    assert lit(frame)[top:bottom, left:right].mean() > 0.97


def test_a_bigger_point_size_covers_more_pixels(scene: Scene, renderer: Renderer) -> None:
    scene.point_cloud.size_scale = 0.25  # points a quarter of their spacing: the grid shows
    scene.changed()
    small = lit(renderer.render(CAMERA)).sum()
    scene.point_cloud.size_scale = 1.0
    scene.changed()
    normal = lit(renderer.render(CAMERA)).sum()
    scene.point_cloud.size_scale = 3.0
    scene.changed()
    frame = renderer.render(CAMERA)
    big = lit(frame).sum()
    assert small < 0.5 * normal
    assert normal < big
    assert lit(frame)[pixel(-1.55, 0.0)]  # past the square's edge: the edge points grew over it


def test_the_budget_thins_the_cloud_evenly(scene: Scene, renderer: Renderer) -> None:
    scene.point_cloud.budget = 40
    scene.changed()
    frame = renderer.render(CAMERA)
    assert renderer.stats.points == 40
    # The forty points spread over both squares, and grow to cover them.
    for x in (-1.3, -0.7, 0.7, 1.3):
        for y in (-0.3, 0.3):
            row, col = pixel(x, y)
            assert lit(frame)[row - 4 : row + 5, col - 4 : col + 5].any(), (x, y)


def test_a_moving_camera_draws_fewer_points_and_the_still_frame_the_whole_budget(
    scene: Scene, renderer: Renderer
) -> None:
    """Under a frame budget no frame keeps, moving frames draw the coarsest step's share of the point
    budget; the still frame after them draws the whole budget again."""
    scene.point_cloud.budget = 160  # the view wants all 200 points: the budget decides
    scene.changed()
    detail = MovingDetail(lambda: None, budget_ms=0.001)
    try:
        drawn = []
        for _ in range(3):
            detail.render(renderer, CAMERA, moving=True)
            drawn.append(renderer.stats.points)
        assert renderer.stats.step_points == (160, 80, 40, 20, 10, 3)
        assert drawn == [160, 3, 3]  # the first frame knows no cost yet: full detail
        detail.render(renderer, CAMERA, moving=False)
        assert renderer.stats.points == 160
    finally:
        renderer.detail = 1.0  # the renderer is shared by this module's tests


def test_hidden_overridden_tinted_and_cut_points(scene: Scene, renderer: Renderer) -> None:
    node = scene.node("squares")
    node.color = (0.0, 0.0, 1.0, 1.0)
    frame = renderer.render(CAMERA)
    assert frame[pixel(-1.0, 0.0)][2] > 200
    assert frame[pixel(-1.0, 0.0)][0] < 40
    node.color = None
    scene.set_component(node.id, "CutPlane", CutPlane(normal="X"))  # cuts away x > 0: the green square
    frame = renderer.render(CAMERA)
    assert frame[pixel(-1.0, 0.0)][0] > 200
    assert not lit(frame)[pixel(1.0, 0.0)]
    scene.remove_component(node.id, "CutPlane")
    node.visible = False
    frame = renderer.render(CAMERA)
    assert not lit(frame).any()
    assert renderer.stats.points == 0


# -- a real render server --------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    root = tmp_path_factory.mktemp("served")
    asset = converted(root)
    target = root / asset.name
    target.write_bytes(asset.read_bytes())
    async with live_server(root, models=(asset.name,)) as live:
        yield live


async def frames_after(conn: RenderConnection) -> Frame:
    await conn.wait_frames(conn.frames_received + 6, timeout=30)
    image = conn.latest_image()
    assert image is not None
    return image


@pytest.mark.asyncio(loop_scope="module")
async def test_a_render_server_streams_a_point_cloud(server: LiveServer) -> None:
    async with await connect("127.0.0.1", server.port, server.token()) as conn:
        await conn.request(
            {"type": "camera.set", "position": [0, 0, EYE_Z], "orientation": [0, 0, 0, 1], "fov": 60}
        )
        image = await frames_after(conn)
        scale = image.shape[0] / H  # the video is 320 x 180: the same field of view, more pixels
        focal = image.shape[0] / 2 / math.tan(math.radians(30.0))

        def at(x: float) -> NDArray[np.float64]:
            row, col = round(image.shape[0] / 2), round(image.shape[1] / 2 + focal * x / EYE_Z)
            return np.asarray(image[row - 2 : row + 3, col - 2 : col + 3].reshape(-1, 3).mean(axis=0))

        assert scale > 1
        red, green = at(-1.0), at(1.0)
        assert red[0] > max(red[1], red[2]) + 80  # H.264: dominant channels, not exact values
        assert green[1] > max(green[0], green[2]) + 80
        answer = await conn.request({"v": 2, "type": "pointCloud.set", "pointSizeScale": 2.5}, timeout=20)
        assert answer["type"] == "pointCloud"
        assert answer["pointSizeScale"] == 2.5
        settings = await conn.scene.set_point_cloud(point_budget=5000)
        assert settings == PointCloudSettings(2.5, 5000)
        with pytest.raises(RenderRequestError) as refused:
            await conn.request(
                {"v": 2, "type": "pointCloud.set", "pointSizeScale": 0}, validate=False, timeout=20
            )
        assert refused.value.code == "BadMessage"
        stats = await conn.request({"type": "stats.get"}, timeout=20)
        assert stats["points"] == 200
        assert stats["pointsDrawn"] == 200
        assert stats["polygons"] == 0
        await asyncio.sleep(0)  # the connection closes cleanly after the last answer
