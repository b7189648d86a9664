"""The UDP port-434 socket on loopback (no root): payload, sender and destination of each datagram."""

from __future__ import annotations

import asyncio
import socket
from ipaddress import IPv4Address

from agents.runtime.udp import ADDRESS_CACHE_SIZE, MobileIpSocket, Received

LOOPBACK = IPv4Address("127.0.0.1")


async def _receive(count: int) -> tuple[list[Received], int]:
    sock = MobileIpSocket(0, LOOPBACK)
    received: list[Received] = []
    sock.start(asyncio.get_running_loop(), received.append)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind((str(LOOPBACK), 0))
            for index in range(count):
                peer.sendto(bytes([index]), (str(LOOPBACK), sock.port))
            for _ in range(200):
                if len(received) == count:
                    break
                await asyncio.sleep(0.01)
            return received, peer.getsockname()[1]
    finally:
        sock.close()


def test_datagrams_carry_sender_and_destination_and_share_address_objects() -> None:
    """A binding keeps its request's source until the next renewal: datagrams from one peer reuse one
    address object instead of each parsing (and keeping) a new one."""
    received, port = asyncio.run(_receive(3))
    assert [item.payload for item in received] == [b"\x00", b"\x01", b"\x02"]
    assert all(item.source == (LOOPBACK, port) and item.destination == LOOPBACK for item in received)
    assert received[0].source[0] is received[2].source[0]
    assert received[0].destination is received[2].destination


def test_the_address_cache_is_bounded() -> None:
    sock = MobileIpSocket(0, LOOPBACK)
    try:
        for index in range(ADDRESS_CACHE_SIZE + 10):
            assert sock._address(str(IPv4Address(0x0A000000 + index))) == IPv4Address(0x0A000000 + index)
        assert len(sock._addresses) <= ADDRESS_CACHE_SIZE
    finally:
        sock.close()
