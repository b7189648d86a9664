"""Retransmission timing shared by the state machines (RFC 5944 §3.6.3)."""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_REQUEST_GAP = 1.0
"""Seconds between two Registration Requests, at least (RFC 5944 §3.6.3)."""


@dataclass
class Backoff:
    """Binary exponential backoff: ``initial``, doubling on each retry, capped at ``maximum``.

    RFC 5944 §3.6.3: the first timeout is at least 1 s and SHOULD at least double on each retry.
    """

    initial: float
    maximum: float
    _current: float = field(init=False)

    def __post_init__(self) -> None:
        if self.initial < MIN_REQUEST_GAP:
            raise ValueError(f"initial retransmission interval {self.initial} is below 1 s (RFC 5944 §3.6.3)")
        self.maximum = max(self.maximum, self.initial)
        self._current = self.initial

    @property
    def current(self) -> float:
        """The interval the next call to :meth:`advance` returns."""
        return self._current

    def advance(self) -> float:
        """Return the interval to wait now, and double it for next time (capped)."""
        interval = self._current
        self._current = min(self._current * 2.0, self.maximum)
        return interval

    def reset(self) -> None:
        """Back to the initial interval."""
        self._current = self.initial


def earliest(*deadlines: float | None) -> float | None:
    """The smallest of the deadlines that are set, or None."""
    present = [deadline for deadline in deadlines if deadline is not None]
    return min(present, default=None)
