"""Moving or still: the pipeline's side of the frame budget, between the event loop and the GL thread.

Apart from ``frame_budget.py`` (the pure choice of a detail step) and ``pipeline.py`` (which calls the
three hooks here): this keeps the clock of camera poses. The camera counts as moving until no pose has
arrived for ``settle_s``; then a timer on the event loop calls ``on_still`` once, so the pipeline renders
the still picture at full detail by itself (no pose, no pull from a client is needed for it).

How long to wait follows the client's own pace: a few of its pose intervals (``SETTLE_INTERVALS``), so a
browser sending 60 poses a second gets its full-detail picture 50 ms after it stops, and a client sending
15 a second is not taken for still between two of its poses (which would draw full-detail frames, the
slowest there are, in the middle of a move). Every millisecond waited here is one more before the still
picture, whose render is itself most of the 300 ms that may pass after the camera stops.

Hooks: :meth:`pose` (event loop, each camera change), :attr:`step` (event loop; part of the picture's
version: the refined frame is a new picture), :meth:`begin` (event loop, as a render is set going) and
:meth:`render` (GL thread: draw at the chosen step, then teach the budget what it cost).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from openrr.render.frame_budget import DETAIL_STEPS, FrameBudget

if TYPE_CHECKING:
    from openrr.render.camera import Camera
    from openrr.render.renderer import Renderer

SETTLE_S = 0.1  # no pose for this long: the camera stopped (before the client's pace is known)
SETTLE_INTERVALS = 2.5  # ... or for this many of its pose intervals, within the bounds below
SETTLE_MIN_S, SETTLE_MAX_S = 0.05, 0.2
_PACE_GAP_S = 0.5  # a longer gap between two poses is a new move, not the pace of one
_RECHECKS = 40  # times the still check looks again for a coarse frame that was still being drawn


class MovingDetail:
    """The detail of each frame: budgeted while poses arrive, full once they stopped for ``settle_s``."""

    def __init__(
        self,
        on_still: Callable[[], None],
        budget_ms: float | None = None,
        *,
        settle_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = FrameBudget() if budget_ms is None else FrameBudget(budget_ms)
        self._fixed_settle = settle_s  # None: follow the client's pace
        self._interval: float | None = None  # the poses' recent interval (a moving average)
        self._on_still = on_still
        self._clock = clock
        self._last_pose = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._rechecks = 0
        self.drawn_step = 0  # the step of the last frame drawn (written on the GL thread)
        self._drawing = False  # a frame was begun and is not drawn yet

    @property
    def settle_s(self) -> float:
        """How long without a pose makes the camera still."""
        if self._fixed_settle is not None:
            return self._fixed_settle
        if self._interval is None:
            return SETTLE_S
        return min(SETTLE_MAX_S, max(SETTLE_MIN_S, SETTLE_INTERVALS * self._interval))

    @property
    def moving(self) -> bool:
        return self._clock() - self._last_pose < self.settle_s

    @property
    def step(self) -> int:
        """The detail step the next frame is drawn at, as far as is known before drawing it: part of the
        picture's version, so that stopping after frames drawn coarser makes a new picture, and stopping
        after frames drawn at full detail (a small model) does not."""
        return self.budget.step if self.moving else 0

    def pose(self) -> None:
        """The camera changed (on the event loop): moving from now until ``settle_s`` without a pose."""
        now = self._clock()
        gap = now - self._last_pose
        if gap < _PACE_GAP_S:
            self._interval = gap if self._interval is None else 0.75 * self._interval + 0.25 * gap
        self._last_pose = now
        self._rechecks = 0
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.settle_s, self._check)

    def _check(self) -> None:
        self._timer = None
        left = self._last_pose + self.settle_s - self._clock()
        if left > 0:  # a pose came meanwhile: look again when it is due
            self._timer = asyncio.get_running_loop().call_later(left, self._check)
            return
        if self.drawn_step == 0 and not self._drawing:
            return  # the last frame is at full detail already: nothing to redraw, nobody to wake
        self._on_still()
        if self._rechecks < _RECHECKS:
            # A frame begun while moving may still be being drawn, so the still picture could not start
            # yet: look again shortly, until a full-detail frame has been drawn.
            self._rechecks += 1
            self._timer = asyncio.get_running_loop().call_later(self.settle_s / 2, self._check)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def begin(self) -> bool:
        """A frame is about to be rendered (event loop): whether it is drawn as moving."""
        self._drawing = True
        return self.moving

    def render(self, renderer: Renderer, camera: Camera, moving: bool) -> NDArray[np.uint8]:
        """Draw one frame on the GL thread at the step the budget allows (full detail when still)."""
        step = self.budget.choose(moving)
        renderer.detail = DETAIL_STEPS[step]
        try:
            image = renderer.render(camera)
        finally:
            self._drawing = False
        self.drawn_step = step
        stats = renderer.stats
        self.budget.observe(
            stats.triangles, stats.frame_ms, stats.step_triangles, stats.points, stats.step_points
        )
        return image
