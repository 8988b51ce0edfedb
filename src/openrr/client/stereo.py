"""Stereo frames for mixed reality (``openrr.protocol.xr``), as a Python client receives them: each eye's
picture, its depth decoded to distances, and the world positions the depth stands for.

:class:`StereoFrame` joins a decoded video frame with its ``frame`` message (the eyes' poses it was rendered
from, near and far, the resolution scale) and the layout ``xr.started`` gave; :func:`eye_pose` builds the
``views`` entry of an ``xr.pose`` for an eye placed like a headset's. Nothing here talks to the network: the
requests are in ``commands.py`` and ``connection.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.protocol.stereo_frame import decode_depth
from openrr.protocol.xr import frustum_of

F64 = NDArray[np.float64]


def _rotation(q: Sequence[float]) -> F64:
    x, y, z, w = (float(c) for c in q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def projection(
    left: float, right: float, bottom: float, top: float, near: float = 0.1, far: float = 1000.0
) -> list[float]:
    """A perspective projection matrix, column-major as WebXR gives it, from the frustum's tangents."""
    m = np.zeros((4, 4))
    m[0, 0], m[0, 2] = 2 / (right - left), (right + left) / (right - left)
    m[1, 1], m[1, 2] = 2 / (top - bottom), (top + bottom) / (top - bottom)
    m[2, 2], m[2, 3], m[3, 2] = (far + near) / (near - far), 2 * far * near / (near - far), -1.0
    return [float(c) for c in m.T.ravel()]


def symmetric_projection(fov_degrees: float, aspect: float = 1.0) -> list[float]:
    """A symmetric projection of ``fov_degrees`` vertically and ``aspect`` = width / height."""
    t = math.tan(math.radians(fov_degrees) / 2)
    return projection(-t * aspect, t * aspect, -t, t)


def head_views(
    position: Sequence[float],
    orientation: Sequence[float],
    *,
    ipd: float = 0.064,
    left_projection: Sequence[float],
    right_projection: Sequence[float] | None = None,
) -> dict[str, Any]:
    """``head`` and ``views`` of an ``xr.pose`` for a head at ``position``/``orientation`` whose eyes are
    ``ipd`` apart along the head's own x axis (as a headset's are)."""
    centre = np.asarray(position, dtype=np.float64)
    right_axis = _rotation(orientation)[:, 0]
    views = []
    for eye, sign, proj in (
        ("left", -1.0, left_projection),
        ("right", 1.0, right_projection or left_projection),
    ):
        eye_position = centre + sign * ipd / 2 * right_axis
        views.append(
            {
                "eye": eye,
                "position": [float(c) for c in eye_position],
                "orientation": [float(c) for c in orientation],
                "projection": [float(c) for c in proj],
            }
        )
    head = {"position": [float(c) for c in centre], "orientation": [float(c) for c in orientation]}
    return {"head": head, "views": views}


@dataclass(frozen=True)
class StereoFrame:
    """A decoded stereo video frame with what it was rendered from.

    ``image``: the whole frame (H, W, 3) RGB; ``meta``: its ``frame`` message (``poseId``, ``xr``);
    ``layout``: the ``xr.started`` answer (rectangles, depth encoding)."""

    image: NDArray[np.uint8]
    meta: Mapping[str, Any]
    layout: Mapping[str, Any]

    @property
    def pose_id(self) -> int | None:
        pose = self.meta.get("poseId")
        return pose if isinstance(pose, int) else None

    @property
    def xr(self) -> Mapping[str, Any]:
        xr = self.meta.get("xr")
        if not isinstance(xr, Mapping):
            raise ValueError("this frame is not a stereo frame (its frame message has no xr)")
        return xr

    def _drawn(self, rect: Sequence[int]) -> NDArray[np.uint8]:
        """The part of ``rect`` the eye was drawn into (its top-left ``size``)."""
        x, y, _, _ = rect
        width, height = (int(v) for v in self.xr["size"])
        return self.image[y : y + height, x : x + width]

    def eye(self, index: int) -> NDArray[np.uint8]:
        """Eye ``index``'s picture (0 left, 1 right) at the resolution it was drawn."""
        return self._drawn(self.layout["eyes"][index]["color"])

    def distance(self, index: int) -> F64:
        """Eye ``index``'s depth as distances along its view axis (scene units); NaN where no surface."""
        rect = self.layout["eyes"][index]["depth"]
        if rect is None:
            raise ValueError("the stereo mode was started without depth")
        levels = np.rint(self._drawn(rect).mean(axis=2))  # grey: R, G and B carry the same level
        return decode_depth(levels, float(self.xr["near"]), float(self.xr["far"]))

    def positions(self, index: int) -> F64:
        """World positions (H, W, 3) of eye ``index``'s depth pixels (NaN where no surface)."""
        distance = self.distance(index)
        view = self.xr["views"][index]
        left, right, bottom, top = frustum_of(list(view["projection"]))
        h, w = distance.shape
        u = (np.arange(w) + 0.5) / w
        v = (np.arange(h) + 0.5) / h
        x = left + u * (right - left)  # tangents at distance 1, per column and row (top row first)
        y = top - v * (top - bottom)
        local = np.stack(
            [x[None, :] * distance, y[:, None] * distance, -distance], axis=-1
        )  # view space: the eye looks down -z
        rotation = _rotation(view["orientation"])
        world: F64 = local @ rotation.T + np.asarray(view["position"], dtype=np.float64)
        return world
