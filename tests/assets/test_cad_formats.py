"""STEP and IFC conversion on real files (tests/data/formats/step and ifc, see their SOURCE.md) and on files
the tests write with the formats' own libraries (an inch assembly with Open CASCADE, a millimetre building
with IfcOpenShell's API): hierarchy, names, triangles, units, colours, metadata, pixels, bad input.

Triangle counts vary with the tessellator's version: they are checked against ranges that follow from the
files' faces, not exact numbers. Coordinates are checked against the files' own geometry.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from openrr.assets import ConversionFailed
from openrr.assets.convert import convert_model
from openrr.assets.settings import ConversionSettings
from openrr.model.loader import load_model
from openrr.model.scene import Node, Scene
from openrr.render.camera import Camera
from openrr.render.renderer import Background, Renderer
from tests.assets.test_render import draw

DATA = Path(__file__).parent.parent / "data" / "formats"
CUBE_CYLINDER = DATA / "step" / "red_cube_blue_cylinder.step"
BRACKET = DATA / "step" / "nema-17-bracket.step"
WALL = DATA / "ifc" / "WithArcBoundary.ifc"
W, H = 160, 120


def srgb_to_linear(values: Any) -> NDArray[np.float64]:
    v = np.asarray(values, dtype=np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def convert(source: Path, out: Path, settings: dict[str, Any] | None = None) -> tuple[Scene, dict[str, Any]]:
    parsed = ConversionSettings.from_json(settings) if settings is not None else None
    result = convert_model(source, out, source.stem, parsed)
    return load_model(result.asset_path), result.info


def by_name(scene: Scene) -> dict[str, Node]:
    return {node.name: node for node in scene.nodes()}


def world_bounds(scene: Scene, node: Node) -> NDArray[np.float64]:
    """The node's mesh bounds in world coordinates (its corners through its world matrix)."""
    assert node.mesh is not None
    matrix = _world(scene, node)
    low, high = node.mesh.bounds
    corners = np.array(
        [[x, y, z, 1.0] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])]
    )
    moved = corners @ np.asarray(matrix).T
    return np.stack([moved[:, :3].min(axis=0), moved[:, :3].max(axis=0)])


def _world(scene: Scene, node: Node) -> NDArray[np.float64]:
    matrix = np.eye(4)
    current: Node | None = node
    while current is not None:
        matrix = current.transform @ matrix
        current = scene.node(current.parent) if current.parent is not None else None
    return matrix


# --- STEP ------------------------------------------------------------------------------------------------


def test_step_parts_keep_their_names_colours_and_place(tmp_path: Path) -> None:
    """Two parts, metres in the file; each face styled with the part's colour."""
    scene, _ = convert(CUBE_CYLINDER, tmp_path / "out")
    nodes = by_name(scene)
    assert {"red_cube", "blue_cylinder"} <= set(nodes)
    cube, cylinder = nodes["red_cube"].mesh, nodes["blue_cylinder"].mesh
    assert cube is not None
    assert cylinder is not None
    assert 12 <= cube.triangle_count <= 24  # six planar quads
    assert 24 <= cylinder.triangle_count <= 4000  # two discs and a cylindrical face
    np.testing.assert_allclose(
        world_bounds(scene, nodes["red_cube"]), [[-0.01, 0, 0], [0, 0.01, 0.01]], atol=1e-6
    )
    np.testing.assert_allclose(
        world_bounds(scene, nodes["blue_cylinder"]), [[0.005, 0, 0], [0.015, 0.01, 0.01]], atol=2e-5
    )
    # The file's COLOUR_RGB values are sRGB; gammaToLinearMaterial is on by default for STEP.
    red = cube.primitives[0].material.base_color_factor
    blue = cylinder.primitives[0].material.base_color_factor
    np.testing.assert_allclose(red[:3], srgb_to_linear([0.8666666746, 0.3215686381, 0.1568627506]), atol=1e-4)
    np.testing.assert_allclose(blue[:3], srgb_to_linear([0.2313725501, 0.380392164, 0.7058823705]), atol=1e-4)


def test_step_in_millimetres_becomes_metres(tmp_path: Path) -> None:
    scene, _ = convert(BRACKET, tmp_path / "out")
    [node] = [n for n in scene.nodes() if n.mesh is not None]
    assert node.name == "nema-17-bracket"
    faces = BRACKET.read_text().count("ADVANCED_FACE(")
    assert faces <= node.mesh.triangle_count <= 100 * faces  # type: ignore[union-attr]
    # The bracket's extents in the file: 35 x 41 x 51 mm (its vertices' coordinates).
    size = np.diff(world_bounds(scene, node), axis=0)[0]
    np.testing.assert_allclose(sorted(size), [0.035, 0.041, 0.051], atol=5e-4)
    # DRAUGHTING_PRE_DEFINED_COLOUR('black') in the file.
    assert node.mesh.primitives[0].material.base_color_factor[:3] == pytest.approx((0, 0, 0))  # type: ignore[union-attr]


def write_inch_assembly(path: Path) -> None:
    """An assembly written by Open CASCADE's STEP writer in inches: ``fixture`` holds two instances of a
    green ``block`` (2 x 1 x 0.5 in) 3 in apart, and a sub-assembly ``post`` with an orange cylinder."""
    from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox, BRepPrimAPI_MakeCylinder
    from OCP.gp import gp_Trsf, gp_Vec
    from OCP.Interface import Interface_Static
    from OCP.Quantity import Quantity_Color, Quantity_TypeOfColor
    from OCP.STEPCAFControl import STEPCAFControl_Writer
    from OCP.STEPControl import STEPControl_StepModelType
    from OCP.TCollection import TCollection_ExtendedString
    from OCP.TDataStd import TDataStd_Name
    from OCP.TDocStd import TDocStd_Document
    from OCP.TopLoc import TopLoc_Location
    from OCP.XCAFDoc import XCAFDoc_ColorType, XCAFDoc_DocumentTool

    inch = 25.4  # the document is in millimetres, Open CASCADE's default
    doc = TDocStd_Document(TCollection_ExtendedString("XmlXCAF"))
    shapes = XCAFDoc_DocumentTool.ShapeTool_s(doc.Main())
    colors = XCAFDoc_DocumentTool.ColorTool_s(doc.Main())

    def named(label: Any, name: str) -> Any:
        TDataStd_Name.Set_s(label, TCollection_ExtendedString(name))
        return label

    def at(x: float, y: float, z: float) -> Any:
        trsf = gp_Trsf()
        trsf.SetTranslation(gp_Vec(x * inch, y * inch, z * inch))
        return TopLoc_Location(trsf)

    def paint(label: Any, r: float, g: float, b: float) -> None:
        color = Quantity_Color(r, g, b, Quantity_TypeOfColor.Quantity_TOC_sRGB)
        colors.SetColor(label, color, XCAFDoc_ColorType.XCAFDoc_ColorSurf)

    block = named(
        shapes.AddShape(BRepPrimAPI_MakeBox(2 * inch, 1 * inch, 0.5 * inch).Shape(), False), "block"
    )
    paint(block, 0.1, 0.7, 0.2)
    rod = named(shapes.AddShape(BRepPrimAPI_MakeCylinder(0.25 * inch, 2 * inch).Shape(), False), "rod")
    paint(rod, 1.0, 0.5, 0.0)
    fixture = named(shapes.NewShape(), "fixture")
    post = named(shapes.NewShape(), "post")
    named(shapes.AddComponent(post, rod, at(0, 0, 0.5)), "rod 1")
    named(shapes.AddComponent(fixture, block, at(0, 0, 0)), "left block")
    named(shapes.AddComponent(fixture, block, at(3, 0, 0)), "right block")
    named(shapes.AddComponent(fixture, post, at(2.5, 0.5, 0)), "post 1")
    shapes.UpdateAssemblies()
    Interface_Static.SetCVal_s("write.step.unit", "INCH")
    writer = STEPCAFControl_Writer()
    assert writer.Transfer(doc, STEPControl_StepModelType.STEPControl_AsIs)
    writer.Write(str(path))


def test_step_assembly_becomes_the_node_tree_in_metres(tmp_path: Path) -> None:
    source = tmp_path / "fixture.stp"
    write_inch_assembly(source)
    assert "INCH" in source.read_text()
    scene, _ = convert(source, tmp_path / "out")
    nodes = by_name(scene)
    [root] = scene.roots
    assert root.name == "fixture"
    assert sorted(scene.node(c).name for c in root.children) == ["left block", "post 1", "right block"]
    assert [scene.node(c).name for c in nodes["post 1"].children] == ["rod 1"]
    left, right = nodes["left block"], nodes["right block"]
    assert left.mesh is right.mesh  # one part, tessellated once, instanced twice
    assert left.mesh is not None
    assert 12 <= left.mesh.triangle_count <= 24
    inch = 0.0254
    np.testing.assert_allclose(
        world_bounds(scene, left), [[0.0, 0.0, 0.0], [2 * inch, inch, inch / 2]], atol=1e-6
    )
    np.testing.assert_allclose(
        world_bounds(scene, right), [[3 * inch, 0.0, 0.0], [5 * inch, inch, inch / 2]], atol=1e-6
    )
    rod = world_bounds(scene, nodes["rod 1"])
    np.testing.assert_allclose(rod[:, 2], [inch / 2, 2.5 * inch], atol=1e-6)
    np.testing.assert_allclose((rod[0, :2] + rod[1, :2]) / 2, [2.5 * inch, 0.5 * inch], atol=1e-4)
    green = left.mesh.primitives[0].material.base_color_factor
    np.testing.assert_allclose(green[:3], srgb_to_linear([0.1, 0.7, 0.2]), atol=2e-3)


def write_multi_file_assembly(folder: Path) -> Path:
    """An assembly of two instances of a box whose part Open CASCADE's writer puts in a file of its own
    (``DOCUMENT_FILE``: the "multi-file" STEP of assemblies exported part by part); the main file. Run
    in ``folder``: the writer names the part file as its prefix says, here relative."""
    from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox
    from OCP.gp import gp_Trsf, gp_Vec
    from OCP.STEPCAFControl import STEPCAFControl_Writer
    from OCP.STEPControl import STEPControl_StepModelType
    from OCP.TCollection import TCollection_ExtendedString
    from OCP.TDocStd import TDocStd_Document
    from OCP.TopLoc import TopLoc_Location
    from OCP.XCAFDoc import XCAFDoc_DocumentTool

    doc = TDocStd_Document(TCollection_ExtendedString("XmlXCAF"))
    shapes = XCAFDoc_DocumentTool.ShapeTool_s(doc.Main())
    assembly = shapes.NewShape()
    part = shapes.AddShape(BRepPrimAPI_MakeBox(10, 10, 10).Shape(), False)
    moved = gp_Trsf()
    moved.SetTranslation(gp_Vec(20, 0, 0))
    shapes.AddComponent(assembly, part, TopLoc_Location())
    shapes.AddComponent(assembly, part, TopLoc_Location(moved))
    shapes.UpdateAssemblies()
    writer = STEPCAFControl_Writer()
    assert writer.Transfer(doc, STEPControl_StepModelType.STEPControl_AsIs, "part-")
    main = folder / "main.stp"
    writer.Write(main.name)
    return main


def test_step_external_references_are_refused_wherever_they_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Open CASCADE's Transfer reads the files a STEP file names, from any folder: another account's
    # files must not end up in this account's asset, so no reference is followed, inside or outside.
    written = tmp_path / "written"
    written.mkdir()
    monkeypatch.chdir(written)
    main = write_multi_file_assembly(written)
    monkeypatch.undo()
    [part] = [p for p in written.iterdir() if p != main]
    assert f"DOCUMENT_FILE('{part.name}'" in main.read_text()
    beside = tmp_path / "beside"
    beside.mkdir()
    (beside / main.name).write_bytes(main.read_bytes())
    (beside / part.name).write_bytes(part.read_bytes())
    secret = tmp_path / "other-account"
    secret.mkdir()
    (secret / part.name).write_bytes(part.read_bytes())
    outside = tmp_path / "model"
    outside.mkdir()
    (outside / main.name).write_text(
        main.read_text().replace(f"'{part.name}'", f"'../other-account/{part.name}'")
    )
    for source, named in ((beside / main.name, part.name), (outside / main.name, "../other-account/")):
        with pytest.raises(ConversionFailed, match="references 1 other file") as caught:
            convert(source, source.parent / "out")
        assert caught.value.code == "ExternalReferences"
        assert named in caught.value.message


def test_step_triangle_budget_refuses_a_model_too_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("openrr.assets.cad.MAX_TRIANGLES", 100)
    with pytest.raises(ConversionFailed, match="past 100 triangles") as caught:
        convert(BRACKET, tmp_path / "out")
    assert caught.value.code == "ModelTooComplex"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, this is no CAD file\n", "not a STEP file"),
        (CUBE_CYLINDER.read_bytes()[:6000], "bad.step"),  # cut in the middle of DATA
        (b"ISO-10303-21;\nHEADER;\nENDSEC;\nDATA;\n#1=GARBAGE((;\nENDSEC;\nEND-ISO-10303-21;\n", "bad.step"),
        (b"", "not a STEP file"),
    ],
)
def test_bad_step_fails_cleanly(tmp_path: Path, content: bytes, message: str) -> None:
    source = tmp_path / "bad.step"
    source.write_bytes(content)
    with pytest.raises(ConversionFailed, match=message) as caught:
        convert(source, tmp_path / "out")
    assert caught.value.code in ("InvalidInput", "EmptyModel")
    assert str(tmp_path) not in caught.value.message


# --- IFC -------------------------------------------------------------------------------------------------


def test_ifc_spatial_structure_metadata_and_geometry(tmp_path: Path) -> None:
    """OpenBuildings Designer's wall of NURBS faces on storey 'Floor 3' (9.144 m) of 'Bldg 1', 'Site 1'."""
    scene, _ = convert(WALL, tmp_path / "out", {"metadataKeys": ["*"]})
    nodes = by_name(scene)
    chain = ["BuildingTemplate_US", "Site 1", "Bldg 1", "Floor 3", "*Default Exterior Wall*"]
    for parent, child in itertools.pairwise(chain):
        assert nodes[child].parent == nodes[parent].id
    wall = nodes["*Default Exterior Wall*"]
    assert wall.metadata["ifcType"] == "IfcWall"
    assert wall.metadata["GlobalId"] == "3wca1no693WBlKP7jj9bSB"
    assert wall.metadata["Pset_WallCommon.IsExternal"] is True  # from the wall's type, #214
    assert wall.metadata["Qto_WallBaseQuantities.Width"] == pytest.approx(0.3048)
    assert nodes["Floor 3"].metadata["ifcType"] == "IfcBuildingStorey"
    assert nodes["Floor 3"].metadata["Floor.OccupancyType"] == "Commercial"
    # Four rational B-spline faces: their tessellation has hundreds to some hundred thousand triangles.
    assert wall.mesh is not None
    assert 100 <= wall.mesh.triangle_count <= 200_000
    # World placement: wall (43.5938, -79.2095, -23.7804) in the storey at z 9.144, in metres. The faces
    # pass through the edge vertices #119, #123, #144, #148 and the arc points of #46..#49, and stay in the
    # convex hull of the surfaces' control points.
    offset = np.array([43.5938, -79.2095, 9.144 - 23.7804])
    bounds = world_bounds(scene, wall) - offset
    assert np.all(bounds[0] <= [1.161, 18.067, 10.944])
    assert np.all(bounds[1] >= [6.406, 34.357, 29.754])
    assert np.all(bounds[0] >= [-1e-3, -1e-3, -1e-3])
    assert np.all(bounds[1] <= [6.966, 35.246, 40.698])
    # IFCCOLOURRGB(1, 1, 0): yellow.
    assert wall.mesh.primitives[0].material.base_color_factor[:3] == pytest.approx((1.0, 1.0, 0.0), abs=1e-6)


def test_ifc_metadata_keys_select_properties(tmp_path: Path) -> None:
    scene, _ = convert(WALL, tmp_path / "out", {"metadataKeys": ["ifcType", "Pset_WallCommon.*"]})
    wall = by_name(scene)["*Default Exterior Wall*"]
    assert wall.metadata == {
        "ifcType": "IfcWall",
        "Pset_WallCommon.Combustible": False,
        "Pset_WallCommon.Compartmentation": False,
        "Pset_WallCommon.IsExternal": True,
        "Pset_WallCommon.LoadBearing": False,
    }
    assert by_name(scene)["Site 1"].metadata == {"ifcType": "IfcSite"}


def write_millimetre_building(path: Path) -> None:
    """A building written by IfcOpenShell's API in millimetres (its default unit): one 5 x 0.2 x 3 m wall
    with a Pset_WallCommon."""
    import ifcopenshell.api.aggregate
    import ifcopenshell.api.context
    import ifcopenshell.api.geometry
    import ifcopenshell.api.project
    import ifcopenshell.api.pset
    import ifcopenshell.api.root
    import ifcopenshell.api.spatial
    import ifcopenshell.api.unit

    api = ifcopenshell.api
    f = api.project.create_file(version="IFC4")
    project = api.root.create_entity(f, ifc_class="IfcProject", name="Generated project")
    api.unit.assign_unit(f)
    model = api.context.add_context(f, context_type="Model")
    body = api.context.add_context(
        f, context_type="Model", context_identifier="Body", target_view="MODEL_VIEW", parent=model
    )
    parent = project
    for ifc_class, name in (
        ("IfcSite", "Site"),
        ("IfcBuilding", "Building"),
        ("IfcBuildingStorey", "Ground"),
    ):
        child = api.root.create_entity(f, ifc_class=ifc_class, name=name)
        api.aggregate.assign_object(f, relating_object=parent, products=[child])
        parent = child
    wall = api.root.create_entity(f, ifc_class="IfcWall", name="Wall A")
    api.geometry.edit_object_placement(f, product=wall)
    representation = api.geometry.add_wall_representation(f, context=body, length=5, height=3, thickness=0.2)
    api.geometry.assign_representation(f, product=wall, representation=representation)
    api.spatial.assign_container(f, relating_structure=parent, products=[wall])
    pset = api.pset.add_pset(f, product=wall, name="Pset_WallCommon")
    api.pset.edit_pset(f, pset=pset, properties={"FireRating": "REI 90"})
    f.write(str(path))


def test_ifc_in_millimetres_becomes_metres(tmp_path: Path) -> None:
    source = tmp_path / "building.ifc"
    write_millimetre_building(source)
    assert ".MILLI.,.METRE." in source.read_text()
    scene, _ = convert(source, tmp_path / "out", {"metadataKeys": ["*"]})
    wall = by_name(scene)["Wall A"]
    assert scene.node(wall.parent).name == "Ground"  # type: ignore[arg-type]
    assert wall.metadata["Pset_WallCommon.FireRating"] == "REI 90"
    assert wall.mesh is not None
    assert wall.mesh.triangle_count == 12  # a box
    np.testing.assert_allclose(world_bounds(scene, wall), [[0.0, 0.0, 0.0], [5.0, 0.2, 3.0]], atol=1e-6)


def test_ifc_triangle_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("openrr.assets.cad.MAX_TRIANGLES", 50)
    with pytest.raises(ConversionFailed, match="IfcWall") as caught:
        convert(WALL, tmp_path / "out")
    assert caught.value.code == "ModelTooComplex"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not an ifc file at all", "not an IFC file"),
        (b"ISO-10303-21;\nHEADER;\ngarbage", "bad.ifc"),
        (WALL.read_bytes()[:3000], "bad.ifc"),  # cut before the project and the geometry
        (WALL.read_bytes().replace(b"#253=IFCPROJECT(", b"#253=IFCPROJECTLIBRARY("), "bad.ifc"),
    ],
)
def test_bad_ifc_fails_cleanly(tmp_path: Path, content: bytes, message: str) -> None:
    source = tmp_path / "bad.ifc"
    source.write_bytes(content)
    with pytest.raises(ConversionFailed, match=message) as caught:
        convert(source, tmp_path / "out")
    assert caught.value.code in ("InvalidInput", "EmptyModel")
    assert str(tmp_path) not in caught.value.message


# --- both ------------------------------------------------------------------------------------------------


def test_listing_formats_loads_neither_library() -> None:
    code = (
        "import sys\nfrom openrr.assets import readers\n"
        "assert {'.step', '.stp', '.ifc'} <= set(readers.formats())\n"
        "assert 'OCP' not in sys.modules and 'ifcopenshell' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer(W, H) as r:
        r.background = Background((0.5, 0.5, 0.5), None)
        yield r


def test_step_renders_in_place_and_in_colour(tmp_path: Path, renderer: Renderer) -> None:
    """From above: the red cube on the left half of the picture, the blue cylinder on the right."""
    scene, _ = convert(CUBE_CYLINDER, tmp_path / "out")
    camera = Camera.look_at((0.0025, 0.005, 0.06), (0.0025, 0.005, 0.0), up=(0, 1, 0), fov=30)
    picture = draw(renderer, scene, camera)[:, :, :3]
    left, right = picture[40:80, 25:60].reshape(-1, 3), picture[40:80, 100:135].reshape(-1, 3)
    red = (left[:, 0] > left[:, 2] + 40).mean()
    blue = (right[:, 2] > right[:, 0] + 40).mean()
    assert red > 0.8, red
    assert blue > 0.5, blue
    corners = np.concatenate([picture[:5, :5].reshape(-1, 3), picture[-5:, -5:].reshape(-1, 3)])
    assert np.abs(corners - 128).max() <= 3  # the background around the model


def test_ifc_renders_in_place_and_in_colour(tmp_path: Path, renderer: Renderer) -> None:
    """The wall is a yellow ring of four NURBS faces; seen along -x, aimed at the centre of its edge
    vertices as the file places them, it fills a ring around the middle of the picture."""
    scene, _ = convert(WALL, tmp_path / "out")
    centre = np.array([43.5938 + 3.784, -79.2095 + 26.212, 9.144 - 23.7804 + 20.349])
    camera = Camera.look_at(tuple(centre + np.array([80.0, 0.0, 0.0])), tuple(centre), up=(0, 0, 1), fov=30)
    picture = draw(renderer, scene, camera)[:, :, :3]
    yellow = (picture[:, :, 0] > picture[:, :, 2] + 60) & (picture[:, :, 1] > picture[:, :, 2] + 60)
    assert 0.05 < yellow.mean() < 0.5, yellow.mean()
    rows, columns = np.nonzero(yellow)
    assert abs(rows.mean() - H / 2) < 12
    assert abs(columns.mean() - W / 2) < 12
    assert np.abs(picture[H // 2, W // 2] - 128).max() <= 3  # the ring's hole
    assert np.abs(picture[:3, :3] - 128).max() <= 3
