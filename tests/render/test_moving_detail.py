"""A real render pipeline (llvmpipe) with a raw GLB: levels of detail built in the background, drawn
while the camera moves under a frame budget, and the full-detail frame rendered by the pipeline itself
once the camera stops (no new pose, nobody asking for a frame)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trimesh

from openrr.model.budget import Allowance
from openrr.model.sources import ModelSourcePolicy
from openrr.render.lod_builder import LodBuilder
from openrr.render.pipeline import RenderPipeline

W, H = 320, 180
SUBDIVISIONS = 5  # 20,480 triangles: levels at 0.5 and 0.25 (the smaller ones would be under LOD_SMALLEST)
TRIANGLES = 20 * 4**SUBDIVISIONS


def sphere_glb(directory: Path) -> Path:
    sphere = trimesh.creation.icosphere(subdivisions=SUBDIVISIONS, radius=1.0)
    sphere.vertex_normals = sphere.vertices
    scene = trimesh.Scene()
    scene.add_geometry(sphere, node_name="Sphere", geom_name="SphereMesh")
    path = directory / "sphere.glb"
    path.write_bytes(scene.export(file_type="glb"))
    return path


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[RenderPipeline]:
    sphere_glb(tmp_path)
    # A budget no frame can keep: every moving frame is drawn at the coarsest level there is.
    p = RenderPipeline(W, H, policy=ModelSourcePolicy(roots=(tmp_path,)), frame_budget_ms=0.001)
    p.lods.min_triangles = 10_000  # levels for this small sphere too (by default from 200,000)
    await p.start()
    yield p
    await p.close()


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition()`` until true; a generous deadline only turns a hang into a failure."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_raw_glb_gets_levels_in_the_background_and_the_still_frame_is_full(
    pipeline: RenderPipeline,
) -> None:
    loaded = await pipeline.load("sphere.glb", "sphere")
    assert loaded.polygons == TRIANGLES
    mesh = pipeline.scene.meshes()[0]
    await pipeline.lods.wait()
    assert [level.mesh.triangle_count < TRIANGLES for level in mesh.lods] == [True, True]
    assert pipeline.lods.meshes_done == 1
    assert pipeline.lods.built_bytes > 0
    coarsest = mesh.lods[-1].mesh.triangle_count

    # Close to the sphere: every level's error shows, so only the budget makes a frame coarser.
    pipeline.camera.zoom(2.0)
    pipeline.camera_changed(pose_id=1)
    for pose in range(2, 6):  # moving: a few frames, each from a new pose
        pipeline.camera.orbit(5, 0)
        pipeline.camera_changed(pose_id=pose)
        frame = await pipeline.latest_frame()
    moving = [f.triangles for f in (pipeline.frame_info(i) for i in range(1, frame.frame_id + 1)) if f]
    assert coarsest in moving  # drawn at the coarsest level while moving

    # The camera stops: no pose, no pull. The pipeline renders the full-detail frame by itself.
    last_id = frame.frame_id

    def refined() -> bool:
        latest, inflight = pipeline.frames.latest, pipeline.frames.inflight
        settled = inflight is None or inflight.done()
        full = latest is not None and latest.frame_id > last_id and latest.triangles == TRIANGLES
        return full and settled

    await wait_for(refined, "a refined frame after the camera stopped")
    stats = pipeline.stats()
    assert stats["polygonsDrawn"] == stats["polygons"] == TRIANGLES
    latest = pipeline.frames.latest
    assert latest is not None
    assert latest.triangles == TRIANGLES
    assert latest.pose_id == 5  # the last pose's picture, refined


async def test_levels_that_would_not_fit_the_allowance_are_not_built(tmp_path: Path) -> None:
    sphere_glb(tmp_path)
    p = RenderPipeline(W, H, policy=ModelSourcePolicy(roots=(tmp_path,)))
    await p.start()
    try:
        p.lods.close()
        p.lods = LodBuilder(p.on_gl, lambda: p.scene, p.changed, lambda: Allowance(geometry_bytes=1000))
        p.lods.min_triangles = 10_000
        await p.load("sphere.glb", "sphere")
        await p.lods.wait()
        assert p.scene.meshes()[0].lods == ()
        assert p.lods.built_bytes == 0
        frame = await p.latest_frame()
        assert frame.triangles == TRIANGLES
    finally:
        await p.close()
