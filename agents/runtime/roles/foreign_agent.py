"""`python -m agents fa`: the foreign agent (RFC 5944 §2.1, §3.7, §4.2.2; RFC 3024 §3–§5) on a real link.

Config (TOML): `[foreign_agent]` is :class:`agents.mip.fa.config.ForeignAgentConfig` (advertisements in
`[foreign_agent.advertisement]`); `[runtime]` is :class:`ForeignAgentRuntime`. The FA advertises and hears
solicitations on the access interface (:mod:`.fa_access`), relays registrations on UDP 434 (with each
request's TTL and link-layer source) and turns the visitor list into datapath state
(:mod:`agents.datapath.foreign_agent`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any, assert_never

from agents.datapath.base import ForeignAgentDatapath
from agents.datapath.foreign_agent import UserspaceForeignAgent, VisitorRoute
from agents.datapath.kernel import BackendUnavailableError
from agents.datapath.selection import Choice, Needs, make_foreign_agent, select_foreign_agent_backend
from agents.mip.common import events as ev
from agents.mip.common.config import Encapsulation
from agents.mip.common.events import OutgoingDatagram
from agents.mip.common.trace_schema import TraceEvent
from agents.mip.fa import events as fe
from agents.mip.fa.config import DeliveryStyle, ForeignAgentConfig
from agents.mip.fa.events import ForeignAgentEvent, LinkDatagram
from agents.mip.fa.foreign_agent import ForeignAgent
from agents.net.netlink import Netlink
from agents.runtime.configfile import ConfigError, parse_sections, read_text
from agents.runtime.control import Handler
from agents.runtime.frame import AgentContext
from agents.runtime.roles.driver import EventHandler, MachineDriver, apply_events
from agents.runtime.roles.drop_report import DropReporter
from agents.runtime.roles.fa_access import AccessLink
from agents.runtime.roles.fa_recovery import ForeignAgentRecovery
from agents.runtime.scheduling import check_priority
from agents.runtime.trace import monotonic_now
from agents.runtime.udp import IP_PKTINFO, MobileIpSocket, Received

logger = logging.getLogger(__name__)
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
_PKTINFO = struct.Struct("=I4s4s")


@dataclass(frozen=True)
class ForeignAgentRuntime:
    """Where the foreign agent runs: the access link facing visitors, its tunnel interface and table."""

    name: str = ""
    access_interface: str = "eth1"
    network_interface: str = "eth0"
    """The interface toward the home agents (informational: the routing table picks it)."""
    access_address: IPv4Address | None = None
    """The FA's address on the access link; default: the first IPv4 address of ``access_interface``."""
    tunnel_interface: str = "mip-fa"
    datapath: str = "userspace"
    """``userspace``, ``ebpf`` (tc fast path, :mod:`agents.datapath.fa_ebpf`) or ``auto``; no ``kernel``."""
    table: int = 110
    rule_priority: int = 1100
    journal: str | None = None
    """`journal = "PATH"`: the durable visitor journal a restarted FA restores its visitors from
    (:mod:`agents.runtime.roles.fa_journal`). Absent: no journal (stale rules are removed anyway)."""
    realtime_priority: int = 0
    """1-99: run at this ``SCHED_FIFO`` priority (:mod:`agents.runtime.scheduling`); 0: normal."""

    def __post_init__(self) -> None:
        check_priority("realtime_priority", self.realtime_priority)


@dataclass(frozen=True)
class ForeignAgentSettings:
    protocol: ForeignAgentConfig
    runtime: ForeignAgentRuntime


def load_settings(path: Path) -> ForeignAgentSettings:
    text = read_text(path)
    try:
        sections = parse_sections(
            text, {"foreign_agent": ForeignAgentConfig, "runtime": ForeignAgentRuntime}, ("foreign_agent",)
        )
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return ForeignAgentSettings(sections["foreign_agent"], sections.get("runtime", ForeignAgentRuntime()))


def access_address(runtime: ForeignAgentRuntime) -> IPv4Address:
    """The configured access address or the first IPv4 address on the access interface."""
    if runtime.access_address is not None:
        return runtime.access_address
    with Netlink() as netlink:
        try:
            addresses = netlink.addresses(runtime.access_interface)
        except LookupError:
            raise ValueError(f"runtime.access_interface: no interface {runtime.access_interface!r}") from None
    for address in addresses:
        if isinstance(address, IPv4Interface):
            return address.ip
    raise ValueError(f"runtime.access_interface {runtime.access_interface} has no IPv4 address")


def access_network(interface: str, address: IPv4Address) -> IPv4Network | None:
    """The network of ``address`` on the access interface (None if it is not configured there)."""
    with Netlink() as netlink:
        for item in netlink.addresses(interface):
            if isinstance(item, IPv4Interface) and item.ip == address:
                return item.network
    return None


class RelaySocket(MobileIpSocket):
    """UDP 434 with IP_RECVTTL as well as IP_PKTINFO: the FA needs each request's TTL (RFC 3024 §3.2)."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        self.ttls: dict[tuple[IPv4Address, int], int] = {}

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_datagram: Callable[[Received], None],
        first: Callable[[IPv4Address], bool] | None = None,
    ) -> None:
        """Like :meth:`MobileIpSocket.start`, reading the TTL of each datagram as well (in arrival order:
        ``first`` is not used by the foreign agent)."""
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._read_with_ttl, on_datagram)

    def _read_with_ttl(self, on_datagram: Callable[[Received], None]) -> None:
        for _ in range(64):
            try:
                data, ancillary, _flags, (host, port) = self.sock.recvmsg(65535, socket.CMSG_SPACE(64))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.debug("recvmsg: %s", exc)
                continue
            destination, index, ttl = IPv4Address(0), 0, None
            for level, kind, value in ancillary:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= _PKTINFO.size:
                    index, _spec, addr = _PKTINFO.unpack_from(value)
                    destination = IPv4Address(addr)
                elif level == socket.IPPROTO_IP and kind == socket.IP_TTL and len(value) >= 4:
                    ttl = struct.unpack("=i", value[:4])[0]
            source = (IPv4Address(host), port)
            if ttl is not None:
                self.ttls[source] = ttl
            on_datagram(Received(data, source, destination, index))


class ForeignAgentDriver(MachineDriver[ForeignAgentEvent]):
    """The one :class:`MachineDriver` (events applied and traced on its path) with what only the FA has
    (design.md §5): the access link, whose solicitations it hears and to whose visitors it sends replies
    by link-layer address (RFC 5944 §3.7.3.2) and advertisements (§2.1), and each request's TTL and
    link-layer source (RFC 3024 §3.2)."""

    machine: ForeignAgent
    sock: RelaySocket

    def __init__(
        self,
        machine: ForeignAgent,
        sock: RelaySocket,
        link: AccessLink,
        context: AgentContext,
        on_event: EventHandler[ForeignAgentEvent],
    ) -> None:
        super().__init__(machine, sock, context, on_event)
        self.link = link

    def start(self, first: Callable[[IPv4Address], bool] | None = None) -> None:
        """Hear solicitations on the access link, then start as every driver (``first``: not used)."""
        self.link.start(self.context.loop, self.solicitation_received)
        super().start()

    def deliver(self, received: Received) -> None:
        source = received.source
        ttl = self.sock.ttls.pop(source, None)
        # a link-layer source only for what came in on the access link: the MAC cache may still hold an
        # earlier visit's entry for this address and port (a pre-registration arrives from the network)
        on_access = received.interface_index in (0, self.link.index)
        mac = self.link.mac_of(*source) if on_access else None
        interface = self.link.interface if mac is not None else None
        self.machine.receive_datagram(
            received.payload, source, received.destination, self.now(),
            link_address=mac, ttl=ttl, interface=interface,
        )  # fmt: skip

    def solicitation_received(self, source: IPv4Address, mac: bytes) -> None:
        """Answer first, then trace and apply (issue 14): the unicast answer (RFC 1256 §5.5; the
        per-destination gap of :class:`~agents.mip.fa.advertiser.Advertiser` still applies) needs none
        of the queued events, and writing their trace lines first delayed it. The
        ``solicitation_received`` line carries the time the solicitation was read."""
        read_at = monotonic_now()
        self.machine.receive_solicitation(source, self.now(), link_address=mac, interface=self.link.interface)
        self._send_advertisements()
        self._trace_queued(read_at)
        self.flush()

    def _send(self, datagram: OutgoingDatagram) -> None:
        """A reply to a visitor goes to its link-layer address (RFC 5944 §3.7.3.2), the rest by routing.
        (Events are applied first, as on every driver: a visitor's delivery and reverse-tunnel state is
        in place before its relayed reply, RFC 3024 §5.)"""
        if isinstance(datagram, LinkDatagram) and datagram.link_address is not None:
            self.link.send_udp(
                datagram.payload, datagram.destination, datagram.port, datagram.link_address, datagram.source
            )
        else:
            super()._send(datagram)

    def send_other(self) -> None:
        """Agent Advertisements (RFC 5944 §2.1), then their ``advertisement_sent`` lines (the machine
        queues those as it hands the advertisements over, after the driver applied its events: traced
        here, not at the next input, which stamped them up to a whole advertisement interval late)."""
        self._send_advertisements()
        self._trace_queued()

    def _trace_queued(self, read_at: float | None = None) -> None:
        """Apply and trace the queued events; ``read_at``: when the solicitation among them was read."""
        stamp = None if read_at is None else functools.partial(solicitation_time, read_at=read_at)
        apply_events(self.on_event, self.machine.next_event, self.context, stamp=stamp)

    def _send_advertisements(self) -> None:
        """Agent Advertisements (RFC 5944 §2.1): solicited ones to the soliciting visitor's MAC."""
        for advert in self.machine.advertisements_to_send(self.now()):
            if advert.link_address is not None:
                self.link.send_icmp_to(advert.payload, advert.destination, advert.link_address, advert.ttl)
            else:
                self.link.send_icmp(advert.payload, advert.destination)


def solicitation_time(event: object, *, read_at: float) -> float | None:
    """The time a ``solicitation_received`` line carries: when the solicitation was read (its answer
    leaves before the line is written); None for every other event."""
    return read_at if isinstance(event, fe.SolicitationReceived) else None


class ForeignAgentEvents:
    """Visitor list events → datapath state (RFC 5944 §4.2.2, RFC 3024 §5.1)."""

    def __init__(self, datapath: ForeignAgentDatapath) -> None:
        self.datapath = datapath

    def apply(self, event: ForeignAgentEvent) -> None:
        """Every event the machine emits, matched (mypy: ``assert_never`` flags a new one left out)."""
        match event:
            case fe.VisitorAdded() | fe.VisitorUpdated():
                self.visitor(event)
            case fe.VisitorRemoved():
                self.datapath.remove_visitor(event.home_address)
            case fe.VisitorExpected():
                if isinstance(self.datapath, UserspaceForeignAgent):
                    self.datapath.expect(event.home_address, event.timeout)  # RFC 4881: hold until attached
            case fe.VisitorAttached():
                if isinstance(self.datapath, UserspaceForeignAgent):
                    self.datapath.attach(event.home_address)
            case fe.EdgeTunnelUp() | fe.EdgeTunnelForwarding() | fe.EdgeTunnelClosed():
                if isinstance(self.datapath, UserspaceForeignAgent):
                    self.edge_tunnel(event, self.datapath)
            case (
                ev.MalformedDatagram()
                | ev.DatagramDiscarded()
                | fe.RequestRelayed()
                | fe.ReplyRelayed()
                | fe.ForeignAgentDenied()
                | fe.ForeignAuthenticationFailed()
                | fe.SolicitationReceived()
                | fe.AdvertisementSent()
            ):
                pass  # trace only: the driver wrote it
            case _:
                assert_never(event)

    def visitor(self, event: fe.VisitorAdded | fe.VisitorUpdated) -> None:
        """RFC 3024 §5.1: deliver to the visitor on the access link; reverse-tunnel what it sends."""
        if event.colocated or event.link_address is None:
            self.datapath.remove_visitor(event.home_address)
            return
        if event.encapsulation is not Encapsulation.IP_IN_IP:
            logger.warning("visitor %s: only ipip is carried by this datapath", event.home_address)
        route = VisitorRoute(
            event.home_address,
            event.home_agent,
            event.care_of,
            event.link_address,
            event.reverse_tunnel,
            encapsulating=event.delivery_style is DeliveryStyle.ENCAPSULATING,
        )
        self.datapath.set_visitor(route)

    @staticmethod
    def edge_tunnel(
        event: fe.EdgeTunnelUp | fe.EdgeTunnelForwarding | fe.EdgeTunnelClosed,
        datapath: UserspaceForeignAgent,
    ) -> None:
        """RFC 4881 §4: the BET's ends in the datapath."""
        match event:
            case fe.EdgeTunnelUp():
                if event.side == "new" and event.link_address is not None:
                    datapath.accept_from(event.home_address, event.peer, event.link_address)
            case fe.EdgeTunnelForwarding():
                datapath.forward_to(event.home_address, event.peer)
            case fe.EdgeTunnelClosed():
                datapath.close_edge_tunnel(event.home_address, grace=0.5 if event.side == "new" else 0.0)
            case _:
                assert_never(event)


def choose_fa_datapath(requested: str, needs: Needs, context: AgentContext) -> Choice:
    """Select the FA backend, log it and trace ``datapath_selected``; one that cannot run here is a
    ValueError (exit 2) naming what is missing."""
    try:
        choice = select_foreign_agent_backend(requested, needs)
    except (BackendUnavailableError, ValueError) as error:
        raise ValueError(f"runtime.datapath: {error}") from None
    logger.info("datapath %s (asked %s): %s", choice.backend, choice.requested, choice.reason)
    context.trace.emit(TraceEvent.DATAPATH_SELECTED, **choice.to_dict())
    return choice


class ForeignAgentRunner:
    """The `fa` role for :mod:`agents.runtime.frame`."""

    def load_config(self, path: Path) -> ForeignAgentSettings:
        settings = load_settings(path)
        if settings.protocol.encapsulations != {Encapsulation.IP_IN_IP}:
            raise ValueError('foreign_agent.encapsulations: the datapath carries IP-in-IP only: set ["ipip"]')
        return settings

    def node_name(self, config: ForeignAgentSettings) -> str:
        return config.runtime.name

    async def start(self, config: ForeignAgentSettings, context: AgentContext) -> Mapping[str, Handler]:
        protocol, runtime = config.protocol, config.runtime
        context.use_realtime(runtime.realtime_priority)
        machine = ForeignAgent(protocol, rng=random.Random())
        link = AccessLink(runtime.access_interface, access_address(runtime))
        context.on_shutdown(link.close, name="close the access-link sockets")
        sock = RelaySocket(protocol.port)
        context.on_shutdown(sock.close, name="close UDP 434 socket")
        recovery = ForeignAgentRecovery(runtime, context)
        recovery.remove_stale()
        choice = choose_fa_datapath(runtime.datapath, Needs(udp_tunnels=protocol.udp_tunnelling), context)
        datapath: UserspaceForeignAgent = make_foreign_agent(
            choice, protocol.care_of_addresses, link.send_frame, runtime.access_interface,
            tunnel_interface=runtime.tunnel_interface,
            table=runtime.table, rule_priority=runtime.rule_priority,
            on_drop=DropReporter(context).report,
        )  # fmt: skip
        context.on_shutdown(datapath.close, name="close the FA datapath")
        network = access_network(runtime.access_interface, link.address)
        if network is not None:
            datapath.filter_foreign_sources(network)
        else:
            logger.warning("no network known for %s: foreign sources are not filtered", link.address)
        datapath.start(context.loop)
        driver = ForeignAgentDriver(
            machine, sock, link, context, recovery.journaled(ForeignAgentEvents(datapath).apply)
        )
        datapath.on_visitor_packet = lambda home: visitor_sent(driver, home)
        recovery.restore(machine, driver.now())
        context.on_shutdown(lambda: withdraw(driver), name="withdraw advertisements")
        driver.start()
        return {
            "status": lambda _a: machine.status(driver.now()) | {"datapath": datapath.counters().to_dict()},
            "visitors": lambda _a: machine.visitors(driver.now()),
            **handoff_commands(driver, link.interface),
        }


def handoff_commands(driver: ForeignAgentDriver, interface: str) -> dict[str, Handler]:
    """The L2 triggers of RFC 4881 §1.3 as control commands (what an access point's driver would report):
    ``expect-visitor`` (L2-TT: a station is about to associate), ``visitor-attached`` (L2-LU),
    ``visitor-detached`` (L2-LD), and the post-registration's ``edge-tunnel-source`` (L2-ST) and
    ``edge-tunnel-target`` (L2-TT naming the old FA)."""

    def expect(args: dict[str, Any]) -> dict[str, object]:
        home = IPv4Address(str(args["home_address"]))
        mac = parse_mac(str(args["link_address"]))
        timeout = float(args.get("timeout", 2.0))
        driver.machine.expect_visitor(home, mac, driver.now(), timeout=timeout, interface=interface)
        driver.flush()
        return {"expected": str(home)}

    def attached(args: dict[str, Any]) -> dict[str, object]:
        """L2-LU, a report that can come before the port carries frames (the kernel activates a port
        that comes up in its link watcher, a little later): the buffer is flushed on the visitor's first
        packet or solicitation, and on this report only if neither came within :data:`L2_LU_GRACE`."""
        mac = parse_mac(str(args["link_address"]))
        expected = driver.machine.expected.by_mac(mac, driver.now())
        if expected is not None:
            driver.context.loop.call_later(L2_LU_GRACE, late_attachment, driver, mac)
        return {"home_address": None if expected is None else str(expected.home_address)}

    def bet_source(args: dict[str, Any]) -> dict[str, object]:
        """L2-ST (§4): the visitor is about to leave for the FA whose care-of address is ``peer``."""
        home, peer = IPv4Address(str(args["home_address"])), IPv4Address(str(args["peer"]))
        driver.machine.edge_tunnel_source(home, peer, driver.now(), float(args.get("lifetime", 5.0)))
        driver.flush()
        return {"edge_tunnel": str(peer)}

    def bet_target(args: dict[str, Any]) -> dict[str, object]:
        """L2-TT for a post-registration (§4): the visitor comes from the FA at ``peer``."""
        home, peer = IPv4Address(str(args["home_address"])), IPv4Address(str(args["peer"]))
        mac, lifetime = parse_mac(str(args["link_address"])), float(args.get("lifetime", 5.0))
        driver.machine.edge_tunnel_target(home, peer, mac, driver.now(), lifetime, interface=interface)
        driver.flush()
        return {"edge_tunnel": str(peer)}

    def detached(args: dict[str, Any]) -> dict[str, object]:
        """L2-LD (§1.3): the visitor left the access link."""
        forwarding = driver.machine.visitor_detached(IPv4Address(str(args["home_address"])), driver.now())
        driver.flush()
        return {"forwarding": forwarding}

    return {
        "expect-visitor": expect,
        "visitor-attached": attached,
        "edge-tunnel-source": bet_source,
        "edge-tunnel-target": bet_target,
        "visitor-detached": detached,
    }


L2_LU_GRACE = 0.02
"""Seconds an L2-LU report waits for the visitor's own first frame before it flushes the buffer itself."""


def late_attachment(driver: ForeignAgentDriver, link_address: bytes) -> None:
    """L2-LU's fallback: the visitor showed no frame of its own in time (still expected: flush now)."""
    if driver.machine.visitor_attached(link_address, driver.now()) is not None:
        driver.flush()


def visitor_sent(driver: ForeignAgentDriver, home_address: IPv4Address) -> None:
    """An expected visitor's first packet on the access link: it attached (RFC 4881 §1.3; issue 14: the
    buffer is flushed on the attachment itself, not on a later L2-LU report)."""
    if driver.machine.visitor_sent(home_address, driver.now()):
        driver.flush()


def parse_mac(text: str) -> bytes:
    """``02:00:00:00:00:10`` → 6 bytes; ValueError otherwise."""
    value = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(value) != 6:
        raise ValueError(f"{text!r} is not a MAC address")
    return value


def withdraw(driver: ForeignAgentDriver) -> None:
    """SIGTERM: a final advertisement with lifetime 0 (RFC 1256 §5.2)."""
    driver.machine.shutdown(driver.now())
    driver.flush()
