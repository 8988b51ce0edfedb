"""Components in protocol v2: the protocol's properties ↔ the model's dataclasses
(``openrr.model.components``), and ``component.create/set/get/destroy``.

An edit never changes a component in place: the handler builds the new version (``dataclasses.replace``
with the properties given, the others kept), checks it (cone angles, the scene's limits of enabled cut
planes and lights, counted over every entity, enabled or not, so enabling an entity cannot exceed them)
and only then attaches it with ``Scene.set_component``, which tells the renderer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel

from openrr.model.components import (
    CUT_PLANE,
    LIGHT_KINDS,
    STATE_OVERRIDE,
    Component,
    CutPlane,
    Light,
    StateFlag,
    StateOverride,
)
from openrr.model.scene import Scene
from openrr.protocol import scene_api as api
from openrr.render.scene_context import SceneContext, SceneError

Answer = tuple[str, dict[str, Any]]

_OVERRIDE = {"ForceOn": True, "ForceOff": False}
_LIGHT_FIELDS = {
    "color": "color",
    "intensity": "intensity",
    "range": "range",
    "innerConeAngle": "inner_cone_angle",
    "outerConeAngle": "outer_cone_angle",
    "enabled": "enabled",
}
_CUT_PLANE_FIELDS = {
    "normal": "normal",
    "fadeColor": "fade_color",
    "fadeLength": "fade_length",
    "objectFilterMask": "object_filter_mask",
    "enabled": "enabled",
}


# -- properties <-> dataclasses ---------------------------------------------------------------------------


def new_component(kind: str) -> Component:
    if kind == STATE_OVERRIDE:
        return StateOverride()
    if kind == CUT_PLANE:
        return CutPlane()
    return Light(kind=next(k for k in LIGHT_KINDS if k == kind))


def _given(properties: BaseModel) -> dict[str, Any]:
    return {name: getattr(properties, name) for name in properties.model_fields_set}


def updated(component: Component, properties: BaseModel) -> Component:
    """A new version of ``component`` with the ``properties`` given (only those) changed."""
    given = _given(properties)
    if isinstance(component, StateOverride):
        flags = dict(component.flags)
        for flag in StateFlag:
            if flag.value in given:
                setting = given[flag.value]
                if setting in _OVERRIDE:
                    flags[flag] = _OVERRIDE[setting]
                else:
                    flags.pop(flag, None)
        changes: dict[str, Any] = {"flags": flags}
        if "tintColor" in given:
            changes["tint_color"] = given["tintColor"]
        if "cutPlaneFilterMask" in given:
            changes["cut_plane_filter_mask"] = given["cutPlaneFilterMask"]
        return dataclasses.replace(component, **changes)
    fields = _CUT_PLANE_FIELDS if isinstance(component, CutPlane) else _LIGHT_FIELDS
    return dataclasses.replace(component, **{fields[name]: value for name, value in given.items()})


def properties_json(component: Component) -> dict[str, Any]:
    if isinstance(component, StateOverride):
        flags = {
            flag.value: "InheritFromParent"
            if flag not in component.flags
            else ("ForceOn" if component.flags[flag] else "ForceOff")
            for flag in StateFlag
        }
        return {
            **flags,
            "tintColor": list(component.tint_color),
            "cutPlaneFilterMask": component.cut_plane_filter_mask,
        }
    fields = _CUT_PLANE_FIELDS if isinstance(component, CutPlane) else _LIGHT_FIELDS
    values = {name: getattr(component, field) for name, field in fields.items()}
    return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}


# -- checks -----------------------------------------------------------------------------------------------


def _check(scene: Scene, entity: int, kind: str, component: Component) -> None:
    """Refuse a component that breaks the protocol's rules or the scene's limits (``component`` would
    replace the entity's ``kind`` component)."""
    if isinstance(component, Light):
        _check_light(component)
    if not getattr(component, "enabled", False):
        return
    kinds = (CUT_PLANE,) if kind == CUT_PLANE else LIGHT_KINDS if kind in LIGHT_KINDS else ()
    if not kinds:
        return
    others = sum(
        1
        for node in scene.nodes()
        for other_kind, other in node.components.items()
        if other_kind in kinds
        and (node.id, other_kind) != (entity, kind)
        and getattr(other, "enabled", False)
    )
    if kind == CUT_PLANE and others >= api.MAX_CUT_PLANES:
        raise SceneError("TooManyCutPlanes", f"at most {api.MAX_CUT_PLANES} cut planes may be enabled")
    if kind in LIGHT_KINDS and others >= api.MAX_LIGHTS:
        raise SceneError("TooManyLights", f"at most {api.MAX_LIGHTS} lights may be enabled")


def _check_light(light: Light) -> None:
    if light.kind == "SpotLight" and light.inner_cone_angle > light.outer_cone_angle:
        raise SceneError("BadMessage", "innerConeAngle must not exceed outerConeAngle")


def _check_properties(kind: str, properties: BaseModel) -> None:
    given = properties.model_fields_set
    if kind != "SpotLight" and {"innerConeAngle", "outerConeAngle"} & given:
        raise SceneError("BadMessage", f"a {kind} has no cone angles (SpotLight only)")
    if kind == "DirectionalLight" and "range" in given:
        raise SceneError("BadMessage", "a DirectionalLight has no range")


# -- requests ---------------------------------------------------------------------------------------------


def _answer(entity: int, kind: str, component: Component) -> Answer:
    return "component", {"entity": entity, "component": kind, "properties": properties_json(component)}


async def component_create(ctx: SceneContext, request: api.ComponentCreate) -> Answer:
    properties = request.parsed()
    _check_properties(request.component, properties)

    def create() -> Component:
        node = ctx.node(request.entity)
        if request.component in node.components:
            raise SceneError("ComponentExists", f"entity {node.id} already has a {request.component}")
        component = updated(new_component(request.component), properties)
        _check(ctx.scene, node.id, request.component, component)
        ctx.scene.set_component(node.id, request.component, component)
        return component

    return _answer(request.entity, request.component, await ctx.gl(create))


def _existing(ctx: SceneContext, entity: int, kind: str) -> Component:
    node = ctx.node(entity)
    component = node.components.get(kind)
    if component is None:
        raise SceneError("ComponentNotFound", f"entity {entity} has no {kind}")
    return component


async def component_set(ctx: SceneContext, request: api.ComponentSet) -> Answer:
    properties = request.parsed()
    _check_properties(request.component, properties)

    def edit() -> Component:
        component = updated(_existing(ctx, request.entity, request.component), properties)
        _check(ctx.scene, request.entity, request.component, component)
        ctx.scene.set_component(request.entity, request.component, component)
        return component

    return _answer(request.entity, request.component, await ctx.gl(edit))


async def component_get(ctx: SceneContext, request: api.ComponentGet) -> Answer:
    def read() -> Component:
        return _existing(ctx, request.entity, request.component)

    return _answer(request.entity, request.component, await ctx.gl(read, changes=False))


async def component_destroy(ctx: SceneContext, request: api.ComponentDestroy) -> Answer:
    def destroy() -> None:
        _existing(ctx, request.entity, request.component)
        ctx.scene.remove_component(request.entity, request.component)

    await ctx.gl(destroy)
    return "ack", {"entity": request.entity, "component": request.component}
