"""Wavefront OBJ (with its MTL and textures) and PLY (meshes or point clouds), read by trimesh.

trimesh reads an OBJ's MTL and textures through its resolver, which is confined to the model's folder;
names written with Windows separators (``map_Kd .\\wood.jpg`` in MTL files made on Windows) are tried with
``/`` too. Its OBJ and PLY readers give no object metadata: an OBJ's groups and objects are already the
nodes' names.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from trimesh.resolvers import FilePathResolver

from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.assets.readers.source import Reader, Source, point_source
from openrr.model.metadata import MetadataKeeper
from openrr.model.trimesh_scene import scene_from_trimesh

FORMATS = {".obj": "Wavefront OBJ", ".ply": "PLY"}


class _FolderResolver(FilePathResolver):
    """trimesh's resolver (nothing outside the model's folder), reading Windows-style names too."""

    def get(self, name: str) -> bytes:
        try:
            data: bytes = super().get(name)
        except FileNotFoundError:
            if "\\" not in name:
                raise
            data = super().get(name.replace("\\", "/"))
        return data


def read(job: Job, path: Path, extension: str, metadata: MetadataKeeper) -> Source:
    """A PLY that mixes points and faces keeps the faces, with a warning on ``job``."""
    try:
        loaded = trimesh.load_scene(str(path), file_type=extension[1:], resolver=_FolderResolver(str(path)))
    except Exception as exc:  # noqa: BLE001 - trimesh raises any type of exception on bad input
        raise ConversionFailed(
            f"{path.name}: invalid {FORMATS[extension]} data: {type(exc).__name__}: {exc}"
        ) from None
    version = _ply_format(path) if extension == ".ply" else ""
    clouds = [g for g in loaded.geometry.values() if isinstance(g, trimesh.PointCloud)]
    if clouds:
        if len(clouds) != len(loaded.geometry):
            job.warn(
                "PointsDropped",
                "Points dropped",
                f"{path.name} mixes points and faces: only the faces are converted",
            )
        else:
            return _points(path, clouds, FORMATS[extension], version)
    if extension == ".ply" and not _ply_has_texture(path):
        for geometry in loaded.geometry.values():
            # Texture coordinates without a texture (Blender writes them): trimesh puts a dark grey
            # placeholder image on them, and the model would render dark rather than in the default grey.
            if isinstance(geometry.visual, trimesh.visual.TextureVisuals):
                geometry.visual = trimesh.visual.ColorVisuals(geometry)
    try:
        scene = scene_from_trimesh(loaded, path.name, metadata)
    except (ValueError, KeyError, IndexError, OSError) as exc:
        raise ConversionFailed(f"{path.name}: invalid model content: {exc}") from None
    return Source(scene, {}, FORMATS[extension], version)


def _ply_format(path: Path) -> str:
    with contextlib.suppress(OSError, IndexError, UnicodeDecodeError), path.open("rb") as f:
        for line in f.read(1024).split(b"\n")[1:3]:
            if line.startswith(b"format "):
                return line[len(b"format ") :].decode("ascii").strip()
    return ""


def _ply_has_texture(path: Path) -> bool:
    """Whether the header names a texture (``comment TextureFile``, as MeshLab writes it)."""
    with contextlib.suppress(OSError), path.open("rb") as f:
        header = f.read(65536).split(b"end_header", 1)[0]
        return b"TextureFile" in header
    return False


def _points(path: Path, clouds: list[Any], format_name: str, version: str) -> Source:
    positions = np.concatenate([np.asarray(c.vertices, dtype=np.float32) for c in clouds])
    colors = None
    if all(c.colors is not None and len(c.colors) == len(c.vertices) for c in clouds):
        colors = np.concatenate([np.asarray(c.colors, dtype=np.float32) / 255.0 for c in clouds])
    return point_source(path, positions, colors, format_name, version)


READER = Reader(FORMATS, read)
