"""The frame budget's choice of detail (fake costs and clock), the level each step draws, and the still
timer of ``MovingDetail`` on a real event loop."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest

from openrr.model.mesh import LodLevel, Mesh, Primitive
from openrr.render.draw_lists import choose_lod, step_triangles
from openrr.render.frame_budget import (
    DETAIL_STEPS,
    POINT_COST,
    REFINE_HEADROOM,
    CostModel,
    FrameBudget,
    work,
)
from openrr.render.moving_detail import (
    SETTLE_INTERVALS,
    SETTLE_MAX_S,
    SETTLE_MIN_S,
    SETTLE_S,
    MovingDetail,
)
from openrr.render.point_pass import point_budget

FULL = 1_000_000
# What each step draws for a mesh with levels at every step's fraction.
STEPS = tuple(int(FULL * f) for f in DETAIL_STEPS)


def feed(budget: FrameBudget, fixed: float, per_million: float, frames: int, moving: bool = True) -> int:
    """Render ``frames`` frames whose cost follows ``fixed + per_million * triangles / 1e6``; the last
    chosen step."""
    step = budget.step
    for _ in range(frames):
        step = budget.choose(moving)
        triangles = STEPS[step]
        budget.observe(triangles, fixed + per_million * triangles / 1e6, STEPS)
    return step


def test_cost_model_fits_fixed_and_per_triangle_parts() -> None:
    costs = CostModel()
    for triangles in (100_000, 400_000, 800_000, 200_000, 1_000_000):
        costs.observe(triangles, 10.0 + 50.0 * triangles / 1e6)
    fixed, per_triangle = costs.line()
    assert fixed == pytest.approx(10.0, abs=1e-6)
    assert per_triangle * 1e6 == pytest.approx(50.0, rel=1e-6)
    assert costs.predict(600_000) == pytest.approx(40.0)


def test_cost_model_with_frames_of_one_size_keeps_the_fixed_part_it_knew() -> None:
    costs = CostModel()
    costs.observe(1_000_000, 60.0)
    assert costs.line() == pytest.approx((0.0, 60.0 / 1e6))  # nothing else known: proportional
    costs.observe(250_000, 22.5)  # now the line: 10 + 50/M
    assert costs.line()[0] == pytest.approx(10.0)
    for _ in range(40):  # only frames of one size from now on: the intercept is kept, the slope follows
        costs.observe(250_000, 35.0)
    fixed, per_triangle = costs.line()
    assert fixed == pytest.approx(10.0)
    assert fixed + per_triangle * 250_000 == pytest.approx(35.0)
    costs.observe(-1, 5.0)
    costs.observe(10, float("nan"))  # ignored
    assert costs.line() == pytest.approx((fixed, per_triangle))


def test_still_is_full_detail_and_cheap_frames_stay_full() -> None:
    budget = FrameBudget(30.0)
    assert budget.choose(moving=True) == 0  # nothing measured: full detail
    assert feed(budget, fixed=5.0, per_million=20.0, frames=10) == 0  # 25 ms for all: it fits
    assert budget.choose(moving=False) == 0


def test_rising_cost_picks_a_coarser_step_and_stillness_the_finest() -> None:
    budget = FrameBudget(30.0)
    feed(budget, fixed=5.0, per_million=20.0, frames=10)
    # The machine gets four times slower per triangle: full detail would take 85 ms.
    step = feed(budget, fixed=5.0, per_million=80.0, frames=30)
    assert step > 0
    predicted = 5.0 + 80.0 * STEPS[step] / 1e6
    assert predicted <= 30.0
    assert 5.0 + 80.0 * STEPS[step - 1] / 1e6 > 30.0  # the finest that fits: 0.25 (25 ms)
    assert DETAIL_STEPS[step] == 0.25
    assert budget.choose(moving=False) == 0  # the camera stopped: full detail at once
    assert budget.choose(moving=True) == step  # moving again: where it was


def test_hysteresis_keeps_the_step_while_the_finer_one_would_barely_fit() -> None:
    budget = FrameBudget(30.0)
    feed(budget, fixed=5.0, per_million=80.0, frames=30)
    assert DETAIL_STEPS[budget.step] == 0.25
    # Cheaper: 0.5 would now take 5 + 48 * 0.5 = 29 ms, under the budget but above its headroom.
    assert REFINE_HEADROOM * 30.0 < 5.0 + 48.0 * 0.5
    steps = {feed(budget, fixed=5.0, per_million=48.0, frames=1) for _ in range(40)}
    assert steps == {DETAIL_STEPS.index(0.25)}  # no flicker between 0.5 and 0.25
    # Cheaper still (0.5 at 20 ms, under 80% of 30): finer again.
    assert DETAIL_STEPS[feed(budget, fixed=5.0, per_million=30.0, frames=30)] == 0.5


def test_noise_around_the_budget_does_not_flicker() -> None:
    budget = FrameBudget(30.0)
    rng = np.random.default_rng(7)
    chosen = []
    for _ in range(200):
        step = budget.choose(True)
        chosen.append(step)
        triangles = STEPS[step]
        noisy = (5.0 + 90.0 * triangles / 1e6) * float(rng.uniform(0.9, 1.1))
        budget.observe(triangles, noisy, STEPS)
    changes = sum(1 for a, b in itertools.pairwise(chosen[50:]) if a != b)
    assert changes <= 2


def test_points_count_in_the_cost_and_the_still_frame_has_the_whole_point_budget() -> None:
    """A cloud and no triangles: the cost follows the points, a moving frame draws a step's share of the
    point budget, the still one all of it."""
    points = tuple(point_budget(300_000, f) for f in DETAIL_STEPS)
    assert points[0] == 300_000  # full detail: the whole budget, exactly
    assert points[2] == 75_000
    no_triangles = (0,) * len(DETAIL_STEPS)
    budget = FrameBudget(30.0)
    step = budget.step
    for _ in range(30):  # 5 ms plus 0.2 ms a thousand points: all 300,000 would take 65 ms
        step = budget.choose(True)
        budget.observe(0, 5.0 + 0.2 * points[step] / 1000, no_triangles, points[step], points)
    assert DETAIL_STEPS[step] == 0.25  # 20 ms; 0.5 would take 35
    assert budget.choose(moving=False) == 0


def test_points_and_triangles_add_up() -> None:
    """Either alone fits the budget, both together do not: the step is coarser than for either."""
    assert work(1000, 10) == 1000 + POINT_COST * 10
    alone = FrameBudget(30.0)
    for _ in range(10):
        step = alone.choose(True)
        alone.observe(STEPS[step], 5.0 + 20.0 * STEPS[step] / 1e6, STEPS)
    assert alone.step == 0  # 25 ms
    both = FrameBudget(30.0)
    points = tuple(int(FULL / POINT_COST * f) for f in DETAIL_STEPS)  # as much work as the triangles
    for _ in range(10):
        step = both.choose(True)
        cost = 5.0 + 20.0 * work(STEPS[step], points[step]) / 1e6
        both.observe(STEPS[step], cost, STEPS, points[step], points)
    assert DETAIL_STEPS[both.step] == 0.5  # 25 ms; all of both would take 45


def test_the_budget_must_be_positive() -> None:
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive"):
            FrameBudget(bad)


def _sphere_like(triangles: int) -> Mesh:
    positions = np.zeros((3, 3), np.float32)
    positions[1, 0] = positions[2, 1] = 1.0
    return Mesh("m", (Primitive(positions, np.zeros((triangles, 3), np.uint32) + np.array([0, 1, 2])),))


def test_a_step_draws_the_finest_level_within_its_fraction() -> None:
    mesh = _sphere_like(1000)
    levels = [_sphere_like(n) for n in (510, 260, 60)]  # clustering lands near its targets
    mesh.lods = tuple(LodLevel(m, e) for m, e in zip(levels, (0.01, 0.02, 0.08), strict=True))
    near = 1e6  # pixels per unit: every level's error is visible, the error alone keeps full detail
    assert choose_lod(mesh, near) is mesh
    assert choose_lod(mesh, near, detail=0.5) is levels[0]
    assert choose_lod(mesh, near, detail=0.25) is levels[1]
    assert choose_lod(mesh, near, detail=0.125) is levels[2]  # none that small: a coarser one
    assert choose_lod(mesh, near, detail=0.02) is levels[2]  # none that small: the coarsest
    assert choose_lod(mesh, 1e-6, detail=0.5) is levels[2]  # far away: the error's choice is coarser
    plain = _sphere_like(300)
    counts = step_triangles([mesh, plain], np.array([near, near]), DETAIL_STEPS)
    assert counts == (1300, 810, 560, 360, 360, 360)


async def test_moving_detail_renders_the_still_picture_by_itself() -> None:
    stopped = asyncio.Event()
    now = [100.0]
    detail = MovingDetail(stopped.set, 30.0, settle_s=0.05, clock=lambda: now[0])
    assert not detail.moving
    detail.pose()
    assert detail.moving
    detail.drawn_step = 2  # a coarse frame was drawn while the camera moved
    now[0] += 0.04
    detail.pose()  # a pose before the settle time: still moving, the timer looks again later
    now[0] += 0.03
    assert detail.moving
    await asyncio.sleep(0.06)  # the first check finds a newer pose and waits for it to settle
    assert not stopped.is_set()
    now[0] += 0.1
    await asyncio.wait_for(stopped.wait(), 10)
    assert not detail.moving
    detail.cancel()


async def test_no_still_picture_when_the_last_frame_was_already_at_full_detail() -> None:
    calls: list[int] = []
    now = [0.0]
    detail = MovingDetail(lambda: calls.append(1), 30.0, settle_s=0.02, clock=lambda: now[0])
    detail.pose()  # the camera moved, but the frame drawn for it was at full detail
    now[0] += 1.0
    await asyncio.sleep(0.2)
    assert calls == []
    assert detail.begin() is False  # a frame begun now is drawn as still, and the check waits for it
    detail.pose()
    now[0] += 1.0
    await asyncio.sleep(0.2)
    assert calls  # a frame was being drawn: the still picture is asked for
    detail.cancel()


async def test_the_still_check_looks_again_while_a_coarse_frame_was_being_drawn() -> None:
    calls: list[int] = []
    refined = asyncio.Event()
    now = [0.0]

    def still() -> None:
        calls.append(detail.drawn_step)
        if len(calls) == 3:
            detail.drawn_step = 0  # the full-detail frame has been drawn by now
            refined.set()

    detail = MovingDetail(still, 30.0, settle_s=0.02, clock=lambda: now[0])
    detail.drawn_step = 4  # the last frame drawn while moving was coarse
    detail.pose()
    now[0] += 1.0
    await asyncio.wait_for(refined.wait(), 10)
    await asyncio.sleep(0.1)  # no more checks once a full-detail frame was drawn
    assert calls == [4, 4, 4]
    detail.cancel()


async def test_the_still_wait_follows_the_clients_pace() -> None:
    now = [0.0]
    detail = MovingDetail(lambda: None, 30.0, clock=lambda: now[0])
    assert detail.settle_s == SETTLE_S  # no pace known yet

    def move(rate: float, poses: int = 20) -> None:
        for _ in range(poses):
            detail.pose()
            now[0] += 1 / rate
        now[0] -= 1 / rate  # at the last pose

    move(30)
    assert detail.settle_s == pytest.approx(SETTLE_INTERVALS / 30, rel=0.01)
    now[0] += 0.07
    assert detail.moving  # two intervals without a pose: still moving at 30 poses a second
    now[0] += 0.02
    assert not detail.moving
    move(120)
    assert detail.settle_s == SETTLE_MIN_S
    move(10)
    assert detail.settle_s == SETTLE_MAX_S
    now[0] += 2.0
    detail.pose()  # a new move after a pause: the pause is not the pace
    assert detail.settle_s == SETTLE_MAX_S
    detail.cancel()
