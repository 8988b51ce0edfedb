"""``UsdPreviewSurface`` materials as openrr's metallic-roughness materials, with their ``UsdUVTexture``s.

What maps: ``diffuseColor`` (a value or a texture's ``rgb``, times the texture's ``scale``), ``opacity``
(a value, or a texture channel: the diffuse texture's alpha, or another image's channel copied into it)
with ``opacityThreshold`` (above 0: a mask; else an opacity below 1 or textured blends), ``metallic`` and
``roughness`` (values, or texture channels packed into glTF's one texture: roughness in green, metallic
in blue), ``emissiveColor``, ``normal`` and ``occlusion`` textures, and a ``UsdTransform2d`` without
rotation on the texture coordinates (openrr's ``uv_scale``/``uv_offset``, one per material). A texture's
``wrapS``/``wrapT`` are not kept (openrr repeats), nor ``bias`` on colours. Any other surface shader
(MaterialX, a renderer's own) gives openrr's default material, with a warning.

Textures are read through USD's resolver (inside a ``.usdz`` too), only where they lie in the model's
folder, bounded in size, and decoded within the ``Allowance`` (``openrr.model.images``); one that cannot
be read is left out with a warning, never failing the conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import PIL.Image
from numpy.typing import NDArray

from openrr.assets.job import Job
from openrr.assets.readers.usd.pxr_modules import Ar, UsdShade
from openrr.assets.readers.usd.stage import Opened
from openrr.model.budget import Allowance
from openrr.model.errors import ModelLoadError
from openrr.model.images import DEFAULT_MAX_BYTES, decode_image
from openrr.model.mesh import AlphaMode, Material

Image = NDArray[np.uint8]
_CHANNELS = {"r": 0, "g": 1, "b": 2, "a": 3}


@dataclass(frozen=True)
class Texture:
    """One ``UsdUVTexture`` output an input is connected to."""

    resolved: str  # the resolved file ("" where unresolved)
    authored: str
    channel: str  # rgb, rgba, r, g, b, a
    scale: tuple[float, float, float, float]
    uv_name: str | None
    uv_transform: tuple[tuple[float, float], tuple[float, float]] | None  # (scale, offset), glTF's uv space


class Materials:
    """The materials of one stage, each converted once (by material path and sidedness)."""

    def __init__(self, job: Job, opened: Opened, allowance: Allowance) -> None:
        self.job = job
        self.opened = opened
        self.allowance = allowance
        self.cache: dict[tuple[str, bool], Material] = {}
        self.plain: dict[tuple[tuple[float, ...] | None, bool], Material] = {}
        self.images: dict[str, Image | None] = {}
        self.uv_names: dict[str, str | None] = {}

    def uv_name(self, material: Any) -> str | None:
        """The primvar the material's textures read their coordinates from (None: no textures)."""
        path = str(material.GetPath())
        if path not in self.uv_names:
            shader = _preview_surface(material)
            names = [t.uv_name for t in _textures(shader).values()] if shader else []
            self.uv_names[path] = next((n for n in names if n), None)
        return self.uv_names[path]

    def plain_material(self, color: tuple[float, float, float, float] | None, double_sided: bool) -> Material:
        """What a mesh without a material is drawn with: its constant ``displayColor`` (USD's default
        grey where it has none), rough and not metallic, as USD viewers draw it."""
        key = (color, double_sided)
        if key not in self.plain:
            base = color or (0.18, 0.18, 0.18, 1.0)
            mode: AlphaMode = "BLEND" if base[3] < 1.0 else "OPAQUE"
            self.plain[key] = Material(
                name="displayColor",
                base_color_factor=base,
                metallic_factor=0.0,
                roughness_factor=0.5,
                double_sided=double_sided,
                alpha_mode=mode,
            )
        return self.plain[key]

    def material(self, material: Any, double_sided: bool) -> Material:
        """``material`` (a ``UsdShade.Material``) as openrr's, double-sided as the gprim says."""
        path = str(material.GetPath())
        key = (path, double_sided)
        if key not in self.cache:
            single = (path, not double_sided)
            if single in self.cache:
                self.cache[key] = replace(self.cache[single], double_sided=double_sided)
            else:
                self.cache[key] = self._convert(material, path, double_sided)
        return self.cache[key]

    def _convert(self, material: Any, path: str, double_sided: bool) -> Material:
        name = material.GetPrim().GetName()
        shader = _preview_surface(material)
        if shader is None:
            self.job.warn(
                "UnsupportedMaterial",
                "Material not converted",
                f"{path}: no UsdPreviewSurface surface shader; drawn with the default material",
            )
            return Material(name=name, double_sided=double_sided)
        values = {n: _value(shader, n) for n in _INPUTS}
        textures = _textures(shader)
        built = _Build(self, path, values, textures)
        return built.material(name, double_sided)

    def image(self, texture: Texture, what: str) -> Image | None:
        """The texture's pixels (RGBA uint8), read once per file; None (with a warning) where they cannot
        be read."""
        if texture.resolved not in self.images:
            self.images[texture.resolved] = self._read(texture, what)
        return self.images[texture.resolved]

    def _read(self, texture: Texture, what: str) -> Image | None:
        problem = ""
        if not texture.resolved:
            problem = f"{texture.authored!r} not found"
        elif not self.opened.inside(texture.resolved):
            problem = f"{texture.authored!r} lies outside the model's folder: not read"
        else:
            try:
                return decode_image(_bytes(texture.resolved), self.allowance, what)
            except ModelLoadError as exc:
                problem = exc.message
        self.job.warn("TextureNotLoaded", "Texture left out", f"{what}: {problem}")
        return None


_INPUTS = {
    "diffuseColor": (0.18, 0.18, 0.18),
    "emissiveColor": (0.0, 0.0, 0.0),
    "metallic": 0.0,
    "roughness": 0.5,
    "opacity": 1.0,
    "opacityThreshold": 0.0,
}


def _bytes(resolved: str) -> bytes:
    try:
        asset = Ar.GetResolver().OpenAsset(Ar.ResolvedPath(resolved))
    except Exception:  # noqa: BLE001 - pxr raises Tf.ErrorException for what it cannot open
        asset = None
    if asset is None:
        raise ModelLoadError("cannot open the image")
    size = int(asset.GetSize())
    if size > DEFAULT_MAX_BYTES:
        raise ModelLoadError(f"the image file exceeds {DEFAULT_MAX_BYTES} bytes")
    data = asset.GetBuffer()
    return bytes(data)


def _preview_surface(material: Any) -> Any:
    try:
        shader = material.ComputeSurfaceSource()[0]
    except Exception:  # noqa: BLE001 - a broken connection raises Tf.ErrorException
        return None
    if not shader or str(shader.GetShaderId() or "") != "UsdPreviewSurface":
        return None
    return shader


def _source(shader: Any, name: str) -> Any:
    """The attribute that gives input ``name`` its value: a connected shader's output, an interface input
    or the input itself (None where it has none)."""
    found = shader.GetInput(name)
    if not found:
        return None
    attributes = found.GetValueProducingAttributes(False)
    return attributes[0] if attributes else None


def _value(shader: Any, name: str) -> Any:
    attribute = _source(shader, name)
    if attribute is None or _is_output(attribute):
        return _INPUTS[name]
    value = attribute.Get()
    return _INPUTS[name] if value is None else value


def _is_output(attribute: Any) -> bool:
    return bool(UsdShade.Utils.GetType(attribute.GetName()) == UsdShade.AttributeType.Output)


def _textures(shader: Any) -> dict[str, Texture]:
    """Each input connected to a ``UsdUVTexture``'s output, with that texture."""
    found = {}
    for name in ("diffuseColor", "emissiveColor", "metallic", "roughness", "opacity", "normal", "occlusion"):
        attribute = _source(shader, name)
        if attribute is None or not _is_output(attribute):
            continue
        texture_shader = UsdShade.Shader(attribute.GetPrim())
        if str(texture_shader.GetShaderId() or "") != "UsdUVTexture":
            continue
        found[name] = _texture(texture_shader, UsdShade.Utils.GetBaseNameAndType(attribute.GetName())[0])
    return found


def _texture(shader: Any, channel: str) -> Texture:
    file_attribute = _source(shader, "file")
    asset = file_attribute.Get() if file_attribute is not None else None
    resolved = str(getattr(asset, "resolvedPath", "") or "")
    authored = str(getattr(asset, "path", "") or "")
    scale_attribute = _source(shader, "scale")
    scale = scale_attribute.Get() if scale_attribute is not None else None
    s = tuple(float(c) for c in scale) if scale is not None and len(scale) == 4 else (1.0, 1.0, 1.0, 1.0)
    uv_name, transform = _coordinates(shader)
    return Texture(resolved, authored, str(channel), (s[0], s[1], s[2], s[3]), uv_name, transform)


def _coordinates(shader: Any) -> tuple[str | None, tuple[tuple[float, float], tuple[float, float]] | None]:
    """The primvar a texture's ``st`` reads, and a ``UsdTransform2d`` between them as glTF's uv transform."""
    attribute = _source(shader, "st")
    if attribute is None or not _is_output(attribute):
        return None, None
    node = UsdShade.Shader(attribute.GetPrim())
    transform = None
    if str(node.GetShaderId() or "") == "UsdTransform2d":
        transform = _transform2d(node)
        attribute = _source(node, "in")
        if attribute is None or not _is_output(attribute):
            return None, transform
        node = UsdShade.Shader(attribute.GetPrim())
    if not str(node.GetShaderId() or "").startswith("UsdPrimvarReader"):
        return None, transform
    varname = _source(node, "varname")
    value = varname.Get() if varname is not None else None
    return (str(value) if value else None), transform


def _transform2d(node: Any) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """uv' = uv * scale + translation in USD's space (origin bottom-left) as glTF's (top-left):
    v_gl' = v_gl * s_v + (1 - s_v - t_v). None where it rotates."""

    def get(name: str, default: Any) -> Any:
        attribute = _source(node, name)
        value = attribute.Get() if attribute is not None and not _is_output(attribute) else None
        return default if value is None else value

    if abs(float(get("rotation", 0.0))) > 1e-6:
        return None
    su, sv = (float(c) for c in get("scale", (1.0, 1.0)))
    tu, tv = (float(c) for c in get("translation", (0.0, 0.0)))
    return (su, sv), (tu, 1.0 - sv - tv)


class _Build:
    """One UsdPreviewSurface's inputs and textures as a ``Material``."""

    def __init__(
        self, materials: Materials, path: str, values: dict[str, Any], textures: dict[str, Texture]
    ) -> None:
        self.materials = materials
        self.path = path
        self.values = values
        self.textures = textures

    def image(self, name: str) -> Image | None:
        texture = self.textures.get(name)
        return None if texture is None else self.materials.image(texture, f"{self.path} {name} texture")

    def material(self, name: str, double_sided: bool) -> Material:
        base, base_texture = self.base()
        threshold = float(self.values["opacityThreshold"])
        mode: AlphaMode = "OPAQUE"
        if threshold > 0.0:
            mode = "MASK"
        elif base[3] < 1.0 or ("opacity" in self.textures and base_texture is not None):
            mode = "BLEND"
        metallic, roughness, packed = self.metallic_roughness()
        emissive, emissive_texture = self.emissive()
        uv = next((t.uv_transform for t in self.textures.values() if t.uv_transform), None)
        return Material(
            name=name,
            base_color_factor=base,
            base_color_texture=base_texture,
            metallic_factor=metallic,
            roughness_factor=roughness,
            metallic_roughness_texture=packed,
            normal_texture=self.image("normal"),
            occlusion_texture=self.channel_image("occlusion", 0),
            emissive_factor=emissive,
            emissive_texture=emissive_texture,
            double_sided=double_sided,
            alpha_mode=mode,
            alpha_cutoff=threshold if threshold > 0.0 else 0.5,
            uv_scale=uv[0] if uv else (1.0, 1.0),
            uv_offset=uv[1] if uv else (0.0, 0.0),
        )

    def base(self) -> tuple[tuple[float, float, float, float], Image | None]:
        rgb = _rgb(self.values["diffuseColor"])
        alpha = _unit(self.values["opacity"])
        image = self.image("diffuseColor")
        if image is not None:
            scale = self.textures["diffuseColor"].scale
            rgb = (scale[0], scale[1], scale[2])
        opacity = self.textures.get("opacity")
        if opacity is not None:
            alpha = 1.0
            same = self.textures.get("diffuseColor")
            if not (same is not None and same.resolved == opacity.resolved and opacity.channel == "a"):
                image = self._with_alpha(image, opacity)
        return (rgb[0], rgb[1], rgb[2], alpha), image

    def _with_alpha(self, image: Image | None, opacity: Texture) -> Image | None:
        source = self.image("opacity")
        if source is None:
            return image
        channel = source[:, :, _CHANNELS.get(opacity.channel, 0)]
        if image is None:
            image = np.full(source.shape, 255, dtype=np.uint8)
        else:
            image = image.copy()
            channel = _fit(channel, image.shape[:2])
        image[:, :, 3] = channel
        return image

    def channel_image(self, name: str, to: int) -> Image | None:
        """The texture of ``name`` with its connected channel in channel ``to`` (the rest white)."""
        texture, image = self.textures.get(name), self.image(name)
        if texture is None or image is None:
            return None
        if texture.channel in ("rgb", "rgba") and to == 0:
            return image
        out = np.full(image.shape, 255, dtype=np.uint8)
        out[:, :, to] = image[:, :, _CHANNELS.get(texture.channel, 0)]
        return out

    def metallic_roughness(self) -> tuple[float, float, Image | None]:
        """Factors, and glTF's packed texture (roughness in G, metallic in B) where either is textured."""
        metallic, roughness = _unit(self.values["metallic"]), _unit(self.values["roughness"])
        rough, metal = self.channel_image("roughness", 1), self.channel_image("metallic", 2)
        first = rough if rough is not None else metal
        if first is None:
            return metallic, roughness, None
        shape = first.shape
        packed = np.full(shape, 255, dtype=np.uint8)
        if rough is not None:
            packed[:, :, 1] = rough[:, :, 1]
            roughness = self.textures["roughness"].scale[0]
        if metal is not None:
            packed[:, :, 2] = _fit(metal[:, :, 2], shape[:2])
            metallic = self.textures["metallic"].scale[0]
        return _unit(metallic), _unit(roughness), packed

    def emissive(self) -> tuple[tuple[float, float, float], Image | None]:
        image = self.image("emissiveColor")
        if image is not None:
            s = self.textures["emissiveColor"].scale
            return (s[0], s[1], s[2]), image
        return _rgb(self.values["emissiveColor"]), None


def _fit(channel: NDArray[np.uint8], shape: tuple[int, ...]) -> NDArray[np.uint8]:
    """One channel resized to ``shape`` (height, width) where it differs."""
    if channel.shape == shape:
        return channel
    resized = PIL.Image.fromarray(channel).resize((shape[1], shape[0]), PIL.Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def _unit(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 1.0
    return min(max(number, 0.0), 1.0) if np.isfinite(number) else 1.0


def _rgb(value: Any) -> tuple[float, float, float]:
    try:
        r, g, b = (_unit(c) for c in value)
    except (TypeError, ValueError):
        return (0.18, 0.18, 0.18)
    return (r, g, b)
