"""Rate budgets on the caller's clock (pure: no clock, no I/O, no threads; every call carries ``now``).

:class:`LogBudget` bounds security log and trace lines: RFC 5944 §3.8.2.1 asks a home agent to log a
security exception for every request that fails authentication, but an unauthenticated flood must not
turn that into an unbounded log (issue 16: 93,858 warning lines in 33 s). The runtime
(:mod:`agents.runtime.security_log`) holds one and applies it to every security line.
"""

from __future__ import annotations

from collections import Counter

DEFAULT_LINES_PER_SECOND = 20
"""Security lines admitted per 1 s window, all kinds together."""


class LogBudget:
    """At most ``per_window`` lines in each ``window``-second window (fixed windows on the caller's clock);
    the rest are counted per category until :meth:`take_suppressed` hands the counts over for a summary.

    Bound: with the summary written once per window (the runtime's flush timer), at most
    ``per_window + 1`` lines per window: 21 lines/s with the defaults, whatever the offered load.
    """

    def __init__(self, per_window: int = DEFAULT_LINES_PER_SECOND, window: float = 1.0) -> None:
        if per_window < 1 or window <= 0:
            raise ValueError("a log budget needs per_window >= 1 and window > 0")
        self.per_window = per_window
        self.window = window
        self._window_start = -float("inf")
        self._admitted = 0
        self._suppressed: Counter[str] = Counter()

    def admit(self, category: str, now: float) -> bool:
        """True: write this line. False: it was counted under ``category`` for the next summary."""
        if now - self._window_start >= self.window:
            self._window_start, self._admitted = now, 0
        if self._admitted < self.per_window:
            self._admitted += 1
            return True
        self._suppressed[category] += 1
        return False

    @property
    def suppressed(self) -> int:
        """Lines counted but not yet summarised."""
        return sum(self._suppressed.values())

    def take_suppressed(self) -> dict[str, int]:
        """The suppressed counts per category since the last call (sorted by name), then zero."""
        counts, self._suppressed = dict(sorted(self._suppressed.items())), Counter()
        return counts
