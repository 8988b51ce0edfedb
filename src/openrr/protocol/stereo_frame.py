"""The stereo video frame of ``openrr.protocol.xr``: where each eye's colour and depth lie in it, and the
depth encoding both sides apply (the render server encodes, clients decode).

Layouts, for eyes of ``w`` x ``h`` pixels (``d``: depth on)::

    side-by-side            top-bottom
    +--------+--------+     +--------+--------+
    | L color| R color|     | L color| L depth|   (the depth column only with d)
    +--------+--------+     +--------+--------+
    | L depth| R depth|     | R color| R depth|
    +--------+--------+     +--------+--------+
    (the depth row only with d)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.protocol.xr import DEPTH_EMPTY_BELOW, DEPTH_ENCODING, DEPTH_FAR_LEVEL, DEPTH_NEAR_LEVEL

Rect = tuple[int, int, int, int]  # x, y, width, height; origin top left
EYES = ("left", "right")


@dataclass(frozen=True)
class StereoLayout:
    eye_width: int
    eye_height: int
    layout: str = "side-by-side"
    depth: bool = True

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the whole video frame."""
        w, h, planes = self.eye_width, self.eye_height, 2 if self.depth else 1
        return (2 * w, planes * h) if self.layout == "side-by-side" else (planes * w, 2 * h)

    def color_rect(self, eye: int) -> Rect:
        w, h = self.eye_width, self.eye_height
        return (eye * w, 0, w, h) if self.layout == "side-by-side" else (0, eye * h, w, h)

    def depth_rect(self, eye: int) -> Rect | None:
        if not self.depth:
            return None
        w, h = self.eye_width, self.eye_height
        return (eye * w, h, w, h) if self.layout == "side-by-side" else (w, eye * h, w, h)

    def describe(self) -> dict[str, Any]:
        """The layout as ``xr.started`` states it."""
        width, height = self.frame_size
        return {
            "frame": {"width": width, "height": height},
            "layout": self.layout,
            "eyes": [
                {"eye": name, "color": list(self.color_rect(i)), "depth": _listed(self.depth_rect(i))}
                for i, name in enumerate(EYES)
            ],
            "depth": (
                {
                    "encoding": DEPTH_ENCODING,
                    "nearLevel": DEPTH_NEAR_LEVEL,
                    "farLevel": DEPTH_FAR_LEVEL,
                    "emptyBelow": DEPTH_EMPTY_BELOW,
                }
                if self.depth
                else None
            ),
        }


def _listed(rect: Rect | None) -> list[int] | None:
    return None if rect is None else list(rect)


def encode_depth(window_depth: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Depth-buffer values (0 at near, 1 at far and where nothing was drawn) as depth levels.

    A perspective depth buffer is linear in inverse distance, so the levels are too: an affine map of it."""
    span = DEPTH_NEAR_LEVEL - DEPTH_FAR_LEVEL
    levels = np.rint(DEPTH_NEAR_LEVEL - span * window_depth)
    levels[window_depth >= 1.0] = 0
    encoded: NDArray[np.uint8] = levels.astype(np.uint8)
    return encoded


def decode_depth(levels: NDArray[Any], near: float, far: float) -> NDArray[np.float64]:
    """Distances along the view axis (scene units) of depth levels; NaN where there is no surface."""
    t = (levels.astype(np.float64) - DEPTH_FAR_LEVEL) / (DEPTH_NEAR_LEVEL - DEPTH_FAR_LEVEL)
    inverse = 1.0 / far + np.clip(t, 0.0, 1.0) * (1.0 / near - 1.0 / far)
    distance: NDArray[np.float64] = 1.0 / inverse
    distance[levels < DEPTH_EMPTY_BELOW] = np.nan
    return distance
