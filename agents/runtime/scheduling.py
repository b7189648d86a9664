"""Real-time scheduling for an agent (``[runtime] realtime_priority``, issue 14).

A handover waits on six process wake-ups (MN, FA, HA, FA, MN, ...). On a busy host each wake-up can wait a
whole scheduler slice behind whatever else runs (on the testbed: the probes, 8 processes on 2 cores), which
measured ~2.5 ms of a ~7.7 ms link-event handover. Routing daemons that fail over within milliseconds ask
for a real-time policy for the same reason; an agent does so with ``realtime_priority = N`` (1-99,
``SCHED_FIFO``; 0, the default, keeps normal scheduling).

A real-time task that never sleeps would starve everything else on its CPU (a flood of registration
requests, a bug). So the agent also sets ``RLIMIT_RTTIME`` (:data:`RUNAWAY_LIMIT`): when it has run that
long without blocking, the kernel sends SIGXCPU and the agent drops back to normal scheduling for good,
logs it and traces ``scheduling`` with ``state = "dropped"``. Where the kernel refuses a real-time policy
(no ``CAP_SYS_NICE``; a cgroup without real-time runtime) the agent says so and runs normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

from agents.mip.common.trace_schema import TraceEvent
from agents.runtime.trace import TraceWriter

logger = logging.getLogger(__name__)

MAX_PRIORITY = 99
RUNAWAY_LIMIT = 0.2
"""Seconds of CPU a real-time agent may use without blocking before it drops to normal scheduling (the
kernel counts in ticks, so the drop comes up to one tick later)."""


def check_priority(key: str, priority: int) -> None:
    """ValueError (exit 2, naming ``key``) for a priority outside 0..99 (sched(7): SCHED_FIFO 1..99)."""
    if isinstance(priority, bool) or not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"{key} {priority!r} must be 0 (normal scheduling) .. {MAX_PRIORITY} (SCHED_FIFO)")


def thread_ids() -> list[int]:
    """This process's threads: a policy is per thread (sched(7)); threads started later inherit it."""
    return [int(entry) for entry in os.listdir(Path("/proc/self/task"))]


def set_policy(policy: int, priority: int, threads: Callable[[], list[int]] = thread_ids) -> None:
    """``policy`` at ``priority`` for every thread of this process; OSError if the kernel refuses. A
    real-time policy is not passed on to the commands an agent starts (``tc``, ``ip``):
    ``SCHED_RESET_ON_FORK``."""
    if policy != os.SCHED_OTHER:
        policy |= os.SCHED_RESET_ON_FORK
    for thread in threads():
        try:
            os.sched_setscheduler(thread, policy, os.sched_param(priority))
        except ProcessLookupError:
            continue  # the thread ended meanwhile


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
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, policy, param)


class RealtimeScheduling:
    """One agent's real-time policy: :meth:`start` asks for it, SIGXCPU (the runaway guard) drops it."""

    def __init__(self, priority: int, trace: TraceWriter, limit: float = RUNAWAY_LIMIT) -> None:
        check_priority("realtime_priority", priority)
        self.priority = priority
        self.trace = trace
        self.limit = limit
        self.state = "off"
        """``off`` (priority 0), ``on``, ``unavailable`` (the kernel refused) or ``dropped`` (runaway)."""
        self.error = ""

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Install the runaway guard, then switch to ``SCHED_FIFO``; a refusal is logged and traced."""
        if self.priority == 0:
            return
        try:
            loop.add_signal_handler(signal.SIGXCPU, self.drop)
            _, hard = resource.getrlimit(resource.RLIMIT_RTTIME)
            soft = int(self.limit * 1_000_000)
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.setrlimit(resource.RLIMIT_RTTIME, (soft, hard))
            set_policy(os.SCHED_FIFO, self.priority)
        except (OSError, ValueError, RuntimeError) as error:
            self._record("unavailable", f"{type(error).__name__}: {error}")
            logger.warning(
                "realtime_priority %d: SCHED_FIFO not available here (%s): normal scheduling",
                self.priority,
                self.error,
            )
            self._restore_default_policy()
            return
        self._record("on")
        logger.info("SCHED_FIFO priority %d (dropped after %g s without sleeping)", self.priority, self.limit)

    def drop(self) -> None:
        """SIGXCPU: the agent ran :attr:`limit` without blocking: back to normal scheduling for good."""
        if self.state != "on":
            return
        self._restore_default_policy()
        self._record("dropped", f"ran {self.limit:g} s without sleeping")
        logger.warning(
            "realtime_priority %d dropped: the agent ran %g s without sleeping (a flood?); normal "
            "scheduling from now on",
            self.priority,
            self.limit,
        )

    def status(self) -> dict[str, object]:
        """For the control socket's ``status``."""
        return {"realtime_priority": self.priority, "state": self.state, "error": self.error}

    def _restore_default_policy(self) -> None:
        try:
            set_policy(os.SCHED_OTHER, 0)
        except OSError as error:  # lowering one's own policy is always allowed; log if not
            logger.error("cannot restore normal scheduling: %s", error)

    def _record(self, state: str, error: str = "") -> None:
        self.state, self.error = state, error
        self.trace.emit(TraceEvent.SCHEDULING, priority=self.priority, state=state, error=error)
