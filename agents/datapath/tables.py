"""Pure forwarding and acceptance decisions of the userspace datapath (no sockets, no threads).

Lookups take packed address bytes straight out of the packet buffer, so the hot path builds no
``ipaddress`` objects. A mobile node's table is an immutable snapshot, swapped in whole on a change. The
home agent's table holds thousands of bindings, so it is changed in place, one binding at a time
(:meth:`HomeAgentTable.put`, :meth:`HomeAgentTable.remove`: the cost is that binding's size, not the
table's), while the packet threads read it without a lock. That is safe because every change is a
sequence of single dict stores and deletions (each atomic under the GIL) and a tuple swap, ordered so
that any one lookup finds either the old or the new entry, never a half-written one: new entries are
stored before stale ones are deleted, and a prefix length leaves the search order before its bucket
could empty. Only one thread may change a table at a time (the datapath holds its lock).

* Outbound: a packet read from the tunnel interface maps to zero or more :data:`Path` s; a path is the
  list of encapsulations to apply, innermost first (two for RFC 5454 code 0: IPv6-in-IPv4 to the home
  address, then the home address's care-of tunnel).
* Inbound: an outer source, the outer protocol and an inner source give ``None`` (accept) or the
  :class:`~agents.datapath.base.DropReason` (RFC 3024 §4.3.2, RFC 4213 §3.6, RFC 5454 §3.3.2 and §4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Generic, NamedTuple, TypeVar

from agents.datapath.base import DropReason, Encapsulation, TunnelTarget, ipv4_protocol, ipv6_protocol
from agents.datapath.projection import HomeBinding, compile_binding
from agents.mip.common.bindings import Copy
from agents.mip.wire.ip import PROTO_GRE, PROTO_IPV6

T = TypeVar("T")


PROTO_UDP = 17
"""A :class:`Hop` with this protocol is RFC 3519 UDP tunnelling: MIP Tunnel Data to ``destination``:``port``
from the agent's UDP 434 socket (Next Header 4 for IPv4, 41 for IPv6, RFC 5454 §3.9)."""


class Hop(NamedTuple):
    """One encapsulation: outer source, outer destination (packed) and outer IP protocol; ``port`` is the
    far end's UDP port for a :data:`PROTO_UDP` hop (the socket chooses the source)."""

    source: bytes
    destination: bytes
    protocol: int
    port: int = 0


Path = tuple[Hop, ...]
"""Encapsulations to apply to one copy of the packet, innermost first."""

NO_PATHS: tuple[Path, ...] = ()


def is_link_scope(address: bytes) -> bool:
    """fe80::/10 link-local or ff00::/8 multicast: carried over the home-address tunnel (RFC 5454 §3.3.2)."""
    return address[0] == 0xFF or (address[0] == 0xFE and address[1] & 0xC0 == 0x80)


def _is_link_local(address: bytes) -> bool:
    """fe80::/10, the only non-prefix source accepted, and only from a home address (RFC 5454 §3.7.1)."""
    return address[0] == 0xFE and address[1] & 0xC0 == 0x80


class PrefixMap(Generic[T]):
    """Longest-prefix match over IPv6 networks keyed by packed 16-byte addresses.

    :meth:`set` and :meth:`discard` may run while other threads call :meth:`lookup`: a bucket, once
    made, is never deleted, and ``_lengths`` (the lengths with entries, longest first) is replaced
    whole, so a lookup iterating an older tuple still finds every bucket it names.
    """

    def __init__(self, items: Iterable[tuple[IPv6Network, T]] = ()) -> None:
        self._by_length: dict[int, dict[int, T]] = {}
        self._lengths: tuple[int, ...] = ()
        for network, value in items:
            self.set(network, value)

    def lookup(self, address: bytes) -> T | None:
        """The value of the longest registered prefix containing ``address``, or None."""
        if not self._lengths:
            return None
        number = int.from_bytes(address, "big")
        for length in self._lengths:
            hit = self._by_length[length].get(number >> (128 - length))
            if hit is not None:
                return hit
        return None

    def set(self, network: IPv6Network, value: T) -> None:
        """Map ``network`` to ``value`` (replacing an earlier value for exactly that network)."""
        length = network.prefixlen
        bucket = self._by_length.setdefault(length, {})
        bucket[int(network.network_address) >> (128 - length)] = value
        if length not in self._lengths:
            self._lengths = tuple(sorted((*self._lengths, length), reverse=True))

    def discard(self, network: IPv6Network, expected: T) -> None:
        """Forget ``network`` if it still maps to ``expected`` (identity): a value another owner has
        stored since is kept."""
        length = network.prefixlen
        bucket = self._by_length.get(length)
        key = int(network.network_address) >> (128 - length)
        if bucket is None or bucket.get(key) is not expected:
            return
        if len(bucket) == 1:  # leave the search order first: no lookup then needs the bucket
            self._lengths = tuple(other for other in self._lengths if other != length)
        del bucket[key]

    def contents(self) -> tuple[tuple[int, ...], dict[tuple[int, int], T]]:
        """The search order and every entry as ``(length, key) → value`` (for comparisons in tests)."""
        entries = {}
        for length, bucket in self._by_length.items():
            entries.update({(length, key): value for key, value in bucket.items()})
        return self._lengths, entries


class _PrefixOwner(NamedTuple):
    """Who may send from a registered prefix: outer source → outer protocol, plus the binding's endpoints
    (its home address first)."""

    allowed: dict[bytes, int]
    endpoints: tuple[bytes, ...]


class _Entries(NamedTuple):
    """Everything one binding puts into a :class:`HomeAgentTable`, kept so a change can undo exactly it."""

    ipv4_paths: tuple[Path, ...]
    home_paths: tuple[Path, ...]
    agent: bytes
    accept: dict[bytes, int]
    """care-of + home address → outer protocol (RFC 3024 §4.3.2)."""
    care_ofs: tuple[bytes, ...]
    prefix_paths: dict[IPv6Network, tuple[Path, ...]]
    prefix_owners: dict[IPv6Network, _PrefixOwner]
    udp_accept: dict[bytes, bytes]
    """UDP care-of address + port (6 bytes) → home address (RFC 3519 §4.8)."""


_NO_ENTRIES = _Entries((), (), b"", {}, (), {}, {}, {})


def _entries(binding: HomeBinding) -> _Entries:
    """The paths and acceptance rules of one binding, compiled from the core's answers
    (:mod:`agents.datapath.projection`: RFC 5944 §3.6.1.3, §4.2.3, RFC 3024 §4.3.2, RFC 5454 §3.3.2).

    Equal parts are shared (the home-address hop, a code-0 prefix's paths) and sets are tuples: a home
    agent holds thousands of these, and fewer container objects make shorter garbage-collector passes.
    """
    rules = compile_binding(binding)
    home, agent = binding.home_address.packed, binding.home_agent.packed
    via_home = Hop(agent, home, PROTO_IPV6)
    care_of_hops = tuple(_hop(agent, copy) for copy in rules.copies)
    care_ofs = tuple(address.packed for address in rules.ipv4_sources)
    home_paths = tuple(_path(agent, via_home, copy) for copy in rules.home_copies)
    endpoints = tuple(dict.fromkeys((home, *care_ofs)))
    prefix_paths: dict[IPv6Network, tuple[Path, ...]] = {}
    prefix_owners: dict[IPv6Network, _PrefixOwner] = {}
    compiled: dict[int, tuple[tuple[Path, ...], _PrefixOwner]] = {}  # one per shared rule
    for prefix, rule in rules.prefixes.items():
        if id(rule) not in compiled:
            paths = tuple(_path(agent, via_home, copy) for copy in rule.copies)
            allowed = {address.packed: protocol for address, protocol in rule.sources.items()}
            shared = home_paths if paths == home_paths else paths
            compiled[id(rule)] = (shared, _PrefixOwner(allowed, endpoints))
        prefix_paths[prefix], prefix_owners[prefix] = compiled[id(rule)]
    return _Entries(
        tuple((hop,) for hop in care_of_hops),
        home_paths,
        agent,
        {address.packed + home: protocol for address, protocol in rules.ipv4_sources.items()},
        care_ofs,
        prefix_paths,
        prefix_owners,
        {
            hop.destination + hop.port.to_bytes(2, "big"): home
            for hop in care_of_hops
            if hop.protocol == PROTO_UDP
        },
    )


def _hop(agent: bytes, copy: Copy) -> Hop:
    """The outermost header of one copy: to the care-of address, or MIP Tunnel Data to a NAT's port."""
    port = copy.care_of.port if copy.protocol == PROTO_UDP else None
    return Hop(agent, copy.care_of.address.packed, copy.protocol, port or 0)


def _path(agent: bytes, via_home: Hop, copy: Copy) -> Path:
    """One copy's encapsulations, innermost first (code 0: the home-address hop inside)."""
    return (via_home, _hop(agent, copy)) if copy.via_home else (_hop(agent, copy),)


class HomeAgentTable:
    """Decisions of the home agent for a set of bindings, changed one binding at a time."""

    ipv4_key_offset = 16
    """IPv4 paths are keyed by the destination (bytes 16–19 of the header); see :attr:`ipv4_routes`."""

    def __init__(self, bindings: Iterable[HomeBinding] = ()) -> None:
        self._ipv4_paths: dict[bytes, tuple[Path, ...]] = {}
        self.ipv4_routes = self._ipv4_paths
        """Home address → paths: the per-packet code indexes this dict directly."""
        self._ipv4_accept: dict[bytes, int] = {}  # care-of + home address → outer protocol
        self._home_paths: dict[bytes, tuple[Path, ...]] = {}  # home address → IPv6-via-HoA paths
        self._agent_of: dict[bytes, bytes] = {}  # home address → its home agent's address
        self._care_ofs: dict[bytes, int] = {}  # care-of address → how many bindings use it
        self._ipv6_paths: PrefixMap[tuple[Path, ...]] = PrefixMap()
        self._ipv6_owners: PrefixMap[_PrefixOwner] = PrefixMap()
        self._entries: dict[bytes, _Entries] = {}  # home address → what its binding put here
        self._udp_accept: dict[bytes, bytes] = {}  # NAT address + port → home address (RFC 3519)
        for binding in bindings:
            self.put(binding)

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, binding: HomeBinding) -> None:
        """Add the binding of a home address, or replace it: O(its care-ofs and prefixes).

        Each IPv6 prefix belongs to one binding (the datapath refuses overlaps, RFC 5454 §3.3).
        """
        home, new = binding.home_address.packed, _entries(binding)
        old = self._entries.get(home, _NO_ENTRIES)
        self._agent_of[home] = new.agent
        self._ipv4_accept.update(new.accept)
        self._udp_accept.update(new.udp_accept)
        for care_of in set(new.care_ofs).difference(old.care_ofs):
            self._care_ofs[care_of] = self._care_ofs.get(care_of, 0) + 1
        self._ipv4_paths[home] = new.ipv4_paths
        self._home_paths[home] = new.home_paths
        for prefix, paths in new.prefix_paths.items():
            self._ipv6_paths.set(prefix, paths)
            self._ipv6_owners.set(prefix, new.prefix_owners[prefix])
        self._entries[home] = new
        self._forget(old, new)

    def remove(self, home_address: IPv4Address) -> None:
        """Remove the binding of ``home_address`` (nothing if it has none)."""
        home = home_address.packed
        old = self._entries.pop(home, None)
        if old is None:
            return
        del self._ipv4_paths[home], self._home_paths[home]
        self._forget(old, _NO_ENTRIES)
        del self._agent_of[home]

    def _forget(self, old: _Entries, kept: _Entries) -> None:
        """Delete what ``old`` stored and ``kept`` (its replacement) did not store again."""
        for key in old.accept.keys() - kept.accept.keys():
            self._ipv4_accept.pop(key, None)
        for key in old.udp_accept.keys() - kept.udp_accept.keys():
            if self._udp_accept.get(key) == old.udp_accept[key]:
                del self._udp_accept[key]
        for care_of in set(old.care_ofs).difference(kept.care_ofs):
            left = self._care_ofs[care_of] - 1
            if left:
                self._care_ofs[care_of] = left
            else:
                del self._care_ofs[care_of]
        for prefix in old.prefix_paths.keys() - kept.prefix_paths.keys():
            self._ipv6_paths.discard(prefix, old.prefix_paths[prefix])
            self._ipv6_owners.discard(prefix, old.prefix_owners[prefix])

    def contents(self) -> dict[str, object]:
        """Every lookup structure, as plain values: equal contents make equal decisions (for tests)."""
        return {
            "ipv4_paths": dict(self._ipv4_paths),
            "ipv4_accept": dict(self._ipv4_accept),
            "udp_accept": dict(self._udp_accept),
            "home_paths": dict(self._home_paths),
            "agent_of": dict(self._agent_of),
            "care_ofs": dict(self._care_ofs),
            "ipv6_paths": self._ipv6_paths.contents(),
            "ipv6_owners": self._ipv6_owners.contents(),
        }

    # -- outbound -------------------------------------------------------------------------

    def ipv4_paths(self, source: bytes, destination: bytes) -> tuple[Path, ...]:
        """Paths for an IPv4 packet to ``destination`` (a home address) leaving the tunnel interface."""
        return self._ipv4_paths.get(destination, NO_PATHS)

    def ipv6_paths(self, source: bytes, destination: bytes) -> tuple[Path, ...]:
        """Paths for IPv6: a registered prefix, or a link-local fe80::<home address> (RFC 4213 §3.7)."""
        paths = self._ipv6_paths.lookup(destination)
        if paths is not None:
            return paths
        if destination[:12] == _LINK_LOCAL_EMBEDDED:
            return self._home_paths.get(destination[12:], NO_PATHS)
        return NO_PATHS

    # -- inbound --------------------------------------------------------------------------

    def check_ipv4(self, outer_source: bytes, protocol: int, inner_source: bytes) -> DropReason | None:
        """RFC 3024 §4.3.2: outer source = a care-of address, inner source = its home address,
        and the negotiated encapsulation."""
        expected = self._ipv4_accept.get(outer_source + inner_source)
        if expected == protocol:
            return None
        if expected is not None:
            return DropReason.ENCAPSULATION
        return DropReason.INNER_SOURCE if outer_source in self._care_ofs else DropReason.UNKNOWN_OUTER_SOURCE

    def check_ipv6(
        self, outer_source: bytes, protocol: int, inner_source: bytes, nested: bool = False
    ) -> DropReason | None:
        """RFC 5454 §3.3.2, §4: the inner source is inside a registered prefix and the outer source is
        the endpoint of that prefix's target; link-local sources only over the home-address tunnel.

        ``nested``: the IPv6-in-IPv4 header was inside an accepted care-of tunnel (the engine verified
        that layer with :meth:`check_ipv4`). A home address as the source of an un-nested one is a
        spoof from the visited link (RFC 3024 §4.3.2): the home-address tunnel only exists inside the
        care-of tunnel.
        """
        if not nested and outer_source in self._agent_of and outer_source not in self._care_ofs:
            return DropReason.UNNESTED_HOME_ADDRESS
        known = outer_source in self._care_ofs or outer_source in self._agent_of
        owner = self._ipv6_owners.lookup(inner_source)
        if owner is None:
            if _is_link_local(inner_source) and outer_source in self._agent_of:
                return None if protocol == PROTO_IPV6 else DropReason.ENCAPSULATION
            return DropReason.INNER_SOURCE if known else DropReason.UNKNOWN_OUTER_SOURCE
        expected = owner.allowed.get(outer_source)
        if expected == protocol:
            return None
        if expected is not None:
            return DropReason.ENCAPSULATION
        if outer_source in owner.endpoints:
            return DropReason.TUNNEL_TARGET
        return DropReason.INNER_SOURCE if known else DropReason.UNKNOWN_OUTER_SOURCE

    def decapsulate_again(self, inner_source: bytes, inner_destination: bytes) -> bool:
        """An accepted inner IPv4 packet of protocol 41 from a home address to its home agent is the
        code-0 IPv6-in-IPv4 tunnel: strip that header too (RFC 5454 §3.3.2)."""
        return self._agent_of.get(inner_source) == inner_destination

    def check_udp(self, outer: bytes, version: int, inner_source: bytes) -> DropReason | None:
        """RFC 3519 §4.8: Tunnel Data only from a registered NAT address *and* port (``outer``: 4 address
        bytes + 2 port bytes); inside, IPv4 from that binding's home address, IPv6 from one of its
        prefixes or its link-local fe80::<home address> (RFC 5454 §3.9, §4)."""
        home = self._udp_accept.get(outer)
        if home is None:
            return DropReason.UNKNOWN_OUTER_SOURCE
        if version == 4:
            return None if inner_source == home else DropReason.INNER_SOURCE
        owner = self._ipv6_owners.lookup(inner_source)
        if owner is not None and owner.endpoints[0] == home:
            return None
        if inner_source == _LINK_LOCAL_EMBEDDED + home:
            return None
        return DropReason.INNER_SOURCE


class MobileNodeTable:
    """Decisions of a mobile node with at most one tunnel to its home agent."""

    ipv4_key_offset = 12
    """IPv4 paths are keyed by the source (bytes 12–15): only the home address is reverse tunnelled."""

    def __init__(
        self,
        home_address: IPv4Address | None = None,
        home_agent: IPv4Address | None = None,
        care_of: IPv4Address | None = None,
        encapsulation: Encapsulation = Encapsulation.IP_IN_IP,
        *,
        reverse_tunnel: bool = True,
        sources: Mapping[IPv6Network, TunnelTarget] | None = None,
        udp_port: int | None = None,
    ) -> None:
        """``care_of`` None: a foreign agent's care-of address (the FA tunnels IPv4; RFC 3024 §5).
        ``udp_port``: the HA's UDP port when the tunnel runs in UDP through a NAT (RFC 3519): every
        packet, IPv4 or IPv6, goes as Tunnel Data to it (RFC 5454 §3.9)."""
        self._home = home_address.packed if home_address else b""
        self._agent = home_agent.packed if home_agent else b""
        self._protocol = ipv4_protocol(encapsulation)
        self._udp_peer = self._agent + udp_port.to_bytes(2, "big") if udp_port is not None else b""
        self._ipv4: tuple[Path, ...] = NO_PATHS
        self._via_home: tuple[Path, ...] = NO_PATHS
        self._via_care_of: tuple[Path, ...] = NO_PATHS
        if home_address and home_agent and udp_port is not None:
            udp = ((Hop(b"", self._agent, PROTO_UDP, udp_port),),)
            self._ipv4 = udp if reverse_tunnel else NO_PATHS
            self._via_home = self._via_care_of = udp
        elif home_address and home_agent:
            outer = (Hop(care_of.packed, self._agent, self._protocol),) if care_of else ()
            if care_of and reverse_tunnel:
                self._ipv4 = (outer,)
            self._via_home = ((Hop(self._home, self._agent, PROTO_IPV6), *outer),)
            if care_of and encapsulation is not Encapsulation.MINIMAL:
                self._via_care_of = ((Hop(care_of.packed, self._agent, ipv6_protocol(encapsulation)),),)
        self._sources: PrefixMap[TunnelTarget] = PrefixMap((sources or {}).items())
        self.ipv4_routes: dict[bytes, tuple[Path, ...]] = {self._home: self._ipv4} if self._ipv4 else {}

    def ipv4_paths(self, source: bytes, destination: bytes) -> tuple[Path, ...]:
        """Reverse tunnelling of packets from the home address (RFC 3024 §5.1 co-located case)."""
        return self.ipv4_routes.get(source, NO_PATHS)

    def ipv6_paths(self, source: bytes, destination: bytes) -> tuple[Path, ...]:
        """Link-local and multicast over the home-address tunnel; other sources by their prefix's target."""
        if is_link_scope(source) or is_link_scope(destination):
            return self._via_home
        target = self._sources.lookup(source)
        if target is TunnelTarget.CARE_OF and self._via_care_of:
            return self._via_care_of
        return self._via_home if target is not None else NO_PATHS

    def check_ipv4(self, outer_source: bytes, protocol: int, inner_source: bytes) -> DropReason | None:
        """RFC 4213 §3.6 / RFC 2003: only the home agent may tunnel to us, with the negotiated protocol."""
        if outer_source != self._agent or not self._agent:
            return DropReason.UNKNOWN_OUTER_SOURCE
        return None if protocol == self._protocol else DropReason.ENCAPSULATION

    def check_ipv6(
        self, outer_source: bytes, protocol: int, inner_source: bytes, nested: bool = False
    ) -> DropReason | None:
        """Only from the home agent, nested or not (through a foreign agent the FA strips the care-of
        layer); IPv6-in-IPv4, or GRE when GRE was negotiated (RFC 5454 §3.3.2)."""
        if outer_source != self._agent or not self._agent:
            return DropReason.UNKNOWN_OUTER_SOURCE
        allowed = protocol == PROTO_IPV6 or (protocol == PROTO_GRE and self._protocol == PROTO_GRE)
        return None if allowed else DropReason.ENCAPSULATION

    def decapsulate_again(self, inner_source: bytes, inner_destination: bytes) -> bool:
        """IPv6-in-IPv4 from the home agent to our home address, nested in the care-of tunnel."""
        return bool(self._agent) and inner_source == self._agent and inner_destination == self._home

    def check_udp(self, outer: bytes, version: int, inner_source: bytes) -> DropReason | None:
        """RFC 3519 §4.8: Tunnel Data only from the home agent's address and port, while in UDP mode."""
        return None if self._udp_peer and outer == self._udp_peer else DropReason.UNKNOWN_OUTER_SOURCE


_LINK_LOCAL_EMBEDDED = IPv6Address("fe80::").packed[:12]
