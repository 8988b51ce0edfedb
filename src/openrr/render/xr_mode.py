"""A connection's stereo mode (``openrr.protocol.xr``): both eyes of the newest head pose, predicted to its
display time, drawn into one video frame with their depth.

Threads: :meth:`XrMode.pose` and :meth:`XrMode.snapshot` run on the event loop (a pose never waits for a
render); :meth:`XrMode.draw` runs on the GL thread with the snapshot taken as the render was set going, the
way the 2D camera is copied for each render.

Frame budget: a headset's poses never stop, so the 2D mode's coarser levels while moving would never give
way to full detail. Stereo frames are drawn at full detail, and it is the eyes' resolution that gives when a
frame takes longer than the frame interval (:class:`StereoScale`): every pose still gets its frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from openrr.protocol.stereo_frame import EYES, StereoLayout, encode_depth
from openrr.protocol.xr import MIN_SCALE, XrPose, XrStart, frustum_of
from openrr.render.camera import Camera
from openrr.render.pose_prediction import PosePredictor, RigidPose, carry

if TYPE_CHECKING:
    from openrr.render.renderer import Renderer

SCALE_STEPS = (1.0, 0.875, 0.75, 0.625, MIN_SCALE)
_OVER, _FIT, _UNDER = 1.05, 0.9, 0.75  # of the budget: step down above, aim at, step up below


class StereoScale:
    """The eyes' resolution scale: one of ``SCALE_STEPS``, chosen so a frame's render time fits
    ``budget_ms``. Render time is taken to grow with the pixel count (scale squared). The first frame,
    which uploads the scene's meshes and textures, is not counted."""

    def __init__(self, budget_ms: float) -> None:
        self.budget_ms = budget_ms
        self.index = 0
        self._ms: float | None = None  # smoothed render time at the current step
        self._first = True

    @property
    def current(self) -> float:
        return SCALE_STEPS[self.index]

    def observe(self, ms: float) -> None:
        if self._first:
            self._first = False
            return
        self._ms = ms if self._ms is None else 0.7 * self._ms + 0.3 * ms
        scale, budget = self.current, self.budget_ms

        def at(index: int) -> float:
            assert self._ms is not None
            return self._ms * (SCALE_STEPS[index] / scale) ** 2

        chosen = self.index
        if self._ms > budget * _OVER:
            chosen = len(SCALE_STEPS) - 1
            for index in range(self.index + 1, len(SCALE_STEPS)):
                if at(index) <= budget * _FIT:
                    chosen = index
                    break
        elif self.index > 0 and at(self.index - 1) <= budget * _UNDER:
            chosen = self.index - 1
        if chosen != self.index:
            self._ms = at(chosen)
            self.index = chosen


@dataclass(frozen=True)
class Snapshot:
    """What one stereo frame is drawn from (taken on the event loop)."""

    pose_id: int
    time_ms: float  # the predicted display time the eyes were carried to (client milliseconds)
    eyes: tuple[RigidPose, RigidPose]
    frusta: tuple[tuple[float, float, float, float], tuple[float, float, float, float]]


class XrMode:
    """Stereo for one connection, from ``xr.start`` to ``xr.end`` (or the client leaving)."""

    def __init__(self, request: XrStart, frame_interval_s: float) -> None:
        self.layout = StereoLayout(request.eye.width, request.eye.height, request.layout, request.depth)
        self.transparent = request.background == "transparent"
        self.scale = StereoScale(frame_interval_s * 1000.0)
        self.predictor = PosePredictor()
        self._pose: XrPose | None = None
        self.render_ms = 0.0
        self.triangles = 0

    def describe(self) -> dict[str, Any]:
        """``xr.started``'s fields."""
        return {**self.layout.describe(), "background": "transparent" if self.transparent else "opaque"}

    def pose(self, request: XrPose) -> None:
        """The newest pose (event loop)."""
        self._pose = request
        self.predictor.add(request.time, RigidPose.of(request.head.position, request.head.orientation))

    def snapshot(self) -> Snapshot | None:
        """The eyes for the next frame, carried to the newest pose's display time; None before any pose."""
        pose = self._pose
        if pose is None:
            return None
        target = pose.time + pose.predictMs
        head = RigidPose.of(pose.head.position, pose.head.orientation)
        moved = self.predictor.predict(target) or head
        left, right = (carry(RigidPose.of(v.position, v.orientation), head, moved) for v in pose.views)
        left_f, right_f = (frustum_of(v.projection) for v in pose.views)
        return Snapshot(pose.poseId, target, (left, right), (left_f, right_f))

    def draw(
        self, renderer: Renderer, snap: Snapshot | None
    ) -> tuple[NDArray[np.uint8], dict[str, Any] | None]:
        """Both eyes into one frame (GL thread); returns the frame and the ``frame`` message's ``xr``."""
        width, height = self.layout.frame_size
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        if snap is None:
            return frame, None  # no pose yet: nothing to draw from
        started = time.perf_counter()
        scale = self.scale.current
        w = max(16, round(self.layout.eye_width * scale / 2) * 2)
        h = max(16, round(self.layout.eye_height * scale / 2) * 2)
        if (renderer.width, renderer.height) != (w, h):
            renderer.resize(w, h)
        renderer.transparent = self.transparent
        renderer.detail = 1.0
        near, far = _clip_planes(renderer, snap.eyes)
        views, triangles = [], 0
        for index, (eye, frustum) in enumerate(zip(snap.eyes, snap.frusta, strict=True)):
            camera = Camera.eye(eye.position, eye.orientation, frustum, near, far)
            x, y, _, _ = self.layout.color_rect(index)
            frame[y : y + h, x : x + w] = renderer.render(camera)
            triangles += renderer.stats.triangles
            depth_rect = self.layout.depth_rect(index)
            if depth_rect is not None:
                dx, dy, _, _ = depth_rect
                frame[dy : dy + h, dx : dx + w] = encode_depth(renderer.read_depth())[..., None]
            projection = camera.projection_matrix(w / h, near, far)
            views.append(
                {
                    "eye": EYES[index],
                    "position": [round(float(c), 6) for c in eye.position],
                    "orientation": [round(float(c), 7) for c in eye.orientation],
                    "projection": [round(float(c), 7) for c in projection.T.ravel()],  # column-major
                }
            )
        self.render_ms = (time.perf_counter() - started) * 1000.0
        self.triangles = triangles
        self.scale.observe(self.render_ms)
        meta = {
            "time": snap.time_ms,
            "scale": w / self.layout.eye_width,
            "size": [w, h],
            "near": near,
            "far": far,
            "views": views,
        }
        return frame, meta


def _clip_planes(renderer: Renderer, eyes: tuple[RigidPose, RigidPose]) -> tuple[float, float]:
    """One near and far plane for both eyes, enclosing the scene (the depth of both decodes alike)."""
    scene = renderer.scene
    bounds = scene.bounds() if scene is not None else None
    planes = [Camera(eye.position).clip_planes(bounds) for eye in eyes]
    return min(p[0] for p in planes), max(p[1] for p in planes)
