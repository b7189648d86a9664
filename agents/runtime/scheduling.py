"""Real-time scheduling for an agent (``[runtime] realtime_priority``, issue 14).

A handover waits on six process wake-ups (MN, FA, HA, FA, MN, ...). On a busy host each wake-up can wait a
whole scheduler slice behind whatever else runs (on the testbed: the probes, 8 processes on 2 cores), which
measured ~2.5 ms of a ~7.7 ms link-event handover. Routing daemons that fail over within milliseconds ask
for a real-time policy for the same reason; an agent does so with ``realtime_priority = N`` (1-99,
``SCHED_FIFO``; 0, the default, keeps normal scheduling). Only the agent's event loop (its main thread:
the signalling) runs real-time; datapath threads and the commands it starts (``tc``, ``ip``) run normally
(``SCHED_RESET_ON_FORK``).

A real-time agent that keeps a CPU busy would starve everything else on it, so two guards drop it back to
normal scheduling for good (a warning, and a ``scheduling`` trace line with ``state = "dropped"``):

* it used more than :data:`MAX_CPU_SHARE` of a CPU over :data:`SHARE_WINDOWS` windows of
  :data:`SHARE_WINDOW` (a flood of registration requests: the loop blocks for an instant between bursts,
  so a limit on time without sleeping never fires);
* it ran :data:`RUNAWAY_LIMIT` without blocking at all (``RLIMIT_RTTIME``, SIGXCPU; a bug, a coroutine that
  never yields). The handler is a plain signal handler, which Python runs between two bytecodes even in a
  busy loop, so the policy drops at once; the log line and trace line follow from the event loop.

Where the kernel refuses a real-time policy (no ``CAP_SYS_NICE``; a cgroup without real-time runtime) the
agent says so (``state = "unavailable"``) and runs normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import time
from collections.abc import Iterator
from types import FrameType

from agents.mip.common.trace_schema import TraceEvent
from agents.runtime.trace import TraceWriter

logger = logging.getLogger(__name__)

MAX_PRIORITY = 99
RUNAWAY_LIMIT = 0.2
"""Seconds of CPU a real-time agent may use without blocking (the kernel counts in ticks)."""
MAX_CPU_SHARE = 0.5
SHARE_WINDOW = 0.25
SHARE_WINDOWS = 2
"""More than half a CPU for 0.5 s: a handover costs the busiest agent a few ms of CPU."""


def check_priority(key: str, priority: int) -> None:
    """ValueError (exit 2, naming ``key``) for a priority outside 0..99 (sched(7): SCHED_FIFO 1..99)."""
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"{key} {priority!r} must be 0 (normal scheduling) .. {MAX_PRIORITY} (SCHED_FIFO)")


def set_fifo(priority: int) -> None:
    """The calling thread at ``SCHED_FIFO`` ``priority``, not inherited by what it starts; OSError if the
    kernel refuses."""
    os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))


def set_normal() -> None:
    """The calling thread back at ``SCHED_OTHER`` (always allowed: it lowers the policy)."""
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


@contextlib.contextmanager
def realtime_thread(priority: int) -> Iterator[bool]:
    """The calling thread at ``SCHED_FIFO`` ``priority`` for the block (0: unchanged); yields whether it
    is. For the harness's link move, which stands for hardware: its timing must not depend on who else
    wants a CPU. Programs started inside the block run normally (``SCHED_RESET_ON_FORK``)."""
    if priority == 0:
        yield False
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        set_fifo(priority)
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, policy, param)


class RealtimeScheduling:
    """One agent's real-time policy: :meth:`start` asks for it (from the event loop's thread), the guards
    drop it."""

    def __init__(
        self, priority: int, trace: TraceWriter, limit: float = RUNAWAY_LIMIT, window: float = SHARE_WINDOW
    ) -> None:
        check_priority("realtime_priority", priority)
        self.priority = priority
        self.trace = trace
        self.limit = limit
        self.window = window
        self.state = "off"
        """``off`` (priority 0), ``on``, ``unavailable`` (the kernel refused), ``dropped`` (a guard fired;
        ``dropping`` between SIGXCPU and the loop's next turn)."""
        self.error = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last = (0.0, 0.0)
        self._busy_windows = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Install the guards, then switch the calling (event loop) thread to ``SCHED_FIFO``; a refusal is
        logged and traced, never raised."""
        if self.priority == 0:
            return
        self._loop = loop
        try:
            signal.signal(signal.SIGXCPU, self._on_sigxcpu)
            _, hard = resource.getrlimit(resource.RLIMIT_RTTIME)
            soft = int(self.limit * 1_000_000)
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.setrlimit(resource.RLIMIT_RTTIME, (soft, hard))
            set_fifo(self.priority)
        except (OSError, ValueError) as error:
            self._record("unavailable", f"{type(error).__name__}: {error}")
            logger.warning(
                "realtime_priority %d: SCHED_FIFO not available here (%s): normal scheduling",
                self.priority,
                self.error,
            )
            return
        self._record("on")
        logger.info(
            "SCHED_FIFO priority %d (dropped above %.0f%% of a CPU for %g s, or after %g s without sleeping)",
            self.priority,
            MAX_CPU_SHARE * 100,
            self.window * SHARE_WINDOWS,
            self.limit,
        )
        self._last = (time.monotonic(), time.thread_time())
        loop.call_later(self.window, self._check_share)

    def _check_share(self) -> None:
        """Every :attr:`window`: the loop thread's share of a CPU since the last look."""
        if self.state != "on" or self._loop is None:
            return
        now, used = time.monotonic(), time.thread_time()
        share = (used - self._last[1]) / max(now - self._last[0], 1e-9)
        self._last = (now, used)
        self._busy_windows = self._busy_windows + 1 if share > MAX_CPU_SHARE else 0
        if self._busy_windows >= SHARE_WINDOWS:
            self.drop(f"used {share:.0%} of a CPU for {self.window * SHARE_WINDOWS:g} s")
            return
        self._loop.call_later(self.window, self._check_share)

    def _on_sigxcpu(self, _signum: int, _frame: FrameType | None) -> None:
        """RLIMIT_RTTIME ran out: drop now (between two bytecodes), say so from the loop."""
        if self.state != "on":
            return
        set_normal()
        self.state = "dropping"
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.drop, f"ran {self.limit:g} s without sleeping")

    def drop(self, reason: str) -> None:
        """Back to normal scheduling for good, logged and traced."""
        if self.state not in ("on", "dropping"):
            return
        try:
            set_normal()
        except OSError as error:  # lowering one's own policy is always allowed; log if not
            logger.error("cannot restore normal scheduling: %s", error)
        self._record("dropped", reason)
        logger.warning("realtime_priority %d dropped (%s): normal scheduling", self.priority, reason)

    def status(self) -> dict[str, object]:
        """For the control socket's ``scheduling`` command."""
        return {"realtime_priority": self.priority, "state": self.state, "error": self.error}

    def _record(self, state: str, error: str = "") -> None:
        self.state, self.error = state, error
        self.trace.emit(TraceEvent.SCHEDULING, priority=self.priority, state=state, error=error)
