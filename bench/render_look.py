"""What a sky and the scene's own lights cost per frame: render time at 1280x720 (llvmpipe here).

One renderer, one scene (a 6 x 4 grid of spheres filling most of the frame, on a floor), rendered in four
configurations in one run: the classic look, a builtin sky, 8 point lights, and both. Reports the median
and the 90th percentile of ``Renderer.render`` (draw and readback) over ``--frames`` frames each, after
warm-up frames (the sky's prefiltering and upload happen in the warm-up).

    .venv/bin/python -m bench.render_look [--frames 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import trimesh

from bench.common import percentile, write_result
from openrr.model.components import Light
from openrr.model.mesh import Material, Mesh, Primitive
from openrr.model.scene import Scene
from openrr.model.skies import builtin_sky
from openrr.render.camera import Camera
from openrr.render.renderer import Renderer

WIDTH, HEIGHT = 1280, 720


def build_scene() -> Scene:
    scene = Scene("look")
    ico = trimesh.creation.icosphere(subdivisions=3)
    materials = [
        Material(base_color_factor=(0.8, 0.3, 0.2, 1.0), metallic_factor=0.0, roughness_factor=0.5),
        Material(base_color_factor=(0.9, 0.9, 0.9, 1.0), metallic_factor=1.0, roughness_factor=0.1),
    ]
    balls = [
        Mesh(f"ball{i}", (Primitive(ico.vertices, ico.faces, material=m, normals=ico.vertices),))
        for i, m in enumerate(materials)
    ]
    for i in range(6):
        for j in range(4):
            matrix = np.eye(4)
            matrix[:3, 3] = (i * 2.2 - 5.5, j * 2.2 - 3.3, 0.0)
            scene.add_node(f"ball{i}{j}", mesh=balls[(i + j) % 2], transform=matrix)
    floor = trimesh.creation.box(extents=(16.0, 0.2, 8.0))
    floor.apply_translation((0.0, -4.6, 0.0))
    matte = Material(base_color_factor=(0.5, 0.5, 0.5, 1.0), metallic_factor=0.0)
    scene.add_node(
        "floor",
        mesh=Mesh(
            "floor", (Primitive(floor.vertices, floor.faces, material=matte, normals=floor.vertex_normals),)
        ),
    )
    return scene


def add_lights(scene: Scene, count: int) -> list[int]:
    ids = []
    for k in range(count):
        angle = 2 * np.pi * k / count
        matrix = np.eye(4)
        matrix[:3, 3] = (6 * np.cos(angle), 6 * np.sin(angle), 3.0)
        node = scene.add_node(f"lamp{k}", transform=matrix)
        colour = (0.5 + 0.5 * np.cos(angle), 0.6, 0.5 + 0.5 * np.sin(angle))
        scene.set_component(
            node.id, "PointLight", Light("PointLight", color=colour, intensity=8.0, range=20.0)
        )
        ids.append(node.id)
    return ids


def measure(renderer: Renderer, camera: Camera, frames: int) -> dict[str, float]:
    for _ in range(3):
        renderer.render(camera)
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        renderer.render(camera)
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": round(percentile(times, 0.5), 2), "p90_ms": round(percentile(times, 0.9), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    camera = Camera.look_at((0.0, 0.0, 11.0), (0.0, -0.5, 0.0), fov=60)
    results: dict[str, dict[str, float]] = {}
    with Renderer(WIDTH, HEIGHT) as renderer:
        scene = build_scene()
        renderer.set_scene(scene)
        results["classic"] = measure(renderer, camera, args.frames)
        scene.sky = builtin_sky("sunset")
        results["sky"] = measure(renderer, camera, args.frames)
        scene.sky = None
        lamps = add_lights(scene, 8)
        results["8_point_lights"] = measure(renderer, camera, args.frames)
        scene.sky = builtin_sky("sunset")
        results["sky_and_8_point_lights"] = measure(renderer, camera, args.frames)
        for lamp in lamps:
            scene.remove_node(lamp)
        gl = renderer.gl_renderer
    for name, figures in results.items():
        print(f"{name:24s} median {figures['median_ms']:7.2f} ms   p90 {figures['p90_ms']:7.2f} ms")
    path = write_result(
        "render_look",
        {"size": [WIDTH, HEIGHT], "gl_renderer": gl, "frames": args.frames, "results": results},
    )
    print(f"written to {path.name}")


if __name__ == "__main__":
    main()
