"""Where a 1280x720 frame's time goes on the CPU: render (draw + readback), readback alone, RGB -> YUV
conversion and H.264 encode, in this process, at full detail and at each level of detail of the
1.3-million-triangle sphere (icosphere(8), the ``large`` model of ``render_stream``).

The renderer (``openrr.render.renderer``, llvmpipe) and the encoder (``openrr.render.video_encoder``,
x264 through PyAV, 2 threads) are the render server's own; the camera orbits 1° a frame so that every
frame is new, as in ``render_stream``'s moving window. Readback alone is a ``glReadPixels`` of a cleared
720p framebuffer into numpy (what the renderer's readback costs beyond waiting for the rasteriser).
Wall and CPU time (this process, all threads) per frame, medians over ``--frames`` frames.

While levels build: frames of a 90k-triangle level rendered back to back while ``build_lods`` of the
1.3M sphere runs on another thread (as the render server builds a raw model's levels), against the same
frames without the build; and the longest stall of a thread ticking every millisecond (the event loop's
stand-in: what the GIL held by the build costs the rest of the server).

    .venv/bin/python -m bench.frame_split [--frames 30]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import moderngl
import numpy as np
import trimesh

from bench.common import write_result
from openrr.model.lod import build_lods
from openrr.model.mesh import Mesh, Primitive
from openrr.model.scene import Scene
from openrr.render.camera import Camera
from openrr.render.encoder import TIME_BASE, EncoderConfig
from openrr.render.renderer import Renderer
from openrr.render.video_encoder import VideoEncoder

WIDTH, HEIGHT = 1280, 720


def timed(fn: Callable[[], Any], frames: int) -> dict[str, float]:
    """Median wall and CPU milliseconds of ``fn`` over ``frames`` calls (after one warm-up call)."""
    fn()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(frames):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - w) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return {"wallMs": round(statistics.median(wall), 2), "cpuMs": round(statistics.median(cpu), 2)}


def sphere() -> Mesh:
    mesh = trimesh.creation.icosphere(subdivisions=8, radius=1.0)
    vertices = np.asarray(mesh.vertices, dtype=np.float32)
    primitive = Primitive(vertices, np.asarray(mesh.faces, dtype=np.uint32), normals=vertices)
    return Mesh("sphere", (primitive,))


def render_times(renderer: Renderer, mesh: Mesh, frames: int) -> tuple[dict[str, float], np.ndarray]:
    scene = Scene("bench")
    scene.add_node("sphere", mesh=Mesh(mesh.name, mesh.primitives))  # this level only, drawn whole
    renderer.set_scene(scene)
    camera = Camera.look_at((0.0, 0.6, 3.0), (0.0, 0.0, 0.0))
    camera.frame(scene.bounds(), WIDTH / HEIGHT)
    image = renderer.render(camera)

    def frame() -> None:
        nonlocal image
        camera.orbit(1.0, 0.0)
        image = renderer.render(camera)

    return timed(frame, frames), image


def readback_times(frames: int) -> dict[str, float]:
    settings: dict[str, Any] = {"backend": "egl"}  # as the renderer makes its context
    ctx = moderngl.create_context(standalone=True, require=330, **settings)
    fbo = ctx.simple_framebuffer((WIDTH, HEIGHT))
    out = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)

    def read() -> None:
        fbo.use()
        fbo.clear(0.2, 0.3, 0.4)
        fbo.read_into(out, components=3)

    result = timed(read, frames)
    ctx.release()
    return result


def encode_times(image: np.ndarray, frames: int) -> dict[str, float]:
    encoder = VideoEncoder(EncoderConfig(width=WIDTH, height=HEIGHT, hardware="off"))
    pts = [0]
    step = int(1 / (30 * TIME_BASE))  # 3000 ticks of 90 kHz: 30 fps
    moving = image.copy()

    def encode() -> None:
        nonlocal moving
        moving = np.roll(moving, 4, axis=1)  # a new picture each frame, as while the camera moves
        pts[0] += step
        encoder.encode(moving, pts[0])

    total = timed(encode, frames)
    stats = encoder.stats()
    encoder.close()
    return total | {
        "convertMsMean": round(stats.convert_ms_avg, 2),
        "encodeMsMean": round(stats.encode_ms_avg, 2),
    }


def ticker_stalls(stop: threading.Event, stalls: list[float]) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        stalls.append((now - last) * 1000)
        last = now


def while_building(renderer: Renderer, base: Mesh, level: Mesh, frames: int) -> dict[str, Any]:
    """Frame times of ``level`` with and without ``build_lods(base)`` running on another thread."""
    out: dict[str, Any] = {}
    for name, build in (("alone", False), ("whileBuilding", True)):
        stop, stalls = threading.Event(), list[float]()
        tick = threading.Thread(target=ticker_stalls, args=(stop, stalls))
        tick.start()
        worker = threading.Thread(target=build_lods, args=(base,)) if build else None
        started = time.perf_counter()
        if worker is not None:
            worker.start()
        times, _ = render_times(renderer, level, frames)
        if worker is not None:
            worker.join()
        stop.set()
        tick.join()
        out[name] = times | {
            "tickerStallMaxMs": round(max(stalls), 1),
            "tickerStallP99Ms": round(float(np.percentile(stalls, 99)), 1),
            "seconds": round(time.perf_counter() - started, 2),
        }
        print(f"{name}: {out[name]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    base = sphere()
    started = time.perf_counter()
    levels = build_lods(base)
    build_s = time.perf_counter() - started
    renderer = Renderer(WIDTH, HEIGHT)
    rows: dict[str, Any] = {}
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for mesh in (base, *(level.mesh for level in levels)):
        times, picture = render_times(renderer, mesh, args.frames)
        if mesh is base:
            image = picture
        rows[str(mesh.triangle_count)] = times
        print(f"render {mesh.triangle_count:>9,} triangles: {times}")
    overlap = while_building(renderer, base, levels[3].mesh, args.frames)
    renderer.release()
    readback = readback_times(args.frames)
    print(f"readback alone: {readback}")
    encode = encode_times(image, args.frames)
    print(f"convert + encode: {encode}")
    path = write_result(
        "frame_split",
        {
            "settings": {"size": f"{WIDTH}x{HEIGHT}", "frames": args.frames, "encoder": "x264, 2 threads"},
            "levelsBuildS": round(build_s, 2),
            "renderByTriangles": rows,
            "readbackAlone": readback,
            "renderWhileLevelsBuild": overlap,
            "convertAndEncode": encode,
        },
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
