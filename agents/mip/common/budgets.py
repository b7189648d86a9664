"""Rate budgets on the caller's clock (pure: no clock, no I/O, no threads; every call carries ``now``).

:class:`SourceBudget` bounds what registration requests that fail authentication or the replay check
cost the home agent (RFC 5944 §3.8.2.1 SHOULD reply 131; §5.7 133): each source may fail a few times,
then its failures get no reply and no event (its further requests are still verified, on the raw bytes:
:mod:`agents.mip.ha.quick_reject`, so a forged source cannot lock a mobile node out); one shared bucket
bounds the replies to all sources together, so a flood from spoofed addresses cannot make the home agent
a reflector of signed 131s.

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


class _Bucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second."""

    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp

    def level(self, now: float, burst: float, rate: float) -> float:
        self.tokens = min(burst, self.tokens + max(0.0, now - self.stamp) * rate)
        self.stamp = now
        return self.tokens


class SourceBudget:
    """Failure budgets per source address plus one shared by all (token buckets on the caller's clock).

    Defaults: a source may fail ``burst`` = 5 times at once and once a second after that; all sources
    together get at most ``total_burst`` = 100 answered failures at once and ``total_rate`` = 100 a second.
    So whatever the flood, the home agent sends at most ~100 signed 131/133 replies a second, and at most
    one a second to any one address. At most ``max_sources`` sources are remembered (a forgotten source
    starts full again: the shared bucket still bounds the total).
    """

    def __init__(
        self,
        burst: float = 5.0,
        rate: float = 1.0,
        total_burst: float = 100.0,
        total_rate: float = 100.0,
        max_sources: int = 4096,
    ) -> None:
        if min(burst, rate, total_burst, total_rate) <= 0 or max_sources < 1:
            raise ValueError("budgets and rates must be positive")
        self.burst, self.rate = burst, rate
        self.total_burst, self.total_rate = total_burst, total_rate
        self.max_sources = max_sources
        self._sources: dict[object, _Bucket] = {}
        self._total = _Bucket(total_burst, -float("inf"))

    def exhausted(self, source: object, now: float) -> bool:
        """True when ``source`` has no failure left: its next failure gets no reply (still verified)."""
        bucket = self._sources.get(source)
        return bucket is not None and bucket.level(now, self.burst, self.rate) < 1.0

    def charge(self, source: object, now: float) -> bool:
        """Count one failure of ``source``. True: within both budgets (answer and report it);
        False: over a budget (drop it silently, RFC 5944 §3.8.2.1 only says SHOULD reply)."""
        bucket = self._sources.pop(source, None)  # re-inserted last: the dict is in least-recent order
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._forget_oldest()
        self._sources[source] = bucket
        if bucket.level(now, self.burst, self.rate) < 1.0:
            return False
        bucket.tokens -= 1.0
        if self._total.level(now, self.total_burst, self.total_rate) < 1.0:
            return False
        self._total.tokens -= 1.0
        return True

    def _forget_oldest(self) -> None:
        while len(self._sources) >= self.max_sources:
            del self._sources[next(iter(self._sources))]

    def __len__(self) -> int:
        return len(self._sources)
