"""The models of one session: what a loaded model is, what the next one may still take, and fetching and
parsing one.

Apart from ``pipeline.py`` because none of it touches the GL thread, the scene or the frames: it is the
bookkeeping of a session's models and the one blocking step of a load (source check, download, parse),
which the pipeline runs on its load thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from openrr.model.budget import Allowance, BudgetExceeded, Usage, bytes_text, pixels_text, usage
from openrr.model.errors import ModelLoadError
from openrr.model.loader import load_model
from openrr.model.scene import Scene
from openrr.model.sources import CheckedURL, ModelSourcePolicy, display_name
from openrr.protocol.handshake import RenderLimits
from openrr.render.lod_builder import LevelAccount


class ModelError(Exception):
    """A model command that failed; ``code`` is the data-channel error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


LOAD_DEADLINE_S = 300.0  # a whole model load, download included


@dataclasses.dataclass
class LoadedModel:
    model_id: str
    url: str  # as the client gave it; shown only as display_name(url)
    source: str  # the url as checked by the source policy
    roots: list[int]  # scene node ids of the model's roots
    nodes: int
    polygons: int
    preloaded: bool
    read: Usage = dataclasses.field(default_factory=Usage)  # what its file took as it was read
    # The levels of detail built for it since (``lod_builder``), shared with the copies a reset makes.
    levels: LevelAccount = dataclasses.field(default_factory=LevelAccount)

    @property
    def usage(self) -> Usage:
        """What the model takes of the session's allowance: its file's and its levels' (read on the load
        thread, while the levels of detail may grow)."""
        return self.read + Usage(geometry_bytes=self.levels.bytes)

    def describe(self) -> dict[str, Any]:
        return {
            "modelId": self.model_id,
            "url": display_name(self.url),
            "nodes": self.nodes,
            "polygons": self.polygons,
        }


def allowance_left(limits: RenderLimits, spent: Usage) -> Allowance:
    """What the next model may take: the per-model limits, or what ``spent`` left of the session's."""
    allowance = Allowance()
    per_model, per_session = limits.texture_pixels_per_model, limits.texture_pixels_per_session
    if per_model is not None:
        allowance.texture_pixels = per_model
        allowance.texture_limit = f"the {pixels_text(per_model)} a model may have in this session's size"
    if per_session is not None and (per_model is None or per_session - spent.texture_pixels < per_model):
        allowance.texture_pixels = max(per_session - spent.texture_pixels, 0)
        allowance.texture_limit = (
            f"the {pixels_text(allowance.texture_pixels)} left of the {pixels_text(per_session)} of "
            "textures this session's size allows"
        )
    if limits.scene_bytes is not None:
        allowance.geometry_bytes = max(limits.scene_bytes - spent.geometry_bytes, 0)
        allowance.geometry_limit = (
            f"the {bytes_text(allowance.geometry_bytes)} left of the {bytes_text(limits.scene_bytes)} "
            "of scene geometry this session's size allows"
        )
    return allowance


def fetch_model(
    url: str,
    *,
    policy: ModelSourcePolicy,
    parsed: dict[str, Scene],
    allowance: Callable[[], Allowance],
    progress: Callable[[float, str], None],
    max_bytes: int | None,
) -> tuple[str, Scene, Usage]:
    """Check ``url`` against ``policy``, then download and parse it within ``allowance()``; returns the
    checked source, the parsed scene and what it takes. A source in ``parsed`` (a preloaded model, loaded
    again under another id) is not parsed again, but counts again.

    Blocking (the policy may resolve host names, the loader reads and downloads): call it on the load
    thread. Raises ``SourceRefused`` or ``ModelLoadError`` (over the allowance included); ``progress``
    may raise to abort the load.
    """
    checked = policy.guard(url)
    source = checked.url if isinstance(checked, CheckedURL) else checked
    cached = parsed.get(source)
    if cached is not None:
        try:
            allowance().check(usage(cached), display_name(url))
        except BudgetExceeded as exc:
            raise ModelLoadError(exc.message) from None
        return source, cached, usage(cached)
    # The download's first request connects to what this check saw: no second lookup to rebind.
    left = allowance()
    kwargs: dict[str, Any] = {"progress": progress, "guard": policy.guard_after(checked), "allowance": left}
    if max_bytes is not None:
        kwargs["max_bytes"] = max_bytes
    return source, load_model(source, **kwargs), left.used


def load_progress(
    cancelled: Callable[[], bool], progress: Callable[[float, str], None] | None
) -> Callable[[float, str], None]:
    """The progress callback of a load starting now, which the loader calls on the load thread: it passes
    progress on to the event loop (the caller's), and aborts the load by raising ``ModelLoadError`` once
    ``cancelled()`` or ``LOAD_DEADLINE_S`` from now."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + LOAD_DEADLINE_S

    def report(fraction: float, message: str) -> None:
        if cancelled():
            raise ModelLoadError("the load was cancelled: the client left or the server is stopping")
        if time.monotonic() > deadline:
            raise ModelLoadError(f"the load took longer than {LOAD_DEADLINE_S:.0f} s")
        if progress is not None:
            loop.call_soon_threadsafe(progress, fraction, message)

    return report


def restore_preloaded(
    preloaded: dict[str, LoadedModel], parsed: dict[str, Scene]
) -> tuple[Scene, dict[str, LoadedModel]]:
    """A fresh session scene holding the preloaded models again (``parsed`` by source), and those models with
    their new root nodes."""
    fresh = Scene("session")
    kept: dict[str, LoadedModel] = {}
    for model in preloaded.values():
        roots = fresh.add_scene(parsed[model.source])
        kept[model.model_id] = dataclasses.replace(model, roots=[n.id for n in roots])
    return fresh, kept


def relative_to_roots(message: str, policy: ModelSourcePolicy) -> str:
    """``message`` with the paths inside the policy's model folders made relative to them, so that an error
    names a model as the client did, not by where it resolved to on this machine."""
    for root in policy.folders:
        for form in {str(root), str(root.resolve())}:
            message = message.replace(form.rstrip("/") + "/", "")
    return message
