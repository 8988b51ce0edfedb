"""The converter's input formats and their readers: glTF 2.0 (``.gltf``, ``.glb``) through the render
server's own loader, so a converted model draws exactly like the raw one; OBJ (+ MTL and textures) and
PLY meshes through trimesh; PLY and XYZ point clouds. ``NOT_SUPPORTED`` names the formats ARR took that
openrr does not, with what to do instead.

``read_input`` gives a ``Source``: the model as read, before any conversion setting is applied. Every
problem with the file raises ``ConversionFailed`` with a message for the user.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from numpy.typing import NDArray

from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.model.arrasset.layout import PointCloud
from openrr.model.errors import ModelLoadError
from openrr.model.loader import load_model
from openrr.model.metadata import MetadataKeeper
from openrr.model.scene import Scene
from openrr.model.trimesh_scene import scene_from_trimesh

MESH_FORMATS = {".gltf": "glTF 2.0", ".glb": "glTF 2.0 binary (GLB)", ".obj": "Wavefront OBJ", ".ply": "PLY"}
POINT_FORMATS = {".xyz": "XYZ point cloud"}
NOT_SUPPORTED = {
    ".fbx": (
        "FBX is not supported: openrr has no FBX reader. The maintained route would be the Open Asset "
        "Import Library (Debian package libassimp5 with the pyassimp binding), which this installation "
        "does not have; export the model as glTF 2.0 (.glb) instead"
    ),
    ".e57": "E57 point clouds are not supported by openrr: export the points as PLY or XYZ",
    ".las": "LAS point clouds are not supported by openrr: export the points as PLY or XYZ",
    ".laz": "LAZ point clouds are not supported by openrr: export the points as PLY or XYZ",
}
MAX_INPUT_BYTES = 8 << 30  # a model plus its buffers and textures; the machine has 24 GiB


@dataclass
class Source:
    """A model as read: its scene, its point clouds by node id, and what ``info.json`` says of the file."""

    scene: Scene
    points: dict[int, PointCloud]
    format_name: str
    format_version: str = ""
    generator: str = ""
    sidedness_in_file: bool = False  # glTF: each material says whether it is double-sided


def read_input(job: Job, path: Path, extension: str, metadata: MetadataKeeper) -> Source:
    """The model at ``path``, read by the reader of ``extension`` (one of ``MESH_FORMATS`` or
    ``POINT_FORMATS``); a PLY that mixes points and faces keeps the faces, with a warning on ``job``.
    Nodes keep the object metadata ``metadata`` selects (glTF node extras; trimesh's OBJ and PLY readers
    give none: an OBJ's groups and objects are already the nodes' names)."""
    if extension in (".gltf", ".glb"):
        try:
            scene = load_model(path, max_bytes=MAX_INPUT_BYTES, metadata=metadata)
        except ModelLoadError as exc:
            raise ConversionFailed(exc.message.replace(str(path), path.name)) from None
        version, generator = _gltf_header(path)
        return Source(scene, {}, MESH_FORMATS[extension], version, generator, sidedness_in_file=True)
    if extension == ".xyz":
        return _xyz(path)
    try:
        # trimesh reads the MTL and textures of an OBJ through a resolver confined to the model's folder.
        loaded = trimesh.load_scene(str(path), file_type=extension[1:])
    except Exception as exc:  # noqa: BLE001 - trimesh raises any type of exception on bad input
        raise ConversionFailed(
            f"{path.name}: invalid {MESH_FORMATS[extension]} data: {type(exc).__name__}: {exc}"
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
            return _points_source(path, clouds, MESH_FORMATS[extension], version)
    try:
        scene = scene_from_trimesh(loaded, path.name, metadata)
    except (ValueError, KeyError, IndexError, OSError) as exc:
        raise ConversionFailed(f"{path.name}: invalid model content: {exc}") from None
    return Source(scene, {}, MESH_FORMATS[extension], version)


def _gltf_header(path: Path) -> tuple[str, str]:
    """glTF's ``asset.version`` and ``asset.generator`` for info.json (empty where unreadable)."""
    try:
        with path.open("rb") as f:
            head = f.read(20)
            if head[:4] == b"glTF":
                length, kind = struct.unpack_from("<II", head, 12)
                document = json.loads(f.read(length)) if kind == 0x4E4F534A else {}
            else:
                document = json.loads(head + f.read())
        asset = document.get("asset", {})
        return str(asset.get("version", "")), str(asset.get("generator", ""))
    except (OSError, ValueError, AttributeError, struct.error):
        return "", ""


def _ply_format(path: Path) -> str:
    with contextlib.suppress(OSError, IndexError, UnicodeDecodeError), path.open("rb") as f:
        for line in f.read(1024).split(b"\n")[1:3]:
            if line.startswith(b"format "):
                return line[len(b"format ") :].decode("ascii").strip()
    return ""


def _points_source(path: Path, clouds: list[Any], format_name: str, version: str) -> Source:
    positions = np.concatenate([np.asarray(c.vertices, dtype=np.float32) for c in clouds])
    colors = None
    if all(c.colors is not None and len(c.colors) == len(c.vertices) for c in clouds):
        colors = np.concatenate([np.asarray(c.colors, dtype=np.float32) / 255.0 for c in clouds])
    return _cloud_source(path, positions, colors, format_name, version)


def _cloud_source(
    path: Path,
    positions: NDArray[np.float32],
    colors: NDArray[np.float32] | None,
    format_name: str,
    version: str,
) -> Source:
    if not np.isfinite(positions).all():
        raise ConversionFailed(f"{path.name}: the points have non-finite coordinates")
    if len(positions) == 0:
        raise ConversionFailed(f"{path.name} holds no points", code="EmptyModel")
    scene = Scene(path.name)
    node = scene.add_node(path.stem or "points")
    cloud = PointCloud(positions, colors, 1.0)
    return Source(scene, {node.id: cloud}, format_name, version)


def _xyz(path: Path) -> Source:
    """XYZ text: one point a line, ``x y z``, ``x y z i``, ``x y z r g b`` or ``x y z r g b i``, separated
    by spaces, tabs, commas or semicolons; ``#`` and ``//`` start comments. Colours in 0..255, or 0..1
    if no value exceeds 1; an intensity alone becomes grey."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConversionFailed(f"{path.name}: not a readable XYZ text file ({exc})") from None
    text = text.translate({ord(","): " ", ord(";"): " "})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": checked below
            values = np.loadtxt(io.StringIO(text), dtype=np.float64, comments=("#", "//"), ndmin=2)
    except ValueError as exc:
        raise ConversionFailed(f"{path.name}: invalid XYZ data: {exc}") from None
    if values.size == 0:
        raise ConversionFailed(f"{path.name} holds no points", code="EmptyModel")
    columns = values.shape[1]
    if columns not in (3, 4, 6, 7):
        raise ConversionFailed(
            f"{path.name}: {columns} values per line; XYZ needs x y z, x y z i, x y z r g b or x y z r g b i"
        )
    colors = None
    if columns >= 6:
        rgb = values[:, 3:6]
    elif columns == 4:
        rgb = np.repeat(values[:, 3:4], 3, axis=1)
    if columns != 3:
        top = float(rgb.max(initial=0.0))
        rgb = rgb / (255.0 if top > 1.0 else 1.0) if columns >= 6 else rgb / (top if top > 0 else 1.0)
        colors = np.concatenate([np.clip(rgb, 0.0, 1.0), np.ones((len(rgb), 1))], axis=1).astype(np.float32)
    return _cloud_source(path, values[:, :3].astype(np.float32), colors, POINT_FORMATS[".xyz"], "")
