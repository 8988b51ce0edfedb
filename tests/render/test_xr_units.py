"""Stereo mode's pure parts: the xr messages, the frame layout, the depth encoding, pose prediction and the
resolution scale (openrr.protocol.xr, openrr.protocol.stereo_frame, render/pose_prediction.py,
render/xr_mode.py)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from openrr.client.stereo import head_views, projection, symmetric_projection
from openrr.protocol import datachannel
from openrr.protocol.stereo_frame import StereoLayout, decode_depth, encode_depth
from openrr.protocol.xr import DEPTH_EMPTY_BELOW, XrPose, frustum_of
from openrr.render.camera import Camera, quat_from_axis_angle
from openrr.render.pose_prediction import MAX_TURN_DEG, PosePredictor, RigidPose, carry, rotation_between
from openrr.render.xr_mode import SCALE_STEPS, StereoScale

IDENTITY = (0.0, 0.0, 0.0, 1.0)


def pose_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"v": 1, "type": "xr.pose", "poseId": 7, "time": 1000.0}
    body.update(head_views((0, 1.6, 0), IDENTITY, left_projection=symmetric_projection(90)))
    body.update(fields)
    return body


# ---- messages -----------------------------------------------------------------------------------------


def test_a_pose_as_webxr_gives_it_parses() -> None:
    request = datachannel.parse(__import__("json").dumps(pose_body(predictMs=40)))
    assert isinstance(request, XrPose)
    assert request.poseId == 7
    assert [v.eye for v in request.views] == ["left", "right"]
    assert request.views[0].position[0] == pytest.approx(-0.032)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"views": "swap"}, "left eye, then the right"),
        ({"predictMs": 1000}, "predictMs"),
        ({"time": float("nan")}, "time"),
        ({"projection": "transposed"}, "column-major"),
        ({"projection": "orthographic"}, "perspective"),
        ({"projection": "too wide"}, "85 degrees"),
        ({"orientation": (0, 0, 0, 0)}, "must not be zero"),
        ({"orientation": (1e300, 0, 0, 1)}, "less than or equal to 1000000"),
        ({"position": (1e7, 0, 0)}, "less than or equal to 1000000"),
    ],
)
def test_bad_poses_are_refused_with_the_reason(change: dict[str, Any], reason: str) -> None:
    body = pose_body()
    left = body["views"][0]
    match change:
        case {"views": "swap"}:
            body["views"].reverse()
        case {"projection": kind}:
            m = np.array(left["projection"]).reshape(4, 4)  # rows of this are the matrix's columns
            if kind == "transposed":
                m = m.T
            elif kind == "orthographic":
                m[2, 3], m[3, 3] = 0.0, 1.0
            else:
                m = np.array(symmetric_projection(179.0)).reshape(4, 4)
            left["projection"] = list(m.ravel())
        case {"orientation": q}:
            left["orientation"] = list(q)
        case {"position": p}:
            left["position"] = list(p)
        case _:
            body.update(change)
    with pytest.raises(datachannel.BadMessage, match=reason):
        datachannel.parse(__import__("json").dumps(body))


@pytest.mark.parametrize(
    "eye", [{"width": 63, "height": 64}, {"width": 65, "height": 64}, {"width": 4096, "height": 64}]
)
def test_eye_sizes_are_bounded_and_even(eye: dict[str, int]) -> None:
    with pytest.raises(datachannel.BadMessage, match="eye"):
        datachannel.parse(__import__("json").dumps({"v": 1, "type": "xr.start", "eye": eye}))


def test_the_frustum_of_an_asymmetric_projection_round_trips() -> None:
    tangents = (-1.2, 0.9, -1.1, 0.8)  # a headset eye looks a little inwards and down
    assert frustum_of(projection(*tangents)) == pytest.approx(tangents)
    camera = Camera.eye((0, 0, 0), IDENTITY, tangents, 0.1, 1000.0)
    ours = camera.projection_matrix(1.0, 0.1, 1000.0)
    assert list(ours.T.ravel()) == pytest.approx(projection(*tangents))


# ---- layout and depth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["side-by-side", "top-bottom"])
@pytest.mark.parametrize("depth", [True, False])
def test_the_rectangles_tile_the_frame_without_overlap(layout: str, depth: bool) -> None:
    stereo = StereoLayout(320, 240, layout, depth)
    width, height = stereo.frame_size
    cover = np.zeros((height, width), dtype=int)
    rects = [stereo.color_rect(i) for i in (0, 1)] + [r for i in (0, 1) if (r := stereo.depth_rect(i))]
    for x, y, w, h in rects:
        assert (w, h) == (320, 240)
        cover[y : y + h, x : x + w] += 1
    assert (cover == 1).all()  # every pixel belongs to exactly one rectangle
    described = stereo.describe()
    assert described["frame"] == {"width": width, "height": height}
    assert [e["eye"] for e in described["eyes"]] == ["left", "right"]
    assert (described["depth"] is not None) is depth


def test_depth_levels_decode_to_distances_within_a_level() -> None:
    near, far = 1.5, 4.0
    distances = np.linspace(near, far, 500, endpoint=False)  # surfaces lie inside the far plane
    # The depth buffer of a perspective projection: affine in 1/distance, 0 at near and 1 at far.
    window = ((1 / near - 1 / distances) / (1 / near - 1 / far)).astype(np.float32)
    levels = encode_depth(window)
    decoded = decode_depth(levels, near, far)
    step = distances**2 * (1 / near - 1 / far) / 223  # one level, at each distance
    assert np.all(np.abs(decoded - distances) <= step / 2 + 1e-9)
    empty = encode_depth(np.ones((2, 2), dtype=np.float32))
    assert (empty < DEPTH_EMPTY_BELOW).all()
    assert np.isnan(decode_depth(empty, near, far)).all()
    assert levels.min() >= 32  # a surface at the far plane stays well clear of "no surface"


# ---- prediction ---------------------------------------------------------------------------------------


def _poses(predictor: PosePredictor, turn_per_ms: float, speed: tuple[float, float, float]) -> None:
    for step in range(5):
        t = 1000.0 + 11.0 * step
        q = quat_from_axis_angle((0, 1, 0), turn_per_ms * t)
        predictor.add(t, RigidPose.of(tuple(np.multiply(speed, t)), tuple(q)))


def test_constant_motion_is_carried_to_the_display_time() -> None:
    predictor = PosePredictor()
    _poses(predictor, turn_per_ms=0.1, speed=(0.001, 0.0, -0.0005))  # 100 deg/s, 1 m/s sideways
    predicted = predictor.predict(1044.0 + 50.0)
    assert predicted is not None
    assert predicted.position == pytest.approx(np.multiply((0.001, 0.0, -0.0005), 1094.0))
    _, angle = rotation_between(
        np.array(quat_from_axis_angle((0, 1, 0), 0.1 * 1094.0)), predicted.orientation
    )
    assert math.degrees(angle) < 0.01


def test_prediction_is_bounded_and_restarts_when_time_goes_back() -> None:
    predictor = PosePredictor()
    assert predictor.predict(5.0) is None
    _poses(predictor, turn_per_ms=2.0, speed=(0, 0, 0))  # 2000 deg/s: a tracking glitch
    newest = quat_from_axis_angle((0, 1, 0), 2.0 * 1044.0)
    predicted = predictor.predict(1044.0 + 100.0)
    assert predicted is not None
    _, angle = rotation_between(np.array(newest), predicted.orientation)
    assert math.degrees(angle) == pytest.approx(MAX_TURN_DEG)
    predictor.add(10.0, RigidPose.of((1, 2, 3), IDENTITY))  # the client's clock restarted
    again = predictor.predict(60.0)
    assert again is not None
    assert again.position == pytest.approx((1, 2, 3))  # one pose: no motion to extrapolate


def test_eyes_move_rigidly_with_the_head() -> None:
    head = RigidPose.of((0, 1.6, 0), IDENTITY)
    eye = RigidPose.of((0.032, 1.6, 0), IDENTITY)
    turned = RigidPose.of((0, 1.6, 0), tuple(quat_from_axis_angle((0, 1, 0), 90)))
    moved = carry(eye, head, turned)
    assert moved.position == pytest.approx((0, 1.6, -0.032))  # the right eye swings to the front
    assert moved.orientation == pytest.approx(turned.orientation)


# ---- resolution scale ---------------------------------------------------------------------------------


def test_the_scale_steps_down_when_frames_are_slow_and_back_up_when_they_are_fast() -> None:
    scale = StereoScale(budget_ms=33.0)
    scale.observe(500.0)  # the first frame uploads the scene: not counted
    assert scale.current == 1.0
    for _ in range(3):
        scale.observe(60.0)
    assert scale.current < 1.0
    assert 60.0 * scale.current**2 <= 33.0  # chosen to fit the budget
    for _ in range(40):
        scale.observe(8.0)
    assert scale.current == SCALE_STEPS[0]
