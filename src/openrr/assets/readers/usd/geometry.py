"""A ``UsdGeomMesh`` as indexed triangles: polygons fanned, holes left out, a left-handed mesh's winding
turned, and its primvars (normals, texture coordinates, ``displayColor``/``displayOpacity``) gathered per
vertex whatever their interpolation.

USD keeps a value per point (``vertex``, ``varying``), per face (``uniform``), per face corner
(``faceVarying``) or one for all (``constant``); openrr draws one value per vertex. Where any primvar is per
face or per corner the mesh is un-welded: each face corner becomes a vertex of its own. All of it is numpy
over whole arrays, so a mesh of millions of faces costs a few array passes. Every count is checked against
the others before an index is followed: bad data is ``MeshError``, which the walk turns into a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.assets.readers.usd.pxr_modules import UsdGeom

MAX_POINTS = 1 << 28  # one mesh: points, and face corners (faceVertexIndices)
MAX_CORNERS = 1 << 29

I64 = NDArray[np.int64]
F32 = NDArray[np.float32]


class MeshError(ValueError):
    """The mesh's arrays contradict each other (the message says how)."""


@dataclass
class Triangles:
    """A mesh's triangles over its own vertices. ``face``: the USD face each triangle came from (for
    ``GeomSubset``s); attributes are per vertex or None; ``colors`` linear RGBA."""

    positions: F32
    indices: I64
    face: I64
    normals: F32 | None = None
    uvs: F32 | None = None
    colors: F32 | None = None
    constant_color: tuple[float, float, float, float] | None = None  # displayColor for the whole mesh
    warnings: list[str] = field(default_factory=list)


def triangulate(mesh: Any, uv_name: str | None) -> Triangles | None:
    """The triangles of ``mesh`` (a ``UsdGeom.Mesh``) at the default time, texture coordinates from the
    primvar ``uv_name`` (else ``st``, else the first texture-coordinate primvar); None when it has no
    face of three corners or more. ``MeshError`` for arrays that contradict each other."""
    points = _array(mesh.GetPointsAttr().Get(), np.float32, 3)
    counts = _array(mesh.GetFaceVertexCountsAttr().Get(), np.int64, 1).reshape(-1)
    corners = _array(mesh.GetFaceVertexIndicesAttr().Get(), np.int64, 1).reshape(-1)
    if len(points) > MAX_POINTS or len(corners) > MAX_CORNERS:
        raise MeshError(f"{len(points)} points and {len(corners)} face corners: more than openrr takes")
    if (counts < 0).any() or int(counts.sum()) != len(corners):
        raise MeshError(f"faceVertexCounts add up to {int(counts.sum())}, not {len(corners)} corners")
    if len(corners) and (corners.min() < 0 or corners.max() >= len(points)):
        raise MeshError(f"a face vertex index is outside the {len(points)} points")
    if not np.isfinite(points).all():
        raise MeshError("the points are not all finite")
    holes = _array(mesh.GetHoleIndicesAttr().Get(), np.int64, 1).reshape(-1)
    tri_corners, tri_face = _fan(counts, holes)
    if len(tri_face) == 0:
        return None
    if str(mesh.GetOrientationAttr().Get()) == "leftHanded":
        tri_corners = tri_corners[:, [0, 2, 1]]
    shape = _Shape(len(points), counts, corners)
    primvars = _primvars(mesh, uv_name, shape)
    colors = primvars.found.get("colors")
    constant = None
    if colors is not None and colors.interpolation == "constant":  # a material colour, not per vertex
        r, g, b, a = (float(c) for c in colors.values[0])
        constant = (r, g, b, a)
        del primvars.found["colors"]
    out = Triangles(
        points, corners[tri_corners], tri_face, constant_color=constant, warnings=primvars.warnings
    )
    if primvars.per_corner():  # un-weld: one vertex per face corner
        keep, out.indices = compact(tri_corners, len(corners))
        out.positions = points[corners[keep]]
        out.normals, out.uvs, out.colors = (primvars.per_corner_values(k, keep) for k in primvars.NAMES)
    else:
        out.normals, out.uvs, out.colors = (primvars.per_point_values(k) for k in primvars.NAMES)
    if out.uvs is not None:
        out.uvs = np.column_stack([out.uvs[:, 0], 1.0 - out.uvs[:, 1]]).astype(np.float32)  # glTF: top-left
    return out


def compact(indices: I64, count: int) -> tuple[I64, I64]:
    """The vertices ``indices`` use (of ``count``), in order, and ``indices`` renumbered over them: linear
    time (``np.unique`` sorts or hashes, many times slower on millions of indices)."""
    used = np.flatnonzero(np.bincount(indices.reshape(-1), minlength=count))
    if len(used) == count:  # every vertex used (the usual case): nothing to renumber
        return used, indices
    remap = np.zeros(count, dtype=np.int64)
    remap[used] = np.arange(len(used), dtype=np.int64)
    return used, remap[indices]


def _array(value: Any, dtype: type, width: int) -> NDArray[Any]:
    if value is None:
        return np.zeros((0, width) if width > 1 else 0, dtype=dtype)
    array: NDArray[Any] = np.asarray(value, dtype=dtype)
    if width > 1 and (array.ndim != 2 or array.shape[1] != width):
        raise MeshError(f"expected {width} values per element, got shape {array.shape}")
    return array


def _fan(counts: I64, holes: I64) -> tuple[I64, I64]:
    """Each face of 3+ corners (not a hole) as a fan: (triangle corner indices (T, 3), face of each)."""
    starts = np.cumsum(counts) - counts
    faces = np.flatnonzero(counts >= 3)
    if len(holes):
        faces = faces[~np.isin(faces, holes)]
    fans = counts[faces] - 2
    tri_face = np.repeat(faces, fans)
    first = np.repeat(np.cumsum(fans) - fans, fans)
    k = np.arange(len(tri_face), dtype=np.int64) - first  # 0.. within each face
    base = starts[tri_face]
    return np.stack([base, base + k + 1, base + k + 2], axis=1), tri_face


@dataclass
class _Shape:
    points: int
    counts: I64
    corners: I64

    def face_of_corner(self) -> I64:
        return np.repeat(np.arange(len(self.counts), dtype=np.int64), self.counts)


@dataclass
class _Primvar:
    values: F32
    interpolation: str


@dataclass
class _Primvars:
    """The primvars openrr draws, each with its values and interpolation."""

    NAMES = ("normals", "uvs", "colors")
    shape: _Shape
    found: dict[str, _Primvar] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def per_corner(self) -> bool:
        return any(p.interpolation in ("faceVarying", "uniform") for p in self.found.values())

    def per_point_values(self, name: str) -> F32 | None:
        primvar = self.found.get(name)
        if primvar is None:
            return None
        if primvar.interpolation == "constant":
            return np.repeat(primvar.values[:1], self.shape.points, axis=0)
        return primvar.values  # vertex or varying: one per point

    def per_corner_values(self, name: str, keep: I64) -> F32 | None:
        primvar = self.found.get(name)
        if primvar is None:
            return None
        if primvar.interpolation == "constant":
            return np.repeat(primvar.values[:1], len(keep), axis=0)
        if primvar.interpolation == "faceVarying":
            return primvar.values[keep]
        if primvar.interpolation == "uniform":
            return primvar.values[self.shape.face_of_corner()[keep]]
        return primvar.values[self.shape.corners[keep]]

    def add_checked(self, name: str, value: Any, interpolation: str, width: int) -> None:
        """Keep a primvar whose length fits its interpolation; warn of (and drop) one that does not."""
        if value is None:
            return
        try:
            values = np.asarray(value, dtype=np.float32).reshape(-1, width)
        except ValueError:
            self.warnings.append(f"{name}: values of an unexpected shape, ignored")
            return
        interpolation = str(interpolation)
        wanted = {
            "constant": 1,
            "uniform": len(self.shape.counts),
            "vertex": self.shape.points,
            "varying": self.shape.points,
            "faceVarying": len(self.shape.corners),
        }.get(interpolation)
        if wanted is None or len(values) < wanted or (interpolation != "constant" and len(values) != wanted):
            self.warnings.append(f"{name}: {len(values)} {interpolation} values do not fit the mesh, ignored")
            return
        if not np.isfinite(values).all():
            self.warnings.append(f"{name}: values that are not finite, ignored")
            return
        self.found[name] = _Primvar(values, interpolation)


def _primvars(mesh: Any, uv_name: str | None, shape: _Shape) -> _Primvars:
    found = _Primvars(shape)
    api = UsdGeom.PrimvarsAPI(mesh)
    normals = api.GetPrimvar("normals")
    if normals and normals.HasAuthoredValue():
        found.add_checked("normals", normals.ComputeFlattened(), normals.GetInterpolation(), 3)
    elif mesh.GetNormalsAttr().HasAuthoredValue():
        found.add_checked("normals", mesh.GetNormalsAttr().Get(), mesh.GetNormalsInterpolation(), 3)
    uvs = _uv_primvar(api, uv_name)
    if uvs is not None:
        found.add_checked("uvs", uvs.ComputeFlattened(), uvs.GetInterpolation(), 2)
    _colors(api, found)
    return found


def _uv_primvar(api: Any, name: str | None) -> Any:
    for candidate in (name, "st", "uv", "st0", "UVMap"):
        if candidate:
            primvar = api.GetPrimvar(candidate)
            if primvar and primvar.HasAuthoredValue():
                return primvar
    for primvar in api.GetPrimvarsWithAuthoredValues():
        if str(primvar.GetTypeName().role) == "TextureCoordinate":
            return primvar
    return None


def _colors(api: Any, found: _Primvars) -> None:
    """``displayColor`` with ``displayOpacity`` as linear RGBA, when either says more than white."""
    color, opacity = api.GetPrimvar("displayColor"), api.GetPrimvar("displayOpacity")
    if not (color and color.HasAuthoredValue()):
        return
    found.add_checked("colors", color.ComputeFlattened(), color.GetInterpolation(), 3)
    rgb = found.found.get("colors")
    if rgb is None:
        return
    alpha = np.ones((len(rgb.values), 1), np.float32)
    if opacity and opacity.HasAuthoredValue() and opacity.GetInterpolation() == rgb.interpolation:
        values = np.asarray(opacity.ComputeFlattened(), dtype=np.float32).reshape(-1, 1)
        if len(values) == len(alpha) and np.isfinite(values).all():
            alpha = values
    rgb.values = np.clip(np.concatenate([rgb.values, alpha], axis=1), 0.0, 1.0)
