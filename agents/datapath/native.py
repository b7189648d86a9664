"""The ``kernel`` datapath backend: native ipip / gre / sit devices, routes and rules (issue 9), for kernels
that have the modules (the VM's full Debian kernel; not this development host).

Home agent: per care-of address ``c`` one point-to-point device ``<prefix>4-<n>`` (``ipip`` RFC 2003 or
``gre`` RFC 2784, local = HA, remote = c) carries the home address's ``/32`` route (RFC 5944 §4.2.3); IPv6
prefixes registered with code 1 get a ``sit`` device to ``c`` (RFC 4213, RFC 5454 §3.3.2), code 0 a ``sit``
device to the home address, whose IPv4 packets then follow the home address's route into the care-of tunnel:
nested, as RFC 5454 §3.3.2 describes. Decapsulation checks come from the kernel: a point-to-point tunnel takes
only packets whose outer source is its remote (others reach the down fallback ``tunl0``/``sit0`` and are
dropped, RFC 3024 §4.3.2), and strict ``rp_filter`` on each IPv4 tunnel device drops an inner source that is
not routed back through it (the home address's own tunnel). A code 0 ``sit`` device would also take
IPv6-in-IPv4 sent from the home address straight from a visited link, legitimate only nested (RFC 5454
§3.3.2, §4): :class:`~agents.datapath.native_filter.UnnestedGuard` (an nftables table in the namespace)
drops protocol 41 from a guarded home address that did not come out of a care-of tunnel device. A ``sit``
device no installed prefix routes into is deleted (with its guard).

Mobile node: ``<name>`` is a ``sit`` device from the home address to the HA (IPv6 code 0, holding the home
address, its link-local and the home-prefix addresses) and, with a co-located care-of address, ``<name>4``
an ``ipip`` device from the care-of address to the HA; a policy rule sends packets from the home address
(and the registered prefixes) to a table whose default route is the tunnel (RFC 3024 §5.1).

Differences from :mod:`agents.datapath.userspace`, by design of the kernel objects: minimal encapsulation
(RFC 2004) and UDP tunnelling (RFC 3519) have no kernel device (refused with ValueError); simultaneous
bindings (RFC 5944 §3.6.1.3) cannot be kept: a route sends each packet to one care-of address, and neither
multipath routes nor tc mirred give a copy per care-of address, so the home agent runs this backend with
``simultaneous_bindings = false`` (:func:`agents.datapath.selection.simultaneous_bindings_gap`): an S
request is accepted with code 1 and replaces the other care-ofs, and during the make-before-break instant
of a handover the route follows the newest; prefix overlaps are refused by the core (RFC 5454 §3.3), not
checked again here; the mobile node sends IPv6 of a code 1 (care-of) prefix from the
home address as for code 0; drops are the kernel's (counted in the devices' rx errors, not
per :class:`DropReason`) except the guard's (``unnested_home_address``); IPv6 inner sources are not
checked (no IPv6 rp_filter).
"""

from __future__ import annotations

import itertools
import logging
import re
import socket
import threading
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from typing import Any

from agents.datapath.base import (
    Counters,
    DropCallback,
    DropReason,
    Encapsulation,
    HomeAgentDatapath,
    MobileNodeDatapath,
    TunnelTarget,
)
from agents.datapath.engine import TunnelOptions
from agents.datapath.native_filter import UnnestedGuard, guard_table_name, remove_stale_table
from agents.datapath.projection import Change, HomeBinding, HomeProjection, compile_binding
from agents.mip.wire.tunnel import ipv4_embedded_link_local
from agents.net.ethtool import disable_tx_checksum, ethtool_socket
from agents.net.netlink import Netlink

logger = logging.getLogger(__name__)

__all__ = [
    "KernelRoutes",
    "NativeHomeAgent",
    "NativeMobileNode",
    "kernel_routes",
    "native_kind",
    "remove_stale_home_agent_state",
]

IPV4_KINDS = {Encapsulation.IP_IN_IP: "ipip", Encapsulation.GRE: "gre"}


def native_kind(encapsulation: Encapsulation) -> str:
    """The kernel link kind carrying IPv4 for ``encapsulation``; ValueError for minimal encapsulation."""
    try:
        return IPV4_KINDS[encapsulation]
    except KeyError:
        raise ValueError(
            f"{encapsulation.value} encapsulation has no kernel device: use the userspace datapath"
        ) from None


class _Links:
    """Tunnel devices this datapath created (pyroute2), deleted at close; sysctls through ``netlink``."""

    def __init__(self, netlink: Netlink) -> None:
        from pyroute2 import IPRoute

        self._ipr: Any = IPRoute()
        self._ethtool = ethtool_socket()
        self._netlink = netlink
        self._names: list[str] = []
        self._lock = threading.Lock()

    def add(self, name: str, kind: str, local: IPv4Address, remote: IPv4Address, mtu: int) -> None:
        prefix = {"ipip": "ipip", "gre": "gre", "sit": "sit"}[kind]
        attributes = {f"{prefix}_local": str(local), f"{prefix}_remote": str(remote), f"{prefix}_ttl": 64}
        with self._lock:
            self._ipr.link("add", ifname=name, kind=kind, **attributes)
            self._names.append(name)
        index = self._ipr.link_lookup(ifname=name)[0]
        self._ipr.link("set", index=index, mtu=mtu)
        disable_tx_checksum(self._ethtool, name)  # inner checksums finished before encapsulation
        if kind != "sit":
            self._netlink.set_sysctl(f"net/ipv4/conf/{name}/rp_filter", 1)
        self._netlink.set_sysctl(f"net/ipv6/conf/{name}/addr_gen_mode", 1)
        self._ipr.link("set", index=index, state="up")

    def delete(self, name: str) -> None:
        with self._lock:
            indexes = self._ipr.link_lookup(ifname=name)
            if indexes:
                self._ipr.link("del", index=indexes[0])
            if name in self._names:
                self._names.remove(name)

    def stats(self) -> tuple[int, int, int, int, int]:
        """tx packets, tx bytes, rx packets, rx bytes, rx errors summed over our devices."""
        totals = [0, 0, 0, 0, 0]
        with self._lock:
            names = list(self._names)
        for name in names:
            indexes = self._ipr.link_lookup(ifname=name)
            if not indexes:
                continue
            stats = self._ipr.get_links(indexes[0])[0].get_attr("IFLA_STATS64") or {}
            for slot, key in enumerate(("tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "rx_errors")):
                totals[slot] += int(stats.get(key, 0))
        return totals[0], totals[1], totals[2], totals[3], totals[4]

    def close(self) -> None:
        for name in list(reversed(self._names)):
            try:
                self.delete(name)
            except Exception as error:  # keep deleting the others
                logger.warning("cannot delete %s: %s", name, error)
        self._ipr.close()
        self._ethtool.close()


class _NativeBase:
    def __init__(self, interface_name: str, options: TunnelOptions | None) -> None:
        self.interface_name = interface_name
        self.options = options or TunnelOptions()
        self._lock = threading.RLock()
        self._closed = False
        self._netlink = Netlink()
        self._links = _Links(self._netlink)

    def counters(self) -> Counters:
        tx_packets, tx_bytes, rx_packets, rx_bytes, rx_errors = self._links.stats()
        drops = {"kernel_rx_errors": rx_errors} if rx_errors else {}
        return Counters(tx_packets, tx_bytes, rx_packets, rx_bytes, drops)

    def receive_udp_tunnel(
        self, payload: bytes, source: IPv4Address, port: int, destination: IPv4Address | None = None
    ) -> None:
        """RFC 3519 Tunnel Data has no kernel device here: dropped (use the userspace datapath)."""
        logger.warning(
            "UDP tunnel data from %s:%d dropped: no UDP tunnel in the kernel datapath", source, port
        )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._netlink.undo()
            finally:
                self._links.close()
                self._netlink.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"datapath {self.interface_name} is closed")


@dataclass(frozen=True)
class KernelRoutes:
    """What the kernel routes for one binding: the home address's ``/32`` into the tunnel to one care-of
    address (the newest: a route cannot copy a packet, RFC 5944 §3.6.1.3) and each routed (not link-local)
    prefix into a ``sit`` device to its remote: that care-of address for code 1, the home address for code 0
    (RFC 5454 §3.3.2), as the core's answers say (:func:`~agents.datapath.projection.compile_binding`)."""

    care_of: tuple[IPv4Address, Encapsulation] | None = None
    prefixes: dict[IPv6Network, IPv4Address] = field(default_factory=dict)


def kernel_routes(binding: HomeBinding | None) -> KernelRoutes:
    """The routes of ``binding`` (none for None), from the newest copy the core gives it."""
    rules = None if binding is None else compile_binding(binding)
    if binding is None or rules is None or not rules.copies:
        return KernelRoutes()
    newest = rules.copies[-1].care_of.address
    prefixes = {}
    for prefix, rule in rules.prefixes.items():
        if not prefix.is_link_local and rule.copies:
            copy = rule.copies[-1]
            prefixes[prefix] = binding.home_address if copy.via_home else copy.care_of.address
    return KernelRoutes((newest, binding.care_ofs[newest]), prefixes)


def _home_agent_prefix(interface_name: str) -> str:
    return interface_name[:8]


def remove_stale_home_agent_state(netlink: Netlink, interface_name: str) -> list[str]:
    """Delete what a killed :class:`NativeHomeAgent` named ``interface_name`` left in ``netlink``'s
    namespace: its tunnel devices ``<name>4-<n>`` / ``<name>6-<n>`` and its guard's nftables table; what
    was removed (for crash recovery, :mod:`agents.runtime.roles.ha_recovery`)."""
    prefix = _home_agent_prefix(interface_name)
    device = re.compile(rf"{re.escape(prefix)}[46]-[0-9]+")
    removed = [
        f"link {name}"
        for name in netlink.link_names()
        if device.fullmatch(name) and netlink.delete_link(name)
    ]
    table = guard_table_name(prefix)
    if remove_stale_table(netlink, table):
        removed.append(f"nftables table ip {table}")
    return removed


class NativeHomeAgent(_NativeBase, HomeAgentDatapath):
    """Home agent over kernel tunnel devices named ``<interface_name>4-<n>`` / ``<interface_name>6-<n>``;
    the core's events are recorded by a :class:`~agents.datapath.projection.HomeProjection` and each change
    is installed as the difference of :func:`kernel_routes` before and after."""

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
        del on_drop, underlay_interface, udp_socket  # the kernel drops silently; no UDP tunnel
        super().__init__(_home_agent_prefix(interface_name), options)
        self.address = address
        self._serial = itertools.count(1)
        self._care_of_links: dict[tuple[IPv4Address, Encapsulation], str] = {}
        self._sit_links: dict[IPv4Address, str] = {}
        self._projection = HomeProjection()
        self._installed: dict[IPv4Address, KernelRoutes] = {}
        self._guard = UnnestedGuard(self._netlink, self.interface_name)
        self._netlink.enable_forwarding()

    def counters(self) -> Counters:
        """The devices' counters, with the guard's drops of un-nested home-address IPv6-in-IPv4."""
        counters = super().counters()
        with self._lock:
            unnested = 0 if self._closed else self._guard.dropped()
        if unnested:
            counters.drops[DropReason.UNNESTED_HOME_ADDRESS.value] = unnested
        return counters

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                try:
                    self._guard.close()
                except Exception as error:  # the devices still go
                    logger.warning("cannot delete the nftables guard: %s", error)
        super().close()

    def _device(self, family: str) -> str:
        return f"{self.interface_name}{family}-{next(self._serial)}"

    def _care_of_link(self, care_of: IPv4Address, encapsulation: Encapsulation) -> str:
        key = (care_of, encapsulation)
        if key not in self._care_of_links:
            name = self._device("4")
            self._links.add(name, native_kind(encapsulation), self.address, care_of, self.options.mtu)
            self._care_of_links[key] = name
        return self._care_of_links[key]

    def _sit_link(self, remote: IPv4Address) -> str:
        if remote not in self._sit_links:
            name = self._device("6")
            self._links.add(name, "sit", self.address, remote, self.options.ipv6_mtu)
            self._sit_links[remote] = name
        return self._sit_links[remote]

    def _apply(self, change: Change | None) -> None:
        """Change the kernel's routes from what the old binding needed to what the new one needs."""
        if change is None:
            return
        home = change.home_address
        old, new = self._installed.pop(home, KernelRoutes()), kernel_routes(change.new)
        route = IPv4Network((home, 32))
        if new.care_of != old.care_of:
            if old.care_of is not None:
                self._netlink.remove_route(route, interface=self._care_of_links[old.care_of])
            if new.care_of is not None:
                device = self._care_of_link(*new.care_of)
                self._netlink.add_route(route, interface=device, mtu=self.options.mtu)
        for prefix, remote in old.prefixes.items():
            if new.prefixes.get(prefix) != remote:
                self._netlink.remove_route(prefix, interface=self._sit_links[remote])
        for prefix, remote in new.prefixes.items():
            if old.prefixes.get(prefix) != remote:
                if remote == home:  # code 0: guarded before its sit device can decapsulate anything
                    self._guard.add(home)
                self._netlink.add_route(prefix, interface=self._sit_link(remote), exist_ok=True)
        if change.new is not None:
            self._installed[home] = new
        self._remove_unused_sit_links()

    def _remove_unused_sit_links(self) -> None:
        """Delete the sit devices no installed prefix routes into (and a code 0 one's guard): a device
        left behind would still decapsulate packets from its remote."""
        used = {remote for routes in self._installed.values() for remote in routes.prefixes.values()}
        for remote in [remote for remote in self._sit_links if remote not in used]:
            self._links.delete(self._sit_links.pop(remote))
            self._guard.remove(remote)

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
        if udp_port is not None:
            raise ValueError("UDP tunnelling (RFC 3519) has no kernel device: use the userspace datapath")
        native_kind(encapsulation)
        with self._lock:
            self._check_open()
            self._apply(self._projection.add_care_of(home_address, care_of, encapsulation, home_agent))
        logger.info("kernel tunnel %s -> %s (%s)", home_address, care_of, encapsulation.value)

    def remove_ipv4_tunnel(
        self, home_address: IPv4Address, care_of: IPv4Address | None = None, udp_port: int | None = None
    ) -> None:
        with self._lock:
            if not self._closed:
                self._apply(self._projection.remove_care_of(home_address, care_of, udp_port))

    def add_ipv6_prefix(
        self, prefix: IPv6Network, home_address: IPv4Address, target: TunnelTarget = TunnelTarget.HOME_ADDRESS
    ) -> None:
        with self._lock:
            self._check_open()
            self._apply(self._projection.add_prefix(prefix, home_address, target))

    def remove_ipv6_prefix(self, prefix: IPv6Network) -> None:
        with self._lock:
            if not self._closed:
                self._apply(self._projection.remove_prefix(prefix))


class NativeMobileNode(_NativeBase, MobileNodeDatapath):
    """Mobile node over a ``sit`` device ``<name>`` (IPv6, from the home address) and, co-located, an
    ``ipip`` device ``<name>4`` (from the care-of address)."""

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
        del on_drop, underlay_interface, udp_socket
        super().__init__(interface_name[:12], options)
        self._table, self._priority = table, rule_priority
        self._home: IPv4Address | None = None
        self._home_agent: IPv4Address | None = None
        self._care_of: IPv4Address | None = None
        self._ipv4_rule = False
        self._prefixes: set[IPv6Network] = set()
        self._addresses: set[IPv6Interface] = set()

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
        if udp_port is not None:
            raise ValueError("UDP tunnelling (RFC 3519) has no kernel device: use the userspace datapath")
        with self._lock:
            self._check_open()
            if self._home is not None and (self._home != home_address or self._home_agent != home_agent):
                self._remove_home_state()
            if self._home is None:
                self._home, self._home_agent = home_address, home_agent
                self._links.add(self.interface_name, "sit", home_address, home_agent, self.options.ipv6_mtu)
                self._netlink.add_address(self.interface_name, IPv4Interface(f"{home_address}/32"))
                link_local = IPv6Interface(f"{ipv4_embedded_link_local(home_address)}/64")
                self._netlink.add_address(self.interface_name, link_local, nodad=True)
            wanted = care_of if colocated and reverse_tunnel else None
            if wanted != self._care_of:
                self._set_ipv4_tunnel(wanted, encapsulation)

    def _set_ipv4_tunnel(self, care_of: IPv4Address | None, encapsulation: Encapsulation) -> None:
        """The co-located reverse tunnel: ``from <home address> lookup <table>``, default dev ``<name>4``."""
        assert self._home is not None and self._home_agent is not None
        device = f"{self.interface_name}4"
        source, default = IPv4Network(f"{self._home}/32"), IPv4Network("0.0.0.0/0")
        if self._care_of is not None:
            self._netlink.remove_rule(source, self._table, self._priority)
            self._netlink.remove_route(default, interface=device, table=self._table)
            self._links.delete(device)
        self._care_of = care_of
        if care_of is None:
            return
        self._links.add(device, native_kind(encapsulation), care_of, self._home_agent, self.options.mtu)
        self._netlink.add_route(default, interface=device, table=self._table, mtu=self.options.mtu)
        self._netlink.add_rule(source, self._table, self._priority)

    def _remove_home_state(self) -> None:
        for address in list(self._addresses):
            self.remove_ipv6_address(address)
        for prefix in list(self._prefixes):
            self.remove_ipv6_prefix(prefix)
        if self._care_of is not None:
            self._set_ipv4_tunnel(None, Encapsulation.IP_IN_IP)
        assert self._home is not None
        self._netlink.remove_address(self.interface_name, IPv4Interface(f"{self._home}/32"))
        self._netlink.remove_address(
            self.interface_name, IPv6Interface(f"{ipv4_embedded_link_local(self._home)}/64")
        )
        self._links.delete(self.interface_name)
        self._home = self._home_agent = None

    def remove_ipv4_tunnel(self, home_address: IPv4Address, care_of: IPv4Address | None = None) -> None:
        with self._lock:
            if self._closed or self._home != home_address:
                return
            self._remove_home_state()

    def add_ipv6_prefix(
        self, prefix: IPv6Network, home_address: IPv4Address, target: TunnelTarget = TunnelTarget.HOME_ADDRESS
    ) -> None:
        with self._lock:
            self._check_open()
            if self._home != home_address:
                raise ValueError(f"no tunnel for {home_address}: call add_ipv4_tunnel first")
            if target is TunnelTarget.CARE_OF:
                logger.warning("%s: code 1 (care-of target) carried from the home address here", prefix)
            self._prefixes.add(prefix)
            if not prefix.is_link_local:
                self._netlink.add_route(
                    IPv6Network("::/0"), interface=self.interface_name, table=self._table, exist_ok=True
                )
                self._netlink.add_rule(prefix, self._table, self._priority, exist_ok=True)

    def remove_ipv6_prefix(self, prefix: IPv6Network) -> None:
        with self._lock:
            if prefix not in self._prefixes:
                return
            self._prefixes.discard(prefix)
            if not prefix.is_link_local:
                self._netlink.remove_rule(prefix, self._table, self._priority)

    def add_ipv6_address(
        self, address: IPv6Interface, target: TunnelTarget = TunnelTarget.HOME_ADDRESS
    ) -> None:
        with self._lock:
            self._check_open()
            self._netlink.add_address(self.interface_name, address, nodad=True, exist_ok=True)
            self._addresses.add(address)

    def remove_ipv6_address(self, address: IPv6Interface) -> None:
        with self._lock:
            if address in self._addresses:
                self._addresses.discard(address)
                self._netlink.remove_address(self.interface_name, address)

    def add_ipv6_route(self, destination: IPv6Network) -> None:
        with self._lock:
            self._check_open()
            self._netlink.add_route(destination, interface=self.interface_name, exist_ok=True)

    def remove_ipv6_route(self, destination: IPv6Network) -> None:
        with self._lock:
            self._netlink.remove_route(destination, interface=self.interface_name)
