"""FBX materials as openrr's metallic-roughness ``Material``: the classic Lambert/Phong model, and the PBR
properties 3ds Max and Maya write (``3dsMax|main|...``, ``3dsMax|Parameters|...``, ``Maya|...``).

Classic materials follow ARR's material mapping for FBX: the specular intensity is the luminance of the
specular colour times its factor; roughness is ``sqrt(2 / (ShininessExponent * SpecularIntensity + 2))``;
``fbxAssumeMetallic`` (the default) reads the specular colour as metalness, solving it from the diffuse and
specular brightness as glTF's specular-glossiness conversion does, and otherwise the material is dielectric
(metalness 0, base colour the diffuse colour). Factors are given as the file has them: the conversion
settings take them from sRGB to linear afterwards (``gammaToLinearMaterial``, on for FBX by default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
from numpy.typing import NDArray

from openrr.assets.readers.fbx import native
from openrr.assets.readers.fbx.textures import Image, Textures
from openrr.model.mesh import AlphaMode, Material

MAX_PROPERTIES = 4096  # per material; an FBX material has a few dozen
DIELECTRIC_SPECULAR = 0.04

# assimp's aiTextureType values: where each texture of openrr's material comes from, in order.
BASE_COLOR = (12, 1)  # BASE_COLOR, DIFFUSE
NORMAL = (13, 6)  # NORMAL_CAMERA, NORMALS
EMISSIVE = (14, 4)  # EMISSION_COLOR, EMISSIVE
OCCLUSION = (17,)  # AMBIENT_OCCLUSION
METALNESS = (15,)
ROUGHNESS = (16,)  # DIFFUSE_ROUGHNESS: assimp files 3ds Max's roughness map there

# PBR properties of the shaders FBX exporters write, by (base colour, base weight, metalness, roughness,
# roughness is glossiness): 3ds Max's PBR material, its Physical material, Maya's Stingray PBS.
_PBR_KEYS = (
    (
        "3dsMax|main|basecolor",
        "",
        "3dsMax|main|metalness",
        "3dsMax|main|roughness",
        "3dsMax|main|useGlossiness",
    ),
    (
        "3dsMax|Parameters|base_color",
        "3dsMax|Parameters|base_weight",
        "3dsMax|Parameters|metalness",
        "3dsMax|Parameters|roughness",
        "3dsMax|Parameters|roughness_inv",
    ),
    ("Maya|base_color", "", "Maya|metallic", "Maya|roughness", ""),
)


class Materials:
    """The file's materials, each converted once (by assimp's index)."""

    def __init__(self, scene: Any, textures: Textures, assume_metallic: bool) -> None:
        self.scene = scene
        self.textures = textures
        self.assume_metallic = assume_metallic
        self.converted: dict[int, Material] = {}

    def __getitem__(self, index: int) -> Material:
        if index not in self.converted:
            if index >= int(self.scene.mNumMaterials):
                self.converted[index] = Material()
            else:
                properties = native.material_properties(self.scene.mMaterials[index].contents, MAX_PROPERTIES)
                self.converted[index] = self._material(properties)
        return self.converted[index]

    def _material(self, p: dict[tuple[str, int], Any]) -> Material:
        name = str(p.get(("?mat.name", 0), ""))
        pbr = _pbr_factors(p)
        base, metallic, roughness = pbr if pbr is not None else self._classic(p)
        opacity = _clamp(_number(p, "$mat.opacity", 1.0))
        alpha_mode: AlphaMode = "BLEND" if opacity < 1.0 else "OPAQUE"
        texture = _texture_names(p)
        scale, offset = _uv_transform(p, BASE_COLOR)
        packed, metallic, roughness = self._metallic_roughness(texture, name, metallic, roughness)
        return Material(
            name=name,
            base_color_factor=(base[0], base[1], base[2], opacity),
            base_color_texture=self._image(texture, BASE_COLOR, name),
            metallic_factor=metallic,
            roughness_factor=roughness,
            metallic_roughness_texture=packed,
            normal_texture=self._image(texture, NORMAL, name),
            occlusion_texture=self._image(texture, OCCLUSION, name),
            emissive_factor=_rgb(p.get(("$clr.emissive", 0)), (0.0, 0.0, 0.0)),
            emissive_texture=self._image(texture, EMISSIVE, name),
            alpha_mode=alpha_mode,
            uv_scale=scale,
            uv_offset=offset,
        )

    def _classic(self, p: dict[tuple[str, int], Any]) -> tuple[tuple[float, float, float], float, float]:
        """Base colour, metalness and roughness of a Lambert or Phong material, as ARR mapped them."""
        diffuse = _rgb(p.get(("$clr.diffuse", 0)), (1.0, 1.0, 1.0))
        strength = _number(p, "$mat.shinpercent", 1.0)
        specular = tuple(_clamp(c * strength) for c in _rgb(p.get(("$clr.specular", 0)), (0.0, 0.0, 0.0)))
        intensity = _luminance(specular)
        exponent = max(_number(p, "$mat.shininess", 0.0), 0.0)
        roughness = math.sqrt(2.0 / (exponent * intensity + 2.0))
        if not self.assume_metallic:
            return diffuse, 0.0, roughness
        one_minus = 1.0 - max(specular)
        metallic = _solve_metallic(_luminance(diffuse), intensity, one_minus)
        from_diffuse = [
            c * one_minus / (1.0 - DIELECTRIC_SPECULAR) / max(1.0 - metallic, 1e-6) for c in diffuse
        ]
        from_specular = [(s - DIELECTRIC_SPECULAR * (1.0 - metallic)) / max(metallic, 1e-6) for s in specular]
        weight = metallic * metallic
        r, g, b = (_clamp(d + (s - d) * weight) for d, s in zip(from_diffuse, from_specular, strict=True))
        return (r, g, b), metallic, roughness

    def _image(self, texture: dict[int, str], kinds: Sequence[int], material: str) -> Image | None:
        for kind in kinds:
            if kind in texture:
                return self.textures.image(texture[kind], material)
        return None

    def _metallic_roughness(
        self, texture: dict[int, str], material: str, metallic: float, roughness: float
    ) -> tuple[Image | None, float, float]:
        """FBX keeps metalness and roughness in two greyscale maps; glTF packs them as B and G of one
        texture that multiplies the factors. With a map, the factors become 1 and a missing map's channel
        holds its factor. Returns the packed texture (None without maps) and the factors."""
        metal = self._image(texture, METALNESS, material)
        rough = self._image(texture, ROUGHNESS, material)
        if metal is None and rough is None:
            return None, metallic, roughness
        height, width = max((m.shape[:2] for m in (metal, rough) if m is not None), key=lambda s: s[0] * s[1])
        packed = np.full((height, width, 4), 255, np.uint8)
        packed[:, :, 0] = 0
        packed[:, :, 1] = _channel(rough, width, height, roughness)
        packed[:, :, 2] = _channel(metal, width, height, metallic)
        return packed, 1.0, 1.0


def _channel(image: Image | None, width: int, height: int, factor: float) -> NDArray[np.uint8]:
    """The first channel of a greyscale map at ``width`` x ``height``; ``factor`` everywhere without one."""
    if image is None:
        return np.full((height, width), round(factor * 255), np.uint8)
    grey = PIL.Image.fromarray(np.ascontiguousarray(image[:, :, 0]))
    if grey.size != (width, height):
        grey = grey.resize((width, height), PIL.Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.uint8)


def _pbr_factors(p: dict[tuple[str, int], Any]) -> tuple[tuple[float, float, float], float, float] | None:
    """Base colour, metalness and roughness from a PBR shader's own properties, or None for a classic one."""
    for base_key, weight_key, metal_key, rough_key, gloss_key in _PBR_KEYS:
        base = p.get((f"$raw.{base_key}", 0))
        if base is None:
            continue
        weight = _number(p, f"$raw.{weight_key}", 1.0) if weight_key else 1.0
        r, g, b = (_clamp(c * weight) for c in _rgb(base, (1.0, 1.0, 1.0)))
        roughness = _clamp(_number(p, f"$raw.{rough_key}", 0.5))
        if gloss_key and _number(p, f"$raw.{gloss_key}", 0.0) >= 0.5:
            roughness = 1.0 - roughness
        return (r, g, b), _clamp(_number(p, f"$raw.{metal_key}", 0.0)), roughness
    return None


def _texture_names(p: dict[tuple[str, int], Any]) -> dict[int, str]:
    return {kind: str(v) for (key, kind), v in p.items() if key == "$tex.file" and v}


def _uv_transform(
    p: dict[tuple[str, int], Any], kinds: Sequence[int]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The base colour texture's scale and offset (assimp's aiUVTransform: translation, scaling, rotation),
    moved to glTF's top-left uv origin; one for all textures, as openrr's material has."""
    for kind in kinds:
        value = p.get(("$tex.uvtrafo", kind))
        if value is not None and len(value) >= 4 and all(math.isfinite(v) for v in value):
            tx, ty, sx, sy = (float(v) for v in value[:4])
            return (sx, sy), (tx, 1.0 - sy - ty)
    return (1.0, 1.0), (0.0, 0.0)


def _solve_metallic(diffuse: float, specular: float, one_minus_specular_strength: float) -> float:
    """glTF's specular-glossiness to metal-roughness conversion: the metalness giving both brightnesses."""
    if specular < DIELECTRIC_SPECULAR:
        return 0.0
    a = DIELECTRIC_SPECULAR
    b = diffuse * one_minus_specular_strength / (1.0 - a) + specular - 2.0 * a
    c = a - specular
    discriminant = max(b * b - 4.0 * a * c, 0.0)
    return _clamp((-b + math.sqrt(discriminant)) / (2.0 * a))


def _luminance(rgb: Sequence[float]) -> float:
    return 0.2125 * rgb[0] + 0.7154 * rgb[1] + 0.0721 * rgb[2]


def _number(p: dict[tuple[str, int], Any], key: str, default: float) -> float:
    value = p.get((key, 0))
    if isinstance(value, tuple) and value and isinstance(value[0], int | float) and math.isfinite(value[0]):
        return float(value[0])
    return default


def _rgb(value: Any, default: tuple[float, float, float]) -> tuple[float, float, float]:
    if not isinstance(value, tuple) or len(value) < 3 or not all(math.isfinite(v) for v in value[:3]):
        return default
    return (_clamp(value[0]), _clamp(value[1]), _clamp(value[2]))


def _clamp(value: float) -> float:
    return min(max(float(value), 0.0), 1.0)
