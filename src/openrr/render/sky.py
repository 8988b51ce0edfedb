"""The GPU side of skies (``openrr.model.skies``): prefiltering, upload, the background pass and the
uniforms with which the mesh program lights a scene from the sky.

Apart from ``renderer.py``: this is everything a sky costs, paid once per sky on the CPU with numpy, so a
frame with a sky costs one fullscreen pass and a few fetches per shaded pixel (cheap on llvmpipe):

* diffuse light: the sky's irradiance as 9 spherical-harmonic coefficients (Ramamoorthi and Hanrahan,
  "An Efficient Representation for Irradiance Environment Maps", 2001), evaluated per pixel, no texture;
* reflections: one texture holding the panorama and a chain of ever blurrier half-size copies (box
  down-sampling followed by a [1 2 1] blur, wrapping around in longitude) as its mip levels; the mesh
  program reads along the reflected view vector at a level chosen by roughness;
* the background: the panorama (an 8-bit display-encoded copy) along each pixel's view direction
  (interpolated from the corners, see ``BACKGROUND_VERTEX``), drawn before the scene.

Without a sky (or with ``builtin://default``) none of this runs: the renderer draws its classic gradient
and the mesh program its hemisphere light.
"""

from __future__ import annotations

import math
from typing import Any

import moderngl
import numpy as np
from numpy.typing import NDArray

from openrr.model.skies import Sky, is_default_sky, panorama_directions

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

SKY_UNIT = 5  # the texture unit of the mesh program's ``u_env_tex`` (after the material textures)
BACKGROUND_UNIT = 6
SMALLEST_LEVEL = 8  # the blurriest level is 8 x 4: what a roughness of 1 reflects
_SH_SIZE = 64  # the panorama is averaged down to 64 x 32 for the harmonics
_CACHE_SIZE = 8

# A screen-covering triangle whose vertices carry the view direction: with the camera at the origin, the
# far-plane point of a perspective projection is linear in the screen position (its w is the same all
# over), so interpolating it is exact, and the per-pixel work is a normalize and one fetch (computing
# the direction per pixel from the inverse matrix cost about 3x the whole pass on llvmpipe).
BACKGROUND_VERTEX = """#version 330 core
uniform mat4 u_inv_view_proj;  // inverse of the view-projection without the camera's translation
out vec3 v_dir;
void main() {
    vec2 ndc = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2)) * 2.0 - 1.0;
    vec4 far = u_inv_view_proj * vec4(ndc, 1.0, 1.0);
    v_dir = far.xyz / far.w;
    gl_Position = vec4(ndc, 1.0, 1.0);
}
"""

BACKGROUND_FRAGMENT = """#version 330 core
const float PI = 3.14159265;
uniform sampler2D u_background_tex;  // the panorama in display values (8 bits: llvmpipe's fast path)
in vec3 v_dir;
out vec4 f_color;
void main() {
    vec3 d = normalize(v_dir);
    vec2 uv = vec2(atan(d.x, -d.z) * (0.5 / PI) + 0.5, acos(clamp(d.y, -1.0, 1.0)) / PI);
    f_color = vec4(textureLod(u_background_tex, uv, 0.0).rgb, 1.0);
}
"""


class Prefiltered:
    """What the GPU needs of a sky: its mip chain (level 0 first) and its irradiance harmonics."""

    def __init__(self, sky: Sky) -> None:
        self.sky = sky  # held, so that the cache's id() keys stay unique
        self.levels = mip_chain(sky.image)
        self.harmonics = irradiance_harmonics(sky.image)


_prefiltered: dict[int, Prefiltered] = {}


def prefiltered(sky: Sky) -> Prefiltered:
    """The prefiltered copy of ``sky`` (computed once; the last few skies are kept)."""
    found = _prefiltered.get(id(sky))
    if found is None:
        found = Prefiltered(sky)
        while len(_prefiltered) >= _CACHE_SIZE:
            _prefiltered.pop(next(iter(_prefiltered)))
        _prefiltered[id(sky)] = found
    return found


def mip_chain(image: F32) -> list[F32]:
    """``image`` and ever blurrier half-size copies down to ``SMALLEST_LEVEL`` wide (GL's level sizes)."""
    levels = [image]
    while levels[-1].shape[1] > SMALLEST_LEVEL and levels[-1].shape[0] > 1:
        levels.append(_blur(_half(levels[-1])))
    return levels


def _half(image: F32) -> F32:
    """The next GL mip level's size (each side halved, rounded down, at least 1), by averaging."""
    height, width = image.shape[:2]
    h, w = max(height // 2, 1), max(width // 2, 1)
    if height == 2 * h and width == 2 * w:
        picked = image  # even sides: plain strided views below, no gather
    else:
        rows = np.minimum(np.arange(h * 2) * height // (h * 2), height - 1)
        cols = np.minimum(np.arange(w * 2) * width // (w * 2), width - 1)
        picked = image[rows][:, cols]
    half: F32 = 0.25 * (picked[0::2, 0::2] + picked[1::2, 0::2] + picked[0::2, 1::2] + picked[1::2, 1::2])
    return half


def _blur(image: F32) -> F32:
    """[1 2 1] / 4 across (wrapping around: the panorama is a circle) and down (clamped at the poles)."""
    across = 0.25 * (np.roll(image, 1, axis=1) + 2 * image + np.roll(image, -1, axis=1))
    padded = np.concatenate([across[:1], across, across[-1:]])
    blurred: F32 = (0.25 * (padded[:-2] + 2 * padded[1:-1] + padded[2:])).astype(np.float32)
    return blurred


# Real spherical harmonics up to band 2 without their constants, and per coefficient the constant times
# the clamped-cosine convolution weight over pi (1, 2/3, 1/4 per band): the shader then needs only sums.
_SH_CONSTANTS = np.array(
    [0.282095, 0.488603, 0.488603, 0.488603, 1.092548, 1.092548, 0.315392, 1.092548, 0.546274]
)
_SH_BANDS = np.array([1.0, 2 / 3, 2 / 3, 2 / 3, 0.25, 0.25, 0.25, 0.25, 0.25])


def _sh_basis(d: F64) -> F64:
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    one = np.ones_like(x)
    basis: F64 = np.stack([one, y, z, x, x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y], axis=-1)
    return basis


def irradiance_harmonics(image: F32) -> F32:
    """(9, 3) coefficients c such that sum_i c_i * b_i(n) (``b``: the shader's basis, see
    ``_sh_basis``) is the cosine-weighted mean radiance around normal ``n`` (irradiance / pi)."""
    small = image
    while small.shape[1] > _SH_SIZE:
        small = _half(small)
    height, width = small.shape[:2]
    d = panorama_directions(height, width)
    theta = (np.arange(height) + 0.5) / height * math.pi
    solid_angle = (2 * math.pi / width) * (math.pi / height) * np.sin(theta)[:, None]  # (H, 1)
    basis = _sh_basis(d) * _SH_CONSTANTS  # (H, W, 9)
    radiance = np.einsum("hwk,hwc,h->kc", basis, small.astype(np.float64), solid_angle[:, 0])
    coefficients: F32 = (radiance * (_SH_CONSTANTS * _SH_BANDS)[:, None]).astype(np.float32)
    return coefficients


def evaluate_irradiance(coefficients: F32, normal: F64) -> F64:
    """The mesh shader's diffuse sky light for a unit ``normal`` (for tests and tools)."""
    value: F64 = np.maximum(_sh_basis(np.asarray(normal, dtype=np.float64)) @ coefficients, 0.0)
    return value


class SkyPass:
    """The current sky on the GPU: its texture, the background pass and the mesh program's uniforms."""

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        program: Any = ctx.program(vertex_shader=BACKGROUND_VERTEX, fragment_shader=BACKGROUND_FRAGMENT)
        program["u_background_tex"].value = BACKGROUND_UNIT
        self._program = program
        self._quad = ctx.vertex_array(self._program, [])
        self._sky: Sky | None = None
        self._texture: Any = None
        self._background: Any = None
        self._placeholder: Any = ctx.texture((1, 1), 3, np.zeros(3, np.float32).tobytes(), dtype="f4")
        self._uniforms: dict[str, bytes] = {}

    @property
    def active(self) -> bool:
        return self._sky is not None

    def set_sky(self, sky: Sky | None) -> None:
        """Draw ``sky`` from now on (None or the default sky: the classic look); uploads a new sky once."""
        wanted = None if is_default_sky(sky) else sky
        if wanted is self._sky:
            return
        if self._texture is not None:
            self._texture.release()
            self._background.release()
            self._texture = self._background = None
        self._sky = wanted
        if wanted is None:
            self._uniforms = {}
            return
        filtered = prefiltered(wanted)
        self._texture = _upload(self.ctx, filtered.levels)
        self._background = _upload_background(self.ctx, filtered.levels[0])
        self._uniforms = {
            "u_env_sh": filtered.harmonics.tobytes(),
            "u_env_lod": np.float32(len(filtered.levels) - 1).tobytes(),
        }

    def frame_uniforms(self) -> dict[str, bytes]:
        """The sky uniforms of the mesh programs compiled with ``HAS_SKY`` (none without a sky)."""
        return self._uniforms

    def bind(self) -> None:
        """The sky texture on its unit, for the background and the mesh programs."""
        (self._texture if self._texture is not None else self._placeholder).use(location=SKY_UNIT)

    def draw_background(self, view_projection_at_origin: F64) -> None:
        """The sky seen through the camera, over the whole frame (call with a sky set)."""
        inverse = np.linalg.inv(view_projection_at_origin)
        self._program["u_inv_view_proj"].write(inverse.T.astype(np.float32).tobytes())
        self._background.use(location=BACKGROUND_UNIT)
        self.ctx.disable(moderngl.DEPTH_TEST | moderngl.CULL_FACE | moderngl.BLEND)
        self._quad.render(moderngl.TRIANGLES, vertices=3)

    def release(self) -> None:
        for resource in (self._texture, self._background, self._placeholder, self._quad, self._program):
            if resource is not None:
                resource.release()
        self._texture = self._background = None


def _upload(ctx: moderngl.Context, levels: list[F32]) -> Any:
    height, width = levels[0].shape[:2]
    texture: Any = ctx.texture((width, height), 3, dtype="f2")
    texture.build_mipmaps(0, len(levels) - 1)  # allocates the levels and caps sampling at the last
    for level, image in enumerate(levels):
        texture.write(np.ascontiguousarray(image, dtype=np.float16).tobytes(), level=level, alignment=2)
    texture.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
    texture.repeat_x = True  # longitude wraps around
    texture.repeat_y = False
    return texture


def _upload_background(ctx: moderngl.Context, image: F32) -> Any:
    """The panorama as the background shows it: sRGB-encoded (the frame's encoding, pow 1/2.2 as the
    mesh program's output), 8 bits, no mip levels: one bilinear fetch per pixel."""
    display = np.round(255.0 * np.clip(image, 0.0, 1.0) ** (1 / 2.2)).astype(np.uint8)
    rgba = np.concatenate([display, np.full((*display.shape[:2], 1), 255, np.uint8)], axis=2)
    texture: Any = ctx.texture((image.shape[1], image.shape[0]), 4, np.ascontiguousarray(rgba).tobytes())
    texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
    texture.repeat_x = True
    texture.repeat_y = False
    return texture
