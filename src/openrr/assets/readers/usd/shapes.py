"""USD's implicit shapes (``Cube``, ``Sphere``, ``Cylinder``, ``Cone``, ``Capsule``, ``Plane``) as
triangles.

Robotics and CAD stages draw much of their geometry with these: each is tessellated here by trimesh's
primitives at its authored size (a cube's ``size``, a sphere's ``radius``, the others' ``radius``,
``height`` and ``axis``; a plane's ``width``, ``length`` and ``axis``, its normal), with smooth normals,
and takes its ``displayColor`` like a mesh. Apart from ``geometry`` because these have no arrays to
check: only a few numbers, each bounded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import trimesh

from openrr.assets.readers.usd.geometry import MeshError, Triangles
from openrr.assets.readers.usd.pxr_modules import UsdGeom

SHAPES = ("Cube", "Sphere", "Cylinder", "Cone", "Capsule", "Plane")
_SECTIONS = 32  # segments around a round shape
_TO_AXIS = {  # trimesh builds along Z; USD's axis attribute says which axis the shape runs along
    "X": trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]),
    "Y": trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]),
    "Z": np.eye(4),
}


def tessellate(prim: Any) -> Triangles:
    """The shape ``prim`` (one of ``SHAPES``) as triangles; ``MeshError`` for a size that is not a finite
    positive number."""
    kind = str(prim.GetTypeName())
    if kind == "Cube":
        size = _size(UsdGeom.Cube(prim).GetSizeAttr().Get(), "size")
        shape = trimesh.creation.box(extents=(size, size, size))
    elif kind == "Plane":
        plane = UsdGeom.Plane(prim)
        width = _size(plane.GetWidthAttr().Get(), "width")
        length = _size(plane.GetLengthAttr().Get(), "length")
        shape = trimesh.Trimesh(
            vertices=[
                (-width / 2, -length / 2, 0),
                (width / 2, -length / 2, 0),
                (width / 2, length / 2, 0),
                (-width / 2, length / 2, 0),
            ],
            faces=[(0, 1, 2), (0, 2, 3)],
            process=False,
        )
        shape.apply_transform(_TO_AXIS.get(str(plane.GetAxisAttr().Get()), np.eye(4)))
    elif kind == "Sphere":
        radius = _size(UsdGeom.Sphere(prim).GetRadiusAttr().Get(), "radius")
        shape = trimesh.creation.uv_sphere(radius=radius, count=(_SECTIONS // 2, _SECTIONS))
    else:
        schema = getattr(UsdGeom, kind)(prim)
        radius = _size(schema.GetRadiusAttr().Get(), "radius")
        height = _size(schema.GetHeightAttr().Get(), "height")
        shape = _round(kind, radius, height)
        if kind == "Cone":  # trimesh's cone stands on z = 0; USD's is centred on its origin
            shape.apply_translation((0, 0, -height / 2))
        shape.apply_transform(_TO_AXIS.get(str(schema.GetAxisAttr().Get()), np.eye(4)))
    faces = np.asarray(shape.faces, dtype=np.int64)
    colors = UsdGeom.PrimvarsAPI(prim).GetPrimvar("displayColor")
    constant = None
    if colors and colors.HasAuthoredValue():
        values = np.asarray(colors.ComputeFlattened(), dtype=np.float64).reshape(-1, 3)
        if len(values) and np.isfinite(values[0]).all():
            r, g, b = (float(min(max(c, 0.0), 1.0)) for c in values[0])
            constant = (r, g, b, 1.0)
    return Triangles(
        positions=np.asarray(shape.vertices, dtype=np.float32),
        indices=faces,
        face=np.arange(len(faces), dtype=np.int64),
        normals=np.asarray(shape.vertex_normals, dtype=np.float32),
        constant_color=constant,
    )


def _round(kind: str, radius: float, height: float) -> trimesh.Trimesh:
    shape: trimesh.Trimesh
    if kind == "Cylinder":
        shape = trimesh.creation.cylinder(radius=radius, height=height, sections=_SECTIONS)
    elif kind == "Cone":
        shape = trimesh.creation.cone(radius=radius, height=height, sections=_SECTIONS)
    else:
        shape = trimesh.creation.capsule(height=height, radius=radius, count=[_SECTIONS] * 2)
    return shape


def _size(value: Any, what: str) -> float:
    number = float(value) if value is not None else float("nan")
    if not np.isfinite(number) or number <= 0 or number > 1e12:
        raise MeshError(f"{what} {value} is not a positive finite size")
    return number
