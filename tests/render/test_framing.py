"""A newly loaded model is framed as model viewers frame it: from above and to the side, its bounding
sphere filling the view, so a cube shows its top, front and side with three distinct shades."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import trimesh

from openrr.model.sources import ModelSourcePolicy
from openrr.render.camera import VIEW_AZIMUTH, VIEW_ELEVATION, Camera
from openrr.render.pipeline import RenderPipeline

W, H = 320, 240


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[RenderPipeline]:
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    cube.visual = trimesh.visual.TextureVisuals(
        material=trimesh.visual.material.PBRMaterial(
            baseColorFactor=[230, 230, 230, 255], metallicFactor=0.0, roughnessFactor=0.9
        )
    )
    cube.export(tmp_path / "cube.glb")
    p = RenderPipeline(W, H, policy=ModelSourcePolicy(roots=(tmp_path,)))
    await p.start()
    yield p
    await p.close()


def pixel(camera: Camera, point: tuple[float, float, float], bounds: np.ndarray) -> tuple[int, int]:
    near, far = camera.clip_planes(bounds)
    clip = camera.projection_matrix(W / H, near, far) @ camera.view_matrix() @ np.append(point, 1.0)
    x, y = clip[:2] / clip[3]
    return int((1 - y) / 2 * H), int((x + 1) / 2 * W)


def test_frame_from_above_looks_down_from_the_front_right() -> None:
    camera = Camera()
    bounds = np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    camera.frame_from_above(bounds, W / H)
    towards_eye = camera.position / np.linalg.norm(camera.position)
    assert math.degrees(math.asin(towards_eye[1])) == pytest.approx(VIEW_ELEVATION)
    assert math.degrees(math.atan2(towards_eye[0], towards_eye[2])) == pytest.approx(VIEW_AZIMUTH)
    np.testing.assert_allclose(camera.target, 0.0, atol=1e-12)
    # The bounding sphere touches the view's top and bottom (5 % margin): radius / sin(half the fov).
    radius = math.sqrt(3.0)
    assert camera.distance == pytest.approx(radius / math.sin(math.radians(camera.fov / 2)) * 1.05)
    camera.frame_from_above(None)  # nothing to frame: the camera stays
    assert camera.distance == pytest.approx(radius / math.sin(math.radians(camera.fov / 2)) * 1.05)


async def test_a_loaded_cube_shows_three_faces(pipeline: RenderPipeline) -> None:
    background = (await pipeline.latest_frame()).image[H // 2, W // 2].astype(int)
    await pipeline.load("cube.glb", "cube")
    await pipeline.latest_frame()  # a render in flight when the load framed the model may predate it
    image = (await pipeline.latest_frame()).image.astype(int)
    camera = pipeline.camera
    bounds = pipeline.scene.bounds()
    assert bounds is not None
    faces = {"top": (0.0, 0.5, 0.0), "front": (0.0, 0.0, 0.5), "side": (0.5, 0.0, 0.0)}
    shades = {}
    for name, centre in faces.items():
        row, column = pixel(camera, centre, bounds)
        patch = image[row - 2 : row + 3, column - 2 : column + 3].reshape(-1, 3)
        assert np.ptp(patch, axis=0).max() <= 6, name  # inside one flat face
        shades[name] = patch.mean(axis=0)
        assert np.abs(shades[name] - background).max() > 20, name  # the cube, not the sky
    names = list(shades)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(shades[a] - shades[b]).max() > 8, (a, b, shades)
    # The back faces are hidden: the bottom's centre is behind the front and side.
    covered = np.abs(image - background).max(axis=2) > 20
    rows, columns = np.nonzero(covered)
    assert covered.mean() > 0.15  # framed: the cube fills a good part of the view
    assert abs(np.median(columns) - W / 2) < W * 0.1
    assert abs(np.median(rows) - H / 2) < H * 0.15
