"""Meshes and materials: what the scene's nodes reference, immutable once built, in plain numpy.

A ``Mesh`` is a glTF mesh: one or more ``Primitive``\\ s (its parts), each with its own ``Material``.
Meshes, primitives and materials compare by identity, so one mesh referenced by many nodes (instancing) is
uploaded to the GPU once, and a material a client edits is replaced, never changed in place (see
``openrr.model.materials``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
RGBA = tuple[float, float, float, float]
AlphaMode = Literal["OPAQUE", "MASK", "BLEND"]


@dataclass(eq=False)
class Material:
    """glTF metallic-roughness material. Factors are linear; textures are RGBA uint8 (H, W, 4), row 0 first.

    Colour textures (base colour, emissive) hold sRGB values as stored in the file; the renderer decodes.
    ``unlit``: drawn in its base colour without lighting (ARR's ``ColorMaterial``, glTF's
    ``KHR_materials_unlit``). ``uv_scale``/``uv_offset``/``uv_rotation``: the uv transform of every
    texture, glTF's ``KHR_texture_transform``: uv' = offset + R(rotation) (uv * scale), the rotation in
    radians, counter-clockwise in uv space as the extension's example reads it: u' = cos r u + sin r v,
    v' = -sin r u + cos r v.
    """

    name: str = ""
    base_color_factor: RGBA = (1.0, 1.0, 1.0, 1.0)
    base_color_texture: NDArray[np.uint8] | None = None
    metallic_factor: float = 1.0
    roughness_factor: float = 1.0
    metallic_roughness_texture: NDArray[np.uint8] | None = None
    normal_texture: NDArray[np.uint8] | None = None
    occlusion_texture: NDArray[np.uint8] | None = None
    emissive_factor: tuple[float, float, float] = (0.0, 0.0, 0.0)
    emissive_texture: NDArray[np.uint8] | None = None
    double_sided: bool = False
    alpha_mode: AlphaMode = "OPAQUE"
    alpha_cutoff: float = 0.5
    unlit: bool = False
    uv_scale: tuple[float, float] = (1.0, 1.0)
    uv_offset: tuple[float, float] = (0.0, 0.0)
    uv_rotation: float = 0.0


@dataclass(eq=False)
class Primitive:
    """Indexed triangles with one material. Arrays are coerced to float32 / uint32 and validated.

    ``uvs`` use the glTF convention (origin at the top left of the image); ``colors`` are linear RGBA.
    ``normals`` may be None: the renderer then shades flat, as the glTF spec asks.
    """

    positions: F32
    indices: NDArray[np.uint32]
    material: Material = field(default_factory=Material)
    normals: F32 | None = None
    uvs: F32 | None = None
    colors: F32 | None = None
    bounds: F64 = field(init=False)

    def __post_init__(self) -> None:
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float32).reshape(-1, 3)
        self.indices = np.ascontiguousarray(self.indices, dtype=np.uint32).reshape(-1, 3)
        count = len(self.positions)
        if count == 0 or len(self.indices) == 0:
            raise ValueError("a primitive needs at least one vertex and one triangle")
        if int(self.indices.max()) >= count:
            raise ValueError(f"triangle index {int(self.indices.max())} out of range ({count} vertices)")
        if self.normals is not None:
            self.normals = _attribute(self.normals, count, 3, "normals")
        if self.uvs is not None:
            self.uvs = _attribute(self.uvs, count, 2, "uvs")
        if self.colors is not None:
            colors = np.asarray(self.colors, dtype=np.float32).reshape(count, -1)
            if colors.shape[1] == 3:
                colors = np.concatenate([colors, np.ones((count, 1), np.float32)], axis=1)
            self.colors = _attribute(colors, count, 4, "colors")
        if not np.isfinite(self.positions).all():
            raise ValueError("positions must be finite")
        # Column by column: numpy reduces a contiguous column ~9x faster than axis=0 of an (N, 3) array,
        # which is most of the load time of a converted asset.
        columns = [self.positions[:, k] for k in range(3)]
        self.bounds = np.array([[c.min() for c in columns], [c.max() for c in columns]], dtype=np.float64)

    @property
    def triangle_count(self) -> int:
        return len(self.indices)


def _attribute(values: NDArray[np.generic], count: int, width: int, what: str) -> F32:
    array = np.ascontiguousarray(values, dtype=np.float32)
    if array.shape != (count, width):
        raise ValueError(f"{what} must have shape ({count}, {width}), got {array.shape}")
    return array


@dataclass(eq=False)
class Mesh:
    """A glTF mesh: primitives drawn together under one node.

    ``lods``: coarser copies of the mesh, finest first (converted assets carry them for big meshes); the
    renderer draws the coarsest one whose error is below a pixel on screen.
    """

    name: str
    primitives: tuple[Primitive, ...]
    lods: tuple[LodLevel, ...] = ()
    bounds: F64 = field(init=False)
    triangle_count: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.primitives:
            raise ValueError("a mesh needs at least one primitive")
        self.primitives = tuple(self.primitives)
        stacked = np.stack([p.bounds for p in self.primitives])
        self.bounds = np.stack([stacked[:, 0].min(axis=0), stacked[:, 1].max(axis=0)])
        self.triangle_count = sum(p.triangle_count for p in self.primitives)


@dataclass(frozen=True)
class LodLevel:
    """A coarser copy of a mesh. ``error``: the largest distance a vertex moved, in mesh units."""

    mesh: Mesh
    error: float
