"""The foreign agent's userspace datapath (design.md §4): IPv4-in-IPv4 (RFC 2003) between its care-of
address and each visitor's home agent, on the agent's asyncio loop. The decisions are
:mod:`agents.datapath.fa_tables`; this module only moves bytes.

* Forward: a raw IPPROTO_IPIP socket per care-of address receives the home agent's tunnel packets; an
  accepted inner packet goes out the access link to the visitor's link-layer address (RFC 5944 §4.2.2)
  — never by ARP for the home address.
* Reverse (T granted, direct delivery, RFC 3024 §5.1): a rule ``from <HoA> iif <access> lookup <table>``
  whose table routes everything into a TUN; the FA reads those packets and sends them IP-in-IP from the
  care-of address to the HA (RFC 3024 §4.3). IPv6 of a dual-stack MN is already IPv6-in-IPv4 from
  the home address (RFC 5454 §3.3.2), so the FA handles IPv4 only.
* Reverse, encapsulating delivery (extension 130, RFC 3024 §5.2): the visitor sends its packets IP-in-IP
  from its home address to the FA; a raw IPPROTO_IPIP socket on the access link receives them, and the
  inner packet is reverse tunnelled as above.

Counters and drop reports have the shape every role uses (:class:`~agents.datapath.base.Counters`,
:class:`~agents.datapath.base.DropEvent`): encapsulated = reverse tunnelled, decapsulated = delivered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network

from agents.datapath.base import Counters, DropCallback, DropEvent, DropReason, ForeignAgentDatapath
from agents.datapath.fa_handoff import LowLatencyDatapath
from agents.datapath.fa_tables import Delivery, ForeignAgentTable, VisitorRoute
from agents.mip.fa.llh_buffer import VisitorBuffers
from agents.net.netlink import Netlink
from agents.net.tun import TunDevice

__all__ = ["UserspaceForeignAgent", "VisitorRoute"]

logger = logging.getLogger(__name__)
MAX_PACKET = 65535
MAIN_TABLE = 254
BATCH = 64
FrameSender = Callable[[bytes, bytes], None]


class _Tally:
    """Running counts behind :class:`Counters` (one event loop writes them)."""

    def __init__(self) -> None:
        self.encapsulated_packets = self.encapsulated_bytes = 0
        self.decapsulated_packets = self.decapsulated_bytes = 0
        self.drops: dict[str, int] = {}

    def snapshot(self) -> Counters:
        return Counters(
            self.encapsulated_packets,
            self.encapsulated_bytes,
            self.decapsulated_packets,
            self.decapsulated_bytes,
            dict(self.drops),
        )


class UserspaceForeignAgent(LowLatencyDatapath, ForeignAgentDatapath):
    """Tunnel sockets, the reverse-tunnel TUN and its policy rules; :meth:`close` undoes everything. The
    RFC 4881 parts (the expected visitor's buffer, the edge tunnel) are :class:`LowLatencyDatapath`'s."""

    def __init__(
        self,
        care_ofs: tuple[IPv4Address, ...],
        send_frame: FrameSender,
        access_interface: str,
        *,
        tunnel_interface: str = "mip-fa",
        table: int = 110,
        rule_priority: int = 1100,
        on_drop: DropCallback | None = None,
    ) -> None:
        self.send_frame = send_frame
        self.access_interface = access_interface
        self.interface_name = tunnel_interface
        self.table, self.rule_priority = table, rule_priority
        self.on_drop = on_drop
        self.visitors = ForeignAgentTable()
        self.buffers = VisitorBuffers()
        self.on_visitor_packet: Callable[[IPv4Address], None] | None = None
        """Called with the home address of an expected visitor (RFC 4881) whose packet the access link
        just brought: the runtime reports the attachment, which flushes the buffer first."""
        self._buffer_timer: asyncio.TimerHandle | None = None
        self.bet_out, self.bet_in = {}, {}
        self.rules: dict[IPv4Address, int] = {}
        """Home address → the table its visitor rule sends it to (ours: reverse tunnel; main: plain)."""
        self.tally = _Tally()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.netlink = Netlink()
        self.sockets: dict[IPv4Address, socket.socket] = {}
        self.access_socket: socket.socket | None = None
        self.tun: TunDevice | None = None
        try:
            for address in care_ofs:
                self.sockets[address] = _tunnel_socket(address)
            self.access_socket = _access_tunnel_socket(access_interface)
            self.tun = TunDevice(tunnel_interface)
            os.set_blocking(self.tun.fd, False)
            self._configure()
        except BaseException:
            self.close()
            raise

    def _configure(self) -> None:
        assert self.tun is not None
        name = self.tun.name
        self.netlink.set_sysctl(f"net/ipv6/conf/{name}/disable_ipv6", 1)
        self.netlink.set_link_up(name)
        self.netlink.enable_forwarding(ipv6=False)
        self.netlink.add_route(IPv4Network("0.0.0.0/0"), interface=name, table=self.table)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for sock in self.sockets.values():
            loop.add_reader(sock.fileno(), self._tunnel_readable, sock)
        assert self.access_socket is not None
        loop.add_reader(self.access_socket.fileno(), self._access_readable)
        assert self.tun is not None
        loop.add_reader(self.tun.fd, self._tun_readable)

    def counters(self) -> Counters:
        return self.tally.snapshot()

    def set_visitor(self, route: VisitorRoute) -> None:
        """Add or replace a visitor's delivery state (VisitorAdded / VisitorUpdated): its packets go to the
        reverse tunnel (T granted, RFC 3024 §5.1) or are routed as usual (see filter_foreign_sources)."""
        self.visitors.put(route)
        table = self.table if route.reverse_tunnel else MAIN_TABLE
        if self.rules.get(route.home_address) != table:
            if route.home_address in self.rules:
                self._remove_rule(route.home_address)
            source = IPv4Network(f"{route.home_address}/32")
            self.netlink.add_rule(
                source, table, self.rule_priority, interface=self.access_interface, exist_ok=True
            )
            self.rules[route.home_address] = table

    def remove_visitor(self, home_address: IPv4Address) -> None:
        """Forget a visitor (VisitorRemoved): no more delivery, no more reverse tunnelling."""
        self.visitors.remove(home_address)
        if home_address in self.rules:
            self._remove_rule(home_address)

    def _remove_rule(self, home_address: IPv4Address) -> None:
        table = self.rules.pop(home_address)
        source = IPv4Network(f"{home_address}/32")
        self.netlink.remove_rule(source, table, self.rule_priority, interface=self.access_interface)

    def filter_foreign_sources(self, access_network: IPv4Network) -> None:
        """Ingress filtering on the access link: a packet from outside ``access_network`` is routed only for
        a registered visitor (whose rule comes first); before its registration completes, a mobile node's
        home-address packets are dropped here instead of leaking natively past the reverse tunnel."""
        access = self.access_interface
        self.netlink.add_rule(access_network, MAIN_TABLE, self.rule_priority + 1, interface=access)
        self.netlink.add_blackhole_rule(access, self.rule_priority + 2)

    # --- packets -------------------------------------------------------------------------------------

    def _count_held(self, reason: str, count: int) -> None:
        """Buffer losses, counted beside the DropReason keys: not a refusal, so never a security report."""
        self.tally.drops[reason] = self.tally.drops.get(reason, 0) + count

    def _count_encapsulated(self, size: int) -> None:
        self.tally.encapsulated_packets += 1
        self.tally.encapsulated_bytes += size

    def decapsulate(self, packet: bytes) -> None:
        """RFC 2003 §3: a home agent's tunnel packet → the visitor's link-layer address."""
        if self._held(packet) or self._through_edge_tunnel(packet):
            return
        outcome = self.visitors.deliver(packet)
        if isinstance(outcome, DropReason):
            self._drop(outcome, packet)
            return
        self._deliver(outcome)

    def _deliver(self, delivery: Delivery) -> None:
        self.send_frame(delivery.packet, delivery.link_address)
        self.tally.decapsulated_packets += 1
        self.tally.decapsulated_bytes += len(delivery.packet)

    def from_visitor_encapsulated(self, packet: bytes) -> None:
        """RFC 3024 §5.2: a packet a visitor tunnelled to us goes on to its HA like a direct one."""
        outcome = self.visitors.unwrap_from_visitor(packet)
        if isinstance(outcome, DropReason):
            self._drop(outcome, packet)
            return
        inner, visitor = outcome
        self._send_to_home_agent(inner, visitor)

    def reverse_tunnel(self, packet: bytes) -> None:
        """RFC 3024 §4.3: a visitor's packet, IP-in-IP from the care-of address to its home agent."""
        buffers = self.buffers
        if (
            buffers is not None
            and buffers.expecting
            and self.on_visitor_packet is not None
            and len(packet) >= 20
        ):
            home = IPv4Address(packet[12:16])
            if buffers.is_expected(home):  # the expected visitor is on the link: its first packet shows it
                self.on_visitor_packet(home)
        outcome = self.visitors.reverse(packet)
        if isinstance(outcome, DropReason):
            self._count(outcome)  # outbound: the visitor's own packet, not an attack on anyone
            return
        self._send_to_home_agent(packet, outcome)

    def _send_to_home_agent(self, packet: bytes, visitor: VisitorRoute) -> None:
        sock = self.sockets.get(visitor.care_of)
        if sock is None:
            self._count(DropReason.NO_TUNNEL)
            return
        try:
            sock.sendto(packet, (str(visitor.home_agent), 0))  # the kernel writes the outer header
        except OSError as exc:
            logger.debug("reverse tunnel to %s: %s", visitor.home_agent, exc.strerror)
            self._count(DropReason.SEND_FAILED)
            return
        self.tally.encapsulated_packets += 1
        self.tally.encapsulated_bytes += len(packet)

    def _count(self, reason: DropReason) -> None:
        self.tally.drops[reason.value] = self.tally.drops.get(reason.value, 0) + 1

    def _drop(self, reason: DropReason, packet: bytes) -> None:
        """Count an inbound refusal and report it (the runtime's security log, RFC 3024 §4.3.2)."""
        self._count(reason)
        if self.on_drop is None or len(packet) < 20:
            return
        inner = packet[(packet[0] & 0x0F) * 4 :]
        inner_source = inner_destination = None
        if len(inner) >= 20 and inner[0] >> 4 == 4:
            inner_source, inner_destination = str(IPv4Address(inner[12:16])), str(IPv4Address(inner[16:20]))
        try:
            self.on_drop(
                DropEvent(
                    reason,
                    packet[9],
                    IPv4Address(packet[12:16]),
                    IPv4Address(packet[16:20]),
                    inner_source,
                    inner_destination,
                )
            )
        except Exception:
            logger.exception("on_drop callback failed")

    # --- sockets -------------------------------------------------------------------------------------

    def _tunnel_readable(self, sock: socket.socket) -> None:
        for _ in range(BATCH):
            try:
                packet = sock.recv(MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            self.decapsulate(packet)

    def _access_readable(self) -> None:
        assert self.access_socket is not None
        for _ in range(BATCH):
            try:
                packet = self.access_socket.recv(MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            self.from_visitor_encapsulated(packet)

    def _tun_readable(self) -> None:
        assert self.tun is not None
        for _ in range(BATCH):
            try:
                packet = os.read(self.tun.fd, MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            self.reverse_tunnel(packet)

    def close(self) -> None:
        """Close the sockets and the TUN, remove every rule, route and sysctl change. Idempotent."""
        loop = self._loop if self._loop is not None and not self._loop.is_closed() else None
        if self._buffer_timer is not None:
            self._buffer_timer.cancel()
            self._buffer_timer = None
        for sock in [*self.sockets.values(), *([self.access_socket] if self.access_socket else [])]:
            if loop is not None and sock.fileno() >= 0:
                loop.remove_reader(sock.fileno())
            sock.close()
        self.sockets, self.access_socket = {}, None
        try:
            self.netlink.undo()
        finally:
            if self.tun is not None and not self.tun.closed:
                if loop is not None:
                    loop.remove_reader(self.tun.fd)
                self.tun.close()
            self.netlink.close()


RECEIVE_BUFFER = 4 << 20
"""Bytes the tunnel sockets may queue (the default ~200 KB is ~20 ms of two 5,000 packet/s flows): the
loop is busy for that long while it flushes an expected visitor's buffer under load (RFC 4881), and the
packets arriving meanwhile still go up to it (issue 14)."""
SO_RCVBUFFORCE = 33


def _tunnel_socket(address: IPv4Address) -> socket.socket:
    """A raw protocol-4 socket bound to a care-of address: receives the HA's tunnel packets to it and
    sends reverse-tunnelled ones from it (the kernel writes the outer header, RFC 2003 §3.1)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IPIP)
    try:
        try:  # SO_RCVBUFFORCE passes rmem_max (CAP_NET_ADMIN)
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((str(address), 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _access_tunnel_socket(interface: str) -> socket.socket:
    """A raw protocol-4 socket that hears only the access link: visitors' encapsulated packets (RFC 3024
    §5.2), never the home agents' tunnel packets to the care-of address on the network side."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IPIP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
