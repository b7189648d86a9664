"""The userspace datapath for both roles: TUN + raw sockets (:mod:`agents.datapath.engine`) plus the
routes, rules and addresses that steer traffic into the tunnel interface.

Home agent (design.md §4): the TUN (default ``mip-ha``) carries the link-local fe80::<HA address>
(RFC 4213 §3.7); each away home address gets a /32 route and each registered prefix a route into it;
forwarding is switched on. Proxy ARP and gratuitous ARP on the home link are separate runtime actions
(``ProxyArpStarted`` / ``GratuitousArpRequested`` events → :mod:`agents.net.netlink`,
:mod:`agents.net.arp`).

Mobile node: the TUN (default ``mip0``) holds the home address /32 and fe80::<home address>/64, and
the home-prefix addresses. A policy rule sends packets *from* the home address (and from registered
prefixes) to a table whose default route is the TUN, so they are reverse tunnelled (RFC 3024 §5.1)
while the care-of traffic and the tunnel's own outer packets use the main table. A foreign agent
care-of address (``colocated=False``) leaves IPv4 to the FA; IPv6 still goes IPv6-in-IPv4 from the
home address (RFC 5454 §3.3.2).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

from agents.datapath.base import (
    Counters,
    DropCallback,
    Encapsulation,
    HomeAgentDatapath,
    MobileNodeDatapath,
    TunnelTarget,
)
from agents.datapath.engine import PacketEngine, TunnelOptions
from agents.datapath.projection import Change, HomeBinding, HomeProjection
from agents.datapath.tables import HomeAgentTable, MobileNodeTable
from agents.mip.wire.tunnel import ipv4_embedded_link_local
from agents.net.netlink import Netlink

logger = logging.getLogger(__name__)

__all__ = ["TunnelOptions", "UserspaceHomeAgent", "UserspaceMobileNode"]


class _UserspaceBase:
    """Shared set-up and tear-down: one Netlink recorder, one engine, one lock."""

    def __init__(
        self,
        interface_name: str,
        table: HomeAgentTable | MobileNodeTable,
        options: TunnelOptions,
        on_drop: DropCallback | None,
        underlay_interface: str | None,
        udp_socket: socket.socket | None = None,
    ) -> None:
        self.interface_name = interface_name
        self._lock = threading.RLock()
        self._closed = False
        self._netlink = Netlink()
        try:
            self._engine = self._make_engine(
                interface_name, table, options, on_drop, underlay_interface, udp_socket
            )
            self.interface_name = self._engine.tun.name
        except BaseException:
            self._netlink.close()
            raise
        try:
            self._configure_interface(options)
            self._engine.start()
        except BaseException:
            self._closed = True
            self._shutdown()
            raise

    def _make_engine(
        self,
        interface_name: str,
        table: HomeAgentTable | MobileNodeTable,
        options: TunnelOptions,
        on_drop: DropCallback | None,
        underlay_interface: str | None,
        udp_socket: socket.socket | None,
    ) -> PacketEngine:
        """The per-packet machinery (the eBPF backend puts its own here, :mod:`agents.datapath.ebpf`)."""
        return PacketEngine(
            interface_name, table, options, on_drop, underlay_interface, udp_socket=udp_socket
        )

    @property
    def ipv4_mtu(self) -> int:
        """The MTU put on every IPv4 route into the tunnel (the link MTU may be larger for IPv6)."""
        return self._engine.options.mtu

    def _configure_interface(self, options: TunnelOptions) -> None:
        """MTUs (IPv4, then the static IPv6 one of RFC 4213 §3.2), no automatic link-local, up."""
        name, netlink = self.interface_name, self._netlink
        netlink.set_sysctl(f"net/ipv6/conf/{name}/addr_gen_mode", 1)
        netlink.set_mtu(name, max(options.mtu, options.ipv6_mtu))  # IPv4 routes carry options.mtu
        netlink.set_txqueuelen(name, options.txqueuelen)
        netlink.set_link_up(name)
        netlink.set_sysctl(f"net/ipv6/conf/{name}/mtu", options.ipv6_mtu)

    def counters(self) -> Counters:
        return self._engine.counters()

    def receive_udp_tunnel(
        self, payload: bytes, source: IPv4Address, port: int, destination: IPv4Address | None = None
    ) -> None:
        """A MIP Tunnel Data message the agent's UDP 434 socket read (RFC 3519 §3.3): checked, then
        delivered like any decapsulated packet; ``destination`` (the address it was sent to) only for drop
        reports. Called from the agent's event loop."""
        if not self._closed:
            self._engine.receive_udp(
                payload, source.packed, port, destination.packed if destination else None
            )

    def close(self) -> None:
        """Stop the threads, remove every route/rule/address/sysctl change, delete the TUN. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._shutdown()

    def _shutdown(self) -> None:
        try:
            self._netlink.undo()
        finally:
            try:
                self._engine.stop(lambda: self._netlink.delete_link(self.interface_name))
            finally:
                self._netlink.close()
        logger.info("datapath on %s closed", self.interface_name)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"datapath on {self.interface_name} is closed")


class UserspaceHomeAgent(_UserspaceBase, HomeAgentDatapath):
    """Home agent datapath; ``address`` is the HA address used for fe80::<address> on the TUN.

    The core's events are recorded by a :class:`~agents.datapath.projection.HomeProjection` (no check is
    made again here: the core decided) and each change is installed into the forwarding table one
    binding at a time (:class:`HomeAgentTable`), so a change costs the same with 1 or 10,000 bindings. A
    renewal that changes nothing the datapath holds (same care-of, encapsulation and home agent)
    touches nothing at all.
    """

    def __init__(
        self,
        address: IPv4Address,
        *,
        interface_name: str = "mip-ha",
        options: TunnelOptions | None = None,
        on_drop: DropCallback | None = None,
        underlay_interface: str | None = None,
        udp_socket: socket.socket | None = None,
    ) -> None:
        self._projection = HomeProjection()
        self._table = HomeAgentTable()
        self.address = address
        super().__init__(
            interface_name, self._table, options or TunnelOptions(), on_drop, underlay_interface, udp_socket
        )

    def _configure_interface(self, options: TunnelOptions) -> None:
        super()._configure_interface(options)
        self._netlink.enable_forwarding()
        link_local = IPv6Interface(f"{ipv4_embedded_link_local(self.address)}/64")
        self._netlink.add_address(self.interface_name, link_local, nodad=True)

    @property
    def table(self) -> HomeAgentTable:
        """The live forwarding table the packet threads read (look, do not change)."""
        return self._table

    @property
    def bindings(self) -> Mapping[IPv4Address, HomeBinding]:
        """What the datapath holds per home address (look, do not change)."""
        return self._projection.bindings

    def _install(self, change: Change) -> None:
        """Put one home address's new binding where the packets are decided (the packet threads' table)."""
        if change.new is None:
            self._table.remove(change.home_address)
        else:
            self._table.put(change.new)

    def _apply(self, change: Change | None) -> None:
        """Install ``change``, then its routes: a /32 for the home address while it has a binding, one
        per registered (not link-local) prefix."""
        if change is None:
            return
        self._install(change)
        if change.old is None and change.new is not None:
            route = IPv4Network((change.home_address, 32))
            self._netlink.add_route(route, interface=self.interface_name, mtu=self.ipv4_mtu)
        added, removed = change.routed_prefixes()
        for prefix in sorted(removed):
            self._netlink.remove_route(prefix, interface=self.interface_name)
        for prefix in sorted(added):
            self._netlink.add_route(prefix, interface=self.interface_name)
        if change.new is None and change.old is not None:
            self._netlink.remove_route(IPv4Network((change.home_address, 32)), interface=self.interface_name)

    def add_ipv4_tunnel(
        self,
        home_address: IPv4Address,
        care_of: IPv4Address,
        encapsulation: Encapsulation = Encapsulation.IP_IN_IP,
        *,
        home_agent: IPv4Address,
        reverse_tunnel: bool = True,
        udp_port: int | None = None,
    ) -> None:
        """Tunnel the home address to ``care_of`` (another care-of of the same home address is kept:
        simultaneous bindings get a copy each, RFC 5944 §3.6.1.3). A re-registration that only renews
        the lifetime (RFC 5944 §3.8.3) returns at once. ``udp_port``: ``care_of`` is a NAT's address
        reached in UDP at that port (RFC 3519 §4.6). The datapath holds no T flag: it accepts reverse
        tunnelling from every registered care-of (RFC 3024 §4.3.2)."""
        with self._lock:
            self._check_open()
            change = self._projection.add_care_of(home_address, care_of, encapsulation, home_agent, udp_port)
            self._apply(change)
        if change is not None:
            logger.info("tunnel %s -> %s (%s)", home_address, care_of, encapsulation.value)

    def remove_ipv4_tunnel(
        self, home_address: IPv4Address, care_of: IPv4Address | None = None, udp_port: int | None = None
    ) -> None:
        """Remove one care-of (all with ``care_of`` None). With ``udp_port`` only if that care-of is
        still reached at that port: a NAT's old mapping going must not take its new one along."""
        with self._lock:
            if self._closed:
                return
            change = self._projection.remove_care_of(home_address, care_of, udp_port)
            self._apply(change)
        if change is not None and change.new is None:
            logger.info("tunnel for %s removed", home_address)

    def add_ipv6_prefix(
        self, prefix: IPv6Network, home_address: IPv4Address, target: TunnelTarget = TunnelTarget.HOME_ADDRESS
    ) -> None:
        """Carry ``prefix`` for ``home_address``: the core has refused overlaps with other mobile nodes
        (RFC 5454 §3.3); a prefix nested in the node's own wider one gets its own route too."""
        with self._lock:
            self._check_open()
            self._apply(self._projection.add_prefix(prefix, home_address, target))
        logger.info("prefix %s via %s (%s)", prefix, home_address, target.value)

    def remove_ipv6_prefix(self, prefix: IPv6Network) -> None:
        with self._lock:
            if not self._closed:
                self._apply(self._projection.remove_prefix(prefix))


@dataclass(frozen=True)
class _MobileTunnel:
    home_agent: IPv4Address
    care_of: IPv4Address | None
    encapsulation: Encapsulation
    reverse_tunnel: bool
    udp_port: int | None = None


class UserspaceMobileNode(_UserspaceBase, MobileNodeDatapath):
    """Mobile node datapath. ``table`` / ``rule_priority``: the policy-routing table it fills."""

    def __init__(
        self,
        *,
        interface_name: str = "mip0",
        options: TunnelOptions | None = None,
        on_drop: DropCallback | None = None,
        underlay_interface: str | None = None,
        table: int = 100,
        rule_priority: int = 1000,
        udp_socket: socket.socket | None = None,
    ) -> None:
        self._route_table, self._rule_priority = table, rule_priority
        self._tunnel: _MobileTunnel | None = None
        self._ipv4_rule = False
        self._sources: dict[IPv6Network, TunnelTarget] = {}
        self._addresses: set[IPv6Interface] = set()
        self._home: IPv4Address | None = None
        super().__init__(
            interface_name,
            MobileNodeTable(),
            options or TunnelOptions(),
            on_drop,
            underlay_interface,
            udp_socket,
        )

    def _publish(self) -> None:
        tunnel = self._tunnel
        if self._home is None or tunnel is None:
            self._engine.table = MobileNodeTable()
            return
        self._engine.table = MobileNodeTable(
            self._home,
            tunnel.home_agent,
            tunnel.care_of,
            tunnel.encapsulation,
            reverse_tunnel=tunnel.reverse_tunnel,
            sources=self._sources,
            udp_port=tunnel.udp_port,
        )

    def add_ipv4_tunnel(
        self,
        home_address: IPv4Address,
        care_of: IPv4Address,
        encapsulation: Encapsulation = Encapsulation.IP_IN_IP,
        *,
        home_agent: IPv4Address,
        reverse_tunnel: bool = True,
        colocated: bool = True,
        udp_port: int | None = None,
    ) -> None:
        """Bring up or move the tunnel (``TunnelUp``). ``colocated`` False: ``care_of`` is a foreign
        agent's address, which does the IPv4 tunnelling itself. ``udp_port``: the HA's UDP port, when
        the HA agreed to RFC 3519 UDP tunnelling (through a NAT)."""
        with self._lock:
            self._check_open()
            if self._home is not None and self._home != home_address:
                self._remove_home_state()
            self._tunnel = _MobileTunnel(
                home_agent, care_of if colocated else None, encapsulation, reverse_tunnel, udp_port
            )
            if self._home is None:
                self._add_home_state(home_address)
            self._set_ipv4_rule(reverse_tunnel and colocated)
            self._publish()
        logger.info("tunnel %s via %s to %s (%s)", home_address, care_of, home_agent, encapsulation.value)

    def _add_home_state(self, home_address: IPv4Address) -> None:
        self._home = home_address
        name = self.interface_name
        self._netlink.add_address(name, IPv4Interface(f"{home_address}/32"))
        link_local = IPv6Interface(f"{ipv4_embedded_link_local(home_address)}/64")
        self._netlink.add_address(name, link_local, nodad=True)

    def _set_ipv4_rule(self, wanted: bool) -> None:
        """``from <home address> lookup <table>`` with ``default dev <tun>`` there (RFC 3024 §5.1)."""
        if wanted == self._ipv4_rule or self._home is None:
            return
        source = IPv4Network(f"{self._home}/32")
        default = IPv4Network("0.0.0.0/0")
        if wanted:
            self._netlink.add_route(
                default, interface=self.interface_name, table=self._route_table, mtu=self.ipv4_mtu
            )
            self._netlink.add_rule(source, self._route_table, self._rule_priority)
        else:
            self._netlink.remove_rule(source, self._route_table, self._rule_priority)
            self._netlink.remove_route(default, interface=self.interface_name, table=self._route_table)
        self._ipv4_rule = wanted

    def _remove_home_state(self) -> None:
        for address in list(self._addresses):
            self.remove_ipv6_address(address)
        for prefix in list(self._sources):
            self.remove_ipv6_prefix(prefix)
        self._set_ipv4_rule(False)
        assert self._home is not None
        name = self.interface_name
        self._netlink.remove_address(name, IPv6Interface(f"{ipv4_embedded_link_local(self._home)}/64"))
        self._netlink.remove_address(name, IPv4Interface(f"{self._home}/32"))
        self._home, self._tunnel = None, None

    def remove_ipv4_tunnel(self, home_address: IPv4Address, care_of: IPv4Address | None = None) -> None:
        """Take the tunnel down (``TunnelDown``): addresses, rules and routes go with it."""
        with self._lock:
            if self._home != home_address or self._closed:
                return
            self._remove_home_state()
            self._publish()

    def add_ipv6_prefix(
        self, prefix: IPv6Network, home_address: IPv4Address, target: TunnelTarget = TunnelTarget.HOME_ADDRESS
    ) -> None:
        """Packets from ``prefix`` go to the HA via ``target`` (``PrefixAccepted``); source rule added."""
        with self._lock:
            self._check_open()
            if self._home != home_address:
                raise ValueError(f"no tunnel for {home_address}: call add_ipv4_tunnel first")
            if self._sources.get(prefix) is target:
                return  # unchanged (a tunnel kept over a carrier drop): no netlink request
            self._sources[prefix] = target
            self._publish()
            if not prefix.is_link_local:
                self._netlink.add_route(
                    IPv6Network("::/0"), interface=self.interface_name, table=self._route_table, exist_ok=True
                )
                self._netlink.add_rule(prefix, self._route_table, self._rule_priority, exist_ok=True)

    def remove_ipv6_prefix(self, prefix: IPv6Network) -> None:
        with self._lock:
            if self._sources.pop(prefix, None) is None:
                return
            self._publish()
            if not prefix.is_link_local:
                self._netlink.remove_rule(prefix, self._route_table, self._rule_priority)

    def add_ipv6_address(
        self, address: IPv6Interface, target: TunnelTarget = TunnelTarget.HOME_ADDRESS
    ) -> None:
        with self._lock:
            self._check_open()
            if address in self._addresses and self._sources.get(IPv6Network(f"{address.ip}/128")) is target:
                return  # unchanged (a tunnel kept over a carrier drop): no netlink request
            self._netlink.add_address(self.interface_name, address, nodad=True, exist_ok=True)
            self._addresses.add(address)
            self._sources.setdefault(IPv6Network(f"{address.ip}/128"), target)
            self._publish()

    def remove_ipv6_address(self, address: IPv6Interface) -> None:
        with self._lock:
            if address not in self._addresses:
                return
            self._addresses.discard(address)
            self._sources.pop(IPv6Network(f"{address.ip}/128"), None)
            self._publish()
            self._netlink.remove_address(self.interface_name, address)

    def add_ipv6_route(self, destination: IPv6Network) -> None:
        with self._lock:
            self._check_open()
            self._netlink.add_route(destination, interface=self.interface_name, exist_ok=True)

    def remove_ipv6_route(self, destination: IPv6Network) -> None:
        with self._lock:
            self._netlink.remove_route(destination, interface=self.interface_name)
