"""One asyncio timer driven by a sans-I/O machine's ``get_timer()`` / ``handle_timer(now)``.

Clock: the machines in :mod:`agents.mip` take deadlines in CLOCK_MONOTONIC seconds (the same clock
as the trace files, see :func:`agents.runtime.trace.monotonic_now`). The default asyncio loop's
``loop.time()`` is ``time.monotonic()``, which on Linux is ``clock_gettime(CLOCK_MONOTONIC)``
(``time.get_clock_info("monotonic").implementation`` says so), so deadlines can be handed to
``loop.call_at`` unchanged. :func:`check_loop_clock` verifies this for a given loop (another loop
implementation could use a different clock) and the agent frame calls it once at start-up.

Use: after *every* input given to the machine (datagram, link event, control command) call
:meth:`AgentTimer.rearm`; the timer calls it itself after each ``handle_timer``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from agents.runtime.trace import monotonic_now

logger = logging.getLogger(__name__)

CLOCK_TOLERANCE_S = 0.005
STUCK_TIMER_DELAY_S = 0.001


class TimedMachine(Protocol):
    """The timer half of a sans-I/O state machine."""

    def get_timer(self) -> float | None:
        """The next CLOCK_MONOTONIC deadline, or None when nothing is scheduled."""
        ...

    def handle_timer(self, now: float) -> None:
        """Handle every deadline that is ≤ ``now``."""
        ...


def check_loop_clock(loop: asyncio.AbstractEventLoop) -> None:
    """Raise RuntimeError unless ``loop.time()`` reads CLOCK_MONOTONIC (within a few ms)."""
    before = monotonic_now()
    loop_now = loop.time()
    after = monotonic_now()
    if not before - CLOCK_TOLERANCE_S <= loop_now <= after + CLOCK_TOLERANCE_S:
        raise RuntimeError(
            f"event loop clock ({loop_now:.6f}) is not CLOCK_MONOTONIC ({before:.6f}); "
            "timer deadlines would be wrong"
        )


class AgentTimer:
    """Keeps exactly one loop TimerHandle armed at the machine's next deadline.

    ``on_fired(now)`` runs after each ``handle_timer`` (the runner sends ``datagrams_to_send`` and
    drains ``next_event`` there). ``now`` given to the machine is never earlier than the deadline that
    fired. If ``handle_timer`` or ``on_fired`` raises, the timer stops and ``on_error(exc)`` is called
    (the runner passes ``AgentContext.fail``); without ``on_error`` the exception goes to the loop's
    exception handler.
    """

    def __init__(
        self,
        machine: TimedMachine,
        loop: asyncio.AbstractEventLoop,
        on_fired: Callable[[float], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._machine = machine
        self._loop = loop
        self._on_fired = on_fired
        self._on_error = on_error
        self._handle: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._closed = False
        self._warned_stuck = False

    @property
    def deadline(self) -> float | None:
        """The deadline currently armed, or None."""
        return self._deadline

    def rearm(self) -> None:
        """Arm (or move earlier, or cancel) the loop timer to match ``machine.get_timer()``.

        A deadline that moved *later* keeps the handle armed for the earlier one: it fires, the machine
        finds nothing due at that time, and the timer is armed again for the machine's next deadline. A
        home agent's renewals move its earliest binding expiry later with nearly every request, so this
        saves a cancelled handle and a new one in the loop's heap per request (issue 9); nothing ever
        fires later than its deadline."""
        if self._closed:
            return
        deadline = self._machine.get_timer()
        armed = self._deadline
        if deadline is not None and armed is not None and self._handle is not None and armed <= deadline:
            return
        self._arm(deadline)

    def cancel(self) -> None:
        """Disarm for good (at shutdown); later ``rearm`` calls do nothing."""
        self._closed = True
        self._arm(None)

    def _arm(self, deadline: float | None) -> None:
        if deadline == self._deadline and self._handle is not None:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._deadline = deadline
        if deadline is not None:
            self._handle = self._loop.call_at(deadline, self._fire, deadline)

    def _fire(self, deadline: float) -> None:
        self._handle = None
        self._deadline = None
        now = max(self._loop.time(), deadline)
        try:
            self._machine.handle_timer(now)
            if self._on_fired is not None:
                self._on_fired(now)
        except Exception as exc:
            if self._on_error is None:
                raise
            self._closed = True
            self._on_error(exc)
            return
        if not self._closed:
            self._arm(self._next_deadline(deadline, now))

    def _next_deadline(self, fired: float, now: float) -> float | None:
        """The machine's next deadline, pushed slightly ahead if it did not move past ``fired``."""
        deadline = self._machine.get_timer()
        if deadline is None or deadline > fired:
            return deadline
        if not self._warned_stuck:
            logger.warning(
                "%s kept its timer at %.6f after handling it; retrying every %.0f ms",
                type(self._machine).__name__,
                deadline,
                STUCK_TIMER_DELAY_S * 1000,
            )
            self._warned_stuck = True
        return now + STUCK_TIMER_DELAY_S
