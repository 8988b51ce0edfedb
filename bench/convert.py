"""Model conversion: converting a 1.31M-triangle GLB, loading the asset against the raw GLB, fps after.

The model is render_stream's large.glb: an icosphere (subdivisions 8, radius 1) = 1,310,720 triangles,
655,362 vertices with normals and a PBR material, 23.6 MB; a third more than the 1M triangles of the
goals, so meeting them here meets them there.

* conversion: ``openrr.assets.convert.convert_model`` end to end (read, settings, levels of detail,
  write the asset and the JSON files), the median of ``--runs`` runs on this machine's cores;
* loading: ``openrr.model.loader.load_model`` (what the render server calls) on the raw GLB and on
  the asset (levels of detail included), files in the page cache, the median of ``--loads`` loads;
  also ``read_asset`` without levels of detail and without checksums, to show where the time goes;
* rendering: ``Renderer`` at 1280x720 (llvmpipe without a GPU), the camera orbiting 1° a frame,
  ``--frames`` frames after two warm-up frames, at three distances: framed (the sphere fills the
  frame's height), mid (about 160 px tall) and far (about 80 px). The raw GLB draws every triangle at
  every distance; the asset's mesh carries two levels of detail and the renderer picks the coarsest
  whose error stays under a pixel. Triangles drawn per frame come from ``Renderer.stats``.

Goals (issue #6): conversion ≤ 5 s on 2 cores; the asset loads ≥ 5x faster than the GLB.

    .venv/bin/python -m bench.convert [--runs 3] [--loads 7] [--frames 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from bench.common import write_result
from openrr.assets.convert import convert_model
from openrr.model.arrasset.reader import read_asset
from openrr.model.loader import load_model
from openrr.model.scene import Scene
from openrr.render.camera import Camera
from openrr.render.renderer import Renderer

WIDTH, HEIGHT = 1280, 720
GOALS = {"convertSeconds": 5.0, "loadSpeedup": 5.0}
DISTANCES = {"framed": None, "mid": 160, "far": 80}  # the sphere's height on screen in pixels


def write_model(path: Path) -> int:
    sphere = trimesh.creation.icosphere(subdivisions=8, radius=1.0)
    sphere.vertex_normals = sphere.vertices  # exact for a unit sphere; exported as NORMAL
    sphere.visual = trimesh.visual.TextureVisuals(
        material=trimesh.visual.material.PBRMaterial(
            name="M8", baseColorFactor=(180, 180, 190, 255), metallicFactor=0.0, roughnessFactor=0.6
        )
    )
    scene = trimesh.Scene()
    scene.add_geometry(sphere, node_name="Sphere", geom_name="SphereMesh")
    path.write_bytes(scene.export(file_type="glb"))
    return len(sphere.faces)


def timed(action: Callable[[], Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {"medianS": round(statistics.median(times), 4), "minS": round(min(times), 4), "runs": len(times)}


def camera_at(scene: Scene, pixels: int | None) -> Camera:
    camera = Camera.look_at((0.0, 0.0, 3.0), (0.0, 0.0, 0.0), fov=60.0)
    camera.frame(scene.bounds(), WIDTH / HEIGHT)
    if pixels is not None:
        # A unit sphere seen from d covers about 2 * focal / d pixels (focal in pixels).
        focal = HEIGHT / (2 * np.tan(np.radians(camera.fov) / 2))
        camera.zoom(camera.distance / (2 * focal / pixels))
    return camera


def render_fps(renderer: Renderer, scene: Scene, pixels: int | None, frames: int) -> dict[str, Any]:
    renderer.set_scene(scene)
    camera = camera_at(scene, pixels)
    for _ in range(2):  # uploads and shader compilation
        renderer.render(camera)
    start = time.perf_counter()
    for _ in range(frames):
        camera.orbit(1.0, 0.0)
        renderer.render(camera)
    elapsed = time.perf_counter() - start
    return {
        "fps": round(frames / elapsed, 2),
        "frameMs": round(1000 * elapsed / frames, 1),
        "trianglesDrawn": renderer.stats.triangles,
        "cameraDistance": round(camera.distance, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="conversions to time")
    parser.add_argument("--loads", type=int, default=7, help="loads of each file to time")
    parser.add_argument("--frames", type=int, default=20, help="frames per rendering measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="openrr-bench-convert-") as folder:
        root = Path(folder)
        source = root / "large.glb"
        triangles = write_model(source)
        glb_bytes = source.stat().st_size
        print(f"model: {triangles} triangles, {glb_bytes} bytes")

        results: list[Any] = []
        convert_times = timed(
            lambda: results.append(convert_model(source, root / "out", "large", None)), args.runs
        )
        conversion = results[-1]
        steps = conversion.info["openrr"]["seconds"]
        print(f"convert: median {statistics.median(convert_times):.2f} s  {steps}")
        asset_path = conversion.asset_path

        raw_times = timed(lambda: load_model(source), args.loads)
        asset_times = timed(lambda: load_model(asset_path), args.loads)
        data = asset_path.read_bytes()
        bare_times = timed(lambda: read_asset(data, lods=False), args.loads)
        unchecked_times = timed(lambda: read_asset(data, lods=False, verify=False), args.loads)
        speedup = statistics.median(raw_times) / statistics.median(asset_times)
        ms = {k: round(statistics.median(v) * 1000) for k, v in (("glb", raw_times), ("asset", asset_times))}
        print(
            f"load: GLB {ms['glb']} ms, asset {ms['asset']} ms ({speedup:.1f}x); read_asset from memory "
            f"without LODs {statistics.median(bare_times) * 1000:.0f} ms, also without checksums "
            f"{statistics.median(unchecked_times) * 1000:.0f} ms"
        )

        raw_scene, asset_scene = load_model(source), load_model(asset_path)
        mesh = asset_scene.meshes()[0]
        rendering: dict[str, Any] = {"raw": {}, "asset": {}}
        with Renderer(WIDTH, HEIGHT) as renderer:
            gl = renderer.gl_renderer
            for name, pixels in DISTANCES.items():
                rendering["raw"][name] = render_fps(renderer, raw_scene, pixels, args.frames)
                rendering["asset"][name] = render_fps(renderer, asset_scene, pixels, args.frames)
                print(f"render {name}: raw {rendering['raw'][name]}  asset {rendering['asset'][name]}")
            renderer.set_scene(None)

    result = {
        "model": {"triangles": triangles, "vertices": 655362, "glbBytes": glb_bytes},
        "conversion": {
            **summary(convert_times),
            "steps": conversion.info["openrr"]["seconds"],
            "assetBytes": conversion.asset_bytes,
            "levelsOfDetail": conversion.info["openrr"]["levelsOfDetail"],
            "lodErrors": [round(level.error, 5) for level in mesh.lods],
        },
        "loading": {
            "glb": summary(raw_times),
            "asset": summary(asset_times),
            "speedup": round(speedup, 2),
            "readAssetWithoutLods": summary(bare_times),
            "readAssetWithoutLodsOrChecksums": summary(unchecked_times),
        },
        "rendering": {"resolution": [WIDTH, HEIGHT], "glRenderer": gl, "frames": args.frames, **rendering},
        "goals": GOALS,
        "met": {
            "convertSeconds": statistics.median(convert_times) <= GOALS["convertSeconds"],
            "loadSpeedup": speedup >= GOALS["loadSpeedup"],
        },
    }
    print(f"results: {write_result('convert', result)}")


if __name__ == "__main__":
    main()
