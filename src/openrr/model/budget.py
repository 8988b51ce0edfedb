"""What one session's models may cost: decoded texture pixels and geometry bytes, per model and for the
whole session, checked before the memory is spent.

A texture is counted from its image header (width x height), before it is decoded: a PNG of a few
kilobytes can decode to gigabytes. Geometry is counted as the renderer holds it: float32 positions,
normals, uvs and colours, uint32 indices (levels of detail included).
"""

from __future__ import annotations

import dataclasses

from openrr.model.mesh import Mesh
from openrr.model.scene import Scene

_MEGA = 1 << 20
# Decoded texture pixels of one model when the caller gives no allowance (1 GiB as RGBA): callers with
# limits of their own (a session's, by size) pass an ``Allowance``.
DEFAULT_TEXTURE_PIXELS = 256 << 20


def pixels_text(pixels: int) -> str:
    return f"{pixels / _MEGA:.1f} Mpx" if pixels >= _MEGA else f"{pixels} px"


def bytes_text(size: int) -> str:
    return f"{size / _MEGA:.1f} MiB" if size >= _MEGA else f"{size} bytes"


@dataclasses.dataclass(frozen=True)
class Usage:
    texture_pixels: int = 0
    geometry_bytes: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.texture_pixels + other.texture_pixels, self.geometry_bytes + other.geometry_bytes)


class BudgetExceeded(Exception):
    """A model would take more than its allowance; ``message`` says what and which limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass
class Allowance:
    """What one model load may still take (None: unlimited), and in words which limit that is. ``take_*``
    counts as the loader goes and raises ``BudgetExceeded`` before the memory is allocated."""

    texture_pixels: int | None = None
    texture_limit: str = ""
    geometry_bytes: int | None = None
    geometry_limit: str = ""
    used: Usage = dataclasses.field(default_factory=Usage)

    def take_texture(self, width: int, height: int, what: str) -> None:
        pixels = width * height
        total = self.used.texture_pixels + pixels
        if self.texture_pixels is not None and total > self.texture_pixels:
            raise BudgetExceeded(
                f"{what} is {width}x{height} ({pixels_text(pixels)}): the model's textures would take "
                f"{pixels_text(total)}, more than {self.texture_limit}"
            )
        self.used = Usage(total, self.used.geometry_bytes)

    def take_geometry(self, size: int, what: str) -> None:
        total = self.used.geometry_bytes + size
        if self.geometry_bytes is not None and total > self.geometry_bytes:
            raise BudgetExceeded(
                f"{what}: the model's geometry would take {bytes_text(total)}, "
                f"more than {self.geometry_limit}"
            )
        self.used = Usage(self.used.texture_pixels, total)

    def check(self, usage: Usage, what: str) -> None:
        """A model read whole (a converted asset): its usage against the allowance."""
        if self.texture_pixels is not None and usage.texture_pixels > self.texture_pixels:
            raise BudgetExceeded(
                f"{what}: its textures take {pixels_text(usage.texture_pixels)}, "
                f"more than {self.texture_limit}"
            )
        if self.geometry_bytes is not None and usage.geometry_bytes > self.geometry_bytes:
            raise BudgetExceeded(
                f"{what}: its geometry takes {bytes_text(usage.geometry_bytes)}, "
                f"more than {self.geometry_limit}"
            )
        self.used = usage


def default_allowance() -> Allowance:
    """The ceiling of a model loaded without an allowance of its own: ``DEFAULT_TEXTURE_PIXELS``, geometry
    unlimited."""
    return Allowance(DEFAULT_TEXTURE_PIXELS, f"the {pixels_text(DEFAULT_TEXTURE_PIXELS)} any model may have")


def geometry_bytes(vertices: int, triangles: int, *, normals: bool, uvs: bool, colors: bool) -> int:
    """Bytes of one primitive as ``openrr.model.scene.Primitive`` stores it."""
    per_vertex = 12 + (12 if normals else 0) + (8 if uvs else 0) + (16 if colors else 0)
    return vertices * per_vertex + triangles * 12


def usage(scene: Scene) -> Usage:
    """Texture pixels and geometry bytes of ``scene``, each image and array counted once."""
    seen: set[int] = set()
    pixels = size = 0
    meshes: list[Mesh] = list(scene.meshes())
    for mesh in meshes:
        meshes.extend(level.mesh for level in mesh.lods)
        for primitive in mesh.primitives:
            p = primitive
            for array in (p.positions, p.indices, p.normals, p.uvs, p.colors):
                if array is not None and id(array) not in seen:
                    seen.add(id(array))
                    size += array.nbytes
            m = primitive.material
            for image in (
                m.base_color_texture,
                m.metallic_roughness_texture,
                m.normal_texture,
                m.occlusion_texture,
                m.emissive_texture,
            ):
                if image is not None and id(image) not in seen:
                    seen.add(id(image))
                    pixels += image.shape[0] * image.shape[1]
    for node in scene.point_clouds():  # a point cloud's arrays, as the renderer holds them
        cloud = node.points
        if cloud is not None and id(cloud) not in seen:
            seen.add(id(cloud))
            size += cloud.positions.nbytes + (cloud.colors.nbytes if cloud.colors is not None else 0)
    return Usage(pixels, size)
