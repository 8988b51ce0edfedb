"""What every scene API handler works with: the pipeline (its scene, its GL thread), the client's own
counters and limits, and the refusal they raise (``SceneError``).

Apart from the handlers (``scene_entities``, ``scene_components``, ``scene_materials``,
``scene_settings``) so that they share one definition of "run this on the GL thread and show it" and of
the per-connection bounds, and from the dispatch (``scene_commands``) so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from openrr.model.scene import Node, Scene
from openrr.render.pipeline import RenderPipeline
from openrr.render.session_models import ModelError

T = TypeVar("T")

MAX_CREATED_ENTITIES = 10_000  # entity.create per connection
MAX_CREATED_MATERIALS = 10_000  # material.create per connection
MAX_TEXTURES = 256  # texture.load per connection
# Decoded pixels of all textures one connection loads, unless the session's size allows fewer (1 GiB RGBA).
MAX_TEXTURE_PIXELS = 256 * 2**20


class SceneError(ModelError):
    """A scene API request refused; ``code`` is the protocol's error code (``openrr.protocol.scene_api``)."""


class SceneContext:
    """One connection's scene API state. ``scene`` is read on the GL thread only (a reset swaps it there)."""

    def __init__(self, pipeline: RenderPipeline) -> None:
        self.pipeline = pipeline
        self.entities_created = 0
        self.materials_created = 0
        self.textures_loaded = 0
        self.texture_loads = 0  # in flight
        self.texture_pixels = 0

    @property
    def scene(self) -> Scene:
        return self.pipeline.scene

    async def gl(self, fn: Callable[[], T], *, changes: bool = True) -> T:
        """Run ``fn`` on the GL thread; when it ``changes`` the scene, a new frame is rendered after it."""
        result = await self.pipeline.on_gl(fn)
        if changes:
            self.pipeline.changed()
        return result

    def node(self, entity: int) -> Node:
        """The entity ``entity`` of the current scene (on the GL thread), or ``EntityNotFound``."""
        if entity not in self.scene:
            raise SceneError("EntityNotFound", f"no entity {entity} in the scene")
        return self.scene.node(entity)

    def texture_pixels_left(self) -> int:
        """Decoded texture pixels this connection may still load."""
        limit = MAX_TEXTURE_PIXELS
        per_session = self.pipeline.limits.texture_pixels_per_session
        if per_session is not None:
            limit = min(limit, per_session)
        return max(limit - self.texture_pixels, 0)
