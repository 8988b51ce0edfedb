"""How the scene appears in data-channel answers: a node, a pick's hit and the camera, as JSON objects.

Apart from ``pipeline.py``, which runs the requests (on the GL thread, in order): these are the answers'
shapes, plain functions of the scene graph and the camera. The data-channel contract
(``openrr.protocol.datachannel``) documents the fields.
"""

from __future__ import annotations

from typing import Any

from openrr.model.scene import Node, Scene
from openrr.render.camera import Camera
from openrr.render.spatial import RayHit


def node_json(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "name": node.name,
        "parent": node.parent,
        "mesh": node.mesh is not None,
        "visible": node.visible,
    }


def pick_json(scene: Scene, found: RayHit | None) -> dict[str, Any] | None:
    """The node hit and the world-space point, or None when nothing (or a node since removed) was hit."""
    if found is None or found.entity not in scene:
        return None
    node = scene.node(found.entity)
    return {
        "node": {"id": node.id, "name": node.name},
        "position": [round(float(v), 6) for v in found.position],
    }


def camera_json(camera: Camera) -> dict[str, Any]:
    return {
        "position": [round(float(v), 6) for v in camera.position],
        "orientation": [round(float(v), 6) for v in camera.orientation],
        "fov": camera.fov,
        "target": [round(float(v), 6) for v in camera.target],
    }
