"""The handover scenario's low-latency handoffs (RFC 4881): the harness plays the link layer's triggers.

A Wi-Fi driver knows of a roam before it happens; here the harness announces each move to the agents
over their control sockets before it moves the link (RFC 4881 §1.3):

* ``pre`` (§3): L2-TT to the new FA (``expect-visitor``: the MN's home address and MAC), L2-MT to the
  MN (``handoff-trigger``: the new FA's address, care-of address, MAC and flags, what a Proxy Router
  Advertisement carries); the harness waits until the MN holds the accepting reply (``wait-pre-ready``,
  answered the moment it does) and the new FA lists the visitor (the home agent holds both bindings),
  then moves the link and reports L2-LU to the new FA (``visitor-attached``).
* ``post`` (§4): L2-TT to the new FA naming the old one (``edge-tunnel-target``), L2-ST to the old FA
  naming the new one (``edge-tunnel-source``): a bidirectional edge tunnel between them; L2-LD to the
  old FA (``visitor-detached``) just before the link moves, from when it sends the MN's packets through
  the tunnel; the new FA holds them until L2-LU. L2-MT to the MN (``handoff-trigger`` with
  ``pre_register`` false): it keeps its tunnel over the link change and registers through the new FA at
  link up, without waiting for its advertisement.
* ``standard``: nothing is announced.

Only moves from one foreign agent to another are pre-registered: §3 sends the request through the old
FA, so leaving home has none, and a return home is a deregistration; those moves stay standard.
Every step is a scenario trace event tagged with the handover number, so :mod:`reports.handovers`
decomposes these handovers too.
"""

from __future__ import annotations

import json
import time
from typing import Any

from agents.mip.common.trace_schema import TraceEvent
from scenarios.harness.testbed import Testbed, wait_until
from topologies.dualstack import DualStackTopo
from topologies.nodes import start_scale

MODES = ("standard", "pre", "post")
PRE_TIMEOUT = 1.5
"""Seconds the harness waits for the pre-registration before it moves anyway (a request may wait up to
1 s for RFC 5944 §3.6.3's one-per-second limit, then one round trip)."""
EXPECT_TIMEOUT = 5.0
"""How long the new FA keeps an expectation (and its buffer) open."""
HANDOFF_IN = 1.5
"""Seconds until the link changes, as the trigger announces it (the move comes as soon as the
pre-registration is in place, so usually well before)."""


def scaled(seconds: float) -> float:
    """``seconds`` times ``DSMIP_START_SCALE`` (:func:`topologies.nodes.start_scale`). Every wait of this
    module goes through it: under a VM's emulation one registration round trip takes 0.7–1.6 s, and a
    harness that gave up on the pre-registration at an unscaled 1.5 s moved before it was in place, with
    the losses and no bicast of a break-before-make move."""
    return seconds * start_scale()


def interface_mac(bed: Testbed, node: str, interface: str) -> str:
    """The MAC address of ``interface`` inside ``node``'s namespace (``ip -j link``)."""
    output = bed.node(node).cmd(f"ip -j link show dev {interface}")
    try:
        return str(json.loads(output)[0]["address"])
    except (ValueError, LookupError, TypeError) as error:
        raise RuntimeError(f"no MAC address for {node} {interface}: {output.strip()!r}") from error


class LowLatencyHandoff:
    """Announces moves to the agents (RFC 4881 §1.3 triggers) for one mobile node."""

    def __init__(self, bed: Testbed, topo: DualStackTopo, mobile_node: str, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"handoff mode {mode!r}: choose one of {', '.join(MODES)}")
        self.bed, self.topo, self.mobile_node, self.mode = bed, topo, mobile_node, mode
        link = topo.mobileLinks()[mobile_node]
        self.mn_mac = interface_mac(bed, mobile_node, link.interface)
        self.home_address = str(topo.mobile_plans[mobile_node].home_address)
        self._fa_macs: dict[str, str] = {}

    def applies(self, source: str, to: str) -> bool:
        """Both methods need an old FA and a new one (RFC 4881 §3, §4)."""
        agents = self._foreign_agents()
        return self.mode != "standard" and source in agents and to in agents

    def _care_of(self, fa: str) -> str:
        return str(self._fa(fa)["foreign_agent"]["care_of_addresses"][0])

    def _foreign_agents(self) -> set[str]:
        return {name for name, role in self.topo.agentNodes() if role == "fa"}

    def _fa(self, name: str) -> dict[str, Any]:
        config: dict[str, Any] = self.topo.nodeSpec(name).agent_config  # type: ignore[assignment]
        return config

    def fa_mac(self, name: str) -> str:
        if name not in self._fa_macs:
            self._fa_macs[name] = interface_mac(self.bed, name, self._fa(name)["runtime"]["access_interface"])
        return self._fa_macs[name]

    def before_move(self, number: int, source: str, to: str) -> bool:
        """Announce the move to ``to``; True once the new FA holds the pre-registered visitor."""
        if not self.applies(source, to):
            return False
        if self.mode == "post":
            return self._edge_tunnel(number, source, to)
        trace, fa = self.bed.trace, self._fa(to)
        agent = fa["foreign_agent"]["advertisement"]["router_addresses"][0].split("/")[0]
        care_of = fa["foreign_agent"]["care_of_addresses"][0]
        before = self._remaining_at(to)
        trace.emit(TraceEvent.L2_TRIGGER, handover=number, to=to, mode=self.mode)
        self.bed.ask(
            to,
            "expect-visitor",
            home_address=self.home_address,
            link_address=self.mn_mac,
            timeout=scaled(EXPECT_TIMEOUT),
        )
        trigger = {
            "agent": agent,
            "care_of": care_of,
            "link_address": self.fa_mac(to),
            "handoff_in": scaled(HANDOFF_IN),
        }
        return self._pre_register(number, to, before, trigger)

    def _pre_register(self, number: int, to: str, before: float | None, trigger: dict[str, Any]) -> bool:
        """The MN's L2 trigger (``handoff-trigger`` with ``trigger``), then wait until ``to`` holds the
        pre-registered visitor; traced as refused, registered or timed out."""
        trace = self.bed.trace
        answer = self.bed.ask(self.mobile_node, "handoff-trigger", **trigger)
        if not answer.get("accepted"):
            trace.emit(TraceEvent.PRE_REFUSED, handover=number, reason=answer.get("reason"))
            return False
        # the MN answers once its pre-registration is accepted (no polling: every poll of its status
        # delayed the move, and the new FA buffered the S-bit copies the old one delivered meanwhile);
        # the new FA relayed that reply, so it lists the visitor already (checked once, polled if not)
        waited = self.bed.ask(self.mobile_node, "wait-pre-ready", timeout=scaled(PRE_TIMEOUT))
        ready = bool(waited.get("ready")) and (
            self._fresh_visitor(to, before)
            or wait_until(lambda: self._pre_ready(to, before), scaled(PRE_TIMEOUT), interval=0.002)
        )
        trace.emit(TraceEvent.PRE_REGISTERED if ready else TraceEvent.PRE_TIMEOUT, handover=number, to=to)
        return ready

    def _edge_tunnel(self, number: int, source: str, to: str) -> bool:
        """RFC 4881 §4: both ends of the BET from their L2 triggers, then L2-LD at the old FA."""
        trace, home = self.bed.trace, self.home_address
        trace.emit(TraceEvent.L2_TRIGGER, handover=number, to=to, mode=self.mode)
        self.bed.ask(
            to, "edge-tunnel-target", home_address=home, peer=self._care_of(source),
            link_address=self.mn_mac, lifetime=scaled(EXPECT_TIMEOUT),
        )  # fmt: skip
        self.bed.ask(
            source, "edge-tunnel-source", home_address=home, peer=self._care_of(to),
            lifetime=scaled(EXPECT_TIMEOUT),
        )  # fmt: skip
        fa = self._fa(to)
        agent = fa["foreign_agent"]["advertisement"]["router_addresses"][0].split("/")[0]
        self.bed.ask(
            self.mobile_node, "handoff-trigger", agent=agent, care_of=self._care_of(to),
            link_address=self.fa_mac(to), handoff_in=scaled(HANDOFF_IN), pre_register=False,
        )  # fmt: skip
        answer = self.bed.ask(source, "visitor-detached", home_address=home)
        trace.emit(
            TraceEvent.L2_DETACHED_REPORTED, handover=number, to=to, forwarding=answer.get("forwarding")
        )
        return bool(answer.get("forwarding"))

    def _pre_ready(self, fa: str, before: float | None) -> bool:
        """The MN holds the accepting reply (it came back through the old FA) and the new FA lists it."""
        try:
            status = self.bed.ask(self.mobile_node, "status")
        except (OSError, RuntimeError):
            return False
        return status.get("pre_registration") == "ready" and self._fresh_visitor(fa, before)

    def _remaining_at(self, fa: str) -> float | None:
        """Seconds left of the FA's visitor entry for our home address (None: no entry)."""
        try:
            visitors = self.bed.ask(fa, "visitors")
        except (OSError, RuntimeError):
            return None
        for item in visitors:
            if str(item.get("home_address")) == self.home_address:
                remaining = item.get("remaining")
                return float("inf") if remaining is None else float(remaining)
        return None

    def _fresh_visitor(self, fa: str, before: float | None) -> bool:
        """The FA relayed an accepting reply since the trigger: a new entry, or one renewed (a visitor
        entry of an earlier visit ages; a fresh one has its whole lifetime left)."""
        remaining = self._remaining_at(fa)
        return remaining is not None and (before is None or remaining > before + 0.5)

    def after_link_up(self, number: int, source: str, to: str) -> None:
        """L2-LU: the new access point reports the station associated (RFC 4881 §1.3)."""
        if not self.applies(source, to):
            return
        started = time.monotonic()
        answer = self.bed.ask(to, "visitor-attached", link_address=self.mn_mac)
        took = round((time.monotonic() - started) * 1000.0, 3)
        self.bed.trace.emit(
            TraceEvent.L2_ATTACHED_REPORTED,
            handover=number,
            to=to,
            home_address=answer.get("home_address"),
            ask_ms=took,
        )
