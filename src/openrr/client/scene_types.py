"""The scene API's answers as Python values: transforms, bounds, ray hits, components, materials,
textures, skies and the connection's outline and shell settings.

Each type is read from its protocol v2 answer (``openrr.protocol.scene_api`` documents the fields) by
``from_json``; names are snake_case (``scene_fields`` maps them). Apart from the handles that ask for them
(``scene``, ``entities``) so that a caller can name the types, and tests can read answers, without a
connection. A malformed answer raises RenderRequestError ``BadAnswer``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openrr.client.errors import RenderRequestError
from openrr.client.scene_fields import snake, snake_keys

Vec2 = tuple[float, float]
Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]
Color3 = tuple[float, float, float]
Color4 = tuple[float, float, float, float]


def _bad(what: str, answer: Any) -> RenderRequestError:
    return RenderRequestError("BadAnswer", f"not a valid {what}: {str(answer)[:200]}")


def _floats(value: Any, length: int, what: str) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or len(value) != length:
        raise _bad(what, value)
    try:
        return tuple(float(c) for c in value)
    except (TypeError, ValueError):
        raise _bad(what, value) from None


def _vec3(value: Any, what: str) -> Vec3:
    x, y, z = _floats(value, 3, what)
    return (x, y, z)


def _quat(value: Any, what: str) -> Quat:
    x, y, z, w = _floats(value, 4, what)
    return (x, y, z, w)


def _field(answer: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = answer.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _types(kind)):
        raise _bad(what, answer)
    return value


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


@dataclass(frozen=True)
class Transform:
    """A local or world transform: ``position``, ``rotation`` (quaternion x, y, z, w), ``scale`` and the 4x4
    ``matrix`` (16 values, column-major as glTF)."""

    position: Vec3
    rotation: Quat
    scale: Vec3
    matrix: tuple[float, ...]

    @classmethod
    def from_json(cls, answer: Any) -> Transform:
        if not isinstance(answer, Mapping):
            raise _bad("transform", answer)
        return cls(
            _vec3(answer.get("position"), "transform position"),
            _quat(answer.get("rotation"), "transform rotation"),
            _vec3(answer.get("scale"), "transform scale"),
            _floats(answer.get("matrix"), 16, "transform matrix"),
        )


@dataclass(frozen=True)
class EntityState:
    """An entity as the server last described it (the ``entity`` object of ``entity`` and ``scene``)."""

    id: int
    name: str
    parent: int | None
    enabled: bool
    mesh: bool
    parts: int
    components: tuple[str, ...]
    local: Transform
    world: Transform

    @classmethod
    def from_json(cls, answer: Any) -> EntityState:
        if not isinstance(answer, Mapping):
            raise _bad("entity", answer)
        parent = answer.get("parent")
        if parent is not None and (not isinstance(parent, int) or isinstance(parent, bool)):
            raise _bad("entity", answer)
        components = _field(answer, "components", list, "entity")
        return cls(
            id=_field(answer, "id", int, "entity"),
            name=str(answer.get("name") or ""),
            parent=parent,
            enabled=_field(answer, "enabled", bool, "entity"),
            mesh=bool(answer.get("mesh")),
            parts=int(answer.get("parts") or 0),
            components=tuple(str(c) for c in components),
            local=Transform.from_json(answer.get("local")),
            world=Transform.from_json(answer.get("world")),
        )


@dataclass(frozen=True)
class Bounds:
    """An axis-aligned box, ``min`` and ``max`` corners (ARR ``QueryLocalBoundsAsync``/``World``)."""

    min: Vec3
    max: Vec3

    @property
    def center(self) -> Vec3:
        return (
            (self.min[0] + self.max[0]) / 2,
            (self.min[1] + self.max[1]) / 2,
            (self.min[2] + self.max[2]) / 2,
        )

    @property
    def size(self) -> Vec3:
        return (self.max[0] - self.min[0], self.max[1] - self.min[1], self.max[2] - self.min[2])

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> Bounds | None:
        """The ``bounds`` answer's box, None when the entity's subtree has no geometry."""
        if answer.get("min") is None and answer.get("max") is None:
            return None
        return cls(
            _vec3(answer.get("min"), "bounds"),
            _vec3(answer.get("max"), "bounds"),
        )


@dataclass(frozen=True)
class RayHit:
    """One hit of a ray cast (ARR ``RayCastHit``): the entity and mesh ``part`` hit, the world ``position``,
    the unit ``normal`` facing the ray's origin and the ``distance`` along the ray."""

    entity: int
    part: int
    position: Vec3
    normal: Vec3
    distance: float

    @classmethod
    def from_json(cls, answer: Any) -> RayHit:
        if not isinstance(answer, Mapping):
            raise _bad("ray hit", answer)
        return cls(
            entity=_field(answer, "entity", int, "ray hit"),
            part=_field(answer, "part", int, "ray hit"),
            position=_vec3(answer.get("position"), "ray hit position"),
            normal=_vec3(answer.get("normal"), "ray hit normal"),
            distance=float(_field(answer, "distance", (int, float), "ray hit")),
        )


@dataclass(frozen=True)
class Component:
    """A component of an entity: its ``type`` (``CutPlane``...) and ``properties`` with snake_case names
    (state overrides as the server's words, ``"ForceOn"``...; colours and vectors as lists)."""

    entity: int
    type: str
    properties: dict[str, Any]

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> Component:
        properties = answer.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise _bad("component", answer)
        return cls(
            _field(answer, "entity", int, "component"),
            _field(answer, "component", str, "component"),
            snake_keys(properties),
        )


@dataclass(frozen=True)
class Material:
    """A material (ARR ``PbrMaterial`` for kind ``"pbr"``, ``ColorMaterial`` for ``"color"``). Textures are
    texture ids or None; a property the server did not send is None."""

    id: int
    name: str
    kind: str
    albedo_color: Color4 | None = None
    albedo_texture: int | None = None
    roughness: float | None = None
    metalness: float | None = None
    normal_texture: int | None = None
    ao_texture: int | None = None
    emissive_color: Color3 | None = None
    emissive_texture: int | None = None
    metallic_roughness_texture: int | None = None
    alpha_mode: str | None = None
    alpha_cutoff: float | None = None
    double_sided: bool | None = None
    uv_scale: Vec2 | None = None
    uv_offset: Vec2 | None = None

    @classmethod
    def from_json(cls, answer: Any) -> Material:
        if not isinstance(answer, Mapping):
            raise _bad("material", answer)
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in answer.items():
            name = snake(key)
            if name in known and value is not None:
                # lists (colours, uv) as tuples, so that the dataclass stays hashable and comparable
                values[name] = tuple(value) if isinstance(value, list) else value
        try:
            return cls(**{"name": "", "kind": "pbr", **values})
        except TypeError:
            raise _bad("material", answer) from None


@dataclass(frozen=True)
class EntityMaterials:
    """An entity's mesh parts and the material on each (``material.list``, ``mesh.setMaterial``)."""

    entity: int
    parts: dict[int, int]
    materials: dict[int, Material]

    def of(self, part: int) -> Material:
        """The material on mesh part ``part``."""
        return self.materials[self.parts[part]]

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> EntityMaterials:
        parts = _field(answer, "parts", list, "materials")
        materials = [Material.from_json(m) for m in _field(answer, "materials", list, "materials")]
        try:
            by_part = {int(p["part"]): int(p["material"]) for p in parts}
        except (TypeError, KeyError, ValueError):
            raise _bad("materials", answer) from None
        return cls(
            _field(answer, "entity", int, "materials"),
            by_part,
            {m.id: m for m in materials},
        )


@dataclass(frozen=True)
class Texture:
    """A loaded texture: its id (for a material's ``*_texture``), size and the url it came from."""

    id: int
    width: int
    height: int
    url: str

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> Texture:
        return cls(
            _field(answer, "texture", int, "texture"),
            _field(answer, "width", int, "texture"),
            _field(answer, "height", int, "texture"),
            str(answer.get("url", "")),
        )


@dataclass(frozen=True)
class Skies:
    """The built-in skies' names (``builtin://NAME``) and the sky in effect."""

    skies: tuple[str, ...]
    current: str

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> Skies:
        names = _field(answer, "skies", list, "skies")
        return cls(tuple(str(n) for n in names), str(answer.get("current", "")))


@dataclass(frozen=True)
class OutlineSettings:
    """How selected entities are outlined (ARR ``OutlineSettings``): colour, pulse rate (Hz), intensity."""

    color: Color3
    pulse_rate: float
    pulse_intensity: float

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> OutlineSettings:
        return cls(
            _vec3(answer.get("color"), "outline colour"),
            float(_field(answer, "pulseRate", (int, float), "outline")),
            float(_field(answer, "pulseIntensity", (int, float), "outline")),
        )


@dataclass(frozen=True)
class ShellSettings:
    """The see-through look (ARR ``ShellRenderingSettings``): desaturation and opacity, 0..1."""

    desaturation: float
    opacity: float

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> ShellSettings:
        return cls(
            float(_field(answer, "desaturation", (int, float), "shell")),
            float(_field(answer, "opacity", (int, float), "shell")),
        )


@dataclass(frozen=True)
class PointCloudSettings:
    """How point clouds are drawn (ARR ``PointCloudSettings``): the scale of every point's size and the
    points drawn per frame at most."""

    point_size_scale: float
    point_budget: int

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> PointCloudSettings:
        return cls(
            float(_field(answer, "pointSizeScale", (int, float), "pointCloud")),
            int(_field(answer, "pointBudget", int, "pointCloud")),
        )
