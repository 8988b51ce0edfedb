"""The camera requests of the data channel (``camera.set/orbit/pan/zoom``) applied to a pipeline's camera.

Apart from ``connection.py`` (the client's transport and the order requests run in): moving the camera
runs on the event loop at once, never waiting for a render, and tells the frames that the view changed.
"""

from __future__ import annotations

from openrr.protocol import datachannel as protocol
from openrr.render.pipeline import RenderPipeline

CameraMove = protocol.CameraSet | protocol.CameraOrbit | protocol.CameraPan | protocol.CameraZoom


def move_camera(p: RenderPipeline, request: CameraMove) -> None:
    match request:
        case protocol.CameraSet():
            p.camera.set_pose(request.position, request.orientation, request.fov)
        case protocol.CameraOrbit():
            p.camera.orbit(request.yaw, request.pitch)
        case protocol.CameraPan():
            p.camera.pan(request.dx, request.dy, p.width / p.height)
        case protocol.CameraZoom():
            p.camera.zoom(request.factor)
    p.camera_changed(request.poseId)
