"""The kernel filter of the MN's agent-discovery socket: only ICMP Agent Advertisements (type 9) reach it
(RFC 5944 §2.1), whatever else crosses the link; the sender's MAC comes with each (RFC 5944 §4.6)."""

from __future__ import annotations

import socket
import struct
import subprocess
import time

import pytest

from agents.mip.ip import internet_checksum
from agents.runtime.netlink import run_in_throwaway_netns
from agents.runtime.packetfilter import attach, ipv4_icmp_type_program

pytestmark = pytest.mark.root
SOURCE_MAC = bytes.fromhex("02aabbccddee")


def frame(protocol: int, payload: bytes) -> bytes:
    """An Ethernet frame with an IPv4 header (10.9.0.1 → 224.0.0.1) around ``payload``."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        0,
        1,
        protocol,
        0,
        socket.inet_aton("10.9.0.1"),
        socket.inet_aton("224.0.0.1"),
    )
    header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
    return bytes.fromhex("01005e000001") + SOURCE_MAC + b"\x08\x00" + header + payload


def received_through_filter() -> list[tuple[int, bytes]]:
    subprocess.run(
        "ip link add fa0 type veth peer name mn0 && ip link set fa0 up && ip link set mn0 up",
        shell=True,
        check=True,
    )
    listener = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    attach(listener, ipv4_icmp_type_program(9))
    listener.bind(("mn0", 0x0800))
    listener.settimeout(0.2)
    sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sender.bind(("fa0", 0))
    time.sleep(0.1)
    for kind in (8, 9, 10, 0, 9):
        sender.send(frame(socket.IPPROTO_ICMP, bytes([kind, 0, 0, 0]) + bytes(12)))
    sender.send(frame(socket.IPPROTO_UDP, bytes([9]) * 16))  # a 9 in the same place, but not ICMP
    got = []
    try:
        while True:
            packet, address = listener.recvfrom(2048)
            got.append((packet[20], bytes(address[4][:6])))
    except TimeoutError:
        pass
    sender.close()
    listener.close()
    return got


def test_only_advertisements_pass_and_the_sender_mac_comes_with_them() -> None:
    assert run_in_throwaway_netns(received_through_filter) == [(9, SOURCE_MAC), (9, SOURCE_MAC)]
