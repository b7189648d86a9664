"""Pure parts of the DHCPv6-PD report: DHCPv6 found inside the tunnels of a pcap, the phase breakdown."""

from __future__ import annotations

import math
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import dpkt

from agents.mip.wire.dhcpv6 import IaPd, Message, MessageType, duid_en
from reports.dhcpv6_pd_report import phases
from reports.pd_capture import dhcpv6_in_tunnel

HOA, HA, COA = IPv4Address("192.0.2.10"), IPv4Address("192.0.2.1"), IPv4Address("198.51.100.2")
LINK_LOCAL, ALL_SERVERS = IPv6Address("fe80::c000:20a"), IPv6Address("ff02::1:2")


def dhcpv6_frame(kind: MessageType, layers: list[tuple[IPv4Address, IPv4Address]]) -> bytes:
    payload = Message(kind, 1, client_id=duid_en(32473, b"x"), ia_pds=(IaPd(1),)).encode()
    udp = dpkt.udp.UDP(sport=546, dport=547, data=payload)
    udp.ulen = len(udp)
    packet: dpkt.Packet = dpkt.ip6.IP6(
        src=LINK_LOCAL.packed, dst=ALL_SERVERS.packed, nxt=17, hlim=1, data=udp
    )
    packet.plen = len(udp)
    protocol = 41
    for source, destination in layers:
        packet = dpkt.ip.IP(src=source.packed, dst=destination.packed, p=protocol, data=packet)
        packet.len = len(packet)
        protocol = 4
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=packet))


def write_pcap(path: Path, frames: list[bytes]) -> None:
    with path.open("wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        for number, frame in enumerate(frames):
            writer.writepkt(frame, ts=number)


def test_counts_dhcpv6_in_the_hoa_tunnel_inside_the_fa_tunnel_only(tmp_path: Path) -> None:
    pcap = tmp_path / "ha.pcap"
    via_fa = [(HOA, HA), (COA, HA)]  # innermost first: HoA→HA proto 41, inside CoA→HA proto 4
    write_pcap(
        pcap,
        [
            dhcpv6_frame(MessageType.SOLICIT, via_fa),
            dhcpv6_frame(MessageType.REPLY, [(HA, HOA), (HA, COA)]),
            dhcpv6_frame(MessageType.RENEW, [(HOA, HA)]),  # co-located: one IPv4 layer
            dhcpv6_frame(MessageType.SOLICIT, [(IPv4Address("192.0.2.20"), HA), (COA, HA)]),  # another node
        ],
    )
    seen = dhcpv6_in_tunnel(pcap, HOA)
    assert dict(seen) == {"SOLICIT": 1, "REPLY": 1, "RENEW": 1}


def test_phases_chain_milestones_and_stop_at_the_first_missing_one() -> None:
    milestones = {"registration": 0.01, "link-local": 1.0, "solicit": 1.002, "delegated": 1.005}
    spans = phases(milestones | {"prefix registered": math.nan, "first IPv6 from CN": 2.5})
    assert [label for label, _, _ in spans] == [
        "IPv4 registration",
        "link-local registration",
        "to the first Solicit",
        "DHCPv6 exchange",
    ]
    assert spans[1][1] == 0.01 and math.isclose(spans[3][2], 0.003)
