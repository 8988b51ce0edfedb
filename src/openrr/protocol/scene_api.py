"""The scene API: data-channel protocol v2's requests, named after ARR's client runtime.

Protocol v2 keeps every v1 message (``openrr.protocol.datachannel``) and adds the requests below. A client
speaks v2 by sending ``"v": 2``; the answers to a request carry the request's ``v``, and pushed messages
(``frame``, ``stats``, ``bye``) carry the highest version the client has used, so a v1 client never sees a
``"v": 2``. A v2 request sent as ``"v": 1`` is answered ``BadMessage``. ``hello`` says ``protocols: [1, 2]``.

Everything here belongs to the client connection, as in ARR: the next client starts from the session's
clean slate (its preloaded models, no components, original materials, the default sky and settings).

Entities (ARR ``Entity``) are the nodes of the loaded models and the ones a client creates; ``entity`` is an
id (integer, never reused in a connection). The hierarchy is in ``hello.nodes`` and in ``scene``.

Client → server (v2)                                          Server → client
  scene.get        offset?, limit?                              scene      entities [entity, ...], total,
                                                                             offset
  entity.create    name?, parent?, position?, rotation?, scale?  entity     entity (as below)
  entity.get       entity                                       entity
  entity.set       entity, parent?, enabled?, name?,            entity
                   position?, rotation?, scale?, transform?
  entity.destroy   entity                                       ack        destroyed [ids], destroyedCount
  entity.bounds    entity, space ("local" | "world")            bounds     entity, space, min, max (or null)
  entity.metadata  entity                                       metadata   entity, metadata {key: value}
  component.create entity, component, properties?               component  entity, component, properties
  component.set    entity, component, properties                component
  component.get    entity, component                            component
  component.destroy entity, component                           ack
  material.list    entity                                       materials  entity, parts [{part, material}],
                                                                             materials [material]
  material.get     material                                     material   material
  material.set     material, properties                         material
  material.create  kind ("pbr" | "color"), name?, properties?   material
  mesh.setMaterial entity, part, material                       materials
  texture.load     url                                          texture    texture, width, height, url
  sky.set          url | faces [6 urls]                          sky        sky (name)
  sky.list                                                      skies      skies [names], current
  outline.set      color?, pulseRate?, pulseIntensity?          outline    color, pulseRate, pulseIntensity
  shell.set        desaturation?, opacity?                      shell      desaturation, opacity
  pointCloud.set   pointSizeScale?, pointBudget?                pointCloud pointSizeScale, pointBudget
  raycast          origin, direction, maxDistance?, mode?,      raycast.result  hits [hit]
                   maxHits?
  query.box        min, max, maxResults?                        query.result    entities [ids]
  query.sphere     center, radius, maxResults?                  query.result
  query.orientedBox center, halfExtents, rotation, maxResults?  query.result

An ``entity`` object: ``id``, ``name``, ``parent`` (null for a root), ``enabled``, ``mesh`` (bool), ``parts``
(mesh parts, 0 without a mesh), ``components`` (type names), ``local`` and ``world`` transforms, each
{``position``, ``rotation`` (quaternion x, y, z, w), ``scale``, ``matrix`` (16 values, column-major as
glTF)}. ``entity.set``'s ``transform`` is a local 4x4 column-major matrix; ``position``/``rotation``/
``scale`` replace those parts of the local transform. ``parent: null`` makes the entity a root; a parent
inside the entity's own subtree is ``BadMessage``. ``enabled: false`` hides the subtree and removes it from
spatial queries (ARR ``Entity.Enabled``); v1's ``node.set visible`` is the same flag.

Components (ARR: at most one of each type per entity), ``component`` and its ``properties``:

* ``HierarchicalStateOverride``: ``hidden``, ``seeThrough``, ``selected``, ``tint``, ``disableCollision``,
  ``useCutPlaneFilterMask``, each ``"ForceOn"``, ``"ForceOff"`` or ``"InheritFromParent"`` (default);
  ``tintColor`` [r, g, b, a] (linear 0..1; ``a`` is the tint's strength); ``cutPlaneFilterMask`` (uint32).
  An entity's effective state is the nearest explicit setting on the way up (its own first); none means
  off. The tint colour and filter mask travel with the setting that is in effect.
* ``CutPlane``: ``normal`` (``"X"``, ``"-X"``, ``"Y"``, ``"-Y"``, ``"Z"``, ``"-Z"`` in the entity's space, or
  a free vector [x, y, z]), ``fadeColor`` [r, g, b, a], ``fadeLength`` (world units, >= 0),
  ``objectFilterMask`` (uint32, default all bits), ``enabled``. The plane passes through the entity's origin
  and moves with it; what lies on the side the normal points to is cut away. An entity whose effective
  ``useCutPlaneFilterMask`` is on is cut only by planes with ``objectFilterMask & cutPlaneFilterMask != 0``;
  other entities by every plane. At most 8 enabled cut planes (``TooManyCutPlanes``).
* ``PointLight``, ``SpotLight``, ``DirectionalLight``: ``color`` [r, g, b], ``intensity`` (>= 0), ``range``
  (point and spot: distance where the light has faded to nothing, 0 = unbounded), ``innerConeAngle`` and
  ``outerConeAngle`` (spot, degrees of the half angle, inner <= outer < 90), ``enabled``. Spot and
  directional lights shine along the entity's -Z axis (as glTF's punctual lights). No shadows, as ARR.
  At most 8 enabled lights (``TooManyLights``).

Materials have ids (integers) per connection; a mesh part is an index into the entity's mesh's
primitives. A ``material`` object: ``id``, ``name``, ``kind`` (``"pbr"``; ``"color"``: unlit, ARR's
``ColorMaterial``) and its properties: ``albedoColor`` [r, g, b, a], ``albedoTexture``, ``roughness``,
``metalness``, ``normalTexture``, ``aoTexture``, ``emissiveColor`` [r, g, b], ``emissiveTexture``,
``metallicRoughnessTexture``, ``alphaMode`` (``"Opaque"``, ``"Mask"``, ``"Blend"``), ``alphaCutoff``,
``doubleSided``, ``uvScale`` [u, v], ``uvOffset`` [u, v] (textures: a texture id or null). ``material.set``
changes the material everywhere it is used (as ARR's shared material objects); ``mesh.setMaterial``
puts a material on one entity's part only. Textures load with ``texture.load`` under the same source
policy and size limits as models.

Sky (ARR ``SkyReflectionSettings``): ``builtin://NAME`` (``sky.list`` names them; generated by openrr, nothing
downloaded) or an image: an equirectangular panorama (2:1), a cube map as a horizontal cross (4:3) or
strip (6:1), or ``faces`` in the order +X, -X, +Y, -Y, +Z, -Z. The sky is the background and lights the
scene (diffuse and reflections). ``builtin://default`` is the look before any ``sky.set``.

Outline (ARR ``OutlineSettings``): ``color`` [r, g, b], ``pulseRate`` (Hz, >= 0), ``pulseIntensity`` (0..1).
Shell (ARR ``ShellRenderingSettings``, the see-through look): ``desaturation`` (0..1), ``opacity`` (0..1).
Point clouds (ARR ``PointCloudSettings``): ``pointSizeScale`` (> 0, at most 100; 1: a point's size is the
spacing of the points drawn) multiplies every point's size; ``pointBudget`` (1000 to 100 million) caps the
points drawn per frame over all clouds (each cloud draws a prefix of its level-of-detail order: the
picture thins evenly). Point clouds are entities with no mesh parts (``mesh`` false); ray casts and
spatial queries do not hit points.

Spatial queries (ARR ``RayCastQueryAsync``, spatial queries): ``mode`` ``"closest"`` (default), ``"any"`` or
``"all"`` (nearest first, at most ``maxHits``, default 8, at most 64); a ``hit`` is ``entity``, ``part``,
``position``, ``normal`` (unit, facing the ray's origin), ``distance``. Volume queries answer the entities
whose mesh triangles meet the volume, at most ``maxResults`` (default 256, at most 4096). Hidden,
disabled and collision-disabled entities are never hit or found. v1's ``pick`` is a ray cast through the
pixel that also skips what cut planes removed.

An answer is one data-channel message of at most ``MAX_ANSWER_BYTES`` (what browsers and aiortc accept);
one that would be larger is refused with ``BadMessage``: page a big scene with ``scene.get``'s ``offset``
and ``limit`` (entities in hierarchy order, parents first; ``total`` counts them all).

Errors (``code``): ``BadMessage``, ``EntityNotFound``, ``ComponentNotFound``, ``ComponentExists``,
``TooManyCutPlanes``, ``TooManyLights``, ``TooManyEntities``, ``MaterialNotFound``, ``PartNotFound``,
``TextureNotFound``, ``TextureLoadFailed``, ``ModelSourceRefused`` (a texture or sky outside the policy),
``SkyNotFound``, ``Busy``, ``InternalError``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

VERSION = 2
MAX_DESTROYED_LISTED = 10_000  # entity.destroy lists at most this many ids (parents first)
MAX_CUT_PLANES = 8
MAX_LIGHTS = 8
MAX_RAY_HITS = 64
MAX_QUERY_RESULTS = 4096
MAX_ANSWER_BYTES = 256 * 1024
MAX_POINT_SIZE_SCALE = 100.0

Finite = Annotated[float, Field(allow_inf_nan=False)]
Unit = Annotated[float, Field(ge=0, le=1)]
Vec2 = tuple[Finite, Finite]
Vec3 = tuple[Finite, Finite, Finite]
Quat = tuple[Finite, Finite, Finite, Finite]
RGB = tuple[Unit, Unit, Unit]
RGBA = tuple[Unit, Unit, Unit, Unit]
EntityId = Annotated[int, Field(ge=0)]
MaterialId = Annotated[int, Field(ge=0)]
TextureId = Annotated[int, Field(ge=0)]
Mask = Annotated[int, Field(ge=0, le=0xFFFFFFFF)]
Name = Annotated[str, Field(max_length=256)]
Url = Annotated[str, Field(min_length=1, max_length=4096)]
RequestId = Annotated[str, Field(max_length=128)] | int
Override = Literal["ForceOn", "ForceOff", "InheritFromParent"]
Axis = Literal["X", "-X", "Y", "-Y", "Z", "-Z"]
ComponentType = Literal[
    "HierarchicalStateOverride", "CutPlane", "PointLight", "SpotLight", "DirectionalLight"
]
LIGHT_TYPES = ("PointLight", "SpotLight", "DirectionalLight")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Request(_Strict):
    v: Literal[2] = 2
    id: RequestId | None = None


# -- component properties: every field optional, so one model serves create and set ---------------------


class StateOverrideProperties(_Strict):
    hidden: Override | None = None
    seeThrough: Override | None = None
    selected: Override | None = None
    tint: Override | None = None
    disableCollision: Override | None = None
    useCutPlaneFilterMask: Override | None = None
    tintColor: RGBA | None = None
    cutPlaneFilterMask: Mask | None = None


class CutPlaneProperties(_Strict):
    normal: Axis | Vec3 | None = None
    fadeColor: RGBA | None = None
    fadeLength: Annotated[float, Field(ge=0, le=1e6)] | None = None
    objectFilterMask: Mask | None = None
    enabled: bool | None = None

    @model_validator(mode="after")
    def _normal_not_zero(self) -> CutPlaneProperties:
        if isinstance(self.normal, tuple) and sum(c * c for c in self.normal) < 1e-12:
            raise ValueError("a cut plane's normal must not be zero")
        return self


class LightProperties(_Strict):
    color: RGB | None = None
    intensity: Annotated[float, Field(ge=0, le=1e6)] | None = None
    range: Annotated[float, Field(ge=0, le=1e9)] | None = None
    innerConeAngle: Annotated[float, Field(ge=0, lt=90)] | None = None
    outerConeAngle: Annotated[float, Field(gt=0, lt=90)] | None = None
    enabled: bool | None = None


COMPONENT_PROPERTIES: dict[str, type[_Strict]] = {
    "HierarchicalStateOverride": StateOverrideProperties,
    "CutPlane": CutPlaneProperties,
    "PointLight": LightProperties,
    "SpotLight": LightProperties,
    "DirectionalLight": LightProperties,
}


class MaterialProperties(_Strict):
    albedoColor: RGBA | None = None
    albedoTexture: TextureId | None = None
    roughness: Unit | None = None
    metalness: Unit | None = None
    normalTexture: TextureId | None = None
    aoTexture: TextureId | None = None
    emissiveColor: (
        tuple[
            Annotated[float, Field(ge=0, le=1e4)],
            Annotated[float, Field(ge=0, le=1e4)],
            Annotated[float, Field(ge=0, le=1e4)],
        ]
        | None
    ) = None
    emissiveTexture: TextureId | None = None
    metallicRoughnessTexture: TextureId | None = None
    alphaMode: Literal["Opaque", "Mask", "Blend"] | None = None
    alphaCutoff: Unit | None = None
    doubleSided: bool | None = None
    uvScale: (
        tuple[Annotated[float, Field(ge=-1e4, le=1e4)], Annotated[float, Field(ge=-1e4, le=1e4)]] | None
    ) = None
    uvOffset: (
        tuple[Annotated[float, Field(ge=-1e4, le=1e4)], Annotated[float, Field(ge=-1e4, le=1e4)]] | None
    ) = None


# Texture properties may be set to null to remove the texture: a client sends ``{"albedoTexture": null}``.
TEXTURE_PROPERTIES = (
    "albedoTexture",
    "normalTexture",
    "aoTexture",
    "emissiveTexture",
    "metallicRoughnessTexture",
)


# -- requests -------------------------------------------------------------------------------------------


class SceneGet(_Request):
    type: Literal["scene.get"]
    offset: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int, Field(ge=1, le=100_000)] | None = None  # None: every entity from offset on


class EntityCreate(_Request):
    type: Literal["entity.create"]
    name: Name = ""
    parent: EntityId | None = None
    position: Vec3 | None = None
    rotation: Quat | None = None
    scale: Vec3 | None = None


class EntityGet(_Request):
    type: Literal["entity.get"]
    entity: EntityId


class EntitySet(_Request):
    """``parent`` given as null makes the entity a root; left out, the parent stays (see ``fields_set``)."""

    type: Literal["entity.set"]
    entity: EntityId
    parent: EntityId | None = None
    enabled: bool | None = None
    name: Name | None = None
    position: Vec3 | None = None
    rotation: Quat | None = None
    scale: Vec3 | None = None
    transform: Annotated[list[Finite], Field(min_length=16, max_length=16)] | None = None

    @model_validator(mode="after")
    def _one_way_to_move(self) -> EntitySet:
        if self.transform is not None and {"position", "rotation", "scale"} & self.model_fields_set:
            raise ValueError("give either transform or position/rotation/scale, not both")
        return self

    @property
    def reparent(self) -> bool:
        return "parent" in self.model_fields_set


class EntityDestroy(_Request):
    type: Literal["entity.destroy"]
    entity: EntityId


class EntityBounds(_Request):
    type: Literal["entity.bounds"]
    entity: EntityId
    space: Literal["local", "world"] = "world"


class EntityMetadata(_Request):
    type: Literal["entity.metadata"]
    entity: EntityId


class _ComponentRequest(_Request):
    entity: EntityId
    component: ComponentType


class _ComponentWrite(_ComponentRequest):
    """``properties`` are checked against the component's own model when the message is parsed."""

    properties: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid_properties(self) -> _ComponentWrite:
        self.parsed()
        return self

    def parsed(self) -> _Strict:
        """The properties as the component type's model; only the fields given are in its fields set."""
        try:
            return COMPONENT_PROPERTIES[self.component].model_validate(self.properties)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{self.component} properties: {where}: {first['msg']}") from None


class ComponentCreate(_ComponentWrite):
    type: Literal["component.create"]


class ComponentSet(_ComponentWrite):
    type: Literal["component.set"]


class ComponentGet(_ComponentRequest):
    type: Literal["component.get"]


class ComponentDestroy(_ComponentRequest):
    type: Literal["component.destroy"]


class MaterialList(_Request):
    type: Literal["material.list"]
    entity: EntityId


class MaterialGet(_Request):
    type: Literal["material.get"]
    material: MaterialId


class MaterialSet(_Request):
    type: Literal["material.set"]
    material: MaterialId
    properties: MaterialProperties


class MaterialCreate(_Request):
    type: Literal["material.create"]
    kind: Literal["pbr", "color"] = "pbr"
    name: Name = ""
    properties: MaterialProperties = Field(default_factory=MaterialProperties)


class MeshSetMaterial(_Request):
    type: Literal["mesh.setMaterial"]
    entity: EntityId
    part: Annotated[int, Field(ge=0)]
    material: MaterialId


class TextureLoad(_Request):
    type: Literal["texture.load"]
    url: Url


class SkySet(_Request):
    type: Literal["sky.set"]
    url: Url | None = None
    faces: Annotated[list[Url], Field(min_length=6, max_length=6)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SkySet:
        if (self.url is None) == (self.faces is None):
            raise ValueError("give either url or faces (six urls: +X, -X, +Y, -Y, +Z, -Z)")
        return self


class SkyList(_Request):
    type: Literal["sky.list"]


class OutlineSet(_Request):
    type: Literal["outline.set"]
    color: RGB | None = None
    pulseRate: Annotated[float, Field(ge=0, le=60)] | None = None
    pulseIntensity: Unit | None = None


class ShellSet(_Request):
    type: Literal["shell.set"]
    desaturation: Unit | None = None
    opacity: Unit | None = None


class PointCloudSet(_Request):
    type: Literal["pointCloud.set"]
    pointSizeScale: Annotated[float, Field(gt=0, le=MAX_POINT_SIZE_SCALE, allow_inf_nan=False)] | None = None
    pointBudget: Annotated[int, Field(ge=1000, le=100_000_000)] | None = None


class RayCast(_Request):
    type: Literal["raycast"]
    origin: Vec3
    direction: Vec3
    maxDistance: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1e30
    mode: Literal["closest", "any", "all"] = "closest"
    maxHits: Annotated[int, Field(ge=1, le=MAX_RAY_HITS)] = 8

    @model_validator(mode="after")
    def _direction_not_zero(self) -> RayCast:
        if sum(c * c for c in self.direction) < 1e-24:
            raise ValueError("a ray's direction must not be zero")
        return self


MaxResults = Annotated[int, Field(ge=1, le=MAX_QUERY_RESULTS)]


class QueryBox(_Request):
    type: Literal["query.box"]
    min: Vec3
    max: Vec3
    maxResults: MaxResults = 256

    @model_validator(mode="after")
    def _ordered(self) -> QueryBox:
        if any(lo > hi for lo, hi in zip(self.min, self.max, strict=True)):
            raise ValueError("a box's min must not exceed its max")
        return self


class QuerySphere(_Request):
    type: Literal["query.sphere"]
    center: Vec3
    radius: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    maxResults: MaxResults = 256


class QueryOrientedBox(_Request):
    type: Literal["query.orientedBox"]
    center: Vec3
    halfExtents: tuple[
        Annotated[float, Field(ge=0, allow_inf_nan=False)],
        Annotated[float, Field(ge=0, allow_inf_nan=False)],
        Annotated[float, Field(ge=0, allow_inf_nan=False)],
    ]
    rotation: Quat = (0.0, 0.0, 0.0, 1.0)
    maxResults: MaxResults = 256


SceneRequest = (
    SceneGet
    | EntityCreate
    | EntityGet
    | EntitySet
    | EntityDestroy
    | EntityBounds
    | EntityMetadata
    | ComponentCreate
    | ComponentSet
    | ComponentGet
    | ComponentDestroy
    | MaterialList
    | MaterialGet
    | MaterialSet
    | MaterialCreate
    | MeshSetMaterial
    | TextureLoad
    | SkySet
    | SkyList
    | OutlineSet
    | ShellSet
    | PointCloudSet
    | RayCast
    | QueryBox
    | QuerySphere
    | QueryOrientedBox
)
SCENE_TYPES = frozenset(m.model_fields["type"].annotation.__args__[0] for m in SceneRequest.__args__)
