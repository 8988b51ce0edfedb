"""Stereo streaming for mixed reality (WebXR headsets): the data-channel messages, the frame layout and the
depth encoding. Available in protocol v1 and v2 alike.

A connection is in 2D (one camera, ``camera.*``) until the client sends ``xr.start``; from then until
``xr.end`` (or until it leaves) every video frame holds both eyes, rendered from the newest ``xr.pose``.

Client → server                                                    Server → client
  xr.start  eye {width, height}, layout?, depth?, background?       xr.started  frame, layout, eyes,
                                                                                depth, background
  xr.pose   poseId, time, predictMs?, head, views [left, right]     (no answer: frames carry the poseId)
  xr.end                                                            ack

``xr.start``: ``eye`` is the size of one eye's picture in pixels (even, 64..2048 each way); ``layout`` is
``"side-by-side"`` (default: left eye left) or ``"top-bottom"`` (left eye on top); ``depth`` (default true)
adds each eye's depth; ``background`` ``"opaque"`` (default: the scene's background or sky) or
``"transparent"`` for AR on pass-through and see-through devices (see below). The answer ``xr.started``
gives the video ``frame`` {width, height} the stream switches to (at a keyframe) and, per eye, the pixel
rectangles [x, y, width, height] (origin top left) of its ``color`` and ``depth`` (null without depth).
Colour and depth travel **in the same video frame**: the depth rectangles sit below (side-by-side) or
beside (top-bottom) the colour ones. One track keeps every depth picture with the colour it belongs to
(a second track would be paced, dropped and jitter-buffered on its own, and the client would have to
pair frames by timestamp across them), and it needs nothing a headset's browser lacks: one ``<video>``,
one texture upload per frame. The price is the encoder's time for the extra area (see the README's
benchmarks).

``xr.pose`` (sent at the display rate; never answered, errors excepted): ``poseId`` (increasing integer,
stamped on the frames rendered from it), ``time`` (the client's predicted display time of this pose, in
milliseconds on the client's own clock, as WebXR's frame time), ``predictMs`` (0..250: how far beyond
``time`` to predict, normally the client's measured pose → photon latency), ``head`` {position,
orientation} and ``views``: the left and the right eye, each {``eye``, ``position``, ``orientation``,
``projection``}. Positions and orientations (quaternion x, y, z, w) are in the scene's world space, as in
``camera.set``: the client maps its XR reference space to the scene (where the model stands, how big it
is). ``projection`` is the eye's projection matrix as WebXR gives it (16 values, column-major); only its
field of view is used (asymmetric frusta are kept), the server chooses near and far to fit the scene.

The server renders each frame from the newest pose, extrapolated to ``time + predictMs`` from the motion of
the head over its last poses (position linearly, rotation at constant angular velocity), at full detail.
When a frame takes longer than the frame interval it draws each eye at a smaller ``scale`` (down to
``MIN_SCALE``) instead of skipping poses; the picture then fills the top-left ``size`` [width, height]
pixels of each rectangle (colour and depth alike) and the rest is black.

Each ``frame`` message of a stereo frame carries ``xr``: {``time`` (the predicted display time it was
rendered for, client milliseconds), ``scale``, ``size`` (the pixels drawn of each rectangle), ``near``,
``far``, ``views``: [{``eye``, ``position``, ``orientation``, ``projection`` (16, column-major, with this
near/far)}]}: the poses actually rendered, which a client reprojects from to the head's pose at display
time.

Depth encoding (``DEPTH_ENCODING``): grey pixels (R = G = B) holding inverse depth linearly, as the depth
buffer does: for a level ``L`` of a depth pixel, ``t = (L - DEPTH_FAR_LEVEL) / (DEPTH_NEAR_LEVEL -
DEPTH_FAR_LEVEL)`` and the distance along the eye's view axis is ``z = 1 / (1/far + t * (1/near -
1/far))``. Levels below ``DEPTH_EMPTY_BELOW`` mean no surface (the background): the codec's noise of a few
levels cannot turn a surface into background or back. 8 bits of inverse depth give the finest steps near
the eye, where reprojection needs them; the error at distance ``z`` is about ``z² (1/near - 1/far) / 223``
per level (a few millimetres for a model 1 m deep seen from 2 m).

Transparent background: the background is black (0, 0, 0), never the sky. With depth, the client takes the
depth's "no surface" as the alpha mask, exactly; without depth, the chroma rule is that pixels whose R, G
and B are all below 8 (of 255) are transparent (which also removes the model's own black).

Errors: ``BadMessage`` (an invalid message, or ``xr.pose`` before ``xr.start``).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Finite = Annotated[float, Field(allow_inf_nan=False)]
# Positions within a million scene units of the origin: enough for any model, and far enough from float
# overflow that the eyes' matrices, near and far stay finite.
Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
Vec3 = tuple[Coordinate, Coordinate, Coordinate]
Quat = tuple[Coordinate, Coordinate, Coordinate, Coordinate]
EyeSide = Annotated[int, Field(ge=64, le=2048, multiple_of=2)]

DEPTH_ENCODING = "inverse-linear-8"
DEPTH_NEAR_LEVEL = 255
DEPTH_FAR_LEVEL = 32
DEPTH_EMPTY_BELOW = 16
TRANSPARENT_BELOW = 8  # the chroma rule without depth: R, G and B all below this are transparent
MIN_SCALE = 0.5
MAX_PREDICT_MS = 250.0
MAX_TANGENT = math.tan(math.radians(85))  # a half field of view up to 85 degrees each way


def unit_quaternion(q: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    norm = math.sqrt(sum(c * c for c in q))
    if norm < 1e-6:
        raise ValueError("the orientation quaternion must not be zero")
    return (q[0] / norm, q[1] / norm, q[2] / norm, q[3] / norm)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1, 2] = 1
    id: Annotated[str, Field(max_length=128)] | int | None = None


class EyeSize(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    width: EyeSide
    height: EyeSide


class XrStart(_Message):
    type: Literal["xr.start"]
    eye: EyeSize
    layout: Literal["side-by-side", "top-bottom"] = "side-by-side"
    depth: bool = True
    background: Literal["opaque", "transparent"] = "opaque"


class Pose(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    position: Vec3
    orientation: Quat = Field(description="Quaternion x, y, z, w.")

    @field_validator("orientation")
    @classmethod
    def _unit(cls, q: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        return unit_quaternion(q)


class EyeView(Pose):
    eye: Literal["left", "right"]
    projection: Annotated[list[Finite], Field(min_length=16, max_length=16)] = Field(
        description="The eye's projection matrix, column-major (WebXR's XRView.projectionMatrix)."
    )

    @field_validator("projection")
    @classmethod
    def _perspective(cls, m: list[float]) -> list[float]:
        frustum_of(m)  # raises ValueError with the reason
        return m


class XrPose(_Message):
    type: Literal["xr.pose"]
    poseId: Annotated[int, Field(ge=0, le=2**53)]
    time: Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]
    predictMs: Annotated[float, Field(ge=0, le=MAX_PREDICT_MS)] = 0.0
    head: Pose
    views: Annotated[list[EyeView], Field(min_length=2, max_length=2)]

    @model_validator(mode="after")
    def _both_eyes(self) -> XrPose:
        if [v.eye for v in self.views] != ["left", "right"]:
            raise ValueError('views must be the left eye, then the right eye ("eye": "left", "right")')
        return self


class XrEnd(_Message):
    type: Literal["xr.end"]


XrRequest = XrStart | XrPose | XrEnd
XR_TYPES = frozenset({"xr.start", "xr.pose", "xr.end"})


def frustum_of(m: list[float]) -> tuple[float, float, float, float]:
    """The (left, right, bottom, top) tangents of a column-major perspective projection matrix, as the
    frustum ``glFrustum`` describes at distance 1; raises ValueError for anything but a perspective
    projection with a sane field of view."""
    p00, p11, p02, p12, p32, p33 = m[0], m[5], m[8], m[9], m[11], m[15]
    if abs(p32 + 1) > 1e-3 or abs(p33) > 1e-3 or p00 <= 1e-3 or p11 <= 1e-3:
        raise ValueError("projection must be a perspective projection matrix, column-major")
    if any(abs(m[i]) > 1e-3 for i in (1, 2, 3, 4, 6, 7, 12, 13)):
        raise ValueError("projection has terms a perspective projection does not have (is it transposed?)")
    left, right = (p02 - 1) / p00, (p02 + 1) / p00
    bottom, top = (p12 - 1) / p11, (p12 + 1) / p11
    if max(abs(left), abs(right), abs(bottom), abs(top)) > MAX_TANGENT:
        raise ValueError("projection's field of view is wider than 85 degrees from the view axis")
    return left, right, bottom, top
