"""The foreign agent's runtime pieces that need no root: config loading, frame building, the access-link
parser and the datapath's decisions (RFC 5944 §2.2, §3.7.2.3, §4.2.2; RFC 2003 §3.1; RFC 3024 §4.3)."""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from agents.datapath.base import DropReason
from agents.datapath.fa_tables import ForeignAgentTable
from agents.datapath.foreign_agent import UserspaceForeignAgent, VisitorRoute, _Tally
from agents.mip.wire.ip import internet_checksum
from agents.runtime import cli
from agents.runtime.roles.fa_access import AccessLink, ipv4_packet, udp_datagram
from agents.runtime.roles.foreign_agent import load_settings

HOA, HA, COA = IPv4Address("192.0.2.10"), IPv4Address("192.0.2.1"), IPv4Address("198.51.100.2")
MAC = bytes.fromhex("020000000010")
CONFIG = """
[foreign_agent]
care_of_addresses = ["198.51.100.2"]
encapsulations = ["ipip"]

[foreign_agent.advertisement]
max_interval = 0.5

[runtime]
name = "fa1"
access_interface = "fa1-acc"
"""


def test_config_loads_both_sections(tmp_path: Path) -> None:
    path = tmp_path / "fa.toml"
    path.write_text(CONFIG)
    settings = load_settings(path)
    assert settings.protocol.care_of_addresses == (COA,)
    assert settings.protocol.advertisement.max_interval == 0.5
    assert settings.runtime.access_interface == "fa1-acc" and settings.runtime.tunnel_interface == "mip-fa"


def test_check_rejects_encapsulations_the_datapath_cannot_carry(tmp_path: Path, capsys: Any) -> None:
    """Advertising G or M (RFC 5944 §2.1.1) would invite tunnels this datapath cannot take apart."""
    path = tmp_path / "fa.toml"
    path.write_text(CONFIG.replace('encapsulations = ["ipip"]', 'encapsulations = ["ipip", "gre"]'))
    assert cli.main(["fa", "--config", str(path), "--check"]) == 2
    assert "foreign_agent.encapsulations" in capsys.readouterr().err


def test_check_rejects_an_unknown_runtime_key(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "fa.toml"
    path.write_text(CONFIG + 'bogus = "x"\n')
    assert cli.main(["fa", "--config", str(path), "--check"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_ipv4_packet_has_a_valid_header() -> None:
    packet = ipv4_packet(COA, HOA, socket.IPPROTO_UDP, udp_datagram(434, 40000, b"abc"), 64)
    assert len(packet) == 20 + 8 + 3 and packet[8] == 64 and packet[9] == socket.IPPROTO_UDP
    assert internet_checksum(packet[:20]) == 0
    assert struct.unpack_from("!HHH", packet, 20) == (434, 40000, 11)


def bare_link() -> AccessLink:
    """An AccessLink without sockets, for the parser."""
    link = object.__new__(AccessLink)
    link.macs = {}
    return link


def test_access_link_learns_the_mac_of_udp_434_and_reports_solicitations() -> None:
    link, heard = bare_link(), []
    request = ipv4_packet(HOA, IPv4Address("10.0.1.1"), 17, udp_datagram(40000, 434, b"x"), 255)
    link._inspect(request, MAC, None)
    assert link.macs == {(HOA, 40000): MAC}
    solicitation = ipv4_packet(HOA, IPv4Address("224.0.0.11"), 1, bytes([10, 0, 0, 0]) + bytes(4), 1)
    link._inspect(solicitation, MAC, lambda source, mac: heard.append((source, mac)))
    assert heard == [(HOA, MAC)]


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append((data, address))


def bare_datapath(frames: list[tuple[bytes, bytes]]) -> tuple[UserspaceForeignAgent, FakeSocket]:
    """A datapath without TUN or netlink: only its packet handling."""
    datapath = object.__new__(UserspaceForeignAgent)
    datapath.send_frame = lambda packet, mac: frames.append((packet, mac))
    datapath.tally = _Tally()
    datapath.on_drop = None
    sock = FakeSocket()
    datapath.sockets = {COA: sock}  # type: ignore[dict-item]
    datapath.visitors = ForeignAgentTable()
    datapath.visitors.put(VisitorRoute(HOA, HA, COA, MAC, reverse_tunnel=True))
    return datapath, sock


def test_decapsulated_packets_go_to_the_visitors_mac_with_ttl_decremented() -> None:
    frames: list[tuple[bytes, bytes]] = []
    datapath, _sock = bare_datapath(frames)
    inner = ipv4_packet(HA, HOA, 41, bytes(40), 64)
    datapath.decapsulate(ipv4_packet(HA, COA, 4, inner, 64))
    assert len(frames) == 1 and frames[0][1] == MAC
    assert frames[0][0][8] == 63 and internet_checksum(frames[0][0][:20]) == 0


@pytest.mark.parametrize(
    ("outer_source", "inner_destination"),
    [(IPv4Address("203.0.113.9"), HOA), (HA, IPv4Address("192.0.2.99"))],
)
def test_decapsulation_refuses_other_senders_and_non_visitors(
    outer_source: IPv4Address, inner_destination: IPv4Address
) -> None:
    frames: list[tuple[bytes, bytes]] = []
    datapath, _sock = bare_datapath(frames)
    inner = ipv4_packet(HA, inner_destination, 1, bytes(8), 64)
    datapath.decapsulate(ipv4_packet(outer_source, COA, 4, inner, 64))
    assert not frames and datapath.counters().dropped(DropReason.UNKNOWN_OUTER_SOURCE) == 1


def test_reverse_tunnel_sends_visitor_packets_to_its_home_agent_only() -> None:
    datapath, sock = bare_datapath([])
    packet = ipv4_packet(HOA, IPv4Address("203.0.113.10"), 1, bytes(8), 64)
    datapath.reverse_tunnel(packet)
    datapath.reverse_tunnel(ipv4_packet(IPv4Address("192.0.2.77"), HA, 1, bytes(8), 64))
    assert sock.sent == [(packet, (str(HA), 0))]
    counters = datapath.counters()
    assert counters.encapsulated_packets == 1 and counters.drops == {"no_tunnel": 1}


def test_encapsulated_packets_from_a_visitor_are_reverse_tunnelled_only_with_style_130() -> None:
    """RFC 3024 §5.2: only a visitor that asked for the Encapsulating Delivery Style, and only packets
    whose inner source is its home address (§5.2.2)."""
    datapath, sock = bare_datapath([])
    inner = ipv4_packet(HOA, IPv4Address("203.0.113.10"), 17, bytes(8), 64)
    access = IPv4Address("10.0.1.1")
    datapath.from_visitor_encapsulated(ipv4_packet(HOA, access, 4, inner, 64))  # direct style: refused
    datapath.visitors.put(VisitorRoute(HOA, HA, COA, MAC, reverse_tunnel=True, encapsulating=True))
    datapath.from_visitor_encapsulated(ipv4_packet(HOA, access, 4, inner, 64))
    spoofed = ipv4_packet(IPv4Address("192.0.2.77"), IPv4Address("203.0.113.10"), 17, bytes(8), 64)
    datapath.from_visitor_encapsulated(ipv4_packet(HOA, access, 4, spoofed, 64))
    assert sock.sent == [(inner, (str(HA), 0))]
    counters = datapath.counters()
    assert counters.encapsulated_packets == 1
    assert counters.drops == {"encapsulation": 1, "inner_source": 1}  # §5.2.1 style, §5.2.2 source
