"""The scene's own lights (ARR's point, spot and directional light components) as mesh-program uniforms.

Apart from ``shaders.py``, which holds the GLSL that shades with them: this packs
``WorldState.lights`` (world space, resolved by ``openrr.model.world``) into fixed-size uniform arrays,
at most ``MAX_PUNCTUAL`` of them (the protocol's ``MAX_LIGHTS``), in addition to the renderer's own
head-light rig. No shadows, as in ARR.

Per light i: ``u_punctual_pos[i]`` = (position, range; range 0: unbounded), ``u_punctual_dir[i]`` =
(direction the light travels, kind: 0 point, 1 spot, 2 directional), ``u_punctual_color[i]`` = colour
times intensity, ``u_punctual_cone[i]`` = (cos outer, cos inner) half angles. Point and spot lights fall
off with the inverse square of the distance, windowed smoothly to 0 at ``range`` (glTF
KHR_lights_punctual's recommendation); spots blend from the outer to the inner cone with a smoothstep.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openrr.model.components import WorldLight
from openrr.protocol.scene_api import MAX_LIGHTS

MAX_PUNCTUAL = MAX_LIGHTS
KIND_CODES = {"PointLight": 0.0, "SpotLight": 1.0, "DirectionalLight": 2.0}
_CONE_GAP = 1e-4  # smoothstep needs its lower edge strictly below the upper one


def punctual_uniforms(lights: Sequence[WorldLight]) -> dict[str, bytes]:
    """The uniforms of the first ``MAX_PUNCTUAL`` lights, as bytes ready for ``Uniform.write``."""
    lights = lights[:MAX_PUNCTUAL]
    positions = np.zeros((MAX_PUNCTUAL, 4), dtype=np.float32)
    directions = np.zeros((MAX_PUNCTUAL, 4), dtype=np.float32)
    colors = np.zeros((MAX_PUNCTUAL, 3), dtype=np.float32)
    cones = np.zeros((MAX_PUNCTUAL, 2), dtype=np.float32)
    for i, light in enumerate(lights):
        positions[i] = (*light.position, max(light.range, 0.0))
        directions[i] = (*light.direction, KIND_CODES[light.kind])
        colors[i] = light.color
        cos_outer = min(light.cos_outer, 1.0 - _CONE_GAP)
        cones[i] = (cos_outer, max(light.cos_inner, cos_outer + _CONE_GAP))
    return {
        "u_punctual_count": np.int32(len(lights)).tobytes(),
        "u_punctual_pos": positions.tobytes(),
        "u_punctual_dir": directions.tobytes(),
        "u_punctual_color": colors.tobytes(),
        "u_punctual_cone": cones.tobytes(),
    }
