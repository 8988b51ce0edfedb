"""CAD and BIM conversion: time and peak memory converting a STEP and an IFC model of about 1M triangles.

The issue asks for conversion time and peak memory per format at about a million triangles. The models
are generated here with the formats' own libraries (no such real file is small enough to vendor):

* STEP: a grid of distinct filleted boxes (each its own solid, product and colour: nothing is instanced,
  so every face is tessellated), written by Open CASCADE's STEP writer in millimetres. Its triangle count
  follows from Open CASCADE's tessellation at the reader's deflection, so the grid is sized by a trial.
* IFC: a storey of ``IfcBuildingElementProxy`` products, each a triangulated sphere
  (``IfcTriangulatedFaceSet`` of 5,120 triangles, as BIM tools export faceted equipment) with a colour,
  written by IfcOpenShell's API in millimetres.

Each conversion (``openrr.assets.convert.convert_model``, levels of detail and writing included) runs in
a fresh Python process, so that its peak resident memory and the time to import the format's library are
its own. The peak is ``VmHWM``, which starts afresh with the new program; ``ru_maxrss`` would not: Linux
carries it over from the parent through fork and exec. Times are wall-clock on this machine's cores.

    .venv/bin/python -m bench.convert_cad [--triangles 1000000] [--step-triangles N] [--formats step,ifc]
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_result

_CONVERT = """
import json, sys, time
from pathlib import Path
def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")
started = time.perf_counter()
from openrr.assets.convert import convert_model
source, out = Path(sys.argv[1]), Path(sys.argv[2])
began = time.perf_counter()
result = convert_model(source, out, "model", None)
ended = time.perf_counter()
stats = result.info["inputStatistics"]
print(json.dumps({
    "convert_s": round(ended - began, 2),
    "import_s": round(began - started, 2),
    "peak_rss_mib": round(peak_kib() / 1024),
    "triangles": stats["numFaces"],
    "points": stats.get("numPoints", 0),
    "materials": stats["numMaterial"],
    "asset_mib": round(result.asset_bytes / 2**20, 1),
    "log_tail": result.log_lines[-3:],
}))
"""


def write_step(path: Path, boxes: int) -> None:
    """``boxes`` filleted 10 x 10 x 10 mm boxes (2 mm fillets) on a square grid 15 mm apart."""
    from OCP.BRepFilletAPI import BRepFilletAPI_MakeFillet
    from OCP.BRepPrimAPI import BRepPrimAPI_MakeBox
    from OCP.gp import gp_Pnt
    from OCP.Quantity import Quantity_Color, Quantity_TypeOfColor
    from OCP.STEPCAFControl import STEPCAFControl_Writer
    from OCP.STEPControl import STEPControl_StepModelType
    from OCP.TCollection import TCollection_ExtendedString
    from OCP.TDataStd import TDataStd_Name
    from OCP.TDocStd import TDocStd_Document
    from OCP.TopAbs import TopAbs_ShapeEnum
    from OCP.TopExp import TopExp_Explorer
    from OCP.TopoDS import TopoDS
    from OCP.XCAFDoc import XCAFDoc_ColorType, XCAFDoc_DocumentTool

    doc = TDocStd_Document(TCollection_ExtendedString("XmlXCAF"))
    shapes = XCAFDoc_DocumentTool.ShapeTool_s(doc.Main())
    colors = XCAFDoc_DocumentTool.ColorTool_s(doc.Main())
    side = max(1, round(boxes**0.5))
    for i in range(boxes):
        x, y = (i % side) * 15.0, (i // side) * 15.0
        box = BRepPrimAPI_MakeBox(gp_Pnt(x, y, 0), 10, 10, 10).Shape()
        fillet = BRepFilletAPI_MakeFillet(box)
        explorer = TopExp_Explorer(box, TopAbs_ShapeEnum.TopAbs_EDGE)
        while explorer.More():
            fillet.Add(2.0, TopoDS.Edge(explorer.Current()))
            explorer.Next()
        label = shapes.AddShape(fillet.Shape(), False)
        TDataStd_Name.Set_s(label, TCollection_ExtendedString(f"box {i}"))
        color = Quantity_Color((i % 7) / 6, (i % 5) / 4, (i % 3) / 2, Quantity_TypeOfColor.Quantity_TOC_sRGB)
        colors.SetColor(label, color, XCAFDoc_ColorType.XCAFDoc_ColorSurf)
    writer = STEPCAFControl_Writer()
    if not writer.Transfer(doc, STEPControl_StepModelType.STEPControl_AsIs):
        raise RuntimeError("Open CASCADE could not write the STEP model")
    writer.Write(str(path))


def write_ifc(path: Path, products: int) -> None:
    """``products`` proxies on one storey, each a 1 m icosphere of 5,120 triangles (subdivisions 4) 1.5 m
    apart, with one of seven colours; lengths in millimetres."""
    import ifcopenshell.api.aggregate
    import ifcopenshell.api.context
    import ifcopenshell.api.geometry
    import ifcopenshell.api.project
    import ifcopenshell.api.root
    import ifcopenshell.api.spatial
    import ifcopenshell.api.style
    import ifcopenshell.api.unit
    import numpy as np
    import trimesh

    api = ifcopenshell.api
    f = api.project.create_file(version="IFC4")
    project = api.root.create_entity(f, ifc_class="IfcProject", name="Bench")
    api.unit.assign_unit(f)  # millimetres
    model = api.context.add_context(f, context_type="Model")
    body = api.context.add_context(
        f, context_type="Model", context_identifier="Body", target_view="MODEL_VIEW", parent=model
    )
    parent = project
    for ifc_class in ("IfcSite", "IfcBuilding", "IfcBuildingStorey"):
        child = api.root.create_entity(f, ifc_class=ifc_class, name=ifc_class[3:])
        api.aggregate.assign_object(f, relating_object=parent, products=[child])
        parent = child
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)  # metres: the API scales to mm
    faces = sphere.faces.tolist()
    styles = []
    for k in range(7):
        style = api.style.add_style(f, name=f"colour {k}")
        rgb = {"Red": (k % 7) / 6, "Green": (k % 5) / 4, "Blue": (k % 3) / 2}
        api.style.add_surface_style(
            f,
            style=style,
            ifc_class="IfcSurfaceStyleShading",
            attributes={"SurfaceColour": {"Name": None, **rgb}},
        )
        styles.append(style)
    side = max(1, round(products**0.5))
    proxies = []
    for i in range(products):
        offset = np.array([(i % side) * 1.5, (i // side) * 1.5, 0.5])
        proxy = api.root.create_entity(f, ifc_class="IfcBuildingElementProxy", name=f"sphere {i}")
        api.geometry.edit_object_placement(f, product=proxy)
        vertices = (sphere.vertices + offset).tolist()
        representation = api.geometry.add_mesh_representation(
            f, context=body, vertices=[vertices], faces=[faces], unit_scale=0.001
        )
        api.style.assign_representation_styles(f, shape_representation=representation, styles=[styles[i % 7]])
        api.geometry.assign_representation(f, product=proxy, representation=representation)
        proxies.append(proxy)
    api.spatial.assign_container(f, relating_structure=parent, products=proxies)
    f.write(str(path))


# Triangles per model unit at the reader's default tessellation, measured here: a filleted box of 26 faces
# becomes ~600 triangles in a grid of 100 and fewer in bigger grids (the linear deflection follows the
# model's size); a sphere is 5,120.
_PER_BOX = 500
_PER_SPHERE = 5120


def run(source: Path, out: Path) -> dict[str, Any]:
    """One conversion in a fresh interpreter; its JSON line."""
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT, str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"conversion of {source.name} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def quiet(action: Any) -> None:
    """``action()`` with this process's standard output sent to /dev/null: Open CASCADE's STEP writer
    prints its statistics there for every shape."""
    import os

    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
        try:
            action()
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--triangles", type=int, default=1_000_000, help="about how many triangles")
    parser.add_argument(
        "--step-triangles", type=int, help="for STEP, if not --triangles (its writing is slow)"
    )
    parser.add_argument("--formats", default="step,ifc", help="which of step,ifc")
    args = parser.parse_args()
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.formats.split(","):
            source = folder / f"model.{name}"
            began = time.perf_counter()
            if name == "step":
                count = max(1, (args.step_triangles or args.triangles) // _PER_BOX)
                quiet(functools.partial(write_step, source, count))
                what = f"{count} filleted boxes (26 faces each), millimetres"
            else:
                count = max(1, args.triangles // _PER_SPHERE)
                write_ifc(source, count)
                what = f"{count} IfcBuildingElementProxy spheres (IfcTriangulatedFaceSet), millimetres"
            written = time.perf_counter() - began
            row = run(source, folder / f"out-{name}")
            row.update(
                model=what, file_mib=round(source.stat().st_size / 2**20, 1), generate_s=round(written, 1)
            )
            rows[name] = row
            print(name, json.dumps(row), flush=True)
    print(f"results: {write_result('convert_cad', {'triangles_asked': args.triangles, 'formats': rows})}")


if __name__ == "__main__":
    main()
