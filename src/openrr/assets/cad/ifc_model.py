"""IFC building models read by IfcOpenShell: the spatial structure as nodes, each product's element type,
identity and property sets as node metadata, its body geometry as a mesh.

* Hierarchy: the project is the root; below it what ``IfcRelAggregates`` decomposes it into (site,
  building, storey, space, element assembly...) and what ``IfcRelContainedInSpatialStructure`` places in
  each spatial element (walls, slabs, doors...). A product outside that tree that has geometry hangs
  under the root. Each node is named by the product's ``Name``, else its ``GlobalId``.
* Metadata (selected by ``metadataKeys`` through the ``MetadataKeeper``): ``ifcType`` (``IfcWall``...),
  ``GlobalId``, ``Name``, and every property and quantity of the product's sets, its type's included, as
  ``SetName.PropertyName`` (``Pset_WallCommon.IsExternal``).
* Geometry: IfcOpenShell's geometry iterator (its hybrid CGAL/Open CASCADE kernel) on one thread, in
  local coordinates: a product's node gets
  the shape's placement matrix (world placement: the spatial nodes above carry none, so that nothing is
  applied twice), its mesh the triangles with their normals, one primitive per surface style (IFC colours
  as stored, sRGB). Shapes IfcOpenShell shares between products (mapped items) share one mesh. IfcOpenShell
  gives coordinates in metres whatever the file's length unit (``IfcUnitAssignment``).
* Bounds: the products are counted before any geometry is built (``cad.MAX_PRODUCTS``), the triangles
  after each shape (``cad.TriangleBudget``).

Imports IfcOpenShell at module level: ``readers.ifc`` loads this module only when it converts a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import ifcopenshell
import ifcopenshell.geom
import ifcopenshell.util.element
import ifcopenshell.util.unit
import numpy as np

from openrr.assets import ConversionFailed
from openrr.assets.cad import DEFAULT_COLOR, MAX_PRODUCTS, ColorMaterials, TriangleBudget, check_count
from openrr.model.mesh import Mesh, Primitive
from openrr.model.metadata import MetadataKeeper, MetadataValue
from openrr.model.scene import Node, Scene

GEOMETRY_LIBRARY: Final = "hybrid-cgal-simple-opencascade"
# What IfcOpenShell raises on files and geometry it cannot handle.
ERRORS: tuple[type[Exception], ...] = (ifcopenshell.Error, RuntimeError)


@dataclass
class IfcModel:
    """An IFC file as read: its scene (in metres), schema, authoring application and length unit."""

    scene: Scene
    schema: str
    application: str
    unit_scale: float  # metres per file length unit
    triangles: int
    without_geometry: int  # products with a body the iterator could not build


def read_ifc(path: Path, budget: TriangleBudget, metadata: MetadataKeeper) -> IfcModel:
    """The model in ``path``; ``ConversionFailed`` for a file with no project or no geometry, or past the
    product or triangle limits. IfcOpenShell's exceptions (``ERRORS``) pass through to the reader."""
    model = ifcopenshell.open(str(path))
    projects = model.by_type("IfcProject")
    if not projects:
        raise ConversionFailed(f"{path.name}: the IFC file has no IfcProject")
    products = model.by_type("IfcProduct")
    check_count(path.name, len(products), MAX_PRODUCTS, "IFC products")
    scene = Scene(path.name)
    walk = _Walk(scene, metadata)
    for project in projects:
        walk.add(project, None)
    built = _add_geometry(path.name, model, walk, budget)
    if budget.used == 0:
        raise ConversionFailed(f"{path.name}: no IFC product has body geometry", code="EmptyModel")
    return IfcModel(
        scene,
        str(model.schema),
        _application(model),
        float(ifcopenshell.util.unit.calculate_unit_scale(model)),
        budget.used,
        sum(1 for p in products if p.Representation is not None) - built,
    )


@dataclass
class _Walk:
    scene: Scene
    metadata: MetadataKeeper
    nodes: dict[int, Node] = field(default_factory=dict)  # by the product's STEP id

    def add(self, entity: Any, parent: int | None) -> Node:
        """``entity``'s node under ``parent``, then its decomposition and contents (each entity once)."""
        node = self.scene.add_node(entity.Name or entity.GlobalId or entity.is_a(), parent=parent)
        node.metadata = self.metadata.keep(_metadata(entity))
        self.nodes[entity.id()] = node
        for child in _children(entity):
            if child.id() not in self.nodes:
                self.add(child, node.id)
        return node

    def node_of(self, product: Any) -> Node:
        """The product's node: from the spatial walk, else a new one under the first root."""
        node = self.nodes.get(product.id())
        if node is None:
            node = self.add(product, self.scene.roots[0].id)
        return node


def _children(entity: Any) -> list[Any]:
    children: list[Any] = []
    for rel in getattr(entity, "IsDecomposedBy", ()) or ():
        children.extend(rel.RelatedObjects)
    for rel in getattr(entity, "ContainsElements", ()) or ():
        children.extend(rel.RelatedElements)
    return children


def _metadata(entity: Any) -> dict[str, MetadataValue | None]:
    raw: dict[str, Any] = {"ifcType": entity.is_a(), "GlobalId": entity.GlobalId, "Name": entity.Name}
    for set_name, properties in ifcopenshell.util.element.get_psets(entity).items():
        for key, value in properties.items():
            if key != "id":  # IfcOpenShell's own: the set's STEP id
                raw[f"{set_name}.{key}"] = value
    return {k: v for k, v in raw.items() if v is not None}


def _add_geometry(file_name: str, model: Any, walk: _Walk, budget: TriangleBudget) -> int:
    """Meshes on the products' nodes; returns how many products got one."""
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", False)
    settings.set("apply-default-materials", True)
    settings.set("no-normals", False)
    # One thread: the converter shares 2 cores. The hybrid kernel builds what CGAL's simple kernel can
    # (extrusions, triangulated and faceted sets: 18x faster than Open CASCADE on a 5,120-triangle set,
    # which Open CASCADE sews into a B-rep first) and falls back to Open CASCADE for the rest (NURBS).
    iterator = ifcopenshell.geom.iterator(settings, model, 1, geometry_library=GEOMETRY_LIBRARY)
    if not iterator.initialize():
        raise ConversionFailed(f"{file_name}: no IFC product has body geometry", code="EmptyModel")
    meshes: dict[str, Mesh] = {}
    materials = ColorMaterials()
    built = 0
    while True:
        shape = iterator.get()
        product = model.by_id(shape.id)
        mesh = meshes.get(shape.geometry.id)
        if mesh is None:
            mesh = _mesh(shape.geometry, product, materials, budget)
            if mesh is not None:
                meshes[shape.geometry.id] = mesh
        if mesh is not None:
            node = walk.node_of(product)
            node.transform = np.asarray(shape.transformation.matrix, dtype=np.float64).reshape(4, 4).T
            node.mesh = mesh
            built += 1
        if not iterator.next():
            return built


def _mesh(geometry: Any, product: Any, materials: ColorMaterials, budget: TriangleBudget) -> Mesh | None:
    positions = np.frombuffer(geometry.verts_buffer, dtype=np.float64).reshape(-1, 3)
    triangles = np.frombuffer(geometry.faces_buffer, dtype=np.int32).reshape(-1, 3)
    if len(triangles) == 0 or len(positions) == 0:
        return None
    name = product.Name or product.GlobalId or product.is_a()
    budget.take(len(triangles), f"{product.is_a()} {name!r}")
    normals = np.frombuffer(geometry.normals_buffer, dtype=np.float64).reshape(-1, 3)
    material_ids = np.frombuffer(geometry.material_ids_buffer, dtype=np.int32)
    styles = list(geometry.materials)
    primitives = []
    for material_id in np.unique(material_ids) if len(material_ids) == len(triangles) else [-1]:
        chosen = triangles if material_id < 0 else triangles[material_ids == material_id]
        used, indices = np.unique(chosen, return_inverse=True)
        style = styles[material_id] if 0 <= material_id < len(styles) else None
        primitives.append(
            Primitive(
                positions[used],
                indices.reshape(-1, 3).astype(np.uint32),
                _material(style, materials),
                normals=normals[used] if len(normals) == len(positions) else None,
            )
        )
    return Mesh(name, tuple(primitives))


def _material(style: Any, materials: ColorMaterials) -> Any:
    if style is None:
        return materials.get(DEFAULT_COLOR)
    r, g, b = (float(c) for c in style.diffuse.components)
    transparency = float(style.transparency) if style.has_transparency() else 0.0
    alpha = 1.0 - min(max(transparency, 0.0), 1.0) if transparency == transparency else 1.0  # NaN: opaque
    return materials.get((r, g, b, alpha), str(style.name or ""))


def _application(model: Any) -> str:
    """The authoring application: the header's originating system, else the owner history's."""
    try:
        system = str(model.header.file_name.originating_system or "").strip()
    except (AttributeError, RuntimeError):
        system = ""
    if system:
        return system
    for application in model.by_type("IfcApplication"):
        return f"{application.ApplicationFullName} {application.Version}".strip()
    return ""
