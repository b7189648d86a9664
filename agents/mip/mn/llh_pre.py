"""The mobile node's pre-registration handoff (RFC 4881 §3), sans-I/O.

An L2 trigger announces the coming move before the link changes (RFC 4881 §1.3: L2-MT at the mobile
node, here with the target agent already known, as after the Proxy Router Solicitation/Advertisement
exchange of §3.3). The MN then registers the new FA's care-of address *through the old link* (§3.1:
the request goes to the nFA while the MN is still attached to the oFA), with S set so the home agent
keeps the old binding and sends a copy to each care-of address (RFC 5944 §3.6.1.3) until the MN has
moved. When the link comes up at the target, the registration is already in place: the MN routes via
the new FA at once and sends no request on the critical path. Afterwards it registers once more
without S so the home agent drops the old binding (make-before-break).

Simplifications, exactly (see docs/architecture.md "Low-latency handoffs"):

* the trigger carries the target agent's address, care-of address, link-layer address and flags
  (what the PrRtAdv of §3.2/§3.3 would carry); there is no PrRtSol/PrRtAdv on the wire;
* the request travels to the nFA's care-of address by ordinary routing via the oFA (reverse-tunnelled
  by it like any packet from the home address), and the nFA's reply comes back to
  the home address (through the home agent's tunnel to the old care-of address);
* only moves from one foreign agent to another are pre-registered (the request goes through the old
  FA; a return home is a deregistration);
* the same state serves the MN's side of a post-registration (§4, ``pre_register`` false in
  :meth:`agents.mip.mn.mobile_node.MobileNode.handoff_trigger`): nothing is registered before the move, the
  tunnel is kept over the link change and the MN registers through the target at link up.

States: IDLE → REQUESTED (trigger taken, request sent) → READY (accepted before the move) →
ATTACHED (link up at the target); ABANDONED when the trigger is stale, denied, or never becomes a move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address

from agents.mip.common.events import (
    PreRegistrationAbandoned,
    PreRegistrationAttached,
)
from agents.mip.wire.icmp import AdvertisementFlag

MOVE_GRACE = 2.0
"""Seconds after a trigger's announced handoff time during which the move may still come (§3: a
trigger that does not result in a handoff must not leave the MN half-registered)."""


class PreState(StrEnum):
    IDLE = "idle"
    REQUESTED = "requested"
    READY = "ready"
    ATTACHED = "attached"
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class Target:
    """The agent the L2 trigger names (what a PrRtAdv would tell, RFC 4881 §3.3)."""

    agent: IPv4Address
    """The agent's address on its access link: the default router once attached (RFC 5944 §4.2.2)."""
    care_of: IPv4Address
    link_address: bytes | None = None
    offers: AdvertisementFlag = AdvertisementFlag.F
    registration_lifetime: int = 0xFFFF
    request_to: IPv4Address | None = None
    """Where the request goes from the old link; default the care-of address (the access address of a
    visited network is not routed from the others, the care-of address is)."""

    @property
    def request_destination(self) -> IPv4Address:
        return self.care_of if self.request_to is None else self.request_to


class PreRegistration:
    """The pre-registration state of one mobile node (RFC 4881 §3); the MN acts on its answers."""

    def __init__(self) -> None:
        self.state = PreState.IDLE
        self.target: Target | None = None
        self.move_by = math.inf
        self.detached = False

    @property
    def active(self) -> bool:
        return self.state in (PreState.REQUESTED, PreState.READY)

    def trigger(
        self, target: Target, now: float, handoff_at: float, current_agent: IPv4Address | None
    ) -> PreRegistrationAbandoned | None:
        """Take an L2 trigger announcing a move to ``target`` at ``handoff_at``; None if taken, else why
        not. A trigger whose handoff time has passed is stale (RFC 4881 §1.3: triggers are predictions
        and must arrive before the event); one naming the agent in use changes nothing."""
        if now > handoff_at:
            return PreRegistrationAbandoned(
                target.agent, f"stale trigger: handoff time passed {now - handoff_at:.3f} s ago"
            )
        if current_agent == target.agent:
            return PreRegistrationAbandoned(target.agent, "trigger names the agent in use")
        if self.active and self.target == target:
            self.move_by = max(self.move_by, handoff_at + MOVE_GRACE)
            return None  # a repeated trigger for the same move
        self.state, self.target = PreState.REQUESTED, target
        self.move_by, self.detached = handoff_at + MOVE_GRACE, False
        return None

    def accepted(self) -> bool:
        """The reply accepted the target's care-of address; True if that completes a pre-registration."""
        if self.state is PreState.REQUESTED:
            self.state = PreState.READY
            return True
        return False

    def denied(self, code: int) -> PreRegistrationAbandoned | None:
        if not self.active:
            return None
        return self._abandon(f"registration denied with code {code}")

    def link_down(self) -> None:
        if self.active:
            self.detached = True

    def link_up(self, now: float) -> Target | None:
        """The link is up again: the target to adopt (the move the trigger announced), or None."""
        if not self.active or now > self.move_by:
            return None
        return self.target

    def attached(self) -> PreRegistrationAttached:
        assert self.target is not None
        ready = self.state is PreState.READY
        self.state = PreState.ATTACHED
        return PreRegistrationAttached(self.target.agent, ready)

    def heard_other_agent(self, agent: IPv4Address) -> PreRegistrationAbandoned | None:
        """The MN came up at an agent other than the target: the trigger was wrong."""
        if not self.active or self.target is None or agent == self.target.agent:
            return None
        return self._abandon(f"moved to {agent}, not to the announced {self.target.agent}")

    def get_timer(self) -> float | None:
        return self.move_by if self.active and not math.isinf(self.move_by) else None

    def handle_timer(self, now: float) -> PreRegistrationAbandoned | None:
        """The announced move did not come (RFC 4881 §3): give up; the MN re-registers the old path."""
        if self.active and now >= self.move_by and not self.detached:
            return self._abandon("the trigger never became a move")
        return None

    def _abandon(self, reason: str) -> PreRegistrationAbandoned:
        agent = None if self.target is None else self.target.agent
        self.state = PreState.ABANDONED
        return PreRegistrationAbandoned(agent, reason)
