"""Rendering cost of the scene states: 8 cut planes, a selection outline and a see-through entity.

A real ``Renderer`` (moderngl on EGL; Mesa llvmpipe on this machine) at 1280x720 draws the ~100k-triangle
scene of ``bench.render_stream`` (icosphere(6, r=1) + icosphere(5, r=0.5) at x = 1.6 = 102,400 triangles,
smooth normals) while the camera orbits 1 degree per frame, as the moving-camera stream does. Modes,
each camera step rendered in all of them (in a rotating order) so that the machine's load falls on all
of them alike:

* ``none``: no state in use (the stream's ordinary cost);
* ``cuts``: 8 cut planes (attached to entities, fade length 0.1) cutting a cap off the big sphere toward
  each corner of its bounding box (their filter mask leaves the small one whole);
* ``outline``: the big sphere selected, its outline pulsing;
* ``seeThrough``: the small sphere see-through;
* ``all``: the three together.

Per mode: the median and p90 of ``Renderer.render`` (draw and read-back, ``RenderStats.frame_ms``), the
median CPU time of this process per render (llvmpipe rasterises on threads of its own) and the
frame rate that render time allows. In the stream, rendering frame N+1 overlaps encoding frame N (one core
each), so the stream holds 30 fps while a render stays within the 33 ms frame interval; at 1280x720 the
encoder takes about 5 ms of the other core (bench/results/render_stream.json).

    .venv/bin/python -m bench.scene_features [--frames 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import trimesh

from bench.common import percentile, write_result
from openrr.model.components import (
    CUT_PLANE,
    STATE_OVERRIDE,
    CutPlane,
    OutlineSettings,
    StateFlag,
    StateOverride,
)
from openrr.model.mesh import Material, Mesh, Primitive
from openrr.model.scene import Scene
from openrr.render.camera import Camera
from openrr.render.renderer import Renderer

WIDTH, HEIGHT = 1280, 720
GOAL_FPS = 30.0
MODES = ("none", "cuts", "outline", "seeThrough", "all")


def sphere(subdivisions: int, radius: float, rgba: tuple[float, float, float, float]) -> Mesh:
    shape = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    material = Material(base_color_factor=rgba, metallic_factor=0.0, roughness_factor=0.6)
    primitive = Primitive(shape.vertices, shape.faces, normals=shape.vertices / radius, material=material)
    return Mesh(f"ico{subdivisions}", (primitive,))


def build_scene() -> tuple[Scene, dict[str, Callable[[bool], None]]]:
    """The scene and, per feature, a switch that turns it on or off."""
    scene = Scene("bench")
    big = scene.add_node("Big", mesh=sphere(6, 1.0, (0.78, 0.31, 0.16, 1.0)))
    small = scene.add_node("Small", mesh=sphere(5, 0.5, (0.16, 0.47, 0.86, 1.0)))
    small.transform = trimesh.transformations.translation_matrix([1.6, 0.0, 0.0])
    planes = []
    for i in range(8):  # a cap off each corner direction of the big sphere, each plane 0.85 from its centre
        x, y, z = (-1.0 if i & bit else 1.0 for bit in (1, 2, 4))
        normal = (x, y, z)
        node = scene.add_node(f"cut{i}")
        node.transform = trimesh.transformations.translation_matrix(0.85 * np.array(normal) / np.sqrt(3))
        planes.append((node.id, CutPlane(normal, (0.1, 0.9, 0.2, 1.0), 0.1, object_filter_mask=1)))

    def cuts(on: bool) -> None:
        for node_id, plane in planes:
            if on:
                scene.set_component(node_id, CUT_PLANE, plane)
            elif CUT_PLANE in scene.node(node_id).components:
                scene.remove_component(node_id, CUT_PLANE)

    def flag(node_id: int, state: StateFlag) -> Callable[[bool], None]:
        def switch(on: bool) -> None:
            # The planes' filter mask (1) leaves the small sphere alone (its mask is 2): it stays whole.
            flags = {state: on, StateFlag.USE_CUT_PLANE_FILTER_MASK: True}
            scene.set_component(node_id, STATE_OVERRIDE, StateOverride(flags, cut_plane_filter_mask=mask))

        mask = 1 if node_id == big.id else 2
        return switch

    scene.outline = OutlineSettings(color=(1.0, 0.6, 0.0), pulse_rate=1.0, pulse_intensity=0.5)
    switches = {
        "cuts": cuts,
        "outline": flag(big.id, StateFlag.SELECTED),
        "seeThrough": flag(small.id, StateFlag.SEE_THROUGH),
    }
    return scene, switches


def measure(renderer: Renderer, camera: Camera) -> tuple[float, float]:
    """Wall ms of one ``render`` and the CPU ms this process spent on it (llvmpipe's threads too)."""
    started = time.process_time()
    renderer.render(camera)
    return renderer.stats.frame_ms, (time.process_time() - started) * 1000.0


def summary(wall: list[float], cpu: list[float]) -> dict[str, float]:
    median = statistics.median(wall)
    return {
        "renderMsMedian": round(median, 2),
        "renderMsP90": round(percentile(wall, 0.9), 2),
        "cpuMsMedian": round(statistics.median(cpu), 2),
        "fpsAllowed": round(1000.0 / median, 1),
        "frames": len(wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=100, help="camera steps, each rendered in every mode")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    scene, switches = build_scene()
    wall: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    with Renderer(WIDTH, HEIGHT) as renderer:
        renderer.set_scene(scene)
        camera = Camera.look_at((0.8, 0.6, 3.2), (0.8, 0.0, 0.0), fov=60)
        for mode in MODES:  # compile every program variant before timing
            set_mode(switches, mode)
            measure(renderer, camera)
        # Every camera step is rendered in every mode, in a rotating order: the machine's load changes
        # from moment to moment and falls on all modes alike.
        for step in range(args.frames):
            camera.orbit(1.0, 0.0)
            for k in range(len(MODES)):
                mode = MODES[(step + k) % len(MODES)]
                set_mode(switches, mode)
                frame_wall, frame_cpu = measure(renderer, camera)
                wall[mode].append(frame_wall)
                cpu[mode].append(frame_cpu)
        gl_renderer = renderer.gl_renderer
    result = {mode: summary(wall[mode], cpu[mode]) for mode in MODES}
    for mode in MODES:
        result[mode]["ratioToNone"] = round(
            result[mode]["renderMsMedian"] / result["none"]["renderMsMedian"], 2
        )
        result[mode]["cpuRatioToNone"] = round(result[mode]["cpuMsMedian"] / result["none"]["cpuMsMedian"], 2)
    goal_met = result["all"]["renderMsMedian"] <= 1000.0 / GOAL_FPS
    path = write_result(
        "scene_features",
        {
            "settings": {
                "frame": f"{WIDTH}x{HEIGHT}",
                "scene": "icosphere(6, r=1) + icosphere(5, r=0.5), 102,400 triangles, smooth normals",
                "camera": "orbit 1 deg per frame",
                "framesPerMode": args.frames,
                "glRenderer": gl_renderer,
                "loadAverage1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
            },
            "goal": f"render of 'all' within {1000.0 / GOAL_FPS:.1f} ms (the stream holds {GOAL_FPS:g} fps)",
            "goalMet": goal_met,
            "modes": result,
        },
    )
    print(json.dumps(result, indent=2))
    print(f"goal met: {goal_met}; written to {path}")


def set_mode(switches: dict[str, Callable[[bool], None]], mode: str) -> None:
    for name, switch in switches.items():
        switch(mode in (name, "all"))


if __name__ == "__main__":
    main()
