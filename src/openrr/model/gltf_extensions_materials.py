"""glTF material extensions trimesh does not read: ``KHR_materials_unlit`` and ``KHR_texture_transform``.

Apart from ``openrr.model.gltf_extensions`` because this part only reads and marks the document's JSON.
trimesh keeps no material index, so each material with extension data is renamed to a marker that
``openrr.model.trimesh_scene`` looks up (and replaces by the file's own name) when it builds the ``Material``.

openrr's ``Material`` has one uv transform for all its textures: the base colour texture's (or, without one,
the first texture's that has a transform). The base colour texture's ``texCoord`` (its own, or the
transform's override), where it is not 0, is honoured by pointing the material's primitives'
``TEXCOORD_0`` at that set: trimesh reads only ``TEXCOORD_0``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

from openrr.model.errors import ModelLoadError

log = logging.getLogger("openrr.model.gltf_extensions")

MARKER = "openrr-gltf-material-"
_TEXTURES = (
    ("pbrMetallicRoughness", "baseColorTexture"),
    (None, "emissiveTexture"),
    ("pbrMetallicRoughness", "metallicRoughnessTexture"),
    (None, "normalTexture"),
    (None, "occlusionTexture"),
)


@dataclasses.dataclass(frozen=True)
class MaterialExtension:
    """What a glTF material's extensions add to openrr's ``Material`` (fields of the same names)."""

    name: str
    unlit: bool = False
    uv_scale: tuple[float, float] = (1.0, 1.0)
    uv_offset: tuple[float, float] = (0.0, 0.0)
    uv_rotation: float = 0.0


def collect_materials(document: dict[str, Any], label: str) -> dict[str, MaterialExtension]:
    """The materials' extension data by marker; renames those materials to their markers and points their
    primitives at the uv set their textures ask for. Raises ModelLoadError on an invalid transform."""
    found: dict[str, MaterialExtension] = {}
    materials = document.get("materials")
    if not isinstance(materials, list):
        return found
    for index, material in enumerate(materials):
        if not isinstance(material, dict):
            continue
        extensions = material.get("extensions")
        unlit = isinstance(extensions, dict) and "KHR_materials_unlit" in extensions
        textures = _textures(material)
        transforms = [(t, texcoord) for t, texcoord in textures if t is not None]
        texcoord = textures[0][1] if textures else 0
        if texcoord:
            _use_texcoord(document, index, texcoord)
        if not unlit and not transforms:
            continue
        what = f"material {index}"
        scale, offset, rotation = _transform(transforms[0][0] if transforms else {}, label, what)
        if len({repr(t[0]) for t in transforms}) > 1:
            log.info("%s: %s has different texture transforms; the first applies to all", label, what)
        marker = f"{MARKER}{index}"
        found[marker] = MaterialExtension(
            str(material.get("name") or ""),
            unlit,
            scale,
            offset,
            rotation,
        )
        material["name"] = marker
    return found


def _textures(material: dict[str, Any]) -> list[tuple[dict[str, Any] | None, int]]:
    """Each texture's KHR_texture_transform (None without one) and effective texCoord, base colour
    first."""
    result = []
    for parent, key in _TEXTURES:
        holder = material.get(parent) if parent else material
        info = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(info, dict):
            continue
        extensions = info.get("extensions")
        transform = extensions.get("KHR_texture_transform") if isinstance(extensions, dict) else None
        transform = transform if isinstance(transform, dict) else None
        texcoord = (transform or {}).get("texCoord", info.get("texCoord", 0))
        result.append((transform, texcoord if isinstance(texcoord, int) else 0))
    return result


def _transform(
    transform: dict[str, Any], label: str, what: str
) -> tuple[tuple[float, float], tuple[float, float], float]:
    def pair(key: str, default: tuple[float, float]) -> tuple[float, float]:
        value = transform.get(key, list(default))
        if not (isinstance(value, list) and len(value) == 2 and all(_finite(v) for v in value)):
            raise ModelLoadError(f"{label}: {what}: invalid KHR_texture_transform {key} {value!r}")
        return (float(value[0]), float(value[1]))

    rotation = transform.get("rotation", 0.0)
    if not _finite(rotation):
        raise ModelLoadError(f"{label}: {what}: invalid KHR_texture_transform rotation {rotation!r}")
    return pair("scale", (1.0, 1.0)), pair("offset", (0.0, 0.0)), float(rotation)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _use_texcoord(document: dict[str, Any], material: int, texcoord: int) -> None:
    """Points TEXCOORD_0 of the material's primitives at TEXCOORD_<texcoord> (openrr reads one uv set)."""
    for mesh in document.get("meshes") or []:
        for primitive in mesh.get("primitives") or [] if isinstance(mesh, dict) else []:
            if not isinstance(primitive, dict) or primitive.get("material") != material:
                continue
            attributes = primitive.get("attributes")
            if isinstance(attributes, dict) and f"TEXCOORD_{texcoord}" in attributes:
                attributes["TEXCOORD_0"] = attributes[f"TEXCOORD_{texcoord}"]
