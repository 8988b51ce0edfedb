"""The render server's requests as methods: camera, models, nodes, pick, stats, and the scene API as
``scene`` (:class:`openrr.client.scene.RemoteScene`).

:class:`RenderCommands` is a mixin of :class:`openrr.client.connection.RenderConnection`: each method builds
one data-channel request (``openrr.protocol.datachannel``) and hands it to :meth:`request`, which the
connection implements. Apart so that what a client can ask reads as one list next to the protocol, and
the connection keeps to the transport and what arrives over it.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from openrr.client.requests import Progress
from openrr.client.scene import RemoteScene


class RenderCommands(abc.ABC):
    """Camera, model, node and query requests; the answers are the server's messages as dicts."""

    xr_layout: dict[str, Any] | None = None  # the ``xr.started`` answer while in stereo mode

    @abc.abstractmethod
    async def request(
        self,
        msg: Mapping[str, Any] | BaseModel,
        *,
        timeout: float | None = None,
        on_progress: Progress | None = None,
        validate: bool = True,
    ) -> dict[str, Any]:
        """Send a request and return its answer (see ``RenderConnection.request``)."""

    @abc.abstractmethod
    def next_pose_id(self) -> int:
        """A pose id above every one sent or seen (see ``RenderConnection.next_pose_id``)."""

    @functools.cached_property
    def scene(self) -> RemoteScene:
        """The scene API (protocol v2): entities, components, materials, sky, settings, spatial queries."""
        return RemoteScene(self)

    async def _camera(self, body: dict[str, Any]) -> dict[str, Any]:
        body["poseId"] = self.next_pose_id()
        return await self.request(body)

    async def orbit(self, yaw: float, pitch: float = 0.0) -> dict[str, Any]:
        """Orbit the camera around its target by ``yaw``/``pitch`` degrees; returns the ``ack``."""
        return await self._camera({"type": "camera.orbit", "yaw": yaw, "pitch": pitch})

    async def pan(self, dx: float, dy: float) -> dict[str, Any]:
        """Pan by fractions of the view."""
        return await self._camera({"type": "camera.pan", "dx": dx, "dy": dy})

    async def zoom(self, factor: float) -> dict[str, Any]:
        """Zoom; ``factor`` > 1 moves closer."""
        return await self._camera({"type": "camera.zoom", "factor": factor})

    async def set_camera(
        self,
        position: tuple[float, float, float],
        orientation: tuple[float, float, float, float],
        fov: float = 60.0,
    ) -> dict[str, Any]:
        """Place the camera: ``orientation`` is a quaternion x, y, z, w; ``fov`` in degrees."""
        return await self._camera(
            {"type": "camera.set", "position": list(position), "orientation": list(orientation), "fov": fov}
        )

    async def frame_scene(self) -> dict[str, Any]:
        """Fit the scene into the view."""
        return await self._camera({"type": "camera.frame"})

    async def load_model(
        self,
        url: str,
        model_id: str | None = None,
        *,
        on_progress: Progress | None = None,
        timeout: float = 300.0,
    ) -> dict[str, Any]:
        """Load a model and return ``model.loaded`` (modelId, nodes, polygons); ``model.progress`` messages
        go to ``on_progress``. A refusal or failure raises RenderRequestError."""
        body: dict[str, Any] = {"type": "model.load", "url": url}
        if model_id is not None:
            body["modelId"] = model_id
        return await self.request(body, timeout=timeout, on_progress=on_progress)

    async def unload_model(self, model_id: str) -> dict[str, Any]:
        return await self.request({"type": "model.unload", "modelId": model_id})

    async def set_node(
        self,
        node: int | str,
        *,
        transform: Sequence[float] | None = None,
        visible: bool | None = None,
        color: tuple[float, float, float, float] | None = None,
        clear_color: bool = False,
    ) -> dict[str, Any]:
        """Change a node: local 4x4 ``transform`` (column-major), ``visible``, RGBA ``color`` override or
        ``clear_color`` to remove it."""
        body: dict[str, Any] = {"type": "node.set", "node": node}
        if transform is not None:
            body["transform"] = list(transform)
        if visible is not None:
            body["visible"] = visible
        if color is not None:
            body["color"] = list(color)
        if clear_color:
            body["clearColor"] = True
        return await self.request(body)

    async def pick(self, x: float, y: float) -> dict[str, Any]:
        """What is under view position ``x``, ``y`` (0..1, origin top left): the ``pick.result``."""
        return await self.request({"type": "pick", "x": x, "y": y})

    async def stats(self) -> dict[str, Any]:
        """The server's current ``stats``."""
        return await self.request({"type": "stats.get"})

    # ---- stereo (openrr.protocol.xr; frames and poses: RenderConnection.xr_frame, send_xr_pose) ----------
    async def start_xr(
        self,
        eye_width: int,
        eye_height: int,
        *,
        layout: str = "side-by-side",
        depth: bool = True,
        background: str = "opaque",
    ) -> dict[str, Any]:
        """Switch the stream to stereo; returns ``xr.started`` (the frame size and each eye's rectangles),
        which is also kept as ``xr_layout`` for the stereo frames to come."""
        answer = await self.request(
            {
                "type": "xr.start",
                "eye": {"width": eye_width, "height": eye_height},
                "layout": layout,
                "depth": depth,
                "background": background,
            }
        )
        self.xr_layout = answer
        return answer

    async def end_xr(self) -> dict[str, Any]:
        """Back to the 2D view."""
        answer = await self.request({"type": "xr.end"})
        self.xr_layout = None
        return answer
