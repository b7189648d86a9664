"""The mobile node's agent discovery on a real link (RFC 5944 §2.4) and its foreign-agent link state.

* :class:`AgentDiscoverySocket`: a raw ICMP socket on the MN's interface that hears Agent Advertisements
  (type 9, RFC 5944 §2.1) and sends Agent Solicitations (type 10) with IP TTL 1 (RFC 5944 §2.2).
* :class:`ForeignAgentLink`: with a foreign agent care-of address the home address sits on the visited
  interface as a /32 with a link route to the FA and the default route via the FA (RFC 5944 §4.2.2: the
  FA is the visitor's default router); ``ArpModeChanged`` installs or removes that, and
  ``GratuitousArpRequested`` is sent on return home (RFC 5944 §4.6). On ``AtHome`` the home address
  goes back on the link with its home prefix length and the home routers (:class:`HomeLinkPlan`), and
  the MN's home-prefix IPv6 addresses are used natively there. Everything added is undone.
* :class:`DiscoveringDriver`: a :class:`MachineDriver` that also sends the machine's solicitations.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import assert_never

from agents.mip.common import events as ev
from agents.mip.common.events import MobileNodeEvent, OutgoingDatagram
from agents.net.arp import GratuitousArpSender
from agents.net.netlink import Netlink
from agents.net.packetfilter import attach, ipv4_icmp_type_program
from agents.runtime.roles.driver import MachineDriver
from agents.runtime.roles.fa_access import ipv4_packet, udp_datagram

logger = logging.getLogger(__name__)
ICMP_ADVERTISEMENT = 9
SOL_RAW = 255
ICMP_FILTER = 1
RT_SCOPE_LINK = 253
ETH_P_IP = 0x0800
DEFAULT_TTL = 64

DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")
HOME_IPV6_DEFAULT_METRIC = 512
"""Metric of the home link's IPv6 default route: preferred to the tunnel's while both exist."""
HOME_ADDRESS_WAIT = 0.02
"""Most seconds :meth:`ForeignAgentLink.use_home` waits for a home IPv6 address to be local on the link
(the kernel's DAD worker, ~0.1-2 ms) before adding the routes that make it solicit the home router."""

AdvertisementHandler = Callable[[bytes, IPv4Address, bytes], None]
"""(the ICMP message, its IP source, the sender's link-layer address)."""


class AgentDiscoverySocket:
    """Agent discovery on one interface: advertisements in through a packet socket filtered in the kernel
    to ICMP type 9 (so the sender's link-layer address comes with each, RFC 5944 §4.6), solicitations out
    through a raw ICMP socket (TTL 1, RFC 5944 §2.2)."""

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.listener = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        try:
            sock = self.sock
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            index = socket.if_nametoindex(interface)
            mreqn = struct.pack("=4s4si", bytes(4), bytes(4), index)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", 0xFFFFFFFF))  # sends only
            attach(self.listener, ipv4_icmp_type_program(ICMP_ADVERTISEMENT))
            self.listener.bind((interface, ETH_P_IP))
            self.listener.setblocking(False)
        except OSError:
            self.sock.close()
            self.listener.close()
            raise

    def start(self, loop: asyncio.AbstractEventLoop, on_advertisement: AdvertisementHandler) -> None:
        self._loop = loop
        loop.add_reader(self.listener.fileno(), self._readable, on_advertisement)

    def _readable(self, on_advertisement: AdvertisementHandler) -> None:
        for _ in range(64):
            try:
                packet, address = self.listener.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            if address[2] == socket.PACKET_OUTGOING or len(packet) < 20:
                continue
            header = (packet[0] & 0x0F) * 4
            if len(packet) > header and packet[header] == ICMP_ADVERTISEMENT:
                on_advertisement(packet[header:], IPv4Address(packet[12:16]), bytes(address[4][:6]))

    def send(self, message: ev.OutgoingIcmp) -> None:
        """One solicitation (RFC 5944 §2.2: TTL 1, to 224.0.0.11 or 255.255.255.255)."""
        try:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, message.ttl)
            self.sock.sendto(message.payload, (str(message.destination), 0))
        except OSError as exc:
            logger.debug("solicitation to %s: %s", message.destination, exc.strerror)

    def send_frame(self, packet: bytes, link_address: bytes) -> None:
        """One IPv4 packet to ``link_address`` on the interface, whatever the routes say (a request to a
        new foreign agent before the routes point at it: issue 14)."""
        try:
            self.listener.sendto(packet, (self.interface, ETH_P_IP, 0, 0, link_address))
        except OSError as exc:
            logger.debug("frame to %s: %s", link_address.hex(":"), exc.strerror)

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed() and self.listener.fileno() >= 0:
            self._loop.remove_reader(self.listener.fileno())
        self.listener.close()
        self.sock.close()


@dataclass(frozen=True)
class HomeLinkPlan:
    """How the mobile node lives on its home link: the home address with the home network's prefix
    length, the home routers, and its addresses inside its own IPv6 prefixes (used natively at home)."""

    home_address: IPv4Interface
    gateway: IPv4Address | None = None
    ipv6_addresses: tuple[IPv6Address, ...] = ()
    ipv6_gateway: IPv6Address | None = None


LinkEvent = ev.ArpModeChanged | ev.AtHome | ev.GratuitousArpRequested
"""The mobile node's events about ARP on its link (RFC 5944 §4.6)."""


class ForeignAgentLink:
    """The MN's one link: the home address and routes via the current foreign agent, or as at home."""

    def __init__(self, interface: str, home_address: IPv4Address, home: HomeLinkPlan | None = None) -> None:
        self.interface = interface
        self.home_address = home_address
        self.home = home or HomeLinkPlan(IPv4Interface(f"{home_address}/32"))
        self.netlink = Netlink()
        self.arp = GratuitousArpSender(interface)
        self.agent: IPv4Address | None = None
        self.at_home = False
        self.link_addresses: dict[IPv4Address, bytes] = {}
        """Agents' link-layer addresses from their advertisements: away from home the MN never ARPs
        (RFC 5944 §4.6), so the FA it uses gets a permanent neighbour entry from this."""
        self.heard_here: set[IPv4Address] = set()
        """Agents heard on this link since the carrier last came back: only these get a request by frame
        (an address heard on another link, e.g. the HA's at home, or an FA reached through a second
        interface, make-before-break, must never get a frame here)."""

    def apply(self, event: LinkEvent) -> None:
        """Apply an ARP/link event (RFC 5944 §4.6)."""
        match event:
            case ev.ArpModeChanged():
                if event.away:
                    self.use_agent(event.foreign_agent)
            case ev.AtHome():
                self.use_home()
            case ev.GratuitousArpRequested():  # the MN's own address, back home (owner MOBILE_NODE)
                self.arp.send(event.address)
            case _:
                assert_never(event)

    def learn(self, agent: IPv4Address, link_address: bytes, *, by_frame: bool = True) -> None:
        """``agent``'s link-layer address; ``by_frame`` false: requests to it still follow the routes
        (it is reached through another interface, make-before-break)."""
        self.link_addresses[agent] = link_address
        if by_frame:
            self.heard_here.add(agent)
        else:
            self.heard_here.discard(agent)

    def unrouted_agent(self, destination: IPv4Address) -> bytes | None:
        """The link-layer address of ``destination`` if it is an agent heard on this link that the routes
        do not point at yet (the MN is registering through a new FA): send to it by frame, at once."""
        if self.at_home or destination == self.agent or destination not in self.heard_here:
            return None
        return self.link_addresses.get(destination)

    def use_agent(self, agent: IPv4Address | None) -> None:
        """Route via ``agent`` (RFC 5944 §4.2.2), or remove the visited-link state with None.

        From one FA to the next only the default route and the new FA's neighbour entry change (the
        gateway is marked on-link, so no host route to the FA is needed; the old FA's entry, for an
        address of another link, stays until the MN is back there or stops): three netlink requests, made
        after the registration request went out by frame (:meth:`unrouted_agent`)."""
        if agent == self.agent and not self.at_home:
            return
        from_agent = self.agent is not None and not self.at_home  # the home address is on the link
        if self.at_home or agent is None:
            self.netlink.undo()
            if self.at_home:  # left home without a carrier drop: forget the home link's neighbours
                self.netlink.flush_neighbours(self.interface)
        elif self.agent is not None:
            self.netlink.remove_route(DEFAULT_ROUTE, gateway=self.agent, interface=self.interface)
        self.agent, self.at_home = agent, False
        if agent is None:
            return
        link_address = self.link_addresses.get(agent)
        if link_address is not None:
            self.netlink.set_neighbour(self.interface, agent, link_address)
        if not from_agent:
            self.netlink.add_address(self.interface, IPv4Interface(f"{self.home_address}/32"), exist_ok=True)
        self.netlink.add_route(
            DEFAULT_ROUTE, gateway=agent, interface=self.interface, onlink=True, exist_ok=True
        )
        logger.info("via foreign agent %s on %s", agent, self.interface)

    def use_home(self) -> None:
        """Back home: the home address on the link as a host of the home network (RFC 5944 §4.6)."""
        if self.at_home:
            return
        self.netlink.undo()
        self.agent, self.at_home = None, True
        home = self.home
        self.netlink.add_address(self.interface, home.home_address, exist_ok=True)
        if home.gateway is not None:
            self.netlink.add_route(
                DEFAULT_ROUTE, gateway=home.gateway, interface=self.interface, exist_ok=True
            )
        for address in home.ipv6_addresses:
            self.netlink.add_address(self.interface, IPv6Interface((address, 128)), nodad=True, exist_ok=True)
        for address in home.ipv6_addresses:  # the routes only once the router's answers are delivered
            if not self.netlink.wait_until_local(self.interface, address, HOME_ADDRESS_WAIT):
                logger.warning(
                    "%s on %s not local after %.0f ms", address, self.interface, HOME_ADDRESS_WAIT * 1e3
                )
        if home.ipv6_gateway is not None:
            # The home addresses are /128s, so the router is made on-link explicitly (RFC 4861 §6.3.4).
            gateway = IPv6Network((home.ipv6_gateway, 128))
            self.netlink.add_route(gateway, interface=self.interface, scope=RT_SCOPE_LINK, exist_ok=True)
            default6 = IPv6Network("::/0")  # preferred to the tunnel's ::/0 (1024) until deregistration
            self.netlink.add_route(
                default6,
                gateway=home.ipv6_gateway,
                interface=self.interface,
                metric=HOME_IPV6_DEFAULT_METRIC,
                exist_ok=True,
            )
        logger.info("at home on %s as %s", self.interface, home.home_address)

    def link_lost(self) -> None:
        """Carrier gone: if the home state is installed, take it away now, so that on whatever link comes
        up next the MN neither ARPs for its home router nor claims its home prefix before it knows it is
        home again (RFC 5944 §4.6: no broadcast ARP from the home address away from home). The agents
        heard so far are on the old link: none of them gets a frame on the next one."""
        self.heard_here.clear()
        if self.at_home:
            self.netlink.undo()
            self.netlink.flush_neighbours(self.interface)  # the home link's neighbours (RFC 5944 §4.6)
            self.at_home = False
            # keep the HoA (as a /32, no routes): solicitations on the next link then come from it, and the
            # agent answers them by unicast at once (RFC 1256 §5.5) instead of rate-limiting a multicast
            self.netlink.add_address(self.interface, IPv4Interface(f"{self.home_address}/32"), exist_ok=True)

    def close(self) -> None:
        self.arp.close()
        self.netlink.undo()
        self.netlink.close()


class DiscoveringDriver(MachineDriver[MobileNodeEvent]):
    """A :class:`MachineDriver` that also sends the machine's Agent Solicitations and feeds it the
    advertisements heard on the link (RFC 5944 §2.4)."""

    discovery: AgentDiscoverySocket | None = None
    link: ForeignAgentLink | None = None
    colocated: Callable[[], IPv4Address | None] | None = None
    """Auto mode (RFC 5944 §3.6): the co-located address the interface has now (a DHCP client's)."""
    _offered: IPv4Address | None = None
    _carrier = True

    def attach(self, discovery: AgentDiscoverySocket, link: ForeignAgentLink) -> None:
        self.discovery, self.link = discovery, link
        discovery.start(self.context.loop, self.advertisement_received)
        self.first = self._to_unrouted_agent

    def _to_unrouted_agent(self, datagram: OutgoingDatagram) -> bool:
        """A request to the FA just heard goes out as a frame before the route change (RFC 5944 §3.6.1.1
        asks for the request, not for the route; issue 14): the FA answers to the MN's link-layer
        address anyway (§3.7.3.2)."""
        link = self.link
        via_agent = datagram.source in (None, link.home_address) if link is not None else False
        # a co-located care-of registration goes to the HA from the co-located address, over the routes
        return via_agent and link is not None and link.unrouted_agent(datagram.destination) is not None

    def send_first(self, datagram: OutgoingDatagram) -> None:
        link, discovery = self.link, self.discovery
        mac = None if link is None else link.unrouted_agent(datagram.destination)
        if link is None or discovery is None or mac is None:
            self._send(datagram)
            return
        source = datagram.source or link.home_address
        udp = udp_datagram(datagram.source_port or self.sock.port, datagram.port, datagram.payload)
        ttl = datagram.ttl or DEFAULT_TTL
        discovery.send_frame(ipv4_packet(source, datagram.destination, socket.IPPROTO_UDP, udp, ttl), mac)

    def carrier_changed(self, up: bool) -> None:
        """Link down / up on the visited interface (RFC 5944 §2.4: solicit at once on a new link)."""
        if not up and self.link is not None:
            self.link.link_lost()
        self._carrier = up
        self._offered = self.colocated() if up and self.colocated is not None else None
        self.machine.link_changed(up, self._offered, self.now())  # type: ignore[attr-defined]
        self.flush()

    def addresses_changed(self) -> None:
        """Auto mode: the interface gained or lost its co-located address (a visited network's DHCP)."""
        address = self.colocated() if self.colocated is not None else None
        if address == self._offered or not self._carrier:  # without a carrier: read again when it returns
            return
        self._offered = address
        self.machine.link_changed(True, address, self.now())  # type: ignore[attr-defined]
        self.flush()

    def advertisement_received(self, data: bytes, source: IPv4Address, link_address: bytes) -> None:
        assert self.discovery is not None
        if self.link is not None:
            self.link.learn(source, link_address)
        self.machine.receive_advertisement(data, source, self.now(), interface=self.discovery.interface)  # type: ignore[attr-defined]
        self.flush()

    def flush(self) -> None:
        """Solicitations first, then (as every driver does) events before datagrams: a request to a new
        FA needs the routes that ``ArpModeChanged`` installs (RFC 5944 §3.6.1.1, §4.2.2)."""
        if self.discovery is not None:
            for message in self.machine.solicitations_to_send(self.now()):  # type: ignore[attr-defined]
                self.discovery.send(message)
        super().flush()
