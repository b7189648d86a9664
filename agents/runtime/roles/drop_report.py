"""One security-drop report for every role (RFC 3024 §4.3.2 "silently discard", logged and traced).

Tunnel packets refused by a datapath's checks are security events: each datapath counts every drop and
calls :meth:`DropReporter.report`; the report goes through the agent's one
:class:`~agents.runtime.security_log.SecurityLog` as a ``security_drop`` line. The budget is checked on
the caller's thread, so a flood costs the event loop nothing past the budget.
"""

from __future__ import annotations

from agents.datapath.base import DropEvent
from agents.mip.common.trace_schema import TraceEvent
from agents.runtime.frame import AgentContext


class DropReporter:
    """Datapath drops → the agent's security log and trace (safe from any thread)."""

    def __init__(self, context: AgentContext) -> None:
        self.security = context.security
        self.loop = context.loop  # captured on the event loop: userspace HA/MN drops arrive on their threads

    def report(self, drop: DropEvent) -> None:
        if self.security.admit(TraceEvent.SECURITY_DROP):
            self.loop.call_soon_threadsafe(self.security.write, TraceEvent.SECURITY_DROP, drop.to_dict())
