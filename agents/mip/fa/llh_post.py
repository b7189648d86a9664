"""Post-registration handoff: the bidirectional edge tunnel (BET) between two foreign agents (RFC 4881 §4),
sans-I/O, one instance per mobile node and FA.

When pre-registration cannot complete before the link changes (RFC 4881 combines the two methods), the
old FA (oFA) and the new FA (nFA) set up a BET on an L2 trigger (L2-ST at the oFA or L2-TT at the nFA,
§1.3) with a Handoff Request / Handoff Reply exchange (HRqst/HRply, §4). After the link-down at
the oFA (L2-LD) the oFA sends the MN's packets through the BET; the nFA delivers them once the MN is
on its link (L2-LU) and sends the MN's packets back through the BET to the oFA, which reverse-tunnels
them as before — the MN keeps its oFA registration meanwhile. The BET ends when the MN registers
through the nFA (§4), when its lifetime runs out, or when the HRqst gets no (or a negative) reply.

Simplification: the HRqst/HRply are modelled as inputs and outputs of this machine (``request_due``,
``reply``), not as wire messages; the RFC's message formats and the BET lifetime renewal (§4) are
not implemented. Packets that arrive at the nFA before L2-LU go to the nFA's buffer
(:mod:`agents.mip.fa.llh_buffer`).

States: IDLE → REQUESTED (HRqst sent) → ESTABLISHED (HRply accepted) → FORWARDING (MN gone from the
oFA / not yet arrived at the nFA) → DELIVERING (nFA: MN attached) → CLOSED.
"""

from __future__ import annotations

import math
from enum import StrEnum

HRQST_TIMEOUT = 1.0
"""Seconds the initiating FA waits for a Handoff Reply before it resends (once) and then gives up."""
HRQST_ATTEMPTS = 2
DEFAULT_BET_LIFETIME = 5.0
"""Seconds a BET lasts without the MN registering through the nFA (RFC 4881 §4: the BET lifetime)."""


class Side(StrEnum):
    OLD = "old"  # oFA: the MN's current agent, anchors the registration until the MN re-registers
    NEW = "new"  # nFA: where the MN is going


class BetState(StrEnum):
    IDLE = "idle"
    REQUESTED = "requested"
    ESTABLISHED = "established"
    FORWARDING = "forwarding"
    DELIVERING = "delivering"
    CLOSED = "closed"


class Downlink(StrEnum):
    """Where a packet for the MN goes at this FA."""

    LOCAL = "local"  # deliver on the access link as usual
    TUNNEL = "tunnel"  # oFA: into the BET toward the nFA
    BUFFER = "buffer"  # nFA: MN not attached yet: hold it (llh_buffer)


class EdgeTunnel:
    """One BET end for one mobile node (RFC 4881 §4)."""

    def __init__(self, side: Side, lifetime: float = DEFAULT_BET_LIFETIME) -> None:
        if not lifetime > 0:
            raise ValueError("BET lifetime must be positive")
        self.side, self.lifetime = side, lifetime
        self.state = BetState.IDLE
        self.closed_reason: str | None = None
        self._attempts = 0
        self._resend_at = math.inf
        self._expires_at = math.inf
        self._mn_here = side is Side.OLD
        self.initiator = False

    # -- the exchange (§4) ----------------------------------------------------------------------

    def l2_trigger(self, now: float) -> bool:
        """L2-ST (oFA) / L2-TT (nFA): this FA initiates the BET; True if an HRqst is to be sent now."""
        if self.state is not BetState.IDLE:
            return False
        self.initiator = True
        self.state = BetState.REQUESTED
        return self._send(now)

    def request_received(self, now: float, accept: bool = True) -> bool:
        """The peer's HRqst; True to answer with an accepting HRply (then the BET is up here)."""
        if self.state is BetState.CLOSED or not accept:
            return False
        if self.state in (BetState.IDLE, BetState.REQUESTED):
            self.state = BetState.FORWARDING if self._forwarding() else BetState.ESTABLISHED
        self._expires_at = now + self.lifetime
        return True

    def reply(self, accepted: bool, now: float) -> None:
        """The peer's HRply to our HRqst (§4)."""
        if self.state is not BetState.REQUESTED:
            return
        if not accepted:
            self._close("Handoff Reply refused")
            return
        self._resend_at = math.inf
        self.state = BetState.FORWARDING if self._forwarding() else BetState.ESTABLISHED
        self._expires_at = now + self.lifetime

    def _send(self, now: float) -> bool:
        self._attempts += 1
        self._resend_at = now + HRQST_TIMEOUT
        return True

    # -- link events (§1.3) ------------------------------------------------------------------------

    def link_down(self, now: float) -> None:
        """L2-LD at the oFA: the MN left; from now on its packets go through the BET."""
        if self.side is Side.OLD:
            self._mn_here = False
            if self.state is BetState.ESTABLISHED:
                self.state = BetState.FORWARDING

    def link_up(self, now: float) -> None:
        """L2-LU at the nFA: the MN arrived; deliver what comes through the BET."""
        if self.side is Side.NEW:
            self._mn_here = True
            if self.state in (BetState.ESTABLISHED, BetState.FORWARDING):
                self.state = BetState.DELIVERING

    def registered_at_new(self, now: float) -> None:
        """The MN registered through the nFA (§4): the BET is no longer needed."""
        self._close("the mobile node registered through the new FA")

    def _forwarding(self) -> bool:
        return not self._mn_here

    # -- packets -------------------------------------------------------------------------------------

    def downlink(self) -> Downlink:
        """Where a packet for the MN goes at this FA right now."""
        if self.side is Side.OLD:
            return Downlink.TUNNEL if self.state is BetState.FORWARDING else Downlink.LOCAL
        if self.state in (BetState.ESTABLISHED, BetState.FORWARDING):
            return Downlink.BUFFER
        return Downlink.LOCAL

    def uplink_via_bet(self) -> bool:
        """nFA: the MN's own packets go back through the BET to the oFA (its registration is there)."""
        return self.side is Side.NEW and self.state is BetState.DELIVERING

    # -- timers ------------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        if self.state is BetState.CLOSED:
            return None
        deadline = min(self._resend_at, self._expires_at)
        return None if math.isinf(deadline) else deadline

    def handle_timer(self, now: float) -> bool:
        """Resend the HRqst or give up; expire the BET. True when an HRqst is to be sent now."""
        if self.state is BetState.REQUESTED and now >= self._resend_at:
            if self._attempts >= HRQST_ATTEMPTS:
                self._close("no Handoff Reply")
                return False
            return self._send(now)
        if self.state is not BetState.CLOSED and now >= self._expires_at:
            self._close("BET lifetime expired")
        return False

    def _close(self, reason: str) -> None:
        self.state, self.closed_reason = BetState.CLOSED, reason
        self._resend_at = self._expires_at = math.inf
