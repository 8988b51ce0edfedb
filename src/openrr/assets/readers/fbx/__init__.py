"""Autodesk FBX (binary and ASCII, FBX 2011 to 2020 and the versions around them), read by assimp.

assimp (Debian's libassimp5 through pyassimp's ctypes declarations, ``native``) parses the file from memory
and triangulates it; pivots, pre/post rotations and the other parts of an FBX transform are folded into each
node's local transform. This package turns the result into openrr's scene:

* nodes keep the file's hierarchy, names and local transforms; assimp's root node is left out and its
  children become the roots, carrying the change from the file's axis system and unit (``GlobalSettings``:
  ``UpAxis``, ``FrontAxis``, ``CoordAxis`` with their signs, ``UnitScaleFactor`` in centimetres) to openrr's
  right-handed Y-up metres, as ARR converted FBX models;
* a node's meshes (assimp splits an FBX mesh by material) become one ``Mesh`` with a part per material, and
  nodes that share a geometry share the ``Mesh`` (instancing);
* materials and textures: ``materials`` and ``textures`` (``fbxAssumeMetallic`` from the job's settings);
* node properties assimp exposes (user properties included) are node metadata, as ``metadataKeys`` selects.

Counts are bounded before anything is built from them; assimp's own memory is bounded by the converter's
process (``openrr.assets.worker``: a memory ceiling, and a crash is the conversion's, not the service's).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.assets.readers.fbx import native
from openrr.assets.readers.fbx.materials import Materials
from openrr.assets.readers.fbx.textures import Textures
from openrr.assets.readers.source import Reader, Source
from openrr.model.budget import default_allowance
from openrr.model.mesh import Mesh, Primitive
from openrr.model.metadata import MetadataKeeper
from openrr.model.scene import Scene

FORMATS = {".fbx": "FBX"}
# assimp reads the whole file into memory and takes its length as a 32-bit count.
MAX_INPUT_BYTES = 2 << 30
MAX_NODES = 1 << 20
MAX_MESHES = 1 << 20
MAX_MATERIALS = 1 << 16
BINARY_MAGIC = b"Kaydara FBX Binary  \x00"
ASCII_HEAD = 1 << 16  # an ASCII file's FBXHeaderExtension comes first, after a few comment lines
ASCII_CONTENT = re.compile(rb'Content:\s*,?\s*((?:"[^"]*"\s*,?\s*)+)')
QUOTED = re.compile(rb'"([^"]*)"')
BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
# Properties assimp adds to every node itself: not the model's metadata.
ASSIMP_NODE_KEYS = frozenset(
    {"IsNull", "DefaultAttributeIndex", "InheritType", "RotationActive", "ScalingMax"}
)


def read(job: Job, path: Path, extension: str, metadata: MetadataKeeper) -> Source:
    """``ConversionFailed`` for what is not FBX, or is damaged or too big; missing textures are warnings."""
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise ConversionFailed(
                f"{path.name} is larger than {MAX_INPUT_BYTES} bytes", code="InputTooLarge"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ConversionFailed(f"cannot read {path.name}: {exc.strerror or exc}") from None
    _check_fbx(path, data)
    assume_metallic = job.settings.fbx_assume_metallic if job.settings is not None else True
    with native.imported(data, path.name) as scene:
        del data
        settings = native.metadata(scene.mMetadata)
        _check_counts(path, scene)
        textures = Textures(job, path, scene, default_allowance())
        builder = _Builder(job, scene, Materials(scene, textures, assume_metallic), metadata)
        result = builder.scene(path, _to_openrr(job, settings))
    version = str(settings.get("SourceAsset_FormatVersion", ""))
    if version.isdigit() and int(version) < 7100:
        job.say(f"FBX {version} is older than FBX 2011 (7100), the oldest version ARR converted")
    return Source(result, {}, FORMATS[extension], version, str(settings.get("SourceAsset_Generator", "")))


def _check_fbx(path: Path, data: bytes) -> None:
    """``ConversionFailed`` unless ``data`` starts as an FBX file does. assimp, given bytes its FBX importer
    refuses, tries its other importers, and some of those open files the model names (an OBJ's .mtl)."""
    if data.startswith(BINARY_MAGIC):
        return
    head = data[:ASCII_HEAD].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"; FBX") or b"FBXHeaderExtension" in head:
        _check_embedded(path, data)
        return
    raise ConversionFailed(
        f"{path.name}: invalid FBX data: neither a binary FBX file (Kaydara FBX Binary) nor an ASCII one"
    )


def _check_embedded(path: Path, data: bytes) -> None:
    """``ConversionFailed`` unless every file an ASCII FBX embeds (``Content:`` strings) is valid base64:
    assimp 5.2 corrupts its own memory decoding one that is not."""
    for content in ASCII_CONTENT.finditer(data):
        encoded = b"".join(QUOTED.findall(content.group(1)))
        if len(encoded) % 4 or not BASE64.fullmatch(encoded):
            raise ConversionFailed(f"{path.name}: invalid FBX data: an embedded file is not valid base64")


def _check_counts(path: Path, scene: Any) -> None:
    for what, count, limit in (
        ("meshes", int(scene.mNumMeshes), MAX_MESHES),
        ("materials", int(scene.mNumMaterials), MAX_MATERIALS),
    ):
        if count > limit:
            raise ConversionFailed(f"{path.name} has {count} {what}, more than {limit}")
    if not scene.mRootNode:
        raise ConversionFailed(f"{path.name}: invalid FBX data: no scene graph")


def _to_openrr(job: Job, settings: dict[str, Any]) -> NDArray[np.float64]:
    """The change from the file's axis system and unit to right-handed Y-up metres (a 4x4 matrix)."""
    axes = []
    for name in ("CoordAxis", "UpAxis", "FrontAxis"):  # openrr's x, y and z
        axis, sign = settings.get(name), settings.get(f"{name}Sign", 1)
        axes.append((axis, -1.0 if sign == -1 else 1.0))
    change = np.eye(4)
    if sorted(a for a, _ in axes if isinstance(a, int)) == [0, 1, 2]:
        change[:3, :3] = 0.0
        for row, (axis, sign) in enumerate(axes):
            change[row, axis] = sign
    elif any(a is not None for a, _ in axes):
        job.say(f"the file's axis system {axes} is not valid: its axes are kept as they are")
    if np.linalg.det(change[:3, :3]) < 0:
        job.say("the file's axis system is left-handed: the model is mirrored into openrr's right-handed one")
    unit = settings.get("UnitScaleFactor", 1.0)  # centimetres per file unit
    scale = float(unit) / 100.0 if isinstance(unit, int | float) and 0 < unit < 1e9 else 0.01
    job.say(f"FBX axes (x, y, z from) {axes}, unit {scale * 100:g} cm: converted to Y-up metres")
    return np.diag([scale, scale, scale, 1.0]) @ change


class _Builder:
    """One walk over assimp's node tree; meshes and materials are converted once each."""

    def __init__(self, job: Job, scene: Any, materials: Materials, metadata: MetadataKeeper) -> None:
        self.job = job
        self.ai = scene
        self.materials = materials
        self.metadata = metadata
        self.primitives: dict[int, Primitive | None] = {}
        self.meshes: dict[tuple[int, ...], Mesh | None] = {}

    def scene(self, path: Path, root_change: NDArray[np.float64]) -> Scene:
        out = Scene(path.name)
        root = self.ai.mRootNode.contents
        # (node, parent id, matrix to put before its transform): the root's children carry the root's own
        # transform and the change of axes and units; the root itself becomes a node only if it has meshes.
        change = root_change @ native.matrix(root.mTransformation)
        stack: list[tuple[Any, int | None, NDArray[np.float64] | None]] = []
        if int(root.mNumMeshes):
            stack.append((root, None, root_change))
        else:
            stack.extend(
                (root.mChildren[i].contents, None, change) for i in reversed(range(root.mNumChildren))
            )
        count = 0
        while stack:
            node, parent, before = stack.pop()
            count += 1
            if count > MAX_NODES:
                raise ConversionFailed(f"{path.name} has more than {MAX_NODES} nodes")
            added = self._node(out, node, parent, before)
            stack.extend(
                (node.mChildren[i].contents, added, None) for i in reversed(range(node.mNumChildren))
            )
        return out

    def _node(self, out: Scene, node: Any, parent: int | None, before: NDArray[np.float64] | None) -> int:
        local = native.matrix(node.mTransformation)
        if before is not None:
            local = before @ local
        if not np.isfinite(local).all():
            raise ConversionFailed(f"node {native.text(node.mName)!r} has a non-finite transform")
        name = native.text(node.mName)
        mesh = self._mesh(node, name)
        added = out.add_node(name, parent=parent, transform=local, mesh=mesh)
        properties = {
            k: v
            for k, v in native.metadata(node.mMetadata).items()
            if k not in ASSIMP_NODE_KEYS and not (k == "UserProperties" and not v)
        }
        added.metadata = self.metadata.keep(properties)
        return added.id

    def _mesh(self, node: Any, name: str) -> Mesh | None:
        count = int(node.mNumMeshes)
        if count > int(self.ai.mNumMeshes):
            raise ConversionFailed(f"node {name!r} references {count} meshes of {int(self.ai.mNumMeshes)}")
        key = tuple(int(node.mMeshes[i]) for i in range(count))
        if key not in self.meshes:
            parts = [p for p in (self._primitive(i) for i in key) if p is not None]
            self.meshes[key] = Mesh(name, tuple(parts)) if parts else None
        return self.meshes[key]

    def _primitive(self, index: int) -> Primitive | None:
        if index >= int(self.ai.mNumMeshes):
            raise ConversionFailed(f"a node references mesh {index} of {int(self.ai.mNumMeshes)}")
        if index not in self.primitives:
            self.primitives[index] = self._convert(self.ai.mMeshes[index].contents)
        return self.primitives[index]

    def _convert(self, mesh: Any) -> Primitive | None:
        """An assimp mesh as a Primitive: None for one without triangles."""
        vertices, faces = int(mesh.mNumVertices), int(mesh.mNumFaces)
        if vertices == 0 or faces == 0 or not mesh.mVertices:
            return None
        uvs_in_file = bool(mesh.mTextureCoords[0]) and int(mesh.mNumUVComponents[0]) >= 2
        colors_in_file = bool(mesh.mColors[0])
        name = native.text(mesh.mName)
        uvs = None
        if uvs_in_file:
            uvs = native.floats(mesh.mTextureCoords[0], vertices, 3)[:, :2].copy()
            uvs[:, 1] = 1.0 - uvs[:, 1]  # FBX's uv origin is the bottom left, glTF's the top left
        try:
            return Primitive(
                positions=native.floats(mesh.mVertices, vertices, 3),
                indices=native.triangles(mesh),
                material=self.materials[int(mesh.mMaterialIndex)],
                normals=native.floats(mesh.mNormals, vertices, 3) if mesh.mNormals else None,
                uvs=uvs,
                colors=native.floats(mesh.mColors[0], vertices, 4) if colors_in_file else None,
            )
        except ValueError as exc:
            raise ConversionFailed(f"mesh {name!r}: invalid FBX geometry: {exc}") from None


READER = Reader(FORMATS, read)
