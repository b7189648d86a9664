"""Crash recovery for `python -m agents ha`: stale kernel state out, journalled bindings back in.

A home agent killed with SIGKILL runs no cleanup. Its TUN device (never made persistent) goes with its
file descriptor, and the tunnel routes into it with the device, but these stay behind: the NTF_PROXY
entries for its mobile nodes' home addresses on the home link (so the link keeps sending it traffic for
nodes it may not know any more), the home-link routes of the nodes' prefixes (metric 4096), and the
sysctls it changed. A restarted home agent therefore, before it installs anything:

* deletes a leftover link with its tunnel interface's name (with the kernel datapath: its ``<name>4-<n>``
  / ``<name>6-<n>`` tunnel devices and its nftables guard table, :mod:`agents.datapath.native`), every
  proxy ARP entry for a configured home address on the home link and every home-link prefix route it
  would add (so what it adds again is its own, and removed at its clean exit);
* with `[runtime] journal`, keeps the sysctl values the first of a line of crashed home agents found
  (the ``sysctls`` record) and writes them back at its own clean exit;
* restores the journalled, unexpired bindings into the core (:meth:`HomeAgent.restore_binding`), whose
  events then rebuild tunnels, prefix routes, proxy ARP and a gratuitous ARP (RFC 5944 §4.6), so traffic
  to the mobile nodes flows again without waiting for their renewals.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agents.datapath.native import remove_stale_home_agent_state
from agents.mip.common.config import HomeAgentConfig
from agents.mip.common.events import HomeAgentEvent
from agents.mip.common.trace_schema import TraceEvent
from agents.mip.ha.home_agent import HomeAgent
from agents.net.netlink import Netlink
from agents.runtime.frame import AgentContext
from agents.runtime.roles.driver import EventHandler
from agents.runtime.roles.ha_journal import BindingJournal, JournalState
from agents.runtime.roles.recovery import (
    journaled,
    keep_sysctl_originals,
    remove_and_report_stale,
    report_problems,
)

logger = logging.getLogger(__name__)


def changed_sysctls(home_interface: str) -> list[str]:
    """The sysctls the home agent's datapath and home link change outside its TUN device (whose own
    settings vanish with it)."""
    return [
        "net/ipv4/ip_forward",
        "net/ipv6/conf/all/forwarding",
        f"net/ipv4/neigh/{home_interface}/proxy_delay",
    ]


def remove_stale_state(
    config: HomeAgentConfig, home_interface: str, tunnel_interface: str, home_metric: int
) -> list[str]:
    """Delete what a crashed predecessor may have left (see the module docstring); what was removed."""
    removed: list[str] = []
    with Netlink() as netlink:
        if netlink.link_exists(tunnel_interface) and netlink.delete_link(tunnel_interface):
            removed.append(f"link {tunnel_interface}")
        removed.extend(remove_stale_home_agent_state(netlink, tunnel_interface))
        if not netlink.link_exists(home_interface):
            return removed
        for account in config.mobile_nodes:
            if netlink.remove_proxy_neighbour(home_interface, account.home_address):
                removed.append(f"proxy ARP {account.home_address} on {home_interface}")
            for prefix in account.allowed_prefixes:
                if netlink.remove_route(prefix, interface=home_interface, metric=home_metric):
                    removed.append(f"route {prefix} dev {home_interface} metric {home_metric}")
    return removed


class HomeAgentRecovery:
    """Set up at start before anything is installed: reads the journal, clears stale state, keeps the
    sysctl originals; then restores the bindings and journals every change."""

    def __init__(
        self,
        config: HomeAgentConfig,
        journal_path: str | None,
        home_interface: str,
        context: AgentContext,
    ) -> None:
        self.config = config
        self.context = context
        self.home_interface = home_interface
        self.journal: BindingJournal | None = None
        self.state = JournalState({}, {}, [])
        if journal_path is not None:
            self._open_journal(Path(journal_path))

    def _open_journal(self, path: Path) -> None:
        """Read it (one warning line for unusable records) and keep the sysctl originals."""
        journal = BindingJournal(path, self.context.loop.time)
        self.state = journal.load()
        report_problems(self.context, self.state.summary(path), self.state.problems, str(path))
        keep_sysctl_originals(journal, self.state.sysctls, changed_sysctls(self.home_interface), self.context)
        self.journal = journal

    def remove_stale(self, tunnel_interface: str, home_metric: int) -> None:
        def remove() -> list[str]:
            return remove_stale_state(self.config, self.home_interface, tunnel_interface, home_metric)

        remove_and_report_stale(remove, "home agent", self.context)

    def journaled(self, apply: EventHandler[HomeAgentEvent]) -> EventHandler[HomeAgentEvent]:
        """``apply`` preceded by the journal write (the record is on disk before the reply is sent)."""
        return journaled(self.journal, apply)

    def restore(self, machine: HomeAgent, now: float) -> None:
        """Bindings back into the core (their events are applied by the driver's first flush), then the
        journal compacted to the current state."""
        journal = self.journal
        if journal is None:
            return
        journal.attach(machine)
        for saved in self.state.bindings.values():
            outcome = machine.restore_binding(saved, now)
            if outcome.restored or outcome.skipped:
                logger.info(
                    "journal: %s %s%s",
                    saved.home_address,
                    f"restored ({len(outcome.care_ofs)} care-of, {len(outcome.prefixes)} prefixes)"
                    if outcome.restored
                    else "not restored",
                    f"; skipped: {'; '.join(outcome.skipped)}" if outcome.skipped else "",
                )
            self.context.trace.emit(
                TraceEvent.BINDING_RESTORED if outcome.restored else TraceEvent.BINDING_NOT_RESTORED,
                home_address=str(saved.home_address),
                care_ofs=[str(entry.care_of) for entry in outcome.care_ofs],
                prefixes=[str(item.prefix) for item in outcome.prefixes],
                skipped=list(outcome.skipped),
            )
        homes = set(self.state.bindings) | {binding.home_address for binding in machine.table.all()}
        journal.compact(homes)
