"""The one netlink facade (the only module that imports pyroute2), with exact undo.

:class:`Netlink` works in the network namespace of the thread that creates it: a private worker
thread, started there, owns the pyroute2 socket and also does the ``/proc/sys/net`` writes, so every
call lands in that namespace whichever thread (or event loop) makes it. pyroute2 0.9's synchronous
``IPRoute`` runs its own event loop and cannot be used inside a running asyncio loop; the worker
thread sidesteps that too. Calls block for the netlink round trip (sub-millisecond). Routes, neighbour
entries (permanent and proxy), policy rules and addresses are added and removed with raw rtnetlink
requests from the calling thread instead (:mod:`agents.net.rtnl`: a few µs each, not pyroute2's
fraction of a millisecond plus the hand-over; issues 14 and 9), and so is their undo, several deletions
to a ``send``.

Everything the instance adds (addresses, routes, policy rules, proxy neighbour entries, link
settings, sysctls) is recorded; :meth:`Netlink.undo` removes exactly that, newest first, and restores
changed settings to the values found. Objects that existed before are never recorded, so never
removed. Objects already gone by the time of undo (their link was deleted) are skipped.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import errno
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
)
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ndmsg import NTF_PROXY

from agents.net.rtnl import (
    RtnlError,
    RtnlSocket,
    address_deletion,
    address_message,
    local_route,
    neigh_message,
    neighbour_message,
    route_dump,
    route_message,
    rule_message,
)

logger = logging.getLogger(__name__)

R = TypeVar("R")
Network = IPv4Network | IPv6Network
Interface = IPv4Interface | IPv6Interface
Address = IPv4Address | IPv6Address
_GONE = {errno.ENOENT, errno.ESRCH, errno.ENODEV, errno.EADDRNOTAVAIL, errno.ENXIO}
IFA_F_NODAD = 0x02
RTNH_F_ONLINK = 0x04
NUD_PERMANENT = 0x80
NUD_NOARP = 0x40
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
CLONE_NEWNET = 0x40000000
LOCAL_POLL = 0.0002
"""Seconds between two looks at table local in :meth:`Netlink.wait_until_local`."""


Undo = tuple[str, str, dict[str, Any]]
"""How to revert one recorded change, as plain data: an ``IPRoute`` method, its command and its
arguments, or ``("sysctl", path, {"value": old})``. Data rather than closures: a home agent records
three per binding, and atomic-valued tuples and dicts are left alone by the cyclic garbage collector."""


class NetlinkFacadeError(RuntimeError):
    """A netlink request failed; the message names the request."""


@dataclass(frozen=True)
class RouteInfo:
    """The kernel's answer to "how would a packet to X leave?" (``ip route get``)."""

    interface: str
    source: IPv4Address | IPv6Address | None
    gateway: IPv4Address | IPv6Address | None


def _family(value: Network | Interface | IPv4Address | IPv6Address) -> int:
    return socket.AF_INET if value.version == 4 else socket.AF_INET6


class Netlink:
    """Links, addresses, routes, rules, proxy neighbours and sysctls of one namespace, undoable."""

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="netlink")
        self._ipr: Any = None
        self._rtnl: RtnlSocket | None = None
        self._undo: dict[tuple[object, ...], Undo | Callable[[], object]] = {}
        self._sysctls: dict[str, str] = {}  # the value each sysctl this instance set was left at
        self._run(self._open)

    def _open(self) -> None:
        self._ipr = IPRoute()
        self._rtnl = RtnlSocket()  # made here, so in this instance's namespace

    def _raw(self, build: Callable[[int], bytes]) -> None:
        """One raw rtnetlink request from the calling thread (:mod:`agents.net.rtnl`: routes, neighbour
        entries and rules, the changes on a handover's critical path); a refusal is a NetlinkError, as
        from pyroute2."""
        assert self._rtnl is not None
        try:
            self._rtnl.request(build)
        except RtnlError as error:
            raise NetlinkError(error.errno) from None

    def _index(self, name: str) -> int:
        """The index of link ``name`` in this instance's namespace, from any thread."""
        assert self._rtnl is not None
        return self._rtnl.index_of(name)

    def _run(self, function: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        return self._executor.submit(function, *args, **kwargs).result()

    def call_in_namespace(self, function: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run ``function`` on the worker thread, so in this instance's namespace: a process it starts
        (``nft``) is forked from that thread and inherits the namespace. Nothing is recorded for undo."""
        return self._run(function, *args, **kwargs)

    def _request(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return self._run(function, *args, **kwargs)
        except NetlinkError as error:
            raise NetlinkFacadeError(f"{what}: {os.strerror(error.code)} ({error.code})") from error

    # -- links -------------------------------------------------------------------------

    def link_index(self, name: str) -> int:
        """The interface index of ``name``; LookupError if there is no such link."""
        return self._run(_index_of, name)

    def link_exists(self, name: str) -> bool:
        return bool(self._run(lambda: self._ipr.link_lookup(ifname=name)))

    def link_names(self) -> list[str]:
        return [str(link.get_attr("IFLA_IFNAME")) for link in self._run(lambda: self._ipr.get_links())]

    def _link(self, name: str) -> Any:
        index = self.link_index(name)
        return self._run(lambda: self._ipr.get_links(index))[0]

    def link_mac(self, name: str) -> str:
        """The link-layer address as ``aa:bb:cc:dd:ee:ff`` (empty for a TUN device)."""
        return str(self._link(name).get_attr("IFLA_ADDRESS") or "")

    def link_mtu(self, name: str) -> int:
        return int(self._link(name).get_attr("IFLA_MTU"))

    def link_is_up(self, name: str) -> bool:
        return bool(self._link(name)["flags"] & IFF_UP)

    def link_is_loopback(self, name: str) -> bool:
        """True for a loopback device (IFF_LOOPBACK); LookupError if there is no such link."""
        return bool(self._link(name)["flags"] & IFF_LOOPBACK)

    def set_link_up(self, name: str, up: bool = True) -> None:
        """Set the administrative state; undo restores the state found."""
        index, was_up = self.link_index(name), self.link_is_up(name)
        if was_up == up:
            return
        self._request(
            f"set {name} {'up' if up else 'down'}",
            self._ipr.link,
            "set",
            index=index,
            state="up" if up else "down",
        )
        state = "up" if was_up else "down"
        self._remember(("link-state", index), ("link", "set", {"index": index, "state": state}))

    def set_mtu(self, name: str, mtu: int) -> None:
        """Set the link MTU; undo restores the MTU found."""
        index, old = self.link_index(name), self.link_mtu(name)
        self._request(f"set {name} mtu {mtu}", self._ipr.link, "set", index=index, mtu=mtu)
        self._remember(("link-mtu", index), ("link", "set", {"index": index, "mtu": old}))

    def set_txqueuelen(self, name: str, length: int) -> None:
        """Set the transmit queue length; undo restores the length found."""
        index = self.link_index(name)
        old = int(self._link(name).get_attr("IFLA_TXQLEN"))
        self._request(f"set {name} txqueuelen {length}", self._ipr.link, "set", index=index, txqlen=length)
        self._remember(("link-txqlen", index), ("link", "set", {"index": index, "txqlen": old}))

    def delete_link(self, name: str) -> bool:
        """Delete a link this process created (not recorded: a deletion cannot be undone).

        Deleting a TUN interface wakes a thread blocked reading it (the read fails with EFAULT).
        Returns False if the link was already gone.
        """
        indexes = self._run(lambda: self._ipr.link_lookup(ifname=name))
        if not indexes:
            return False
        self._delete(f"delete link {name}", self._ipr.link, "del", index=indexes[0])
        return True

    def probe_link_kind(self, kind: str) -> str | None:
        """Try to create (then delete) a link of ``kind`` (``ipip``, ``sit``, ``gre``...).

        None if the kernel can make one; otherwise the kernel's reason. Meant for a throwaway
        namespace (:func:`run_in_throwaway_netns`): the probe link is deleted straight away.
        """
        name = f"probe-{kind}"[:15]
        try:
            self._run(self._ipr.link, "add", ifname=name, kind=kind)
        except NetlinkError as error:
            if error.code == errno.EEXIST:
                # The kind exists: a tunnel with the same (wildcard) endpoints is there already, the
                # fallback device (tunl0, sit0, gre0) its module adds to every namespace when it loads.
                return None
            return f"{os.strerror(error.code)} ({error.code})"
        except Exception as error:  # pyroute2 raises its own types for unknown kinds
            return str(error) or type(error).__name__
        self.delete_link(name)
        return None

    # -- addresses ---------------------------------------------------------------------

    def add_address(
        self, name: str, address: Interface, *, nodad: bool = False, exist_ok: bool = False
    ) -> bool:
        """Add ``address`` (with its prefix length) to ``name``; True if this call added it.

        An address already present raises, or with ``exist_ok`` is left alone and not recorded.
        """
        index = self._index(name)
        spec = {
            "index": index,
            "address": str(address.ip),
            "prefixlen": address.network.prefixlen,
            "family": _family(address),
        }
        if nodad:
            spec["flags"] = IFA_F_NODAD

        def add() -> bool:  # a raw request from this thread (issue 14: the MN's carrier loss at home)
            self._raw(lambda sequence: address_message("add", spec, sequence))
            return True

        if self._add_resolved(f"add address {address} on {name}", exist_ok, add, here=True) is None:
            return False
        spec.pop("flags", None)
        self._remember(("addr", index, str(address)), ("addr", "del", spec))
        return True

    def wait_until_local(self, name: str, address: IPv6Address, timeout: float) -> bool:
        """Wait at most ``timeout`` s for ``address`` on ``name`` to be local: its ``local`` route there in
        table local. The kernel adds that route from its DAD worker, after the ``add`` returned, even for
        a ``nodad`` address; until then a packet to the address (e.g. the Neighbour Advertisement answering
        a solicitation it sent, RFC 4861 §7.2.5) is routed, not delivered. False at the timeout."""
        assert self._rtnl is not None
        wanted = (address.packed, self._index(name))
        deadline = time.monotonic() + timeout
        while True:
            try:
                routes = self._rtnl.dump(lambda sequence: route_dump(socket.AF_INET6, sequence))
            except OSError as error:
                logger.warning("route dump: %s", error)
                return False
            if any(local_route(body) == wanted for _kind, body in routes):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(LOCAL_POLL)  # the worker may need this CPU

    def remove_address(self, name: str, address: Interface) -> None:
        """Delete ``address`` from ``name`` (also one this instance did not add) and forget it."""
        index = self.link_index(name)
        self._undo.pop(("addr", index, str(address)), None)
        self._delete(
            f"remove address {address} from {name}",
            self._ipr.addr,
            "del",
            index=index,
            address=str(address.ip),
            prefixlen=address.network.prefixlen,
            family=_family(address),
        )

    def addresses(self, name: str) -> list[Interface]:
        """Every address on ``name`` (both families)."""
        index = self.link_index(name)
        found: list[Interface] = []
        for message in self._run(lambda: self._ipr.get_addr(index=index)):
            text = f"{message.get_attr('IFA_ADDRESS')}/{message['prefixlen']}"
            found.append(IPv4Interface(text) if message["family"] == socket.AF_INET else IPv6Interface(text))
        return found

    # -- routes and rules --------------------------------------------------------------

    def _route_spec(
        self,
        destination: Network,
        interface: str | None,
        gateway: Address | None,
        table: int | None,
        metric: int | None,
        source: Address | None,
    ) -> dict[str, Any]:
        """The pyroute2 arguments of a route (``interface`` resolved in this instance's namespace)."""
        spec: dict[str, Any] = {"dst": str(destination), "family": _family(destination)}
        if interface is not None:
            spec["oif"] = self._index(interface)
        if gateway is not None:
            spec["gateway"] = str(gateway)
        if table is not None:
            spec["table"] = table
        if metric is not None:
            spec["priority"] = metric
        if source is not None:
            spec["prefsrc"] = str(source)
        return spec

    def add_route(
        self,
        destination: Network,
        *,
        interface: str | None = None,
        gateway: IPv4Address | IPv6Address | None = None,
        table: int | None = None,
        metric: int | None = None,
        source: IPv4Address | IPv6Address | None = None,
        mtu: int | None = None,
        scope: int | None = None,
        onlink: bool = False,
        exist_ok: bool = False,
    ) -> bool:
        """Add a route (main table unless ``table``); True if this call added it.

        ``mtu`` sets the route's MTU metric, which the kernel honours for forwarded and local traffic
        (ICMP "fragmentation needed" / Packet Too Big, TCP MSS) even on a link with a larger MTU.
        ``scope`` e.g. RT_SCOPE_LINK (253) for an on-link host route that a gateway route then relies on.
        ``onlink``: the gateway is on ``interface`` even though no address there covers it (RTNH_F_ONLINK).
        """
        extra: dict[str, Any] = {"metrics": {"mtu": mtu}} if mtu else {}
        if scope is not None:
            extra["scope"] = scope
        if onlink:
            extra["flags"] = RTNH_F_ONLINK
        route = (destination, interface, gateway, table, metric, source)

        def add() -> dict[str, Any]:
            spec = self._route_spec(*route)
            self._raw(lambda sequence: route_message("add", spec | extra, sequence))
            return spec

        spec = self._add_resolved(f"add route {destination}", exist_ok, add, here=True)
        if spec is None:
            return False
        self._remember(("route", *sorted(spec.items())), ("route", "del", spec))
        return True

    def remove_route(
        self,
        destination: Network,
        *,
        interface: str | None = None,
        gateway: IPv4Address | IPv6Address | None = None,
        table: int | None = None,
        metric: int | None = None,
        source: IPv4Address | IPv6Address | None = None,
    ) -> bool:
        """Delete a route given as it was added, and forget it; False if there was none."""
        route = (destination, interface, gateway, table, metric, source)

        def delete() -> dict[str, Any]:
            spec = self._route_spec(*route)
            try:
                self._raw(lambda sequence: route_message("del", spec, sequence))
            finally:
                self._undo.pop(("route", *sorted(spec.items())), None)
            return spec

        return self._delete(f"remove route {destination}", delete, here=True)

    def routes(self, family: int = socket.AF_UNSPEC, table: int | None = None) -> list[dict[str, Any]]:
        """Routes as plain dicts (dst, dst_len, oif, gateway, table, priority) for inspection."""
        kwargs: dict[str, Any] = {"family": family} if family else {}
        if table is not None:
            kwargs["table"] = table
        return [
            {
                "dst": message.get_attr("RTA_DST"),
                "dst_len": message["dst_len"],
                "oif": message.get_attr("RTA_OIF"),
                "gateway": message.get_attr("RTA_GATEWAY"),
                "table": message.get_attr("RTA_TABLE") or message["table"],
                "priority": message.get_attr("RTA_PRIORITY"),
                "family": message["family"],
            }
            for message in self._run(lambda: self._ipr.get_routes(**kwargs))
        ]

    def route_get(self, destination: IPv4Address | IPv6Address) -> RouteInfo:
        """How the kernel would send to ``destination`` now."""
        answer = self._request(
            f"route get {destination}",
            self._ipr.route,
            "get",
            dst=str(destination),
            family=_family(destination),
        )[0]
        names = {
            link["index"]: link.get_attr("IFLA_IFNAME") for link in self._run(lambda: self._ipr.get_links())
        }
        source, gateway = answer.get_attr("RTA_PREFSRC"), answer.get_attr("RTA_GATEWAY")
        return RouteInfo(
            str(names.get(answer.get_attr("RTA_OIF"), "")),
            ip_address(source) if source else None,
            ip_address(gateway) if gateway else None,
        )

    def add_rule(
        self,
        source: Network,
        table: int,
        priority: int,
        *,
        interface: str | None = None,
        exist_ok: bool = False,
    ) -> bool:
        """A policy rule ``from source [iif interface] lookup table`` (source routing); True if this call
        added it."""
        spec = _rule_spec(source, table, priority, interface)

        def add() -> bool:
            self._raw(lambda sequence: rule_message("add", spec, sequence))
            return True

        if self._add_resolved(f"add rule from {source} table {table}", exist_ok, add, here=True) is None:
            return False
        self._remember(("rule", *sorted(spec.items())), ("rule", "del", spec))
        return True

    def add_blackhole_rule(self, interface: str, priority: int) -> None:
        """``iif <interface> blackhole``: what arrives on ``interface`` and no earlier rule (or the local
        table) took is dropped, for ingress filtering; undo deletes it."""
        spec = {"iifname": interface, "priority": priority, "action": "FR_ACT_BLACKHOLE"}
        spec["family"] = socket.AF_INET
        self._add(f"add blackhole rule iif {interface}", False, self._ipr.rule, "add", **spec)
        self._remember(("rule", *sorted(spec.items())), ("rule", "del", spec))

    def remove_rule(
        self, source: Network, table: int, priority: int, *, interface: str | None = None
    ) -> None:
        spec = _rule_spec(source, table, priority, interface)
        self._undo.pop(("rule", *sorted(spec.items())), None)
        self._delete(
            f"remove rule from {source}",
            lambda: self._raw(lambda sequence: rule_message("del", spec, sequence)),
            here=True,
        )

    def remove_rules_at(self, priority: int, interface: str, family: int = socket.AF_INET) -> int:
        """Delete every ``iif <interface>`` rule at ``priority`` (whatever its source, table or action),
        also ones this instance did not add: a crashed predecessor's. How many were deleted."""

        def delete_all() -> int:
            deleted = 0
            while deleted < 65536:  # the kernel deletes the first match each time
                try:
                    self._ipr.rule("del", priority=priority, iifname=interface, family=family)
                except NetlinkError as error:
                    if error.code in _GONE:
                        return deleted
                    raise
                deleted += 1
            return deleted

        return int(self._request(f"remove rules at priority {priority} iif {interface}", delete_all))

    def rules(self, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        return [
            {
                "src": message.get_attr("FRA_SRC"),
                "src_len": message["src_len"],
                "table": message.get_attr("FRA_TABLE") or message["table"],
                "priority": message.get_attr("FRA_PRIORITY"),
            }
            for message in self._run(lambda: self._ipr.get_rules(family=family))
        ]

    # -- proxy neighbours --------------------------------------------------------------

    def add_proxy_neighbour(
        self, name: str, address: IPv4Address | IPv6Address, *, exist_ok: bool = False, immediate: bool = True
    ) -> bool:
        """Answer ARP / NS for ``address`` on ``name`` (NTF_PROXY entry; RFC 5944 §4.6 proxy ARP); True if
        this call added it.

        The kernel answers only on links with forwarding on (see :meth:`enable_forwarding`); IPv6
        also needs ``proxy_ndp``, switched on here. ``immediate`` sets the link's ``proxy_delay`` to 0
        (the default delays proxied ARP replies by up to 0.8 s). Both sysctls are restored by undo.
        The kernel adds an existing proxy entry again without a word (no EEXIST), so the entry is looked
        up first: one found is left alone and not recorded (undo never removes what it did not add), and
        raises "File exists" unless ``exist_ok``. Raw requests from the calling thread (issue 9).
        """
        if address.version == 6:
            self.set_sysctl(f"net/ipv6/conf/{name}/proxy_ndp", 1)
        elif immediate:
            self.set_sysctl(f"net/ipv4/neigh/{name}/proxy_delay", 0)

        def add() -> dict[str, Any]:
            spec = self._proxy_spec(name, address)
            if self._proxy_exists(spec):
                raise NetlinkError(errno.EEXIST)
            self._raw(lambda sequence: neigh_message("add", spec, sequence))
            return spec

        spec = self._add_resolved(f"add proxy neighbour {address} on {name}", exist_ok, add, here=True)
        if spec is None:
            return False
        self._remember(("proxy", spec["ifindex"], str(address)), ("neigh", "del", spec))
        return True

    def _neighbour_spec(self, name: str, address: Address) -> dict[str, Any]:
        """pyroute2 arguments naming one neighbour entry (``name`` resolved in this namespace)."""
        return {"dst": str(address), "ifindex": self._index(name), "family": _family(address)}

    def _proxy_spec(self, name: str, address: Address) -> dict[str, Any]:
        """pyroute2 arguments of an NTF_PROXY neighbour entry."""
        return self._neighbour_spec(name, address) | {"flags": NTF_PROXY}

    def _proxy_exists(self, spec: dict[str, Any]) -> bool:
        """Whether the kernel has the proxy entry (``ip neigh get proxy``)."""
        try:
            self._raw(lambda sequence: neigh_message("get", spec, sequence))
        except NetlinkError as error:
            if error.code in _GONE:
                return False
            raise
        return True

    def remove_proxy_neighbour(self, name: str, address: IPv4Address | IPv6Address) -> bool:
        """Delete the NTF_PROXY entry (also one this instance did not add); False if there was none."""

        def delete() -> None:
            spec = self._proxy_spec(name, address)
            self._undo.pop(("proxy", spec["ifindex"], str(address)), None)
            self._raw(lambda sequence: neigh_message("del", spec, sequence))

        return self._delete(f"remove proxy neighbour {address}", delete, here=True)

    def set_neighbour(self, name: str, address: IPv4Address | IPv6Address, link_address: bytes) -> None:
        """A permanent neighbour entry (``ip neigh replace ... nud permanent``): the kernel never asks
        for ``address`` on ``name``; undo deletes it."""
        spec = self._neighbour_spec(name, address)
        try:
            self._raw(lambda sequence: neighbour_message(spec, link_address, NUD_PERMANENT, sequence))
        except NetlinkError as error:
            raise NetlinkFacadeError(
                f"set neighbour {address} on {name}: {os.strerror(error.code)} ({error.code})"
            ) from error
        self._remember(("neigh", spec["ifindex"], str(address)), ("neigh", "del", spec))

    def flush_neighbours(self, name: str) -> int:
        """Forget the IPv4 neighbour entries the kernel learned on ``name`` (permanent ones stay): no
        reachability probe for an old link's neighbours goes out on a new one. The number deleted."""

        def flush() -> int:
            index = _index_of(name)
            learned = [
                message.get_attr("NDA_DST")
                for message in self._ipr.get_neighbours(family=socket.AF_INET, ifindex=index)
                if not message["state"] & (NUD_PERMANENT | NUD_NOARP) and message.get_attr("NDA_DST")
            ]
            for address in learned:
                try:
                    self._ipr.neigh("del", dst=address, ifindex=index, family=socket.AF_INET)
                except NetlinkError as error:
                    if error.code not in _GONE:
                        raise
            return len(learned)

        return int(self._request(f"flush neighbours on {name}", flush))

    def remove_neighbour(self, name: str, address: IPv4Address | IPv6Address) -> None:
        """Delete a neighbour entry set by :meth:`set_neighbour` (gone already is fine)."""

        def delete() -> None:
            spec = self._neighbour_spec(name, address)
            self._undo.pop(("neigh", spec["ifindex"], str(address)), None)
            self._raw(lambda sequence: neigh_message("del", spec, sequence))

        self._delete(f"remove neighbour {address}", delete, here=True)

    # -- sysctls -----------------------------------------------------------------------

    def get_sysctl(self, path: str) -> str:
        """Read ``/proc/sys/<path>`` (e.g. ``net/ipv4/ip_forward``) in this namespace."""
        return self._run(_read_sysctl, path)

    def set_sysctl(self, path: str, value: str | int) -> None:
        """Write ``/proc/sys/<path>``; undo writes back the value found before the first change. Setting
        the value this instance last set (the home agent's ``proxy_delay`` at each new binding) costs
        nothing: no read, no write (issue 9)."""
        wanted = str(value)
        if self._sysctls.get(path) == wanted:
            return
        old = self._run(_swap_sysctl, path, wanted)
        if old != wanted:
            self._remember(("sysctl", path), ("sysctl", path, {"value": old}))
        self._sysctls[path] = wanted

    def enable_forwarding(self, *, ipv4: bool = True, ipv6: bool = True) -> None:
        """Router mode: ``net.ipv4.ip_forward`` and ``net.ipv6.conf.all.forwarding``."""
        if ipv4:
            self.set_sysctl("net/ipv4/ip_forward", 1)
        if ipv6:
            self.set_sysctl("net/ipv6/conf/all/forwarding", 1)

    def set_proxy_arp(self, name: str, enabled: bool = True) -> None:
        """The per-link ``proxy_arp`` switch (proxy for every routed address, RFC 1027 style)."""
        self.set_sysctl(f"net/ipv4/conf/{name}/proxy_arp", int(enabled))

    # -- record keeping ----------------------------------------------------------------

    def _add(
        self, what: str, exist_ok: bool, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> bool:
        try:
            self._run(function, *args, **kwargs)
        except NetlinkError as error:
            if error.code == errno.EEXIST and exist_ok:
                return False
            raise NetlinkFacadeError(f"{what}: {os.strerror(error.code)} ({error.code})") from error
        return True

    def _add_resolved(
        self, what: str, exist_ok: bool, add: Callable[[], R], *, here: bool = False
    ) -> R | None:
        """Run ``add`` (which looks up what it needs and sends the request) in one worker round trip, or
        on the calling thread with ``here`` (raw requests); its result, or None if the object existed and
        ``exist_ok``."""
        try:
            return add() if here else self._run(add)
        except NetlinkError as error:
            if error.code == errno.EEXIST and exist_ok:
                return None
            raise NetlinkFacadeError(f"{what}: {os.strerror(error.code)} ({error.code})") from error

    def _delete(
        self, what: str, function: Callable[..., Any], *args: Any, here: bool = False, **kwargs: Any
    ) -> bool:
        """Run a deletion (on the calling thread with ``here``); False if the object was gone already."""
        try:
            if here:
                function(*args, **kwargs)
            else:
                self._run(function, *args, **kwargs)
        except NetlinkError as error:
            if error.code not in _GONE:
                raise NetlinkFacadeError(f"{what}: {os.strerror(error.code)} ({error.code})") from error
            return False
        return True

    def _remember(self, key: tuple[object, ...], undo: Undo | Callable[[], object]) -> None:
        self._undo.setdefault(key, undo)

    def _revert(self, undo: Undo | Callable[[], object]) -> None:
        """Carry out one recorded undo (on the worker thread)."""
        if callable(undo):
            undo()
            return
        method, command, arguments = undo
        if method == "sysctl":
            _write_sysctl(command, arguments["value"])
        else:
            getattr(self._ipr, method)(command, **arguments)

    @property
    def recorded(self) -> int:
        """How many changes :meth:`undo` would revert."""
        return len(self._undo)

    def undo(self) -> None:
        """Revert every recorded change, newest first; already-vanished objects are skipped, any other
        failure is logged (one warning naming the object) and the rest still undone. Routes, rules,
        neighbour entries and addresses go in raw requests from the calling thread,
        :data:`agents.net.rtnl.BATCH` to a ``send`` (issue 9: 10,000 bindings' routes and proxy entries in
        well under a second); the kernel still takes them one at a time in this order."""
        batch: list[tuple[tuple[object, ...], Undo, Callable[[int], bytes]]] = []

        def send_batch() -> None:
            if not batch:
                return
            assert self._rtnl is not None
            for (key, action, _build), code in zip(
                batch, self._rtnl.request_all([b for _k, _a, b in batch]), strict=True
            ):
                if code and code not in _GONE:
                    logger.warning("undo %s failed: %s", _describe(key, action), os.strerror(code))
            batch.clear()

        for key, action in reversed(list(self._undo.items())):
            build = _raw_undo(action)
            if build is not None and not callable(action):
                batch.append((key, action, build))
                continue
            send_batch()
            try:
                self._run(self._revert, action)
            except NetlinkError as error:
                if error.code not in _GONE:
                    logger.warning("undo %s failed: %s", _describe(key, action), os.strerror(error.code))
            except OSError as error:
                if error.errno not in _GONE:
                    logger.warning("undo %s failed: %s", _describe(key, action), error)
        send_batch()
        self._undo.clear()
        self._sysctls.clear()

    def close(self) -> None:
        """Close the netlink socket and stop the worker thread (no undo; call :meth:`undo` first)."""
        if self._ipr is not None:
            self._run(self._ipr.close)
            self._ipr = None
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None
        self._executor.shutdown(wait=True)

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.undo()
        finally:
            self.close()


def _index_of(name: str) -> int:
    """The index of link ``name`` in the calling thread's namespace (SIOCGIFINDEX: one system call,
    no netlink dump to parse); LookupError if there is none. Call it on the worker thread."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise LookupError(f"no network interface {name!r}") from None


def _rule_spec(source: Network, table: int, priority: int, interface: str | None) -> dict[str, Any]:
    """pyroute2 arguments of a policy rule; ``interface`` limits it to packets arriving there (iif)."""
    spec: dict[str, Any] = {
        "src": str(source.network_address),
        "src_len": source.prefixlen,
        "table": table,
        "priority": priority,
        "family": _family(source),
    }
    if interface is not None:
        spec["iifname"] = interface
    return spec


def _raw_undo(action: Undo | Callable[[], object]) -> Callable[[int], bytes] | None:
    """The raw rtnetlink request reverting a recorded route, rule, neighbour entry or address
    (:mod:`agents.net.rtnl`), or None where only pyroute2 encodes it (link settings, sysctls, a blackhole
    rule, an argument the raw encoders do not know). Issue 9: a home agent's 10,000 bindings torn down in
    batches; issue 14: a mobile node leaving home undoes its home link's state on the carrier loss,
    before it can solicit on the next link, without pyroute2's Python and the hop to its worker thread."""
    if callable(action):
        return None
    method, command, arguments = action
    encoders: dict[str, Callable[..., bytes]] = {
        "route": functools.partial(route_message, "del"),
        "rule": functools.partial(rule_message, "del"),
        "neigh": functools.partial(neigh_message, "del"),
        "addr": address_deletion,
    }
    encode = encoders.get(method)
    if encode is None or command != "del" or (method == "rule" and "action" in arguments):
        return None
    try:
        encode(arguments)
    except (ValueError, KeyError, TypeError):  # an argument only pyroute2 encodes
        return None
    return lambda sequence: encode(arguments, sequence)


def _describe(key: tuple[object, ...], action: Undo | Callable[[], object]) -> str:
    """A recorded change as text for a warning: its kind and what names the object (``route
    10.1.0.7/32``, ``proxy 10.1.0.7``, ``sysctl net/ipv4/ip_forward``...)."""
    if callable(action):
        return str(key[0])
    _method, command, arguments = action
    if key[0] == "sysctl":
        return f"sysctl {command}"
    named = arguments.get("dst") or arguments.get("src") or arguments.get("address") or arguments.get("index")
    return f"{key[0]} {named}" if named is not None else str(key[0])


def _swap_sysctl(path: str, value: str) -> str:
    """Write ``value`` unless it is there already; the value found."""
    old = _read_sysctl(path)
    if old != value:
        _write_sysctl(path, value)
    return old


def _read_sysctl(path: str) -> str:
    with open(f"/proc/sys/{path}", encoding="ascii") as handle:
        return handle.read().strip()


def _write_sysctl(path: str, value: str) -> None:
    with open(f"/proc/sys/{path}", "w", encoding="ascii") as handle:
        handle.write(value)


def run_in_throwaway_netns(function: Callable[[], R]) -> R:
    """Run ``function`` on a fresh thread inside a brand-new, unnamed network namespace.

    The namespace disappears with the thread, taking anything made there with it; the caller's
    namespace is never touched. Needs CAP_SYS_ADMIN (OSError otherwise).
    """
    outcome: dict[str, Any] = {}

    def worker() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            outcome["error"] = OSError(
                ctypes.get_errno(), f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}"
            )
            return
        try:
            outcome["value"] = function()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=worker, name="throwaway-netns")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


@contextmanager
def netns_entered(name: str) -> Iterator[None]:
    """Run the calling thread inside the named namespace (``/run/netns/<name>``), then come back.

    Sockets, TUN devices and :class:`Netlink` objects created inside stay in that namespace after
    the block; threads started inside inherit it.
    """
    target = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with netns_fd_entered(target, name):
            yield
    finally:
        os.close(target)


@contextmanager
def netns_fd_entered(fd: int, label: str = "the namespace") -> Iterator[None]:
    """Run the calling thread inside the network namespace open as ``fd`` (``label`` names it in errors),
    then come back to the thread's own."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {label}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")
    finally:
        os.close(home)
