"""Cross-check the RRQ/RRP fixed fields against scapy, used here ONLY as an independent decoder.

scapy (GPL) has no Mobile IP extension classes: everything after the fixed part is Raw
(protocol.md §9), so only the fixed fields (RFC 5944 §3.3, §3.4) are compared, plus the raw
extension bytes.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Network

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.mobileip import MobileIP, MobileIPRRP, MobileIPRRQ
from scapy.packet import Raw

from agents.mip.auth import SecurityAssociation
from agents.mip.codes import RegistrationFlag, ReplyCode
from agents.mip.extensions import NaiExtension, PrefixRequest
from agents.mip.registration import (
    RegistrationReply,
    RegistrationRequest,
    build_request,
    decode_message,
)

addresses = st.integers(0, 2**32 - 1).map(IPv4Address)
MN_HA = SecurityAssociation(0x100, bytes(range(16)))


@settings(max_examples=60, deadline=None)
@given(
    flags=st.integers(0, 255),
    lifetime=st.integers(0, 0xFFFF),
    home=addresses,
    agent=addresses,
    care_of=addresses,
    identification=st.integers(0, 2**64 - 1),
)
def test_rfc5944_s3_3_scapy_reads_our_request(
    flags: int,
    lifetime: int,
    home: IPv4Address,
    agent: IPv4Address,
    care_of: IPv4Address,
    identification: int,
) -> None:
    """RFC 5944 §3.3 fixed fields as scapy's MobileIPRRQ sees them."""
    request = RegistrationRequest(RegistrationFlag(flags), lifetime, home, agent, care_of, identification)
    packet = MobileIP(request.encode())
    assert packet.type == 1
    rrq = packet[MobileIPRRQ]
    assert (rrq.flags, rrq.lifetime, rrq.id) == (flags, lifetime, identification)
    assert (rrq.homeaddr, rrq.haaddr, rrq.coaddr) == (str(home), str(agent), str(care_of))


@settings(max_examples=60, deadline=None)
@given(
    code=st.integers(0, 255),
    lifetime=st.integers(0, 0xFFFF),
    home=addresses,
    agent=addresses,
    identification=st.integers(0, 2**64 - 1),
)
def test_rfc5944_s3_4_scapy_reads_our_reply(
    code: int, lifetime: int, home: IPv4Address, agent: IPv4Address, identification: int
) -> None:
    """RFC 5944 §3.4 fixed fields as scapy's MobileIPRRP sees them."""
    reply = RegistrationReply(code, lifetime, home, agent, identification)
    packet = MobileIP(reply.encode())
    assert packet.type == 3
    rrp = packet[MobileIPRRP]
    assert (rrp.code, rrp.lifetime, rrp.id) == (code, lifetime, identification)
    assert (rrp.homeaddr, rrp.haaddr) == (str(home), str(agent))


def test_scapy_keeps_our_extensions_as_raw_bytes() -> None:
    """A signed RRQ with NAI and a DSMIPv4 Prefix Request: scapy's Raw layer is our extension bytes."""
    request = RegistrationRequest(
        RegistrationFlag.T,
        300,
        IPv4Address("10.1.0.5"),
        IPv4Address("192.0.2.1"),
        IPv4Address("10.0.2.10"),
        0xE8A1B2C300000001,
        (NaiExtension("mn1@example.org"), PrefixRequest.for_network(IPv6Network("2001:db8:1::/48"))),
    )
    raw = build_request(request, MN_HA)
    packet = IP(bytes(IP(src="10.1.0.5", dst="192.0.2.1") / UDP(sport=4000, dport=434) / Raw(raw)))
    assert packet.haslayer(MobileIPRRQ)
    assert packet[MobileIPRRQ].flags == RegistrationFlag.T
    assert bytes(packet[Raw]) == raw[24:]


def test_we_decode_what_scapy_builds_request() -> None:
    packet = MobileIP(type=1) / MobileIPRRQ(
        flags=0x22, lifetime=1800, homeaddr="10.1.0.5", haaddr="192.0.2.1", coaddr="198.51.100.7",
        id=0x0123456789ABCDEF,
    ) / Raw(bytes.fromhex("8200"))
    decoded = decode_message(bytes(packet))
    assert isinstance(decoded, RegistrationRequest)
    assert decoded.flags == RegistrationFlag.D | RegistrationFlag.T
    assert decoded.lifetime == 1800 and decoded.identification == 0x0123456789ABCDEF
    assert decoded.home_address == IPv4Address("10.1.0.5")
    assert decoded.home_agent == IPv4Address("192.0.2.1")
    assert decoded.care_of_address == IPv4Address("198.51.100.7")
    assert [e.type for e in decoded.extensions] == [130]


def test_we_decode_what_scapy_builds_reply_inside_udp() -> None:
    """Through a whole IP/UDP packet on port 434 (scapy binds MobileIP to both ports)."""
    packet = IP(src="192.0.2.1", dst="10.1.0.5") / UDP() / MobileIP(type=3) / MobileIPRRP(
        code=136, lifetime=0, homeaddr="10.1.0.5", haaddr="192.0.2.1", id=42
    )
    parsed = IP(bytes(packet))
    assert parsed[UDP].dport == 434 and parsed[UDP].sport == 434
    decoded = decode_message(bytes(parsed[MobileIP]))
    assert isinstance(decoded, RegistrationReply)
    assert decoded.code is ReplyCode.HA_UNKNOWN_HOME_AGENT_ADDRESS
    assert (decoded.lifetime, decoded.identification) == (0, 42)
    assert decoded.home_agent == IPv4Address("192.0.2.1")
    assert decoded.extensions == ()
