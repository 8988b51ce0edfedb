"""An entity of the remote scene as a Python handle (ARR ``Entity``): its transform, parent and enabled
flag, its bounds and metadata, its components and its mesh's materials, each an awaitable request.

Apart from :mod:`openrr.client.scene` (the scene-wide requests, which hand out these handles) so that each
reads as one list next to ARR's API. Every request goes through :func:`ask`, which checks that the answer
is of the expected type; an ``error`` answer raises RenderRequestError with the server's code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from openrr.client.errors import RenderRequestError
from openrr.client.scene_fields import (
    STATE_OVERRIDE,
    OverrideLike,
    camel,
    component_properties,
    component_type,
    optional_fields,
    vector,
)
from openrr.client.scene_types import (
    Bounds,
    Component,
    EntityMaterials,
    EntityState,
    Material,
    Quat,
    Transform,
    Vec3,
)


class SceneRequester(Protocol):
    """What the scene API needs of a connection: :meth:`RenderConnection.request`."""

    async def request(
        self, msg: Mapping[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]: ...  # pragma: no cover - a protocol


async def ask(
    requester: SceneRequester, body: dict[str, Any], answer: str, timeout: float | None = None
) -> dict[str, Any]:
    """Send ``body`` (a v2 request) and return its answer, which must be of type ``answer``."""
    reply = await requester.request(body, timeout=timeout)
    if reply.get("type") != answer:
        raise RenderRequestError(
            "BadAnswer", f"expected {answer}, got {str(reply.get('type'))[:64]}", str(body.get("type"))
        )
    return reply


#: entities asked for per ``scene.get``: an answer is one data-channel message of at most
#: ``scene_api.MAX_ANSWER_BYTES`` (256 KiB), and an entity takes about 1 KB of it (2.6 KB with a long name)
SCENE_PAGE = 100


async def scene_states(requester: SceneRequester) -> list[EntityState]:
    """Every entity of the scene, parents first, read page by page (``scene.get``'s offset and limit). A page
    the server finds too large for one answer (``BadMessage``) is asked for again in halves."""
    states: list[EntityState] = []
    limit = SCENE_PAGE
    while True:
        body = {"type": "scene.get", "offset": len(states), "limit": limit}
        try:
            answer = await ask(requester, body, "scene")
        except RenderRequestError as exc:
            if exc.code != "BadMessage" or limit == 1:
                raise
            limit //= 2
            continue
        page, total = answer.get("entities"), answer.get("total")
        if not isinstance(page, list) or not isinstance(total, int):
            raise RenderRequestError("BadAnswer", "a scene answer needs entities and total", "scene.get")
        states.extend(EntityState.from_json(s) for s in page)
        if not page or len(states) >= total:
            return states


def entity_id(entity: Entity | int) -> int:
    """The id of an entity given as a handle or as its id."""
    if isinstance(entity, Entity):
        return entity.id
    if isinstance(entity, bool) or not isinstance(entity, int):
        raise TypeError(f"an entity is an Entity or an integer id, not {type(entity).__name__}")
    return entity


def material_id(material: Material | int) -> int:
    """The id of a material given as a :class:`Material` or as its id."""
    if isinstance(material, Material):
        return material.id
    if isinstance(material, bool) or not isinstance(material, int):
        raise TypeError(f"a material is a Material or an integer id, not {type(material).__name__}")
    return material


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


#: ``Entity.set(parent=KEEP)`` (the default) leaves the parent as it is; ``parent=None`` makes a root.
KEEP: Any = _Keep()


class Entity:
    """A handle on one entity. The attributes (``name``, ``parent``, ``position``...) are the entity as the
    last answer about it described it; :meth:`refresh` asks again. Two handles on the same entity of the
    same connection compare equal."""

    def __init__(self, requester: SceneRequester, state: EntityState) -> None:
        self._requester = requester
        #: the entity as last described by the server
        self.state = state

    # ---- what the last answer said -------------------------------------------------------------------
    @property
    def id(self) -> int:
        return self.state.id

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def parent(self) -> int | None:
        """The parent's id; None for a root."""
        return self.state.parent

    @property
    def enabled(self) -> bool:
        return self.state.enabled

    @property
    def components(self) -> tuple[str, ...]:
        """The types of the entity's components (``CutPlane``...)."""
        return self.state.components

    @property
    def local(self) -> Transform:
        return self.state.local

    @property
    def world(self) -> Transform:
        return self.state.world

    @property
    def position(self) -> Vec3:
        """The local position (relative to the parent)."""
        return self.state.local.position

    @property
    def rotation(self) -> Quat:
        """The local rotation, a quaternion x, y, z, w."""
        return self.state.local.rotation

    @property
    def scale(self) -> Vec3:
        return self.state.local.scale

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entity) and (other._requester, other.id) == (self._requester, self.id)

    def __hash__(self) -> int:
        return hash((id(self._requester), self.id))

    def __repr__(self) -> str:
        return f"Entity(id={self.id}, name={self.name!r}, parent={self.parent})"

    # ---- the entity --------------------------------------------------------------------------------------
    async def _entity(self, body: dict[str, Any]) -> Entity:
        answer = await ask(self._requester, body, "entity")
        self.state = EntityState.from_json(answer.get("entity"))
        return self

    async def refresh(self) -> Entity:
        """Ask for the entity again (``entity.get``); returns this handle, updated."""
        return await self._entity({"type": "entity.get", "entity": self.id})

    async def set(
        self,
        *,
        parent: Entity | int | None = KEEP,
        enabled: bool | None = None,
        name: str | None = None,
        position: Sequence[float] | None = None,
        rotation: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
        transform: Iterable[float] | None = None,
    ) -> Entity:
        """Change the entity (``entity.set``): reparent it (``parent=None`` makes it a root), enable or
        disable its subtree, rename it, replace parts of its local transform, or give the whole local
        ``transform`` (16 values, column-major, or a 4x4 array as numpy writes a matrix, row by row). What
        is not given stays. Returns this handle, updated."""
        body: dict[str, Any] = {"type": "entity.set", "entity": self.id}
        if parent is not KEEP:
            body["parent"] = None if parent is None else entity_id(parent)
        body.update(optional_fields(enabled=enabled, name=name))
        body.update(placement(position, rotation, scale))
        if transform is not None:
            matrix: Any = transform
            if getattr(matrix, "shape", None) == (4, 4):
                matrix = matrix.T.reshape(-1)  # the wire's column-major order
            body["transform"] = vector(matrix, 16, "transform")
        return await self._entity(body)

    async def children(self) -> list[Entity]:
        """The entity's children, each as a handle (read with the whole scene, ``scene.get``)."""
        states = await scene_states(self._requester)
        return [Entity(self._requester, s) for s in states if s.parent == self.id]

    async def destroy(self) -> list[int]:
        """Destroy the entity and its subtree (``entity.destroy``); returns the ids destroyed."""
        answer = await ask(self._requester, {"type": "entity.destroy", "entity": self.id}, "ack")
        return [int(i) for i in answer.get("destroyed") or []]

    async def query_local_bounds(self) -> Bounds | None:
        """The subtree's bounds in the entity's own space; None when it has no geometry."""
        return await self._bounds("local")

    async def query_world_bounds(self) -> Bounds | None:
        """The subtree's bounds in world space; None when it has no geometry."""
        return await self._bounds("world")

    async def _bounds(self, space: str) -> Bounds | None:
        body = {"type": "entity.bounds", "entity": self.id, "space": space}
        return Bounds.from_json(await ask(self._requester, body, "bounds"))

    async def query_metadata(self) -> dict[str, Any]:
        """The object metadata conversion kept for this entity (keys as in the model)."""
        answer = await ask(self._requester, {"type": "entity.metadata", "entity": self.id}, "metadata")
        metadata = answer.get("metadata")
        return dict(metadata) if isinstance(metadata, Mapping) else {}

    # ---- components -----------------------------------------------------------------------------------
    async def _component(self, request: str, kind: str, properties: dict[str, Any] | None) -> Component:
        body: dict[str, Any] = {"type": request, "entity": self.id, "component": component_type(kind)}
        if properties is not None:
            body["properties"] = component_properties(kind, properties)
        return Component.from_json(await ask(self._requester, body, "component"))

    async def create_component(self, kind: str, **properties: Any) -> Component:
        """Add a component (ARR ``CreateComponent``): ``kind`` is ``HierarchicalStateOverride``,
        ``CutPlane``, ``PointLight``, ``SpotLight`` or ``DirectionalLight``; ``properties`` in snake_case
        (``fade_color=(1, 0, 0, 1)``). ``ComponentExists`` if the entity has one of that type."""
        return await self._component("component.create", kind, properties)

    async def set_component(self, kind: str, **properties: Any) -> Component:
        """Change the given properties of the entity's component of type ``kind``."""
        return await self._component("component.set", kind, properties)

    async def get_component(self, kind: str) -> Component:
        """The entity's component of type ``kind`` (``ComponentNotFound`` if it has none)."""
        return await self._component("component.get", kind, None)

    async def destroy_component(self, kind: str) -> None:
        """Remove the entity's component of type ``kind``."""
        body = {"type": "component.destroy", "entity": self.id, "component": component_type(kind)}
        await ask(self._requester, body, "ack")

    async def set_state(self, **overrides: OverrideLike | Sequence[float] | int) -> Component:
        """Set hierarchical state overrides (ARR ``HierarchicalStateOverrideComponent``), creating the
        component when the entity has none: ``hidden``, ``see_through``, ``selected``, ``tint``,
        ``disable_collision``, ``use_cut_plane_filter_mask`` each ``"ForceOn"``/True, ``"ForceOff"``/False
        or ``"InheritFromParent"``/None; ``tint_color`` (r, g, b, strength); ``cut_plane_filter_mask``."""
        try:
            return await self.set_component(STATE_OVERRIDE, **overrides)
        except RenderRequestError as exc:
            if exc.code != "ComponentNotFound":
                raise
        return await self.create_component(STATE_OVERRIDE, **overrides)

    # ---- materials --------------------------------------------------------------------------------------
    async def materials(self) -> EntityMaterials:
        """The mesh parts and their materials (``material.list``)."""
        answer = await ask(self._requester, {"type": "material.list", "entity": self.id}, "materials")
        return EntityMaterials.from_json(answer)

    async def set_material(self, part: int, material: Material | int) -> EntityMaterials:
        """Put ``material`` on mesh part ``part`` of this entity only (``mesh.setMaterial``)."""
        body = {
            "type": "mesh.setMaterial",
            "entity": self.id,
            "part": part,
            "material": material_id(material),
        }
        return EntityMaterials.from_json(await ask(self._requester, body, "materials"))


def placement(
    position: Sequence[float] | None, rotation: Sequence[float] | None, scale: Sequence[float] | None
) -> dict[str, list[float]]:
    """The given parts of a local transform, as lists (``entity.create``, ``entity.set``)."""
    given = {"position": (position, 3), "rotation": (rotation, 4), "scale": (scale, 3)}
    return {camel(k): vector(v, n, k) for k, (v, n) in given.items() if v is not None}
