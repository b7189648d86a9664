"""The one rate limiter for security log lines and their trace lines (RFC 5944 §3.8.2.1, RFC 3024 §4.3.2).

Every security event of every role goes through :class:`SecurityLog`: registration failures
(``authentication_failed``, ``identification_rejected``, ``fa_authentication_failed``) and the datapath's
refused tunnel packets (``security_drop``) become an ``agents.security`` warning and a trace line; the
flood-prone noise (``malformed_datagram``, ``datagram_discarded``, ``advertisement_discarded``) only a trace
line. All share one :class:`~agents.mip.common.budgets.LogBudget`: at most ``per_second`` lines in each 1 s
window, plus one "N more suppressed" summary per flush. The summary is written by a 1 s timer and at
exit, so the last burst before a stop is never lost. Bound with the defaults: 21 lines/s in the log and
21 lines/s of these events in the trace, whatever the offered load.

:meth:`SecurityLog.admit` may be called from any thread (the datapath's); writing happens on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from agents.mip.common.budgets import DEFAULT_LINES_PER_SECOND, LogBudget
from agents.mip.common.trace_schema import TraceEvent
from agents.runtime.trace import TraceWriter

security = logging.getLogger("agents.security")

LOGGED_EVENTS = frozenset(
    {
        TraceEvent.AUTHENTICATION_FAILED,
        TraceEvent.IDENTIFICATION_REJECTED,
        TraceEvent.FA_AUTHENTICATION_FAILED,
        TraceEvent.SECURITY_DROP,
    }
)
"""Security exceptions: a warning line and a trace line, within the budget."""
TRACED_EVENTS = frozenset(
    {TraceEvent.MALFORMED_DATAGRAM, TraceEvent.DATAGRAM_DISCARDED, TraceEvent.ADVERTISEMENT_DISCARDED}
)
"""Anyone can send these at any rate: a trace line only, within the same budget."""
BUDGETED_EVENTS = LOGGED_EVENTS | TRACED_EVENTS
FLUSH_INTERVAL = 1.0
"""Seconds between summary flushes (equal to the budget window, so the bound is per_second + 1)."""


class SecurityLog:
    """Applies one :class:`LogBudget` to every security line; summaries on a timer and at :meth:`close`."""

    def __init__(
        self,
        trace: TraceWriter,
        per_second: int = DEFAULT_LINES_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.trace = trace
        self.clock = clock
        self._budget = LogBudget(per_second, 1.0)
        self._lock = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush the summary every :data:`FLUSH_INTERVAL` seconds on ``loop``."""
        self._loop = loop
        self._timer = loop.call_later(FLUSH_INTERVAL, self._tick)

    def _tick(self) -> None:
        self.flush()
        if self._loop is not None:
            self._timer = self._loop.call_later(FLUSH_INTERVAL, self._tick)

    def admit(self, name: str) -> bool:
        """May a line for event ``name`` be written now? (Any thread; a refusal is counted.)"""
        with self._lock:
            return self._budget.admit(name, self.clock())

    def write(self, name: str, fields: Mapping[str, Any]) -> None:
        """Write an admitted event: a warning for security exceptions, and a trace line."""
        if name in LOGGED_EVENTS:
            security.warning("%s: %s", name, dict(fields))
        self.trace.emit(name, **fields)

    def report(self, name: str, fields: Callable[[], Mapping[str, Any]]) -> None:
        """Admit and write; ``fields`` is only built for an admitted line."""
        if self.admit(name):
            self.write(name, fields())

    def flush(self) -> None:
        """Write the "N more suppressed" summary, if anything was suppressed since the last one."""
        with self._lock:
            counts = self._budget.take_suppressed()
        if counts:
            total = sum(counts.values())
            security.warning("%d more security events not logged: %s", total, counts)
            self.trace.emit(TraceEvent.SECURITY_SUPPRESSED, count=total, by_event=counts)

    def close(self) -> None:
        """Stop the timer and write the last summary (at exit)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None
        self.flush()
