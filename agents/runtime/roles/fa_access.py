"""The foreign agent's access link: frames in and out on the link that faces the visitors.

* A packet socket (AF_PACKET, filtered in the kernel to ICMP type 10 and UDP to port 434, so the link's
  other traffic never wakes the agent) sniffs incoming IPv4 on the access interface: Agent Solicitations
  (ICMP type 10, RFC 5944 §2.2) are reported with the solicitor's link-layer address, and the link-layer
  source of each UDP-434 request is remembered so the relay knows the visitor's MAC (RFC 5944 §3.7.2.3).
* A raw ICMP socket bound to the interface sends Agent Advertisements with IP TTL 1 (RFC 5944 §2.1)
  to 224.0.0.1 or 255.255.255.255.
* Unicast answers to a visitor whose link-layer address is known (advertisements, registration replies,
  decapsulated packets) are sent as whole Ethernet frames to that address: the FA never ARPs for a
  home address on the visited link (RFC 5944 §3.7.3.2, §4.2.2).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from ipaddress import IPv4Address

from agents.mip.wire.ip import internet_checksum
from agents.net.packetfilter import attach, ipv4_icmp_type_or_udp_port_program

logger = logging.getLogger(__name__)

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
MOBILE_IP_PORT = 434
ICMP_SOLICITATION = 10
SOL_RAW = 255
ICMP_FILTER = 1
_MAC_CACHE_LIMIT = 1024

SolicitationHandler = Callable[[IPv4Address, bytes], None]


def ipv4_packet(
    source: IPv4Address, destination: IPv4Address, protocol: int, payload: bytes, ttl: int
) -> bytes:
    """An IPv4 header (RFC 791 §3.1, no options, DF clear) in front of ``payload``."""
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, ttl, protocol, 0, source.packed, destination.packed
    )
    checksum = internet_checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + payload


def udp_datagram(source_port: int, destination_port: int, payload: bytes) -> bytes:
    """A UDP header with checksum 0 (allowed over IPv4, RFC 768) in front of ``payload``."""
    return struct.pack("!HHHH", source_port, destination_port, 8 + len(payload), 0) + payload


class AccessLink:
    """Sniffing, advertising and link-addressed sending on one access interface."""

    def __init__(self, interface: str, address: IPv4Address) -> None:
        self.interface = interface
        self.address = address
        self.index = socket.if_nametoindex(interface)
        self.macs: dict[tuple[IPv4Address, int], bytes] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.packet = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        self.icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        try:
            attach(self.packet, ipv4_icmp_type_or_udp_port_program(ICMP_SOLICITATION, MOBILE_IP_PORT))
            self.packet.bind((interface, ETH_P_IP))
            self.packet.setblocking(False)
            self.frames = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
            self._configure_icmp()
        except OSError:
            self.close()
            raise

    def _configure_icmp(self) -> None:
        sock = self.icmp
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        mreqn = struct.pack("=4s4si", bytes(4), self.address.packed, self.index)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        # sending only: solicitations come from the packet socket, so filter every ICMP type out
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", 0xFFFFFFFF))
        # 224.0.0.11 (mobile agents, RFC 5944 §2.2) must be joined for solicitations sent there.
        group = struct.pack("=4s4si", bytes([224, 0, 0, 11]), bytes(4), self.index)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)

    def start(self, loop: asyncio.AbstractEventLoop, on_solicitation: SolicitationHandler) -> None:
        """Report each Agent Solicitation heard on the link as (source, link-layer source)."""
        self._loop = loop
        loop.add_reader(self.packet.fileno(), self.drain, on_solicitation)

    def drain(self, on_solicitation: SolicitationHandler | None = None) -> None:
        """Read every queued frame: learn UDP-434 senders' MACs, report solicitations."""
        for _ in range(256):
            try:
                data, address = self.packet.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            if address[2] == PACKET_OUTGOING or len(data) < 20 or data[0] >> 4 != 4:
                continue
            self._inspect(data, bytes(address[4][:6]), on_solicitation)

    def _inspect(self, data: bytes, mac: bytes, on_solicitation: SolicitationHandler | None) -> None:
        header = (data[0] & 0x0F) * 4
        protocol, source = data[9], IPv4Address(data[12:16])
        if protocol == socket.IPPROTO_UDP and len(data) >= header + 8:
            source_port, destination_port = struct.unpack_from("!HH", data, header)
            if destination_port == MOBILE_IP_PORT:
                if len(self.macs) >= _MAC_CACHE_LIMIT:
                    self.macs.clear()
                self.macs[(source, source_port)] = mac
            return
        solicitation = protocol == socket.IPPROTO_ICMP and data[header : header + 1] == b"\x0a"
        if solicitation and on_solicitation is not None:
            on_solicitation(source, mac)

    def mac_of(self, source: IPv4Address, port: int) -> bytes | None:
        """The link-layer source of the last UDP-434 datagram from (source, port) heard on this link."""
        self.drain()
        return self.macs.get((source, port))

    def send_icmp(self, payload: bytes, destination: IPv4Address) -> None:
        """An ICMP message with TTL 1 out the access interface (RFC 5944 §2.1)."""
        try:
            self.icmp.sendto(payload, (str(destination), 0))
        except OSError as exc:
            logger.warning("advertisement to %s failed: %s", destination, exc.strerror)

    def send_frame(self, packet: bytes, mac: bytes) -> None:
        """One IPv4 packet to ``mac`` on the access link, no ARP."""
        try:
            self.frames.sendto(packet, (self.interface, ETH_P_IP, 0, 0, mac))
        except OSError as exc:
            logger.warning("frame to %s failed: %s", mac.hex(":"), exc.strerror)

    def send_udp(
        self, payload: bytes, destination: IPv4Address, port: int, mac: bytes, source: IPv4Address | None
    ) -> None:
        """A UDP-434 datagram to a visitor's link-layer address (RFC 5944 §3.7.3.2)."""
        datagram = udp_datagram(MOBILE_IP_PORT, port, payload)
        packet = ipv4_packet(source or self.address, destination, socket.IPPROTO_UDP, datagram, 64)
        self.send_frame(packet, mac)

    def send_icmp_to(self, payload: bytes, destination: IPv4Address, mac: bytes, ttl: int) -> None:
        """A unicast advertisement answering a solicitor whose link-layer address is known (RFC 1256 §5.5)."""
        self.send_frame(ipv4_packet(self.address, destination, socket.IPPROTO_ICMP, payload, ttl), mac)

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed() and self.packet.fileno() >= 0:
            self._loop.remove_reader(self.packet.fileno())
        for sock in (self.packet, self.icmp, getattr(self, "frames", None)):
            if sock is not None:
                sock.close()
