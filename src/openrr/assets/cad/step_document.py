"""STEP files read by Open CASCADE's XCAF (the ``OCP`` binding) and tessellated by BRepMesh into a ``Scene``.

* Hierarchy and names: each free shape of the document is a root node; an assembly's components become
  child nodes named by their instance name (the product's name where the instance has none), placed by
  the component's location. A part referenced many times is tessellated once and its mesh shared.
* Colours: a face's own surface colour, else the instance's, else the part's, else the enclosing
  instance's, else a neutral grey; each colour is one material (``cad.ColorMaterials``), each part one
  mesh with one primitive per colour. Colours are the file's values (sRGB): XCAF decodes them to linear
  RGB on reading, and they are encoded back, so that the gamma setting applies to them as to any format.
* Units: XCAF converts the file's length unit (``FileUnits``: millimetre, inch, metre...) to the
  document's, which is set to the metre before the transfer, so the scene is in metres whatever the file.
* Tessellation: ``BRepMesh_IncrementalMesh`` with a linear deflection of ``DEFLECTION_RATIO`` of the
  model's bounding-box diagonal and an angular deflection of ``ANGULAR_DEFLECTION``; normals come from
  the surfaces at the triangulation's nodes. The faces are counted (``cad.MAX_FACES``) before meshing and
  the triangles after each part (``cad.TriangleBudget``).

Imports Open CASCADE at module level: ``readers.step`` loads this module only when it converts a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from OCP.Bnd import Bnd_Box
from OCP.BRep import BRep_Tool
from OCP.BRepBndLib import BRepBndLib
from OCP.BRepLib import BRepLib_ToolTriangulatedShape
from OCP.BRepMesh import BRepMesh_IncrementalMesh
from OCP.collections import Sequence_TCollection_AsciiString, Sequence_TDF_Label
from OCP.IFSelect import IFSelect_ReturnStatus
from OCP.Quantity import Quantity_ColorRGBA, Quantity_TypeOfColor
from OCP.Standard import Standard_Failure
from OCP.STEPCAFControl import STEPCAFControl_Reader
from OCP.STEPConstruct import STEPConstruct_ExternRefs
from OCP.TCollection import TCollection_AsciiString, TCollection_ExtendedString
from OCP.TDataStd import TDataStd_Name
from OCP.TDF import TDF_Label, TDF_Tool
from OCP.TDocStd import TDocStd_Document
from OCP.TopAbs import TopAbs_Orientation, TopAbs_ShapeEnum
from OCP.TopExp import TopExp_Explorer
from OCP.TopLoc import TopLoc_Location
from OCP.TopoDS import TopoDS
from OCP.UnitsMethods import UnitsMethods_LengthUnit
from OCP.XCAFDoc import XCAFDoc_ColorType, XCAFDoc_DocumentTool

from openrr.assets import ConversionFailed
from openrr.assets.cad import DEFAULT_COLOR, MAX_FACES, ColorMaterials, TriangleBudget, check_count
from openrr.model.mesh import Mesh, Primitive
from openrr.model.scene import Scene

DEFLECTION_RATIO = 1e-3  # linear deflection: a thousandth of the model's bounding-box diagonal
ANGULAR_DEFLECTION = 0.5  # radians between adjacent facets' normals at most (FreeCAD's default, 28.6°)
_SURFACE = XCAFDoc_ColorType.XCAFDoc_ColorSurf
_GENERIC = XCAFDoc_ColorType.XCAFDoc_ColorGen
RGBA = tuple[float, float, float, float]
# What Open CASCADE raises on data it cannot handle (every OCCT exception derives from it).
ERRORS: tuple[type[Exception], ...] = (Standard_Failure,)


@dataclass
class StepModel:
    """A STEP file as read: its scene (in metres) and the length units it declared."""

    scene: Scene
    file_units: list[str]
    triangles: int


def read_step(path: Path, budget: TriangleBudget) -> StepModel:
    """The model in ``path``; ``ConversionFailed`` for a file Open CASCADE cannot read or that has no
    geometry, or one past the face or triangle limits. Open CASCADE's own exceptions (``ERRORS``) pass
    through: the reader turns them into ``ConversionFailed``."""
    reader = STEPCAFControl_Reader()
    reader.SetColorMode(True)
    reader.SetNameMode(True)
    reader.SetLayerMode(False)
    status = reader.ReadFile(str(path))
    if status != IFSelect_ReturnStatus.IFSelect_RetDone:
        raise ConversionFailed(f"{path.name}: not a readable STEP file (Open CASCADE: {status.name})")
    _refuse_external_references(reader, path)
    units = _file_units(reader)
    document = TDocStd_Document(TCollection_ExtendedString("XmlXCAF"))
    XCAFDoc_DocumentTool.SetLengthUnit_s(document, 1.0, UnitsMethods_LengthUnit.UnitsMethods_LengthUnit_Meter)
    if not reader.Transfer(document):
        raise ConversionFailed(f"{path.name}: Open CASCADE could not translate the STEP data into shapes")
    walk = _Walk(
        shapes=XCAFDoc_DocumentTool.ShapeTool_s(document.Main()),
        colors=XCAFDoc_DocumentTool.ColorTool_s(document.Main()),
        budget=budget,
        scene=Scene(path.name),
    )
    roots = _labels(walk.shapes.GetFreeShapes)
    faces = sum(_count_faces(walk.shapes.GetShape_s(label)) for label in roots)
    check_count(path.name, faces, MAX_FACES, "B-rep faces")
    if faces == 0:
        raise ConversionFailed(f"{path.name} holds no surface geometry", code="EmptyModel")
    walk.deflection = _deflection([walk.shapes.GetShape_s(label) for label in roots])
    for label in roots:
        walk.visit(label, None, _label_name(label) or path.stem, None, None)
    if budget.used == 0:
        raise ConversionFailed(f"{path.name}: no face could be tessellated", code="EmptyModel")
    return StepModel(walk.scene, units, budget.used)


def _refuse_external_references(reader: Any, path: Path) -> None:
    """``ConversionFailed`` when the file names other files (an assembly whose parts are files of their
    own: ``DOCUMENT_FILE`` references). ``Transfer`` would read them from wherever the names point,
    absolute paths and ``..`` included, and an external file may name others in turn: a converted file
    must not read another account's files, so a model is one file. The check lists the references as
    ``Transfer`` itself would (the same Open CASCADE class on the same work session)."""
    references = STEPConstruct_ExternRefs(reader.Reader().WS())
    references.LoadExternRefs()
    count = references.NbExternRefs()
    if count:
        first = references.FileName(1) or "?"
        raise ConversionFailed(
            f"{path.name} references {count} other file(s) ({first!r}...): openrr converts a STEP model "
            "from one file; export the assembly with its parts in one STEP file",
            code="ExternalReferences",
        )


@dataclass
class _Walk:
    shapes: Any  # XCAFDoc_ShapeTool
    colors: Any  # XCAFDoc_ColorTool
    budget: TriangleBudget
    scene: Scene
    deflection: float = 1e-3
    materials: ColorMaterials = field(default_factory=ColorMaterials)
    meshes: dict[tuple[str, RGBA], Mesh | None] = field(default_factory=dict)

    def visit(
        self, label: Any, parent: int | None, name: str, location: Any | None, inherited: RGBA | None
    ) -> None:
        """One node for ``label`` (a free shape or a component) under ``parent``, and its subtree."""
        color = self.label_color(label) or inherited
        if self.shapes.IsReference_s(label):
            referred = TDF_Label()
            self.shapes.GetReferredShape_s(label, referred)
            name = name or _label_name(referred)
            color = color or self.label_color(referred)
            label = referred
        node = self.scene.add_node(name or "part", parent=parent)
        if location is not None:
            node.transform = _matrix(location)
        if self.shapes.IsAssembly_s(label):
            for component in _labels(lambda seq: self.shapes.GetComponents_s(label, seq, False)):
                self.visit(
                    component,
                    node.id,
                    _label_name(component),
                    self.shapes.GetLocation_s(component),
                    color,
                )
            return
        node.mesh = self.part_mesh(label, name, color)

    def label_color(self, label: Any) -> RGBA | None:
        rgba = Quantity_ColorRGBA()
        if self.colors.GetColor_s(label, _SURFACE, rgba) or self.colors.GetColor_s(label, _GENERIC, rgba):
            return _file_rgba(rgba)
        return None

    def face_color(self, face: Any) -> RGBA | None:
        rgba = Quantity_ColorRGBA()
        if self.colors.GetColor(face, _SURFACE, rgba) or self.colors.GetColor(face, _GENERIC, rgba):
            return _file_rgba(rgba)
        return None

    def part_mesh(self, label: Any, name: str, color: RGBA | None) -> Mesh | None:
        """The tessellated part, once per part and inherited colour."""
        key = (_entry(label), color or DEFAULT_COLOR)
        if key not in self.meshes:
            self.meshes[key] = self.tessellate(self.shapes.GetShape_s(label), name, color or DEFAULT_COLOR)
        return self.meshes[key]

    def tessellate(self, shape: Any, name: str, color: RGBA) -> Mesh | None:
        BRepMesh_IncrementalMesh(shape, self.deflection, False, ANGULAR_DEFLECTION, False)
        groups: dict[RGBA, list[tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]]] = {}
        explorer = TopExp_Explorer(shape, TopAbs_ShapeEnum.TopAbs_FACE)
        while explorer.More():
            face = TopoDS.Face(explorer.Current())
            explorer.Next()
            arrays = _face_arrays(face)
            if arrays is None:
                continue
            self.budget.take(len(arrays[1]), f"part {name!r}")
            groups.setdefault(self.face_color(face) or color, []).append(arrays)
        primitives = [_primitive(parts, self.materials.get(rgba)) for rgba, parts in groups.items()]
        return Mesh(name, tuple(primitives)) if primitives else None


def _face_arrays(face: Any) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]] | None:
    """Positions, triangles (outward, counter-clockwise) and unit normals of one meshed face; None for a
    face BRepMesh left without triangles."""
    location = TopLoc_Location()
    triangulation = BRep_Tool.Triangulation_s(face, location)
    if triangulation is None or triangulation.NbTriangles() == 0:
        return None
    if not triangulation.HasNormals():
        BRepLib_ToolTriangulatedShape.ComputeNormals_s(face, triangulation)
    count = triangulation.NbNodes()
    positions = np.empty((count, 3))
    normals = np.empty((count, 3))
    for i in range(count):
        point = triangulation.Node(i + 1)
        positions[i] = (point.X(), point.Y(), point.Z())
        normal = triangulation.Normal(i + 1)
        normals[i] = (normal.X(), normal.Y(), normal.Z())
    triangles = np.empty((triangulation.NbTriangles(), 3), dtype=np.int64)
    for i in range(len(triangles)):
        triangles[i] = triangulation.Triangle(i + 1).Get()
    triangles -= 1
    if face.Orientation() == TopAbs_Orientation.TopAbs_REVERSED:
        triangles = triangles[:, ::-1]
        normals = -normals
    if not location.IsIdentity():
        matrix = _matrix(location)
        positions = positions @ matrix[:3, :3].T + matrix[:3, 3]
        normals = normals @ matrix[:3, :3].T
    return positions, triangles, normals


def _primitive(
    parts: list[tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]], material: Any
) -> Primitive:
    offsets = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
    positions = np.concatenate([p[0] for p in parts])
    indices = np.concatenate([p[1] + offset for p, offset in zip(parts, offsets, strict=True)])
    normals = np.concatenate([p[2] for p in parts])
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)
    return Primitive(positions, indices, material, normals=normals)


def _file_rgba(color: Any) -> RGBA:
    """XCAF keeps colours in linear RGB; the file's (sRGB) values, which the gamma setting expects."""
    rgb = color.GetRGB().Values(Quantity_TypeOfColor.Quantity_TOC_sRGB)
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]), float(color.Alpha()))


def _matrix(location: Any) -> NDArray[np.float64]:
    transform = location.Transformation()
    matrix = np.eye(4)
    for row in range(3):
        for column in range(4):
            matrix[row, column] = transform.Value(row + 1, column + 1)
    return matrix


def _labels(fill: Any) -> list[Any]:
    sequence = Sequence_TDF_Label()
    fill(sequence)
    return [sequence.Value(i) for i in range(1, sequence.Length() + 1)]


def _label_name(label: Any) -> str:
    attribute = TDataStd_Name()
    if not label.FindAttribute(TDataStd_Name.GetID_s(), attribute):
        return ""
    name = str(attribute.Get().ToExtString()).strip()
    return "" if name.startswith("=>") else name  # "=>[0:1:1:2]": XCAF's placeholder, not the file's


def _entry(label: Any) -> str:
    entry = TCollection_AsciiString()
    TDF_Tool.Entry_s(label, entry)
    return str(entry.ToCString())


def _file_units(reader: Any) -> list[str]:
    lengths = Sequence_TCollection_AsciiString()
    reader.Reader().FileUnits(lengths, Sequence_TCollection_AsciiString(), Sequence_TCollection_AsciiString())
    return sorted({str(lengths.Value(i).ToCString()) for i in range(1, lengths.Length() + 1)})


def _count_faces(shape: Any) -> int:
    explorer = TopExp_Explorer(shape, TopAbs_ShapeEnum.TopAbs_FACE)
    count = 0
    while explorer.More():
        count += 1
        explorer.Next()
    return count


def _deflection(shapes: list[Any]) -> float:
    box = Bnd_Box()
    for shape in shapes:
        BRepBndLib.Add_s(shape, box)
    if box.IsVoid():
        return 1e-3
    low, high = box.CornerMin(), box.CornerMax()
    diagonal = math.dist((low.X(), low.Y(), low.Z()), (high.X(), high.Y(), high.Z()))
    return max(diagonal * DEFLECTION_RATIO, 1e-7)
