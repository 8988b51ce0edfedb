"""Conversion time and peak memory per input format, for one model of about a million triangles.

The issue asks for conversion time and peak memory per format at about 1M triangles. One scene is
generated here and written by each format's own tool, so the rows differ by the reader, not the model:
12 icospheres of 81,920 triangles (983,040 in all), each its own node with its own colour and normals.

* GLB: trimesh's glTF writer;
* OBJ (+ MTL): trimesh's OBJ writer;
* PLY: trimesh's binary PLY writer (one mesh: PLY holds no hierarchy, so the spheres are concatenated);
* FBX: assimp's command-line tool (``assimp export``, Debian's assimp-utils) converting the GLB, the way
  models reach FBX from other tools; the bench says so and skips the row if the tool is missing;
* USD: a binary crate file (``.usdc``) written with Pixar's API (``UsdGeom.Mesh`` per sphere with
  normals and display colours);
* STEP and IFC: ``bench.convert_cad``'s writers (Open CASCADE and IfcOpenShell), whose models are CAD
  solids and BIM products of about the same size.

Point clouds are counted in points, not triangles: with ``--points`` (default 1,000,000) the same cloud
(a coloured terrain) is written as E57 (pye57), LAS and LAZ (laspy) and XYZ, and converted too.

Each conversion (``openrr.assets.convert.convert_model``: read, settings, levels of detail, the asset
written) runs in a fresh interpreter (``bench.convert_cad.run``), so its peak resident memory and its
imports are its own. Times are wall-clock.

    .venv/bin/python -m bench.convert_formats [--formats glb,obj,ply,fbx,usd,step,ifc,e57,las,laz,xyz]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from bench.common import write_result
from bench.convert_cad import quiet, run, write_ifc, write_step

SPHERES = 12
SUBDIVISIONS = 6  # 81,920 triangles a sphere
MESH_FORMATS = ("glb", "obj", "ply", "fbx", "usd", "step", "ifc")
POINT_FORMATS = ("e57", "las", "laz", "xyz")
# bench.convert_cad's tessellation counts: a filleted box meshes to about 500 triangles at the STEP
# reader's deflection in a grid this size, a BIM sphere is 5,120.
_PER_BOX = 500
_PER_SPHERE = 5120


def spheres() -> trimesh.Scene:
    scene = trimesh.Scene()
    for i in range(SPHERES):
        mesh = trimesh.creation.icosphere(subdivisions=SUBDIVISIONS, radius=0.5)
        mesh.apply_translation([(i % 4) * 1.2, (i // 4) * 1.2, 0.0])
        colour = [40 + 200 * (i % 3 == 0), 40 + 200 * (i % 3 == 1), 40 + 200 * (i % 3 == 2), 255]
        material = trimesh.visual.material.PBRMaterial(name=f"colour {i}", baseColorFactor=colour)
        mesh.visual = trimesh.visual.TextureVisuals(material=material)  # a material per sphere, no texture
        scene.add_geometry(mesh, node_name=f"sphere {i}", geom_name=f"sphere {i}")
    return scene


def write_usd(path: Path, scene: trimesh.Scene) -> None:
    from openrr.assets.readers.usd.pxr_modules import Gf, Sdf, Usd, UsdGeom

    Vt = importlib.import_module("pxr.Vt")
    stage = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, "/Spheres")
    stage.SetDefaultPrim(root.GetPrim())
    for i, (name, mesh) in enumerate(scene.geometry.items()):
        prim = UsdGeom.Mesh.Define(stage, Sdf.Path(f"/Spheres/sphere_{i}"))
        prim.GetPrim().SetDisplayName(name)
        prim.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.asarray(mesh.vertices, np.float32)))
        prim.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(mesh.faces), 3, np.int32)))
        prim.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.asarray(mesh.faces, np.int32).ravel()))
        outward = mesh.vertices - mesh.bounds.mean(axis=0)  # a sphere's normals, without trimesh's scipy path
        normals = outward / np.linalg.norm(outward, axis=1, keepdims=True)
        prim.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(normals.astype(np.float32)))
        prim.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
        rgb = np.asarray(mesh.visual.material.baseColorFactor[:3], np.float64) / 255
        prim.CreateDisplayColorAttr([Gf.Vec3f(*rgb)])
    stage.GetRootLayer().Save()


def terrain(points: int) -> tuple[np.ndarray, np.ndarray]:
    """``points`` positions on a 200 x 200 m wavy terrain and their 8-bit colours."""
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 200, points), rng.uniform(0, 200, points)
    z = 4 * np.sin(x / 15) * np.cos(y / 21)
    colours = np.stack([x / 200 * 255, y / 200 * 255, np.full(points, 120.0)], axis=1).astype(np.uint8)
    return np.stack([x, y, z], axis=1), colours


def write_e57(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    import pye57

    with pye57.E57(str(path), mode="w") as e57:
        e57.write_scan_raw(
            {
                "cartesianX": xyz[:, 0],
                "cartesianY": xyz[:, 1],
                "cartesianZ": xyz[:, 2],
                "colorRed": rgb[:, 0],
                "colorGreen": rgb[:, 1],
                "colorBlue": rgb[:, 2],
            }
        )


def write_las(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    import laspy

    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = [0.001, 0.001, 0.001]
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.red, las.green, las.blue = (rgb[:, k].astype(np.uint16) * 257 for k in range(3))
    las.write(str(path))  # .laz compressed by lazrs


def write_xyz(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    np.savetxt(path, np.hstack([xyz, rgb]), fmt=["%.3f"] * 3 + ["%d"] * 3)


def writer(name: str, folder: Path, points: int) -> tuple[Path, Callable[[], None], str] | None:
    """Where format ``name``'s file goes, what writes it, and what the model is; None to skip it."""
    path = folder / f"model.{'usdc' if name == 'usd' else name}"
    if name in ("glb", "obj", "ply", "fbx", "usd"):
        scene = spheres()
        what = f"{SPHERES} icospheres of {80 * 4 ** (SUBDIVISIONS - 1):,} triangles, a colour each"
        if name == "ply":
            mesh = trimesh.util.concatenate(list(scene.dump()))
            return path, functools.partial(mesh.export, str(path)), what + ", one binary mesh"
        if name == "usd":
            return path, functools.partial(write_usd, path, scene), what
        if name == "fbx":
            tool = shutil.which("assimp")
            if tool is None:
                print("fbx: skipped, no `assimp` tool (apt install assimp-utils)", flush=True)
                return None
            glb = folder / "for-fbx.glb"

            def fbx() -> None:
                scene.export(glb)
                subprocess.run(
                    [tool, "export", str(glb), str(path), "-ffbxa"], check=True, capture_output=True
                )

            return (
                path,
                fbx,
                what + ", GLB exported to ASCII FBX by assimp (5.2 does not read its own binary FBX back)",
            )
        return path, functools.partial(scene.export, path), what
    if name == "step":
        boxes = 1_000_000 // _PER_BOX
        return path, lambda: quiet(functools.partial(write_step, path, boxes)), f"{boxes} filleted boxes, mm"
    if name == "ifc":
        products = 1_000_000 // _PER_SPHERE
        return (
            path,
            functools.partial(write_ifc, path, products),
            f"{products} IfcBuildingElementProxy spheres",
        )
    xyz, rgb = terrain(points)
    write = {"e57": write_e57, "las": write_las, "laz": write_las, "xyz": write_xyz}[name]
    return path, functools.partial(write, path, xyz, rgb), f"{points:,} coloured terrain points"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--formats", default=",".join(MESH_FORMATS + POINT_FORMATS))
    parser.add_argument("--points", type=int, default=1_000_000, help="points of the point-cloud formats")
    args = parser.parse_args()
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.formats.split(","):
            if name not in MESH_FORMATS + POINT_FORMATS:
                parser.error(f"unknown format {name!r}")
            planned = writer(name, folder, args.points)
            if planned is None:
                continue
            source, write, what = planned
            began = time.perf_counter()
            write()
            written = time.perf_counter() - began
            row = run(source, folder / f"out-{name}")
            row.update(
                model=what, file_mib=round(source.stat().st_size / 2**20, 1), generate_s=round(written, 1)
            )
            rows[name] = row
            print(name, json.dumps(row), flush=True)
            source.unlink()
    print(f"results: {write_result('convert_formats', {'points': args.points, 'formats': rows})}")


if __name__ == "__main__":
    main()
