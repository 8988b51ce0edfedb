"""Levels of detail for models loaded raw (glTF/GLB, OBJ...): built in the background after the load.

Converted assets carry their levels (the converter builds them, ``model/lod.py``); a model loaded from
its source file has none, so a big one could only be drawn whole. Apart from ``pipeline.py``: after a
load, this builds the levels of each big mesh on a worker thread of its own (``openrr-lod``), one mesh at
a time, and swaps them in on the GL thread when ready; frames before that draw full detail. The vertex
clustering is numpy sorts and bincounts, which run mostly without the GIL, so the event loop and the
GL thread (whose draws and readback release the GIL too) keep their pace meanwhile.

Memory: the levels of a mesh take about as much as the mesh (``LOD_RATIOS`` sum to under 1), and
building them needs a few arrays of the size of its vertex array on top, for one mesh at a time. A mesh
is skipped (drawn whole, as before) when its levels would not fit in what is left of the session's
geometry allowance, or would take the levels built by this server past ``MAX_LEVEL_BYTES``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from openrr.model.budget import Allowance, bytes_text
from openrr.model.lod import LOD_MIN_TRIANGLES, LOD_RATIOS, build_lods
from openrr.model.mesh import LodLevel, Mesh
from openrr.model.scene import Scene

log = logging.getLogger(__name__)

MAX_LEVEL_BYTES = 2 << 30  # levels one render server builds at most, whatever its allowance


class _Closed(Exception):
    """Raised between two levels once the builder is closed: a stopping server does not wait for the rest
    (the worker thread is joined at exit)."""


def geometry_bytes(mesh: Mesh) -> int:
    """What the mesh's arrays take in memory (positions, indices and attributes)."""
    total = 0
    for p in mesh.primitives:
        for array in (p.positions, p.indices, p.normals, p.uvs, p.colors):
            if array is not None:
                total += array.nbytes
    return total


class LodBuilder:
    """Builds the missing levels of big meshes in the background (see the module doc).

    ``on_gl`` runs a function on the GL thread (where the swap must happen: the renderer reads
    ``Mesh.lods`` there), ``scene`` gives the session's current scene (its structure revision is bumped
    so the renderer uploads the levels), ``changed`` has the picture redrawn, ``allowance`` says what
    the session may still take.
    """

    def __init__(
        self,
        on_gl: Callable[[Callable[[], None]], Awaitable[None]],
        scene: Callable[[], Scene],
        changed: Callable[[], None],
        allowance: Callable[[], Allowance],
        *,
        min_triangles: int = LOD_MIN_TRIANGLES,
    ) -> None:
        self._on_gl = on_gl
        self._scene = scene
        self._changed = changed
        self._allowance = allowance
        self.min_triangles = min_triangles
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openrr-lod")
        self._tasks: set[asyncio.Task[None]] = set()
        self.built_bytes = 0  # the levels this server built, all models together
        self._closed = False
        self.meshes_done = 0

    def start(self, parsed: Scene) -> asyncio.Task[None] | None:
        """Build the levels ``parsed``'s big meshes lack (call on the event loop after inserting it)."""
        meshes: dict[int, Mesh] = {}
        for mesh in parsed.meshes():
            if not mesh.lods and mesh.triangle_count >= self.min_triangles:
                meshes.setdefault(id(mesh), mesh)
        if not meshes:
            return None
        task = asyncio.create_task(self._build(list(meshes.values())))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("building levels of detail failed: %s", exc, exc_info=exc)

    async def wait(self) -> None:
        """Until every build started so far has finished (for tests and benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _room(self, mesh: Mesh) -> str | None:
        """Why the levels of ``mesh`` may not be built, or None when they may."""
        estimate = int(geometry_bytes(mesh) * sum(LOD_RATIOS))
        if self.built_bytes + estimate > MAX_LEVEL_BYTES:
            return f"its levels would take this server past {bytes_text(MAX_LEVEL_BYTES)} of levels"
        allowance = self._allowance()
        left = allowance.geometry_bytes
        if left is not None and allowance.used.geometry_bytes + estimate > left:
            return f"its levels ({bytes_text(estimate)}) would not fit in the session's geometry allowance"
        return None

    async def _build(self, meshes: list[Mesh]) -> None:
        loop = asyncio.get_running_loop()
        for mesh in meshes:
            refused = self._room(mesh)
            if refused is not None:
                log.info("no levels of detail for %r: %s", mesh.name, refused)
                continue
            build = functools.partial(
                build_lods, mesh, min_triangles=self.min_triangles, progress=self._stop_if_closed
            )
            try:
                levels = await loop.run_in_executor(self._pool, build)
            except _Closed:
                return
            if levels:
                self.built_bytes += sum(geometry_bytes(level.mesh) for level in levels)
                await self._on_gl(functools.partial(self._swap, mesh, levels))
                self._changed()
            self.meshes_done += 1

    def _stop_if_closed(self, _message: str) -> None:
        if self._closed:
            raise _Closed

    def _swap(self, mesh: Mesh, levels: tuple[LodLevel, ...]) -> None:
        mesh.lods = levels
        # The renderer uploads and releases meshes on structure changes only: this is one.
        self._scene().structure_revision += 1
        log.info(
            "levels of detail for %r: %s triangles",
            mesh.name,
            ", ".join(str(level.mesh.triangle_count) for level in levels),
        )

    def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
