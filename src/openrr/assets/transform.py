"""The conversion settings applied to a model as read: the change of coordinates (``scaling``, ``axis``),
colours from sRGB to linear (``gammaToLinear*``), sidedness, material overrides
(``<model>.MaterialOverrides.json``, after the settings and before deduplication, as in ARR) and
deduplication of materials, ``sceneGraphMode: none`` (everything merged into one node) and
``recenterToOrigin``. Nodes keep their object metadata (none is left after ``sceneGraphMode: none``).

``apply_settings`` builds a new scene and shares with the source every mesh, primitive and material the
settings leave unchanged; instances stay instances.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.assets.job import Job
from openrr.assets.material_edits import drops_vertex_colors, overridden
from openrr.assets.overrides import MaterialOverrides
from openrr.assets.readers import Source
from openrr.assets.settings import ConversionSettings
from openrr.assets.statistics import bounds
from openrr.model.mesh import F64, Material, Mesh, Primitive
from openrr.model.points import PointCloud
from openrr.model.scene import Scene


def apply_settings(
    job: Job, source: Source, settings: ConversionSettings, overrides: MaterialOverrides | None = None
) -> tuple[Scene, dict[int, PointCloud], list[float]]:
    """The source scene with the settings and ``overrides`` applied: a new scene (meshes, materials and
    transforms are rebuilt only where something changes), its point clouds by node id (on their nodes
    too, ``Node.points``), and ARR's recentering offset. ``overrides`` records which of its entries
    applied."""
    change = _Coordinates.of(settings)
    if not change.identity:
        job.say(
            f"coordinates: scaling {settings.scaling:g}, axis {list(settings.axis)}"
            + (" (a mirror: winding flipped)" if change.mirrored else "")
        )
    scene, points = _Rebuild(settings, change, source.sidedness_in_file, overrides).scene(source)
    if settings.scene_graph_mode == "none" and not points:
        scene = _flatten(scene)
        job.say(f"sceneGraphMode none: one node, {len(scene.meshes()[0].primitives)} merged mesh parts")
    offset = [0.0, 0.0, 0.0]
    if settings.recenter_to_origin:
        offset = _recenter(scene)
        job.say(f"recentred: the model's centre {[round(c, 6) for c in offset]} moved to the origin")
    return scene, points, offset


@dataclasses.dataclass(frozen=True)
class _Coordinates:
    """The change of coordinates of ``scaling`` and ``axis``: ``axes`` maps source axes to output axes
    (with signs), ``linear`` adds the scale; ``mirrored`` when it turns the model inside out."""

    axes: F64
    linear: F64
    mirrored: bool
    identity: bool
    change: F64  # ``linear`` as a 4x4 transform
    undo: F64  # its inverse

    @classmethod
    def of(cls, settings: ConversionSettings) -> _Coordinates:
        axes = np.zeros((3, 3))
        for out_axis, (src_axis, sign) in enumerate(settings.axis_mapping()):
            axes[out_axis, src_axis] = sign
        scale = settings.scaling
        linear = axes * scale  # the whole change of coordinates, applied to vertices
        change = np.eye(4)
        change[:3, :3] = linear
        undo = np.asarray(np.linalg.inv(change), dtype=np.float64)
        return cls(
            axes=axes,
            linear=linear,
            mirrored=bool(np.linalg.det(axes) < 0),
            identity=scale == 1.0 and np.array_equal(axes, np.eye(3)),
            change=change,
            undo=undo,
        )

    def transform(self, transform: F64) -> F64:
        """A node's local transform in the new coordinates (conjugated by the change)."""
        if self.identity:
            return transform
        moved: F64 = self.change @ transform @ self.undo
        return moved


class _Rebuild:
    """One source scene rebuilt under the settings; each mesh, primitive and material once."""

    def __init__(
        self,
        settings: ConversionSettings,
        change: _Coordinates,
        sidedness_in_file: bool,
        overrides: MaterialOverrides | None,
    ) -> None:
        self.settings = settings
        self.overrides = overrides
        self.change = change
        self.sidedness_in_file = sidedness_in_file
        self.materials: dict[int, Material] = {}
        self.canonical: dict[tuple[Any, ...], Material] = {}
        self.meshes: dict[int, Mesh] = {}

    def scene(self, source: Source) -> tuple[Scene, dict[int, PointCloud]]:
        scene = Scene(source.scene.name)
        new_id: dict[int, int] = {}
        points: dict[int, PointCloud] = {}
        for node in source.scene.nodes():
            added = scene.add_node(
                node.name,
                parent=new_id[node.parent] if node.parent is not None else None,
                transform=self.change.transform(node.transform),
                mesh=self.mesh(node.mesh),
                visible=node.visible,
                color=node.color,
            )
            added.metadata = node.metadata
            new_id[node.id] = added.id
            if node.id in source.points:
                points[added.id] = added.points = self.cloud(source.points[node.id])
        return scene, points

    def cloud(self, cloud: PointCloud) -> PointCloud:
        change = self.change
        positions = cloud.positions
        if not change.identity:  # float32 throughout: no float64 copy of a big cloud
            positions = positions @ change.linear.T.astype(np.float32)
        colors = cloud.colors
        if colors is not None and self.settings.gamma_to_linear_vertex:
            colors = colors.copy()
            colors[:, :3] = _SRGB_TO_LINEAR_8[colors[:, :3]]
        return PointCloud(positions, colors, _point_size(positions))

    def colors(self, colors: NDArray[np.float32] | None) -> NDArray[np.float32] | None:
        if colors is None or not self.settings.gamma_to_linear_vertex:
            return colors
        return np.concatenate([_srgb_to_linear(colors[:, :3]), colors[:, 3:]], axis=1)

    def mesh(self, m: Mesh | None) -> Mesh | None:
        if m is None:
            return None
        if id(m) not in self.meshes:
            parts = tuple(self.primitive(p) for p in m.primitives)
            same = all(a is b for a, b in zip(parts, m.primitives, strict=True))
            self.meshes[id(m)] = m if same else Mesh(m.name, parts)
        return self.meshes[id(m)]

    def primitive(self, p: Primitive) -> Primitive:
        new_material = self.material(p.material)
        colors = self.colors(p.colors)
        if (
            self.overrides is not None
            and colors is not None
            and drops_vertex_colors(p.material.name, self.overrides)
        ):
            colors = None
        change = self.change
        if change.identity and new_material is p.material and colors is p.colors:
            return p
        positions, normals, indices = p.positions, p.normals, p.indices
        if not change.identity:
            positions = (positions @ change.linear.T.astype(np.float32)).astype(np.float32)
            if normals is not None:
                normals = (normals @ change.axes.T.astype(np.float32)).astype(np.float32)
            if change.mirrored:
                indices = indices[:, ::-1]  # a mirror turns counter-clockwise faces clockwise
        return Primitive(positions, indices, new_material, normals=normals, uvs=p.uvs, colors=colors)

    def material(self, m: Material) -> Material:
        if id(m) not in self.materials:
            changes = self.material_changes(m)
            changed = dataclasses.replace(m, **changes) if changes else m
            if self.overrides is not None:
                changed = overridden(changed, self.overrides)
            if self.settings.deduplicate_materials:  # here, so sceneGraphMode none merges their parts too
                changed = self.canonical.setdefault(_material_key(changed), changed)
            self.materials[id(m)] = changed
        return self.materials[id(m)]

    def material_changes(self, m: Material) -> dict[str, Any]:
        settings = self.settings
        changes: dict[str, Any] = {}
        if settings.gamma_to_linear_material:
            rgba = m.base_color_factor
            r, g, b = (float(c) for c in _srgb_to_linear(np.array(rgba[:3])))
            changes["base_color_factor"] = (r, g, b, rgba[3])
            er, eg, eb = (float(c) for c in _srgb_to_linear(np.array(m.emissive_factor)))
            changes["emissive_factor"] = (er, eg, eb)
        sidedness = settings.opaque_material_default_sidedness
        if sidedness is None and not self.sidedness_in_file:
            sidedness = "DoubleSided"  # ARR's default where the file says nothing
        if sidedness is not None and m.alpha_mode == "OPAQUE":
            changes["double_sided"] = sidedness == "DoubleSided"
        return changes


def _recenter(scene: Scene) -> list[float]:
    """Move the roots so that the centre of the bounds is the origin; the centre as it was."""
    low, high = bounds(scene)
    centre = (low + high) / 2.0
    shift = np.eye(4)
    shift[:3, 3] = -centre
    for root in scene.roots:
        root.transform = shift @ root.transform
    offset: list[float] = centre.tolist()
    return offset


def _point_size(positions: NDArray[np.float32]) -> float:
    """The world size of a point at full density (square points of this side cover the surface the
    points sample): from the distance between them.

    Scans sample surfaces, so the points are spread over an area rather than a volume: the area of the
    two largest sides of the bounding box, shared among the points. No neighbour search (scipy is not a
    dependency); good within a factor of two or so on scans, which is what the look needs.
    """
    extent = np.sort(positions.max(axis=0) - positions.min(axis=0))[::-1].astype(np.float64)
    area = float(extent[0] * extent[1]) or float(extent[0] ** 2)
    spacing = math.sqrt(area / len(positions)) if area > 0 else 0.0
    # 1.25 spacings: squares one spacing wide tile a regular grid exactly; scans are not regular.
    return 1.25 * spacing if spacing > 0 else 1e-3 * (float(extent[0]) or 1.0)


def _srgb_to_linear(values: NDArray[Any]) -> NDArray[np.float32]:
    v = np.asarray(values, dtype=np.float64)
    out = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return out.astype(np.float32)


# Point colours are RGBA8: their gamma is a table lookup, with no float copy of a big cloud's colours.
_SRGB_TO_LINEAR_8 = np.rint(_srgb_to_linear(np.arange(256) / 255.0) * 255.0).astype(np.uint8)


def _material_key(m: Material) -> tuple[Any, ...]:
    """What ARR's deduplicateMaterials compares: every property and texture (by content), not the name."""

    def texture(image: NDArray[np.uint8] | None) -> tuple[Any, ...] | None:
        return None if image is None else (image.shape, zlib.crc32(np.ascontiguousarray(image).data))

    return (
        m.base_color_factor,
        texture(m.base_color_texture),
        m.metallic_factor,
        m.roughness_factor,
        texture(m.metallic_roughness_texture),
        texture(m.normal_texture),
        texture(m.occlusion_texture),
        m.emissive_factor,
        texture(m.emissive_texture),
        m.double_sided,
        m.alpha_mode,
        m.alpha_cutoff,
        m.unlit,
        m.uv_scale,
        m.uv_offset,
        m.uv_rotation,
    )


def _flatten(scene: Scene) -> Scene:
    """ARR's ``sceneGraphMode: none``: every mesh instance baked into world space and merged, per
    material and vertex layout, into the parts of one mesh on one node."""
    state = scene.world()
    groups: dict[tuple[int, bool, bool, bool], list[tuple[Primitive, F64]]] = {}
    for row, node_id in enumerate(state.ids.tolist()):
        node = scene.node(int(node_id))
        if node.mesh is None or not state.visible[row]:
            continue
        for p in node.mesh.primitives:
            key = (id(p.material), p.normals is not None, p.uvs is not None, p.colors is not None)
            groups.setdefault(key, []).append((p, state.world[row]))
    parts: list[Primitive] = []
    for items in groups.values():
        positions, normals, uvs, colors, indices = [], [], [], [], []
        base = 0
        for p, world in items:
            linear = world[:3, :3]
            positions.append((p.positions @ linear.T + world[:3, 3]).astype(np.float32))
            tri = p.indices[:, ::-1] if np.linalg.det(linear) < 0 else p.indices
            indices.append(tri.astype(np.int64) + base)
            base += len(p.positions)
            if p.normals is not None:
                n = p.normals @ np.linalg.inv(linear)  # the inverse transpose, applied to row vectors
                length = np.linalg.norm(n, axis=1, keepdims=True)
                normals.append((n / np.maximum(length, 1e-30)).astype(np.float32))
            if p.uvs is not None:
                uvs.append(p.uvs)
            if p.colors is not None:
                colors.append(p.colors)
        parts.append(
            Primitive(
                np.concatenate(positions),
                np.concatenate(indices),
                items[0][0].material,
                normals=np.concatenate(normals) if normals else None,
                uvs=np.concatenate(uvs) if uvs else None,
                colors=np.concatenate(colors) if colors else None,
            )
        )
    flat = Scene(scene.name)
    flat.add_node(scene.name or "model", mesh=Mesh(scene.name or "model", tuple(parts)) if parts else None)
    return flat
