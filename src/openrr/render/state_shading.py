"""The mesh fragment shader's part for the entities' hierarchical states: tint, cut planes, see-through.

Apart from ``shaders.py``, which holds the lighting: this block is spliced into the mesh fragment shader
(at its ``// STATES BLOCK`` line) and reached through three calls in its ``main``: ``states_begin``
(first: cut planes discard, the outline's mask draw stops there), ``states_tint`` (on the base colour,
before lighting) and ``states_end`` (on the output: cut fade, see-through shell). Also here: the values
of the uniforms the block declares, so their names live in one file.

Cut planes are compiled in only where ``HAS_CUTS`` is defined: the renderer draws an entity with that
variant only while a plane applies to it, so nothing else pays for the loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from openrr.model.components import ShellSettings, WorldCutPlane

MAX_CUT_PLANES = 8  # as ARR; the API refuses more, the renderer uses the first 8 it is given

STATES_FRAGMENT = """
uniform float u_mask_only;        // 1: the outline's mask draw: coverage only, no shading
uniform vec4 u_tint;              // rgb, a = strength (0: no tint)
uniform float u_shell_opacity;    // < 0: not see-through
uniform float u_shell_desaturation;
#ifdef HAS_CUTS
uniform int u_cut_count;
uniform int u_cut_apply;          // bit i: plane i applies to this entity (its filter mask matches)
uniform vec4 u_cut_plane[MAX_CUT_PLANES];  // world (a, b, c, d): a*x + b*y + c*z + d > 0 is cut away
uniform vec4 u_cut_fade[MAX_CUT_PLANES];   // fade colour, a = its weight at the plane
uniform float u_cut_fade_length[MAX_CUT_PLANES];
#endif

// Discards what an applying cut plane removes; true for the outline's mask draw (write coverage).
bool states_begin() {
#ifdef HAS_CUTS
    for (int i = 0; i < u_cut_count; i++) {
        if ((u_cut_apply & (1 << i)) != 0 && dot(u_cut_plane[i].xyz, v_world) + u_cut_plane[i].w > 0.0) {
            discard;
        }
    }
#endif
    return u_mask_only > 0.5;
}

// ARR's tint: the base colour moves toward the tint colour by its strength, then is lit as usual, so a
// full-strength tint shows the tint colour with the surface's shading.
vec4 states_tint(vec4 base) { return vec4(mix(base.rgb, u_tint.rgb, u_tint.a), base.a); }

vec3 states_normal() {
#ifdef HAS_NORMALS
    return normalize(v_normal);
#else
    return normalize(cross(dFdx(v_world), dFdy(v_world)));
#endif
}

vec4 states_end(vec4 c) {
#ifdef HAS_CUTS
    // Within fade_length of an applying plane the colour blends toward the fade colour: fully (times
    // the fade colour's alpha) at the plane, not at all fade_length away.
    for (int i = 0; i < u_cut_count; i++) {
        float len = u_cut_fade_length[i];
        if ((u_cut_apply & (1 << i)) == 0 || len <= 0.0) continue;
        float d = -(dot(u_cut_plane[i].xyz, v_world) + u_cut_plane[i].w);
        if (d < len) c.rgb = mix(c.rgb, u_cut_fade[i].rgb, u_cut_fade[i].a * (1.0 - d / len));
    }
#endif
    if (u_shell_opacity >= 0.0) {
        // ARR's shell: desaturated, mostly transparent face on, opaque toward grazing angles so that the
        // silhouette stays visible while what is behind shows through.
        float grey = dot(c.rgb, vec3(0.299, 0.587, 0.114));
        c.rgb = mix(c.rgb, vec3(grey), u_shell_desaturation);
        float facing = abs(dot(states_normal(), normalize(u_camera_pos - v_world)));
        c.a = u_shell_opacity + (1.0 - u_shell_opacity) * pow(1.0 - facing, 3.0);
    }
    return c;
}
"""


def insert_states(fragment: str, cuts: bool) -> str:
    """``fragment`` (the mesh fragment shader, header included) with the states block spliced in."""
    marker = "// STATES BLOCK\n"
    if marker not in fragment:
        raise ValueError("the mesh fragment shader lacks the states block's marker")
    defines = f"#define MAX_CUT_PLANES {MAX_CUT_PLANES}\n" + ("#define HAS_CUTS\n" if cuts else "")
    return fragment.replace(marker, defines + STATES_FRAGMENT)


def cut_uniforms(planes: Sequence[WorldCutPlane]) -> dict[str, bytes]:
    """The frame's cut-plane uniforms (of the first ``MAX_CUT_PLANES`` planes), as bytes for ``write``."""
    planes = planes[:MAX_CUT_PLANES]
    equations = np.zeros((MAX_CUT_PLANES, 4), dtype=np.float32)
    fades = np.zeros((MAX_CUT_PLANES, 4), dtype=np.float32)
    lengths = np.zeros(MAX_CUT_PLANES, dtype=np.float32)
    for i, plane in enumerate(planes):
        equations[i] = plane.plane
        fades[i] = plane.fade_color
        lengths[i] = plane.fade_length
    return {
        "u_cut_count": np.int32(len(planes)).tobytes(),
        "u_cut_plane": equations.tobytes(),
        "u_cut_fade": fades.tobytes(),
        "u_cut_fade_length": lengths.tobytes(),
    }


def cut_bits(planes: Sequence[WorldCutPlane], cut_masks: NDArray[np.uint32]) -> NDArray[np.int32]:
    """Per entity (its cut-plane filter mask in ``cut_masks``), bit i set where plane i cuts it: the
    plane's object filter mask and the entity's mask share a bit. 0: nothing cuts it."""
    bits = np.zeros(len(cut_masks), dtype=np.int32)
    masks = cut_masks.astype(np.int64)
    for i, plane in enumerate(planes[:MAX_CUT_PLANES]):
        bits |= np.where((masks & plane.object_filter_mask) != 0, np.int32(1 << i), np.int32(0))
    return bits


def shell_uniforms(shell: ShellSettings | None) -> dict[str, float]:
    """The see-through look's uniforms; ``None``: an ordinary draw."""
    if shell is None:
        return {"u_shell_opacity": -1.0, "u_shell_desaturation": 0.0}
    return {
        "u_shell_opacity": min(max(shell.opacity, 0.0), 1.0),
        "u_shell_desaturation": min(max(shell.desaturation, 0.0), 1.0),
    }
