"""The handover scenario's make-before-break handoff: a second interface and simultaneous bindings.

``--handoff make-before-break`` gives the mobile node a second radio for each move from one foreign
agent to another (RFC 5944 §3.6.1.3, simultaneous bindings; RFC 4881 §3.1's make-before-break):

1. the harness adds a second interface to the MN on the new FA's access link while its first interface
   is still on the old one (a veth whose switch side joins the new bridge; the same MAC address as the
   first interface, as one card with two radios would present: the two links are separate broadcast
   domains, and the new FA keeps delivering to that address once the first interface arrives);
2. the L2 trigger (``handoff-trigger`` with ``request_to``, the new FA's access address) makes the MN
   register the new FA's care-of address with S set; the request leaves through the second interface
   (a host route to the new FA), so the new FA relays it at once;
3. the home agent keeps both bindings and sends a copy to each care-of address: the MN receives every
   downlink packet twice (once per interface) while both are up — the probes count the duplicates;
4. the first interface leaves the old link (the ordinary move: carrier down, re-attached to the new
   FA's bridge, carrier up); the MN then registers once more without S, so the HA drops the old binding
   (RFC 5944 §3.6.1.3) and duplicates stop;
5. once the move has settled the harness removes the second interface.

Only moves from one foreign agent to another use it (a move from home has no old care-of address to keep;
a return home is a deregistration). Every step is a scenario trace event tagged with the handover number.
"""

from __future__ import annotations

import subprocess
import time

from agents.mip.common.trace_schema import TraceEvent
from scenarios.handoff import HANDOFF_IN, PRE_TIMEOUT, LowLatencyHandoff
from scenarios.harness.testbed import Testbed, wait_until
from topologies.dualstack import DualStackTopo

MODE = "make-before-break"
OVERLAP = 0.3
"""Seconds both interfaces stay up after the HA accepted the second binding (the bicast window)."""
SECOND_INTERFACE = "mbb0"
"""The second interface's name inside the mobile node's namespace."""


def _root(*command: str) -> None:
    """One ``ip`` command in the root namespace (only on our own tagged interfaces)."""
    finished = subprocess.run(["ip", *command], capture_output=True, text=True, timeout=10, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"ip {' '.join(command)}: {finished.stderr.strip()}")


class MakeBeforeBreak(LowLatencyHandoff):
    """Second interface + S-bit registration before each FA-to-FA move (RFC 5944 §3.6.1.3)."""

    def __init__(self, bed: Testbed, topo: DualStackTopo, mobile_node: str, mode: str = MODE) -> None:
        super().__init__(bed, topo, mobile_node, "pre")
        self.mode = MODE
        self.port = f"ds{topo.tag}mb{mobile_node}"[:15]
        self.added = False

    def _access_address(self, fa: str) -> str:
        return str(self._fa(fa)["foreign_agent"]["advertisement"]["router_addresses"][0]).split("/")[0]

    def add_second_interface(self, number: int, to: str) -> None:
        """A second interface of the MN on ``to``'s access link, same MAC, no address of its own; a host
        route (and neighbour entry: the MN never ARPs away from home, RFC 5944 §4.6) to the new FA."""
        bridge = self.topo.mobileLinks()[self.mobile_node].bridge(to)
        pid = str(self.bed.node(self.mobile_node).pid)
        self.added = True
        _root("link", "add", self.port, "type", "veth", "peer", "name", SECOND_INTERFACE, "address",
              self.mn_mac, "netns", pid)  # fmt: skip
        _root("link", "set", self.port, "master", bridge, "up")
        agent, node = self._access_address(to), self.bed.node(self.mobile_node)
        output = node.cmd(
            f"sysctl -qw net.ipv6.conf.{SECOND_INTERFACE}.disable_ipv6=1 "
            f"net.ipv4.conf.{SECOND_INTERFACE}.rp_filter=0 net.ipv4.conf.all.rp_filter=0 && "
            f"ip link set {SECOND_INTERFACE} up && "
            f"ip neigh replace {agent} lladdr {self.fa_mac(to)} dev {SECOND_INTERFACE} nud permanent && "
            f"ip route replace {agent}/32 dev {SECOND_INTERFACE} && echo ok"
        )
        if "ok" not in output:
            raise RuntimeError(f"second interface of {self.mobile_node}: {output.strip()}")
        self.bed.trace.emit(
            TraceEvent.MBB_INTERFACE_ADDED, handover=number, to=to, interface=SECOND_INTERFACE
        )

    def before_move(self, number: int, source: str, to: str) -> bool:
        """Second interface up on ``to``'s link, S registration through it, then the overlap."""
        if not self.applies(source, to):
            return False
        trace, agent = self.bed.trace, self._access_address(to)
        trace.emit(TraceEvent.L2_TRIGGER, handover=number, to=to, mode=self.mode)
        self.add_second_interface(number, to)
        before = self._remaining_at(to)
        answer = self.bed.ask(
            self.mobile_node,
            "handoff-trigger",
            agent=agent,
            care_of=self._care_of(to),
            link_address=self.fa_mac(to),
            handoff_in=HANDOFF_IN + OVERLAP,
            request_to=agent,
        )
        if not answer.get("accepted"):
            trace.emit(TraceEvent.PRE_REFUSED, handover=number, reason=answer.get("reason"))
            return False
        ready = wait_until(lambda: self._pre_ready(to, before), PRE_TIMEOUT, interval=0.002)
        trace.emit(TraceEvent.PRE_REGISTERED if ready else TraceEvent.PRE_TIMEOUT, handover=number, to=to)
        if ready:
            time.sleep(OVERLAP)  # both bindings at the HA, both interfaces up: every packet twice
        return ready

    def after_link_up(self, number: int, source: str, to: str) -> None:
        """Nothing to report: the new FA has had the visitor since the S registration."""

    def after_settled(self, number: int) -> None:
        """The move has settled on the first interface: remove the second one."""
        if not self.added:
            return
        self.close()
        self.bed.trace.emit(TraceEvent.MBB_INTERFACE_REMOVED, handover=number, interface=SECOND_INTERFACE)

    def close(self) -> None:
        """Remove the second interface if it is there (deleting the root end removes both)."""
        if self.added:
            self.added = False
            _root("link", "del", self.port)
