"""`python -m agents ha`: the home agent (RFC 5944 §3.8, RFC 3024 §4, RFC 5454 §3.3) on a real home link.

Config (TOML): `[home_agent]` is :class:`agents.mip.common.config.HomeAgentConfig`; `[runtime]` is
:class:`HomeAgentRuntime` below. Events from :class:`agents.mip.ha.home_agent.HomeAgent` become datapath
tunnels
and prefix routes, proxy ARP entries and gratuitous ARP on the home link (RFC 5944 §4.6), and traces.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import assert_never

from agents.datapath.engine import TunnelOptions
from agents.datapath.native import NativeHomeAgent
from agents.datapath.selection import Needs, make_home_agent, simultaneous_bindings_gap
from agents.datapath.userspace import UserspaceHomeAgent
from agents.mip.common import events as ev
from agents.mip.common.config import Encapsulation, HomeAgentConfig
from agents.mip.common.events import HomeAgentEvent, OutgoingDatagram
from agents.mip.fa.config import AdvertisementConfig
from agents.mip.ha.home_agent import HomeAgent
from agents.net.arp import GratuitousArpSender
from agents.net.netlink import Netlink
from agents.runtime.control import Handler
from agents.runtime.frame import AgentContext
from agents.runtime.roles.driver import MachineDriver, wall_clock_offset
from agents.runtime.roles.drop_report import DropReporter
from agents.runtime.roles.ha_advertising import HomeAdvertising
from agents.runtime.roles.ha_delegation_io import DelegationSource, RefreshingDriver, attach_delegations
from agents.runtime.roles.ha_recovery import HomeAgentRecovery
from agents.runtime.roles.ha_steering import HomeAgentSteering
from agents.runtime.roles.settings import (
    TunnelRuntime,
    choose_datapath,
    load_role_file,
    require_interface,
    warn_short_keepalive,
)
from agents.runtime.steering import SteeredSocket
from agents.runtime.udp import MobileIpSocket, Received

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HomeAgentRuntime(TunnelRuntime):
    """Where the home agent runs: its home link, its tunnel interface and datapath."""

    home_interface: str = ""
    """Required (`home_interface = "..."`): the home link (RFC 5944 §4.6); no default guesses one."""
    tunnel_interface: str = "mip-ha"
    advertisement: AdvertisementConfig | None = None
    """`[runtime.advertisement]` with `advertise_home = true`: Agent Advertisements with the H bit on the home
    link (RFC 5944 §2.1, §2.4.3). Absent: the home agent does not advertise."""
    dhcpv6_pd: DelegationSource | None = None
    """`[runtime.dhcpv6_pd]`: accept prefixes Kea delegated to a node (RFC 5454 §3.7.1)."""
    home_prefix_routes: bool = True
    """Route every mobile node's allowed IPv6 prefixes onto the home link (metric
    :data:`HOME_PREFIX_METRIC`) while it has no binding, so a node at home is reached natively; a binding's
    tunnel route (default metric) wins while it is away."""
    journal: str | None = None
    """`journal = "PATH"`: the durable binding journal a restarted home agent restores its bindings from
    (:mod:`agents.runtime.roles.ha_journal`; a relative path is taken from the working directory). Absent:
    no journal, a restart forgets every binding (stale proxy ARP and home-link routes are removed anyway)."""
    kernel_steering: bool = True
    """Known peers' UDP 434 datagrams go to a priority socket, sorted by the kernel
    (:mod:`agents.runtime.steering`), so a flood from other sources cannot push them out. False: one socket
    (the flood benchmarks' baseline)."""
    need_simultaneous_bindings: bool = False
    """Mobile nodes will register with S (RFC 5944 §3.6.1.3; the make-before-break handoff): ``datapath =
    "auto"`` skips a backend that would answer them with code 1 (kernel, :class:`~agents.datapath.selection.
    Needs`) and says so in ``datapath_selected``; an explicit one is refused (exit 2)."""


@dataclass(frozen=True)
class HomeAgentSettings:
    protocol: HomeAgentConfig
    runtime: HomeAgentRuntime


def load_settings(path: Path) -> HomeAgentSettings:
    """The `ha` role's file; ValueError (exit 2, naming the key) without ``runtime.home_interface``."""
    settings = HomeAgentSettings(*load_role_file(path, "home_agent", HomeAgentConfig, HomeAgentRuntime))
    if not settings.runtime.home_interface:
        raise ValueError(
            "runtime.home_interface: missing; name the home agent's home link (RFC 5944 §4.6), "
            'e.g. home_interface = "eth0"'
        )
    if settings.runtime.need_simultaneous_bindings and not settings.protocol.simultaneous_bindings:
        raise ValueError(
            "runtime.need_simultaneous_bindings: home_agent.simultaneous_bindings is false (S requests get "
            "code 1, RFC 5944 §3.8.3); set it true or drop need_simultaneous_bindings"
        )
    return settings


REGISTRATION_SOCKET_BUFFER = 8 << 20
"""UDP 434 receive buffer (8 MiB, ~50,000 small requests): a flood burst waits there instead of pushing a
mobile node's renewal out; the socket is drained each wakeup and known sources are served first
(:meth:`HomeAgent.is_known_source`), while failed requests cost little past their budget
(:class:`agents.mip.common.budgets.SourceBudget`)."""

HOME_PREFIX_METRIC = 4096
"""Metric of the home-link routes for the MNs' prefixes: above the kernel's default 1024 of tunnel routes."""


HomeLinkEvent = ev.ProxyArpStarted | ev.ProxyArpStopped | ev.GratuitousArpRequested


class HomeLink:
    """Proxy ARP and gratuitous ARP for away home addresses on the home link (RFC 5944 §4.6), and the
    home-link routes of the MNs' IPv6 prefixes for when they are at home."""

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self.netlink = Netlink()
        self.arp = GratuitousArpSender(interface)

    def route_prefixes_home(self, config: HomeAgentConfig) -> None:
        """Each MN's allowed prefixes on the home link, below any tunnel route (RFC 5454 §3.3: while a
        binding exists its prefixes are tunnelled; without one the node is at home)."""
        for account in config.mobile_nodes:
            for prefix in account.allowed_prefixes:
                self.netlink.add_route(
                    prefix, interface=self.interface, metric=HOME_PREFIX_METRIC, exist_ok=True
                )

    def apply(self, event: HomeLinkEvent) -> None:
        match event:
            case ev.ProxyArpStarted():
                self.netlink.add_proxy_neighbour(self.interface, event.home_address, exist_ok=True)
            case ev.ProxyArpStopped():
                self.netlink.remove_proxy_neighbour(self.interface, event.home_address)
            case ev.GratuitousArpRequested(owner=ev.ArpOwner.HOME_AGENT):
                self.arp.send(event.address)
            case ev.GratuitousArpRequested():
                pass  # the mobile node's own announcement (RFC 5944 §4.6): not the home agent's to send
            case _:
                assert_never(event)

    def close(self) -> None:
        self.arp.close()
        self.netlink.undo()
        self.netlink.close()


class HomeAgentRunner:
    """The `ha` role for :mod:`agents.runtime.frame`."""

    def load_config(self, path: Path) -> HomeAgentSettings:
        return load_settings(path)

    def node_name(self, config: HomeAgentSettings) -> str:
        return config.runtime.name

    async def start(self, config: HomeAgentSettings, context: AgentContext) -> Mapping[str, Handler]:
        protocol, runtime = config.protocol, config.runtime
        context.use_realtime(runtime.realtime_priority)
        home_link_needed = "the home agent needs its home link (RFC 5944 §4.6)"
        require_interface("runtime.home_interface", runtime.home_interface, home_link_needed)
        choice = choose_datapath(runtime, context, datapath_needs(protocol, runtime))
        if protocol.simultaneous_bindings and (gap := simultaneous_bindings_gap(choice.backend)):
            logger.warning("datapath %s: %s; S requests get code 1 (RFC 5944 §3.8.3)", choice.backend, gap)
            protocol = dataclasses.replace(protocol, simultaneous_bindings=False)
        warn_short_keepalive("home_agent.keepalive_interval", protocol.keepalive_interval)
        machine = HomeAgent(protocol, wall_clock_offset=wall_clock_offset(), rng=random.Random())
        sock: MobileIpSocket | SteeredSocket
        if runtime.kernel_steering:
            buffer, homes = REGISTRATION_SOCKET_BUFFER, machine.home_addresses
            sock = SteeredSocket(protocol.port, receive_buffer=buffer, home_addresses=homes)
        else:
            sock = MobileIpSocket(protocol.port, receive_buffer=REGISTRATION_SOCKET_BUFFER)
        context.on_shutdown(sock.close, name="close UDP 434 socket")
        recovery = HomeAgentRecovery(protocol, runtime.journal, runtime.home_interface, context)
        recovery.remove_stale(runtime.tunnel_interface, HOME_PREFIX_METRIC)
        home_link = HomeLink(runtime.home_interface)
        context.on_shutdown(home_link.close, name="remove proxy ARP entries and home-link routes")
        if runtime.home_prefix_routes:
            home_link.route_prefixes_home(protocol)
        datapath: UserspaceHomeAgent | NativeHomeAgent = make_home_agent(
            choice,
            protocol.address,
            interface_name=runtime.tunnel_interface,
            options=TunnelOptions(ipv6_mtu=runtime.tunnel_mtu),
            on_drop=DropReporter(context).report,
            underlay_interface=None,
            udp_socket=sock.sock,  # RFC 3519 Tunnel Data leaves from port 434 too
        )
        context.on_shutdown(datapath.close, name="close the tunnel datapath")
        applier = HomeAgentEvents(protocol, datapath, home_link)
        extra: dict[str, Handler] = {}
        journaled = recovery.journaled(applier.apply)
        steering = HomeAgentSteering(machine, sock, context) if isinstance(sock, SteeredSocket) else None
        if steering is not None:
            journaled = steering.follow(journaled)
        driver: MachineDriver[HomeAgentEvent]
        if runtime.dhcpv6_pd is None:
            driver = MachineDriver(machine, sock, context, journaled)
        else:
            kea = attach_delegations(machine, runtime.dhcpv6_pd, context)
            driver = RefreshingDriver(machine, kea, sock, context, journaled)
            extra["delegations"] = lambda _args: kea.listing(driver.now())
        driver.on_tunnel_data = keepalive_first(machine, driver, datapath)
        if runtime.journal is None:  # with a journal, a binding is durable before it is acknowledged
            driver.first = reply_first(machine.home_addresses)
        recovery.restore(machine, driver.now())
        driver.start(first=lambda source: machine.is_known_source(source, driver.now()))
        if steering is not None:
            steering.start(driver.now)
        if runtime.advertisement is not None:
            HomeAdvertising(protocol, runtime.advertisement, runtime.home_interface, context).start()
        return {
            "status": lambda _args: (
                machine.status(driver.now())
                | {"datapath": datapath.counters().to_dict()}
                | ({"steering": sock.status()} if isinstance(sock, SteeredSocket) else {})
            ),
            "bindings": lambda _args: machine.bindings(driver.now()),
        } | extra


def datapath_needs(protocol: HomeAgentConfig, runtime: HomeAgentRuntime) -> Needs:
    """What this home agent asks of its datapath (:mod:`agents.datapath.selection`): RFC 3519 UDP tunnels,
    encapsulations beyond IP-in-IP, simultaneous bindings when the run needs them (RFC 5944 §3.6.1.3)."""
    others = tuple(sorted(e.value for e in protocol.encapsulations if e is not Encapsulation.IP_IN_IP))
    return Needs(protocol.udp_tunnelling, others, runtime.need_simultaneous_bindings)


def reply_first(home_addresses: frozenset[IPv4Address]) -> Callable[[OutgoingDatagram], bool]:
    """Replies to a care-of address leave before the binding's datapath update (issue 14): the update is
    one table or map change made right after, in the same turn of the loop, long before the reply's way
    through the FA to the MN and the MN's first packet back. A reply to a home address (deregistration
    from the home link) still waits for the binding's removal, or it would follow the host route into the
    tunnel (RFC 5944 §3.8.3, §4.6)."""

    def first(datagram: OutgoingDatagram) -> bool:
        return datagram.destination not in home_addresses

    return first


def keepalive_first(
    machine: HomeAgent, driver: MachineDriver[HomeAgentEvent], datapath: UserspaceHomeAgent | NativeHomeAgent
) -> Callable[[Received], None]:
    """Tunnel Data goes to the datapath; a keepalive that completes a half-bound binding (R flag, RFC 3519
    §4.6) first goes to the machine, whose events put the tunnel in place, so the datapath then accepts it
    and the kernel's Echo Reply goes back through the new tunnel."""

    def received(data: Received) -> None:
        if machine.receive_keepalive(data.payload, data.source, driver.now()):
            driver.flush()
        datapath.receive_udp_tunnel(data.payload, *data.source, data.destination)

    return received


class HomeAgentEvents:
    """Applies the home agent's events to the datapath and the home link."""

    def __init__(
        self, config: HomeAgentConfig, datapath: UserspaceHomeAgent | NativeHomeAgent, home_link: HomeLink
    ) -> None:
        self.config = config
        self.datapath = datapath
        self.home_link = home_link

    def apply(self, event: HomeAgentEvent) -> None:
        """Every event the machine emits, matched (mypy: ``assert_never`` flags a new one left out)."""
        match event:  # the three events of every renewal first (issue 9: fewer isinstance checks each)
            case ev.RequestReceived() | ev.ReplySent():
                pass  # trace only: the driver wrote it
            case ev.BindingAdded() | ev.BindingUpdated():
                self.datapath.add_ipv4_tunnel(
                    event.home_address,
                    event.care_of.address,
                    event.encapsulation,
                    home_agent=self.config.address,
                    reverse_tunnel=event.reverse_tunnel,
                    udp_port=event.care_of.port,
                )
            case ev.BindingRemoved():
                self.datapath.remove_ipv4_tunnel(
                    event.home_address, event.care_of.address, event.care_of.port
                )
            case ev.PrefixRegistered():
                self.datapath.add_ipv6_prefix(event.prefix.prefix, event.home_address, event.prefix.target)
            case ev.PrefixDeregistered():
                self.datapath.remove_ipv6_prefix(event.prefix.prefix)
            case ev.ProxyArpStarted() | ev.ProxyArpStopped() | ev.GratuitousArpRequested():
                self.home_link.apply(event)
            case (
                ev.MalformedDatagram()
                | ev.DatagramDiscarded()
                | ev.AuthenticationFailed()
                | ev.IdentificationRejected()
                | ev.RequestDenied()
                | ev.UdpTunnelBound()  # the tunnel came with the BindingUpdated before it
            ):
                pass  # trace only: the driver wrote it
            case _:
                assert_never(event)
