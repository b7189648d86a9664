"""A fixed set of Mobile IP messages, built with our encoders, for decoder cross-checks (tshark, mipdump)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, IPv6Network

import dpkt

from agents.mip.wire.auth import SecurityAssociation
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.dsmip import PrefixReply, PrefixRequest, TunnelingMode
from agents.mip.wire.extensions import NaiExtension, UdpTunnelReply, UdpTunnelRequest
from agents.mip.wire.icmp import (
    AdvertisementFlag,
    AgentAdvertisement,
    AgentSolicitation,
    MobilityAgentExtension,
)
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest, build_reply, build_request
from agents.mip.wire.tunnel import TunnelDataHeader, encapsulate_ipv6_in_ipv4
from tests.support.frames import icmp_packet, udp_packet

KEY = bytes(range(16))
SPI = 0x100
MN_HA = SecurityAssociation(SPI, KEY)
HOA, HA, COA = IPv4Address("10.1.0.5"), IPv4Address("192.0.2.1"), IPv4Address("198.51.100.10")
PREFIXES = (IPv6Network("2001:db8:1::/48"), IPv6Network("2001:db8:2::/48"), IPv6Network("2001:db8:3:4::/64"))
LINK_LOCAL = IPv6Address("fe80::a01:5")
IDENTIFICATION = 0xE8A1B2C300000001


def dsmip_request() -> bytes:
    """RRQ with D and T, NAI, three prefix requests, a link-local request (255) and Tunneling Mode."""
    requests = [PrefixRequest.for_network(p) for p in PREFIXES]
    requests.append(PrefixRequest.for_link_local(LINK_LOCAL))
    request = RegistrationRequest(
        RegistrationFlag.D | RegistrationFlag.T,
        300,
        HOA,
        HA,
        COA,
        IDENTIFICATION,
        (NaiExtension("mn1@example.net"), *requests, TunnelingMode()),
    )
    return build_request(request, MN_HA)


def dsmip_reply() -> bytes:
    """RRP accepting with one Prefix Reply per code 0, 1, 8, 9 (RFC 5454 §2.2)."""
    replies = [
        PrefixReply.answering(PrefixRequest.for_network(p), c)
        for p, c in zip(PREFIXES, (0, 1, 8), strict=True)
    ]
    replies.append(PrefixReply.answering(PrefixRequest.for_link_local(LINK_LOCAL), 9))
    return build_reply(RegistrationReply(0, 300, HOA, HA, IDENTIFICATION, tuple(replies)), MN_HA)


def udp_tunnel_request() -> bytes:
    request = RegistrationRequest(
        RegistrationFlag.D | RegistrationFlag.T,
        60,
        HOA,
        HA,
        COA,
        IDENTIFICATION + 1,
        (UdpTunnelRequest(force=True, r_flag=False, encapsulation=0),),
    )
    return build_request(request, MN_HA)


def udp_tunnel_reply() -> bytes:
    reply = RegistrationReply(
        0, 60, HOA, HA, IDENTIFICATION + 1, (UdpTunnelReply(code=0, force=True, keepalive=110),)
    )
    return build_reply(reply, MN_HA)


def advertisement() -> bytes:
    flags = AdvertisementFlag.R | AdvertisementFlag.F | AdvertisementFlag.T
    mobility = MobilityAgentExtension(7, 1800, flags, (IPv4Address("198.51.100.1"),))
    return AgentAdvertisement(0, 3, ((IPv4Address("198.51.100.1"), 0),), mobility, (24,), 1).encode()


def ipv6_inner() -> bytes:
    """An IPv6 UDP datagram from a CN to an address in the first registered prefix (dpkt's checksum)."""
    udp = dpkt.udp.UDP(sport=12345, dport=12345, data=b"ping")
    udp.ulen = len(udp)
    source, destination = IPv6Address("2001:db8:ff::1").packed, IPv6Address("2001:db8:1::5").packed
    packet = dpkt.ip6.IP6(src=source, dst=destination, nxt=17, hlim=64, data=udp)
    packet.plen = len(udp)
    return bytes(packet)


def tunnel_data_ipv6() -> bytes:
    """MIP Tunnel Data (RFC 3519 §3.3) with next header 41 carrying IPv6 (RFC 5454 §3.9)."""
    return TunnelDataHeader(41).encode() + ipv6_inner()


def capture_packets() -> list[bytes]:
    """IPv4 packets in capture order: what tests/test_tshark and the mipdump tests read back."""
    return [
        udp_packet(dsmip_request(), str(COA), str(HA), ttl=255),
        udp_packet(dsmip_reply(), str(HA), str(COA), sport=434, dport=49152),
        udp_packet(udp_tunnel_request(), str(COA), str(HA), ttl=255),
        udp_packet(udp_tunnel_reply(), str(HA), str(COA), sport=434, dport=49152),
        icmp_packet(advertisement(), "198.51.100.1", "224.0.0.1"),
        icmp_packet(AgentSolicitation().encode(), "0.0.0.0", "224.0.0.11"),
        udp_packet(tunnel_data_ipv6(), str(HA), str(COA), sport=434, dport=49152),
        encapsulate_ipv6_in_ipv4(ipv6_inner(), HA, HOA),
    ]
