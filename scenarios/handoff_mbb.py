"""The handover scenario's make-before-break handoff: a second interface and simultaneous bindings.

``--handoff make-before-break`` gives the mobile node a second radio (RFC 5944 §3.6.1.3, simultaneous
bindings; the make-before-break of RFC 4881 §3.1, with two interfaces instead of an L2 trigger):

* the topology gives the MN a second interface ``<mn>-eth1`` from the start (``second_interfaces``:
  no address, IPv6 off, its switch-side port on the last visited network's bridge); the harness takes
  its carrier down and gives it the first interface's MAC address (one card with two radios; the two
  links are separate broadcast domains, and the new FA keeps delivering to that address once the first
  interface arrives on its link);
* before each move from one FA to another the harness re-attaches that port to the new FA's bridge and
  brings its carrier up (``second_link_up``); the L2 trigger (``handoff-trigger`` with ``request_to``,
  the new FA's access address, reached through a host route on the second interface) makes the MN
  register the new FA's care-of address with S set, and the new FA relays it at once;
* the home agent keeps both bindings and sends a copy to each care-of address: the MN receives every
  downlink packet twice, once per interface, for :data:`OVERLAP` seconds; the probes count the duplicates;
* then the first interface leaves the old link (the ordinary move: carrier down, re-attached to the new
  FA's bridge, carrier up); the MN registers once more without S, so the HA drops the old binding
  (RFC 5944 §3.6.1.3) and the duplicates stop;
* once the move has settled the harness takes the second interface's carrier down again
  (``second_link_down``).

Only moves from one foreign agent to another use it (a move from home has no old care-of address to
keep; a return home is a deregistration). Every step is a scenario trace event tagged with the handover
number.
"""

from __future__ import annotations

import subprocess
import time

from agents.mip.common.trace_schema import TraceEvent
from scenarios.handoff import HANDOFF_IN, LowLatencyHandoff, scaled
from scenarios.harness.testbed import Testbed
from topologies.dualstack import DualStackTopo

MODE = "make-before-break"
OVERLAP = 0.3
"""Seconds both interfaces stay up after the HA accepted the second binding (the bicast window)."""


def _root(*command: str) -> None:
    """One ``ip`` command in the root namespace (only on the topology's own tagged ports)."""
    finished = subprocess.run(["ip", *command], capture_output=True, text=True, timeout=10, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"ip {' '.join(command)}: {finished.stderr.strip()}")


class MakeBeforeBreak(LowLatencyHandoff):
    """Second interface + S-bit registration before each FA-to-FA move (RFC 5944 §3.6.1.3)."""

    def __init__(self, bed: Testbed, topo: DualStackTopo, mobile_node: str) -> None:
        super().__init__(bed, topo, mobile_node, "pre")
        self.mode = MODE
        second = topo.secondLinks().get(mobile_node)
        if second is None:
            raise RuntimeError(f"{mobile_node} has no second interface (DualStackTopo second_interfaces)")
        self.second = second
        self.up = False
        _root("link", "set", second.port, "down")
        output = bed.node(mobile_node).cmd(
            f"ip link set {second.interface} address {self.mn_mac} && sysctl -qw "
            f"net.ipv4.conf.{second.interface}.rp_filter=0 net.ipv4.conf.all.rp_filter=0 && echo ok"
        )
        if "ok" not in output:
            raise RuntimeError(f"second interface of {mobile_node}: {output.strip()}")

    def _access_address(self, fa: str) -> str:
        return str(self._fa(fa)["foreign_agent"]["advertisement"]["router_addresses"][0]).split("/")[0]

    def second_link_up(self, number: int, to: str) -> None:
        """The second interface's port on ``to``'s bridge, carrier up; a host route (and neighbour entry:
        the MN never ARPs away from home, RFC 5944 §4.6) to the new FA through it."""
        second, node = self.second, self.bed.node(self.mobile_node)
        _root("link", "set", second.port, "master", second.bridge(to), "up")
        self.up = True
        agent = self._access_address(to)
        output = node.cmd(
            f"ip neigh replace {agent} lladdr {self.fa_mac(to)} dev {second.interface} nud permanent && "
            f"ip route replace {agent}/32 dev {second.interface} && echo ok"
        )
        if "ok" not in output:
            raise RuntimeError(f"second interface of {self.mobile_node}: {output.strip()}")
        self.bed.trace.emit(TraceEvent.SECOND_LINK_UP, handover=number, to=to, interface=second.interface)

    def before_move(self, number: int, source: str, to: str) -> bool:
        """Second interface up on ``to``'s link, S registration through it, then the overlap."""
        if not self.applies(source, to):
            return False
        trace, agent = self.bed.trace, self._access_address(to)
        trace.emit(TraceEvent.L2_TRIGGER, handover=number, to=to, mode=self.mode)
        self.second_link_up(number, to)
        before = self._remaining_at(to)
        trigger = {
            "agent": agent,
            "care_of": self._care_of(to),
            "link_address": self.fa_mac(to),
            "handoff_in": scaled(HANDOFF_IN + OVERLAP),
            "request_to": agent,
        }
        ready = self._pre_register(number, to, before, trigger)
        if ready:
            time.sleep(scaled(OVERLAP))  # both bindings at the HA, both interfaces up: every packet twice
        return ready

    def after_link_up(self, number: int, source: str, to: str) -> None:
        """Nothing to report: the new FA has had the visitor since the S registration."""

    def after_settled(self, number: int) -> None:
        """The move has settled on the first interface: the second one's carrier goes down."""
        if self.up:
            self.close()
            self.bed.trace.emit(TraceEvent.SECOND_LINK_DOWN, handover=number, interface=self.second.interface)

    def close(self) -> None:
        """Take the second interface's carrier down and remove its host route and neighbour entry (a
        route over a link without carrier would still be used)."""
        if self.up:
            self.up = False
            _root("link", "set", self.second.port, "down")
            interface = self.second.interface
            self.bed.node(self.mobile_node).cmd(
                f"ip route flush dev {interface}; ip neigh flush dev {interface}"
            )
