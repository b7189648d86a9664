"""The UDP port-434 socket of an agent (RFC 5944 §3.3): datagrams with their destination address in,
datagrams with a chosen source address and TTL out.

The state machines need the destination of each request (an FA tells broadcast from unicast; the HA checks
its own address) and choose the source and TTL of what they send (a mobile node's requests go from its
care-of address with TTL 255, RFC 3024 §3.2), so this uses recvmsg/sendmsg with IP_PKTINFO and IP_TTL
control messages instead of asyncio's datagram transports.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import NamedTuple

from agents.mip.wire.memo import remember
from agents.mip.wire.registration import HashedIPv4Address

logger = logging.getLogger(__name__)

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
MAX_DATAGRAM = 65535
_PKTINFO = struct.Struct("=I4s4s")  # ifindex, spec_dst, addr
_UNSPECIFIED = IPv4Address(0)
ADDRESS_CACHE_SIZE = 4096
BATCH = 64
"""Datagrams read per wakeup in arrival order (no priority function)."""
DRAIN_LIMIT = 8192
"""With a priority function, datagrams read per wakeup before serving them (the socket is drained)."""
SO_RCVBUFFORCE = 33


class Received(NamedTuple):
    """One datagram: payload, sender (address, port), the address it was sent to, arrival interface index
    (a tuple: one is made per datagram, issue 9)."""

    payload: bytes
    source: tuple[IPv4Address, int]
    destination: IPv4Address
    interface_index: int


class MobileIpSocket:
    """A non-blocking UDP socket bound to ``(address, port)``, reporting each datagram to a callback."""

    def __init__(
        self,
        port: int,
        address: IPv4Address | None = None,
        *,
        broadcast: bool = False,
        receive_buffer: int | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if receive_buffer:
                _set_receive_buffer(self.sock, receive_buffer)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:  # the home agent's steered pair (agents/runtime/steering.py)
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            if broadcast:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            self.sock.bind((str(address or IPv4Address(0)), port))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self._loop: asyncio.AbstractEventLoop | None = None
        self._addresses: dict[str | bytes, IPv4Address] = {}
        """Sender and destination addresses seen, as text or packed: a datagram from a known peer builds
        no new address objects (a renewal's source is kept in its binding until the next one)."""

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_datagram: Callable[[Received], None],
        first: Callable[[IPv4Address], bool] | None = None,
    ) -> None:
        """Call ``on_datagram`` from the event loop for every datagram that arrives.

        ``first`` (the home agent's known sources): each wakeup drains the socket (up to
        :data:`DRAIN_LIMIT`) and serves the datagrams whose source ``first`` accepts before the others,
        so a flood queued behind or around a mobile node's renewal cannot delay it past the flood's
        share of one batch, and the kernel buffer is emptied as fast as datagrams can be read.
        """
        self._loop = loop
        if first is None:
            loop.add_reader(self.sock.fileno(), self._readable, on_datagram)
        else:
            loop.add_reader(self.sock.fileno(), self._drain, on_datagram, first)

    def _readable(self, on_datagram: Callable[[Received], None]) -> None:
        for _ in range(BATCH):  # bounded batch, then let the loop run other work
            received = self.receive_one()
            if received is None:
                return
            if received is not _ERROR:
                on_datagram(received)

    def _drain(self, on_datagram: Callable[[Received], None], first: Callable[[IPv4Address], bool]) -> None:
        urgent: list[Received] = []
        rest: list[Received] = []
        for _ in range(DRAIN_LIMIT):
            received = self.receive_one()
            if received is None:
                break
            if received is not _ERROR:
                (urgent if first(received.source[0]) else rest).append(received)
        for received in urgent:
            on_datagram(received)
        for received in rest:
            on_datagram(received)

    def receive_one(self) -> Received | None:
        """The next datagram; None when the socket is empty; :data:`RECEIVE_ERROR` after a reported
        error."""
        try:
            data, ancillary, _flags, (host, port) = self.sock.recvmsg(MAX_DATAGRAM, socket.CMSG_SPACE(12))
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:  # e.g. ICMP port unreachable reported on the socket
            logger.debug("recvmsg: %s", exc)
            return _ERROR
        destination, index = _UNSPECIFIED, 0
        for level, kind, value in ancillary:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= _PKTINFO.size:
                index, _spec, addr = _PKTINFO.unpack_from(value)
                destination = self._address(addr)
        return Received(data, (self._address(host), port), destination, index)

    def _address(self, key: str | bytes) -> IPv4Address:
        """``IPv4Address(key)``, shared between datagrams (the cache is emptied when it gets large), with its
        hash made once (:class:`HashedIPv4Address`: the home agent looks a source up in several tables)."""
        address = self._addresses.get(key)
        if address is None:
            address = remember(self._addresses, key, HashedIPv4Address(key), ADDRESS_CACHE_SIZE)
        return address

    def send(
        self,
        payload: bytes,
        destination: IPv4Address,
        port: int,
        *,
        source: IPv4Address | None = None,
        ttl: int | None = None,
    ) -> bool:
        """Send one datagram; False (logged) when the kernel refuses it, e.g. no route."""
        ancillary = []
        if source is not None:
            ancillary.append((socket.IPPROTO_IP, IP_PKTINFO, _PKTINFO.pack(0, source.packed, bytes(4))))
        if ttl is not None:
            ancillary.append((socket.IPPROTO_IP, socket.IP_TTL, struct.pack("=i", ttl)))
        try:
            self.sock.sendmsg([payload], ancillary, 0, (str(destination), port))
        except OSError as exc:
            level = logging.DEBUG if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH) else logging.WARNING
            logger.log(level, "send to %s:%d failed: %s", destination, port, exc.strerror)
            return False
        return True

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


_ERROR = Received(b"", (_UNSPECIFIED, 0), _UNSPECIFIED, 0)
"""Marker: recvmsg reported an error (the loop goes on reading)."""
RECEIVE_ERROR = _ERROR


def _set_receive_buffer(sock: socket.socket, size: int) -> None:
    """A large receive buffer absorbs a burst; SO_RCVBUFFORCE passes rmem_max (CAP_NET_ADMIN)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
