"""DHCPv6 messages found inside the mobile IP tunnels of a pcap (RFC 5454 §3.7.1, §3.3.2).

Via a foreign agent the path is Ethernet / IPv4 (CoA↔HA, protocol 4) / IPv4 (HoA↔HA, protocol 41) / IPv6 /
UDP 546↔547 / DHCPv6; with a co-located care-of address one IPv4 layer less. dpkt reads the file; the layers
are walked here so that a DHCPv6 message outside a tunnel from the node's home address is not counted.
"""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address
from pathlib import Path

import dpkt

from agents.mip.wire.dhcpv6 import CLIENT_PORT, SERVER_PORT, MessageType
from reports.pcapread import ipv4_packets

PROTO_IPIP, PROTO_IPV6 = 4, 41


def _inner_ipv6(packet: dpkt.ip.IP, home: bytes) -> dpkt.ip6.IP6 | None:
    """The IPv6 packet carried HoA↔HA, possibly inside one more IPv4-in-IPv4 layer."""
    for _ in range(2):
        if (
            packet.p == PROTO_IPV6
            and home in (packet.src, packet.dst)
            and isinstance(packet.data, dpkt.ip6.IP6)
        ):
            return packet.data
        if packet.p != PROTO_IPIP or not isinstance(packet.data, dpkt.ip.IP):
            return None
        packet = packet.data
    return None


def dhcpv6_in_tunnel(pcap: Path, home_address: IPv4Address) -> Counter[str]:
    """Count of each DHCPv6 message type seen tunnelled to or from ``home_address``."""
    seen: Counter[str] = Counter()
    home = home_address.packed
    for _ts, ip in ipv4_packets(pcap):
        inner = _inner_ipv6(ip, home)
        udp = inner.data if inner is not None else None
        if not isinstance(udp, dpkt.udp.UDP) or {udp.sport, udp.dport} != {CLIENT_PORT, SERVER_PORT}:
            continue
        payload = bytes(udp.data)
        if payload:
            try:
                seen[MessageType(payload[0]).name] += 1
            except ValueError:
                seen[str(payload[0])] += 1
    return seen
