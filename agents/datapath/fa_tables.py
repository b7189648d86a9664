"""The foreign agent's packet decisions, pure (no sockets): which visitor a packet belongs to, or why not.

The foreign agent carries IPv4-in-IPv4 (RFC 2003) between its care-of address and each visitor's home
agent. Three directions, each a function of the visitor list alone:

* :meth:`ForeignAgentTable.deliver` — a tunnel packet from a home agent: accepted only when the outer
  source is the home agent of the visitor named by the inner destination; the inner packet, TTL
  decremented (RFC 2003 §3.1), goes to the visitor's link-layer address (RFC 5944 §4.2.2). The FA
  forwards that packet onto the link without the kernel's IP input checks, so it makes them itself
  (RFC 1812 §5.2.2): a damaged inner header is dropped as malformed, never put on the visitor's link.
* :meth:`ForeignAgentTable.reverse` — a visitor's own packet (direct delivery, RFC 3024 §5.1): goes to
  its home agent only when reverse tunnelling was granted (T).
* :meth:`ForeignAgentTable.unwrap_from_visitor` — a packet the visitor tunnelled to the FA
  (Encapsulating Delivery Style, extension 130, RFC 3024 §5.2): only for a visitor that asked for that
  style, and only when the inner source is its home address, like the outer one (§5.2.2).

Refusals are :class:`~agents.datapath.base.DropReason` values, the same set every role counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from agents.datapath.base import DropReason
from agents.mip.wire.ip import HopLimitExceeded, forwarded_ipv4, internet_checksum


@dataclass(frozen=True)
class VisitorRoute:
    """What the datapath needs about one visitor (compiled from the core's VisitorAdded/Updated)."""

    home_address: IPv4Address
    home_agent: IPv4Address
    care_of: IPv4Address
    link_address: bytes
    reverse_tunnel: bool
    encapsulating: bool = False
    """Encapsulating delivery style (RFC 3024 §5.2): the visitor tunnels its packets to the FA."""


@dataclass(frozen=True)
class Delivery:
    """An inner packet ready for the access link, and the visitor's link-layer address."""

    packet: bytes
    link_address: bytes


def _ipv4_inner(packet: bytes) -> bytes | None:
    """The payload of an IPv4 packet when it is itself an IPv4 header's worth or more, else None."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    inner = packet[(packet[0] & 0x0F) * 4 :]
    return inner if len(inner) >= 20 and inner[0] >> 4 == 4 else None


def forwardable_ipv4(packet: bytes) -> bool:
    """RFC 1812 §5.2.2: version 4, a header of at least 20 bytes within the total length, the total
    length that of the bytes carried (RFC 2003 §3: the outer header's payload is the inner packet), and
    a header checksum that verifies."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return False
    header = (packet[0] & 0x0F) * 4
    total = int.from_bytes(packet[2:4], "big")
    return 20 <= header <= total == len(packet) and internet_checksum(packet[:header]) == 0


class ForeignAgentTable:
    """The visitor list as the datapath sees it: home address → :class:`VisitorRoute`."""

    def __init__(self) -> None:
        self.visitors: dict[IPv4Address, VisitorRoute] = {}

    def put(self, route: VisitorRoute) -> None:
        self.visitors[route.home_address] = route

    def remove(self, home_address: IPv4Address) -> None:
        self.visitors.pop(home_address, None)

    def deliver(self, packet: bytes) -> Delivery | DropReason:
        """RFC 2003 §3, RFC 5944 §4.2.2: strip the outer header of a home agent's tunnel packet."""
        inner = _ipv4_inner(packet)
        if inner is None or not forwardable_ipv4(inner):
            return DropReason.MALFORMED
        visitor = self.visitors.get(IPv4Address(inner[16:20]))
        if visitor is None or IPv4Address(packet[12:16]) != visitor.home_agent:
            return DropReason.UNKNOWN_OUTER_SOURCE
        try:
            forwarded = bytes(forwarded_ipv4(inner, True))
        except HopLimitExceeded:
            return DropReason.HOP_LIMIT
        return Delivery(forwarded, visitor.link_address)

    def reverse(self, packet: bytes) -> VisitorRoute | DropReason:
        """RFC 3024 §4.3, §5.1: the visitor whose packet this is, if it was granted reverse tunnelling."""
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return DropReason.MALFORMED
        visitor = self.visitors.get(IPv4Address(packet[12:16]))
        if visitor is None or not visitor.reverse_tunnel:
            return DropReason.NO_TUNNEL
        return visitor

    def unwrap_from_visitor(self, packet: bytes) -> tuple[bytes, VisitorRoute] | DropReason:
        """RFC 3024 §5.2: the inner packet of a visitor's own IP-in-IP packet to the FA, and the visitor."""
        inner = _ipv4_inner(packet)
        if inner is None:
            return DropReason.MALFORMED
        visitor = self.visitors.get(IPv4Address(packet[12:16]))
        if visitor is None or not visitor.reverse_tunnel:
            return DropReason.UNKNOWN_OUTER_SOURCE
        if not visitor.encapsulating:
            return DropReason.ENCAPSULATION  # direct delivery was registered (RFC 3024 §5.2.1)
        if inner[12:16] != packet[12:16]:
            return DropReason.INNER_SOURCE  # RFC 3024 §5.2.2
        return inner, visitor
