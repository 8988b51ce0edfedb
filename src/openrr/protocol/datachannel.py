"""The data-channel protocol between a client and its render server: versioned JSON messages.

Version 1 is below; version 2 adds the scene API (entities, components, materials, sky, spatial queries),
documented in ``openrr.protocol.scene_api``, and keeps every v1 message. Stereo streaming to headsets
(``xr.start``, ``xr.pose``, ``xr.end``) is in ``openrr.protocol.xr``, in both versions. Every message is a
JSON object with ``"v"`` (1, or 2 for a client that speaks v2) and a ``"type"``. A client request may
carry an ``"id"`` (string or integer); every answer to it repeats it as ``"re"``, so clients can match
answers and measure round trips. Camera requests may carry a ``"poseId"``: the server stamps the id of the
newest pose it rendered on every frame's stats, which is how a client measures input → frame latency.

Client → server                                   Server → client
  camera.set    position, orientation, fov          hello         protocol version, session, video, limits
  camera.orbit  yaw, pitch (degrees)                ack           re (+ camera pose for camera requests)
  camera.pan    dx, dy (fractions of the view)      error         re, code, message
  camera.zoom   factor (> 1 moves closer)           model.progress re, modelId, fraction, message
  camera.frame  (fit the scene)                     model.loaded  re, modelId, nodes, polygons, rootNodes
  model.load    url, modelId?                       model.unloaded re, modelId
                                                    bye           reason (the server is ending the link)
  model.unload  modelId                             pick.result   re, node (id, name) or null, position
  node.set      node, transform?, visible?, color?  stats         pushed once a second and on stats.get
  pick          x, y (0..1, origin top left)        frame         one per video frame sent (see below)
  stats.get                                         pong          re, t (echoed), serverTime
  ping          t

``hello`` (sent when the channel opens, always as v1): ``protocol``, ``protocols`` ([1, 2]), ``sessionId``,
``video`` {width, height, fps, bitrate, codec}, ``polygonLimit`` (null: unlimited), ``models`` [{modelId,
url, nodes, polygons}], ``nodes`` [{id, name, parent, mesh (bool), visible}], ``camera`` {position,
orientation, fov}.

``frame``: ``frameId``, ``pts`` (90 kHz; 0 for the connection's first frame, so it equals the ``pts`` of the
frame an aiortc or browser receiver decodes), ``poseId`` (newest pose rendered into it, or null), ``t``
(server clock, seconds, when rendering of the frame began), ``renderMs``, ``encodeMs``, ``keyframe``,
``bytes``, ``triangles`` (drawn: fewer than the scene's while the camera moves under the frame budget),
and in stereo mode ``xr`` (the eyes' poses it was rendered from: ``openrr.protocol.xr``).
With ``pong.serverTime`` a client estimates the clock offset and from it glass-to-glass latency.
An unchanged picture is not rendered again but sent again, with the same ``frameId`` and ``t``: count
latency at a ``frameId``'s first arrival only.

``stats``: ``frames``, ``fps``, ``frameMs`` (render + encode), ``renderMs``, ``encodeMs``, ``bitrate``
(bit/s sent over the last second), ``targetBitrate``, ``polygons``, ``polygonsDrawn``, ``points`` and
``pointsDrawn`` (of point clouds, as of the last frame rendered), ``limitExceeded``
and ``limitMessage``, ``poseId``, ``rttMs`` (RTP round trip from the receiver's RTCP reports, null before
the first), ``codec``, ``encoder``, ``width``, ``height``, ``cpuPercent``, ``rssMiB``, ``xrScale`` (in stereo
mode the eyes' resolution scale, else null).

Errors carry a ``code``: ``BadMessage``, ``ModelLoadFailed``, ``ModelSourceRefused`` (outside the
server's model roots, or a private address), ``ModelAlreadyLoaded``, ``ModelNotFound``, ``NodeNotFound``,
``Busy`` (too many loads at once), ``InternalError``.

Models: ``url`` is a path (relative paths are taken relative to the server's first model root), a
``file:`` URL or an http(s) URL. Loading the first model into an empty scene frames the camera on it.
When the client leaves, the next client starts from a clean slate: the session's preloaded models as
they were loaded, the default camera.

Unknown types, missing fields and wrong types are answered with an ``error`` (code ``BadMessage``); the
server keeps serving.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from openrr.protocol.scene_api import SCENE_TYPES, SceneRequest
from openrr.protocol.xr import XrEnd, XrPose, XrStart

VERSION = 1  # what a v1 client sends and sees; a v2 client sends "v": 2 (see scene_api.py)
VERSIONS = (1, 2)
MAX_MESSAGE_BYTES = 64 * 1024

RequestId = Annotated[str, Field(max_length=128)] | int
Finite = Annotated[float, Field(allow_inf_nan=False)]
Vec3 = tuple[Finite, Finite, Finite]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1, 2] = 1
    id: RequestId | None = None


class CameraSet(_Message):
    type: Literal["camera.set"]
    position: Vec3
    orientation: tuple[Finite, Finite, Finite, Finite] = Field(description="Quaternion x, y, z, w.")
    fov: Annotated[float, Field(gt=1, lt=179)] = 60.0
    poseId: int | None = None

    @field_validator("orientation")
    @classmethod
    def _unit(cls, q: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        norm = math.sqrt(sum(c * c for c in q))
        if norm < 1e-6:
            raise ValueError("the orientation quaternion must not be zero")
        return (q[0] / norm, q[1] / norm, q[2] / norm, q[3] / norm)


class CameraOrbit(_Message):
    type: Literal["camera.orbit"]
    yaw: Finite = 0.0
    pitch: Finite = 0.0
    poseId: int | None = None


class CameraPan(_Message):
    type: Literal["camera.pan"]
    dx: Finite = 0.0
    dy: Finite = 0.0
    poseId: int | None = None


class CameraZoom(_Message):
    type: Literal["camera.zoom"]
    factor: Annotated[float, Field(gt=0.01, lt=100)]
    poseId: int | None = None


class CameraFrame(_Message):
    type: Literal["camera.frame"]
    poseId: int | None = None


class ModelLoad(_Message):
    type: Literal["model.load"]
    url: Annotated[str, Field(min_length=1, max_length=4096)]
    modelId: Annotated[str, Field(min_length=1, max_length=128)] | None = None


class ModelUnload(_Message):
    type: Literal["model.unload"]
    modelId: Annotated[str, Field(min_length=1, max_length=128)]


class NodeSet(_Message):
    type: Literal["node.set"]
    node: int | Annotated[str, Field(min_length=1, max_length=256)]
    transform: Annotated[list[Finite], Field(min_length=16, max_length=16)] | None = Field(
        default=None, description="Local 4x4 matrix, column-major as in glTF."
    )
    visible: bool | None = None
    color: tuple[Finite, Finite, Finite, Finite] | None = Field(
        default=None, description="RGBA override in 0..1; null clears it."
    )
    clearColor: bool = False


class Pick(_Message):
    type: Literal["pick"]
    x: Annotated[float, Field(ge=0, le=1)]
    y: Annotated[float, Field(ge=0, le=1)]


class StatsGet(_Message):
    type: Literal["stats.get"]


class Ping(_Message):
    type: Literal["ping"]
    t: Finite = 0.0


Request = Annotated[
    CameraSet
    | CameraOrbit
    | CameraPan
    | CameraZoom
    | CameraFrame
    | ModelLoad
    | ModelUnload
    | NodeSet
    | Pick
    | StatsGet
    | Ping
    | XrStart
    | XrPose
    | XrEnd
    | SceneRequest,
    Field(discriminator="type"),
]
_REQUEST: TypeAdapter[Request] = TypeAdapter(Request)


class BadMessage(Exception):
    """A message that is not a valid request; ``re`` is its id when one could be read."""

    def __init__(self, message: str, re: str | int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.re = re


def parse(raw: str | bytes) -> Request:
    """Parse one data-channel message into a request, or raise BadMessage with a readable reason."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise BadMessage(f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadMessage("the message is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadMessage("a message must be a JSON object")
    re = data.get("id") if isinstance(data.get("id"), str | int) else None
    version = data.get("v")
    if version not in VERSIONS or isinstance(version, bool):
        raise BadMessage(f"unsupported protocol version {version!r}; this server speaks v1 and v2", re)
    if version == 1 and data.get("type") in SCENE_TYPES:
        raise BadMessage(f'{data["type"]} is a protocol v2 request: send it with "v": 2', re)
    try:
        return _REQUEST.validate_python(data)
    except ValidationError as exc:
        raise BadMessage(_describe(exc), re) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return "; ".join(parts)


def message(type_: str, re: str | int | None = None, *, v: int = VERSION, **fields: Any) -> str:
    """Encode a server → client message; ``v``: the request's version (an answer) or the connection's."""
    body: dict[str, Any] = {"v": v, "type": type_}
    if re is not None:
        body["re"] = re
    body.update(fields)
    return json.dumps(body, separators=(",", ":"), allow_nan=False)


def error(re: str | int | None, code: str, text: str, *, v: int = VERSION) -> str:
    return message("error", re, v=v, code=code, message=text)
