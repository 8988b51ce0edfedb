"""The builtin models (``builtin://NAME``, named in ``openrr.protocol.builtin_models``), generated here
with numpy: deterministic, nothing downloaded, well under a second.

``builtin://sample`` is a small showroom that exercises what the renderer draws: machined parts made from
real geometry (a 24-tooth spur gear extruded from its outline, a turned flange, a torus), a rounded box
in painted plastic, a glass sphere (alpha blended), a vase with vertex colours, metals from polished to
rough, and a floor with a checker texture made in numpy; a hierarchy of named nodes carrying metadata.
About 100,000 triangles, so it orbits smoothly on a software renderer. Y is up (glTF's convention), metres.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.model.budget import Allowance, BudgetExceeded, usage
from openrr.model.errors import ModelLoadError
from openrr.model.mesh import Material, Mesh, Primitive
from openrr.model.scene import Scene
from openrr.protocol.builtin_models import BUILTIN_MODELS, SCHEME

F32 = NDArray[np.float32]
Geometry = tuple[F32, F32, NDArray[np.uint32]]  # positions, normals, triangles


def builtin_scene(url: str, allowance: Allowance | None = None) -> Scene:
    """The builtin model ``url`` names (``builtin://sample``); ``ModelLoadError`` for a name openrr does
    not have, or one over ``allowance``."""
    makers: dict[str, Callable[[], Scene]] = {f"{SCHEME}sample": sample_scene}
    name = url.lower()
    if name not in makers or name not in BUILTIN_MODELS:
        known = ", ".join(sorted(BUILTIN_MODELS))
        raise ModelLoadError(f"no builtin model {url[:100]!r}: openrr has {known}")
    scene = makers[name]()
    if allowance is not None:
        try:
            allowance.check(usage(scene), url)
        except BudgetExceeded as exc:
            raise ModelLoadError(exc.message) from None
    return scene


def sample_scene() -> Scene:
    """The sample showroom (see the module's docstring)."""
    scene = Scene("sample")
    root = scene.add_node("sample", transform=_place(0.0, 0.0, 0.0))
    root.metadata = {"description": BUILTIN_MODELS[f"{SCHEME}sample"], "generator": "openrr.model.builtin"}
    floor = scene.add_node("floor", parent=root.id, mesh=_floor())
    floor.metadata = {"kind": "floor", "texture": "procedural checker"}

    parts = scene.add_node("machined parts", parent=root.id, transform=_place(0.0, 0.0, -0.35))
    parts.metadata = {"kind": "group"}
    gear = scene.add_node("spur gear", parent=parts.id, mesh=_gear_mesh(), transform=_place(-0.55, 0.06, 0.0))
    gear.metadata = {"kind": "part", "teeth": GEAR_TEETH, "material": "steel"}
    flange = scene.add_node("flange", parent=parts.id, mesh=_flange_mesh(), transform=_place(0.1, 0.0, 0.05))
    flange.metadata = {"kind": "part", "process": "turned", "material": "brushed aluminium"}
    torus = scene.add_node("torus", parent=parts.id, mesh=_torus_mesh(), transform=_place(0.62, 0.23, -0.05))
    torus.metadata = {"kind": "part", "material": "polished copper"}

    showcase = scene.add_node("showcase", parent=root.id, transform=_place(0.0, 0.0, 0.4))
    showcase.metadata = {"kind": "group"}
    box = scene.add_node(
        "rounded box", parent=showcase.id, mesh=_box_mesh(), transform=_place(-0.5, 0.15, 0.0)
    )
    box.metadata = {"kind": "prop", "material": "painted plastic"}
    vase = scene.add_node("vase", parent=showcase.id, mesh=_vase_mesh(), transform=_place(0.05, 0.0, 0.05))
    vase.metadata = {"kind": "prop", "colours": "per vertex"}
    glass = scene.add_node(
        "glass sphere", parent=showcase.id, mesh=_glass_mesh(), transform=_place(0.55, 0.2, 0.0)
    )
    glass.metadata = {"kind": "prop", "material": "glass", "alpha": "blend"}
    return scene


def _place(x: float, y: float, z: float) -> NDArray[np.float64]:
    matrix = np.eye(4)
    matrix[:3, 3] = (x, y, z)
    return matrix


# -- materials -------------------------------------------------------------------------------------------


def _checker(size: int = 256, squares: int = 8) -> NDArray[np.uint8]:
    """A two-tone checker with thin darker grid lines, RGBA (sRGB values, as a file would hold)."""
    cells = (np.arange(size) * squares // size) % 2
    checker = cells[:, None] ^ cells[None, :]
    image = np.where(checker[..., None] == 1, [196, 200, 206, 255], [118, 124, 134, 255]).astype(np.uint8)
    line = (np.arange(size) % (size // squares)) < 2
    image[line, :, :3] = 70
    image[:, line, :3] = 70
    return image


STEEL = Material("steel", (0.62, 0.64, 0.66, 1.0), metallic_factor=1.0, roughness_factor=0.32)
ALUMINIUM = Material("brushed aluminium", (0.91, 0.92, 0.92, 1.0), metallic_factor=1.0, roughness_factor=0.55)
COPPER = Material("polished copper", (0.95, 0.64, 0.54, 1.0), metallic_factor=1.0, roughness_factor=0.15)
PLASTIC = Material("red plastic", (0.70, 0.06, 0.05, 1.0), metallic_factor=0.0, roughness_factor=0.45)
# Double-sided: the open vase shows its inside.
CERAMIC = Material(
    "glazed ceramic", (1.0, 1.0, 1.0, 1.0), metallic_factor=0.0, roughness_factor=0.25, double_sided=True
)
GLASS = Material(
    "glass", (0.55, 0.75, 0.95, 0.35), metallic_factor=0.0, roughness_factor=0.05, alpha_mode="BLEND"
)


# -- geometry --------------------------------------------------------------------------------------------


def _mesh(name: str, geometry: Geometry, material: Material, **extra: Any) -> Mesh:
    positions, normals, triangles = geometry
    return Mesh(name, (Primitive(positions, triangles, material, normals=normals, **extra),))


def _grid(rows: int, columns: int, wrap_columns: bool) -> NDArray[np.uint32]:
    """Two triangles per cell of a ``rows`` x ``columns`` vertex grid, wound so that their normal is
    (next row - this one) x (next column - this one)."""
    width = columns if wrap_columns else columns - 1
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(width), indexing="ij")
    a = r * columns + c
    b = r * columns + (c + 1) % columns
    d, e = a + columns, b + columns
    quads = np.stack([a, d, b, b, d, e], axis=-1).reshape(-1, 3)
    return quads.astype(np.uint32)


def _lathe(profile: NDArray[np.float64], segments: int) -> Geometry:
    """A surface of revolution about +y: ``profile`` (n, 2) holds (radius, height) from bottom to top;
    normals from the profile's slope (smooth round and along)."""
    tangent = np.gradient(profile, axis=0)
    normal2d = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    normal2d /= np.maximum(np.linalg.norm(normal2d, axis=1, keepdims=True), 1e-12)
    angles = np.linspace(0.0, 2.0 * math.pi, segments, endpoint=False)
    cos, sin = np.cos(angles)[None, :], np.sin(angles)[None, :]
    positions = np.stack(
        [profile[:, :1] * cos, np.repeat(profile[:, 1:2], segments, axis=1), profile[:, :1] * sin], axis=-1
    )
    normals = np.stack(
        [normal2d[:, :1] * cos, np.repeat(normal2d[:, 1:2], segments, axis=1), normal2d[:, :1] * sin], axis=-1
    )
    return (
        positions.reshape(-1, 3).astype(np.float32),
        normals.reshape(-1, 3).astype(np.float32),
        _grid(len(profile), segments, wrap_columns=True),
    )


def _joined(*parts: Geometry) -> Geometry:
    offsets = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] + np.uint32(o) for p, o in zip(parts, offsets, strict=True)]),
    )


def _floor() -> Mesh:
    half = 1.0
    positions = np.array([[-half, 0, half], [half, 0, half], [half, 0, -half], [-half, 0, -half]], np.float32)
    normals = np.tile(np.array([0, 1, 0], np.float32), (4, 1))
    uvs = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
    triangles = np.array([[0, 1, 2], [0, 2, 3]], np.uint32)
    floor = Material(
        "checker floor",
        base_color_texture=_checker(),
        metallic_factor=0.0,
        roughness_factor=0.8,
        uv_scale=(3, 3),
    )
    return _mesh("floor", (positions, normals, triangles), floor, uvs=uvs)


GEAR_TEETH = 24


def _gear_outline(samples_per_tooth: int = 32) -> NDArray[np.float64]:
    """The radius of a spur gear's outline at evenly spaced angles: root circle, flanks rising over a
    tenth of the pitch, a flat tip (a trapezoidal tooth, close enough to an involute at this size)."""
    count = GEAR_TEETH * samples_per_tooth
    phase = (np.arange(count) / samples_per_tooth) % 1.0
    rise = np.clip((0.5 - np.abs(phase - 0.5)) * 10.0 - 1.2, 0.0, 1.0)
    return 0.25 + 0.035 * rise


def _gear_mesh() -> Mesh:
    outer = _gear_outline()
    count = len(outer)
    angles = np.linspace(0.0, 2.0 * math.pi, count, endpoint=False)
    half, bore = 0.06, 0.07
    ring_out = np.stack([outer * np.cos(angles), outer * np.sin(angles)], axis=1)
    ring_in = np.stack([bore * np.cos(angles), bore * np.sin(angles)], axis=1)
    # Outline normals: perpendicular to the chord between the neighbours (smooth over each flank).
    chord = np.roll(ring_out, -1, axis=0) - np.roll(ring_out, 1, axis=0)
    out_normal = np.stack([chord[:, 1], -chord[:, 0]], axis=1)
    out_normal /= np.linalg.norm(out_normal, axis=1, keepdims=True)
    in_normal = -ring_in / bore

    def wall(ring: NDArray[np.float64], normal: NDArray[np.float64], outward: bool) -> Geometry:
        pos = np.concatenate([_lift(ring, -half), _lift(ring, half)])
        nrm = np.concatenate([_lift(normal, 0.0), _lift(normal, 0.0)])
        tris = _grid(2, count, wrap_columns=True)
        return pos, nrm, tris if outward else tris[:, ::-1].copy()

    def face(height: float) -> Geometry:
        pos = np.concatenate([_lift(ring_in, height), _lift(ring_out, height)])
        nrm = np.tile(np.array([0.0, math.copysign(1.0, height), 0.0], np.float32), (2 * count, 1))
        tris = _grid(2, count, wrap_columns=True)
        return pos, nrm, tris[:, ::-1].copy() if height > 0 else tris

    geometry = _joined(
        wall(ring_out, out_normal, True), wall(ring_in, in_normal, False), face(half), face(-half)
    )
    return _mesh("spur gear", geometry, STEEL)


def _lift(ring: NDArray[np.float64], height: float) -> F32:
    """Points (x, z) of a ring at ``height``."""
    return np.stack([ring[:, 0], np.full(len(ring), height), ring[:, 1]], axis=1).astype(np.float32)


def _flange_mesh() -> Mesh:
    # A turned flange: a thin disc, a chamfer up to a hub, a bore. Corners are doubled so they stay sharp.
    corners = [(0.0, 0.0), (0.3, 0.0), (0.3, 0.04), (0.14, 0.05), (0.12, 0.16), (0.07, 0.16), (0.07, 0.0)]
    pieces = []
    for (r0, y0), (r1, y1) in itertools.pairwise(corners):
        steps = np.linspace(0.0, 1.0, 6)[:, None]
        pieces.append(_lathe(np.array([r0, y0]) * (1 - steps) + np.array([r1, y1]) * steps, 160))
    return _mesh("flange", _joined(*pieces), ALUMINIUM)


def _torus_mesh(major: int = 256, minor: int = 96) -> Mesh:
    theta = np.linspace(0.0, 2.0 * math.pi, minor + 1)
    profile = np.stack([0.16 + 0.07 * np.cos(theta), 0.07 * np.sin(theta)], axis=1)
    positions, normals, triangles = _lathe(profile, major)
    # Stand it up like a ring on its edge: rotate a quarter turn about x.
    turn = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float32)
    return _mesh("torus", (positions @ turn.T, normals @ turn.T, triangles), COPPER)


def _box_mesh(cells: int = 32, radius: float = 0.3) -> Mesh:
    """A rounded box: each face of a cube subdivided, then pushed out onto a box with round edges."""
    u = np.linspace(-1.0, 1.0, cells + 1)
    a, b = (g.ravel() for g in np.meshgrid(u, u, indexing="ij"))
    ones = np.ones_like(a)
    # Each face as (normal, first tangent, second tangent) with first x second = normal: counter-clockwise
    # triangles seen from outside.
    faces = [
        np.stack([ones, a, b], axis=1),  # +x: y, z
        np.stack([-ones, b, a], axis=1),  # -x: z, y
        np.stack([b, ones, a], axis=1),  # +y: z, x
        np.stack([a, -ones, b], axis=1),  # -y: x, z
        np.stack([a, b, ones], axis=1),  # +z: x, y
        np.stack([b, a, -ones], axis=1),  # -z: y, x
    ]
    cube = np.concatenate(faces)
    inner = np.clip(cube, -(1.0 - radius), 1.0 - radius)
    direction = cube - inner
    normals = direction / np.linalg.norm(direction, axis=1, keepdims=True)
    positions = (inner + radius * normals) * np.array([0.15, 0.15, 0.15])
    grid = _grid(cells + 1, cells + 1, wrap_columns=False)
    step = (cells + 1) ** 2
    triangles = np.concatenate([grid + np.uint32(k * step) for k in range(6)])
    return _mesh(
        "rounded box", (positions.astype(np.float32), normals.astype(np.float32), triangles), PLASTIC
    )


def _vase_mesh(rows: int = 96, segments: int = 128) -> Mesh:
    height = np.linspace(0.0, 0.42, rows)
    radius = 0.1 + 0.06 * np.sin(height / 0.42 * 1.6 * math.pi + 0.4) + 0.025 * (height / 0.42)
    radius[0] = 0.0  # a closed bottom
    positions, normals, triangles = _lathe(np.stack([radius, height], axis=1), segments)
    # Vertex colours: a glaze running from deep blue at the foot to amber at the lip, in bands.
    t = (positions[:, 1] / 0.42)[:, None]
    band = 0.5 + 0.5 * np.cos(t * 18.0 * math.pi)
    colors = (1 - t) * np.array([0.05, 0.12, 0.5]) + t * np.array([0.9, 0.45, 0.05])
    colors = colors * (0.75 + 0.25 * band)
    return _mesh("vase", (positions, normals, triangles), CERAMIC, colors=colors.astype(np.float32))


def _glass_mesh(rows: int = 64, segments: int = 128) -> Mesh:
    theta = np.linspace(-math.pi / 2, math.pi / 2, rows)
    profile = np.stack([0.2 * np.cos(theta), 0.2 * np.sin(theta)], axis=1)
    return _mesh("glass sphere", _lathe(profile, segments), GLASS)
