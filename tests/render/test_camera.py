"""Camera maths: orbit, pan, zoom, framing, poses and the view frustum. No GL context needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openrr.render.camera import Camera, boxes_in_frustum, frustum_planes, quat_from_axis_angle


def test_camera_orbit_pan_zoom_and_frame() -> None:
    camera = Camera.look_at((0, 0, 5), (0, 0, 0))
    np.testing.assert_allclose(camera.forward, [0, 0, -1], atol=1e-9)
    camera.orbit(90, 0)
    np.testing.assert_allclose(camera.position, [5, 0, 0], atol=1e-9)
    np.testing.assert_allclose(camera.forward, [-1, 0, 0], atol=1e-9)
    camera.orbit(0, 30)
    assert camera.position[1] == pytest.approx(5 * math.sin(math.radians(30)))
    np.testing.assert_allclose(camera.forward, -camera.position / 5, atol=1e-9)
    camera.zoom(2)
    assert camera.distance == pytest.approx(2.5)
    before = camera.target.copy()
    camera.pan(0.5, 0)
    np.testing.assert_allclose(camera.target - before, camera.right * camera.distance * math.tan(math.pi / 6))
    camera.frame(np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(camera.target, [0, 0, 0], atol=1e-9)
    near, far = camera.clip_planes(np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    assert 0 < near < camera.distance - math.sqrt(3) + 1e-6
    assert far > camera.distance + math.sqrt(3)
    view = camera.view_matrix()
    np.testing.assert_allclose(view @ [*camera.target, 1.0], [0, 0, -camera.distance, 1], atol=1e-9)


def test_camera_pose_and_frustum() -> None:
    camera = Camera()
    camera.set_pose((0, 0, 10), quat_from_axis_angle((0, 1, 0), 180), fov=40)
    np.testing.assert_allclose(camera.forward, [0, 0, 1], atol=1e-9)  # turned around: looking at +Z
    planes = frustum_planes(camera.projection_matrix(1.0, 0.1, 100) @ camera.view_matrix())
    boxes = np.array([[[-1, -1, 19], [1, 1, 21]], [[-1, -1, -1], [1, 1, 1]]], dtype=float)
    assert boxes_in_frustum(planes, boxes).tolist() == [True, False]
    with pytest.raises(ValueError, match="field of view"):
        Camera(fov=0)
