"""The packet engine of :mod:`agents.datapath.userspace`: TUN device, raw sockets, a thread per direction.

Outbound, one thread reads packets the kernel routed into the TUN interface, asks the table for the
paths (:mod:`agents.datapath.tables`), encapsulates and sends each copy on an ``IPPROTO_RAW`` socket
(IP_HDRINCL). Inbound, one thread per protocol (4, 41, 47, 55) blocks on a raw socket, decapsulates,
applies the acceptance check, and writes accepted inner packets to the TUN so the kernel delivers or
forwards them. Encapsulation rules are those of :mod:`agents.mip.wire.tunnel`; for the common cases
(one IP-in-IP or IPv6-in-IPv4 header, equal inner/outer TOS on the way in) an inlined fast path
produces the same bytes (tests/unit/test_datapath_tables.py checks it against ``tunnel.py``), leaving
the header checksum, total length and identification to the kernel (raw(7): always filled in with
IP_HDRINCL when zero).

TTL / hop limit: the tunnel is one hop (RFC 4213 §3.3, RFC 2003 §3.1). The kernel already decrements
it when it forwards a packet into the TUN (encapsulator side) and again when it forwards a packet
written to the TUN (decapsulator side); locally originated or delivered packets are not decremented.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from agents.datapath.base import Counters, DropCallback, DropEvent, DropReason
from agents.datapath.tables import NO_PATHS, PROTO_UDP, Hop, Path
from agents.mip.wire.ecn import DscpModel, EcnMode, ingress_table
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.ip import FLAG_DONT_FRAGMENT, PROTO_IPIP, PROTO_IPV6, internet_checksum
from agents.mip.wire.tunnel import (
    DEFAULT_OUTER_TTL,
    HopLimitExceeded,
    check_static_tunnel_mtu,
    decapsulate,
    encapsulate,
)
from agents.net.tun import TunDevice

logger = logging.getLogger(__name__)

RECEIVE_PROTOCOLS = (4, 41, 47, 55)
BUFFER_SIZE = 65535
SOCKET_BUFFER = 4 << 20
ERROR_PAUSE = 0.01
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32


@dataclass(frozen=True)
class TunnelOptions:
    """Per-datapath settings; the defaults follow RFC 4213 §3.2 and RFC 6040 / RFC 2983."""

    mtu: int = 1476
    """IPv4 MTU of the tunnel interface: 1500 − 24, so the kernel itself enforces DF / sends ICMP
    "fragmentation needed" for every encapsulation (IP-in-IP 20, minimal ≤ 12, GRE 24 bytes); a
    tunnel may use a smaller MTU than the path allows (RFC 2003 §4)."""
    ipv6_mtu: int = 1280
    """Static IPv6 tunnel MTU, 1280–1480 (RFC 4213 §3.2)."""
    underlay_mtu: int = 1500
    """Largest outer packet; bigger ones (inner DF clear) are fragmented here."""
    ttl: int = DEFAULT_OUTER_TTL
    ecn_mode: EcnMode = EcnMode.NORMAL
    dscp_model: DscpModel = DscpModel.UNIFORM
    txqueuelen: int = 1000
    fast_path: bool = True

    def __post_init__(self) -> None:
        check_static_tunnel_mtu(self.ipv6_mtu)
        if not 576 <= self.mtu <= self.underlay_mtu:
            raise ValueError(f"tunnel MTU {self.mtu} must be 576..{self.underlay_mtu}")


class _Stats:
    """Counters owned by one thread (summed on demand, so no locking on the packet path)."""

    __slots__ = ("bytes", "drops", "outbound", "packets")

    def __init__(self, outbound: bool) -> None:
        self.outbound = outbound
        self.packets = 0
        self.bytes = 0
        self.drops: dict[str, int] = {}


class Table(Protocol):
    """What the engine needs from a table (HomeAgentTable and MobileNodeTable both fit).

    ``ipv4_routes[packet[ipv4_key_offset:+4]]`` must equal ``ipv4_paths(source, destination)``; it
    spares the per-packet code a method call.
    """

    ipv4_key_offset: int
    ipv4_routes: dict[bytes, tuple[Path, ...]]

    def ipv4_paths(self, source: bytes, destination: bytes) -> tuple[Path, ...]: ...
    def ipv6_paths(self, source: bytes, destination: bytes) -> tuple[Path, ...]: ...
    def check_ipv4(self, outer_source: bytes, protocol: int, inner_source: bytes) -> DropReason | None: ...
    def check_ipv6(
        self, outer_source: bytes, protocol: int, inner_source: bytes, nested: bool = False
    ) -> DropReason | None: ...
    def decapsulate_again(self, inner_source: bytes, inner_destination: bytes) -> bool: ...
    def check_udp(self, outer: bytes, version: int, inner_source: bytes) -> DropReason | None: ...


TUNNEL_DATA = 4
"""MIP Tunnel Data message type (RFC 3519 §3.3): type, Next Header, 2 reserved bytes, then the packet."""
UDP_SEND_WAIT = 0.01
"""Seconds a UDP tunnel packet may wait for room in the (shared, non-blocking) socket's send buffer."""


class PacketEngine:
    """Owns the TUN device, the raw sockets and the threads. The table is read once per packet, lock-free:
    a mobile node swaps in a new one whole, a home agent changes its one in place (:mod:`.tables`)."""

    def __init__(
        self,
        interface_name: str,
        table: Table,
        options: TunnelOptions,
        on_drop: DropCallback | None = None,
        underlay_interface: str | None = None,
        udp_socket: socket.socket | None = None,
    ) -> None:
        self.options = options
        self.table = table
        self._on_drop = on_drop
        self._udp = udp_socket
        """The agent's UDP 434 socket (RFC 3519): Tunnel Data leaves from its port; None: no UDP hops."""
        self._udp_stats: _Stats | None = None
        self._udp_local_end: tuple[bytes, int | None] | None = None
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._stats: list[_Stats] = []
        self._ingress_tos = ingress_table(options.ecn_mode, options.dscp_model)
        self._fast = options.fast_path
        self._open_io(interface_name, underlay_interface)

    def _open_io(self, interface_name: str, underlay_interface: str | None) -> None:
        """Create the TUN device and the raw sockets (tests override this with fakes)."""
        self.tun = TunDevice(interface_name)
        self._sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._receivers = {
            protocol: socket.socket(socket.AF_INET, socket.SOCK_RAW, protocol)
            for protocol in RECEIVE_PROTOCOLS
        }
        _enlarge(self._sender, SO_SNDBUFFORCE, socket.SO_SNDBUF)
        for receiver in self._receivers.values():
            _enlarge(receiver, SO_RCVBUFFORCE, socket.SO_RCVBUF)
        if underlay_interface:
            self._sender.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, underlay_interface.encode())

    def start(self) -> None:
        """Start the outbound thread and one inbound thread per raw socket."""
        self._spawn(f"{self.tun.name}-out", self._outbound_loop)
        for protocol, receiver in self._receivers.items():
            self._spawn(f"{self.tun.name}-in{protocol}", self._inbound_loop, receiver)

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self, delete_interface: Callable[[], object]) -> None:
        """Stop the threads: ``delete_interface`` must delete the TUN link (which wakes its reader)."""
        self._stopping = True
        try:
            delete_interface()
        finally:
            for receiver in self._receivers.values():
                with contextlib.suppress(OSError):  # raises ENOTCONN, but still wakes recv()
                    receiver.shutdown(socket.SHUT_RDWR)
            for thread in self._threads:
                thread.join(timeout=5)
                if thread.is_alive():
                    logger.error("datapath thread %s did not stop", thread.name)
            for sock in (self._sender, *self._receivers.values()):
                sock.close()
            self.tun.close()

    def counters(self) -> Counters:
        """Sum of the per-thread counters."""
        encapsulated = [stats for stats in self._stats if stats.outbound]
        decapsulated = [stats for stats in self._stats if not stats.outbound]
        drops: dict[str, int] = {}
        for stats in self._stats:
            for reason, count in list(stats.drops.items()):
                drops[reason] = drops.get(reason, 0) + count
        return Counters(
            sum(s.packets for s in encapsulated),
            sum(s.bytes for s in encapsulated),
            sum(s.packets for s in decapsulated),
            sum(s.bytes for s in decapsulated),
            drops,
        )

    def _new_stats(self, outbound: bool) -> _Stats:
        stats = _Stats(outbound)
        self._stats.append(stats)
        return stats

    # -- outbound: TUN → network ---------------------------------------------------------

    def _outbound_loop(self) -> None:
        stats = self._new_stats(outbound=True)
        buffer = bytearray(BUFFER_SIZE)
        view = memoryview(buffer)
        header = bytearray(20)
        templates: dict[Hop, tuple[bytes, tuple[str, int]]] = {}
        fd, readv = self.tun.fd, os.readv
        while not self._stopping:
            try:
                length = readv(fd, [buffer])
            except OSError as error:
                if self._stopping or error.errno in (errno.EFAULT, errno.EBADF):
                    break
                logger.warning("reading %s: %s", self.tun.name, error)
                time.sleep(ERROR_PAUSE)  # never spin on a persistent error
                continue
            self._outbound(buffer, view, length, header, templates, stats)

    def _outbound(
        self,
        buffer: bytearray,
        view: memoryview,
        length: int,
        header: bytearray,
        templates: dict[Hop, tuple[bytes, tuple[str, int]]],
        stats: _Stats,
    ) -> None:
        table, version = self.table, buffer[0] >> 4
        if version == 4 and length >= 20:
            offset = table.ipv4_key_offset
            paths = table.ipv4_routes.get(view[offset : offset + 4].tobytes(), NO_PATHS)
            tos, flags, limit, fast_protocol = buffer[1], buffer[6] & 0x40, buffer[8], PROTO_IPIP
        elif version == 6 and length >= 40:
            paths = table.ipv6_paths(view[8:24].tobytes(), view[24:40].tobytes())
            tos, flags, limit = ((buffer[0] & 0x0F) << 4) | (buffer[1] >> 4), 0, buffer[7]
            fast_protocol = PROTO_IPV6
        else:
            self._count_drop(stats, DropReason.MALFORMED)
            return
        if not paths:
            self._count_drop(stats, DropReason.NO_TUNNEL)
            return
        stats.packets += 1
        stats.bytes += length
        for path in paths:
            hop = path[0]
            if hop.protocol == PROTO_UDP:
                self._send_udp(hop, view[:length], version, stats)
                continue
            if hop.protocol == fast_protocol and limit and self._fast:
                template, address = templates.get(hop) or templates.setdefault(hop, self._template(hop))
                header[:] = template
                header[1] = self._ingress_tos[tos]
                header[6] = flags
                try:
                    if len(path) == 1:
                        self._sender.sendmsg([header, view[:length]], (), 0, address)
                        continue
                    if len(path) == 2 and path[1].protocol == PROTO_IPIP:
                        self._send_nested(path[1], header, view[:length], templates)
                        continue
                except OSError as error:
                    if error.errno != errno.EMSGSIZE:
                        self._count_drop(stats, DropReason.SEND_FAILED)
                        continue
            self._outbound_slow(view[:length].tobytes(), path, stats)

    def _send_udp(self, hop: Hop, packet: memoryview, version: int, stats: _Stats) -> None:
        """RFC 3519 §3.3: MIP Tunnel Data (Next Header 4, or 41 for IPv6 per RFC 5454 §3.9) to the hop's
        address and port from the agent's UDP socket (a NAT maps that port, §4.2)."""
        if self._udp is None:
            self._count_drop(stats, DropReason.SEND_FAILED)
            return
        header = bytes((TUNNEL_DATA, PROTO_IPIP if version == 4 else PROTO_IPV6, 0, 0))
        address = (socket.inet_ntoa(hop.destination), hop.port)
        for _ in range(2):
            try:
                self._udp.sendmsg([header, packet], (), 0, address)
                return
            except BlockingIOError:
                select.select([], [self._udp], [], UDP_SEND_WAIT)
            except OSError as error:
                logger.debug("UDP tunnel send to %s failed: %s", address, error)
                break
        self._count_drop(stats, DropReason.SEND_FAILED)

    def receive_udp(self, payload: bytes, source: bytes, port: int, destination: bytes | None = None) -> None:
        """One Tunnel Data message from ``source``:``port`` (read by the agent's UDP 434 socket): check the
        outer address and port and the inner source (RFC 3519 §4.8), then deliver the inner packet."""
        stats = self._udp_stats
        if stats is None:
            stats = self._udp_stats = self._new_stats(outbound=False)
        inner = payload[4:]
        version = inner[0] >> 4 if inner else 0
        expected = {PROTO_IPIP: 4, PROTO_IPV6: 6}.get(payload[1]) if len(payload) > 1 else None
        local, local_port = self._udp_local()
        outer = _udp_outer(source, destination or local)
        if len(payload) < 4 or payload[0] != TUNNEL_DATA or version not in (4, 6) or len(inner) < 20:
            reason: DropReason | None = DropReason.MALFORMED
        elif expected != version:
            reason = DropReason.ENCAPSULATION  # Next Header not the negotiated mode (RFC 3519 §3.3)
        elif version == 6 and len(inner) < 40:
            reason = DropReason.MALFORMED
        else:
            source_bytes = inner[12:16] if version == 4 else inner[8:24]
            reason = self.table.check_udp(source + port.to_bytes(2, "big"), version, source_bytes)
        if reason is None:
            self._deliver(inner, stats)
        else:
            self._inbound_drop(stats, reason, outer, inner, (port, local_port))

    def _udp_local(self) -> tuple[bytes, int | None]:
        """The UDP socket's own address and port (the outer destination of Tunnel Data it reads); 0.0.0.0
        when it is bound to every address, port None without a socket. Asked once (drops come in floods)."""
        if self._udp_local_end is None:
            self._udp_local_end = bytes(4), None
            if self._udp is not None:
                try:
                    address, port = self._udp.getsockname()[:2]
                    self._udp_local_end = socket.inet_aton(address), int(port)
                except OSError:
                    pass
        return self._udp_local_end

    def _send_nested(
        self,
        outer_hop: Hop,
        middle: bytearray,
        inner: memoryview,
        templates: dict[Hop, tuple[bytes, tuple[str, int]]],
    ) -> None:
        """RFC 5454 code 0: ``middle`` (already filled but for length and checksum) goes inside an
        IP-in-IP header to the care-of address; only the outermost header is left to the kernel."""
        middle[2:4] = (len(inner) + 20).to_bytes(2, "big")
        middle[10:12] = internet_checksum(middle).to_bytes(2, "big")
        template, address = templates.get(outer_hop) or templates.setdefault(
            outer_hop, self._template(outer_hop)
        )
        outer = bytearray(template)
        outer[1] = self._ingress_tos[middle[1]]
        outer[6] = middle[6] & 0x40
        self._sender.sendmsg([outer, middle, inner], (), 0, address)

    def _template(self, hop: Hop) -> tuple[bytes, tuple[str, int]]:
        template = bytes([0x45, 0, 0, 0, 0, 0, 0, 0, self.options.ttl, hop.protocol, 0, 0])
        return template + hop.source + hop.destination, (socket.inet_ntoa(hop.destination), 0)

    def _outbound_slow(self, packet: bytes, path: Path, stats: _Stats) -> None:
        options = self.options
        try:
            for hop in path:
                packet = encapsulate(
                    packet,
                    hop.source,
                    hop.destination,
                    hop.protocol,
                    ttl=options.ttl,
                    ecn_mode=options.ecn_mode,
                    dscp_model=options.dscp_model,
                )
        except HopLimitExceeded:
            self._count_drop(stats, DropReason.HOP_LIMIT)
            return
        except ValueError as error:
            logger.debug("cannot encapsulate: %s", error)
            self._count_drop(stats, DropReason.MALFORMED)
            return
        address = (socket.inet_ntoa(path[-1].destination), 0)
        try:
            pieces = fragment_ipv4(packet, options.underlay_mtu)
        except ValueError:
            self._count_drop(stats, DropReason.SEND_FAILED)  # DF set: RFC 2003 §4 leaves it to PMTU
            return
        for piece in pieces:
            try:
                self._sender.sendto(piece, address)
            except OSError as error:
                logger.debug("send to %s failed: %s", address[0], error)
                self._count_drop(stats, DropReason.SEND_FAILED)
                return

    # -- inbound: network → TUN ----------------------------------------------------------

    def _inbound_loop(self, receiver: socket.socket) -> None:
        stats = self._new_stats(outbound=False)
        buffer = bytearray(BUFFER_SIZE)
        view = memoryview(buffer)
        while not self._stopping:
            try:
                length = receiver.recv_into(buffer)
            except OSError as error:
                if self._stopping:
                    break
                logger.warning("raw receive: %s", error)
                time.sleep(ERROR_PAUSE)
                continue
            if length == 0:  # shut down
                break
            if not (self._fast and self._inbound_fast(buffer, view, length, stats)):
                self._inbound_slow(bytes(view[:length]), stats)

    def _inbound_fast(self, buffer: bytearray, view: memoryview, length: int, stats: _Stats) -> bool:
        """IP-in-IP / IPv6-in-IPv4 with equal TOS outside and inside: the RFC 6040 and RFC 2983 egress
        rules leave such an inner packet unchanged, so it is delivered as is. False: use the slow path.
        (The kernel has already verified the outer header and reassembled fragments.)"""
        protocol, tos, table = buffer[9], buffer[1], self.table
        inner = (buffer[0] & 0x0F) << 2
        size = length - inner
        if protocol == PROTO_IPIP:
            if (
                size < 20
                or buffer[inner] >> 4 != 4
                or buffer[inner + 1] != tos
                or (buffer[inner + 2] << 8 | buffer[inner + 3]) != size
            ):
                return False
            reason = table.check_ipv4(
                view[12:16].tobytes(), protocol, view[inner + 12 : inner + 16].tobytes()
            )
            if (
                reason is None
                and buffer[inner + 9] == PROTO_IPV6
                and table.decapsulate_again(
                    view[inner + 12 : inner + 16].tobytes(), view[inner + 16 : inner + 20].tobytes()
                )
            ):
                return self._inbound_fast_nested(buffer, view, length, inner, stats)
        elif protocol == PROTO_IPV6:
            if not _plain_ipv6(buffer, inner, size, tos):
                return False
            reason = table.check_ipv6(view[12:16].tobytes(), protocol, view[inner + 8 : inner + 24].tobytes())
        else:
            return False
        if reason is None:
            self._deliver(view[inner:length], stats)
        else:
            self._inbound_drop(stats, reason, view[:length].tobytes(), view[inner:length].tobytes())
        return True

    def _inbound_fast_nested(
        self, buffer: bytearray, view: memoryview, length: int, middle: int, stats: _Stats
    ) -> bool:
        """RFC 5454 code 0: IPv6-in-IPv4 from the home address inside the care-of tunnel."""
        inner = middle + ((buffer[middle] & 0x0F) << 2)
        if (
            not _plain_ipv6(buffer, inner, length - inner, buffer[1])
            or internet_checksum(view[middle:inner]) != 0
        ):
            return False
        source = view[middle + 12 : middle + 16].tobytes()
        reason = self.table.check_ipv6(source, PROTO_IPV6, view[inner + 8 : inner + 24].tobytes(), True)
        if reason is None:
            self._deliver(view[inner:length], stats)
        else:
            self._inbound_drop(stats, reason, view[middle:length].tobytes(), view[inner:length].tobytes())
        return True

    def _inbound_slow(self, packet: bytes, stats: _Stats, level: int = 0) -> None:
        try:
            result = decapsulate(packet, dscp_model=self.options.dscp_model)
        except DecodeError as error:
            logger.debug("undecodable tunnel packet: %s", error)
            self._inbound_drop(stats, DropReason.MALFORMED, packet, None)
            return
        if result is None:
            self._inbound_drop(stats, DropReason.ECN, packet, None)
            return
        inner, source = result.inner, result.outer_source.packed
        if result.inner_version == 4:
            reason = self.table.check_ipv4(source, result.protocol, inner[12:16])
            if (
                reason is None
                and level == 0
                and inner[9] == PROTO_IPV6
                and self.table.decapsulate_again(inner[12:16], inner[16:20])
            ):
                self._inbound_slow(inner, stats, level + 1)
                return
        else:
            reason = self.table.check_ipv6(source, result.protocol, inner[8:24], level > 0)
        if reason is not None:
            self._inbound_drop(stats, reason, packet, inner)
        else:
            self._deliver(inner, stats)

    def _deliver(self, inner: bytes | memoryview, stats: _Stats) -> None:
        try:
            os.write(self.tun.fd, inner)
        except OSError as error:
            if not self._stopping:
                logger.debug("writing to %s: %s", self.tun.name, error)
                self._count_drop(stats, DropReason.SEND_FAILED)
            return
        stats.packets += 1
        stats.bytes += len(inner)

    # -- drops -----------------------------------------------------------------------------

    @staticmethod
    def _count_drop(stats: _Stats, reason: DropReason) -> None:
        stats.drops[reason.value] = stats.drops.get(reason.value, 0) + 1

    def _inbound_drop(
        self,
        stats: _Stats,
        reason: DropReason,
        outer: bytes,
        inner: bytes | None,
        ports: tuple[int | None, int | None] = (None, None),
    ) -> None:
        """Count, then report to ``on_drop`` (the runtime's security log; RFC 3024 §4.3.2); ``ports``: the
        outer UDP source and destination ports of a Tunnel Data message (RFC 3519 §4.8)."""
        self._count_drop(stats, reason)
        if self._on_drop is None or len(outer) < 20:
            return
        try:
            self._on_drop(
                DropEvent(
                    reason,
                    outer[9],
                    IPv4Address(outer[12:16]),
                    IPv4Address(outer[16:20]),
                    *_inner_addresses(inner),
                    *ports,
                )
            )
        except Exception:
            logger.exception("on_drop callback failed")


def _udp_outer(source: bytes, destination: bytes) -> bytes:
    """A 20-byte stand-in outer header (protocol 17, the sender's and the socket's addresses) for drop
    reports; the ports travel beside it (:class:`agents.datapath.base.DropEvent`)."""
    return bytes(9) + bytes((PROTO_UDP,)) + bytes(2) + source + destination


def _plain_ipv6(buffer: bytearray, start: int, size: int, tos: int) -> bool:
    """A whole IPv6 packet at ``start`` whose Traffic Class equals ``tos``."""
    return (
        size >= 40
        and buffer[start] >> 4 == 6
        and ((buffer[start] & 0x0F) << 4 | buffer[start + 1] >> 4) == tos
        and (buffer[start + 4] << 8 | buffer[start + 5]) + 40 == size
    )


def _inner_addresses(inner: bytes | None) -> tuple[str | None, str | None]:
    if inner and inner[0] >> 4 == 4 and len(inner) >= 20:
        return str(IPv4Address(inner[12:16])), str(IPv4Address(inner[16:20]))
    if inner and inner[0] >> 4 == 6 and len(inner) >= 40:
        return str(IPv6Address(inner[8:24])), str(IPv6Address(inner[24:40]))
    return None, None


def _enlarge(sock: socket.socket, forced: int, plain: int) -> None:
    """Big socket buffers absorb bursts; the *FORCE options pass rmem_max/wmem_max (CAP_NET_ADMIN)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, forced, SOCKET_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)


def fragment_ipv4(packet: bytes, mtu: int) -> list[bytes]:
    """Split an outer IPv4 packet into fragments of at most ``mtu`` bytes (RFC 791 §3.2).

    Returns ``[packet]`` when it fits. ValueError if DF is set. Fragments share the packet's
    Identification, or a fresh non-zero one if it was 0 (the kernel would number each piece anew).
    """
    if len(packet) <= mtu:
        return [packet]
    if packet[6] & (FLAG_DONT_FRAGMENT << 5):
        raise ValueError("DF set on a packet larger than the MTU")
    header_length = (packet[0] & 0x0F) * 4
    header, payload = bytearray(packet[:header_length]), packet[header_length:]
    step = (mtu - header_length) // 8 * 8
    identification = int.from_bytes(packet[4:6], "big") or int.from_bytes(os.urandom(2), "big") or 1
    offset0 = int.from_bytes(packet[6:8], "big") & 0x1FFF
    more0 = packet[6] & 0x20
    fragments = []
    for start in range(0, len(payload), step):
        chunk = payload[start : start + step]
        more = 0x2000 if start + step < len(payload) or more0 else 0
        header[2:4] = (header_length + len(chunk)).to_bytes(2, "big")
        header[4:6] = identification.to_bytes(2, "big")
        header[6:8] = (more | (offset0 + start // 8)).to_bytes(2, "big")
        header[10:12] = b"\0\0"
        header[10:12] = internet_checksum(header).to_bytes(2, "big")
        fragments.append(bytes(header) + chunk)
    return fragments
