"""Kernel steering at the home agent's UDP 434 (agents/runtime/steering.py, issue 16): with a flood from
unknown sources filling the general queue and nobody reading, every datagram of a known peer still reaches
the priority socket, and nothing else does; replies leave from the shared port (RFC 5944 §3.7, §3.8)."""

from __future__ import annotations

import socket
import struct
import subprocess
from ipaddress import IPv4Address

import pytest

from agents.net.netlink import run_in_throwaway_netns
from agents.runtime.steering import SteeredSocket
from agents.runtime.udp import MobileIpSocket

pytestmark = pytest.mark.root
HA, PEER, STRANGER = "10.9.0.1", "10.9.0.2", "10.9.0.3"
HOME = IPv4Address("192.0.2.10")
PORT = 434
PEER_PORTS = range(40001, 40009)


def request(marker: int) -> bytes:
    """A registration request's shape (type 1, 50 bytes, Home Address at offset 4) with a marker."""
    return struct.pack("!BBH4sI", 1, 0, 3, HOME.packed, marker) + bytes(38)


def drain(sock: MobileIpSocket) -> list[tuple[str, int, int]]:
    """(source address, source port, marker) of everything queued on ``sock``."""
    got = []
    while (received := sock.receive_one()) is not None:
        payload = received.payload
        marker = struct.unpack_from("!I", payload, 8)[0] if len(payload) >= 12 else -1
        got.append((str(received.source[0]), received.source[1], marker))
    return got


def flood_with_peer_inside(steer: bool) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]], int]:
    subprocess.run(
        f"ip link set lo up && ip addr add {HA}/24 dev lo && ip addr add {PEER}/24 dev lo "
        f"&& ip addr add {STRANGER}/24 dev lo",
        shell=True, check=True,
    )  # fmt: skip
    steered = SteeredSocket(PORT, receive_buffer=64 << 10, home_addresses={HOME})
    if steer:
        steered.steer(frozenset({IPv4Address(PEER)}))
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind((STRANGER, 0))
    peers = []
    for port in PEER_PORTS:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind((PEER, port))
        peers.append(peer)
    peers[0].sendto(bytes([1, 2, 3]), (HA, PORT))  # the peer's garbage is not steered: general queue
    flood = 0
    for n in range(20_000):
        stranger.sendto(request(n), (HA, PORT))
        flood += 1
        if n % 2_500 == 1_000:
            for peer in peers:
                peer.sendto(request(1_000_000 + n), (HA, PORT))
    priority, general = drain(steered.priority), drain(steered)
    # a reply from the general socket leaves from port 434
    steered.send(b"reply", IPv4Address(PEER), PEER_PORTS[0], source=IPv4Address(HA))
    peers[0].settimeout(1.0)
    _data, sender = peers[0].recvfrom(100)
    for sock in (stranger, *peers):
        sock.close()
    steered.close()
    assert sender == (HA, PORT)
    return priority, general, flood


def test_a_flood_from_unknown_sources_cannot_push_out_a_known_peer() -> None:
    priority, general, flood = run_in_throwaway_netns(lambda: flood_with_peer_inside(steer=True))
    sent_by_peer = 8 * len(range(1_000, 20_000, 2_500))
    assert len(general) < flood  # the general queue overflowed: the kernel dropped part of the flood
    assert {source for source, _, _ in priority} == {PEER}
    assert len(priority) == sent_by_peer  # every one of the peer's requests, none lost
    assert sorted(port for _, port, _ in priority) == sorted(list(PEER_PORTS) * (sent_by_peer // 8))
    assert general[0] == (PEER, PEER_PORTS[0], -1)  # its 3-byte garbage, first in the general queue
    assert all(source == STRANGER for source, _, _ in general[1:])


def test_without_the_peer_in_the_program_its_requests_share_the_overflowing_queue() -> None:
    priority, general, _ = run_in_throwaway_netns(lambda: flood_with_peer_inside(steer=False))
    assert priority == []
    assert sum(source == PEER for source, _, _ in general) < 8 * len(range(1_000, 20_000, 2_500))
