"""The home agent's kernel steering kept in step with its bindings (:mod:`agents.runtime.steering`).

The set of known peers changes when a binding is added, renewed from a new source or removed, and when a
source's binding lifetime runs out; the program is rebuilt on binding events and checked once a second,
and installed only when the set differs. Each installation is traced (``priority_sources``) so a run
folder shows which sources the kernel served first and from when.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable

from agents.mip.common import events as ev
from agents.mip.common.events import HomeAgentEvent
from agents.mip.common.trace_schema import TraceEvent
from agents.mip.ha.home_agent import HomeAgent
from agents.runtime.frame import AgentContext
from agents.runtime.roles.driver import EventHandler
from agents.runtime.steering import MAX_ADDRESSES, SteeredSocket

logger = logging.getLogger(__name__)


CHECK_INTERVAL = 1.0
"""Seconds between checks for sources whose binding lifetime ran out."""
BINDING_EVENTS = (ev.BindingAdded, ev.BindingUpdated, ev.BindingRemoved)


class HomeAgentSteering:
    """Rebuilds the reuseport program from :meth:`HomeAgent.known_sources` when the set changes."""

    def __init__(self, machine: HomeAgent, sock: SteeredSocket, context: AgentContext) -> None:
        self.machine = machine
        self.sock = sock
        self.context = context
        self.now: Callable[[], float] = context.loop.time
        self._pending = False
        self._handle: asyncio.TimerHandle | None = None

    def follow(self, apply: EventHandler[HomeAgentEvent]) -> EventHandler[HomeAgentEvent]:
        """``apply``, then a refresh (soon, once per burst of events) after each binding change."""

        def handler(event: HomeAgentEvent) -> None:
            apply(event)
            if isinstance(event, BINDING_EVENTS) and not self._pending:
                self._pending = True
                self.context.loop.call_soon(self.refresh)

        return handler

    def start(self, now: Callable[[], float]) -> None:
        self.now = now
        self._check()
        self.context.on_shutdown(self.stop, name="stop the steering checks")

    def _check(self) -> None:
        """The once-a-second check (sources whose binding lifetime ran out), on its own timer: a refresh
        after binding events does not move it (issue 9: one cancelled and one new loop timer per renewal)."""
        self.refresh()
        self._handle = self.context.loop.call_later(CHECK_INTERVAL, self._check)

    def refresh(self) -> None:
        self._pending = False
        known = self.machine.known_sources(self.now())
        try:
            changed = self.sock.steer(known)
        except OSError as error:  # the kernel refused the program: served unsorted, said once per change
            logger.warning("kernel steering of known peers failed: %s", error)
            self.context.trace.emit(TraceEvent.PRIORITY_SOURCES_FAILED, error=str(error))
            changed = False
        if changed:
            if len(known) > MAX_ADDRESSES:
                logger.warning("%d known sources: only %d steered by the kernel", len(known), MAX_ADDRESSES)
            if self.context.trace.enabled:  # 64 names out of up to 10,000: only for a trace line
                first = heapq.nsmallest(64, (str(address) for address in known))
                self.context.trace.emit(TraceEvent.PRIORITY_SOURCES, count=len(known), sources=first)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
