"""The home agent's mobility binding table (RFC 5944 §3.8.1; RFC 5454 §3.3.2).

One :class:`MobilityBinding` per home address, holding care-of entries (several when simultaneous
bindings are kept, RFC 5944 §3.6.1.3) and the registered IPv6 prefixes with their tunnelling mode.
A prefix ownership index refuses prefixes that overlap another mobile node's (RFC 5454 §3.3).
The table is plain data: it never reads a clock, and every method that ages entries takes ``now``.
What the datapath does with a binding is decided here too, once (:class:`Copy`, :func:`ipv4_copies`,
:func:`ipv6_copies`, :func:`ipv4_sources`, :func:`ipv6_sources`): a copy per care-of address, how IPv6 of a
prefix travels, which outer sources reverse tunnelling is accepted from; the datapath backends compile
these answers (:mod:`agents.datapath.projection`) and :class:`BindingTable` answers the same questions
for the core.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import NamedTuple

from agents.mip.common.config import Encapsulation
from agents.mip.wire.ip import PROTO_GRE, PROTO_IPIP, PROTO_IPV6, PROTO_MINIMAL, PROTO_UDP

_MIN_HEAP_COMPACTION = 64
_ALL_ONES = (1 << 128) - 1
_HOSTMASKS = tuple((1 << (128 - length)) - 1 for length in range(129))
_NETMASKS = tuple(_ALL_ONES ^ hostmask for hostmask in _HOSTMASKS)


class TunnelTarget(StrEnum):
    """Where IPv6 for a prefix is tunnelled: Prefix Reply code 0 or 1 (RFC 5454 §2.2, §3.3.2)."""

    HOME_ADDRESS = "home-address"
    CARE_OF = "care-of"


UNKNOWN_PORT = 0
"""The UDP port of a "half bound" binding (RFC 3519 §4.6, §6.1.2): a co-located address registered through
an FA (R flag), whose NAT port the HA learns from the MN's first keepalive. Nothing is sent to it."""


@dataclass(frozen=True, order=True)
class CareOf:
    """A care-of address, with the UDP port when RFC 3519 UDP tunnelling is in use."""

    address: IPv4Address
    port: int | None = None

    def __str__(self) -> str:
        if self.port == UNKNOWN_PORT:
            return f"{self.address}:?"  # half bound: the port comes with the first keepalive
        return str(self.address) if self.port is None else f"{self.address}:{self.port}"


@dataclass(frozen=True)
class PrefixBinding:
    """A registered IPv6 prefix; a link-local (Prefix Length 255) is held as a /128 (RFC 5454 §3.7.1)."""

    prefix: IPv6Network
    target: TunnelTarget
    link_local: bool = False

    def to_dict(self) -> dict[str, object]:
        return {"prefix": str(self.prefix), "target": str(self.target), "link_local": self.link_local}


@dataclass(frozen=True)
class CareOfEntry:
    """One accepted registration of a care-of address (RFC 5944 §3.8.1)."""

    care_of: CareOf
    encapsulation: Encapsulation
    reverse_tunnel: bool
    colocated: bool
    lifetime: int
    registered_at: float
    expires_at: float
    identification: int
    request_source: tuple[IPv4Address, int]
    awaiting_keepalive: bool = False
    """R flag: the NAT port is learnt (or confirmed) from the MN's next keepalive, from the request's
    source address and any port (RFC 3519 §4.3, §4.6)."""
    previous_port: int | None = None
    """R flag: the port an earlier keepalive had bound this address to, before this registration made the
    binding half bound again (nothing is sent there meanwhile, RFC 3519 §4.6); reported, never used."""

    def remaining(self, now: float) -> float:
        """Seconds left before expiry (``inf`` for an infinite lifetime)."""
        return max(0.0, self.expires_at - now)


@dataclass
class MobilityBinding:
    """Everything the home agent holds for one home address."""

    home_address: IPv4Address
    care_ofs: dict[CareOf, CareOfEntry] = field(default_factory=dict)
    prefixes: dict[IPv6Network, PrefixBinding] = field(default_factory=dict)

    def to_dict(self, now: float) -> dict[str, object]:
        """A JSON-able view for the control socket."""
        return {
            "home_address": str(self.home_address),
            "care_ofs": [_entry_to_dict(entry, now) for entry in self.care_ofs.values()],
            "prefixes": [binding.to_dict() for binding in self.prefixes.values()],
        }


def _entry_to_dict(entry: CareOfEntry, now: float) -> dict[str, object]:
    remaining = entry.remaining(now)
    return {
        "care_of": str(entry.care_of.address),
        "port": entry.care_of.port,
        "encapsulation": str(entry.encapsulation),
        "reverse_tunnel": entry.reverse_tunnel,
        "colocated": entry.colocated,
        "lifetime": entry.lifetime,
        "remaining": None if math.isinf(remaining) else round(remaining, 3),
        "awaiting_keepalive": entry.awaiting_keepalive,
    }


# -- what the datapath does with a binding: decided here, once ---------------------------------------
# The datapath backends only compile these answers into their tables (agents.datapath.projection);
# BindingTable's view below answers the same questions for the core (and for the property test that
# shows the compiled tables agree with it).


class Copy(NamedTuple):
    """One copy of a packet for a home address or prefix: one per care-of address (RFC 5944 §3.6.1.3)."""

    care_of: CareOf
    protocol: int
    """The outer protocol to the care-of address: 4 IP-in-IP, 47 GRE, 55 minimal, 41 IPv6 straight to
    it (code 1), 17 MIP Tunnel Data in UDP (RFC 3519)."""
    via_home: bool = False
    """IPv6 for code 0: IPv6-in-IPv4 to the home address, nested in the care-of tunnel (RFC 5454 §3.3.2)."""


_IPV4_PROTOCOLS = {
    Encapsulation.IP_IN_IP: PROTO_IPIP,
    Encapsulation.GRE: PROTO_GRE,
    Encapsulation.MINIMAL: PROTO_MINIMAL,
}


def ipv4_protocol(encapsulation: Encapsulation) -> int:
    """The outer IP protocol carrying IPv4: 4 (RFC 2003), 47 (RFC 2784) or 55 (RFC 2004)."""
    return _IPV4_PROTOCOLS[encapsulation]


def ipv6_protocol(encapsulation: Encapsulation) -> int:
    """The outer IP protocol carrying IPv6 straight to a care-of address (RFC 5454 §3.3.2): 41 for IP-in-IP
    (RFC 4213), 47 for GRE; minimal encapsulation cannot carry IPv6 (ValueError)."""
    if encapsulation is Encapsulation.MINIMAL:
        raise ValueError("minimal encapsulation cannot carry IPv6 (RFC 5454 §3.3.2)")
    return PROTO_GRE if encapsulation is Encapsulation.GRE else PROTO_IPV6


def encapsulations(binding: MobilityBinding) -> dict[CareOf, Encapsulation]:
    """Each care-of address of ``binding`` with its encapsulation."""
    return {care_of: entry.encapsulation for care_of, entry in binding.care_ofs.items()}


def effective_target(prefix: IPv6Network, target: TunnelTarget) -> TunnelTarget:
    """A link-local always rides the home-address tunnel (RFC 5454 §3.7.1), whatever was registered."""
    return TunnelTarget.HOME_ADDRESS if prefix.is_link_local else target


def embedded_home_address(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address of fe80::<IPv4 address> (RFC 4213 §3.7), or None."""
    packed = address.packed
    return IPv4Address(packed[12:]) if packed[:12] == _LINK_LOCAL_EMBEDDED else None


_LINK_LOCAL_EMBEDDED = IPv6Address("fe80::").packed[:12]


def ipv4_copies(care_ofs: Mapping[CareOf, Encapsulation]) -> tuple[Copy, ...]:
    """A copy to every care-of address except a half-bound one, whose port is not known yet (RFC 3519
    §4.6); UDP care-ofs get MIP Tunnel Data (RFC 3519 §3.3)."""
    return tuple(
        Copy(care_of, PROTO_UDP if care_of.port is not None else ipv4_protocol(encapsulation))
        for care_of, encapsulation in care_ofs.items()
        if care_of.port != UNKNOWN_PORT
    )


def ipv6_copies(
    target: TunnelTarget, care_ofs: Mapping[CareOf, Encapsulation], ipv4: tuple[Copy, ...] | None = None
) -> tuple[Copy, ...]:
    """IPv6 rides the UDP tunnel itself (RFC 5454 §3.9); code 1 goes straight to the care-of address
    unless its encapsulation is minimal, which cannot carry IPv6; else nested via the home address
    (RFC 5454 §3.3.2). ``ipv4``: :func:`ipv4_copies` of ``care_ofs``, when the caller has it."""
    copies = []
    for copy in ipv4_copies(care_ofs) if ipv4 is None else ipv4:
        encapsulation = care_ofs[copy.care_of]
        if copy.protocol == PROTO_UDP:
            copies.append(copy)
        elif target is TunnelTarget.CARE_OF and encapsulation is not Encapsulation.MINIMAL:
            copies.append(Copy(copy.care_of, ipv6_protocol(encapsulation)))
        else:
            copies.append(Copy(copy.care_of, copy.protocol, via_home=True))
    return tuple(copies)


def ipv4_sources(
    care_ofs: Mapping[CareOf, Encapsulation], copies: tuple[Copy, ...] | None = None
) -> dict[IPv4Address, int]:
    """Outer source → outer protocol accepted for reverse-tunnelled IPv4 from the home address: each
    IP-level care-of with its negotiated encapsulation (RFC 3024 §4.3.2; UDP ones are checked by port).
    ``copies``: :func:`ipv4_copies` of ``care_ofs``, when the caller has it."""
    copies = ipv4_copies(care_ofs) if copies is None else copies
    return {copy.care_of.address: copy.protocol for copy in copies if copy.protocol != PROTO_UDP}


def ipv6_sources(
    home_address: IPv4Address, target: TunnelTarget, care_ofs: Mapping[CareOf, Encapsulation]
) -> dict[IPv4Address, int]:
    """Outer source → outer protocol accepted for IPv6 from a prefix: the endpoints its copies go to
    (RFC 5454 §3.3.2): a care-of address (code 1) or the home address (IPv6-in-IPv4, code 0)."""
    return sources_of(home_address, ipv6_copies(target, care_ofs))


def sources_of(home_address: IPv4Address, copies: tuple[Copy, ...]) -> dict[IPv4Address, int]:
    """:func:`ipv6_sources` from the prefix's :func:`ipv6_copies` (UDP ones are checked by port)."""
    sources: dict[IPv4Address, int] = {}
    for copy in copies:
        if copy.protocol == PROTO_UDP:
            continue
        if copy.via_home:
            sources[home_address] = PROTO_IPV6
        else:
            sources[copy.care_of.address] = copy.protocol
    return sources


@dataclass(frozen=True)
class PrefixChanges:
    """Prefixes added, removed and changed (tunnel target) by one update."""

    added: tuple[PrefixBinding, ...] = ()
    removed: tuple[PrefixBinding, ...] = ()
    changed: tuple[PrefixBinding, ...] = ()


_NO_PREFIX_CHANGES = PrefixChanges()


class PrefixOwners:
    """Which home address registered which IPv6 prefix, with overlap queries in O(log n) (RFC 5454 §3.3).

    A prefix overlaps another when one contains the other (or they are equal). Registered prefixes are
    found by the lengths in use (the ones containing a query) and by a list sorted on first address
    (the ones inside it).
    """

    def __init__(self) -> None:
        self._owner: dict[IPv6Network, IPv4Address] = {}
        self._by_start: dict[tuple[int, int], IPv4Address] = {}
        """The same owners by (first address as an int, prefix length): supernets are found with a mask,
        without building an ``IPv6Network`` per length in use (issue 9)."""
        self._lengths: Counter[int] = Counter()
        self._starts: list[tuple[int, IPv6Network]] = []

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._owner

    def __len__(self) -> int:
        return len(self._owner)

    def owner(self, prefix: IPv6Network) -> IPv4Address | None:
        """Who registered exactly ``prefix``, or None."""
        return self._owner.get(prefix)

    def overlapping(self, prefix: IPv6Network) -> list[IPv4Address]:
        """Owners of registered prefixes that contain ``prefix`` or lie inside it (one per prefix)."""
        owners = []
        length = prefix.prefixlen
        first = int(prefix.network_address)
        by_start = self._by_start
        for registered in self._lengths:  # registered prefixes containing ``prefix``
            if registered <= length:
                owner = by_start.get((first & _NETMASKS[registered], registered))
                if owner is not None:
                    owners.append(owner)
        last = first | _HOSTMASKS[length]
        index = bisect_left(self._starts, (first,))
        while index < len(self._starts) and self._starts[index][0] <= last:
            inside = self._starts[index][1]  # starts inside ``prefix``: inside or equal
            if inside.prefixlen > length:  # equal ones were found above
                owners.append(self._owner[inside])
            index += 1
        return owners

    def add(self, prefix: IPv6Network, owner: IPv4Address) -> None:
        """Record ``owner`` for ``prefix`` (a new owner replaces the old one)."""
        start = int(prefix.network_address)
        if prefix not in self._owner:
            self._lengths[prefix.prefixlen] += 1
            insort(self._starts, (start, prefix))
        self._owner[prefix] = owner
        self._by_start[(start, prefix.prefixlen)] = owner

    def remove(self, prefix: IPv6Network) -> None:
        """Forget ``prefix`` (nothing if it is not registered)."""
        if self._owner.pop(prefix, None) is None:
            return
        del self._by_start[(int(prefix.network_address), prefix.prefixlen)]
        self._lengths[prefix.prefixlen] -= 1
        if not self._lengths[prefix.prefixlen]:
            del self._lengths[prefix.prefixlen]
        item = (int(prefix.network_address), prefix)
        index = bisect_left(self._starts, item)
        if index < len(self._starts) and self._starts[index] == item:
            del self._starts[index]


class BindingTable:
    """Bindings by home address, with a prefix ownership index across mobile nodes."""

    def __init__(self) -> None:
        self._bindings: dict[IPv4Address, MobilityBinding] = {}
        self._prefix_owners = PrefixOwners()
        """Registered (non-link-local) prefixes: overlap checks in O(log n)."""
        self._expiries: list[tuple[float, int, IPv4Address, CareOf]] = []
        self._pushed = 0
        """A heap of care-of expiry times; stale entries are skipped lazily (O(log n) per update)."""
        self._compact_at = _MIN_HEAP_COMPACTION
        """Heap size that triggers dropping the stale entries (every renewal leaves one behind)."""
        self.membership_changes = 0
        """How many times a home address entered or left the table (a renewal counts none): a view built
        from *which* home addresses are bound stays valid while this does not move."""

    def __contains__(self, home_address: object) -> bool:
        return home_address in self._bindings

    def __len__(self) -> int:
        return len(self._bindings)

    def get(self, home_address: IPv4Address) -> MobilityBinding | None:
        """The binding of ``home_address``, or None when it has no care-of entry."""
        return self._bindings.get(home_address)

    def home_addresses(self) -> Iterable[IPv4Address]:
        """The home addresses with a binding (unordered; a live view)."""
        return self._bindings.keys()

    def _binding_for(self, home_address: IPv4Address) -> MobilityBinding:
        """The binding of ``home_address``, made empty if it has none (a membership change)."""
        binding = self._bindings.get(home_address)
        if binding is None:
            binding = self._bindings[home_address] = MobilityBinding(home_address)
            self.membership_changes += 1
        return binding

    def all(self) -> list[MobilityBinding]:
        """Every binding, ordered by home address."""
        return [self._bindings[home] for home in sorted(self._bindings)]

    def care_of_count(self, home_address: IPv4Address) -> int:
        binding = self._bindings.get(home_address)
        return 0 if binding is None else len(binding.care_ofs)

    # -- care-of entries -------------------------------------------------------------------

    def put(self, home_address: IPv4Address, entry: CareOfEntry, keep_others: bool) -> list[CareOfEntry]:
        """Add or refresh ``entry``; without ``keep_others`` drop every other care-of (RFC 5944 §3.6.1.3).

        Returns the care-of entries that were dropped to make room.
        """
        binding = self._binding_for(home_address)
        dropped: list[CareOfEntry] = []
        if not keep_others:  # changed in place: a renewal leaves no new containers behind
            dropped = [old for key, old in binding.care_ofs.items() if key != entry.care_of]
            for old in dropped:
                del binding.care_ofs[old.care_of]
        binding.care_ofs[entry.care_of] = entry
        if not math.isinf(entry.expires_at):
            self._pushed += 1  # tie-breaker: CareOf values with and without a port do not compare
            heapq.heappush(self._expiries, (entry.expires_at, self._pushed, home_address, entry.care_of))
            if len(self._expiries) > self._compact_at:
                self._compact_expiries()
        return dropped

    def _compact_expiries(self) -> None:
        """Keep only the heap items that still describe an entry. A renewal supersedes its previous
        item, which would otherwise wait in the heap until its old expiry time; compacting when the
        heap has doubled since the last time costs O(1) amortised per update."""
        live = [item for item in self._expiries if self._current(item[0], item[2], item[3])]
        heapq.heapify(live)
        self._expiries = live
        self._compact_at = max(_MIN_HEAP_COMPACTION, 2 * len(live))

    def remove_care_of(self, home_address: IPv4Address, care_of: CareOf) -> CareOfEntry | None:
        """Remove one care-of entry (deregistration of one CoA, RFC 5944 §3.6.1.2)."""
        binding = self._bindings.get(home_address)
        if binding is None:
            return None
        return binding.care_ofs.pop(care_of, None)

    def remove_care_of_address(self, home_address: IPv4Address, address: IPv4Address) -> list[CareOfEntry]:
        """Remove every care-of entry at ``address``, whatever its UDP port (RFC 5944 §3.6.1.2)."""
        binding = self._bindings.get(home_address)
        if binding is None:
            return []
        keys = [key for key in binding.care_ofs if key.address == address]
        return [binding.care_ofs.pop(key) for key in keys]

    def remove_all(self, home_address: IPv4Address) -> tuple[list[CareOfEntry], list[PrefixBinding]]:
        """Remove every care-of entry and prefix of ``home_address`` (RFC 5944 §3.6.1.2, RFC 5454 §3.8)."""
        binding = self._bindings.pop(home_address, None)
        if binding is None:
            return [], []
        self.membership_changes += 1
        for prefix in binding.prefixes:
            self._prefix_owners.remove(prefix)
        return list(binding.care_ofs.values()), list(binding.prefixes.values())

    def drop_if_empty(self, home_address: IPv4Address) -> list[PrefixBinding]:
        """Forget a binding left with no care-of entry; returns the prefixes that went with it."""
        binding = self._bindings.get(home_address)
        if binding is None or binding.care_ofs:
            return []
        return self.remove_all(home_address)[1]

    def _current(self, expires_at: float, home: IPv4Address, care_of: CareOf) -> bool:
        """True if this heap item still describes a care-of entry of the table."""
        binding = self._bindings.get(home)
        entry = binding.care_ofs.get(care_of) if binding is not None else None
        return entry is not None and entry.expires_at == expires_at

    def expired(self, now: float) -> list[tuple[IPv4Address, CareOfEntry]]:
        """Care-of entries whose lifetime has run out at ``now``, ordered by home address.

        They are not removed from the table, but they are taken off the expiry heap: the caller must
        remove them (as the home agent does, RFC 5944 §3.8.1) or refresh them with :meth:`put`.
        """
        due: dict[tuple[IPv4Address, CareOf], CareOfEntry] = {}
        heap = self._expiries
        while heap and heap[0][0] <= now:
            expires_at, _, home, care_of = heapq.heappop(heap)
            if self._current(expires_at, home, care_of):
                due[(home, care_of)] = self._bindings[home].care_ofs[care_of]
        return [(home, due[(home, care_of)]) for home, care_of in sorted(due)]

    def next_expiry(self) -> float | None:
        """The earliest finite expiry time, or None."""
        heap = self._expiries
        while heap and not self._current(heap[0][0], heap[0][2], heap[0][3]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # -- prefixes ---------------------------------------------------------------------------

    def prefix_owner(self, prefix: IPv6Network) -> IPv4Address | None:
        """The home address whose registered prefix overlaps ``prefix`` (RFC 5454 §3.3), if any."""
        owners = self._prefix_owners.overlapping(prefix)
        return next(iter(owners), None)

    def overlaps_other(self, home_address: IPv4Address, prefix: IPv6Network) -> bool:
        """True if ``prefix`` overlaps a prefix registered by another mobile node (RFC 5454 §3.3)."""
        if prefix.is_link_local:
            return False  # link-locals are scoped to each MN's own tunnel
        return any(home != home_address for home in self._prefix_owners.overlapping(prefix))

    def replace_prefixes(self, home_address: IPv4Address, wanted: list[PrefixBinding]) -> PrefixChanges:
        """Make the registered prefixes exactly ``wanted``; omitted ones are deregistered (RFC 5454 §3.8).

        The caller must have refused overlaps with other mobile nodes first.
        """
        binding = self._binding_for(home_address)
        old = binding.prefixes
        if len(wanted) == len(old) and list(old.values()) == wanted:
            return _NO_PREFIX_CHANGES  # a renewal naming the same prefixes: no dict, no hashing (issue 9)
        new = {item.prefix: item for item in wanted}
        removed = tuple(item for prefix, item in old.items() if prefix not in new)
        added = tuple(item for prefix, item in new.items() if prefix not in old)
        changed = tuple(item for prefix, item in new.items() if prefix in old and old[prefix] != item)
        for item in removed:
            self._prefix_owners.remove(item.prefix)
        for item in added:
            if not item.link_local:
                self._prefix_owners.add(item.prefix, home_address)
        if removed or added or changed or list(new) != list(old):  # a renewal keeps the objects it has
            binding.prefixes = new
        return PrefixChanges(added, removed, changed)

    # -- the datapath's view (compiled by agents.datapath.projection; RFC 3024 §4.3.2, RFC 5454 §3.3.2) ------

    def copies(self, home_address: IPv4Address) -> tuple[Copy, ...]:
        """The copies of an IPv4 packet to ``home_address``: one per care-of address (RFC 5944 §3.6.1.3)."""
        binding = self._bindings.get(home_address)
        return () if binding is None else ipv4_copies(encapsulations(binding))

    def ipv6_route(self, address: IPv6Address) -> tuple[IPv4Address, TunnelTarget] | None:
        """Whose tunnel carries IPv6 to ``address``, and how: the longest registered prefix holding it
        (link-locals as /128s), else fe80::<home address> over the home-address tunnel (RFC 4213 §3.7)."""
        found = self._longest_prefix(address)
        if found is not None:
            binding, item = found
            return binding.home_address, effective_target(item.prefix, item.target)
        home = embedded_home_address(address)
        if home is not None and home in self._bindings:
            return home, TunnelTarget.HOME_ADDRESS
        return None

    def ipv6_copies(self, address: IPv6Address) -> tuple[Copy, ...]:
        """The copies of an IPv6 packet to ``address`` (RFC 5454 §3.3.2, RFC 5944 §3.6.1.3)."""
        route = self.ipv6_route(address)
        if route is None:
            return ()
        return ipv6_copies(route[1], encapsulations(self._bindings[route[0]]))

    def reverse_ipv4(self, outer_source: IPv4Address, inner_source: IPv4Address) -> int | None:
        """The outer protocol reverse-tunnelled IPv4 from ``inner_source`` must arrive in from
        ``outer_source`` (a registered care-of address of that home address, RFC 3024 §4.3.2), or None."""
        binding = self._bindings.get(inner_source)
        return None if binding is None else ipv4_sources(encapsulations(binding)).get(outer_source)

    def reverse_ipv6(self, outer_source: IPv4Address, inner_source: IPv6Address) -> int | None:
        """The outer protocol IPv6 from ``inner_source`` must arrive in from ``outer_source``, or None: the
        endpoint of its prefix's target (care-of for code 1, the home address for code 0, RFC 5454 §3.3.2);
        a link-local outside every prefix only over a home-address tunnel (RFC 5454 §3.7.1)."""
        found = self._longest_prefix(inner_source)
        if found is None:
            bound = outer_source in self._bindings
            return PROTO_IPV6 if inner_source.is_link_local and bound else None
        binding, item = found
        target = effective_target(item.prefix, item.target)
        return ipv6_sources(binding.home_address, target, encapsulations(binding)).get(outer_source)

    def _longest_prefix(self, address: IPv6Address) -> tuple[MobilityBinding, PrefixBinding] | None:
        """The binding and registered prefix (link-locals included) most specific for ``address``: a
        linear scan, this view is for checks and tests, never for packets."""
        best: tuple[MobilityBinding, PrefixBinding] | None = None
        for binding in self._bindings.values():
            for item in binding.prefixes.values():
                longer = best is None or item.prefix.prefixlen > best[1].prefix.prefixlen
                if longer and address in item.prefix:
                    best = (binding, item)
        return best

    def accepts_reverse_ipv4(self, outer_source: IPv4Address, inner_source: IPv4Address) -> bool:
        """Reverse-tunnelled IPv4 is accepted from this outer source (RFC 3024 §4.3.2)."""
        return self.reverse_ipv4(outer_source, inner_source) is not None

    def accepts_reverse_ipv6(self, outer_source: IPv4Address, inner_source: IPv6Address) -> bool:
        """Reverse-tunnelled IPv6 is accepted from this outer source (RFC 5454 §3.3.2)."""
        return self.reverse_ipv6(outer_source, inner_source) is not None

    def snapshot(self, now: float) -> list[dict[str, object]]:
        """Every binding as JSON-able dicts, ordered by home address."""
        return [binding.to_dict(now) for binding in self.all()]
