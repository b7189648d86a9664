"""The foreign agent's side of a low-latency handoff: visitors it has been told to expect (RFC 4881).

An L2 target trigger (L2-TT, RFC 4881 §1.3: the new access point announces a station about to
associate) tells the new FA (nFA) the home address and link-layer address of a mobile node that is
coming. For such a visitor the nFA

* relays a Registration Request that reaches it from the network side, not on its access link
  (the pre-registration of §3.1 goes through the old FA), without the TTL 255 check of RFC 3024
  §3.2 (the trigger stands for the proximity the TTL proves otherwise) — a simplification: RFC 4881
  leaves the nFA's checks to the FA-FA security association;
* records the visitor with the link-layer address the trigger gave, since the request carried none;
* buffers the visitor's packets until it attaches (:mod:`agents.mip.fa.llh_buffer`), and learns of the
  attachment from whichever comes first: L2-LU (:meth:`ExpectedVisitors.attached_by_mac`), the
  visitor's solicitation on the access link, or its first packet there (the pre-registered visitor's
  reverse-tunnelled traffic, :meth:`LowLatencyHandoffs.visitor_sent`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address

from agents.mip.fa.events import (
    EdgeTunnelClosed,
    EdgeTunnelForwarding,
    EdgeTunnelUp,
    ForeignAgentEvent,
    VisitorAttached,
    VisitorExpected,
)
from agents.mip.fa.llh_post import BetState, Downlink, EdgeTunnel, Side


@dataclass(frozen=True)
class Expectation:
    home_address: IPv4Address
    link_address: bytes
    interface: str | None
    expires_at: float


class ExpectedVisitors:
    """Home address → the expectation an L2 trigger opened, until it expires or the visitor attaches."""

    def __init__(self) -> None:
        self._by_home: dict[IPv4Address, Expectation] = {}

    def expect(
        self,
        home_address: IPv4Address,
        link_address: bytes,
        interface: str | None,
        now: float,
        timeout: float,
    ) -> Expectation:
        if len(link_address) != 6:
            raise ValueError("link_address must be a 6-byte MAC address")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        entry = Expectation(home_address, bytes(link_address), interface, now + timeout)
        self._by_home[home_address] = entry
        return entry

    def get(self, home_address: IPv4Address, now: float) -> Expectation | None:
        entry = self._by_home.get(home_address)
        if entry is not None and now >= entry.expires_at:
            del self._by_home[home_address]
            return None
        return entry

    def attached_by_mac(self, link_address: bytes | None, now: float) -> Expectation | None:
        """The visitor with this link-layer address is on the link now: its expectation ends."""
        if link_address is None:
            return None
        for home, entry in list(self._by_home.items()):
            if entry.link_address == link_address:
                del self._by_home[home]
                return entry if now < entry.expires_at else None
        return None

    def by_mac(self, link_address: bytes, now: float) -> Expectation | None:
        """The open expectation for this link-layer address, left open."""
        return next(
            (e for e in self._by_home.values() if e.link_address == link_address and now < e.expires_at), None
        )

    def attached_by_home(self, home_address: IPv4Address, now: float) -> Expectation | None:
        """The expected visitor sent a packet from ``home_address`` on the link: its expectation ends."""
        entry = self._by_home.pop(home_address, None)
        return entry if entry is not None and now < entry.expires_at else None

    def __len__(self) -> int:
        return len(self._by_home)


# -- post-registration: the FA's ends of bidirectional edge tunnels (RFC 4881 §4) ---------------------


@dataclass
class _Bet:
    tunnel: EdgeTunnel
    peer: IPv4Address
    link_address: bytes | None


class EdgeTunnels:
    """Home address → this FA's end of a BET (:class:`agents.mip.fa.llh_post.EdgeTunnel`) and its peer FA's
    care-of address.

    Simplification (documented in docs/architecture.md): no Handoff Request/Reply on the wire. Each FA
    gets its end from its own L2 trigger — L2-ST at the oFA naming the nFA's care-of address, L2-TT at
    the nFA naming the oFA's — so both ends are up as soon as the triggers are; the HRqst/HRply exchange
    of §4 (retransmission, refusal) exists in the machine and its tests only.
    """

    def __init__(self) -> None:
        self._bets: dict[IPv4Address, _Bet] = {}

    def source(self, home: IPv4Address, peer: IPv4Address, now: float, lifetime: float) -> EdgeTunnelUp:
        """L2-ST at the oFA: the MN is about to leave for the FA at ``peer``."""
        tunnel = EdgeTunnel(Side.OLD, lifetime)
        tunnel.l2_trigger(now)
        tunnel.reply(True, now)
        self._bets[home] = _Bet(tunnel, peer, None)
        return EdgeTunnelUp(home, peer, Side.OLD.value, None, lifetime)

    def target(
        self, home: IPv4Address, peer: IPv4Address, link_address: bytes, now: float, lifetime: float
    ) -> EdgeTunnelUp:
        """L2-TT at the nFA: the MN (at ``link_address``) is coming from the FA at ``peer``."""
        tunnel = EdgeTunnel(Side.NEW, lifetime)
        tunnel.request_received(now)
        self._bets[home] = _Bet(tunnel, peer, bytes(link_address))
        return EdgeTunnelUp(home, peer, Side.NEW.value, bytes(link_address), lifetime)

    def link_down(self, home: IPv4Address, now: float) -> EdgeTunnelForwarding | None:
        """L2-LD at the oFA: from now on the MN's packets go through the BET."""
        bet = self._bets.get(home)
        if bet is None or bet.tunnel.side is not Side.OLD:
            return None
        bet.tunnel.link_down(now)
        if bet.tunnel.downlink() is not Downlink.TUNNEL:
            return None
        return EdgeTunnelForwarding(home, bet.peer)

    def link_up(self, home: IPv4Address, now: float) -> None:
        bet = self._bets.get(home)
        if bet is not None:
            bet.tunnel.link_up(now)

    def registered(self, home: IPv4Address, now: float) -> EdgeTunnelClosed | None:
        """The MN registered through this FA (§4): a new FA's BET has done its job, and an old FA's is
        wrong now (the MN came back before its lifetime ran out: deliver, do not forward)."""
        bet = self._bets.get(home)
        if bet is None:
            return None
        bet.tunnel.registered_at_new(now)
        if bet.tunnel.side is Side.OLD:
            bet.tunnel.closed_reason = "the mobile node registered through this FA again"
        return self._closed(home)

    def handle_timer(self, now: float) -> list[EdgeTunnelClosed]:
        closed = []
        for home, bet in list(self._bets.items()):
            bet.tunnel.handle_timer(now)
            if bet.tunnel.state is BetState.CLOSED:
                closed.append(self._closed(home))
        return closed

    def get_timer(self) -> float | None:
        deadlines = [t for bet in self._bets.values() if (t := bet.tunnel.get_timer()) is not None]
        return min(deadlines) if deadlines else None

    def _closed(self, home: IPv4Address) -> EdgeTunnelClosed:
        bet = self._bets.pop(home)
        reason = bet.tunnel.closed_reason or "closed"
        return EdgeTunnelClosed(home, bet.peer, bet.tunnel.side.value, reason)

    def __len__(self) -> int:
        return len(self._bets)


class LowLatencyHandoffs:
    """The foreign agent's L2-trigger inputs (RFC 4881 §1.3), mixed into
    :class:`agents.mip.fa.foreign_agent.ForeignAgent`: expected visitors (pre-registration, §3) and the ends
    of edge tunnels (post-registration, §4)."""

    expected: ExpectedVisitors
    edge_tunnels: EdgeTunnels
    counters: Counter[str]

    def _emit(self, event: ForeignAgentEvent) -> None:
        raise NotImplementedError

    def expect_visitor(
        self,
        home_address: IPv4Address,
        link_address: bytes,
        now: float,
        *,
        timeout: float,
        interface: str | None = None,
    ) -> None:
        """L2 target trigger (RFC 4881 §1.3 L2-TT): ``home_address`` is about to attach (fa_handoff)."""
        self.expected.expect(home_address, link_address, interface, now, timeout)
        self.counters["visitors_expected"] += 1
        self._emit(VisitorExpected(home_address, bytes(link_address), timeout))

    def visitor_attached(
        self, link_address: bytes | None, now: float, how: str = "l2-lu"
    ) -> IPv4Address | None:
        """L2-LU (RFC 4881 §1.3): the station with ``link_address`` is on the access link; the home address
        of the expected visitor it is, if any."""
        entry = self.expected.attached_by_mac(link_address, now)
        if entry is None:
            return None
        self.edge_tunnels.link_up(entry.home_address, now)
        self._emit(VisitorAttached(entry.home_address, entry.link_address, how))
        return entry.home_address

    def visitor_sent(self, home_address: IPv4Address, now: float) -> bool:
        """The expected visitor's first packet on the access link (its attachment shows, RFC 4881 §1.3,
        before any L2-LU report): True if it was expected."""
        entry = self.expected.attached_by_home(home_address, now)
        if entry is None:
            return False
        self.edge_tunnels.link_up(home_address, now)
        self._emit(VisitorAttached(home_address, entry.link_address, "first-packet"))
        return True

    def edge_tunnel_source(
        self, home_address: IPv4Address, peer: IPv4Address, now: float, lifetime: float
    ) -> None:
        """L2-ST at the old FA (RFC 4881 §1.3, §4): the visitor is about to move to the FA at ``peer``."""
        self._emit(self.edge_tunnels.source(home_address, peer, now, lifetime))

    def edge_tunnel_target(
        self,
        home_address: IPv4Address,
        peer: IPv4Address,
        link_address: bytes,
        now: float,
        lifetime: float,
        interface: str | None = None,
    ) -> None:
        """L2-TT at the new FA for a post-registration (RFC 4881 §4): take the MN's packets from the BET
        and hold them until it attaches."""
        self.expect_visitor(home_address, link_address, now, timeout=lifetime, interface=interface)
        self._emit(self.edge_tunnels.target(home_address, peer, link_address, now, lifetime))

    def visitor_detached(self, home_address: IPv4Address, now: float) -> bool:
        """L2-LD at the old FA (RFC 4881 §1.3): the visitor left the link; True if a BET takes its packets."""
        forwarding = self.edge_tunnels.link_down(home_address, now)
        if forwarding is not None:
            self._emit(forwarding)
        return forwarding is not None
