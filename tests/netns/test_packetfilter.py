"""Kernel filters on packet sockets: the MN's agent-discovery socket gets only Agent Advertisements (ICMP 9,
RFC 5944 §2.1) with the sender's MAC (§4.6); an agent's access-link sniffer only Agent Solicitations (ICMP
10, §2.2) and registration requests (UDP 434, §3.7.2.3), whatever else crosses the link."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from ipaddress import IPv4Address

import pytest

from agents.net.netlink import run_in_throwaway_netns
from agents.net.packetfilter import attach, ipv4_icmp_type_or_udp_port_program, ipv4_icmp_type_program
from agents.runtime.roles.fa_access import ipv4_packet, udp_datagram

pytestmark = pytest.mark.root
SOURCE_MAC = bytes.fromhex("02aabbccddee")


def frame(protocol: int, payload: bytes) -> bytes:
    """An Ethernet frame with an IPv4 header (10.9.0.1 → 224.0.0.1) around ``payload``."""
    packet = ipv4_packet(IPv4Address("10.9.0.1"), IPv4Address("224.0.0.1"), protocol, payload, 1)
    return bytes.fromhex("01005e000001") + SOURCE_MAC + b"\x08\x00" + packet


def udp(port: int) -> bytes:
    return udp_datagram(40000, port, bytes(8))


SENT = [
    (socket.IPPROTO_ICMP, bytes([8, 0, 0, 0]) + bytes(12)),
    (socket.IPPROTO_ICMP, bytes([9, 0, 0, 0]) + bytes(12)),
    (socket.IPPROTO_ICMP, bytes([10, 0, 0, 0]) + bytes(12)),
    (socket.IPPROTO_UDP, udp(434)),
    (socket.IPPROTO_UDP, udp(9)),
    (socket.IPPROTO_UDP, bytes([9]) * 16),  # a 9 where ICMP has its type, but not ICMP
    (socket.IPPROTO_TCP, struct.pack("!HH", 40000, 434) + bytes(16)),  # port 434, but TCP
]


def received_through(program: list[tuple[int, int, int, int]]) -> list[tuple[int, bytes, bytes]]:
    """(protocol, first 4 bytes after the IP header, source MAC) of each frame the filter let through."""
    subprocess.run(
        "ip link add fa0 type veth peer name mn0 && ip link set fa0 up && ip link set mn0 up",
        shell=True, check=True,
    )  # fmt: skip
    listener = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    attach(listener, program)
    listener.bind(("mn0", 0x0800))
    listener.settimeout(0.2)
    sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sender.bind(("fa0", 0))
    time.sleep(0.1)
    for protocol, payload in SENT:
        sender.send(frame(protocol, payload))
    got = []
    try:
        while True:
            packet, address = listener.recvfrom(2048)
            got.append((packet[9], packet[20:24], bytes(address[4][:6])))
    except TimeoutError:
        pass
    sender.close()
    listener.close()
    return got


def test_only_advertisements_pass_and_the_sender_mac_comes_with_them() -> None:
    got = run_in_throwaway_netns(lambda: received_through(ipv4_icmp_type_program(9)))
    assert got == [(socket.IPPROTO_ICMP, bytes([9, 0, 0, 0]), SOURCE_MAC)]


def test_only_solicitations_and_registration_requests_reach_an_agents_sniffer() -> None:
    got = run_in_throwaway_netns(lambda: received_through(ipv4_icmp_type_or_udp_port_program(10, 434)))
    assert [(protocol, head) for protocol, head, _ in got] == [
        (socket.IPPROTO_ICMP, bytes([10, 0, 0, 0])),
        (socket.IPPROTO_UDP, struct.pack("!HH", 40000, 434)),
    ]
