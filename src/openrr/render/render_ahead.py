"""Render ahead: which frame the video track gets when it asks, and when the next one is rendered.

:meth:`RenderAhead.next_frame` (what the track pulls) returns the newest finished frame and has the next one
rendered from the newest camera pose before the encoder asks again, so rendering frame N+1 overlaps encoding
frame N (on a 2-core machine: one core each). It starts as late as the render time allows, so the frame is
fresh when taken (see :meth:`RenderAhead.schedule`). If the picture's version (camera and scene) has not
changed since the newest frame, nothing is rendered and that frame is sent again. If the render in flight is
not done yet, the track waits for it: fps then follows the render rate instead of repeating stale frames that
cost encoder time. A picture that stays unchanged is sent at the full rate for a moment, then five times a
second until the next change.

Apart from ``pipeline.py``, which owns what a frame shows (scene, camera, the GL thread that draws it): this
module decides only when to draw, from the picture's version and the render times it measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

from aiortc.mediastreams import MediaStreamError

log = logging.getLogger(__name__)

SETTLE_S = 0.5
IDLE_FRAME_INTERVAL_S = 0.2
_AHEAD_MARGIN_S = 0.003


class Rendered(Protocol):
    """What render ahead needs to know of a frame."""

    @property
    def frame_id(self) -> int: ...

    @property
    def render_ms(self) -> float: ...


F = TypeVar("F", bound=Rendered)


class RenderAhead(Generic[F]):
    """Frames from ``render()`` (which draws the current picture), re-rendered when ``version()`` changes.

    ``can_render()`` says whether a render may start now (False once the pipeline closes or before it has a
    renderer). ``frame_interval`` (seconds, set once the track's frame rate is known) lets a render start
    just in time for the next pull; without it a render starts at once.
    """

    def __init__(
        self,
        render: Callable[[], Awaitable[F]],
        version: Callable[[], Hashable],
        can_render: Callable[[], bool],
    ) -> None:
        self._render = render
        self._version = version
        self._can_render = can_render
        self.frame_interval: float | None = None
        self.latest: F | None = None
        self.latest_version: Hashable | None = None
        self.inflight: asyncio.Task[F] | None = None
        self.ahead: asyncio.TimerHandle | None = None  # the render scheduled for later
        self._changed = asyncio.Event()
        self._last_pull = 0.0
        self._render_s = 0.0  # smoothed render time
        self._last_sent_id = -1
        self._last_new_frame = float("-inf")

    async def next_frame(self) -> F | None:
        """The track's pull: the newest frame (None once nothing can be rendered), the next one set rendering.

        A picture that stopped changing is sent at the full frame rate for ``SETTLE_S`` (the encoder
        refines it), then only every ``IDLE_FRAME_INTERVAL_S`` until something changes: a still session
        costs almost nothing, and a change is rendered and sent at once, without waiting for a slot.
        """
        loop = asyncio.get_running_loop()
        self._changed.clear()
        if self._unchanged() and loop.time() - self._last_new_frame > SETTLE_S:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), IDLE_FRAME_INTERVAL_S)
        frame = await self.newest()
        if frame is not None and frame.frame_id != self._last_sent_id:
            self._last_sent_id = frame.frame_id
            self._last_new_frame = loop.time()
        return frame

    async def newest(self) -> F | None:
        """The newest frame, waiting for the render in flight, or rendering one when the newest is stale;
        None when nothing can be rendered (``can_render()`` is False)."""
        if not self._can_render():
            return None
        inflight = self.inflight
        if inflight is not None and not inflight.done():
            # Rendered from the pose of when it began, which is the newest a frame can have by now.
            await asyncio.shield(inflight)
        elif self.latest is None or self.latest_version != self._version():
            self.cancel()
            await self._start()
        latest = self.latest
        if latest is None:
            return None
        self._last_pull = asyncio.get_running_loop().time()
        self.schedule()
        return latest

    def touch(self) -> None:
        """Something in the picture changed: wake a pull waiting on an unchanged picture, and have the change
        rendered ahead of the next pull."""
        self._changed.set()
        self.schedule()

    def schedule(self) -> None:
        """Start the next render so that it ends just before the encoder asks for it.

        Without a frame interval (no track) or when rendering takes a whole interval, that is at once:
        render and encode then overlap fully (throughput). When rendering is quicker, starting at once
        would leave the frame waiting for its slot, older than it needs to be: it starts ``frame_interval
        - render time`` after the last pull instead, from the pose current then (latency).
        """
        inflight = self.inflight
        if (
            not self._can_render()
            or self.ahead is not None
            or (inflight is not None and not inflight.done())
            or self.latest is None
            or self.latest_version == self._version()
        ):
            return
        loop = asyncio.get_running_loop()
        delay = 0.0
        if self.frame_interval is not None:
            delay = self._last_pull + self.frame_interval - self._render_s - _AHEAD_MARGIN_S - loop.time()
        if delay <= 0:
            self._start()
        else:
            self.ahead = loop.call_later(delay, self._ahead_due)

    def cancel(self) -> None:
        """Drop the render scheduled for later, if any (one in flight finishes)."""
        if self.ahead is not None:
            self.ahead.cancel()
            self.ahead = None

    async def settle(self) -> None:
        """Wait until the render in flight, if any, has finished (whatever its outcome)."""
        inflight = self.inflight
        if inflight is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(inflight)

    def _unchanged(self) -> bool:
        inflight = self.inflight
        return (
            self.latest is not None
            and (inflight is None or inflight.done())
            and self.latest_version == self._version()
        )

    def _ahead_due(self) -> None:
        self.ahead = None
        self.schedule()

    def _start(self) -> asyncio.Task[F]:
        task = asyncio.create_task(self._run())
        task.add_done_callback(_log_failure)
        self.inflight = task
        return task

    async def _run(self) -> F:
        version = self._version()  # of the picture the render is about to take, before it yields
        frame = await self._render()
        self.latest, self.latest_version = frame, version
        seconds = frame.render_ms / 1000
        self._render_s = seconds if self._render_s == 0 else 0.7 * self._render_s + 0.3 * seconds
        return frame


def _log_failure(task: asyncio.Task[F]) -> None:
    # A render ahead that nobody awaited must still have its failure seen (and retrieved). A closed pipeline
    # (a MediaStreamError: it ends the track) is no failure.
    if (
        not task.cancelled()
        and (exc := task.exception()) is not None
        and not isinstance(exc, MediaStreamError)
    ):
        log.error("render failed: %s", exc, exc_info=exc)
