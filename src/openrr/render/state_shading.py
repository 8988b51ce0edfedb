"""The mesh shaders' parts for the entities' hierarchical states: tint, cut planes, see-through, selection.

Apart from ``shaders.py``, which holds the lighting: these blocks are spliced into the mesh shaders (at
their ``// STATES BLOCK`` lines) and reached through one call in the vertex shader's ``main``,
``states_clip`` (cut planes as clip distances), and two in the fragment shader's: ``states_tint`` (on the
base colour, before lighting) and ``states_end`` (on the output: cut fade, see-through shell, and the
selection written to a second output, the outline's mask, which costs nothing while no mask is
attached). Also here: the values of the uniforms the blocks declare, so their names live in one file.

Cut planes are compiled in only where ``HAS_CUTS`` is defined: the renderer draws an entity with that
variant (and enables the clip distances) only while a plane cuts through it, so nothing else pays.
Clipping rather than discarding: what a plane removes is never rasterised or shaded, and without a
discard the depth test stays early, which matters for the back faces drawn to show the inside (on
llvmpipe it halved the cost of 8 planes over discarding).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from openrr.model.components import ShellSettings, WorldCutPlane
from openrr.model.mesh import F64

MAX_CUT_PLANES = 8  # as ARR; the API refuses more, the renderer uses the first 8 it is given

STATES_VERTEX = """
#ifdef HAS_CUTS
uniform int u_cut_count;
uniform int u_cut_apply;          // bit i: plane i applies to this entity (its filter mask matches)
uniform vec4 u_cut_plane[MAX_CUT_PLANES];  // world (a, b, c, d): a*x + b*y + c*z + d > 0 is cut away
out float gl_ClipDistance[MAX_CUT_PLANES];
void states_clip(vec3 p) {
    for (int i = 0; i < MAX_CUT_PLANES; i++) {
        bool applies = i < u_cut_count && (u_cut_apply & (1 << i)) != 0;
        gl_ClipDistance[i] = applies ? -(dot(u_cut_plane[i].xyz, p) + u_cut_plane[i].w) : 1.0;
    }
}
#else
void states_clip(vec3 p) {}
#endif
"""

STATES_FRAGMENT = """
layout(location = 1) out vec4 f_selected;  // the outline's mask (only while one is attached)
uniform float u_selected;         // 1: the entity is selected
uniform vec4 u_tint;              // rgb, a = strength (0: no tint)
uniform float u_shell_opacity;    // of see-through draws (the HAS_SHELL variant)
uniform float u_shell_desaturation;
#ifdef HAS_CUTS
uniform int u_cut_count;
uniform int u_cut_apply;          // bit i: plane i applies to this entity (its filter mask matches)
uniform vec4 u_cut_plane[MAX_CUT_PLANES];  // world (a, b, c, d): a*x + b*y + c*z + d > 0 is cut away
uniform vec4 u_cut_fade[MAX_CUT_PLANES];   // fade colour, a = its weight at the plane
uniform float u_cut_fade_length[MAX_CUT_PLANES];
#endif

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
        if (d < len) c.rgb = mix(c.rgb, u_cut_fade[i].rgb, u_cut_fade[i].a * min(1.0 - d / len, 1.0));
    }
#endif
#ifdef HAS_SHELL
    {
        // ARR's shell: desaturated, mostly transparent face on, opaque toward grazing angles so that the
        // silhouette stays visible while what is behind shows through.
        float grey = dot(c.rgb, vec3(0.299, 0.587, 0.114));
        c.rgb = mix(c.rgb, vec3(grey), u_shell_desaturation);
        float facing = abs(dot(states_normal(), normalize(u_camera_pos - v_world)));
        c.a = u_shell_opacity + (1.0 - u_shell_opacity) * pow(1.0 - facing, 3.0);
    }
#endif
    // The mask's alpha is the selection too: a blended draw of an entity that is not selected leaves
    // the mask as it was, a selected one sets it, an opaque draw writes its own selection.
    f_selected = vec4(u_selected, 0.0, 0.0, u_selected);
    return c;
}
"""


def insert_states(source: str, block: str, cuts: bool) -> str:
    """``source`` (a mesh shader, header included) with ``block`` spliced in at its marker."""
    marker = "// STATES BLOCK\n"
    if marker not in source:
        raise ValueError("the mesh shader lacks the states block's marker")
    defines = f"#define MAX_CUT_PLANES {MAX_CUT_PLANES}\n" + ("#define HAS_CUTS\n" if cuts else "")
    return source.replace(marker, defines + block)


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


def cut_bits(
    planes: Sequence[WorldCutPlane], cut_masks: NDArray[np.uint32], bounds: F64
) -> tuple[NDArray[np.int32], NDArray[np.bool_]]:
    """Per entity (its cut-plane filter mask in ``cut_masks``, its world box (min, max) in ``bounds``):
    bit i set where plane i cuts through it, and whether a plane cuts it away whole. A plane applies
    where its object filter mask and the entity's mask share a bit; an entity wholly on the plane's
    negative side keeps its bit clear, so it is drawn without the cut code (0: nothing cuts it)."""
    bits = np.zeros(len(cut_masks), dtype=np.int32)
    gone = np.zeros(len(cut_masks), dtype=bool)
    masks = cut_masks.astype(np.int64)
    centre, half = bounds.mean(axis=1), (bounds[:, 1] - bounds[:, 0]) / 2
    for i, plane in enumerate(planes[:MAX_CUT_PLANES]):
        normal = np.asarray(plane.plane[:3])
        distance = centre @ normal + plane.plane[3]  # of the box's centre; its corners reach +-reach
        reach = np.abs(half) @ np.abs(normal)
        applies = (masks & plane.object_filter_mask) != 0
        gone |= applies & (distance - reach > 0)
        bits |= np.where(applies & (distance + reach > 0), np.int32(1 << i), np.int32(0))
    return bits, gone


def shell_uniforms(shell: ShellSettings | None) -> dict[str, float]:
    """The see-through look's uniforms (read by the ``HAS_SHELL`` variant only); ``None``: an ordinary
    draw."""
    if shell is None:
        return {}
    return {
        "u_shell_opacity": min(max(shell.opacity, 0.0), 1.0),
        "u_shell_desaturation": min(max(shell.desaturation, 0.0), 1.0),
    }
