"""A scene's materials and textures by id, with the edits a client made to them.

The meshes a model loads are shared (between clients, with the session's cached copy of the model), so an
edit never changes a ``Material`` in place: the table maps each original material to its current version,
and the renderer draws ``current(primitive.material)``. A fresh ``Scene`` (the next client) starts from the
originals. Ids count up from 0 per scene and are never reused; textures are ``(H, W, 4)`` uint8 arrays
(see ``Material``) and get ids the same way, so that a material's textures can be named on the wire.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from openrr.model.mesh import Material

Image = NDArray[np.uint8]


class MaterialTable:
    """Materials by id: the originals of the loaded meshes, those a client created, and their edits."""

    def __init__(self) -> None:
        self._ids = itertools.count()
        self._by_object: dict[int, int] = {}  # id() of an original material -> material id
        self._originals: dict[int, Material] = {}  # material id -> original (kept alive: its id() is a key)
        self._current: dict[int, Material] = {}  # material id -> current version
        self.revision = 0

    def register(self, materials: Iterable[Material]) -> None:
        """Give ids to materials not seen before (those of a mesh being added to the scene)."""
        for material in materials:
            if id(material) not in self._by_object:
                self._add(material)

    def _add(self, material: Material) -> int:
        material_id = next(self._ids)
        self._by_object[id(material)] = material_id
        self._originals[material_id] = material
        self._current[material_id] = material
        return material_id

    def create(self, material: Material) -> int:
        """Add a client's new material; returns its id."""
        material_id = self._add(material)
        self.revision += 1
        return material_id

    def id_of(self, material: Material) -> int:
        """The id of an original material (KeyError if the scene never held it)."""
        return self._by_object[id(material)]

    def get(self, material_id: int) -> Material:
        """The current version of a material (KeyError for an unknown id)."""
        return self._current[material_id]

    def current(self, material: Material) -> Material:
        """What to draw for an original material: its current version (itself when never edited)."""
        material_id = self._by_object.get(id(material))
        return material if material_id is None else self._current[material_id]

    def replace(self, material_id: int, material: Material) -> None:
        """Make ``material`` the current version of ``material_id`` (KeyError for an unknown id)."""
        if material_id not in self._current:
            raise KeyError(material_id)
        self._current[material_id] = material
        self.revision += 1

    def __contains__(self, material_id: object) -> bool:
        return material_id in self._current

    def __len__(self) -> int:
        return len(self._current)

    def ids(self) -> list[int]:
        return list(self._current)


class TextureTable:
    """Textures by id: those of the scene's materials and those a client loaded."""

    def __init__(self) -> None:
        self._ids = itertools.count()
        self._by_object: dict[int, int] = {}
        self._images: dict[int, Image] = {}
        self.names: dict[int, str] = {}  # where a loaded texture came from (shown to the client)

    def id_of(self, image: Image, name: str = "") -> int:
        """The id of ``image``, given one on first sight."""
        texture_id = self._by_object.get(id(image))
        if texture_id is None:
            texture_id = next(self._ids)
            self._by_object[id(image)] = texture_id
            self._images[texture_id] = image  # holding it keeps its id() unique
            self.names[texture_id] = name
        return texture_id

    def get(self, texture_id: int) -> Image:
        """The image of a texture id (KeyError for an unknown id)."""
        return self._images[texture_id]

    def __contains__(self, texture_id: object) -> bool:
        return texture_id in self._images

    def __len__(self) -> int:
        return len(self._images)
