"""The connection's scene-wide settings in protocol v2: ``outline.set``, ``shell.set`` and
``pointCloud.set`` (ARR's ``OutlineSettings``, ``ShellRenderingSettings`` and ``PointCloudSettings``).

Apart from the entity, component and material handlers: these edit no entity, only ``Scene.outline``,
``Scene.shell`` and ``Scene.point_cloud``, which belong to the connection's scene (the next client's fresh
scene has the defaults).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from openrr.model.components import OutlineSettings, ShellSettings
from openrr.model.points import PointCloudSettings
from openrr.protocol import scene_api as api
from openrr.render.scene_context import SceneContext

Answer = tuple[str, dict[str, Any]]


def outline_json(outline: OutlineSettings) -> dict[str, Any]:
    return {
        "color": list(outline.color),
        "pulseRate": outline.pulse_rate,
        "pulseIntensity": outline.pulse_intensity,
    }


def shell_json(shell: ShellSettings) -> dict[str, Any]:
    return {"desaturation": shell.desaturation, "opacity": shell.opacity}


def point_cloud_json(settings: PointCloudSettings) -> dict[str, Any]:
    return {"pointSizeScale": settings.size_scale, "pointBudget": settings.budget}


async def outline_set(ctx: SceneContext, request: api.OutlineSet) -> Answer:
    changes: dict[str, Any] = {}
    if request.color is not None:
        changes["color"] = tuple(request.color)
    if request.pulseRate is not None:
        changes["pulse_rate"] = request.pulseRate
    if request.pulseIntensity is not None:
        changes["pulse_intensity"] = request.pulseIntensity

    def edit() -> dict[str, Any]:
        scene = ctx.scene
        scene.outline = dataclasses.replace(scene.outline, **changes)
        scene.changed()
        return outline_json(scene.outline)

    return "outline", await ctx.gl(edit)


async def shell_set(ctx: SceneContext, request: api.ShellSet) -> Answer:
    changes: dict[str, Any] = {}
    if request.desaturation is not None:
        changes["desaturation"] = request.desaturation
    if request.opacity is not None:
        changes["opacity"] = request.opacity

    def edit() -> dict[str, Any]:
        scene = ctx.scene
        scene.shell = dataclasses.replace(scene.shell, **changes)
        scene.changed()
        return shell_json(scene.shell)

    return "shell", await ctx.gl(edit)


async def point_cloud_set(ctx: SceneContext, request: api.PointCloudSet) -> Answer:
    changes: dict[str, Any] = {}
    if request.pointSizeScale is not None:
        changes["size_scale"] = request.pointSizeScale
    if request.pointBudget is not None:
        changes["budget"] = request.pointBudget

    def edit() -> dict[str, Any]:
        scene = ctx.scene
        scene.point_cloud = dataclasses.replace(scene.point_cloud, **changes)
        scene.changed()
        return point_cloud_json(scene.point_cloud)

    return "pointCloud", await ctx.gl(edit)
