"""trimesh's scene graph as openrr's ``Scene``: what every glTF model and every other format trimesh reads
(OBJ, PLY meshes) becomes before it is drawn or converted.

Apart from ``openrr.model.loader`` (which fetches, checks and parses the bytes) because this part only
walks a parsed trimesh scene: only triangle meshes are kept, normals only where the file had them, and
textures and geometry are counted against an ``Allowance`` before they are copied. trimesh splits a glTF
mesh with several primitives into child frames; they are folded back here into one ``Mesh``, so the node
hierarchy clients see is the file's. Each node keeps its object metadata (glTF node ``extras``, which
trimesh files on the graph's edges) as a ``MetadataKeeper`` (``openrr.model.metadata``) selects and bounds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import PIL.Image
import trimesh
from numpy.typing import NDArray

from openrr.model.budget import Allowance, BudgetExceeded, default_allowance, geometry_bytes
from openrr.model.gltf_extensions_materials import MaterialExtension
from openrr.model.mesh import AlphaMode, Material, Mesh, Primitive
from openrr.model.metadata import MetadataKeeper
from openrr.model.scene import Scene

ProgressCallback = Callable[[float, str], None]


def scene_from_trimesh(loaded: trimesh.Scene, name: str, metadata: MetadataKeeper | None = None) -> Scene:
    """A trimesh scene (from any format trimesh reads) as a ``Scene``, the way glTF models are converted:
    only triangle meshes, normals only where the file had them, textures within the default allowance,
    node metadata as ``metadata`` keeps it (default: all of it, within the default limit).
    Raises ValueError on invalid content (a texture past the allowance too)."""
    try:
        return convert_trimesh(loaded, name, lambda fraction, message: None, default_allowance(), metadata)
    except BudgetExceeded as exc:
        raise ValueError(exc.message) from None


def convert_trimesh(
    loaded: trimesh.Scene,
    name: str,
    report: ProgressCallback,
    allowance: Allowance,
    metadata: MetadataKeeper | None = None,
    extended: Mapping[str, MaterialExtension] | None = None,
) -> Scene:
    """``loaded`` as a new ``Scene`` named ``name``, reporting progress from 0.6 to 0.99 as the nodes are
    walked. Raises ``BudgetExceeded`` past ``allowance``, ValueError (and the other errors numpy and
    Pillow raise) on invalid content; an exception from ``report`` propagates. Node metadata: as
    ``metadata`` selects and bounds it (None: every key, within ``MAX_METADATA_BYTES``); past its limit,
    nodes keep none and ``metadata.overflow`` says how many. ``extended``: glTF material extensions by
    the marker their material is named (``openrr.model.gltf_extensions_materials``)."""
    conversion = _Conversion(loaded, allowance, metadata or MetadataKeeper(), extended or {})
    return conversion.scene(name, report)


class _Conversion:
    """One walk over a trimesh scene graph; geometries, materials and images are converted once each."""

    def __init__(
        self,
        loaded: trimesh.Scene,
        allowance: Allowance,
        metadata: MetadataKeeper,
        extended: Mapping[str, MaterialExtension],
    ) -> None:
        self.loaded = loaded
        self.extended = extended
        self.metadata = metadata
        self.graph = loaded.graph.transforms
        self.children: dict[str, list[str]] = self.graph.children
        self.allowance = allowance
        self.primitives: dict[str, Primitive | None] = {}
        self.meshes: dict[tuple[str, ...], Mesh | None] = {}
        self.materials: dict[int, Material] = {}
        self.images: dict[int, NDArray[np.uint8]] = {}

    def scene(self, name: str, report: ProgressCallback) -> Scene:
        scene = Scene(name)
        total = max(len(self.graph.nodes), 1)
        step = max(total // 50, 1)  # about 50 progress reports, however many nodes
        queue: list[tuple[str, int | None]] = [(str(self.loaded.graph.base_frame), None)]
        for index, (frame, parent_id) in enumerate(queue):  # breadth first: parents before children
            for child in self.children.get(frame, []):
                if self.folded(frame, child):
                    continue
                edge = self.graph.edge_data.get((frame, child), {})
                node = scene.add_node(
                    str(child),
                    parent=parent_id,
                    transform=edge.get("matrix"),
                    mesh=self.mesh_of(frame, child),
                )
                extras = edge.get("metadata")
                node.metadata = self.metadata.keep(extras if isinstance(extras, dict) else None)
                queue.append((child, node.id))
            if index % step == 0:
                report(0.6 + 0.39 * min(index / total, 1.0), "converting")
        return scene

    def geometry_of(self, parent: str, frame: str) -> str | None:
        geometry: str | None = self.graph.edge_data.get((parent, frame), {}).get("geometry")
        return geometry

    def folded(self, parent: str, frame: str) -> bool:
        """A frame trimesh made for one primitive of a multi-primitive glTF mesh."""
        geometry = self.loaded.geometry.get(self.geometry_of(parent, frame) or "")
        return (
            geometry is not None
            and bool(geometry.metadata.get("from_gltf_primitive"))
            and not self.children.get(frame)
            and self.geometry_of(self.graph.parents.get(parent, ""), parent) is None
            and np.allclose(self.graph.edge_data[(parent, frame)].get("matrix", np.eye(4)), np.eye(4))
        )

    def mesh_of(self, parent: str, frame: str) -> Mesh | None:
        names = [self.geometry_of(parent, frame)] + [
            self.geometry_of(frame, k) for k in self.children.get(frame, []) if self.folded(frame, k)
        ]
        key = tuple(n for n in names if n is not None)
        if key and key not in self.meshes:
            parts = tuple(p for p in (self.primitive(n) for n in key) if p is not None)
            self.meshes[key] = Mesh(key[0], parts) if parts else None
        return self.meshes.get(key)

    def primitive(self, geometry_name: str) -> Primitive | None:
        if geometry_name not in self.primitives:
            self.primitives[geometry_name] = _primitive(
                self.loaded.geometry[geometry_name], self, self.allowance
            )
        return self.primitives[geometry_name]


def _primitive(geometry: Any, conversion: _Conversion, allowance: Allowance) -> Primitive | None:
    """A trimesh geometry as a Primitive; None for what is not a triangle mesh (lines, points)."""
    if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
        return None
    visual = geometry.visual
    if isinstance(visual, trimesh.visual.TextureVisuals):
        has_uvs, has_colors = visual.uv is not None, visual.vertex_attributes.get("color") is not None
    else:
        has_uvs = False
        has_colors = isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind == "vertex"
    allowance.take_geometry(
        geometry_bytes(
            len(geometry.vertices),
            len(geometry.faces),
            normals="vertex_normals" in geometry._cache,
            uvs=has_uvs,
            colors=has_colors,
        ),
        f"mesh {geometry.metadata.get('name') or ''!s}".rstrip(),
    )
    # Only normals that came from the file: trimesh would otherwise compute smooth ones, while glTF asks
    # for flat shading when NORMAL is absent (the shader does that from screen derivatives).
    normals = geometry.vertex_normals if "vertex_normals" in geometry._cache else None
    uvs = colors = None
    material = Material()
    if isinstance(visual, trimesh.visual.TextureVisuals):
        if visual.uv is not None and len(visual.uv) == len(geometry.vertices):
            uvs = np.array(visual.uv, dtype=np.float32)
            uvs[:, 1] = 1.0 - uvs[:, 1]  # trimesh flips v to a bottom-left origin; glTF's is top-left
        raw = visual.vertex_attributes.get("color")
        if raw is not None:
            colors = _normalised(np.asarray(raw))
        if visual.material is not None:
            key, materials = id(visual.material), conversion.materials
            if key not in materials:
                made = _material(visual.material, conversion.images, allowance)
                materials[key] = _extended(made, conversion.extended.get(made.name))
            material = materials[key]
    elif isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind == "vertex":
        colors = _normalised(np.asarray(visual.vertex_colors))
    return Primitive(
        positions=np.asarray(geometry.vertices),
        indices=np.asarray(geometry.faces),
        material=material,
        normals=None if normals is None else np.asarray(normals),
        uvs=uvs,
        colors=colors,
    )


def _normalised(values: NDArray[Any]) -> NDArray[np.float32]:
    if np.issubdtype(values.dtype, np.integer):
        return (values / np.iinfo(values.dtype).max).astype(np.float32)
    return values.astype(np.float32)


def _material(source: Any, images: dict[int, NDArray[np.uint8]], allowance: Allowance) -> Material:
    pbr = source if isinstance(source, trimesh.visual.material.PBRMaterial) else source.to_pbr()
    # glTF's metallic factor defaults to 1; a classic material (OBJ's MTL, PLY) has no metal at all.
    metallic = 1.0 if isinstance(source, trimesh.visual.material.PBRMaterial) else 0.0

    def image(value: Any) -> NDArray[np.uint8] | None:
        if value is None:
            return None
        if not hasattr(value, "convert"):  # what trimesh keeps of a texture reference that is no texture
            raise ValueError(f"a texture of material {pbr.name or ''!r} is not an image")
        if id(value) not in images:
            if isinstance(value, PIL.Image.Image):  # the size is the header's: nothing is decoded yet
                allowance.take_texture(value.width, value.height, f"a texture of material {pbr.name or ''!r}")
            images[id(value)] = np.ascontiguousarray(np.asarray(value.convert("RGBA"), dtype=np.uint8))
        return images[id(value)]

    def number(value: Any, default: float) -> float:
        return default if value is None else float(value)

    base = pbr.baseColorFactor  # trimesh keeps it as uint8 RGBA
    emissive = pbr.emissiveFactor
    mode = str(pbr.alphaMode or "OPAQUE").upper()
    alpha_mode: AlphaMode = "MASK" if mode == "MASK" else "BLEND" if mode == "BLEND" else "OPAQUE"
    return Material(
        name=str(pbr.name or ""),
        base_color_factor=(1.0, 1.0, 1.0, 1.0) if base is None else _rgba(np.asarray(base) / 255.0),
        base_color_texture=image(pbr.baseColorTexture),
        metallic_factor=number(pbr.metallicFactor, metallic),
        roughness_factor=number(pbr.roughnessFactor, 1.0),
        metallic_roughness_texture=image(pbr.metallicRoughnessTexture),
        normal_texture=image(pbr.normalTexture),
        occlusion_texture=image(pbr.occlusionTexture),
        emissive_factor=(0.0, 0.0, 0.0) if emissive is None else _rgb(emissive),
        emissive_texture=image(pbr.emissiveTexture),
        double_sided=bool(pbr.doubleSided),
        alpha_mode=alpha_mode,
        alpha_cutoff=number(pbr.alphaCutoff, 0.5),
    )


def _extended(material: Material, extension: MaterialExtension | None) -> Material:
    """``material`` with what its glTF extensions add (its file's name back in place of the marker)."""
    if extension is None:
        return material
    return dataclasses.replace(
        material,
        name=extension.name,
        unlit=extension.unlit,
        uv_scale=extension.uv_scale,
        uv_offset=extension.uv_offset,
        uv_rotation=extension.uv_rotation,
    )


def _clamped(values: Any) -> list[float]:
    return [min(max(float(c), 0.0), 1.0) for c in np.asarray(values, dtype=np.float64).reshape(-1)]


def _rgba(values: Any) -> tuple[float, float, float, float]:
    r, g, b, a = (_clamped(values) + [1.0] * 4)[:4]
    return (r, g, b, a)


def _rgb(values: Any) -> tuple[float, float, float]:
    r, g, b = (_clamped(values) + [0.0] * 3)[:3]
    return (r, g, b)
