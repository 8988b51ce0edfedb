"""The remote scene of a connection (ARR ``RenderingConnection``'s scene API, data-channel protocol v2):
its entities, materials and textures, the sky, the outline, shell and point-cloud settings, and spatial
queries.

Reached as ``conn.scene``; every method is one request, sent with ``"v": 2``, and everything it changes
belongs to the connection (the next client starts from the session's clean slate, as in ARR)::

    scene = conn.scene
    marker = await scene.create_entity("marker", position=(0, 1, 0))
    await marker.create_component("CutPlane", normal="-X", fade_length=0.1)
    hits = await scene.raycast((0, 1, 5), (0, 0, -1))

Apart from :mod:`openrr.client.entities`, which holds what is asked of one entity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from openrr.client.entities import (
    Entity,
    SceneRequester,
    ask,
    entity_id,
    material_id,
    placement,
    scene_states,
)
from openrr.client.scene_fields import material_properties, optional_fields, vector
from openrr.client.scene_types import (
    EntityState,
    Material,
    OutlineSettings,
    PointCloudSettings,
    RayHit,
    ShellSettings,
    Skies,
    Texture,
)

#: how long texture and sky loads may take by default (seconds): they fetch and decode an image
LOAD_TIMEOUT = 60.0


class RemoteScene:
    """The scene API of one connection (``conn.scene``)."""

    def __init__(self, requester: SceneRequester) -> None:
        self._requester = requester

    async def _ask(self, body: dict[str, Any], answer: str, timeout: float | None = None) -> dict[str, Any]:
        return await ask(self._requester, body, answer, timeout)

    def _handle(self, state: Any) -> Entity:
        return Entity(self._requester, EntityState.from_json(state))

    # ---- entities ---------------------------------------------------------------------------------------
    async def entities(self) -> list[Entity]:
        """Every entity of the scene, parents before their children (``scene.get``, page by page)."""
        return [Entity(self._requester, s) for s in await scene_states(self._requester)]

    async def entity(self, entity: Entity | int) -> Entity:
        """A handle on the entity with this id (``entity.get``; ``EntityNotFound`` if there is none)."""
        answer = await self._ask({"type": "entity.get", "entity": entity_id(entity)}, "entity")
        return self._handle(answer.get("entity"))

    async def create_entity(
        self,
        name: str = "",
        *,
        parent: Entity | int | None = None,
        position: Sequence[float] | None = None,
        rotation: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
    ) -> Entity:
        """A new empty entity (ARR ``CreateEntity``), a root unless ``parent`` is given; ``rotation`` is a
        quaternion x, y, z, w."""
        body: dict[str, Any] = {"type": "entity.create", "name": name}
        if parent is not None:
            body["parent"] = entity_id(parent)
        body.update(placement(position, rotation, scale))
        answer = await self._ask(body, "entity")
        return self._handle(answer.get("entity"))

    # ---- materials and textures -----------------------------------------------------------------------
    async def material(self, material: Material | int) -> Material:
        """The material with this id (``material.get``)."""
        answer = await self._ask({"type": "material.get", "material": material_id(material)}, "material")
        return Material.from_json(answer.get("material"))

    async def set_material(self, material: Material | int, **properties: Any) -> Material:
        """Change a material everywhere it is used (``material.set``): ``albedo_color``, ``roughness``,
        ``metalness``, ``emissive_color``, ``alpha_mode``, ``uv_scale``, ``*_texture`` (a texture id, or
        None to remove it)... Returns the material as changed."""
        body = {
            "type": "material.set",
            "material": material_id(material),
            "properties": material_properties(properties),
        }
        return Material.from_json((await self._ask(body, "material")).get("material"))

    async def create_material(
        self, kind: Literal["pbr", "color"] = "pbr", name: str = "", **properties: Any
    ) -> Material:
        """A new material (ARR ``CreateMaterial``): ``"pbr"`` or ``"color"`` (unlit), with properties as
        :meth:`set_material` takes them. Put it on a mesh part with ``Entity.set_material``."""
        body = {
            "type": "material.create",
            "kind": kind,
            "name": name,
            "properties": material_properties(properties),
        }
        return Material.from_json((await self._ask(body, "material")).get("material"))

    async def load_texture(self, url: str, *, timeout: float = LOAD_TIMEOUT) -> Texture:
        """Load a texture from a path or URL (under the session's model source policy); its ``id`` goes
        into a material's ``*_texture`` property."""
        return Texture.from_json(await self._ask({"type": "texture.load", "url": url}, "texture", timeout))

    # ---- sky, outline, shell ----------------------------------------------------------------------------
    async def set_sky(
        self, url: str | None = None, *, faces: Sequence[str] | None = None, timeout: float = LOAD_TIMEOUT
    ) -> str:
        """Set the sky (ARR ``SkyReflectionSettings``) from ``builtin://NAME``, an image (equirectangular or
        a cube map cross or strip) or six ``faces`` (+X, -X, +Y, -Y, +Z, -Z); returns the sky's name."""
        if (url is None) == (faces is None):
            raise ValueError("give either url or faces (six urls: +X, -X, +Y, -Y, +Z, -Z)")
        body: dict[str, Any] = {"type": "sky.set"}
        if url is not None:
            body["url"] = url
        else:
            body["faces"] = list(faces or ())
        return str((await self._ask(body, "sky", timeout)).get("sky"))

    async def skies(self) -> Skies:
        """The built-in skies and the one in effect (``sky.list``)."""
        return Skies.from_json(await self._ask({"type": "sky.list"}, "skies"))

    async def set_outline(
        self,
        *,
        color: Sequence[float] | None = None,
        pulse_rate: float | None = None,
        pulse_intensity: float | None = None,
    ) -> OutlineSettings:
        """Change how selected entities are outlined: ``color`` (r, g, b), ``pulse_rate`` (Hz),
        ``pulse_intensity`` (0..1); what is not given stays. Returns the settings in effect."""
        body: dict[str, Any] = {"type": "outline.set"}
        if color is not None:
            body["color"] = vector(color, 3, "color")
        body.update(optional_fields(pulse_rate=pulse_rate, pulse_intensity=pulse_intensity))
        return OutlineSettings.from_json(await self._ask(body, "outline"))

    async def set_shell(
        self, *, desaturation: float | None = None, opacity: float | None = None
    ) -> ShellSettings:
        """Change the see-through look (0..1 each); what is not given stays. Returns the settings."""
        body = {"type": "shell.set", **optional_fields(desaturation=desaturation, opacity=opacity)}
        return ShellSettings.from_json(await self._ask(body, "shell"))

    async def set_point_cloud(
        self, *, point_size_scale: float | None = None, point_budget: int | None = None
    ) -> PointCloudSettings:
        """Change how point clouds are drawn (ARR ``PointCloudSettings``): ``point_size_scale`` multiplies
        every point's size (> 0, at most 100), ``point_budget`` caps the points drawn per frame; what is
        not given stays. Returns the settings in effect."""
        fields = optional_fields(point_size_scale=point_size_scale, point_budget=point_budget)
        return PointCloudSettings.from_json(
            await self._ask({"type": "pointCloud.set", **fields}, "pointCloud")
        )

    # ---- spatial queries --------------------------------------------------------------------------------
    async def raycast(
        self,
        origin: Sequence[float],
        direction: Sequence[float],
        *,
        mode: Literal["closest", "any", "all"] = "closest",
        max_hits: int | None = None,
        max_distance: float | None = None,
    ) -> list[RayHit]:
        """Cast a ray in world space (ARR ``RayCastQueryAsync``): ``"closest"`` gives at most one hit,
        ``"any"`` one hit found first, ``"all"`` the hits nearest first, at most ``max_hits``. Hidden,
        disabled and collision-disabled entities are not hit."""
        body: dict[str, Any] = {
            "type": "raycast",
            "origin": vector(origin, 3, "origin"),
            "direction": vector(direction, 3, "direction"),
            "mode": mode,
            **optional_fields(max_hits=max_hits, max_distance=max_distance),
        }
        hits = (await self._ask(body, "raycast.result")).get("hits")
        return [RayHit.from_json(h) for h in hits] if isinstance(hits, list) else []

    async def query_box(
        self, min: Sequence[float], max: Sequence[float], *, max_results: int | None = None
    ) -> list[int]:
        """The ids of the entities whose mesh meets the world-space box ``min``..``max``."""
        body = {"type": "query.box", "min": vector(min, 3, "min"), "max": vector(max, 3, "max")}
        return await self._query(body, max_results)

    async def query_sphere(
        self, center: Sequence[float], radius: float, *, max_results: int | None = None
    ) -> list[int]:
        """The ids of the entities whose mesh meets the sphere."""
        body = {"type": "query.sphere", "center": vector(center, 3, "center"), "radius": radius}
        return await self._query(body, max_results)

    async def query_oriented_box(
        self,
        center: Sequence[float],
        half_extents: Sequence[float],
        rotation: Sequence[float] = (0.0, 0.0, 0.0, 1.0),
        *,
        max_results: int | None = None,
    ) -> list[int]:
        """The ids of the entities whose mesh meets the box of ``half_extents`` around ``center``, turned
        by ``rotation`` (quaternion x, y, z, w)."""
        body = {
            "type": "query.orientedBox",
            "center": vector(center, 3, "center"),
            "halfExtents": vector(half_extents, 3, "half_extents"),
            "rotation": vector(rotation, 4, "rotation"),
        }
        return await self._query(body, max_results)

    async def _query(self, body: dict[str, Any], max_results: int | None) -> list[int]:
        body.update(optional_fields(max_results=max_results))
        ids = (await self._ask(body, "query.result")).get("entities")
        return [int(i) for i in ids] if isinstance(ids, list) else []
