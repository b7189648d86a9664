"""Sans-I/O mobile node, co-located or foreign agent care-of address (RFC 5944 §2.4, §3.6; RFC 5454 §3.5).

Inputs, each with ``now``: :meth:`MobileNode.link_changed` (link up with the co-located CoA, the HoA
when home, or None in foreign-agent mode; link down), :meth:`receive_advertisement` (ICMP type 9),
:meth:`receive_datagram` (UDP 434), :meth:`handle_timer` and commands (:meth:`register`,
:meth:`deregister`, :meth:`set_prefixes`, :meth:`solicit`, :meth:`shutdown`). Outputs:
:meth:`datagrams_to_send`, :meth:`solicitations_to_send` (ICMP, TTL 1), events (tunnel, IPv6
addresses and routes, ARP, agents and moves) and :meth:`get_timer`. The registration exchange is
in :mod:`agents.mip.mn.registration`, agent discovery and move detection in
:mod:`agents.mip.mn.discovery`; the registration state changes only through :data:`TRANSITIONS`.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import replace
from ipaddress import IPv4Address

from agents.mip.common.config import CareOfMode, MobileNodeConfig
from agents.mip.common.events import (
    AdvertisementDiscarded,
    ArpModeChanged,
    ArpOwner,
    AtHome,
    GratuitousArpRequested,
    MovementDetected,
    MovementReason,
    OutgoingIcmp,
    PreRegistrationAbandoned,
    PreRegistrationReady,
    PreRegistrationStarted,
)
from agents.mip.common.states import MnState
from agents.mip.common.timers import MIN_REQUEST_GAP, earliest
from agents.mip.mn.discovery import AgentDiscovery, AgentRecord, Move
from agents.mip.mn.llh_pre import PreRegistration, PreState, Target
from agents.mip.mn.registration import TRANSITIONS, RegistrationCore
from agents.mip.mn.requests import ForeignAgentRoute, colocated_through
from agents.mip.wire.registration import RegistrationReply

__all__ = ["TRANSITIONS", "MnState", "MobileNode"]
_log = logging.getLogger(__name__)


class MobileNode(RegistrationCore):
    """The mobile node: registration (:class:`RegistrationCore`), agent discovery and moves."""

    def __init__(
        self, config: MobileNodeConfig, *, wall_clock_offset: float = 0.0, rng: random.Random | None = None
    ) -> None:
        rng = rng if rng is not None else random.Random()
        super().__init__(config, wall_clock_offset, rng)
        self._colocated: IPv4Address | None = None
        """The co-located address the link gave (auto and co-located modes)."""
        self._colocated_at: float | None = None
        """Auto mode with ``agent_wait``: when the co-located address is registered directly unless an
        agent advertising R turned up first (RFC 5944 §3.6)."""
        self._arp_away: tuple[bool, IPv4Address | None] = (False, None)
        self._discovery = AgentDiscovery(config, rng, self._emit, self.counters)
        self._pre = PreRegistration()
        """RFC 4881 §3 pre-registration on an L2 trigger (:meth:`handoff_trigger`)."""
        self._pre_previous: tuple[ForeignAgentRoute | None, IPv4Address | None] = (None, None)
        """Where the MN registered before the trigger: restored if the move never comes."""
        self._pre_registers = True
        """False for a post-registration trigger (RFC 4881 §4): nothing registered before the move."""

    # -- inputs ----------------------------------------------------------------------------------

    def link_changed(self, up: bool, care_of: IPv4Address | None, now: float) -> None:
        """The link came up with a co-located CoA (the HoA means "at home"), or went down.

        In foreign-agent and auto modes ``care_of`` None with ``up`` means "up, no co-located
        address": the MN solicits at once and waits for an advertisement (RFC 5944 §2.4).
        Foreign-agent mode ignores any other address than the HoA.
        """
        if self.is_stopped:
            return
        mode = self.config.care_of_mode
        self._colocated_at = None
        if self._pre.active and mode is not CareOfMode.COLOCATED and care_of is None:
            self._pre_link_changed(up, now)  # RFC 4881 §3.1: the new binding is (being) made already
            return
        if not up or (care_of is None and mode is CareOfMode.COLOCATED):
            self._discovery.link_down()
            self._colocated = None
            self._lose_care_of("link-down")
            return
        home = care_of == self.config.home_address
        self._colocated = None if home or mode is CareOfMode.FOREIGN_AGENT else care_of
        previous = self._discovery.link_up(now, has_colocated=self._colocated is not None)
        if self._discovery.solicits:
            self._emit(MovementDetected(MovementReason.LINK, previous, None))
        if home:
            self._go_home(now)
        elif self._colocated is not None and self._waits_for_agent():
            self._lose_care_of("link-change")
            self._colocated_at = now + self.config.agent_wait
        elif self._colocated is not None:
            self._use_colocated(self._colocated, now)
        else:
            self._lose_care_of("link-change")

    def solicit(self, now: float) -> bool:
        """Start a round of Agent Solicitations now (rate limits apply, RFC 5944 §2.4)."""
        if self.is_stopped:
            return False
        self._discovery.start_soliciting(now)
        return True

    def receive_advertisement(
        self, data: bytes, source: IPv4Address, now: float, *, interface: str | None = None
    ) -> None:
        """Handle one ICMP Agent Advertisement (type 9) from ``source``. Never raises (RFC 5944 §2.4)."""
        if self.is_stopped:
            return
        try:
            move = self._discovery.receive(bytes(data), source, now, interface)
            if move is not None:
                self._moved(move, now)
        except Exception as error:  # keep running; a bug here must not stop the agent
            _log.exception("internal error handling an advertisement from %s", source)
            self.counters["internal_errors"] += 1
            self._emit(AdvertisementDiscarded(source, f"internal error: {type(error).__name__}: {error}"))

    def handle_timer(self, now: float) -> None:
        """Agents expire and solicitations go out (RFC 5944 §2.4); then the binding expires, a request
        is retransmitted or renewed, whichever is due (§3.6.3)."""
        if not self.is_stopped:
            move = self._discovery.handle_timer(now)
            if move is not None:
                self._moved(move, now)
            waited = self._colocated_at
            if waited is not None and now >= waited and self._colocated is not None:
                self._colocated_at = None  # no agent requiring registration answered: go directly
                self._use_colocated(self._colocated, now)
            abandoned = self._pre.handle_timer(now)
            if abandoned is not None:
                self._pre_abandoned(abandoned, now)
        self._registration_due(now)

    def get_timer(self) -> float | None:
        """The next deadline: retransmission, renewal, expiry, solicitation, an agent's expiry, or the
        end of a pre-registration's wait for its move."""
        return earliest(
            self._registration_timer(), self._discovery.get_timer(), self._colocated_at, self._pre.get_timer()
        )

    # -- low-latency handoff (RFC 4881 §3) -------------------------------------------------------

    @property
    def pre_registration(self) -> str:
        """The pre-registration's state (``idle``, ``requested``, ``ready``, ``attached``, ``abandoned``),
        as :meth:`status` reports it."""
        return str(self._pre.state.value)

    def handoff_trigger(
        self, target: Target, handoff_at: float, now: float, *, pre_register: bool = True
    ) -> str | None:
        """An L2 trigger (RFC 4881 §1.3, L2-MT): the link will move to ``target`` at ``handoff_at``.
        ``pre_register``: register the target's care-of address now, through the current link, with S
        set (§3.3). Otherwise (post-registration, §4: the FAs' edge tunnel carries the packets) only keep
        the tunnel over the link change and register through the target at once at link up.
        None when taken, else why not (stale, same agent, co-located mode, stopping)."""
        if self.is_stopped or self._stopping:
            return "the mobile node is stopping"
        if self.config.care_of_mode is CareOfMode.COLOCATED:
            return "co-located mode: there is no foreign agent to pre-register with (RFC 4881 §3)"
        if self._route is None:
            return "no foreign agent in use: pre-registration goes through the old FA (RFC 4881 §3)"
        refused = self._pre.trigger(target, now, handoff_at, self._route.agent)
        if refused is not None:
            self._emit(refused)
            return refused.reason
        if (
            self._pending is not None
            and self._pending.via is not None
            and self._pending.via.agent == target.request_destination
        ):
            return None  # the same pre-registration is under way
        self._pre_previous = (self._route, self._care_of)
        self._pre_registers = pre_register
        if not pre_register:
            return None
        # until the move, requests go to an address reachable from the old link; routes follow at attach
        self._route = ForeignAgentRoute(
            target.request_destination, target.care_of, target.offers, target.registration_lifetime
        )
        self._care_of = target.care_of
        self._emit(PreRegistrationStarted(target.agent, target.care_of))
        self._start_registration(now, simultaneous=True)
        return None

    def _pre_link_changed(self, up: bool, now: float) -> None:
        """Link down: keep the binding, the route and the tunnel (the new FA buffers). Link up at the
        target: route via it at once, no request on the critical path (RFC 4881 §3.1)."""
        if not up:
            self._discovery.link_down()
            self._pre.link_down()
            target = self._pre.target
            if target is not None:  # leaving the old link: point the routes at the new FA already
                if self._route is not None:
                    self._route = replace(self._route, agent=target.agent)
                self._set_arp_away(True, target.agent)
            return
        previous = self._discovery.link_up(now, has_colocated=False)
        target = self._pre.link_up(now)
        if target is None:  # too late for the trigger: a standard handoff
            self._pre_abandoned(PreRegistrationAbandoned(None, "link up after the trigger ran out"), now)
            self._lose_care_of("link-change")
            return
        self._emit(MovementDetected(MovementReason.LINK, previous, target.agent))
        self._adopt_target(target, now)

    def _adopt_target(self, target: Target, now: float) -> None:
        """At the announced agent: route via it at once; one request without S later drops the old
        binding at the HA (make-before-break, RFC 4881 §3.1, RFC 5944 §3.6.1.3)."""
        self._emit(self._pre.attached())
        if self._route is not None:
            self._route = replace(self._route, agent=target.agent)
        self._set_arp_away(True, target.agent)
        registration = self._registration
        if registration is not None and registration.care_of == target.care_of:
            cleanup = max(now, self._last_request_at + MIN_REQUEST_GAP)
            self._registration = replace(registration, renew_at=min(registration.renew_at, cleanup))
        elif not self._pre_registers and not self._stopping:  # post-registration: register through it now
            lifetime = target.registration_lifetime
            self._route = ForeignAgentRoute(target.agent, target.care_of, target.offers, lifetime)
            self._care_of = target.care_of
            self._start_registration(now)

    def _pre_abandoned(self, abandoned: PreRegistrationAbandoned, now: float) -> None:
        """The trigger never became a move (or was denied): register the old path again, without S."""
        self._emit(abandoned)
        self._pre.state = PreState.IDLE
        route, care_of = self._pre_previous
        self._pre_previous = (None, None)
        if care_of is None or self._stopping or self._pre.detached or not self._pre_registers:
            return
        self._route, self._care_of = route, care_of
        if care_of == self.config.home_address:
            self._start_deregistration(now, all_care_ofs=True)
        else:
            self._start_registration(now)

    def _accepted(self, reply: RegistrationReply, now: float) -> None:
        pending = self._pending
        super()._accepted(reply, now)
        target = self._pre.target
        if (
            pending is not None
            and target is not None
            and pending.care_of == target.care_of
            and self._pre.accepted()
        ):
            self._emit(PreRegistrationReady(target.agent, target.care_of))

    def _denied(self, reply: RegistrationReply, now: float) -> None:
        super()._denied(reply, now)
        self._pre_refused(reply, now)

    def _fa_timed_out(self, reply: RegistrationReply, now: float) -> None:
        super()._fa_timed_out(reply, now)
        self._pre_refused(reply, now)  # a pre-registration has no time for retransmissions (RFC 4881 §3)

    def _pre_refused(self, reply: RegistrationReply, now: float) -> None:
        abandoned = self._pre.denied(int(reply.code))
        if abandoned is not None:
            self._pre_abandoned(abandoned, now)

    # -- outputs -------------------------------------------------------------------------------

    def solicitations_to_send(self, now: float) -> list[OutgoingIcmp]:
        """Agent Solicitations to send: to 224.0.0.11 or 255.255.255.255 with TTL 1 (RFC 5944 §2.2)."""
        return self._discovery.solicitations_to_send()

    def status(self, now: float) -> dict[str, object]:
        """A JSON-able summary (control socket ``status``)."""
        pending = self._pending
        attempts = None if pending is None else pending.attempts
        return {
            "role": "mn",
            "state": self._state.value,
            "home_address": str(self.config.home_address),
            "home_agent": str(self.config.home_agent),
            "care_of": None if self._care_of is None else str(self._care_of),
            "care_of_mode": self.config.care_of_mode.value,
            "foreign_agent": None if self._route is None else str(self._route.agent),
            "agents": self._discovery.to_dicts(now),
            "at_home": self.at_home,
            "pending_attempts": attempts,
            "pre_registration": self._pre.state.value,
            "ipv4_only": self._ipv6.ipv4_only,
            "clock_correction": round(self._ids.correction, 3),
            "counters": dict(sorted(self.counters.items())),
        }

    def bindings(self, now: float) -> list[dict[str, object]]:
        """The MN's own accepted binding and prefix outcomes (control socket ``bindings``)."""
        registration = self._registration
        if registration is None:
            return []
        remaining = registration.expires_at - now
        return [
            {
                "care_of": str(registration.care_of),
                "lifetime": registration.lifetime,
                "remaining": None if math.isinf(remaining) else round(max(0.0, remaining), 3),
                "prefixes": self._ipv6.to_dicts(),
                "ipv6_addresses": [str(address) for address in self._ipv6.ipv6.addresses],
            }
        ]

    # -- moves (RFC 5944 §2.4.2-§2.4.4, §4.6) ----------------------------------------------------

    def _moved(self, move: Move, now: float) -> None:
        """Act on a decision of the agent discovery."""
        agent = move.agent
        if move.reason is MovementReason.REBOOT:
            assert agent is not None
            self._agent_rebooted(agent, now)
            return
        home = agent is not None and agent.is_home_agent(self.config.home_agent)
        if home and self.at_home:
            return  # link_changed() already said so
        if move.reason is not None:
            to_agent = None if agent is None else agent.address
            self._emit(MovementDetected(move.reason, move.previous, to_agent))
        if agent is None:
            if self._colocated is not None:
                self._use_colocated(self._colocated, now)
            else:
                self._lose_care_of("agent-lost")
        elif home:
            self._go_home(now)
        else:
            self._via_foreign_agent(agent, now)

    def _agent_rebooted(self, agent: AgentRecord, now: float) -> None:
        """The FA forgot its visitors: register again through it (RFC 5944 §2.4.4)."""
        route = self._route
        attached = (MnState.REGISTERING, MnState.REGISTERED, MnState.RENEWING)
        if route is None or route.agent != agent.address or self._state not in attached or self._stopping:
            return
        self._emit(MovementDetected(MovementReason.REBOOT, agent.address, agent.address))
        self._via_foreign_agent(agent, now)

    def _via_foreign_agent(self, agent: AgentRecord, now: float) -> None:
        """Register the FA's care-of address through it (RFC 5944 §3.6.1.1); ARP as away (§4.6). With a
        co-located address and an FA advertising R and U, register that address through the FA instead,
        asking for UDP tunnelling with the R flag (RFC 3519 §3.1.2, §4.4); the MN then keeps its own
        routes (its tunnel ends at its co-located address, not at the FA)."""
        assert agent.care_of is not None
        self._colocated_at = None
        target = self._pre.target
        if self._pre.active and target is not None and target.agent == agent.address:
            self._adopt_target(target, now)  # moved without a carrier event: the advertisement shows it
        if self._pre.state is PreState.ATTACHED:
            self._pre.state = PreState.IDLE
            route = self._route
            if route is not None and route.agent == agent.address and route.care_of == agent.care_of:
                return  # pre-registered through it already (RFC 4881 §3.1)
        abandoned = self._pre.heard_other_agent(agent.address)
        if abandoned is not None:
            self._emit(abandoned)
            self._pre.state = PreState.IDLE
        lifetime = agent.advertisement.mobility.registration_lifetime
        colocated = self._colocated if colocated_through(self.config, agent.flags) else None
        self._route = ForeignAgentRoute(agent.address, agent.care_of, agent.flags, lifetime, colocated)
        self._care_of = agent.care_of if colocated is None else colocated
        self._set_arp_away(True, agent.address if colocated is None else None)
        if not self._stopping:
            self._start_registration(now)

    def _use_colocated(self, care_of: IPv4Address, now: float) -> None:
        self._route = None
        self._care_of = care_of
        if self._arp_away[0]:
            self._set_arp_away(True, None)  # still away, no foreign agent any more
        if not self._stopping:
            self._start_registration(now)

    def _waits_for_agent(self) -> bool:
        """Auto mode with ``agent_wait``: hold the co-located address back while the solicitation is out."""
        return self.config.care_of_mode is CareOfMode.AUTO and self.config.agent_wait > 0

    def _go_home(self, now: float) -> None:
        """Home: ARP as at home, gratuitous ARP, deregister every binding (RFC 5944 §3.6.1.2, §4.6)."""
        self._route = None
        self._care_of = self.config.home_address
        self._tunnel_down("home")
        self._set_arp_away(False, None)
        self._emit(AtHome(self.config.home_address))
        self._emit(GratuitousArpRequested(self.config.home_address, ArpOwner.MOBILE_NODE))
        self._start_deregistration(now, all_care_ofs=True)

    def _set_arp_away(self, away: bool, agent: IPv4Address | None) -> None:
        """Tell the runtime how to ARP for the home address (RFC 5944 §4.6), on changes only."""
        if (away, agent) == self._arp_away:
            return
        if away or self._arp_away[0]:
            self._emit(ArpModeChanged(self.config.home_address, away, agent))
        self._arp_away = (away, agent)

    def _finish_stop(self) -> None:
        super()._finish_stop()
        self._discovery.stop()
