"""A real render pipeline (llvmpipe) with a raw GLB: levels of detail built in the background, drawn
while the camera moves under a frame budget, and the full-detail frame rendered by the pipeline itself
once the camera stops (no new pose, nobody asking for a frame); what the levels take of the session's
geometry allowance, and their release with their model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trimesh

from openrr.model.budget import usage
from openrr.model.loader import load_model
from openrr.model.lod import LOD_RATIOS
from openrr.model.mesh import Mesh
from openrr.model.sources import ModelSourcePolicy
from openrr.protocol.handshake import RenderLimits
from openrr.render import lod_builder
from openrr.render.lod_builder import geometry_bytes
from openrr.render.pipeline import RenderPipeline
from openrr.render.session_models import ModelError

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


def spheres_glb(directory: Path, count: int) -> Path:
    """``count`` spheres side by side, each a mesh of its own."""
    scene = trimesh.Scene()
    for i in range(count):
        sphere = trimesh.creation.icosphere(subdivisions=SUBDIVISIONS, radius=1.0)
        sphere.vertex_normals = sphere.vertices
        sphere.apply_translation((3.0 * i, 0.0, 0.0))
        scene.add_geometry(sphere, node_name=f"Sphere{i}", geom_name=f"SphereMesh{i}")
    path = directory / f"spheres{count}.glb"
    path.write_bytes(scene.export(file_type="glb"))
    return path


def sizes(path: Path) -> tuple[int, int]:
    """(geometry bytes of the model as read, the estimate taken for one of its meshes' levels)."""
    parsed = load_model(path)
    return usage(parsed).geometry_bytes, int(geometry_bytes(parsed.meshes()[0]) * sum(LOD_RATIOS))


def limited(tmp_path: Path, scene_bytes: int) -> RenderPipeline:
    p = RenderPipeline(
        W, H, policy=ModelSourcePolicy(roots=(tmp_path,)), limits=RenderLimits(scene_bytes=scene_bytes)
    )
    p.lods.min_triangles = 10_000
    return p


def spent(p: RenderPipeline) -> int:
    return sum(m.usage.geometry_bytes for m in p.models.values())


def level_bytes(mesh: Mesh) -> int:
    return sum(geometry_bytes(level.mesh) for level in mesh.lods)


async def test_levels_that_would_not_fit_the_allowance_are_not_built(tmp_path: Path) -> None:
    read, estimate = sizes(sphere_glb(tmp_path))
    p = limited(tmp_path, read + estimate - 1)  # the model fits, its levels do not
    await p.start()
    try:
        loaded = await p.load("sphere.glb", "sphere")
        await p.lods.wait()
        assert p.scene.meshes()[0].lods == ()
        assert p.lods.built_bytes == 0
        assert loaded.usage.geometry_bytes == read
        frame = await p.latest_frame()
        assert frame.triangles == TRIANGLES
    finally:
        await p.close()


async def test_levels_are_taken_from_the_session_allowance(tmp_path: Path) -> None:
    """Two big meshes with room for the levels of one: the first mesh's levels count in the model's usage,
    so the second's no longer fit, and the session stays within its limit."""
    read, estimate = sizes(spheres_glb(tmp_path, 2))
    limit = read + estimate + 1000
    p = limited(tmp_path, limit)
    await p.start()
    try:
        loaded = await p.load("spheres2.glb", "spheres")
        await p.lods.wait()
        with_levels = [m for m in p.scene.meshes() if m.lods]
        assert len(with_levels) == 1  # each would have fit alone
        assert (
            loaded.usage.geometry_bytes == read + level_bytes(with_levels[0]) == usage(p.scene).geometry_bytes
        )
        assert spent(p) <= limit
        assert p.lods.built_bytes == level_bytes(with_levels[0])
        # What the levels took is not left for the next model.
        with pytest.raises(ModelError, match="geometry"):
            await p.load("spheres2.glb", "again")
    finally:
        await p.close()


async def test_unloading_a_model_releases_its_levels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The levels of an unloaded model, or of one the reset after its client dropped, leave the session's
    usage and the server's levels: the next model's levels are built, session after session."""
    read, estimate = sizes(sphere_glb(tmp_path))
    # Room for one model's levels on the server: any left over from an earlier model would stop the next.
    monkeypatch.setattr(lod_builder, "MAX_LEVEL_BYTES", estimate + 1000)
    limit = read + estimate + 1000
    p = limited(tmp_path, limit)
    await p.start()
    try:
        for model_id in ("first", "second"):
            loaded = await p.load("sphere.glb", model_id)
            await p.lods.wait()
            mesh = p.scene.meshes()[0]
            assert len(mesh.lods) == 2
            assert loaded.usage.geometry_bytes == read + level_bytes(mesh) <= limit
            assert p.lods.built_bytes == level_bytes(mesh)
            await p.unload(model_id)
            assert p.lods.built_bytes == 0
        await p.load("sphere.glb", "before a reset")
        await p.lods.wait()
        assert p.lods.built_bytes > 0
        await p.reset()  # a pooled server's next session starts from here
        assert p.lods.built_bytes == 0
        await p.load("sphere.glb", "next session")
        await p.lods.wait()
        assert len(p.scene.meshes()[0].lods) == 2
    finally:
        await p.close()


async def test_a_preloaded_models_levels_stay_counted_across_resets(tmp_path: Path) -> None:
    """A preloaded model's levels stay on its parsed meshes, which every reset restores: they stay counted,
    in the model's usage and the server's levels."""
    read, estimate = sizes(sphere_glb(tmp_path))
    p = limited(tmp_path, read + estimate + 1000)
    await p.start()
    try:
        await p.load("sphere.glb", "own", preload=True)
        await p.lods.wait()
        held = level_bytes(p.scene.meshes()[0])
        assert held > 0
        await p.unload("own")
        assert p.lods.built_bytes == held
        await p.reset()
        restored = p.models["own"]
        assert p.scene.meshes()[0].lods
        assert restored.usage.geometry_bytes == read + held == usage(p.scene).geometry_bytes
        assert p.lods.built_bytes == held
    finally:
        await p.close()
