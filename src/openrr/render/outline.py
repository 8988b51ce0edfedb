"""The selection outline (ARR's ``OutlineSettings``): a screen-space line around the selected entities.

The mask costs no draw of its own: while something is selected the scene is drawn into a framebuffer
with the mask as second colour attachment, and the mesh programs write there whether their entity is
selected (see state_shading.py); so the mask holds the selected entities where they are visible, cut
planes applied. A screen pass then colours each pixel outside the mask that has a mask pixel within
``RADIUS_PX``, confined to the screen box of the selected entities plus the line's width, so its cost
follows their size on screen. The line thus follows the visible silhouette: where another entity hides
part of a selected one, it runs along that entity's edge. The pulse scales the colour's brightness over
time: ``Renderer.animating`` says when frames change without any edit.

Apart from ``renderer.py``: the mask, the line's program and the pulse.
"""

from __future__ import annotations

import math
from typing import Any

import moderngl
import numpy as np

from openrr.model.components import OutlineSettings
from openrr.model.mesh import F64

RADIUS_PX = 2.5  # the line's width in pixels, from the silhouette outwards

# Bilinear taps between texels: each reads a 2x2 block of the mask, so 8 of them cover the 5x5 block
# around the pixel but its corners (the pixels within RADIUS_PX); a mask pixel anywhere in a tap's block
# weighs at least 1/4. On llvmpipe this is about twice as fast as 20 single-texel fetches.
_TAPS = [
    (1.5, 0.5),
    (1.5, -0.5),
    (-1.5, 0.5),
    (-1.5, -0.5),
    (0.5, 1.5),
    (-0.5, 1.5),
    (0.5, -1.5),
    (-0.5, -1.5),
]

OUTLINE_FRAGMENT = (
    """#version 330 core
uniform sampler2D u_mask;  // linear filtering, clamped at the edges
uniform vec3 u_color;
out vec4 f_color;
void main() {
    if (texelFetch(u_mask, ivec2(gl_FragCoord.xy), 0).r > 0.5) discard;  // inside the silhouette: no line
    vec2 texel = 1.0 / vec2(textureSize(u_mask, 0));
    float near = 0.0;
"""
    + "".join(
        f"    near = max(near, texture(u_mask, (gl_FragCoord.xy + vec2({dx}, {dy})) * texel).r);\n"
        for dx, dy in _TAPS
    )
    + """    if (near < 0.2) discard;
    f_color = vec4(u_color, 1.0);
}
"""
)


def pulse_color(outline: OutlineSettings, seconds: float) -> tuple[float, float, float]:
    """The line's colour at time ``seconds``: full at the pulse's peaks, dimmed by ``pulse_intensity``
    (0..1) at its troughs, ``pulse_rate`` times a second; constant without a pulse."""
    dim = 0.0
    if pulsing(outline):
        intensity = min(max(outline.pulse_intensity, 0.0), 1.0)
        dim = intensity * 0.5 * (1.0 - math.cos(2.0 * math.pi * outline.pulse_rate * seconds))
    r, g, b = (min(max(c, 0.0), 1.0) * (1.0 - dim) for c in outline.color)
    return (r, g, b)


def pulsing(outline: OutlineSettings) -> bool:
    """Whether the line's colour changes over time."""
    return outline.pulse_rate > 0.0 and outline.pulse_intensity > 0.0


def screen_box(
    bounds: F64, view_projection: F64, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """The pixel box (x, y, w, h, GL window coordinates) covering world boxes ``bounds`` (K, 2, 3) and the
    line around them; the whole frame where a box reaches behind the eye; None if none is on screen."""
    if not len(bounds):
        return None
    corners = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)])
    points = bounds[:, 0][:, None, :] + corners[None] * (bounds[:, 1] - bounds[:, 0])[:, None, :]
    clip = np.einsum("ij,kcj->kci", view_projection[:, :3], points) + view_projection[:, 3]
    if (clip[..., 3] <= 1e-6).any():
        return (0, 0, width, height)
    ndc = clip[..., :2] / clip[..., 3:4]
    margin = math.ceil(RADIUS_PX) + 1
    low = np.floor((ndc.min(axis=(0, 1)) + 1) / 2 * (width, height)) - margin
    high = np.ceil((ndc.max(axis=(0, 1)) + 1) / 2 * (width, height)) + margin
    x0, y0 = max(int(low[0]), 0), max(int(low[1]), 0)
    x1, y1 = min(int(high[0]), width), min(int(high[1]), height)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


class OutlinePass:
    """The mask (``mask``: cleared by ``clear``, written by the scene's draws) and the line."""

    def __init__(self, ctx: moderngl.Context, fullscreen_vertex: str) -> None:
        self.ctx = ctx
        program: Any = ctx.program(vertex_shader=fullscreen_vertex, fragment_shader=OUTLINE_FRAGMENT)
        program["u_mask"].value = 0
        self._program = program
        self._quad = ctx.vertex_array(program, [])
        self._targets: list[Any] = []
        self.mask: Any = None
        self._fbo: Any = None

    def resize(self, width: int, height: int) -> None:
        for target in self._targets:
            target.release()
        self.mask = self.ctx.texture((width, height), 1, dtype="f1")
        self.mask.repeat_x = self.mask.repeat_y = False  # the line's taps past the frame's edge: nothing
        self._fbo = self.ctx.framebuffer(color_attachments=[self.mask])
        self._targets = [self._fbo, self.mask]

    def clear(self) -> None:
        """Nothing selected anywhere (one byte per pixel: cheap enough to clear whole)."""
        self._fbo.clear(0.0, 0.0, 0.0, 0.0)

    def draw_line(
        self, target: Any, box: tuple[int, int, int, int], color: tuple[float, float, float]
    ) -> None:
        """Colour ``target``'s pixels near the mask, inside ``box`` (x, y, w, h)."""
        target.scissor = box
        target.use()
        self.mask.use(location=0)
        self._program["u_color"].value = color
        self.ctx.disable(moderngl.DEPTH_TEST | moderngl.CULL_FACE | moderngl.BLEND)
        self._quad.render(moderngl.TRIANGLES, vertices=3)
        target.scissor = None
        target.use()

    def release(self) -> None:
        for target in (*self._targets, self._quad, self._program):
            target.release()
        self._targets = []
