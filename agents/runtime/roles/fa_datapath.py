"""The foreign agent's datapath (design.md §4): IPv4-in-IPv4 (RFC 2003) between its care-of address and
each visitor's home agent.

* Forward: a raw IPPROTO_IPIP socket per care-of address receives the home agent's tunnel packets; when
  the outer source is the visitor's HA and the inner destination a visitor's home address, the inner
  packet (TTL decremented, RFC 2003 §3.1) goes out the access link to the visitor's link-layer address
  (RFC 5944 §4.2.2) — never by ARP for the home address.
* Reverse (T granted, direct delivery, RFC 3024 §5.1): a rule ``from <HoA> iif <access> lookup <table>``
  whose table routes everything into a TUN; the FA reads those packets and sends them IP-in-IP from the
  care-of address to the HA (RFC 3024 §4.3). IPv6 of a dual-stack MN is already IPv6-in-IPv4 from
  the home address (RFC 5454 §3.3.2), so the FA handles IPv4 only.
* Reverse, encapsulating delivery (extension 130, RFC 3024 §5.2): the visitor sends its packets IP-in-IP
  from its home address to the FA; a raw IPPROTO_IPIP socket on the access link receives them, and the
  inner packet (source = that home address, RFC 3024 §5.2.2) is reverse tunnelled as above.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from agents.mip.ip import HopLimitExceeded, forwarded_ipv4
from agents.net.netlink import Netlink
from agents.net.tun import TunDevice

logger = logging.getLogger(__name__)
MAX_PACKET = 65535
MAIN_TABLE = 254
FrameSender = Callable[[bytes, bytes], None]


@dataclass(frozen=True)
class VisitorRoute:
    """What the datapath needs about one visitor."""

    home_address: IPv4Address
    home_agent: IPv4Address
    care_of: IPv4Address
    link_address: bytes
    reverse_tunnel: bool
    encapsulating: bool = False
    """Encapsulating delivery style (RFC 3024 §5.2): the visitor tunnels its packets to the FA."""


class ForeignAgentDatapath:
    """Tunnel sockets, the reverse-tunnel TUN and its policy rules; :meth:`close` undoes everything."""

    def __init__(
        self,
        care_ofs: tuple[IPv4Address, ...],
        send_frame: FrameSender,
        access_interface: str,
        *,
        tunnel_interface: str = "mip-fa",
        table: int = 110,
        rule_priority: int = 1100,
    ) -> None:
        self.send_frame = send_frame
        self.access_interface = access_interface
        self.table, self.rule_priority = table, rule_priority
        self.visitors: dict[IPv4Address, VisitorRoute] = {}
        self.rules: dict[IPv4Address, int] = {}
        """Home address → the table its visitor rule sends it to (ours: reverse tunnel; main: plain)."""
        self.counters = {
            "decapsulated": 0,
            "delivered": 0,
            "reverse_tunnelled": 0,
            "from_visitors_encapsulated": 0,
            "dropped": 0,
        }
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

    def set_visitor(self, route: VisitorRoute) -> None:
        """Add or replace a visitor's delivery state (VisitorAdded / VisitorUpdated): its packets go to the
        reverse tunnel (T granted, RFC 3024 §5.1) or are routed as usual (see filter_foreign_sources)."""
        self.visitors[route.home_address] = route
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
        self.visitors.pop(home_address, None)
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

    def _tunnel_readable(self, sock: socket.socket) -> None:
        for _ in range(64):
            try:
                packet = sock.recv(MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            self.decapsulate(packet)

    def decapsulate(self, packet: bytes) -> None:
        """RFC 2003 §3: strip the outer header of a packet from a visitor's HA and deliver the inner one."""
        outer = (packet[0] & 0x0F) * 4
        inner = packet[outer:]
        if len(inner) < 20 or inner[0] >> 4 != 4:
            self.counters["dropped"] += 1
            return
        self.counters["decapsulated"] += 1
        visitor = self.visitors.get(IPv4Address(inner[16:20]))
        if visitor is None or IPv4Address(packet[12:16]) != visitor.home_agent:
            self.counters["dropped"] += 1
            return
        try:
            forwarded = bytes(forwarded_ipv4(inner, True))
        except HopLimitExceeded:
            self.counters["dropped"] += 1
            return
        self.send_frame(forwarded, visitor.link_address)
        self.counters["delivered"] += 1

    def _access_readable(self) -> None:
        assert self.access_socket is not None
        for _ in range(64):
            try:
                packet = self.access_socket.recv(MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            self.from_visitor_encapsulated(packet)

    def from_visitor_encapsulated(self, packet: bytes) -> None:
        """RFC 3024 §5.2: a packet a visitor tunnelled to us; the outer source is its home address and so
        is the inner source (§5.2.2), then the inner packet goes on to its HA like a direct one."""
        outer = (packet[0] & 0x0F) * 4
        inner = packet[outer:]
        visitor = self.visitors.get(IPv4Address(packet[12:16]))
        wanted = visitor is not None and visitor.encapsulating and visitor.reverse_tunnel
        if not wanted or len(inner) < 20 or inner[0] >> 4 != 4 or inner[12:16] != packet[12:16]:
            self.counters["dropped"] += 1
            return
        self.counters["from_visitors_encapsulated"] += 1
        self.reverse_tunnel(inner)

    def _tun_readable(self) -> None:
        assert self.tun is not None
        for _ in range(64):
            try:
                packet = os.read(self.tun.fd, MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            self.reverse_tunnel(packet)

    def reverse_tunnel(self, packet: bytes) -> None:
        """RFC 3024 §4.3: a visitor's packet, IP-in-IP from the care-of address to its home agent."""
        if len(packet) < 20 or packet[0] >> 4 != 4:
            self.counters["dropped"] += 1
            return
        visitor = self.visitors.get(IPv4Address(packet[12:16]))
        sock = None if visitor is None else self.sockets.get(visitor.care_of)
        if visitor is None or sock is None or not visitor.reverse_tunnel:
            self.counters["dropped"] += 1
            return
        try:
            sock.sendto(packet, (str(visitor.home_agent), 0))
        except OSError as exc:
            logger.debug("reverse tunnel to %s: %s", visitor.home_agent, exc.strerror)
            self.counters["dropped"] += 1
            return
        self.counters["reverse_tunnelled"] += 1

    def close(self) -> None:
        """Close the sockets and the TUN, remove every rule, route and sysctl change. Idempotent."""
        loop = self._loop if self._loop is not None and not self._loop.is_closed() else None
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


def _tunnel_socket(address: IPv4Address) -> socket.socket:
    """A raw protocol-4 socket bound to a care-of address: receives the HA's tunnel packets to it and
    sends reverse-tunnelled ones from it (the kernel writes the outer header, RFC 2003 §3.1)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IPIP)
    try:
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
