"""The foreign agent's pure packet decisions (agents/datapath/fa_tables.py): every refusal has its
:class:`DropReason`, the same set the home agent and the mobile node count."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from agents.datapath.base import DropEvent, DropReason
from agents.datapath.fa_tables import Delivery, ForeignAgentTable, VisitorRoute, forwardable_ipv4
from agents.datapath.foreign_agent import UserspaceForeignAgent, _Tally
from agents.mip.wire.ip import internet_checksum
from agents.runtime.roles.fa_access import ipv4_packet

HOA, HA, COA = IPv4Address("192.0.2.10"), IPv4Address("192.0.2.1"), IPv4Address("198.51.100.2")
CN = IPv4Address("203.0.113.10")
MAC = bytes.fromhex("020000000010")


def table(**flags: bool) -> ForeignAgentTable:
    visitors = ForeignAgentTable()
    visitors.put(
        VisitorRoute(HOA, HA, COA, MAC, flags.get("reverse", True), flags.get("encapsulating", False))
    )
    return visitors


def test_delivery_decrements_the_ttl_and_names_the_visitors_mac() -> None:
    """RFC 2003 §3.1 (TTL), RFC 5944 §4.2.2 (to the visitor's link-layer address, no ARP)."""
    outcome = table().deliver(ipv4_packet(HA, COA, 4, ipv4_packet(CN, HOA, 17, bytes(8), 9), 64))
    assert isinstance(outcome, Delivery) and outcome.link_address == MAC and outcome.packet[8] == 8


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (ipv4_packet(HA, COA, 4, b"\x45" + bytes(10), 64), DropReason.MALFORMED),  # truncated inner
        (ipv4_packet(HA, COA, 4, b"\x60" + bytes(39), 64), DropReason.MALFORMED),  # IPv6 inside: not ours
        (ipv4_packet(CN, COA, 4, ipv4_packet(CN, HOA, 1, bytes(8), 64), 64), DropReason.UNKNOWN_OUTER_SOURCE),
        (ipv4_packet(HA, COA, 4, ipv4_packet(CN, CN, 1, bytes(8), 64), 64), DropReason.UNKNOWN_OUTER_SOURCE),
        (ipv4_packet(HA, COA, 4, ipv4_packet(CN, HOA, 1, bytes(8), 1), 64), DropReason.HOP_LIMIT),
        (b"", DropReason.MALFORMED),
    ],
    ids=["truncated", "ipv6-inner", "not-the-visitors-ha", "not-a-visitor", "ttl-1", "empty"],
)
def test_delivery_refusals(packet: bytes, reason: DropReason) -> None:
    """RFC 2003 §3 and RFC 5944 §4.2.2: only the visitor's own home agent may tunnel to it."""
    assert table().deliver(packet) is reason


def _damaged(inner: bytes, case: str) -> bytes:
    """``inner`` with one header defect; the checksum recomputed unless the checksum is the defect."""
    header = bytearray(inner)
    if case == "checksum":
        header[10] ^= 0xFF
        return bytes(header)
    if case == "length-too-big":
        header[2:4] = (len(inner) + 8).to_bytes(2, "big")
    elif case == "length-too-small":
        header[2:4] = (len(inner) - 4).to_bytes(2, "big")
    elif case == "ihl-beyond-total":
        header[0] = 0x4F
    elif case == "ihl-below-5":
        header[0] = 0x44
    header[10:12] = bytes(2)
    header[10:12] = internet_checksum(bytes(header[:20])).to_bytes(2, "big")
    return bytes(header)


@pytest.mark.parametrize(
    "case", ["checksum", "length-too-big", "length-too-small", "ihl-beyond-total", "ihl-below-5"]
)
def test_a_damaged_inner_header_is_never_forwarded_to_the_visitor_rfc1812_5_2_2(case: str) -> None:
    """RFC 1812 §5.2.2: a router forwards only a header that verifies (checksum, version, IHL ≥ 5, total
    length within what was carried). The FA puts the inner packet on the access link itself, past the
    kernel's input checks, so a damaged one is dropped as malformed."""
    inner = _damaged(ipv4_packet(CN, HOA, 17, bytes(8), 64), case)
    assert not forwardable_ipv4(inner)
    assert table().deliver(ipv4_packet(HA, COA, 4, inner, 64)) is DropReason.MALFORMED


def test_an_intact_inner_header_with_options_is_forwarded() -> None:
    """RFC 1812 §5.2.2 refuses damage, not options: an IHL of 6 with a verified checksum is delivered."""
    plain = ipv4_packet(CN, HOA, 17, bytes(8), 64)
    header = bytearray(plain[:20] + b"\x01\x01\x01\x00" + plain[20:])  # 3 NOPs, End of Options
    header[0], header[2:4] = 0x46, (len(plain) + 4).to_bytes(2, "big")
    header[10:12] = bytes(2)
    header[10:12] = internet_checksum(bytes(header[:24])).to_bytes(2, "big")
    assert forwardable_ipv4(bytes(header))
    assert isinstance(table().deliver(ipv4_packet(HA, COA, 4, bytes(header), 64)), Delivery)


def test_reverse_tunnel_needs_the_t_flag() -> None:
    """RFC 3024 §5.1: without T the FA routes the visitor's packets as usual, never into the tunnel."""
    packet = ipv4_packet(HOA, CN, 17, bytes(8), 64)
    assert isinstance(table().reverse(packet), VisitorRoute)
    assert table(reverse=False).reverse(packet) is DropReason.NO_TUNNEL
    assert table().reverse(ipv4_packet(CN, HA, 17, bytes(8), 64)) is DropReason.NO_TUNNEL
    assert table().reverse(b"\x45") is DropReason.MALFORMED


def test_encapsulating_delivery_checks_style_and_inner_source() -> None:
    """RFC 3024 §5.2.1 (only a visitor that registered the style) and §5.2.2 (inner source = HoA)."""
    inner = ipv4_packet(HOA, CN, 17, bytes(8), 64)
    to_fa = IPv4Address("10.0.1.1")
    assert table().unwrap_from_visitor(ipv4_packet(HOA, to_fa, 4, inner, 64)) is DropReason.ENCAPSULATION
    encapsulating = table(encapsulating=True)
    unwrapped = encapsulating.unwrap_from_visitor(ipv4_packet(HOA, to_fa, 4, inner, 64))
    assert isinstance(unwrapped, tuple) and unwrapped[0] == inner
    spoofed = ipv4_packet(CN, HA, 17, bytes(8), 64)
    assert (
        encapsulating.unwrap_from_visitor(ipv4_packet(HOA, to_fa, 4, spoofed, 64)) is DropReason.INNER_SOURCE
    )
    stranger = ipv4_packet(CN, to_fa, 4, ipv4_packet(CN, HA, 17, bytes(8), 64), 64)
    assert encapsulating.unwrap_from_visitor(stranger) is DropReason.UNKNOWN_OUTER_SOURCE


def test_an_inbound_refusal_is_reported_like_the_other_roles() -> None:
    """One security-drop report for every role: the FA's refusals reach ``on_drop`` as DropEvents."""
    reports: list[DropEvent] = []
    datapath = object.__new__(UserspaceForeignAgent)
    datapath.visitors, datapath.tally, datapath.on_drop = table(), _Tally(), reports.append
    datapath.decapsulate(ipv4_packet(CN, COA, 4, ipv4_packet(CN, HOA, 1, bytes(8), 64), 64))
    assert reports == [DropEvent(DropReason.UNKNOWN_OUTER_SOURCE, 4, CN, COA, str(CN), str(HOA))]
    assert datapath.counters().dropped(DropReason.UNKNOWN_OUTER_SOURCE) == 1
