"""The entries of ``<model>.MaterialOverrides.json`` (``openrr.assets.overrides``) applied to materials.

``overridden(material, overrides)`` is the material as its entry says (a new ``Material``; the one given
is shared with the source and stays as it is). What each ARR property becomes in openrr's glTF materials:

* ``albedoColor`` → the base colour factor (rgb and/or alpha), ``roughness``/``metalness`` → the factors,
  ``unlit``, ``isDoubleSided``, ``alphaClipThreshold`` (alpha cut-off), ``textureCoordinateScale``/
  ``Offset`` (``uv_scale``/``uv_offset``) → the fields of the same meaning;
* ``transparent`` and ``alphaClipEnabled`` → the alpha mode: true gives ``BLEND`` and ``MASK`` (``BLEND``
  when both are true: a glTF material has one alpha mode), false turns that mode back to ``OPAQUE``;
* ``ignoreTextureMaps``: ``AlbedoMap``/``DiffuseMap`` drop the base colour texture, ``OpacityMap`` its
  alpha (made opaque), ``NormalMap``/``BumpMap`` the normal map, ``EmissiveMap``, ``OcclusionMap`` and
  ``MetallicRoughnessMap`` theirs; ``RoughnessMap``/``MetalnessMap`` make the packed texture's green /
  blue channel white, so the factor alone applies. ``ReflectivityMap``, ``SpecularMap``,
  ``ShininessMap`` and ``SpecularGlossinessMap`` have no counterpart once a material is metallic-roughness
  (``UNMAPPED``): nothing to drop;
* ``useVertexColor: false`` drops the vertex colours of the parts drawn with the material (the
  converter does that, ``drops_vertex_colors``): openrr draws vertex colours wherever a part has them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.assets.overrides import MaterialOverrides
from openrr.model.mesh import AlphaMode, Material

UNMAPPED = frozenset({"ReflectivityMap", "SpecularMap", "ShininessMap", "SpecularGlossinessMap"})
_DIRECT = (
    "roughness_factor",
    "metallic_factor",
    "unlit",
    "double_sided",
    "alpha_cutoff",
    "uv_scale",
    "uv_offset",
)
_DROPPED = {
    "AlbedoMap": "base_color_texture",
    "DiffuseMap": "base_color_texture",
    "NormalMap": "normal_texture",
    "BumpMap": "normal_texture",
    "EmissiveMap": "emissive_texture",
    "OcclusionMap": "occlusion_texture",
    "MetallicRoughnessMap": "metallic_roughness_texture",
}


def overridden(material: Material, overrides: MaterialOverrides) -> Material:
    """``material`` with the entry for its name applied (recorded in ``overrides``), or itself."""
    entry = overrides.entry_for(material.name)
    if entry is None:
        return material
    overrides.record(entry, material.name)
    return edited(material, entry.changes)


def drops_vertex_colors(material_name: str, overrides: MaterialOverrides) -> bool:
    """Whether the entry for ``material_name`` says ``useVertexColor: false``."""
    entry = overrides.entry_for(material_name)
    return entry is not None and entry.changes.get("use_vertex_color") is False


def edited(m: Material, changes: Mapping[str, Any]) -> Material:
    """A new material: ``m`` with one entry's ``changes`` (``openrr.assets.overrides.Override``)."""
    fields: dict[str, Any] = {k: changes[k] for k in _DIRECT if k in changes}
    r, g, b, a = m.base_color_factor
    if "base_rgb" in changes:
        r, g, b = changes["base_rgb"]
    a = changes.get("base_alpha", a)
    fields["base_color_factor"] = (r, g, b, a)
    fields["alpha_mode"] = _alpha_mode(m.alpha_mode, changes.get("transparent"), changes.get("alpha_clip"))
    fields.update(_without_maps(m, changes.get("ignore", ())))
    return dataclasses.replace(m, **fields)


def _alpha_mode(mode: AlphaMode, transparent: bool | None, clip: bool | None) -> AlphaMode:
    if clip is True:
        mode = "MASK"
    elif clip is False and mode == "MASK":
        mode = "OPAQUE"
    if transparent is True:
        mode = "BLEND"
    elif transparent is False and mode == "BLEND":
        mode = "OPAQUE"
    return mode


def _without_maps(m: Material, ignored: Iterable[str]) -> dict[str, Any]:
    ignored = set(ignored)
    fields: dict[str, Any] = {_DROPPED[name]: None for name in ignored if name in _DROPPED}
    if "OpacityMap" in ignored and m.base_color_texture is not None and "base_color_texture" not in fields:
        fields["base_color_texture"] = _white(m.base_color_texture, 3)
    packed = m.metallic_roughness_texture
    if packed is not None and "metallic_roughness_texture" not in fields:
        # glTF packs roughness in green and metalness in blue: white leaves the factor alone.
        channels = [c for name, c in (("RoughnessMap", 1), ("MetalnessMap", 2)) if name in ignored]
        if channels:
            fields["metallic_roughness_texture"] = _white(packed, *channels)
    return fields


def _white(image: NDArray[np.uint8], *channels: int) -> NDArray[np.uint8]:
    copy = np.array(image, dtype=np.uint8, copy=True)
    copy[..., list(channels)] = 255
    return copy
