"""Levels of detail for models loaded raw (glTF/GLB, OBJ...): built in the background after the load.

Converted assets carry their levels (the converter builds them, ``model/lod.py``); a model loaded from
its source file has none, so a big one could only be drawn whole. Apart from ``pipeline.py``: after a
load, this builds the levels of each big mesh on a worker thread of its own (``openrr-lod``), one mesh at
a time, and swaps them in on the GL thread when ready; frames before that draw full detail. The vertex
clustering is numpy sorts and bincounts, which run mostly without the GIL, so the event loop and the
GL thread (whose draws and readback release the GIL too) keep their pace meanwhile.

Memory: the levels of a mesh take about as much as the mesh (``LOD_RATIOS`` sum to under 1), and
building them needs a few arrays of the size of its vertex array on top, for one mesh at a time. The
levels count in their model's usage (``LevelAccount``), so in the session's geometry allowance, as its
file's geometry does: before a mesh's levels are built their estimate is taken from what the session has
left, and once built their real size replaces it. A mesh whose levels would not fit (or would take the
levels this server holds past ``MAX_LEVEL_BYTES``) is skipped, drawn whole as before; levels that turn
out bigger than their estimate are kept finest first while they fit. Both steps run on the pipeline's
load thread, one after the other with model loads, so a load and a mesh's levels never both count on
the same bytes left. Unloading the model, or the reset after its client left, releases its levels.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from openrr.model.budget import Allowance, bytes_text
from openrr.model.lod import LOD_MIN_TRIANGLES, LOD_RATIOS, build_lods
from openrr.model.mesh import LodLevel, Mesh
from openrr.model.scene import Scene

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_LEVEL_BYTES = 2 << 30  # levels one render server holds at most, whatever its allowance


class RunOn(Protocol):
    """Runs a function on one of the pipeline's threads and gives its result."""

    def __call__(self, fn: Callable[[], T]) -> Awaitable[T]: ...


class _Stopped(Exception):
    """Raised between two levels once the builder is closed or the model unloaded: nobody waits for the
    rest (the worker thread is joined at exit)."""


@dataclasses.dataclass(eq=False)
class LevelAccount:
    """The bytes of the levels built (or being built) for one loaded model, part of its usage. One object
    per load, shared by the copies a reset makes of a preloaded model, which share its meshes."""

    bytes: int = 0
    stopped: bool = False  # the model was unloaded or its scene reset: no more levels for it


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
    ``Mesh.lods`` there), ``on_loads`` one on the load thread (where the levels' bytes are taken, one
    after the other with model loads), ``scene`` gives the session's current scene (its structure
    revision is bumped so the renderer uploads the levels), ``changed`` has the picture redrawn,
    ``allowance`` says what the session may still take (its models' levels included).
    """

    def __init__(
        self,
        on_gl: RunOn,
        on_loads: RunOn,
        scene: Callable[[], Scene],
        changed: Callable[[], None],
        allowance: Callable[[], Allowance],
        *,
        min_triangles: int = LOD_MIN_TRIANGLES,
    ) -> None:
        self._on_gl = on_gl
        self._on_loads = on_loads
        self._scene = scene
        self._changed = changed
        self._allowance = allowance
        self.min_triangles = min_triangles
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openrr-lod")
        self._tasks: set[asyncio.Task[None]] = set()
        # The accounts whose levels this server holds: taken on the load thread, released on the loop.
        self._lock = threading.Lock()
        self._accounts: list[LevelAccount] = []
        self._building: set[int] = set()  # meshes (by id) queued or being built: a model loaded twice
        self._closed = False
        self.meshes_done = 0

    @property
    def built_bytes(self) -> int:
        """The levels this server holds (and reserved for those being built), all models together."""
        with self._lock:
            return sum(a.bytes for a in self._accounts)

    def start(self, parsed: Scene, account: LevelAccount) -> asyncio.Task[None] | None:
        """Build the levels ``parsed``'s big meshes lack (call on the event loop after inserting it), their
        bytes counted in ``account`` (the model's)."""
        meshes: dict[int, Mesh] = {}
        for mesh in parsed.meshes():
            if not mesh.lods and mesh.triangle_count >= self.min_triangles and id(mesh) not in self._building:
                meshes.setdefault(id(mesh), mesh)
        if not meshes:
            return None
        self._building.update(meshes)
        with self._lock:
            if account not in self._accounts:
                self._accounts.append(account)
        task = asyncio.create_task(self._build(list(meshes.values()), account))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def stop(self, account: LevelAccount, *, release: bool) -> None:
        """The model of ``account`` was unloaded, or its scene reset: no more levels for it. ``release``:
        its levels leave memory with it (not so a preloaded model's, which stay on its parsed meshes
        for the next reset to restore)."""
        with self._lock:
            account.stopped = True
            if release and account in self._accounts:
                self._accounts.remove(account)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("building levels of detail failed: %s", exc, exc_info=exc)

    async def wait(self) -> None:
        """Until every build started so far has finished (for tests and benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _held(self) -> int:
        return sum(a.bytes for a in self._accounts)  # with the lock held

    def _take(self, account: LevelAccount, estimate: int) -> str | None:
        """On the load thread: count ``estimate`` in ``account``, or say why not."""
        allowance = self._allowance()
        with self._lock:
            if account.stopped:
                return "its model was unloaded"
            if self._held() + estimate > MAX_LEVEL_BYTES:
                return f"its levels would take this server past {bytes_text(MAX_LEVEL_BYTES)} of levels"
            left = allowance.geometry_bytes
            if left is not None and estimate > left:
                return (
                    f"its levels ({bytes_text(estimate)}) would not fit in the {bytes_text(left)} left of "
                    "the session's geometry allowance"
                )
            account.bytes += estimate
        return None

    def _settle(
        self, account: LevelAccount, estimate: int, levels: tuple[LodLevel, ...], name: str
    ) -> tuple[LodLevel, ...]:
        """On the load thread: the built ``levels`` in place of their ``estimate``, finest first as many as
        fit (none once the model is gone)."""
        allowance = self._allowance()  # its estimate still counted in it
        with self._lock:
            account.bytes -= estimate
            if account.stopped:
                return ()
            room = MAX_LEVEL_BYTES - self._held()
            if allowance.geometry_bytes is not None:
                room = min(room, allowance.geometry_bytes + estimate)
            kept, size = 0, 0
            for level in levels:
                level_bytes = geometry_bytes(level.mesh)
                if size + level_bytes > room:
                    break
                kept, size = kept + 1, size + level_bytes
            account.bytes += size
        if kept < len(levels):
            log.info(
                "%d of the %d levels of detail for %r fit in the session's geometry allowance",
                kept,
                len(levels),
                name,
            )
        return levels[:kept]

    async def _build(self, meshes: list[Mesh], account: LevelAccount) -> None:
        try:
            for mesh in meshes:
                if account.stopped or self._closed:
                    return
                await self._build_one(mesh, account)
        except _Stopped:
            return
        finally:
            self._building.difference_update(id(m) for m in meshes)

    async def _build_one(self, mesh: Mesh, account: LevelAccount) -> None:
        estimate = int(geometry_bytes(mesh) * sum(LOD_RATIOS))
        refused = await self._on_loads(functools.partial(self._take, account, estimate))
        if refused is not None:
            log.info("no levels of detail for %r: %s", mesh.name, refused)
            return
        build = functools.partial(
            build_lods,
            mesh,
            min_triangles=self.min_triangles,
            progress=functools.partial(self._stop_if_stopped, account),
        )
        try:
            levels = await asyncio.get_running_loop().run_in_executor(self._pool, build)
        except BaseException:  # stopped, failed or cancelled: the estimate is not spent
            with self._lock:
                account.bytes -= estimate
            raise
        kept = await self._on_loads(functools.partial(self._settle, account, estimate, levels, mesh.name))
        if kept:
            await self._on_gl(functools.partial(self._swap, mesh, kept))
            self._changed()
        self.meshes_done += 1

    def _stop_if_stopped(self, account: LevelAccount, _message: str) -> None:
        if self._closed or account.stopped:
            raise _Stopped

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
