"""A guard for the unit tests' fake-clock loops (the wired machine worlds' ``run_until``)."""

from __future__ import annotations

STUCK_STEPS = 10_000
"""Steps at one instant before a loop is called stuck: far more than the packets and timers any test
puts at one time, and a fraction of a second of CPU."""


class ClockGuard:
    """Fails a fake-clock loop that stops advancing: a machine whose timer stays due after it handled it
    would make ``run_until`` spin forever, so a regression would show as a hang instead of a failure."""

    def __init__(self, limit: int = STUCK_STEPS) -> None:
        self.limit = limit
        self._at: float | None = None
        self._steps = 0

    def step(self, now: float) -> None:
        """Call once per loop iteration with the fake clock's time; raises AssertionError when stuck."""
        if now != self._at:
            self._at, self._steps = now, 0
            return
        self._steps += 1
        if self._steps > self.limit:
            raise AssertionError(
                f"fake clock stuck at t={now}: {self.limit} steps without time moving "
                "(a timer still due after it was handled?)"
            )
