"""Crash recovery for `python -m agents fa`: stale kernel state out, journalled visitors back in.

A foreign agent killed with SIGKILL leaves its policy rules behind (each visitor's ``from <HoA> iif
<access> lookup <table>`` and the access link's ingress filter, ``from <access network> lookup main`` and
``iif <access> blackhole``) and the forwarding sysctl; its TUN device and the routes into it go with
its file descriptor. A restarted FA (whose ingress rules would otherwise collide with the old ones)
therefore first deletes every ``iif <access>`` rule at its three priorities and a leftover link with its
tunnel interface's name. With `[runtime] journal` it then restores the unexpired visitor entries
(:meth:`ForeignAgent.restore_visitor`), whose ``VisitorAdded`` events rebuild delivery and reverse
tunnelling (RFC 5944 §3.7.1, §4.2.2; RFC 3024 §5), so visitors need not wait for their renewal, and it
writes back at its clean exit the sysctls the first FA found (:mod:`agents.runtime.roles.recovery`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from agents.mip.common.trace_schema import TraceEvent
from agents.mip.fa.events import ForeignAgentEvent
from agents.mip.fa.foreign_agent import ForeignAgent
from agents.net.netlink import Netlink
from agents.runtime.frame import AgentContext
from agents.runtime.roles.driver import EventHandler
from agents.runtime.roles.fa_journal import VisitorJournal, VisitorJournalState
from agents.runtime.roles.recovery import (
    journaled,
    keep_sysctl_originals,
    remove_and_report_stale,
    report_problems,
)

logger = logging.getLogger(__name__)


CHANGED_SYSCTLS = ["net/ipv4/ip_forward"]
"""What the FA datapath changes outside its TUN device (whose own settings vanish with it)."""


class FaPlacement(Protocol):
    """The `[runtime]` fields recovery needs (:class:`ForeignAgentRuntime`)."""

    @property
    def access_interface(self) -> str: ...
    @property
    def tunnel_interface(self) -> str: ...
    @property
    def rule_priority(self) -> int: ...
    @property
    def journal(self) -> str | None: ...


def remove_stale_state(runtime: FaPlacement) -> list[str]:
    """Delete what a crashed predecessor may have left (see the module docstring); what was removed."""
    removed: list[str] = []
    with Netlink() as netlink:
        if netlink.link_exists(runtime.tunnel_interface) and netlink.delete_link(runtime.tunnel_interface):
            removed.append(f"link {runtime.tunnel_interface}")
        for priority in range(runtime.rule_priority, runtime.rule_priority + 3):
            count = netlink.remove_rules_at(priority, runtime.access_interface)
            if count:
                removed.append(f"{count} rule(s) at priority {priority} iif {runtime.access_interface}")
    return removed


class ForeignAgentRecovery:
    """Set up at start before the datapath: reads the journal, clears stale state, keeps the sysctl
    originals; then restores the visitors and journals every change."""

    def __init__(self, runtime: FaPlacement, context: AgentContext) -> None:
        self.runtime = runtime
        self.context = context
        self.journal: VisitorJournal | None = None
        self.state = VisitorJournalState({}, {}, [])
        if runtime.journal is not None:
            path = Path(runtime.journal)
            journal = VisitorJournal(path, context.loop.time)
            self.state = journal.load()
            report_problems(context, self.state.summary(path), self.state.problems, str(path))
            keep_sysctl_originals(journal, self.state.sysctls, CHANGED_SYSCTLS, context)
            self.journal = journal

    def remove_stale(self) -> None:
        remove_and_report_stale(lambda: remove_stale_state(self.runtime), "foreign agent", self.context)

    def journaled(self, apply: EventHandler[ForeignAgentEvent]) -> EventHandler[ForeignAgentEvent]:
        """``apply`` preceded by the journal write (on disk before the relayed reply goes out)."""
        return journaled(self.journal, apply)

    def restore(self, machine: ForeignAgent, now: float) -> None:
        """Visitors back into the core (the driver's first flush applies their events), then the journal
        compacted to the current state."""
        journal = self.journal
        if journal is None:
            return
        journal.attach(machine)
        for home, visitor in self.state.visitors.items():
            reason = machine.restore_visitor(visitor, now)
            logger.info(
                "journal: visitor %s %s", home, "restored" if reason is None else f"not restored: {reason}"
            )
            self.context.trace.emit(
                TraceEvent.VISITOR_RESTORED if reason is None else TraceEvent.VISITOR_NOT_RESTORED,
                home_address=str(home),
                care_of=str(visitor.care_of),
                reason=reason,
            )
        journal.compact(set(self.state.visitors) | {visitor.home_address for visitor in machine.visitor_list})
