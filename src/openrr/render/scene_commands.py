"""Protocol v2's dispatch: which handler answers each scene API request, and the per-connection state
they share (``SceneContext``: the pipeline and what this client has created so far).

Apart from ``connection.py`` (WebRTC, the data channel, protocol v1): this module only routes. The
handlers live by subject: entities and the hierarchy (``scene_entities``), components
(``scene_components``), materials and textures (``scene_materials``), outline and shell
(``scene_settings``), the sky (``scene_sky``), spatial queries (``scene_query_requests``). A handler
validates the request against the scene, does its scene work on the GL thread (``SceneContext.gl``), and
returns the answer's type and fields; a refusal raises ``SceneError`` (or the ``ModelError`` it is) with
the protocol's code. The answer carries the request's ``v`` (2).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard

from openrr.protocol import datachannel as protocol
from openrr.protocol import scene_api as api
from openrr.render import scene_components, scene_entities, scene_materials, scene_settings, scene_sky
from openrr.render.pipeline import RenderPipeline
from openrr.render.scene_context import SceneContext, SceneError
from openrr.render.scene_query_requests import spatial_query

Answer = tuple[str, dict[str, Any]]
Handler = Callable[[SceneContext, Any], Awaitable[Answer]]

HANDLERS: dict[str, Handler] = {
    "scene.get": scene_entities.scene_get,
    "entity.create": scene_entities.entity_create,
    "entity.get": scene_entities.entity_get,
    "entity.set": scene_entities.entity_set,
    "entity.destroy": scene_entities.entity_destroy,
    "entity.bounds": scene_entities.entity_bounds,
    "entity.metadata": scene_entities.entity_metadata,
    "component.create": scene_components.component_create,
    "component.set": scene_components.component_set,
    "component.get": scene_components.component_get,
    "component.destroy": scene_components.component_destroy,
    "material.list": scene_materials.material_list,
    "material.get": scene_materials.material_get,
    "material.set": scene_materials.material_set,
    "material.create": scene_materials.material_create,
    "mesh.setMaterial": scene_materials.mesh_set_material,
    "texture.load": scene_materials.texture_load,
    "outline.set": scene_settings.outline_set,
    "shell.set": scene_settings.shell_set,
    "pointCloud.set": scene_settings.point_cloud_set,
    "sky.set": scene_sky.sky_set,
    "sky.list": scene_sky.sky_list,
    "raycast": spatial_query,
    "query.box": spatial_query,
    "query.sphere": spatial_query,
    "query.orientedBox": spatial_query,
}


class SceneCommands:
    """Answers one connection's scene API requests; made with the connection, so a new client starts
    with fresh counters (entities created, textures loaded) as well as the pipeline's fresh scene."""

    def __init__(self, pipeline: RenderPipeline) -> None:
        self.context = SceneContext(pipeline)

    async def answer(self, request: api.SceneRequest) -> str:
        """The answer message to ``request``. Raises ``SceneError`` (a ``ModelError``) for a refusal, which
        the connection answers with ``error`` and its code; any other exception is a bug (InternalError)."""
        handler = HANDLERS.get(request.type)
        if handler is None:  # every type of the protocol has one: a gap is a bug (InternalError)
            raise LookupError(f"no handler for {request.type}")
        type_, fields = await handler(self.context, request)
        text = protocol.message(type_, request.id, v=request.v, **fields)
        if len(text.encode()) > api.MAX_ANSWER_BYTES:
            raise SceneError(
                "BadMessage",
                f"the answer would take {len(text.encode())} bytes, more than the {api.MAX_ANSWER_BYTES} of "
                "a data-channel message: ask for less (scene.get: offset and limit)",
            )
        return text


def is_scene_request(request: protocol.Request) -> TypeGuard[api.SceneRequest]:
    """Whether ``request`` is one of protocol v2's scene API requests (answered here)."""
    return request.type in api.SCENE_TYPES
