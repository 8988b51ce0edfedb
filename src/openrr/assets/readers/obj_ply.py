"""Wavefront OBJ (with its MTL and textures) and PLY (meshes or point clouds), read by trimesh.

trimesh reads an OBJ's MTL and textures through a resolver confined to the model's folder. Its OBJ and
PLY readers give no object metadata: an OBJ's groups and objects are already the nodes' names.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.assets.readers.source import Reader, Source, point_source
from openrr.model.metadata import MetadataKeeper
from openrr.model.trimesh_scene import scene_from_trimesh

FORMATS = {".obj": "Wavefront OBJ", ".ply": "PLY"}


def read(job: Job, path: Path, extension: str, metadata: MetadataKeeper) -> Source:
    """A PLY that mixes points and faces keeps the faces, with a warning on ``job``."""
    try:
        loaded = trimesh.load_scene(str(path), file_type=extension[1:])
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


def _points(path: Path, clouds: list[Any], format_name: str, version: str) -> Source:
    positions = np.concatenate([np.asarray(c.vertices, dtype=np.float32) for c in clouds])
    colors = None
    if all(c.colors is not None and len(c.colors) == len(c.vertices) for c in clouds):
        colors = np.concatenate([np.asarray(c.colors, dtype=np.float32) / 255.0 for c in clouds])
    return point_source(path, positions, colors, format_name, version)


READER = Reader(FORMATS, read)
