"""`python -m agents mn`: a dual-stack mobile node with a co-located care-of address (RFC 5944 §3.6,
RFC 5454 §3.5). It registers its IPv4 home address and IPv6 prefixes with the home agent and tunnels through
a TUN device (`mip0`) that holds the home address and the home-prefix addresses.

Config (TOML): `[mobile_node]` is :class:`agents.mip.common.config.MobileNodeConfig`; `[runtime]` is
:class:`MobileNodeRuntime`. The care-of address is read from `runtime.interface` (or given as `care_of`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Any, assert_never

from agents.datapath.base import MobileNodeDatapath, TunnelTarget
from agents.datapath.engine import TunnelOptions
from agents.datapath.native import NativeMobileNode
from agents.datapath.selection import Needs, make_mobile_node
from agents.datapath.userspace import UserspaceMobileNode
from agents.mip.common import events as ev
from agents.mip.common.config import CareOfMode, MobileNodeConfig, UdpTunnelling
from agents.mip.common.events import MobileNodeEvent
from agents.mip.common.timers import MIN_REQUEST_GAP
from agents.mip.common.trace_schema import TraceEvent
from agents.mip.mn.llh_pre import Target
from agents.mip.mn.mobile_node import MobileNode
from agents.mip.mn.prefixes import address_in
from agents.mip.wire.icmp import AdvertisementFlag
from agents.net.arp import send_gratuitous_arp
from agents.net.netlink import Netlink
from agents.runtime.control import Handler
from agents.runtime.frame import AgentContext
from agents.runtime.linkwatch import AddressWatcher, CarrierWatcher
from agents.runtime.roles.driver import MachineDriver, wall_clock_offset
from agents.runtime.roles.drop_report import DropReporter
from agents.runtime.roles.mn_dhcpv6 import Dhcpv6PdSettings, PrefixDelegation, load_mn_sections
from agents.runtime.roles.mn_discovery_io import (
    AgentDiscoverySocket,
    DiscoveringDriver,
    ForeignAgentLink,
    HomeLinkPlan,
    LinkEvent,
)
from agents.runtime.roles.mn_nat import NatKeepalives, TrafficWatch
from agents.runtime.roles.settings import (
    TunnelRuntime,
    choose_datapath,
    require_interface,
    warn_short_keepalive,
)
from agents.runtime.udp import MobileIpSocket

logger = logging.getLogger(__name__)
STOP_GRACE = 0.5
"""Seconds the runtime waits past the machine's stop deadline before giving up on it itself."""


@dataclass(frozen=True)
class MobileNodeRuntime(TunnelRuntime):
    """Where the mobile node runs: the interface holding its care-of address, its tunnel interface."""

    interface: str = "eth0"
    care_of: IPv4Address | None = None
    """Co-located care-of address; default: the first IPv4 address on ``interface``."""
    home_prefix_length: int = 32
    """Foreign-agent mode, at home: the home network's prefix length for the home address (e.g. 24)."""
    home_gateway: IPv4Address | None = None
    """Foreign-agent mode, at home: the IPv4 default router on the home link."""
    home_ipv6_gateway: IPv6Address | None = None
    """Foreign-agent mode, at home: the IPv6 default router on the home link; the MN's addresses in its
    own prefixes then sit on ``interface`` and IPv6 is native (no tunnel)."""
    stop_timeout: float = 5.0
    """Seconds SIGTERM may spend deregistering (all ``deregister_attempts`` copies are spread over it, RFC
    5944 §3.6.1.2); below the frame's 10 s cleanup limit and the harness's 8 s stop wait."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1.0 <= self.stop_timeout <= 8.0:
            raise ValueError(f"stop_timeout {self.stop_timeout} must be 1..8 seconds")
        if not 1 <= self.home_prefix_length <= 32:
            raise ValueError("runtime.home_prefix_length must be 1..32")
        if self.care_of is not None and (
            self.care_of.is_loopback or self.care_of.is_unspecified or self.care_of.is_multicast
        ):
            raise ValueError(
                f"care_of {self.care_of}: a care-of address must be a unicast address the home "
                "agent can reach (RFC 5944 §3.6), not loopback, unspecified or multicast"
            )

    def home_link(self, config: MobileNodeConfig) -> HomeLinkPlan:
        """The home-link plan for :class:`ForeignAgentLink`."""
        identifier = config.effective_interface_identifier
        addresses = tuple(address_in(prefix, identifier) for prefix in config.prefixes)
        return HomeLinkPlan(
            IPv4Interface(f"{config.home_address}/{self.home_prefix_length}"),
            gateway=self.home_gateway,
            ipv6_addresses=addresses if self.home_ipv6_gateway is not None else (),
            ipv6_gateway=self.home_ipv6_gateway,
        )


@dataclass(frozen=True)
class MobileNodeSettings:
    protocol: MobileNodeConfig
    runtime: MobileNodeRuntime
    dhcpv6_pd: Dhcpv6PdSettings | None = None
    """`[dhcpv6_pd]`: bootstrap IPv6 by DHCPv6-PD over the tunnel (RFC 5454 §3.7.1)."""


def load_settings(path: Path) -> MobileNodeSettings:
    return MobileNodeSettings(*load_mn_sections(path, MobileNodeConfig, MobileNodeRuntime))


def find_care_of(interface: str, home_address: IPv4Address) -> IPv4Address | None:
    """The first IPv4 address on ``interface`` other than the home address (the co-located CoA).

    A missing or loopback interface is refused (ValueError): 127.0.0.1 is no care-of address the home
    agent could tunnel to (RFC 5944 §3.6, §1.6 "care-of address").
    """
    require_interface(
        "runtime.interface",
        interface,
        "the mobile node needs the visited link that holds its care-of address (RFC 5944 §3.6)",
    )
    with Netlink() as netlink:
        for address in netlink.addresses(interface):
            if isinstance(address, IPv4Interface) and address.ip != home_address:
                return address.ip
    return None


class MobileNodeRunner:
    """The `mn` role for :mod:`agents.runtime.frame`."""

    def load_config(self, path: Path) -> MobileNodeSettings:
        return load_settings(path)

    def node_name(self, config: MobileNodeSettings) -> str:
        return config.runtime.name

    async def start(self, config: MobileNodeSettings, context: AgentContext) -> Mapping[str, Handler]:
        protocol, runtime = config.protocol, config.runtime
        context.use_realtime(runtime.realtime_priority)
        discovering = protocol.care_of_mode is not CareOfMode.COLOCATED
        care_of = runtime.care_of or find_care_of(runtime.interface, protocol.home_address)
        if care_of is None and not discovering:
            raise ValueError(f"runtime.interface {runtime.interface} has no IPv4 address to use as care-of")
        choice = choose_datapath(runtime, context, Needs(protocol.udp_tunnelling is not UdpTunnelling.OFF))
        if protocol.udp_tunnelling is not UdpTunnelling.OFF:
            warn_short_keepalive("mobile_node.keepalive_interval", protocol.keepalive_interval)
        machine = MobileNode(protocol, wall_clock_offset=wall_clock_offset(), rng=random.Random())
        sock = MobileIpSocket(protocol.local_port)
        context.on_shutdown(sock.close, name="close the registration socket")
        datapath: UserspaceMobileNode | NativeMobileNode = make_mobile_node(
            choice,
            interface_name=runtime.tunnel_interface,
            options=TunnelOptions(ipv6_mtu=runtime.tunnel_mtu),
            on_drop=DropReporter(context).report,
            udp_socket=sock.sock,  # RFC 3519: tunnel data from the port of the latest request (§4.2)
        )
        context.on_shutdown(datapath.close, name="close the tunnel datapath")
        link = (
            ForeignAgentLink(runtime.interface, protocol.home_address, runtime.home_link(protocol))
            if discovering
            else None
        )
        if link is not None:
            context.on_shutdown(link.close, name="remove the visited-link address and routes")
        keepalives = NatKeepalives(protocol, sock)
        applier = MobileNodeEvents(protocol, runtime, datapath, link, keepalives.send)
        pd = (
            None
            if config.dhcpv6_pd is None
            else PrefixDelegation(config.dhcpv6_pd, protocol, machine, context, runtime.tunnel_interface)
        )
        driver = DiscoveringDriver(
            machine, sock, context, applier.apply if pd is None else pd.observing(applier.apply)
        )
        # The MN's requests already leave first (by frame); holding its lines made the home-return IPv6
        # stall (docs/architecture.md, "FA and HA, trace lines after the datagrams") more frequent.
        driver.holds_trace = False
        driver.on_tunnel_data = keepalives.tunnel_data_handler(machine, datapath, driver.now, driver.flush)
        if protocol.udp_tunnelling is not UdpTunnelling.OFF:
            watch = TrafficWatch(machine, datapath, driver.now)
            task = context.loop.create_task(watch.run(min(1.0, protocol.keepalive_interval / 4)))

            def stop_watching() -> None:
                task.cancel()

            context.on_shutdown(stop_watching, name="stop watching the tunnel's traffic")
        warn_if_attempts_cannot_fit(protocol, runtime.stop_timeout)
        stop = StopDeregistration(driver, machine, applier, context, runtime.stop_timeout)
        context.on_shutdown(stop.run, name="deregister")
        if pd is not None:
            pd.attach(driver)
            context.on_shutdown(pd.release, name="release the delegated prefix")  # before deregistering
        driver.start()
        if link is not None:
            discovery = AgentDiscoverySocket(runtime.interface)
            context.on_shutdown(discovery.close, name="close the agent discovery socket")
            driver.attach(discovery, link)
            watcher = CarrierWatcher(runtime.interface, driver.carrier_changed)
            context.on_shutdown(watcher.close, name="stop watching the carrier")
            watcher.start(context.loop)
            if protocol.care_of_mode is CareOfMode.AUTO:
                driver.colocated = lambda: find_care_of(runtime.interface, protocol.home_address)
                addresses = AddressWatcher(runtime.interface, driver.addresses_changed)
                context.on_shutdown(addresses.close, name="stop watching the addresses")
                addresses.start(context.loop)
        machine.link_changed(True, care_of, driver.now())
        driver.flush()
        handlers = commands(driver, machine, datapath) | handoff_command(driver, machine, link)
        return handlers if pd is None else pd.commands(handlers)


def handoff_command(
    driver: MachineDriver[MobileNodeEvent], machine: MobileNode, link: ForeignAgentLink | None
) -> dict[str, Handler]:
    """``handoff-trigger``: the L2 trigger of RFC 4881 §1.3 (L2-MT, what a Wi-Fi driver's roaming event
    reports), naming the target agent as a Proxy Router Advertisement would (§3.3): ``agent``, ``care_of``,
    ``link_address``, ``flags`` (advertisement flags, default F|T), ``handoff_in`` (seconds until the
    link changes), ``pre_register`` (default true; false for a post-registration, §4) and ``request_to``
    (where the request goes, default the care-of address; the new FA's access address when a second
    interface is on its link: make-before-break, RFC 5944 §3.6.1.3). The answer says
    whether it was taken and why not."""

    def trigger(args: dict[str, Any]) -> dict[str, object]:
        agent = IPv4Address(str(args["agent"]))
        mac = bytes.fromhex(str(args["link_address"]).replace(":", "")) if args.get("link_address") else None
        if mac is not None and len(mac) != 6:
            raise ValueError("link_address must be a MAC address")
        flags = AdvertisementFlag(int(args.get("flags", int(AdvertisementFlag.F | AdvertisementFlag.T))))
        request_to = IPv4Address(str(args["request_to"])) if args.get("request_to") else None
        care_of, lifetime = IPv4Address(str(args["care_of"])), int(args.get("lifetime", 0xFFFF))
        target = Target(agent, care_of, mac, flags, lifetime, request_to)
        if link is not None and mac is not None:
            # the MN never ARPs away from home (RFC 5944 §4.6); a request to another interface's
            # agent follows the routes rather than leaving this link by frame
            link.learn(agent, mac, by_frame=request_to is None)
        now = driver.now()
        handoff_at = now + float(args.get("handoff_in", 0.1))
        pre_register = bool(args.get("pre_register", True))
        refused = machine.handoff_trigger(target, handoff_at, now, pre_register=pre_register)
        driver.flush()
        return {"accepted": refused is None, "reason": refused, "state": machine.status(driver.now())}

    waiting: list[asyncio.Future[bool]] = []
    apply = driver.on_event

    def on_event(event: MobileNodeEvent) -> None:
        apply(event)
        if isinstance(event, ev.PreRegistrationReady | ev.PreRegistrationAbandoned):
            for future in waiting:
                if not future.done():
                    future.set_result(isinstance(event, ev.PreRegistrationReady))
            waiting.clear()

    driver.on_event = on_event

    async def wait_ready(args: dict[str, Any]) -> dict[str, object]:
        """``wait-pre-ready``: answer as soon as the pre-registration is accepted (or abandoned, or after
        ``timeout`` s): the harness, playing the link layer, moves the link then, without polling
        ``status`` (each poll delayed the move by milliseconds, and the new FA buffered the S-bit copies
        of everything the old one still delivered meanwhile; issue 14)."""
        timeout = float(args.get("timeout", 1.5))
        if machine.pre_registration != "requested":  # ready already, or nothing (more) to wait for
            return {"ready": machine.pre_registration == "ready", "state": machine.pre_registration}
        future: asyncio.Future[bool] = driver.context.loop.create_future()
        waiting.append(future)
        try:
            ready = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            ready = False
        return {"ready": ready, "state": machine.pre_registration}

    return {"handoff-trigger": trigger, "wait-pre-ready": wait_ready}


def warn_if_attempts_cannot_fit(config: MobileNodeConfig, stop_timeout: float) -> None:
    """Requests are at least 1 s apart (RFC 5944 §3.6.3): say so at start if SIGTERM cannot send them all."""
    fit = int(stop_timeout // MIN_REQUEST_GAP)
    if config.deregister_attempts > fit:
        logger.warning(
            "deregister_attempts = %d but only %d fit in runtime.stop_timeout = %g s",
            config.deregister_attempts,
            fit,
            stop_timeout,
        )


class StopDeregistration:
    """On SIGTERM: deregister (RFC 5944 §3.6.1.2) with the configured attempts within ``stop_timeout``; a
    deregistration that got no reply is a warning and a ``deregistration_gave_up`` trace line (the HA keeps
    the binding until its lifetime runs out)."""

    def __init__(
        self,
        driver: MachineDriver[MobileNodeEvent],
        machine: MobileNode,
        events: MobileNodeEvents,
        context: AgentContext,
        stop_timeout: float,
    ) -> None:
        self.driver, self.machine, self.events = driver, machine, events
        self.context, self.stop_timeout = context, stop_timeout

    async def run(self) -> None:
        started = self.driver.now()
        deadline = started + self.stop_timeout
        self.machine.shutdown(started, deadline=deadline)
        self.driver.flush()
        while not self.machine.is_stopped and self.driver.now() < deadline + STOP_GRACE:
            await asyncio.sleep(0.05)
        outcome = self.events.deregistration
        if outcome is None and self.machine.is_stopped:
            return  # nothing was registered
        if outcome is not None and outcome.confirmed:
            return
        attempts = self.events.deregistration_attempts
        waited = self.driver.now() - started
        logger.warning(
            "gave up deregistering after %d attempt(s) in %.1f s without a reply: the home agent keeps the "
            "binding until its lifetime runs out",
            attempts,
            waited,
        )
        self.context.trace.emit(TraceEvent.DEREGISTRATION_GAVE_UP, attempts=attempts, waited=round(waited, 3))


def commands(
    driver: MachineDriver[MobileNodeEvent], machine: MobileNode, datapath: MobileNodeDatapath
) -> dict[str, Handler]:
    """The control-socket commands (`mipctl status|bindings|register|deregister|set-prefixes`)."""

    def act(action: Any) -> dict[str, object]:
        result = action(driver.now())
        driver.flush()
        return {
            "accepted": bool(result) if result is not None else True,
            "state": machine.status(driver.now()),
        }

    def set_prefixes(args: dict[str, Any]) -> dict[str, object]:
        prefixes = tuple(IPv6Network(text) for text in args.get("prefixes", []))
        link_local = args.get("link_local")
        return act(lambda now: machine.set_prefixes(prefixes, now, link_local=link_local))

    def register(args: dict[str, Any]) -> dict[str, object]:
        """Register now; with ``care_of`` the co-located care-of address changed (a move)."""
        if "care_of" in args:
            care_of = IPv4Address(str(args["care_of"]))
            return act(lambda now: machine.link_changed(True, care_of, now))
        return act(machine.register)

    return {
        "status": lambda _a: machine.status(driver.now()) | {"datapath": datapath.counters().to_dict()},
        "bindings": lambda _a: machine.bindings(driver.now()),
        "register": register,
        "deregister": lambda a: act(lambda now: machine.deregister(now, all_care_ofs=bool(a.get("all")))),
        "set-prefixes": set_prefixes,
    }


KEPT_THROUGH = (
    ev.TunnelUp,
    ev.TunnelDown,
    ev.AgentLost,
    ev.AgentDiscovered,
    ev.MovementDetected,
    ev.SolicitationSent,
    ev.ArpModeChanged,
    ev.RequestSent,
    ev.ReplyReceived,
    ev.RegistrationAccepted,
    ev.PrefixAccepted,
)
"""Foreign-agent care-of address: a carrier drop's TunnelDown is applied only when something other than
these comes first. The MN's tunnel runs between its home address and the home agent, whatever FA it is
behind (RFC 5454 §3.3.2), so tearing it down at the drop and building it again at the next registration
would only put a dozen netlink requests on the handover's critical path (issue 14); returning home, a
deregistration or a denial take it down as before."""


def kept_through(event: MobileNodeEvent) -> bool:
    """Whether a tunnel kept over a carrier drop stays up past ``event`` (:data:`KEPT_THROUGH`)."""
    return isinstance(event, KEPT_THROUGH)


class MobileNodeEvents:
    """Applies the mobile node's events to its datapath (tunnel, prefixes, addresses, routes)."""

    def __init__(
        self,
        config: MobileNodeConfig,
        runtime: MobileNodeRuntime,
        datapath: MobileNodeDatapath,
        link: ForeignAgentLink | None = None,
        send_keepalive: Callable[[ev.KeepaliveDue], None] | None = None,
    ) -> None:
        self.link = link
        self.send_keepalive = send_keepalive
        self.config = config
        self.runtime = runtime
        self.datapath = datapath
        self.prefixes: dict[IPv6Network, TunnelTarget] = {}
        """Prefixes the machine holds as registered; kept across a TunnelDown, since the machine does not
        announce them again when the next registration (e.g. after a link-down) keeps them."""
        self.addresses: dict[IPv6Interface, TunnelTarget] = {}
        self.deregistration: ev.Deregistered | None = None
        """The last deregistration's outcome (confirmed by the HA, or given up)."""
        self.deregistration_attempts = 0
        """Copies sent of the last deregistration request."""
        self.kept_over_link_down = False
        """A carrier drop's TunnelDown not applied yet (see :data:`KEPT_THROUGH`)."""

    def apply(self, event: MobileNodeEvent) -> None:
        """Every event the machine emits, matched (mypy: ``assert_never`` flags a new one left out)."""
        home = self.config.home_address
        if self.kept_over_link_down and not kept_through(event):
            self.kept_over_link_down = False  # no new tunnel replaces the kept one: take it down now
            if self.home_before_break(event):
                return
            self.datapath.remove_ipv4_tunnel(home)
        match event:
            case ev.RequestSent():
                if event.lifetime == 0:
                    self.deregistration_attempts = event.attempt
            case ev.Deregistered():
                self.deregistration = event
            case ev.TunnelUp():
                self.kept_over_link_down = False
                self.tunnel_up(event)
            case ev.TunnelDown(reason="link-down") if self.link is not None:
                self.kept_over_link_down = True  # see KEPT_THROUGH
            case ev.TunnelDown():
                self.datapath.remove_ipv4_tunnel(home)
            case ev.PrefixAccepted():
                self.datapath.add_ipv6_prefix(event.prefix, home, event.target)
                self.prefixes[event.prefix] = event.target
            case ev.PrefixRejected():
                if event.prefix in self.prefixes:
                    self.datapath.remove_ipv6_prefix(event.prefix)
                    del self.prefixes[event.prefix]
            case ev.KeepaliveDue():
                if self.send_keepalive is not None:
                    self.send_keepalive(event)
            case (
                ev.Ipv6AddressAdded() | ev.Ipv6AddressRemoved() | ev.Ipv6RouteAdded() | ev.Ipv6RouteRemoved()
            ):
                self.apply_interface_event(event)
            case ev.ArpModeChanged() | ev.AtHome() | ev.GratuitousArpRequested():
                self.apply_link_event(event)
            case (
                ev.MalformedDatagram()
                | ev.DatagramDiscarded()
                | ev.AuthenticationFailed()
                | ev.ReplyReceived()
                | ev.RegistrationAccepted()
                | ev.RegistrationDenied()
                | ev.RegistrationExpired()
                | ev.ClockResynchronised()
                | ev.Ipv4OnlyFallback()
                | ev.KeepaliveAnswered()
                | ev.KeepaliveLost()
                | ev.AgentDiscovered()
                | ev.AgentLost()
                | ev.MovementDetected()
                | ev.SolicitationSent()
                | ev.AdvertisementDiscarded()
                | ev.PreRegistrationStarted()
                | ev.PreRegistrationReady()
                | ev.PreRegistrationAttached()
                | ev.PreRegistrationAbandoned()
            ):
                pass  # trace only: the driver wrote it
            case _:
                assert_never(event)

    def home_before_break(self, event: MobileNodeEvent) -> bool:
        """Back home over a kept tunnel, make before break: the home link's addresses (local once
        ``use_home`` returns) before the tunnel's copies go, so the home-prefix address always has a local
        route and the home router's first Neighbour Advertisement is taken (RFC 4861 §7.2.5; the
        home-return stall in docs/architecture.md). True if ``event`` was that return."""
        if not isinstance(event, ev.AtHome):
            return False
        try:
            self.apply_link_event(event)
        finally:  # a failed home link (netlink refused, link gone) must not leave the tunnel up at home
            self.datapath.remove_ipv4_tunnel(self.config.home_address)
        return True

    def tunnel_up(self, event: ev.TunnelUp) -> None:
        """Bring the tunnel up, then restore the prefixes and addresses a TunnelDown took with it."""
        if not event.colocated:
            self.via_foreign_agent(event)
        elif event.udp_keepalive is not None:
            self.through_nat(event)
        else:
            self.datapath.add_ipv4_tunnel(
                self.config.home_address,
                event.care_of,
                event.encapsulation,
                home_agent=event.home_agent,
                reverse_tunnel=event.reverse_tunnel,
            )
        for prefix, target in self.prefixes.items():
            self.datapath.add_ipv6_prefix(prefix, self.config.home_address, target)
        for address, target in self.addresses.items():
            self.datapath.add_ipv6_address(address, target)

    def through_nat(self, event: ev.TunnelUp) -> None:
        """RFC 3519: everything to and from the HA in UDP Tunnel Data, to its port 434."""
        if not isinstance(self.datapath, UserspaceMobileNode):
            raise TypeError("this datapath cannot tunnel in UDP")
        self.datapath.add_ipv4_tunnel(
            self.config.home_address,
            event.care_of,
            event.encapsulation,
            home_agent=event.home_agent,
            reverse_tunnel=event.reverse_tunnel,
            udp_port=self.config.home_agent_port,
        )

    def via_foreign_agent(self, event: ev.TunnelUp) -> None:
        """FA care-of address: the datapath only carries IPv6-in-IPv4 between HoA and HA (RFC 5454 §3.3.2)."""
        if not isinstance(self.datapath, UserspaceMobileNode | NativeMobileNode):
            raise TypeError("this datapath cannot register via a foreign agent")
        self.datapath.add_ipv4_tunnel(
            self.config.home_address,
            event.care_of,
            event.encapsulation,
            home_agent=event.home_agent,
            reverse_tunnel=event.reverse_tunnel,
            colocated=False,
        )

    def apply_interface_event(
        self, event: ev.Ipv6AddressAdded | ev.Ipv6AddressRemoved | ev.Ipv6RouteAdded | ev.Ipv6RouteRemoved
    ) -> None:
        """The tunnel interface's IPv6 addresses and routes (RFC 5454 §3.5)."""
        match event:
            case ev.Ipv6AddressAdded():
                self.datapath.add_ipv6_address(event.address, event.target)
                self.addresses[event.address] = event.target
            case ev.Ipv6AddressRemoved():
                self.datapath.remove_ipv6_address(event.address)
                self.addresses.pop(event.address, None)
            case ev.Ipv6RouteAdded():
                self.datapath.add_ipv6_route(event.prefix)
            case ev.Ipv6RouteRemoved():
                self.datapath.remove_ipv6_route(event.prefix)
            case _:
                assert_never(event)

    def apply_link_event(self, event: LinkEvent) -> None:
        """ARP on the visited or home link (RFC 5944 §4.6): the discovery link's, else a one-off sender."""
        if self.link is not None:
            self.link.apply(event)
            return
        match event:
            case ev.GratuitousArpRequested():
                send_gratuitous_arp(self.runtime.interface, event.address)
            case ev.ArpModeChanged() | ev.AtHome():
                pass  # no agent discovery on this node: nothing to reconfigure
            case _:
                assert_never(event)
