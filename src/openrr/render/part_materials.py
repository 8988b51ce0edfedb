"""What each mesh part is drawn with: levels of detail mapped onto their base mesh's parts, and the
textures of the materials drawn, uploaded on first use.

Apart from ``renderer.py``: the materials a part is drawn with change while a client edits them
(``Scene.material_of``), so textures no longer belong to an uploaded primitive but to the material drawn,
and a coarser level of detail must take the material of the base mesh part it stands for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import moderngl
import numpy as np
from numpy.typing import NDArray

from openrr.model.materials import MaterialTable
from openrr.model.mesh import Material, Mesh
from openrr.render.shaders import material_textures


def lod_parts(base: Mesh, level: Mesh) -> tuple[int, ...]:
    """Per primitive of ``level`` (a coarser copy of ``base``), the ``base`` part it stands for: by index
    when both have as many parts, else the first part with the same (original) material object; -1 where
    none has it (that primitive is drawn with the current version of its own material)."""
    if len(level.primitives) == len(base.primitives):
        return tuple(range(len(base.primitives)))
    first: dict[int, int] = {}
    for index, primitive in enumerate(base.primitives):
        first.setdefault(id(primitive.material), index)
    return tuple(first.get(id(p.material), -1) for p in level.primitives)


class MaterialTextures:
    """The GPU textures of the materials drawn: images upload once (keyed by the array's identity) on
    the first draw that needs them, and are released when no material of the scene references them."""

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        self._images: dict[int, tuple[NDArray[np.uint8], Any]] = {}  # id(image) -> (image, texture)
        self._materials: dict[int, tuple[Material, dict[int, Any]]] = {}  # id(material) -> units
        self._synced: tuple[object, ...] | None = None

    def of(self, material: Material) -> dict[int, Any]:
        """Texture unit -> texture for a material drawn on a primitive with uvs."""
        found = self._materials.get(id(material))
        if found is None:
            units = {
                unit: self._texture(image)
                for unit, image in enumerate(material_textures(material))
                if image is not None
            }
            found = self._materials[id(material)] = (material, units)  # holding it keeps its id() unique
        return found[1]

    def _texture(self, image: NDArray[np.uint8]) -> Any:
        if id(image) not in self._images:
            largest = int(self.ctx.info["GL_MAX_TEXTURE_SIZE"])
            step = -(-max(image.shape[:2]) // largest)  # decimate what the GL cannot hold at all
            pixels = np.ascontiguousarray(image[::step, ::step])
            texture = self.ctx.texture((pixels.shape[1], pixels.shape[0]), 4, pixels)
            texture.build_mipmaps()
            texture.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
            self._images[id(image)] = (image, texture)  # holding the array keeps its id() unique
        return self._images[id(image)][1]

    def sync(
        self, table: MaterialTable | None, loaded: Callable[[], Iterable[Material]], structure: object
    ) -> None:
        """After material edits or structure changes (``structure``: the renderer's sync key): forget
        the per-material choices and release the textures that neither ``table``'s current materials nor
        the loaded meshes' own materials (``loaded()``) reference. Cheap when nothing changed."""
        key = (table, table.revision if table is not None else 0, structure)
        if key == self._synced:
            return
        self._materials.clear()
        materials = [*loaded(), *(table.get(i) for i in table.ids())] if table is not None else []
        used = {id(image) for m in materials for image in material_textures(m) if image is not None}
        for gone in [k for k in self._images if k not in used]:
            self._images.pop(gone)[1].release()
        self._synced = key
