"""The fake-clock loops fail fast when time stops moving, instead of hanging the suite (issue 14 review:
a machine whose timer stayed due after handling made ``run_until`` spin for 600 s before a timeout)."""

from __future__ import annotations

import pytest

from tests.support.fake_clock import ClockGuard
from tests.unit.test_mn_fa_ha_wired import World


def test_time_moving_on_never_trips_the_guard() -> None:
    guard = ClockGuard(limit=3)
    for step in range(100):
        guard.step(step * 0.001)


def test_steps_at_one_instant_are_allowed_up_to_the_limit() -> None:
    guard = ClockGuard(limit=3)
    for _ in range(4):
        guard.step(1.0)
    guard.step(1.5)  # moving on resets the count
    for _ in range(3):
        guard.step(1.5)


def test_one_step_too_many_at_one_instant_fails() -> None:
    guard = ClockGuard(limit=3)
    for _ in range(4):
        guard.step(2.0)
    with pytest.raises(AssertionError, match=r"fake clock stuck at t=2\.0"):
        guard.step(2.0)


def test_a_machine_whose_timer_stays_due_fails_the_wired_world_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(1, loss=0.0, jitter=0.0)
    monkeypatch.setattr(world.mn, "get_timer", lambda: world.now)  # due now, for ever
    monkeypatch.setattr(world.mn, "handle_timer", lambda now: None)  # ... and handling it changes nothing
    with pytest.raises(AssertionError, match="fake clock stuck"):
        world.run_until(world.now + 10.0)
