"""Detail under a frame budget: how coarse the scene is drawn while the camera moves, so frames keep coming.

Apart from ``draw_lists.py`` (which turns a detail step into a level of detail per mesh) and from the
pipeline's clock and threads (``moving_detail.py``): this is the pure decision, testable with a fake
clock and made-up costs.

Steps: ``DETAIL_STEPS`` are fractions, finest first; step 0 is full detail (each mesh still drawn at the
coarsest level its on-screen error allows, point clouds within the whole point budget). At step ``i`` a
mesh is drawn at its finest level of at most ``DETAIL_STEPS[i]`` of its triangles
(``draw_lists.choose_lod``), and point clouds within ``DETAIL_STEPS[i]`` of the point budget
(``point_pass.point_budget``).

Cost: a frame's render time is modelled as ``fixed + per_triangle * work``, its work being its triangles
plus ``POINT_COST`` triangles per point drawn (on llvmpipe the fill, the clear and the readback are about
the same at every level when the model fills the view; vertex work, small-triangle rasterisation and
points scale with their number). ``CostModel`` fits that line by weighted least squares over the last
frames, so it follows the machine's load and the view. Each frame the renderer also reports how many
triangles and points every step would draw from where the camera is (``step_triangles``,
``step_points``), so the model predicts each step's time without having drawn it from here.

Choice: while the camera moves, the finest step predicted to fit ``budget_ms``; when still, step 0.
Hysteresis: a step is left for a coarser one only once the prediction for it exceeds the budget, and for
a finer one only when that one's prediction is below ``REFINE_HEADROOM`` of the budget, so noise of a few
per cent around the budget does not make the picture flicker between levels.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

DETAIL_STEPS = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.02)
DEFAULT_BUDGET_MS = 28.0  # render time a moving frame may take: about 25 fps with the encoder alongside
REFINE_HEADROOM = 0.8  # go finer only when the finer step is predicted at most this share of the budget
_WINDOW = 24  # frames the cost fit looks back on
_DECAY = 0.85  # weight of a frame relative to the next newer one
_MIN_SPREAD = 0.05  # relative spread of triangle counts under which the line's slope is not fitted
# What a point costs in triangles: llvmpipe drew 605,000 points in 1.4 times a 1.3-million-triangle sphere's
# time (README, Benchmarks). Only the mix of a frame with both depends on it; the fit scales the rest.
POINT_COST = 3.0


def work(triangles: int, points: int) -> float:
    """A frame's work in triangles: its triangles and its points at ``POINT_COST`` each."""
    return triangles + POINT_COST * points


class CostModel:
    """Predicts a frame's render time from its work in triangles (``work``):
    ``fixed + per_triangle * triangles``."""

    def __init__(self, window: int = _WINDOW) -> None:
        self._frames: deque[tuple[float, float]] = deque(maxlen=window)  # (triangles, ms), oldest first
        self._fixed = 0.0  # the last intercept fitted from frames of different sizes

    def observe(self, triangles: float, ms: float) -> None:
        """One finished frame: its work in triangles and render time. Nonsense values are ignored."""
        if triangles >= 0 and math.isfinite(triangles) and math.isfinite(ms) and ms >= 0:
            self._frames.append((float(triangles), float(ms)))

    @property
    def known(self) -> bool:
        return bool(self._frames)

    def line(self) -> tuple[float, float]:
        """(fixed ms, ms per triangle) fitted to the recent frames, newer ones weighing more."""
        if not self._frames:
            return 0.0, 0.0
        n = len(self._frames)
        weights = [_DECAY ** (n - 1 - i) for i in range(n)]
        total = sum(weights)
        mean_t = sum(w * t for w, (t, _) in zip(weights, self._frames, strict=True)) / total
        mean_ms = sum(w * ms for w, (_, ms) in zip(weights, self._frames, strict=True)) / total
        var_t = sum(w * (t - mean_t) ** 2 for w, (t, _) in zip(weights, self._frames, strict=True)) / total
        lowest = min(ms for _, ms in self._frames)
        if mean_t > 0 and math.sqrt(var_t) > _MIN_SPREAD * mean_t:
            cov = sum(
                w * (t - mean_t) * (ms - mean_ms) for w, (t, ms) in zip(weights, self._frames, strict=True)
            )
            slope = max(cov / total / var_t, 0.0)
            # The fixed part cannot be negative nor above the cheapest frame seen.
            self._fixed = min(max(mean_ms - slope * mean_t, 0.0), lowest)
        fixed = min(self._fixed, lowest)
        # All frames about the same size (or the intercept clamped): the slope through the fixed part.
        per_triangle = max(mean_ms - fixed, 0.0) / mean_t if mean_t > 0 else 0.0
        return fixed, per_triangle

    def predict(self, triangles: float) -> float:
        fixed, per_triangle = self.line()
        return fixed + per_triangle * triangles


class FrameBudget:
    """The detail step of each frame (an index into ``DETAIL_STEPS``); see the module doc."""

    def __init__(self, budget_ms: float = DEFAULT_BUDGET_MS) -> None:
        if not (math.isfinite(budget_ms) and budget_ms > 0):
            raise ValueError(f"the frame budget must be a positive number of milliseconds, not {budget_ms!r}")
        self.budget_ms = budget_ms
        self.costs = CostModel()
        self.step = 0  # the step moving frames are drawn at now
        self._step_work: tuple[float, ...] = ()  # per step, from the last frame's view

    def observe(
        self,
        triangles: int,
        ms: float,
        step_triangles: Sequence[int],
        points: int = 0,
        step_points: Sequence[int] = (),
    ) -> None:
        """A finished frame: what it drew and took, and what each step would draw from its view (either
        sequence may be empty: nothing of that kind in view)."""
        self.costs.observe(work(triangles, points), ms)
        steps = max(len(step_triangles), len(step_points))
        tri = tuple(step_triangles) or (0,) * steps
        pts = tuple(step_points) or (0,) * steps
        self._step_work = tuple(work(t, p) for t, p in zip(tri, pts, strict=True))

    def choose(self, moving: bool) -> int:
        """The step of the next frame: 0 when still, else the finest that fits (with hysteresis)."""
        if not moving:
            return 0
        counts = self._step_work
        if not counts or not self.costs.known:
            return self.step  # nothing measured yet: where it was (full detail at first)
        last = len(counts) - 1
        current = min(self.step, last)
        predicted = [self.costs.predict(t) for t in counts]
        if predicted[current] > self.budget_ms:
            fits = [i for i in range(current + 1, last + 1) if predicted[i] <= self.budget_ms]
            self.step = fits[0] if fits else last
        else:
            finer = [i for i in range(current) if predicted[i] <= REFINE_HEADROOM * self.budget_ms]
            self.step = finer[0] if finer else current
        return self.step
