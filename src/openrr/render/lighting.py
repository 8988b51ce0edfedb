"""GLSL of the mesh program's lighting: the functions its ``main`` calls to shade a lit surface point.

Apart from ``shaders.py`` (the programs, their attribute variants and material sampling) so that the
lighting can change without touching the rest of the mesh program, and the other way round. ``shade()``
is glTF metallic-roughness (GGX distribution, height-correlated Smith visibility, Schlick Fresnel) for
the renderer's head-light rig (``u_light_*``) and the scene's own point, spot and directional lights
(``u_punctual_*``, packed by ``lights.py``), then ambient light: the hemisphere (``u_sky``,
``u_ground``), or with a sky the spherical-harmonic irradiance and the prefiltered panorama along the
reflected view vector (``u_env_*``, see ``sky.py``). It needs ``PI``, ``MAX_LIGHTS``, ``MAX_PUNCTUAL``
and ``v_world`` declared before it.

The scene's lights and the sky are compiled in (``HAS_PUNCTUAL``, ``HAS_SKY``) only into the program
variants drawn while the scene has them: llvmpipe runs both sides of a branch on a uniform, so a
branched-out sky or light loop still cost about 10-15 ms of CPU a 720p frame each (measured).
"""

from __future__ import annotations

LIGHTING = """
uniform int u_light_count;
uniform vec3 u_light_dir[MAX_LIGHTS];    // direction the light travels, world space, unit
uniform vec3 u_light_color[MAX_LIGHTS];  // colour * intensity
uniform int u_punctual_count;
uniform vec4 u_punctual_pos[MAX_PUNCTUAL];    // position, range (0: unbounded)
uniform vec4 u_punctual_dir[MAX_PUNCTUAL];    // direction the light travels, kind (0 point, 1 spot, 2 dir.)
uniform vec3 u_punctual_color[MAX_PUNCTUAL];  // colour * intensity
uniform vec2 u_punctual_cone[MAX_PUNCTUAL];   // cos of the outer and inner half angles
uniform vec3 u_sky;
uniform vec3 u_ground;
uniform vec3 u_env_sh[9];    // the sky's irradiance / pi as spherical harmonics (render/sky.py)
uniform float u_env_lod;     // the sky texture's blurriest level: where roughness 1 reads
uniform sampler2D u_env_tex;

// What a surface point's lights share: computed once per pixel, not once per light.
struct Surface {
    vec3 n;
    vec3 v;
    vec3 diffuse_pi;  // diffuse colour / pi
    vec3 f0;
    float a2;
    float nv;
    float gv;  // the view's part of the Smith visibility term
};

// Light arriving from direction l with radiance 1, reflected towards v.
vec3 brdf(Surface s, vec3 l) {
    float nl = dot(s.n, l);
    if (nl <= 0.0) return vec3(0.0);
    vec3 h = normalize(l + s.v);
    float nh = max(dot(s.n, h), 0.0);
    // Powers by multiplication: pow() is exp2(log2()) on llvmpipe, several times dearer.
    float t = nh * nh * (s.a2 - 1.0) + 1.0;
    float d = s.a2 / (PI * t * t);
    float vis = 0.5 / (nl * s.gv + s.nv * sqrt(nl * nl * (1.0 - s.a2) + s.a2));
    float w = 1.0 - max(dot(s.v, h), 0.0);
    float w2 = w * w;
    vec3 f = s.f0 + (1.0 - s.f0) * (w2 * w2 * w);
    return nl * ((1.0 - f) * s.diffuse_pi + f * d * vis);
}

vec3 punctual(int i, Surface s) {
    vec4 pos = u_punctual_pos[i];
    vec4 dir = u_punctual_dir[i];
    if (dir.w > 1.5) return u_punctual_color[i] * brdf(s, -dir.xyz);
    vec3 to_light = pos.xyz - v_world;
    float d2 = max(dot(to_light, to_light), 1e-8);
    vec3 l = to_light * inversesqrt(d2);
    float attenuation = 1.0 / d2;
    if (pos.w > 0.0) {
        float r2 = d2 / (pos.w * pos.w);
        attenuation *= clamp(1.0 - r2 * r2, 0.0, 1.0);
    }
    if (dir.w > 0.5) attenuation *= smoothstep(u_punctual_cone[i].x, u_punctual_cone[i].y, dot(dir.xyz, -l));
    if (attenuation <= 0.0) return vec3(0.0);
    return u_punctual_color[i] * attenuation * brdf(s, l);
}

vec2 env_uv(vec3 d) {
    return vec2(atan(d.x, -d.z) * (0.5 / PI) + 0.5, acos(clamp(d.y, -1.0, 1.0)) / PI);
}

vec3 env_irradiance(vec3 n) {
    vec3 e = u_env_sh[0] + u_env_sh[1] * n.y + u_env_sh[2] * n.z + u_env_sh[3] * n.x
        + u_env_sh[4] * (n.x * n.y) + u_env_sh[5] * (n.y * n.z) + u_env_sh[6] * (3.0 * n.z * n.z - 1.0)
        + u_env_sh[7] * (n.x * n.z) + u_env_sh[8] * (n.x * n.x - n.y * n.y);
    return max(e, vec3(0.0));
}

vec3 shade(vec3 n, vec3 v, vec3 base, float metallic, float roughness, float occlusion) {
    vec3 diffuse = base * (1.0 - metallic);
    vec3 f0 = mix(vec3(0.04), base, metallic);
    float a2 = roughness * roughness * roughness * roughness;
    float nv = max(dot(n, v), 1e-4);
    Surface s = Surface(n, v, diffuse / PI, f0, a2, nv, sqrt(nv * nv * (1.0 - a2) + a2));
    vec3 color = vec3(0.0);
    for (int i = 0; i < u_light_count; i++) color += u_light_color[i] * brdf(s, -u_light_dir[i]);
#ifdef HAS_PUNCTUAL
    for (int i = 0; i < u_punctual_count; i++) color += punctual(i, s);
#endif
    // Ambient: irradiance for the diffuse part, the reflected direction for the specular part.
    vec3 r = reflect(-v, n);
    vec3 irradiance;
    vec3 reflected;
#ifdef HAS_SKY
    irradiance = env_irradiance(n);
    reflected = textureLod(u_env_tex, env_uv(r), roughness * u_env_lod).rgb;
#else
    irradiance = mix(u_ground, u_sky, 0.5 + 0.5 * n.y);
    reflected = mix(u_ground, u_sky, 0.5 + 0.5 * r.y);
#endif
    float w = 1.0 - nv;
    float w2 = w * w;
    vec3 f_env = f0 + (max(vec3(1.0 - roughness), f0) - f0) * (w2 * w2 * w);
    return color + occlusion * (irradiance * diffuse + reflected * f_env * (1.0 - 0.7 * roughness));
}
"""
