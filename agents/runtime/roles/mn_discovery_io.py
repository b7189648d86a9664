"""The mobile node's agent discovery on a real link (RFC 5944 §2.4) and its foreign-agent link state.

* :class:`AgentDiscoverySocket`: a raw ICMP socket on the MN's interface that hears Agent Advertisements
  (type 9, RFC 5944 §2.1) and sends Agent Solicitations (type 10) with IP TTL 1 (RFC 5944 §2.2).
* :class:`ForeignAgentLink`: with a foreign agent care-of address the home address sits on the visited
  interface as a /32 with a link route to the FA and the default route via the FA (RFC 5944 §4.2.2: the
  FA is the visitor's default router); ``ArpModeChanged`` installs or removes that, and
  ``GratuitousArpRequested`` is sent on return home (RFC 5944 §4.6). Everything added is undone.
* :class:`CarrierWatcher`: carrier down/up on that interface → ``link_changed`` (RFC 5944 §2.4.2).
* :class:`DiscoveringDriver`: a :class:`MachineDriver` that also sends the machine's solicitations.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from agents.mip import events as ev
from agents.runtime.arp import send_gratuitous_arp
from agents.runtime.netlink import Netlink
from agents.runtime.roles.driver import MachineDriver

logger = logging.getLogger(__name__)
ICMP_ADVERTISEMENT = 9
SOL_RAW = 255
ICMP_FILTER = 1
RT_SCOPE_LINK = 253
_ALL_BUT_ADVERTISEMENTS = 0xFFFFFFFF & ~(1 << ICMP_ADVERTISEMENT)

AdvertisementHandler = Callable[[bytes, IPv4Address], None]


class AgentDiscoverySocket:
    """Raw ICMP on one interface: advertisements in (the ICMP message, its IP source), solicitations out."""

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        try:
            sock = self.sock
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            index = socket.if_nametoindex(interface)
            mreqn = struct.pack("=4s4si", bytes(4), bytes(4), index)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", _ALL_BUT_ADVERTISEMENTS))
            sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise

    def start(self, loop: asyncio.AbstractEventLoop, on_advertisement: AdvertisementHandler) -> None:
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._readable, on_advertisement)

    def _readable(self, on_advertisement: AdvertisementHandler) -> None:
        for _ in range(64):
            try:
                packet, (host, _port) = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            header = (packet[0] & 0x0F) * 4
            if len(packet) > header and packet[header] == ICMP_ADVERTISEMENT:
                on_advertisement(packet[header:], IPv4Address(host))

    def send(self, message: ev.OutgoingIcmp) -> None:
        """One solicitation (RFC 5944 §2.2: TTL 1, to 224.0.0.11 or 255.255.255.255)."""
        try:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, message.ttl)
            self.sock.sendto(message.payload, (str(message.destination), 0))
        except OSError as exc:
            logger.debug("solicitation to %s: %s", message.destination, exc.strerror)

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed() and self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


class ForeignAgentLink:
    """The home address on the visited link and the routes via the current foreign agent."""

    def __init__(self, interface: str, home_address: IPv4Address) -> None:
        self.interface = interface
        self.home_address = home_address
        self.netlink = Netlink()
        self.agent: IPv4Address | None = None

    def apply(self, event: Any) -> bool:
        """Apply an ARP/link event; False when the event is not one of these."""
        if isinstance(event, ev.ArpModeChanged):
            self.use_agent(event.foreign_agent if event.away else None)
        elif isinstance(event, ev.GratuitousArpRequested) and event.owner is ev.ArpOwner.MOBILE_NODE:
            send_gratuitous_arp(self.interface, event.address)
        else:
            return False
        return True

    def use_agent(self, agent: IPv4Address | None) -> None:
        """Route via ``agent`` (RFC 5944 §4.2.2), or remove the visited-link state with None."""
        if agent == self.agent:
            return
        self.netlink.undo()
        self.agent = agent
        if agent is None:
            return
        self.netlink.add_address(self.interface, IPv4Interface(f"{self.home_address}/32"), exist_ok=True)
        self.netlink.add_route(
            IPv4Network(f"{agent}/32"), interface=self.interface, scope=RT_SCOPE_LINK, exist_ok=True
        )
        default = IPv4Network("0.0.0.0/0")
        self.netlink.add_route(default, gateway=agent, interface=self.interface, exist_ok=True)
        logger.info("via foreign agent %s on %s", agent, self.interface)

    def close(self) -> None:
        self.netlink.undo()
        self.netlink.close()


class CarrierWatcher:
    """Polls ``/sys/class/net/<interface>/carrier`` and reports changes: a carrier loss and return is
    the link-layer hint of a move (RFC 5944 §2.4.2)."""

    def __init__(self, interface: str, on_change: Callable[[bool], None], interval: float = 0.2) -> None:
        self.path = Path("/sys/class/net") / interface / "carrier"
        self.on_change = on_change
        self.interval = interval
        self.state = self.read()

    def read(self) -> bool:
        try:
            return self.path.read_text().strip() == "1"
        except OSError:  # EINVAL while the interface is down, or it is gone
            return False

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            state = self.read()
            if state != self.state:
                self.state = state
                logger.info("carrier %s on %s", "up" if state else "down", self.path.parent.name)
                self.on_change(state)


class DiscoveringDriver(MachineDriver):
    """A :class:`MachineDriver` that also sends the machine's Agent Solicitations and feeds it the
    advertisements heard on the link (RFC 5944 §2.4)."""

    discovery: AgentDiscoverySocket | None = None
    link: ForeignAgentLink | None = None

    def attach(self, discovery: AgentDiscoverySocket, link: ForeignAgentLink) -> None:
        self.discovery, self.link = discovery, link
        discovery.start(self.context.loop, self.advertisement_received)

    def carrier_changed(self, up: bool) -> None:
        """Link down / up on the visited interface (RFC 5944 §2.4: solicit at once on a new link)."""
        self.machine.link_changed(up, None, self.now())  # type: ignore[attr-defined]
        self.flush()

    def advertisement_received(self, data: bytes, source: IPv4Address) -> None:
        assert self.discovery is not None
        self.machine.receive_advertisement(data, source, self.now(), interface=self.discovery.interface)  # type: ignore[attr-defined]
        self.flush()

    def flush(self) -> None:
        """Solicitations first; then, on a visited link, events before datagrams: a request to a new
        FA needs the routes that ``ArpModeChanged`` installs (RFC 5944 §3.6.1.1, §4.2.2)."""
        if self.discovery is not None:
            for message in self.machine.solicitations_to_send(self.now()):  # type: ignore[attr-defined]
                self.discovery.send(message)
        if self.link is not None:
            outgoing = self.machine.datagrams_to_send(self.now())
            self._apply_events()
            for datagram in outgoing:
                self.sock.send(
                    datagram.payload,
                    datagram.destination,
                    datagram.port,
                    source=datagram.source,
                    ttl=datagram.ttl,
                )
        super().flush()

    def _apply_events(self) -> None:
        """Trace and apply the queued events (as :meth:`MachineDriver.flush` does)."""
        trace = self.context.trace
        while (event := self.machine.next_event()) is not None:
            fields = event.to_dict()
            name = str(fields.pop("event", event.name))
            if trace.enabled:
                trace.emit(name, **fields)
            try:
                self.on_event(event)
            except Exception as exc:  # a failed install must not kill the agent
                logger.error("could not apply %s: %s", name, exc)
                trace.emit("apply_failed", what=name, error=str(exc))
