"""A composed USD stage walked into openrr's scene: one node per imageable or typeless prim, meshes
shared between instances.

The walk starts at the stage's default prim (every root prim where it names none) and goes down through
instance proxies, so an instanced asset appears under each of its instances; the geometry of a prim in an
instance prototype is converted once and its ``Mesh`` shared by every instance (with the same materials).
A prim that is invisible, or whose purpose is ``proxy`` or ``guide``, is left out with its subtree;
materials, shaders, subsets and other typed prims that draw nothing are not nodes. A node's transform is
the prim's local transformation at the default time (a prim that resets the transform stack is placed in
the stage's space), the top nodes also carrying the stage's axis and unit correction
(``stage.Opened.root_transform``). A node keeps the prim's authored ``customData`` and custom attributes
as object metadata, as ``MetadataKeeper`` selects.

A mesh whose data contradicts itself is left out with a warning; the model fails only when nothing at
all is left to draw (the converter says so).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.assets.readers.usd.geometry import MeshError, Triangles, compact, triangulate
from openrr.assets.readers.usd.materials import Materials
from openrr.assets.readers.usd.pxr_modules import Usd, UsdGeom, UsdShade
from openrr.assets.readers.usd.shapes import SHAPES, tessellate
from openrr.assets.readers.usd.stage import Opened
from openrr.model.budget import Allowance, BudgetExceeded, default_allowance, geometry_bytes
from openrr.model.mesh import Mesh, Primitive
from openrr.model.metadata import MetadataKeeper
from openrr.model.scene import Scene

MAX_PRIMS = 2_000_000  # prims walked, instance proxies included
MAX_GEOMETRY_BYTES = 16 << 30  # the model's meshes as openrr holds them
_HIDDEN_PURPOSES = ("proxy", "guide")
MAX_METADATA_VECTOR = 16  # a custom attribute with more values than this is data, not metadata


def build_scene(job: Job, opened: Opened, name: str, metadata: MetadataKeeper) -> Scene:
    """The stage's prims as a ``Scene`` named ``name``. ``ConversionFailed`` past the limits."""
    allowance = default_allowance()
    allowance.geometry_bytes = MAX_GEOMETRY_BYTES
    allowance.geometry_limit = f"the {MAX_GEOMETRY_BYTES >> 30} GiB a USD model may have"
    walk = _Walk(job, opened, metadata, allowance)
    try:
        walk.run()
    except BudgetExceeded as exc:
        raise ConversionFailed(exc.message) from None
    if walk.skipped:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(walk.skipped.items()))
        details = f"only meshes and implicit shapes are converted; left out: {kinds}"
        job.warn("UnsupportedPrims", "Prims not converted", details)
    return walk.scene


class _Walk:
    def __init__(self, job: Job, opened: Opened, metadata: MetadataKeeper, allowance: Allowance) -> None:
        self.job = job
        self.opened = opened
        self.metadata = metadata
        self.allowance = allowance
        self.scene = Scene()
        self.materials = Materials(job, opened, allowance)
        self.triangles: dict[str, Triangles | None] = {}  # by the prim's path in its prototype
        self.meshes: dict[tuple[str, tuple[str, ...]], Mesh | None] = {}
        self.skipped: dict[str, int] = {}
        self.prims = 0
        self.predicate = Usd.TraverseInstanceProxies(
            Usd.PrimIsActive & Usd.PrimIsDefined & ~Usd.PrimIsAbstract
        )

    def run(self) -> None:
        stage = self.opened.stage
        default = stage.GetDefaultPrim()
        tops: Iterable[Any] = (
            [default] if default else stage.GetPseudoRoot().GetFilteredChildren(self.predicate)
        )
        stack: list[tuple[Any, int | None]] = [(prim, None) for prim in reversed(list(tops))]
        while stack:  # depth first, parents before children
            prim, parent = stack.pop()
            self.prims += 1
            if self.prims > MAX_PRIMS:
                raise ConversionFailed(f"the stage has more than {MAX_PRIMS} prims")
            if not self.shown(prim):
                continue
            node_id = self.node(prim, parent)
            if prim.IsA(UsdGeom.PointInstancer):  # its prototypes are drawn only where it places them
                self.skip(prim)
                continue
            children = list(prim.GetFilteredChildren(self.predicate))
            stack.extend((child, node_id) for child in reversed(children))

    def shown(self, prim: Any) -> bool:
        """Visible and drawn in renders, imageable or a typeless group (USD draws what lies under one);
        a prim of another type (a material, a shader, render settings) is no node, nor is its subtree."""
        if not prim.IsA(UsdGeom.Imageable):
            return not str(prim.GetTypeName())
        imageable = UsdGeom.Imageable(prim)
        if str(imageable.GetVisibilityAttr().Get()) == "invisible":
            return False
        return str(imageable.GetPurposeAttr().Get()) not in _HIDDEN_PURPOSES

    def node(self, prim: Any, parent: int | None) -> int:
        transform = self.transform(prim, parent)
        drawn = prim.IsA(UsdGeom.Mesh) or str(prim.GetTypeName()) in SHAPES
        mesh = self.mesh(prim) if drawn else None
        if not drawn and prim.IsA(UsdGeom.Gprim):
            self.skip(prim)
        node = self.scene.add_node(prim.GetName(), parent=parent, transform=transform, mesh=mesh)
        node.metadata = self.metadata.keep(_metadata(prim))
        return int(node.id)

    def skip(self, prim: Any) -> None:
        kind = str(prim.GetTypeName())
        self.skipped[kind] = self.skipped.get(kind, 0) + 1

    def transform(self, prim: Any, parent: int | None) -> np.ndarray:
        """The local transform (column vectors: USD's row-vector matrix transposed)."""
        if not prim.IsA(UsdGeom.Xformable):
            local = np.eye(4)
        else:
            xformable = UsdGeom.Xformable(prim)
            local = np.array(xformable.GetLocalTransformation(), dtype=np.float64).T
            if xformable.GetResetXformStack() and parent is not None:  # placed in the stage's space
                local = np.linalg.inv(self.scene.world_transform(parent)) @ self.opened.root_transform @ local
        if parent is None:
            local = self.opened.root_transform @ local
        if not np.isfinite(local).all():
            self.job.warn("InvalidTransform", "Transform ignored", f"{prim.GetPath()}: not finite")
            return self.opened.root_transform if parent is None else np.eye(4)
        return local

    def mesh(self, prim: Any) -> Mesh | None:
        source = prim.GetPrimInPrototype() if prim.IsInstanceProxy() else prim
        double_sided = bool(UsdGeom.Gprim(prim).GetDoubleSidedAttr().Get())
        parts = self.parts(prim)
        key = (
            str(source.GetPath()),
            (*tuple(str(m.GetPath()) if m else "" for m, _ in parts), str(double_sided)),
        )
        if key not in self.meshes:
            uv_name = next((self.materials.uv_name(m) for m, _ in parts if m), None)
            triangles = self.read(source, uv_name)
            self.meshes[key] = None if triangles is None else self.build(prim, triangles, parts, double_sided)
        return self.meshes[key]

    def parts(self, prim: Any) -> list[tuple[Any, Any]]:
        """(bound material or None, face indices or None for the rest) for each part of the mesh:
        its ``materialBind`` subsets, then the faces in none of them."""
        api = UsdShade.MaterialBindingAPI(prim)
        parts: list[tuple[Any, Any]] = []
        for subset in api.GetMaterialBindSubsets():
            faces = subset.GetIndicesAttr().Get()
            material = UsdShade.MaterialBindingAPI(subset.GetPrim()).ComputeBoundMaterial(
                UsdShade.Tokens.preview
            )[0]
            parts.append(
                (material if material else None, np.asarray(faces if faces is not None else [], np.int64))
            )
        own = api.ComputeBoundMaterial(UsdShade.Tokens.preview)[0]
        parts.append((own if own else None, None))
        return parts

    def read(self, source: Any, uv_name: str | None) -> Triangles | None:
        """The triangles of a mesh or an implicit shape, once per prim (of the prototype, for instances);
        None, with a warning, where its data contradicts itself."""
        path = str(source.GetPath())
        if path not in self.triangles:
            try:
                if source.IsA(UsdGeom.Mesh):
                    triangles = triangulate(UsdGeom.Mesh(source), uv_name)
                else:
                    triangles = tessellate(source)
            except (MeshError, ValueError, TypeError) as exc:
                self.job.warn("InvalidMesh", "Mesh left out", f"{path}: {exc}")
                triangles = None
            for warning in triangles.warnings if triangles else []:
                self.job.warn("MeshAttributeIgnored", "Mesh attribute ignored", f"{path}: {warning}")
            self.triangles[path] = triangles
        return self.triangles[path]

    def build(
        self, prim: Any, triangles: Triangles, parts: list[tuple[Any, Any]], double_sided: bool
    ) -> Mesh | None:
        claimed = np.zeros(len(triangles.face), dtype=bool)
        primitives = []
        for material, faces in parts:
            chosen = ~claimed if faces is None else np.isin(triangles.face, faces) & ~claimed
            claimed |= chosen
            if chosen.any():
                primitives.append(self.primitive(prim, triangles, chosen, material, double_sided))
        return Mesh(prim.GetName(), tuple(primitives)) if primitives else None

    def primitive(
        self, prim: Any, triangles: Triangles, chosen: np.ndarray, bound: Any, double_sided: bool
    ) -> Primitive:
        """The triangles ``chosen`` over the vertices they use; ``displayColor`` only where no material
        is bound (a bound material is what USD draws)."""
        if bound is None:
            material = self.materials.plain_material(triangles.constant_color, double_sided)
        else:
            material = self.materials.material(bound, double_sided)
        indices = triangles.indices[chosen]
        if chosen.all():
            used, local = None, indices
        else:
            used, local = compact(indices, len(triangles.positions))

        def take(values: np.ndarray | None) -> np.ndarray | None:
            return values if values is None or used is None else values[used]

        positions = take(triangles.positions)
        assert positions is not None
        colors = take(triangles.colors) if bound is None else None
        normals, uvs = take(triangles.normals), take(triangles.uvs)
        self.allowance.take_geometry(
            geometry_bytes(
                len(positions),
                len(local),
                normals=normals is not None,
                uvs=uvs is not None,
                colors=colors is not None,
            ),
            f"mesh {prim.GetPath()}",
        )
        return Primitive(positions, local, material, normals=normals, uvs=uvs, colors=colors)


def _metadata(prim: Any) -> dict[str, Any]:
    """The prim's authored ``customData`` and the values of its custom attributes (``userProperties:``
    and the like) that are a scalar or a short vector: an array of data (a custom ``int[]`` of a
    simulation's indices) is geometry, not metadata."""
    found: dict[str, Any] = {}
    if prim.HasAuthoredMetadata("customData"):
        for key, value in dict(prim.GetMetadata("customData") or {}).items():
            found[str(key)] = _plain(value)
    for attribute in prim.GetAuthoredAttributes():
        if attribute.IsCustom() and not attribute.GetName().startswith("primvars:"):
            value = attribute.Get()
            if isinstance(value, str) or not hasattr(value, "__len__") or len(value) <= MAX_METADATA_VECTOR:
                found[attribute.GetName()] = _plain(value)
    return found


def _plain(value: Any) -> Any:
    """A USD value as JSON-like data: vectors and arrays as lists, dictionaries as dicts, the rest as text
    (``metadata_value`` takes it from there)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "__len__") and len(value) > MAX_METADATA_VECTOR:
        return f"({len(value)} values)"  # data inside customData: its size, not its values
    try:
        items = list(value)
    except TypeError:
        return str(value)
    return [_plain(v) for v in items]
