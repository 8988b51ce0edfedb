"""Skies (ARR's ``SkyReflectionSettings``): the panoramas that are a scene's background and light it.

Apart from the renderer, which uploads, prefilters and draws a sky: this builds ``Sky`` values from the
builtin names (generated here with numpy, nothing downloaded) and from the images a client loads.

Conventions, shared with the renderer:

* A ``Sky``'s ``image`` is an equirectangular panorama, float32 ``(H, W, 3)`` linear RGB with ``W == 2*H``.
  Row 0 looks straight up (+Y), the last row straight down. Column ``u`` (0..1 across the image) is the
  longitude ``phi = (u - 0.5) * 2*pi`` and a pixel's direction is
  ``(sin(theta) sin(phi), cos(theta), -sin(theta) cos(phi))`` with ``theta`` the angle from +Y: the centre
  column looks along -Z (where a default camera looks), a quarter to the right looks along +X.
* Cube maps follow OpenGL's cube-map convention (the GL specification's face selection table): the face
  of a direction is its major axis; on that face, with ``ma`` the major component,
  +X: (s, t) = (-z, -y) / |ma|, -X: (z, -y), +Y: (x, z), -Y: (x, -z), +Z: (x, -y), -Z: (-x, -y), mapped
  from -1..1 to 0..1, ``s`` along image columns and ``t`` along image rows (row 0 first, as images load).
  So faces saved by the usual tools (the ones a GL program uploads unchanged) come out upright.
* A horizontal cross (4:3) holds the faces at (column, row) +Y (1, 0), -X (0, 1), +Z (1, 1), +X (2, 1),
  -Z (3, 1), -Y (1, 2); a strip (6:1) holds +X, -X, +Y, -Y, +Z, -Z from left to right.
* Client images are sRGB uint8 (H, W, 3 or 4; alpha is ignored) and are decoded to linear.

``builtin_sky("default")`` is the look a scene has without a sky (the renderer's gradient background and
hemisphere ambient light); ``is_default_sky`` tells it apart. Its image is that look's colours, for any
other reader.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
Image = NDArray[np.uint8]

MAX_SKY_WIDTH = 2048  # panoramas are resampled to at most 2048 x 1024
MAX_INPUT_SIDE = 16384  # larger images are refused before any work
BUILTIN_WIDTH = 1024
BUILTIN_SKIES: tuple[str, ...] = ("default", "studio", "sunset", "overcast", "night", "desert")
DEFAULT_SKY = "default"
CUBE_FACES = ("+X", "-X", "+Y", "-Y", "+Z", "-Z")


@dataclass(frozen=True, eq=False)
class Sky:
    """A named equirectangular panorama: float32 (H, W, 3) linear RGB, W == 2*H (see the module doc).

    Compared by identity: renderers cache their prefiltered copies per ``Sky``."""

    name: str
    image: F32

    def __post_init__(self) -> None:
        image = self.image
        if image.dtype != np.float32 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("a sky image is float32 (H, W, 3)")
        if image.shape[1] != 2 * image.shape[0] or image.shape[0] < 1:
            raise ValueError(f"a sky image is twice as wide as high, got {image.shape[1]}x{image.shape[0]}")
        image.flags.writeable = False

    def radiance(self, direction: Sequence[float]) -> F32:
        """The sky's linear RGB seen along ``direction`` (nearest pixel)."""
        height, width = self.image.shape[:2]
        u, v = direction_to_uv(np.asarray(direction, dtype=np.float64).reshape(1, 3))
        col = int(u[0] * width) % width
        row = min(int(v[0] * height), height - 1)
        pixel: F32 = self.image[row, col].copy()
        return pixel


def panorama_directions(height: int, width: int) -> F64:
    """The unit direction (H, W, 3) of each pixel centre of an equirectangular image."""
    theta = (np.arange(height) + 0.5) / height * math.pi
    phi = ((np.arange(width) + 0.5) / width - 0.5) * 2 * math.pi
    sin_t = np.sin(theta)[:, None]
    directions: F64 = np.stack(
        np.broadcast_arrays(
            sin_t * np.sin(phi)[None, :], np.cos(theta)[:, None], -sin_t * np.cos(phi)[None, :]
        ),
        axis=-1,
    )
    return directions


def direction_to_uv(directions: F64) -> tuple[F64, F64]:
    """Equirectangular (u, v) in 0..1 of unit directions (..., 3); the inverse of ``panorama_directions``."""
    x, y, z = directions[..., 0], directions[..., 1], directions[..., 2]
    u: F64 = np.arctan2(x, -z) / (2 * math.pi) + 0.5
    v: F64 = np.arccos(np.clip(y, -1.0, 1.0)) / math.pi
    return u, v


# -- builtin skies ---------------------------------------------------------------------------------------

_BUILTINS: dict[str, Sky] = {}


def builtin_sky(name: str) -> Sky:
    """The builtin sky ``name`` (one of ``BUILTIN_SKIES``), generated on first use and cached.
    Raises KeyError for another name."""
    if name not in BUILTIN_SKIES:
        raise KeyError(f"no builtin sky named {name!r}; there are {', '.join(BUILTIN_SKIES)}")
    if name not in _BUILTINS:
        directions = panorama_directions(BUILTIN_WIDTH // 2, BUILTIN_WIDTH)
        image = _GENERATORS[name](directions)
        _BUILTINS[name] = Sky(name, np.ascontiguousarray(np.clip(image, 0.0, 64.0), dtype=np.float32))
    return _BUILTINS[name]


def is_default_sky(sky: Sky | None) -> bool:
    """Whether ``sky`` is no sky or the builtin default: the renderer's classic look."""
    return sky is None or sky is _BUILTINS.get(DEFAULT_SKY)


def _rgb(*values: float) -> F64:
    return np.array(values, dtype=np.float64)


def _gradient(d: F64, zenith: F64, horizon: F64, ground_horizon: F64, ground: F64) -> F64:
    """Sky from the horizon up, ground from the horizon down, each blended by the root of the height."""
    y = d[..., 1:2]
    up = np.sqrt(np.clip(y, 0.0, 1.0))
    down = np.sqrt(np.clip(-y, 0.0, 1.0))
    sky = horizon + (zenith - horizon) * up
    below = ground_horizon + (ground - ground_horizon) * down
    result: F64 = np.where(y >= 0, sky, below)
    return result


def _sun(d: F64, towards: Sequence[float], color: F64, radius_deg: float, glow: float) -> F64:
    """A disc of ``radius_deg`` with a soft glow of width ``glow`` (in 1 - cos units) around it."""
    axis = np.asarray(towards, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    cos = d @ axis
    # The disc's edge is softened over about two panorama pixels (0.35 degrees each at 1024 wide): a
    # hard edge sampled that coarsely shows on screen as a ragged blob.
    angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    disc = np.clip((radius_deg + 0.4 - angle) / 0.8, 0.0, 1.0)
    halo = np.exp((cos - 1.0) / glow) * 0.05
    light: F64 = (disc + halo)[..., None] * color
    return light


def _default(d: F64) -> F64:
    # The classic look's hemisphere colours (openrr.render.shaders.Hemisphere).
    return _gradient(
        d, _rgb(0.32, 0.34, 0.38), _rgb(0.22, 0.225, 0.24), _rgb(0.17, 0.16, 0.15), _rgb(0.12, 0.11, 0.10)
    )


def _studio(d: F64) -> F64:
    base = _gradient(
        d, _rgb(0.55, 0.55, 0.55), _rgb(0.35, 0.35, 0.36), _rgb(0.2, 0.2, 0.2), _rgb(0.12, 0.12, 0.12)
    )
    # Three soft boxes: key, fill and a top light.
    for towards, strength in (((0.7, 0.5, 0.5), 4.0), ((-0.8, 0.3, 0.4), 1.5), ((0.0, 1.0, 0.1), 2.5)):
        axis = np.asarray(towards) / np.linalg.norm(towards)
        base = base + strength * np.exp((d @ axis - 1.0) / 0.02)[..., None] * _rgb(1.0, 0.98, 0.95)
    return base


def _sunset(d: F64) -> F64:
    sky = _gradient(
        d, _rgb(0.12, 0.14, 0.35), _rgb(0.95, 0.42, 0.12), _rgb(0.25, 0.12, 0.08), _rgb(0.06, 0.04, 0.04)
    )
    return sky + _sun(d, (0.0, 0.05, -1.0), _rgb(30.0, 14.0, 5.0), 1.5, 0.03)


def _overcast(d: F64) -> F64:
    return _gradient(
        d, _rgb(0.75, 0.77, 0.8), _rgb(0.6, 0.62, 0.64), _rgb(0.3, 0.3, 0.29), _rgb(0.2, 0.2, 0.19)
    )


def _night(d: F64) -> F64:
    sky = _gradient(
        d,
        _rgb(0.004, 0.006, 0.02),
        _rgb(0.02, 0.03, 0.06),
        _rgb(0.01, 0.01, 0.015),
        _rgb(0.004, 0.004, 0.006),
    )
    rng = np.random.default_rng(1414)  # fixed: the same stars every time
    stars = (rng.random(d.shape[:2]) > 0.997) & (d[..., 1] > 0.05)
    sky = sky + stars[..., None] * rng.uniform(0.3, 1.0, d.shape[:2])[..., None] * _rgb(0.9, 0.9, 1.0)
    return sky + _sun(d, (-0.4, 0.5, -0.6), _rgb(3.0, 3.0, 3.2), 1.2, 0.005)


def _desert(d: F64) -> F64:
    sky = _gradient(
        d, _rgb(0.1, 0.3, 0.75), _rgb(0.55, 0.65, 0.8), _rgb(0.6, 0.45, 0.28), _rgb(0.45, 0.32, 0.18)
    )
    return sky + _sun(d, (0.3, 0.8, -0.4), _rgb(60.0, 55.0, 45.0), 1.0, 0.05)


_GENERATORS: dict[str, Callable[[F64], F64]] = {
    "default": _default,
    "studio": _studio,
    "sunset": _sunset,
    "overcast": _overcast,
    "night": _night,
    "desert": _desert,
}


# -- skies from images -----------------------------------------------------------------------------------

_SRGB_TO_LINEAR = np.array(
    [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in np.arange(256) / 255.0],
    dtype=np.float32,
)
_CROSS = {"+Y": (1, 0), "-X": (0, 1), "+Z": (1, 1), "+X": (2, 1), "-Z": (3, 1), "-Y": (1, 2)}


def _linear(rgba: Image, what: str) -> F32:
    """An sRGB uint8 (H, W, 3|4) image as linear float32 (H, W, 3); ValueError for anything else."""
    linear: F32 = _SRGB_TO_LINEAR[_checked(rgba, what)[..., :3]]
    return linear


def _checked(rgba: Image, what: str) -> Image:
    """``rgba`` if it is an sRGB uint8 (H, W, 3|4) image of a bounded size; ValueError else."""
    if not isinstance(rgba, np.ndarray) or rgba.dtype != np.uint8:
        raise ValueError(f"{what} must be a uint8 image")
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4) or min(rgba.shape[:2]) < 1:
        raise ValueError(f"{what} must have shape (height, width, 3 or 4), got {rgba.shape}")
    if max(rgba.shape[:2]) > MAX_INPUT_SIDE:
        raise ValueError(f"{what} is {rgba.shape[1]}x{rgba.shape[0]}, more than {MAX_INPUT_SIDE} on a side")
    return rgba


def sky_from_image(name: str, rgba: Image) -> Sky:
    """A sky from one sRGB image: an equirectangular panorama (2:1), a cube map as a horizontal cross (4:3,
    layout in the module doc) or a strip (6:1, +X -X +Y -Y +Z -Z). Panoramas are resampled to at most
    ``MAX_SKY_WIDTH`` wide. Raises ValueError for other shapes."""
    height, width = (rgba.shape[:2]) if isinstance(rgba, np.ndarray) and rgba.ndim >= 2 else (0, 0)
    if width == 2 * height and height > 0:
        # Thinned to at most twice the final width before decoding, so that a large image never
        # becomes a float copy of its full size; then averaged down.
        step = -(-width // (2 * MAX_SKY_WIDTH))
        thinned = _checked(rgba, "a sky panorama")[::step, ::step]
        rows = min(thinned.shape[0], thinned.shape[1] // 2)
        return Sky(name, _fit(_linear(thinned[:rows, : 2 * rows], "a sky panorama")))
    if width * 3 == height * 4 and width % 4 == 0 and width > 0:
        size = width // 4
        cross = _checked(rgba, "a sky cross")
        faces = [
            cross[r * size : (r + 1) * size, c * size : (c + 1) * size]
            for c, r in (_CROSS[label] for label in CUBE_FACES)
        ]
        return Sky(name, _cube_to_panorama(faces))
    if width == 6 * height and height > 0:
        strip = _checked(rgba, "a sky strip")
        return Sky(name, _cube_to_panorama([strip[:, i * height : (i + 1) * height] for i in range(6)]))
    raise ValueError(
        f"a sky image must be an equirectangular panorama (2:1), a horizontal cross (4:3) or a strip (6:1) "
        f"of cube faces, got {width}x{height}"
    )


def sky_from_faces(name: str, faces: Sequence[Image]) -> Sky:
    """A sky from six square sRGB cube faces of one size, in the order +X, -X, +Y, -Y, +Z, -Z (OpenGL's
    orientation, see the module doc). Raises ValueError for another count, shape or size."""
    if len(faces) != 6:
        raise ValueError(f"a cube map has 6 faces (+X, -X, +Y, -Y, +Z, -Z), got {len(faces)}")
    checked = [_checked(face, f"cube face {label}") for face, label in zip(faces, CUBE_FACES, strict=True)]
    shapes = {face.shape[:2] for face in checked}
    if len(shapes) != 1 or checked[0].shape[0] != checked[0].shape[1]:
        raise ValueError(f"cube faces must be square and of one size, got {sorted(shapes)}")
    return Sky(name, _cube_to_panorama(checked))


def _fit(image: F32) -> F32:
    """``image`` box-averaged down until it is at most ``MAX_SKY_WIDTH`` wide."""
    while image.shape[1] > MAX_SKY_WIDTH and image.shape[0] % 2 == 0 and image.shape[1] % 2 == 0:
        image = 0.25 * (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2])
    if image.shape[1] > MAX_SKY_WIDTH:  # odd sizes: nearest pixels
        height = MAX_SKY_WIDTH // 2
        rows = (np.arange(height) + 0.5) * image.shape[0] // height
        cols = (np.arange(MAX_SKY_WIDTH) + 0.5) * image.shape[1] // MAX_SKY_WIDTH
        image = image[rows.astype(int)][:, cols.astype(int)]
    return np.ascontiguousarray(image, dtype=np.float32)


def _cube_to_panorama(faces: Sequence[Image]) -> F32:
    """Six sRGB faces (+X, -X, +Y, -Y, +Z, -Z) resampled (nearest) into a linear panorama four faces wide
    (at most ``MAX_SKY_WIDTH``); only the pixels picked are decoded."""
    size = faces[0].shape[0]
    width = min(max(4 * size, 8), MAX_SKY_WIDTH)
    d = panorama_directions(width // 2, width)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    ax, ay, az = np.abs(x), np.abs(y), np.abs(z)
    major = np.where(
        (ax >= ay) & (ax >= az),
        np.where(x > 0, 0, 1),
        np.where(ay >= az, np.where(y > 0, 2, 3), np.where(z > 0, 4, 5)),
    )
    ma = np.maximum(np.maximum(ax, ay), az)
    # (sc, tc) per face, OpenGL's table; face by face, so that only each face's pixels are touched.
    table = ((-z, -y), (z, -y), (x, z), (x, -z), (x, -y), (-x, -y))
    picked = np.empty((*major.shape, 3), np.uint8)
    for face, (sc, tc) in enumerate(table):
        where = major == face
        scale = 0.5 * size / ma[where]
        col = np.clip(((sc[where] * scale) + 0.5 * size).astype(np.int64), 0, size - 1)
        row = np.clip(((tc[where] * scale) + 0.5 * size).astype(np.int64), 0, size - 1)
        picked[where] = faces[face][row, col, :3]
    panorama: F32 = np.ascontiguousarray(_SRGB_TO_LINEAR[picked])
    return panorama
