"""Where the head will be when a frame is shown: the client's motion extrapolated to its display time.

A headset shows a frame about one pose → photon latency after the pose it was rendered from was sampled.
Rendering from the newest pose as it is would put the picture where the head *was*; the client's late
reprojection can correct small differences, but the less there is to correct the less swims. So each frame
is rendered for a predicted pose: the newest head pose carried forward to ``time + ahead`` at the head's
current linear and angular velocity (measured over its last poses), and each eye moved rigidly with it.

Pure (no clock, no I/O): times are the client's own milliseconds, so the two machines' clocks never need to
agree. The prediction is bounded: at most ``MAX_AHEAD_MS`` ahead, and never more than ``MAX_TURN_DEG`` of
rotation, so a jump in the tracking (a headset that lost and found itself) cannot throw the picture away.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from openrr.render.camera import F64, quat_from_axis_angle, quat_multiply, quat_to_matrix

MAX_AHEAD_MS = 250.0
MAX_TURN_DEG = 45.0
_MIN_SPAN_MS = 4.0  # velocities are measured over at least this much time (pose timestamps jitter)
_MAX_SPAN_MS = 100.0  # ... and at most this (older motion says little about the next frame)
_HISTORY = 8


@dataclass(frozen=True)
class RigidPose:
    """A position and a unit quaternion (x, y, z, w) in the scene's world space."""

    position: F64
    orientation: F64

    @classmethod
    def of(cls, position: tuple[float, ...], orientation: tuple[float, ...]) -> RigidPose:
        q = np.asarray(orientation, dtype=np.float64)
        return cls(np.asarray(position, dtype=np.float64), q / np.linalg.norm(q))


def conjugate(q: F64) -> F64:
    return np.array([-q[0], -q[1], -q[2], q[3]])


def rotation_between(a: F64, b: F64) -> tuple[F64, float]:
    """The rotation taking orientation ``a`` to ``b`` (``b = r * a``) as (unit axis, angle in radians)."""
    r = quat_multiply(b, conjugate(a))
    if r[3] < 0:  # the short way round
        r = -r
    sin_half = float(np.linalg.norm(r[:3]))
    angle = 2 * math.atan2(sin_half, float(r[3]))
    axis = r[:3] / sin_half if sin_half > 1e-12 else np.array([0.0, 1.0, 0.0])
    return axis, angle


class PosePredictor:
    """The head's recent poses (``add``) and the pose expected at a later time (``predict``)."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, RigidPose]] = deque(maxlen=_HISTORY)

    def add(self, time_ms: float, head: RigidPose) -> None:
        """A head pose sampled for ``time_ms``; a time not after the newest one starts the history anew (the
        client's clock restarted, or poses were reordered)."""
        if self._samples and time_ms <= self._samples[-1][0]:
            self._samples.clear()
        self._samples.append((time_ms, head))

    def reset(self) -> None:
        self._samples.clear()

    def predict(self, time_ms: float) -> RigidPose | None:
        """The head at ``time_ms`` (at most ``MAX_AHEAD_MS`` past the newest pose); None before any pose."""
        if not self._samples:
            return None
        t1, newest = self._samples[-1]
        ahead = min(MAX_AHEAD_MS, max(0.0, time_ms - t1))
        older = self._reference(t1)
        if older is None or ahead == 0.0:
            return newest
        t0, first = older
        span = t1 - t0
        velocity = (newest.position - first.position) / span
        axis, angle = rotation_between(first.orientation, newest.orientation)
        turn = min(math.radians(MAX_TURN_DEG), angle / span * ahead)
        orientation = quat_multiply(quat_from_axis_angle(axis, math.degrees(turn)), newest.orientation)
        return RigidPose(newest.position + velocity * ahead, orientation / np.linalg.norm(orientation))

    def _reference(self, t1: float) -> tuple[float, RigidPose] | None:
        """The newest sample at least ``_MIN_SPAN_MS`` older than ``t1`` and within ``_MAX_SPAN_MS``."""
        for t0, pose in reversed(self._samples):
            if t1 - t0 > _MAX_SPAN_MS:
                return None
            if t1 - t0 >= _MIN_SPAN_MS:
                return t0, pose
        return None


def carry(eye: RigidPose, head: RigidPose, moved_head: RigidPose) -> RigidPose:
    """Where ``eye`` is when its ``head`` moves to ``moved_head`` (the eye is fixed to the head)."""
    axis, angle = rotation_between(head.orientation, moved_head.orientation)
    turn = quat_from_axis_angle(axis, math.degrees(angle))
    offset = quat_to_matrix(turn) @ (eye.position - head.position)
    orientation = quat_multiply(turn, eye.orientation)
    return RigidPose(moved_head.position + offset, orientation / np.linalg.norm(orientation))
