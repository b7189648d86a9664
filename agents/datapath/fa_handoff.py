"""The foreign agent datapath's RFC 4881 parts, mixed into
:class:`agents.datapath.foreign_agent.UserspaceForeignAgent`: the new FA's buffer for an expected visitor
(:mod:`agents.mip.fa.llh_buffer`) and both ends of the bidirectional edge tunnel (post-registration, §4).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from ipaddress import IPv4Address

from agents.datapath.base import DropReason
from agents.datapath.fa_tables import Delivery
from agents.mip.fa.llh_buffer import Offered, VisitorBuffers
from agents.mip.wire.ip import HopLimitExceeded, forwarded_ipv4

logger = logging.getLogger(__name__)


class LowLatencyDatapath:
    """Buffering and edge-tunnel forwarding; the host class provides the sockets, tally and delivery."""

    buffers: VisitorBuffers | None = None
    """Tunnel packets held for visitors an L2 trigger announced (RFC 4881, agents.mip.fa.llh_buffer)."""
    bet_out: dict[IPv4Address, IPv4Address] | None = None
    """Old FA, after L2-LD: home address → the new FA's care-of address (RFC 4881 §4 BET)."""
    bet_in: dict[IPv4Address, tuple[IPv4Address, bytes]] | None = None
    """New FA: home address → (the old FA's care-of address, the visitor's link-layer address)."""
    _buffer_timer: asyncio.TimerHandle | None = None
    _loop: asyncio.AbstractEventLoop | None
    sockets: dict[IPv4Address, socket.socket]

    def decapsulate(self, packet: bytes) -> None:
        raise NotImplementedError

    def _deliver(self, delivery: Delivery) -> None:
        raise NotImplementedError

    def _count(self, reason: DropReason) -> None:
        raise NotImplementedError

    def _count_encapsulated(self, size: int) -> None:
        raise NotImplementedError

    def _count_held(self, reason: str, count: int) -> None:
        """Buffer losses, counted beside the DropReason keys: not a refusal, so never a security report."""
        raise NotImplementedError

    # --- low-latency handoff: the expected visitor's buffer (RFC 4881) ---------------------------------

    def expect(self, home_address: IPv4Address, timeout: float) -> None:
        """Hold the tunnel packets for ``home_address`` until :meth:`attach` (at most ``timeout`` s)."""
        assert self.buffers is not None
        self.buffers.expect(home_address, self._now(), timeout)
        self._arm_buffer_timer()

    def attach(self, home_address: IPv4Address) -> int:
        """The expected visitor is on the link: deliver what was held, in order; how many packets."""
        assert self.buffers is not None
        held = self.buffers.attach(home_address, self._now())
        for packet in held:
            self.decapsulate(packet)
        self._arm_buffer_timer()
        return len(held)

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _arm_buffer_timer(self) -> None:
        if self._buffer_timer is not None:
            self._buffer_timer.cancel()
            self._buffer_timer = None
        deadline = None if self.buffers is None else self.buffers.get_timer()
        if deadline is not None and self._loop is not None:
            self._buffer_timer = self._loop.call_at(deadline, self._buffers_expired)

    def _buffers_expired(self) -> None:
        self._buffer_timer = None
        assert self.buffers is not None
        for expired in self.buffers.handle_timer(self._now()):
            self._count_held("buffer_timeout", expired.dropped)
            logger.info(
                "expected visitor %s never attached: %d packets dropped",
                expired.home_address,
                expired.dropped,
            )
        self._arm_buffer_timer()

    # --- post-registration: the bidirectional edge tunnel (RFC 4881 §4) ------------------------------

    def forward_to(self, home_address: IPv4Address, peer: IPv4Address) -> None:
        """Old FA after L2-LD: the visitor's packets go IP-in-IP to the new FA at ``peer`` (§4)."""
        assert self.bet_out is not None
        self.bet_out[home_address] = peer

    def accept_from(self, home_address: IPv4Address, peer: IPv4Address, link_address: bytes) -> None:
        """New FA: IP-in-IP from the old FA's ``peer`` for ``home_address`` is delivered to the visitor."""
        assert self.bet_in is not None
        self.bet_in[home_address] = (peer, link_address)

    def close_edge_tunnel(self, home_address: IPv4Address, grace: float = 0.0) -> None:
        """Forget the BET; ``grace`` seconds later for the new FA's end, so packets the old FA forwarded
        just before the home agent's new binding are still delivered."""
        if grace > 0 and self._loop is not None:
            self._loop.call_later(grace, self.close_edge_tunnel, home_address)
            return
        for table in (self.bet_out, self.bet_in):
            if table is not None:
                table.pop(home_address, None)

    def _through_edge_tunnel(self, packet: bytes) -> bool:
        """Old FA: re-tunnel to the new FA; new FA: deliver what the old FA tunnelled. True if handled."""
        bet_out, bet_in = self.bet_out, self.bet_in
        if (not bet_out and not bet_in) or len(packet) < 40:
            return False
        inner = packet[(packet[0] & 0x0F) * 4 :]
        home = IPv4Address(inner[16:20])
        peer = None if bet_out is None else bet_out.get(home)
        if peer is not None:
            sock = self.sockets.get(IPv4Address(packet[16:20]))
            if sock is None:
                return False
            try:
                sock.sendto(inner, (str(peer), 0))  # from our care-of address (the kernel's outer header)
            except OSError as exc:
                logger.debug("edge tunnel to %s: %s", peer, exc.strerror)
                self._count(DropReason.SEND_FAILED)
                return True
            self._count_encapsulated(len(inner))  # re-tunnelled, to the new FA
            return True
        accepted = None if bet_in is None else bet_in.get(home)
        if accepted is None or IPv4Address(packet[12:16]) != accepted[0]:
            return False
        try:
            forwarded = bytes(forwarded_ipv4(inner, True))
        except HopLimitExceeded:
            self._count(DropReason.HOP_LIMIT)
            return True
        self._deliver(Delivery(forwarded, accepted[1]))  # counted as decapsulated
        return True

    def _held(self, packet: bytes) -> bool:
        """Buffer a tunnel packet whose inner destination is an expected visitor (before the table
        lookup: the visitor entry may come with the relayed reply, just after the first packets)."""
        buffers = self.buffers
        if buffers is None or not buffers.expecting or len(packet) < 20:
            return False
        inner = (packet[0] & 0x0F) * 4
        if len(packet) < inner + 20:
            return False
        outcome = buffers.offer(IPv4Address(packet[inner + 16 : inner + 20]), packet, self._now())
        if outcome is Offered.OVERFLOW:
            self._count_held("buffer_full", 1)  # the oldest held packet made room for this one
        return outcome is not Offered.DELIVER
