"""Gratuitous ARP (RFC 5944 §4.6) sent as a raw Ethernet frame on an AF_PACKET socket.

A gratuitous ARP updates every neighbour's cache entry for an IPv4 address: the sender and target
protocol addresses are both that address, the sender hardware address is the link-layer address the
caches should hold, and in the reply form the target hardware address repeats it (RFC 5944 §4.6).
The home agent sends one for an away mobile node's home address with its own MAC (so neighbours send
to the HA, which proxies ARP for it), and the MN's MAC again when the MN returns home.

Proxy ARP itself needs no userspace code: the kernel answers for NTF_PROXY neighbour entries (see
:meth:`agents.net.netlink.Netlink.add_proxy_neighbour`).
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
import time
from ipaddress import IPv4Address

logger = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
ARP_REQUEST = 1
ARP_REPLY = 2
SIOCGIFHWADDR = 0x8927
BROADCAST_MAC = b"\xff" * 6
_ARP = struct.Struct("!HHBBH6s4s6s4s")


def parse_mac(text: str) -> bytes:
    """``aa:bb:cc:dd:ee:ff`` → 6 bytes (ValueError otherwise)."""
    parts = text.split(":")
    if len(parts) != 6 or not all(len(part) == 2 for part in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(part, 16) for part in parts)


def interface_mac(interface: str) -> bytes:
    """The interface's link-layer address (SIOCGIFHWADDR; sysfs may show another namespace)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return _socket_mac(sock, interface)


def gratuitous_arp_frame(
    address: IPv4Address, hardware_address: bytes, *, reply: bool = False, source_mac: bytes | None = None
) -> bytes:
    """A broadcast Ethernet frame carrying a gratuitous ARP Request (default) or Reply for ``address``.

    RFC 5944 §4.6: sender and target protocol address = ``address``; sender hardware address =
    ``hardware_address``; in a Reply the target hardware address is ``hardware_address`` too, in a
    Request it is unused (zero). ``source_mac`` (Ethernet source) defaults to ``hardware_address``.
    """
    if len(hardware_address) != 6:
        raise ValueError("an Ethernet hardware address is 6 bytes")
    target_hardware = hardware_address if reply else bytes(6)
    arp = _ARP.pack(
        ARPHRD_ETHER,
        ETH_P_IP,
        6,
        4,
        ARP_REPLY if reply else ARP_REQUEST,
        hardware_address,
        address.packed,
        target_hardware,
        address.packed,
    )
    ethernet = BROADCAST_MAC + (source_mac or hardware_address) + struct.pack("!H", ETH_P_ARP)
    return ethernet + arp


def send_gratuitous_arp(
    interface: str,
    address: IPv4Address,
    hardware_address: str | bytes | None = None,
    *,
    reply: bool = False,
    count: int = 1,
    interval: float = 0.0,
) -> int:
    """Broadcast ``count`` gratuitous ARPs for ``address`` on ``interface``; returns frames sent.

    ``hardware_address`` None announces the interface's own MAC (the HA taking over a home address);
    pass the mobile node's MAC when it returns home. RFC 5944 §4.6 allows a few retransmissions;
    with ``count`` > 1 this sleeps ``interval`` seconds between frames (blocking: from asyncio, send
    one at a time from a timer instead). A one-off: use :class:`GratuitousArpSender` to send many.
    """
    with GratuitousArpSender(interface) as sender:
        return sender.send(address, hardware_address, reply=reply, count=count, interval=interval)


class GratuitousArpSender:
    """Gratuitous ARPs on one interface through one AF_PACKET socket, kept open between sends.

    Closing an AF_PACKET socket waits for a kernel RCU grace period (milliseconds), so a socket per
    frame costs far more than the frame; a home agent sends one per new binding (RFC 5944 §4.6). The
    socket is bound with protocol 0, so it never receives (nothing queues up on it); each frame is sent
    as ETH_P_ARP. The socket is opened in the network namespace of the thread that creates the sender
    (later, at a send, if the interface is not there yet). The interface's MAC is read at every send,
    and a send that fails closes the socket (the interface may have gone) so the next one reopens it.
    """

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self._sock: socket.socket | None = None
        try:
            self._socket()
        except OSError as error:
            logger.debug("gratuitous ARP socket on %s not opened yet: %s", interface, error)

    def send(
        self,
        address: IPv4Address,
        hardware_address: str | bytes | None = None,
        *,
        reply: bool = False,
        count: int = 1,
        interval: float = 0.0,
    ) -> int:
        """As :func:`send_gratuitous_arp`."""
        sock = self._socket()
        try:
            own_mac = _socket_mac(sock, self.interface)
            announced = _announced_mac(own_mac, hardware_address)
            frame = gratuitous_arp_frame(address, announced, reply=reply, source_mac=own_mac)
            for attempt in range(count):
                if attempt:
                    time.sleep(interval)
                sock.sendto(frame, (self.interface, ETH_P_ARP))
        except OSError:
            self.close()
            raise
        mac = announced.hex(":")
        logger.info("gratuitous ARP %s is-at %s on %s (x%d)", address, mac, self.interface, count)
        return count

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            try:
                sock.bind((self.interface, 0))
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def close(self) -> None:
        """Close the socket (the next send opens a new one)."""
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.close()

    def __enter__(self) -> GratuitousArpSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _socket_mac(sock: socket.socket, interface: str) -> bytes:
    """SIOCGIFHWADDR through an open socket (any family answers it)."""
    return fcntl.ioctl(sock, SIOCGIFHWADDR, struct.pack("40s", interface.encode()))[18:24]


def _announced_mac(own_mac: bytes, hardware_address: str | bytes | None) -> bytes:
    if hardware_address is None:
        return own_mac
    return parse_mac(hardware_address) if isinstance(hardware_address, str) else hardware_address
