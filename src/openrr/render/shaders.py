"""GLSL 3.30 sources of the renderer's programs.

The mesh program is compiled in variants (``mesh_program_source``) so that attributes a primitive lacks
are compiled out instead of branched on; a missing vertex attribute would otherwise read (0, 0, 0, 1).
Shading is glTF metallic-roughness in linear space (``lighting.py``): GGX/Smith/Schlick for the head-light
rig and the scene's point, spot and directional lights (``lights.py``), ambient light from a hemisphere
or from the sky (``sky.py``: spherical-harmonic irradiance, reflections from a prefiltered panorama),
sRGB decoding of colour textures and sRGB encoding of the output. Unlit materials skip the lighting.

Also here: the lighting/background settings those programs read (``Background``, ``DirectionalLight``,
``Hemisphere``) and the functions turning them and materials into uniform values, so the uniform names
live in one file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openrr.model.mesh import F64, Material
from openrr.render.lighting import LIGHTING
from openrr.render.lights import MAX_PUNCTUAL
from openrr.render.state_shading import STATES_FRAGMENT, STATES_VERTEX, insert_states

RGB = tuple[float, float, float]
MAX_LIGHTS = 4

# Bits of the mesh program's ``u_flags``.
FLAG_BASE_TEX = 1
FLAG_MR_TEX = 2
FLAG_NORMAL_TEX = 4
FLAG_EMISSIVE_TEX = 8
FLAG_OCCLUSION_TEX = 16
FLAG_OVERRIDE = 32
FLAG_UNLIT = 64

# Texture units of the mesh program's samplers.
TEXTURE_UNITS = {"u_base_tex": 0, "u_mr_tex": 1, "u_normal_tex": 2, "u_emissive_tex": 3, "u_occlusion_tex": 4}

_MESH_VERTEX = """
uniform mat4 u_view_proj;
uniform mat4 u_model;
uniform mat3 u_normal_matrix;
in vec3 in_position;
out vec3 v_world;
#ifdef HAS_NORMALS
in vec3 in_normal;
out vec3 v_normal;
#endif
#ifdef HAS_UV
in vec2 in_uv;
out vec2 v_uv;
#endif
#ifdef HAS_COLORS
in vec4 in_color;
out vec4 v_color;
#endif
// STATES BLOCK
void main() {
    vec4 world = u_model * vec4(in_position, 1.0);
    v_world = world.xyz;
    gl_Position = u_view_proj * world;
    states_clip(world.xyz);  // STATES hook: cut planes clip
#ifdef HAS_NORMALS
    v_normal = u_normal_matrix * in_normal;
#endif
#ifdef HAS_UV
    v_uv = in_uv;
#endif
#ifdef HAS_COLORS
    v_color = in_color;
#endif
}
"""

_MESH_FRAGMENT = (
    """
const float PI = 3.14159265;
uniform vec3 u_camera_pos;
uniform int u_flags;
uniform vec4 u_base_color;
uniform vec4 u_override;
uniform float u_metallic;
uniform float u_roughness;
uniform vec3 u_emissive;
uniform float u_alpha_cutoff;  // < 0: no alpha test
uniform float u_opaque;        // 1: alpha forced to 1 (alphaMode OPAQUE)
uniform vec4 u_uv_transform;   // uv' = R (uv * xy) + zw, for every texture
uniform vec2 u_uv_rotation;    // R's (cos, sin): KHR_texture_transform's rotation (Material.uv_rotation)
uniform sampler2D u_base_tex;
uniform sampler2D u_mr_tex;
uniform sampler2D u_normal_tex;
uniform sampler2D u_emissive_tex;
uniform sampler2D u_occlusion_tex;
in vec3 v_world;
#ifdef HAS_NORMALS
in vec3 v_normal;
#endif
#ifdef HAS_UV
in vec2 v_uv;
#endif
#ifdef HAS_COLORS
in vec4 v_color;
#endif
layout(location = 0) out vec4 f_color;  // location 1: the selection mask (STATES block)

vec3 to_linear(vec3 c) { return pow(c, vec3(2.2)); }
// STATES BLOCK
"""
    + LIGHTING
    + """

void main() {
    vec4 base = u_base_color;
    vec2 uv = vec2(0.0);
#ifdef HAS_UV
    uv = v_uv * u_uv_transform.xy;
    uv = vec2(dot(u_uv_rotation, uv), u_uv_rotation.x * uv.y - u_uv_rotation.y * uv.x) + u_uv_transform.zw;
    if ((u_flags & 1) != 0) { vec4 t = texture(u_base_tex, uv); base *= vec4(to_linear(t.rgb), t.a); }
#endif
#ifdef HAS_COLORS
    base *= v_color;
#endif
    if ((u_flags & 32) != 0) base = u_override;
    base = states_tint(base);  // STATES hook: the tint mixes the base colour before lighting
    if (u_alpha_cutoff >= 0.0 && base.a < u_alpha_cutoff) discard;

    float metallic = u_metallic;
    float roughness = u_roughness;
    float occlusion = 1.0;
    vec3 emissive = u_emissive;
#ifdef HAS_UV
    if ((u_flags & 2) != 0) { vec4 mr = texture(u_mr_tex, uv); roughness *= mr.g; metallic *= mr.b; }
    if ((u_flags & 8) != 0) emissive *= to_linear(texture(u_emissive_tex, uv).rgb);
    if ((u_flags & 16) != 0) occlusion = texture(u_occlusion_tex, uv).r;
#endif
    roughness = clamp(roughness, 0.04, 1.0);
    metallic = clamp(metallic, 0.0, 1.0);

    vec3 dp1 = dFdx(v_world);
    vec3 dp2 = dFdy(v_world);
#ifdef HAS_NORMALS
    vec3 n = normalize(v_normal);
#else
    // glTF: without normals, shade flat. The sign is fixed by facing below.
    vec3 n = normalize(cross(dp1, dp2));
#endif
    vec3 v = normalize(u_camera_pos - v_world);
#ifdef HAS_NORMALS
    if (!gl_FrontFacing) n = -n;  // only double-sided materials get back faces through culling
#else
    if (dot(n, v) < 0.0) n = -n;
#endif
#ifdef HAS_UV
    if ((u_flags & 4) != 0) {
        // Tangent frame from screen derivatives (no TANGENT attribute needed): T = dP/du, B = -dP/dv
        // because glTF's v grows downwards while the normal map's +Y points up.
        vec2 duv1 = dFdx(uv);
        vec2 duv2 = dFdy(uv);
        float det = duv1.x * duv2.y - duv1.y * duv2.x;
        if (abs(det) > 1e-12) {
            vec3 t = (dp1 * duv2.y - dp2 * duv1.y) / det;
            vec3 b = -(dp2 * duv1.x - dp1 * duv2.x) / det;
            t = normalize(t - n * dot(n, t));
            b = normalize(b - n * dot(n, b));
            vec3 m = texture(u_normal_tex, uv).xyz * 2.0 - 1.0;
            n = normalize(mat3(t, b, n) * m);
        }
    }
#endif

    // Lighting (shade() above); unlit materials keep their base colour.
    vec3 color = (u_flags & 64) != 0
        ? base.rgb
        : shade(n, v, base.rgb, metallic, roughness, occlusion) + emissive;
    float alpha = u_opaque > 0.5 ? 1.0 : base.a;
    f_color = vec4(pow(clamp(color, 0.0, 1.0), vec3(1.0 / 2.2)), alpha);
    f_color = states_end(f_color);  // STATES hook: cut fade, see-through shell
}
"""
)

# A triangle covering the screen, from gl_VertexID alone (no vertex buffer).
FULLSCREEN_VERTEX = """#version 330 core
out vec2 v_uv;
void main() {
    vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    v_uv = p;
    gl_Position = vec4(p * 2.0 - 1.0, 1.0, 1.0);
}
"""

# The framebuffer holds the image top row first (see renderer.py), so row 0 is the top colour.
GRADIENT_FRAGMENT = """#version 330 core
uniform vec3 u_top;
uniform vec3 u_bottom;
uniform float u_height;
out vec4 f_color;
void main() { f_color = vec4(mix(u_top, u_bottom, gl_FragCoord.y / u_height), 1.0); }
"""

CHECKER_FRAGMENT = """#version 330 core
uniform float u_cell;
out vec4 f_color;
void main() {
    vec2 cell = floor(gl_FragCoord.xy / u_cell);
    float odd = mod(cell.x + cell.y, 2.0);
    f_color = vec4(mix(vec3(0.85), vec3(0.25), odd), 1.0);
}
"""

# FXAA in its small "console" form: 5 taps for the luma edge direction, 4 along it. About a frame-sized
# texture pass on llvmpipe; good enough to take the stair steps off edges without MSAA's 3x cost.
FXAA_FRAGMENT = """#version 330 core
uniform sampler2D u_image;
uniform vec2 u_texel;
in vec2 v_uv;
out vec4 f_color;
const vec3 LUMA = vec3(0.299, 0.587, 0.114);
void main() {
    // Unfiltered fetches for the neighbourhood: on llvmpipe they cost a fraction of filtered ones.
    ivec2 p = ivec2(gl_FragCoord.xy);
    ivec2 last = textureSize(u_image, 0) - 1;
    vec3 nw = texelFetch(u_image, clamp(p + ivec2(-1, -1), ivec2(0), last), 0).rgb;
    vec3 ne = texelFetch(u_image, clamp(p + ivec2(1, -1), ivec2(0), last), 0).rgb;
    vec3 sw = texelFetch(u_image, clamp(p + ivec2(-1, 1), ivec2(0), last), 0).rgb;
    vec3 se = texelFetch(u_image, clamp(p + ivec2(1, 1), ivec2(0), last), 0).rgb;
    vec3 m = texelFetch(u_image, p, 0).rgb;
    float lnw = dot(nw, LUMA), lne = dot(ne, LUMA), lsw = dot(sw, LUMA), lse = dot(se, LUMA);
    float lm = dot(m, LUMA);
    float lmin = min(lm, min(min(lnw, lne), min(lsw, lse)));
    float lmax = max(lm, max(max(lnw, lne), max(lsw, lse)));
    if (lmax - lmin < max(0.0312, lmax * 0.125)) { f_color = vec4(m, 1.0); return; }  // no edge here
    vec2 dir = vec2(-((lnw + lne) - (lsw + lse)), (lnw + lsw) - (lne + lse));
    float reduce = max((lnw + lne + lsw + lse) * 0.03125, 1.0 / 128.0);
    float scale = 1.0 / (min(abs(dir.x), abs(dir.y)) + reduce);
    dir = clamp(dir * scale, vec2(-8.0), vec2(8.0)) * u_texel;
    vec3 a = 0.5 * (texture(u_image, v_uv + dir * (1.0 / 3.0 - 0.5)).rgb
                  + texture(u_image, v_uv + dir * (2.0 / 3.0 - 0.5)).rgb);
    vec3 b = a * 0.5 + 0.25 * (texture(u_image, v_uv - dir * 0.5).rgb
                             + texture(u_image, v_uv + dir * 0.5).rgb);
    float lb = dot(b, LUMA);
    f_color = vec4((lb < lmin || lb > lmax) ? a : b, 1.0);
}
"""


@dataclass(frozen=True)
class MeshVariant:
    """Which code a mesh program is compiled with: the primitive's attributes, and what this draw needs
    (cut planes, a sky, the scene's lights, the see-through shell). Compiled in rather than branched
    on: llvmpipe pays for both sides of a branch."""

    normals: bool
    uv: bool
    colors: bool
    cuts: bool = False
    sky: bool = False
    lights: bool = False
    shell: bool = False


def mesh_program_source(variant: MeshVariant) -> tuple[str, str]:
    """(vertex, fragment) sources of a mesh program variant (see state_shading.py and lighting.py for
    what ``cuts``/``shell`` and ``sky``/``lights`` add)."""
    defines = [f"#define MAX_LIGHTS {MAX_LIGHTS}", f"#define MAX_PUNCTUAL {MAX_PUNCTUAL}"]
    for wanted, name in (
        (variant.normals, "HAS_NORMALS"),
        (variant.uv, "HAS_UV"),
        (variant.colors, "HAS_COLORS"),
        (variant.sky, "HAS_SKY"),
        (variant.lights, "HAS_PUNCTUAL"),
        (variant.shell, "HAS_SHELL"),
    ):
        defines += [f"#define {name}"] if wanted else []
    cuts = variant.cuts
    header = "#version 330 core\n" + "\n".join(defines) + "\n"
    return insert_states(header + _MESH_VERTEX, STATES_VERTEX, cuts), insert_states(
        header + _MESH_FRAGMENT, STATES_FRAGMENT, cuts
    )


@dataclass
class Background:
    """A colour, or a vertical gradient when ``bottom`` is set; display (sRGB) values in 0..1."""

    top: RGB = (0.22, 0.24, 0.27)
    bottom: RGB | None = (0.08, 0.09, 0.10)


@dataclass
class DirectionalLight:
    """``direction`` is where the light travels; in camera space when ``view_space`` (a head light rig)."""

    direction: RGB
    color: RGB = (1.0, 1.0, 1.0)
    intensity: float = 2.5
    view_space: bool = True


def default_lights() -> list[DirectionalLight]:
    return [
        DirectionalLight((0.45, -0.7, -0.55), intensity=2.6),  # key, from the viewer's upper left
        DirectionalLight((-0.7, -0.1, -0.7), intensity=0.8),  # fill, from the right
    ]


@dataclass
class Hemisphere:
    """Ambient light: ``sky`` from +Y, ``ground`` from -Y, blended by the normal (linear radiance)."""

    sky: RGB = (0.32, 0.34, 0.38)
    ground: RGB = (0.12, 0.11, 0.10)


def frame_uniforms(
    eye: F64, camera_rotation: F64, view_projection: F64, lights: list[DirectionalLight], ambient: Hemisphere
) -> dict[str, bytes]:
    """Per-frame uniforms of the mesh programs, as bytes ready for ``Uniform.write``."""
    lights = lights[:MAX_LIGHTS]
    directions = np.zeros((MAX_LIGHTS, 3), dtype=np.float32)
    colors = np.zeros((MAX_LIGHTS, 3), dtype=np.float32)
    for i, light in enumerate(lights):
        direction = np.asarray(light.direction, dtype=np.float64)
        direction = camera_rotation @ direction if light.view_space else direction
        directions[i] = direction / max(float(np.linalg.norm(direction)), 1e-9)
        colors[i] = np.asarray(light.color) * light.intensity
    f32 = np.float32
    return {
        "u_view_proj": view_projection.T.astype(f32).tobytes(),
        "u_camera_pos": eye.astype(f32).tobytes(),
        "u_light_count": np.int32(len(lights)).tobytes(),
        "u_light_dir": directions.tobytes(),
        "u_light_color": colors.tobytes(),
        "u_sky": np.asarray(ambient.sky, dtype=f32).tobytes(),
        "u_ground": np.asarray(ambient.ground, dtype=f32).tobytes(),
    }


def material_textures(material: Material) -> list[NDArray[np.uint8] | None]:
    """A material's textures in the order of their units (TEXTURE_UNITS)."""
    return [
        material.base_color_texture,
        material.metallic_roughness_texture,
        material.normal_texture,
        material.emissive_texture,
        material.occlusion_texture,
    ]


def material_uniforms(
    material: Material, texture_units: Iterable[int], override: NDArray[np.float32]
) -> dict[str, Any]:
    """A primitive's material uniforms. ``texture_units``: the units holding its textures (unit i sets
    flag bit i); ``override``: the node's effective RGBA colour override, NaN for none."""
    values: dict[str, Any] = {
        "u_flags": sum(1 << unit for unit in texture_units),
        "u_base_color": material.base_color_factor,
        "u_metallic": material.metallic_factor,
        "u_roughness": material.roughness_factor,
        "u_emissive": material.emissive_factor,
        "u_alpha_cutoff": material.alpha_cutoff if material.alpha_mode == "MASK" else -1.0,
        "u_opaque": 1.0 if material.alpha_mode == "OPAQUE" else 0.0,
        "u_uv_transform": (*material.uv_scale, *material.uv_offset),
        "u_uv_rotation": (math.cos(material.uv_rotation), math.sin(material.uv_rotation)),
    }
    if material.unlit:
        values["u_flags"] |= FLAG_UNLIT
    if np.isfinite(override[0]):
        values["u_flags"] |= FLAG_OVERRIDE
        values["u_override"] = tuple(float(c) for c in override)
    return values
