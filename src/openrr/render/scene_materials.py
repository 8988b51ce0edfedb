"""Materials and textures in protocol v2: the protocol's material properties ↔ ``Material``'s fields, and
``material.*``, ``mesh.setMaterial`` and ``texture.load``.

Materials are never changed in place (the loaded meshes are shared with the session's cached models): an
edit is ``dataclasses.replace`` of the current version, made current with ``Scene.materials.replace``.
Textures are named by ``Scene.textures`` ids; a material's existing images get theirs when first shown.
``texture.load`` reads and decodes off the GL thread and the event loop (``openrr.model.images``, under
the session's model source policy and size limits), then registers the image on the GL thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.model.budget import Allowance, pixels_text
from openrr.model.errors import ModelLoadError
from openrr.model.images import DEFAULT_MAX_BYTES, decode_image, read_image_file
from openrr.model.materials import TextureTable
from openrr.model.mesh import Material
from openrr.model.scene import Node, Scene
from openrr.model.sources import SourceRefused, display_name
from openrr.protocol import scene_api as api
from openrr.render.scene_context import (
    MAX_CREATED_MATERIALS,
    MAX_TEXTURES,
    SceneContext,
    SceneError,
)

Answer = tuple[str, dict[str, Any]]
MAX_TEXTURE_LOADS = (
    2  # texture and sky loads at once, per connection: downloads and decodes on worker threads
)

# protocol property -> Material field, for the properties that map one to one
_FIELDS = {
    "albedoColor": "base_color_factor",
    "roughness": "roughness_factor",
    "metalness": "metallic_factor",
    "emissiveColor": "emissive_factor",
    "alphaCutoff": "alpha_cutoff",
    "doubleSided": "double_sided",
    "uvScale": "uv_scale",
    "uvOffset": "uv_offset",
}
_TEXTURES = {
    "albedoTexture": "base_color_texture",
    "normalTexture": "normal_texture",
    "aoTexture": "occlusion_texture",
    "emissiveTexture": "emissive_texture",
    "metallicRoughnessTexture": "metallic_roughness_texture",
}
_ALPHA_TO_MODEL = {"Opaque": "OPAQUE", "Mask": "MASK", "Blend": "BLEND"}
_ALPHA_TO_WIRE = {v: k for k, v in _ALPHA_TO_MODEL.items()}


def material_json(material_id: int, material: Material, textures: TextureTable) -> dict[str, Any]:
    """A ``material`` object; registers the material's images as textures (on the GL thread)."""
    body: dict[str, Any] = {
        "id": material_id,
        "name": material.name,
        "kind": "color" if material.unlit else "pbr",
        "alphaMode": _ALPHA_TO_WIRE[material.alpha_mode],
    }
    for name, field in _FIELDS.items():
        value = getattr(material, field)
        body[name] = list(value) if isinstance(value, tuple) else value
    for name, field in _TEXTURES.items():
        image = getattr(material, field)
        body[name] = None if image is None else textures.id_of(image)
    return body


def edited(material: Material, properties: api.MaterialProperties, textures: TextureTable) -> Material:
    """A new material: ``material`` with the ``properties`` given (only those) changed."""
    changes: dict[str, Any] = {}
    for name in properties.model_fields_set:
        value = getattr(properties, name)
        if name in _TEXTURES:
            if value is not None and value not in textures:
                raise SceneError("TextureNotFound", f"{name}: no texture {value}")
            changes[_TEXTURES[name]] = None if value is None else textures.get(value)
        elif value is None:
            raise SceneError("BadMessage", f"{name}: only texture properties may be null")
        elif name == "alphaMode":
            changes["alpha_mode"] = _ALPHA_TO_MODEL[value]
        else:
            changes[_FIELDS[name]] = tuple(value) if isinstance(value, tuple | list) else value
    return dataclasses.replace(material, **changes)


# -- requests ---------------------------------------------------------------------------------------------


def _materials_of(scene: Scene, node: Node) -> dict[str, Any]:
    """``material.list``'s answer for ``node``: each mesh part's material id, and those materials."""
    parts: list[dict[str, int]] = []
    used: dict[int, dict[str, Any]] = {}
    primitives = node.mesh.primitives if node.mesh is not None else ()
    for part, primitive in enumerate(primitives):
        chosen = node.part_materials.get(part)
        material_id = chosen if chosen is not None else scene.materials.id_of(primitive.material)
        parts.append({"part": part, "material": material_id})
        if material_id not in used:
            used[material_id] = material_json(material_id, scene.materials.get(material_id), scene.textures)
    return {"entity": node.id, "parts": parts, "materials": list(used.values())}


async def material_list(ctx: SceneContext, request: api.MaterialList) -> Answer:
    def read() -> dict[str, Any]:
        return _materials_of(ctx.scene, ctx.node(request.entity))

    return "materials", await ctx.gl(read, changes=False)


def _material(scene: Scene, material_id: int) -> Material:
    if material_id not in scene.materials:
        raise SceneError("MaterialNotFound", f"no material {material_id}")
    return scene.materials.get(material_id)


async def material_get(ctx: SceneContext, request: api.MaterialGet) -> Answer:
    def read() -> dict[str, Any]:
        scene = ctx.scene
        return material_json(request.material, _material(scene, request.material), scene.textures)

    return "material", {"material": await ctx.gl(read, changes=False)}


async def material_set(ctx: SceneContext, request: api.MaterialSet) -> Answer:
    def edit() -> dict[str, Any]:
        scene = ctx.scene
        material = edited(_material(scene, request.material), request.properties, scene.textures)
        scene.materials.replace(request.material, material)
        scene.changed()
        return material_json(request.material, material, scene.textures)

    return "material", {"material": await ctx.gl(edit)}


async def material_create(ctx: SceneContext, request: api.MaterialCreate) -> Answer:
    if ctx.materials_created >= MAX_CREATED_MATERIALS:
        raise SceneError("BadMessage", f"a connection may create at most {MAX_CREATED_MATERIALS} materials")
    # ARR's ColorMaterial: unlit, in its albedo colour; PBR starts from glTF's defaults.
    base = (
        Material(request.name, unlit=True, metallic_factor=0.0, roughness_factor=1.0)
        if request.kind == "color"
        else Material(request.name)
    )

    def create() -> dict[str, Any]:
        scene = ctx.scene
        material = edited(base, request.properties, scene.textures)
        material_id = scene.materials.create(material)
        return material_json(material_id, material, scene.textures)

    ctx.materials_created += 1  # counted before the GL thread's turn: requests run concurrently
    try:
        body = await ctx.gl(create, changes=False)  # drawn by nothing yet
    except BaseException:
        ctx.materials_created -= 1
        raise
    return "material", {"material": body}


async def mesh_set_material(ctx: SceneContext, request: api.MeshSetMaterial) -> Answer:
    def edit() -> dict[str, Any]:
        scene = ctx.scene
        node = ctx.node(request.entity)
        parts = len(node.mesh.primitives) if node.mesh is not None else 0
        if request.part >= parts:
            raise SceneError("PartNotFound", f"entity {node.id} has {parts} mesh parts")
        _material(scene, request.material)
        scene.set_part_material(node.id, request.part, request.material)
        return _materials_of(scene, node)

    return "materials", await ctx.gl(edit)


# -- textures ---------------------------------------------------------------------------------------------


def texture_allowance(ctx: SceneContext) -> Allowance:
    """What one texture may take: what this connection has left, and no more than a model's textures."""
    left = ctx.texture_pixels_left()
    limit = f"the {pixels_text(left)} of textures this connection may still load"
    per_model = ctx.pipeline.limits.texture_pixels_per_model
    if per_model is not None and per_model < left:
        left, limit = per_model, f"the {pixels_text(per_model)} a model's textures may take in this session"
    return Allowance(texture_pixels=left, texture_limit=limit)


def load_image(ctx: SceneContext, url: str, allowance: Allowance) -> NDArray[np.uint8]:
    """Read and decode the image at ``url`` (blocking: a worker thread) within ``allowance``, under the
    session's model source policy and file size limit. Raises ``SceneError``: ``ModelSourceRefused`` or
    ``TextureLoadFailed``."""
    pipeline = ctx.pipeline
    max_bytes = min(DEFAULT_MAX_BYTES, pipeline.max_model_bytes or DEFAULT_MAX_BYTES)
    try:
        data = read_image_file(url, pipeline.policy, max_bytes=max_bytes)
        return decode_image(data, allowance, display_name(url))
    except SourceRefused as exc:
        raise SceneError("ModelSourceRefused", exc.message) from None
    except ModelLoadError as exc:
        raise SceneError("TextureLoadFailed", exc.message) from None


async def texture_load(ctx: SceneContext, request: api.TextureLoad) -> Answer:
    if ctx.textures_loaded + ctx.texture_loads >= MAX_TEXTURES:
        raise SceneError("TextureLoadFailed", f"a connection may load at most {MAX_TEXTURES} textures")
    if ctx.texture_loads >= MAX_TEXTURE_LOADS:
        raise SceneError("Busy", f"at most {MAX_TEXTURE_LOADS} texture loads at once")
    ctx.texture_loads += 1
    try:
        image = await asyncio.to_thread(load_image, ctx, request.url, texture_allowance(ctx))
    finally:
        ctx.texture_loads -= 1
    height, width = image.shape[:2]
    if width * height > ctx.texture_pixels_left():  # another load finished meanwhile
        raise SceneError("TextureLoadFailed", f"{display_name(request.url)}: no texture pixels left")
    ctx.textures_loaded += 1
    ctx.texture_pixels += width * height
    name = display_name(request.url)
    texture_id = await ctx.gl(lambda: ctx.scene.textures.id_of(image, name), changes=False)
    return "texture", {"texture": texture_id, "width": width, "height": height, "url": name}
