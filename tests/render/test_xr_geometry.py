"""Stereo frames checked by geometry, as the render server draws them (no codec in between: the streamed
frames are checked in test_xr_live.py).

The scene: a thin plate 0.5 m square whose front face is 1.99 m straight ahead of the head, and a sphere of
radius 0.5 m further back to the right. The eyes are 64 mm apart, each with a 90-degree field of view on
960 x 960 pixels (a focal length of 480 px).

* Disparity: a point at distance D is seen ``f * ipd / D`` pixels further right by the left eye than by the
  right one (15.44 px for the plate), and on the same row.
* Depth: the positions reconstructed from each eye's depth lie on the sphere's surface within one depth
  level (about 5 mm at 2.5 m here), and the plate's at its 1.99 m.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from openrr.client.stereo import StereoFrame, head_views, symmetric_projection
from openrr.model.loader import load_model
from openrr.protocol.xr import XrPose, XrStart
from openrr.render.renderer import Renderer
from openrr.render.xr_mode import StereoScale, XrMode

EYE = 960
IPD = 0.064
PLATE_Z = -2.0  # its centre; the front face is 1 cm nearer
SPHERE_CENTRE = np.array([1.0, 0.2, -3.0])
SPHERE_RADIUS = 0.5
IDENTITY = (0.0, 0.0, 0.0, 1.0)


def scene_file(directory: Path) -> Path:
    plate = trimesh.creation.box(extents=(0.5, 0.5, 0.02))
    plate.apply_translation([0.0, 0.0, PLATE_Z])
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=SPHERE_RADIUS)
    sphere.apply_translation(SPHERE_CENTRE)
    path = directory / "plate-and-sphere.glb"
    trimesh.Scene({"plate": plate, "sphere": sphere}).export(path)
    return path


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    r = Renderer(64, 64)
    r.set_scene(load_model(scene_file(tmp_path_factory.mktemp("xr"))))
    return r


def stereo_frame(renderer: Renderer, *, pose_id: int = 1, step: int = 0, **start: object) -> StereoFrame:
    request = XrStart.model_validate({"type": "xr.start", "eye": {"width": EYE, "height": EYE}, **start})
    mode = XrMode(request, 1 / 30)
    mode.scale = StereoScale(budget_ms=1e9)  # full resolution however long this machine takes
    mode.scale.index = step
    body = {"type": "xr.pose", "poseId": pose_id, "time": 5000.0}
    body.update(head_views((0, 0, 0), IDENTITY, ipd=IPD, left_projection=symmetric_projection(90)))
    mode.pose(XrPose.model_validate(body))
    image, meta = mode.draw(renderer, mode.snapshot())
    assert meta is not None
    return StereoFrame(image, {"poseId": pose_id, "xr": meta}, mode.describe())


def plate_mask(frame: StereoFrame, eye: int) -> np.ndarray:
    distance = frame.distance(eye)
    return np.isfinite(distance) & (distance < 2.2)  # the plate; the sphere is beyond 2.5 m


def test_the_eyes_differ_by_the_disparity_of_their_distance(renderer: Renderer) -> None:
    frame = stereo_frame(renderer)
    assert frame.image.shape == (2 * EYE, 2 * EYE, 3)  # side by side, depth below
    centres = []
    for eye in (0, 1):
        ys, xs = np.nonzero(plate_mask(frame, eye))
        assert len(xs) > 10_000
        centres.append((xs.mean(), ys.mean()))
    focal = EYE / 2  # tan(45 degrees) = 1
    expected = focal * IPD / (-PLATE_Z - 0.01)
    assert centres[0][0] - centres[1][0] == pytest.approx(expected, abs=0.5)  # 15.44 px
    assert centres[0][1] == pytest.approx(centres[1][1], abs=0.01)  # no vertical disparity
    # The colour pictures agree with the depth: the plate is drawn where its depth is.
    for eye in (0, 1):
        colour = frame.eye(eye).astype(int)
        background = colour[5, EYE // 2]
        drawn = np.abs(colour - background).sum(axis=2) > 40
        mask = plate_mask(frame, eye)
        assert (drawn & mask).sum() > 0.98 * mask.sum()


def test_depth_reconstructs_the_surfaces_within_a_level(renderer: Renderer) -> None:
    frame = stereo_frame(renderer)
    near, far = frame.xr["near"], frame.xr["far"]
    for eye in (0, 1):
        positions = frame.positions(eye)
        on_sphere = np.linalg.norm(positions - SPHERE_CENTRE, axis=-1)
        sphere = np.isfinite(on_sphere) & (on_sphere < SPHERE_RADIUS * 1.3)
        assert sphere.sum() > 20_000
        error = np.abs(on_sphere[sphere] - SPHERE_RADIUS)
        level = 3.5**2 * (1 / near - 1 / far) / 223  # one depth level at the sphere's far side
        assert np.percentile(error, 95) < level
        plate = positions[plate_mask(frame, eye)]
        assert np.abs(plate[:, 2] - (PLATE_Z + 0.01)).max() < level
        assert np.abs(plate[:, :2]).max() < 0.25 + 0.01  # within the plate's own square


def test_a_frame_carries_the_pose_it_was_rendered_from(renderer: Renderer) -> None:
    frame = stereo_frame(renderer, pose_id=42)
    assert frame.pose_id == 42
    views = frame.xr["views"]
    assert [v["eye"] for v in views] == ["left", "right"]
    assert views[0]["position"] == pytest.approx([-IPD / 2, 0, 0])
    assert views[1]["position"] == pytest.approx([IPD / 2, 0, 0])
    assert frame.xr["time"] == 5000.0
    assert frame.xr["scale"] == 1.0


def test_transparent_background_is_black_where_the_depth_is_empty(renderer: Renderer) -> None:
    frame = stereo_frame(renderer, background="transparent", layout="top-bottom")
    assert frame.image.shape == (2 * EYE, 2 * EYE, 3)
    for eye in (0, 1):
        empty = ~np.isfinite(frame.distance(eye))
        assert empty.mean() > 0.5
        assert frame.eye(eye)[empty].max() == 0  # no sky, no gradient: the client removes it
        assert frame.eye(eye)[~empty].max() > 100


def test_a_smaller_scale_fills_the_top_left_of_each_rectangle(renderer: Renderer) -> None:
    frame = stereo_frame(renderer, step=3, layout="top-bottom", eye={"width": EYE, "height": 720})
    width, height = frame.xr["size"]
    assert (width, height) == (600, 450)  # 0.625 of 960 x 720, even
    assert frame.xr["scale"] == 0.625
    for eye in (0, 1):
        x, y, w, h = frame.layout["eyes"][eye]["color"]
        cell = frame.image[y : y + h, x : x + w]
        assert cell[:height, :width].max() > 0  # drawn
        assert cell[height:].max() == 0  # the rest of the rectangle stays black
        assert cell[:, width:].max() == 0
        assert frame.eye(eye).shape == (height, width, 3)
        assert frame.distance(eye).shape == (height, width)
    # The picture is the same view at a lower resolution: the plate where it was, as a share of the eye.
    ys, xs = np.nonzero(plate_mask(frame, 0))
    full = stereo_frame(renderer, layout="top-bottom", eye={"width": EYE, "height": 720})
    full_ys, full_xs = np.nonzero(plate_mask(full, 0))
    assert xs.mean() / width == pytest.approx(full_xs.mean() / EYE, abs=0.003)
    assert ys.mean() / height == pytest.approx(full_ys.mean() / 720, abs=0.003)
