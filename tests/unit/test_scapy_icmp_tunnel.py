"""Scapy as an independent decoder of our ICMP, IP, GRE and Tunnel Data bytes.

Scapy (GPL) is used only here, in tests; nothing in agents/ imports it.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE
from scapy.layers.mobileip import MobileIP, MobileIPTunnelData
from scapy.packet import Raw

from agents.mip.icmp import AdvertisementFlag, AgentAdvertisement, AgentSolicitation, MobilityAgentExtension
from agents.mip.ip import IPv4Header, IPv6Header
from agents.mip.tunnel import encapsulate, encapsulate_udp_tunnel_data

HA = IPv4Address("192.0.2.1")
COA = IPv4Address("10.0.2.10")


def inner4(tos: int = 0xB9, payload: bytes = bytes(8), flags: int = 2) -> bytes:
    header = IPv4Header(IPv4Address("10.1.0.5"), IPv4Address("198.51.100.1"), 17, 20 + len(payload),
                        tos=tos, flags=flags, ttl=61, identification=0x1234)
    return header.encode() + payload


def inner6(traffic_class: int = 0xB8, payload: bytes = bytes(8)) -> bytes:
    header = IPv6Header(IPv6Address("2001:db8:1::5"), IPv6Address("2001:db8:2::1"), 17, len(payload),
                        traffic_class=traffic_class, flow_label=0xABCDE, hop_limit=33)
    return header.encode() + payload


def scapy_checksum(message: bytes) -> int:
    packet = ICMP(message)
    received = int(packet.chksum)
    del packet.chksum
    recomputed = int(ICMP(raw(packet)).chksum)
    assert recomputed == received
    return recomputed


class TestIcmp:
    def test_advertisement_checksum(self) -> None:
        """RFC 1256 §3 / RFC 5944 §2.1: scapy computes the same ICMP checksum over our advertisement."""
        advertisement = AgentAdvertisement(
            0, 1800, ((IPv4Address("10.0.2.1"), 0),),
            MobilityAgentExtension(7, 300, AdvertisementFlag.F | AdvertisementFlag.T,
                                   (IPv4Address("10.0.2.1"),)), prefix_lengths=(24,), padding=1)
        data = advertisement.encode()
        packet = ICMP(data)
        assert packet.type == 9 and packet.code == 0
        assert scapy_checksum(data) == int.from_bytes(data[2:4], "big")

    def test_solicitation(self) -> None:
        """RFC 5944 §2.2: type 10 code 0, as scapy reads a Router Solicitation."""
        data = AgentSolicitation().encode()
        packet = ICMP(data)
        assert (packet.type, packet.code) == (10, 0)
        assert scapy_checksum(data) == 0xF5FF

    @settings(max_examples=40, deadline=None)
    @given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.lists(st.integers(0, 2**32 - 1), max_size=4),
           st.integers(0, 3))
    def test_checksum_property(self, sequence: int, flags: int, coas: list[int], padding: int) -> None:
        advertisement = AgentAdvertisement(
            16, 600, (), MobilityAgentExtension(sequence, 60, AdvertisementFlag(flags),
                                                tuple(IPv4Address(a) for a in coas)), padding=padding)
        data = advertisement.encode()
        assert scapy_checksum(data) == int.from_bytes(data[2:4], "big")


def check_outer(packet: IP, outer: bytes, protocol: int) -> None:
    assert packet.version == 4 and packet.ihl == 5
    assert packet.len == len(outer) and packet.proto == protocol
    assert (packet.src, packet.dst) == (str(HA), str(COA))
    received = packet.chksum
    del packet.chksum
    assert IP(raw(packet)).chksum == received


class TestTunnels:
    def test_ipv4_in_ipv4(self) -> None:
        """RFC 2003 §3.1 outer header as scapy reads it: TOS and DF copied, TTL 64, protocol 4."""
        outer = encapsulate(inner4(), HA, COA, 4)
        packet = IP(outer)
        check_outer(packet, outer, 4)
        assert packet.tos == 0xB9 and packet.flags == "DF" and packet.ttl == 64
        inner = packet.payload
        assert isinstance(inner, IP) and inner.tos == 0xB9 and inner.ttl == 61 and inner.len == 28

    def test_ipv6_in_ipv4(self) -> None:
        """RFC 4213 §3.5: protocol 41, Total Length = payload + 60, DF clear; scapy decodes the IPv6 inner."""
        outer = encapsulate(inner6(), HA, COA, 41)
        packet = IP(outer)
        check_outer(packet, outer, 41)
        assert packet.len == 8 + 60 and packet.flags == 0 and packet.tos == 0xB8
        inner = packet.payload
        assert isinstance(inner, IPv6)
        assert (inner.tc, inner.fl, inner.hlim, inner.plen, inner.nh) == (0xB8, 0xABCDE, 33, 8, 17)

    @pytest.mark.parametrize("checksum", [False, True])
    @pytest.mark.parametrize("make_inner", [inner4, inner6])
    def test_gre(self, checksum: bool, make_inner: object) -> None:
        """RFC 2784 §2: scapy's GRE reads our header (and verifies the optional checksum)."""
        inner = make_inner()  # type: ignore[operator]
        outer = encapsulate(inner, HA, COA, 47, gre_checksum=checksum)
        packet = IP(outer)
        check_outer(packet, outer, 47)
        gre = packet[GRE]
        assert gre.version == 0 and gre.chksum_present == int(checksum)
        assert gre.proto == (0x0800 if inner[0] >> 4 == 4 else 0x86DD)
        assert raw(gre.payload) == inner
        if checksum:
            received = gre.chksum
            del gre.chksum
            assert GRE(raw(gre)).chksum == received

    def test_minimal(self) -> None:
        """RFC 2004 §3: scapy reads the modified IP header (protocol 55, total length +12, valid checksum)."""
        inner = inner4()
        outer = encapsulate(inner, HA, COA, 55)
        packet = IP(outer)
        check_outer(packet, outer, 55)
        assert packet.len == len(inner) + 12 and packet.ttl == 61
        assert isinstance(packet.payload, Raw)

    @pytest.mark.parametrize(("make_inner", "next_header"), [(inner4, 4), (inner6, 41)])
    def test_tunnel_data(self, make_inner: object, next_header: int) -> None:
        """RFC 3519 §3.3 (and RFC 5454 §3.9 for 41): scapy's MobileIPTunnelData reads our header."""
        inner = make_inner()  # type: ignore[operator]
        payload = encapsulate_udp_tunnel_data(inner, next_header)
        datagram = UDP(raw(UDP(sport=49152, dport=434) / Raw(payload)))
        message = datagram[MobileIP]
        assert message.type == 4
        data = message[MobileIPTunnelData]
        assert data.nexthdr == next_header and data.res == 0
        if next_header == 4:
            assert isinstance(data.payload, IP) and raw(data.payload) == inner
        else:
            assert raw(data.payload) == inner  # scapy binds only 4; 41 stays Raw
            assert IPv6(raw(data.payload)).hlim == 33

    @settings(max_examples=40, deadline=None)
    @given(st.integers(0, 255), st.binary(max_size=40), st.sampled_from([4, 47]))
    def test_outer_header_property(self, tos: int, payload: bytes, protocol: int) -> None:
        outer = encapsulate(inner4(tos=tos, payload=payload, flags=0), HA, COA, protocol)
        packet = IP(outer)
        check_outer(packet, outer, protocol)
        assert packet.tos == tos and packet.flags == 0
