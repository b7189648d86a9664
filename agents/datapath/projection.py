"""The home agent datapath's bindings: a compiled projection of the core's events (issue 9).

The core (:mod:`agents.mip.common.bindings`, :mod:`agents.mip.ha.home_agent`) decides once: which care-of
addresses a home address has (and so which get a copy of each packet, RFC 5944 §3.6.1.3), which IPv6
prefixes it owns (overlaps with another mobile node are refused there, RFC 5454 §3.3), how IPv6 for a
prefix travels and which outer sources reverse tunnelling is accepted from (RFC 3024 §4.3.2, RFC 5454
§3.3.2). Its events reach a backend as ``add_ipv4_tunnel`` / ``remove_ipv4_tunnel`` / ``add_ipv6_prefix``
/ ``remove_ipv6_prefix``; :class:`HomeProjection` records them as one :class:`HomeBinding` per home
address, and :func:`compile_binding` turns a binding into the core's answers, which every backend
installs as it can (:mod:`.tables` for userspace, BPF maps in :mod:`.ebpf`). Nothing here checks or
refuses anything: ``tests/unit/test_projection_property.py`` shows that tables built from any sequence of
core events agree with the core's own view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Network

from agents.mip.common.bindings import (
    CareOf,
    Copy,
    TunnelTarget,
    effective_target,
    ipv4_copies,
    ipv4_sources,
    ipv6_copies,
    sources_of,
)
from agents.mip.common.config import Encapsulation

__all__ = ["Change", "Compiled", "HomeBinding", "HomeProjection", "PrefixRule", "compile_binding"]


@dataclass(frozen=True)
class HomeBinding:
    """Everything the home agent tunnels for one home address (RFC 5944 §3.8.3, RFC 5454 §3.3)."""

    home_address: IPv4Address
    home_agent: IPv4Address
    care_ofs: Mapping[IPv4Address, Encapsulation] = field(default_factory=dict)
    """Care-of address → encapsulation, in the order they were first registered (the newest last)."""
    prefixes: Mapping[IPv6Network, TunnelTarget] = field(default_factory=dict)
    udp_ports: Mapping[IPv4Address, int] = field(default_factory=dict)
    """Care-of addresses reached by RFC 3519 UDP tunnelling (a NAT's address) → their UDP port; port
    :data:`~agents.mip.common.bindings.UNKNOWN_PORT` is a half-bound binding (R flag): no path until the
    HA learns the port from the mobile node's keepalive (RFC 3519 §4.6)."""

    def encapsulations(self) -> dict[CareOf, Encapsulation]:
        """The care-of addresses as the core names them (address and UDP port)."""
        return {CareOf(address, self.udp_ports.get(address)): enc for address, enc in self.care_ofs.items()}


@dataclass(frozen=True)
class PrefixRule:
    """What the core says about one registered prefix."""

    target: TunnelTarget
    """The target in effect: a link-local always rides the home-address tunnel (RFC 5454 §3.7.1)."""
    copies: tuple[Copy, ...]
    sources: dict[IPv4Address, int]
    """Outer source → outer protocol accepted for IPv6 from inside the prefix (RFC 5454 §3.3.2)."""


@dataclass(frozen=True)
class Compiled:
    """The core's answers for one binding, ready to install."""

    copies: tuple[Copy, ...]
    """IPv4 to the home address: one copy per care-of address (RFC 5944 §3.6.1.3)."""
    home_copies: tuple[Copy, ...]
    """IPv6 over the home-address tunnel (fe80::<home address>, code 0)."""
    ipv4_sources: dict[IPv4Address, int]
    """Outer source → outer protocol accepted for IPv4 from the home address (RFC 3024 §4.3.2)."""
    prefixes: dict[IPv6Network, PrefixRule]


def compile_binding(binding: HomeBinding) -> Compiled:
    """Ask the core's rules about ``binding`` (:mod:`agents.mip.common.bindings`); prefixes with the same
    target share one rule (a home agent holds thousands of these)."""
    care_ofs = binding.encapsulations()
    copies = ipv4_copies(care_ofs)
    rules: dict[TunnelTarget, PrefixRule] = {}

    def rule(target: TunnelTarget) -> PrefixRule:
        if target not in rules:
            ipv6 = ipv6_copies(target, care_ofs, copies)
            rules[target] = PrefixRule(target, ipv6, sources_of(binding.home_address, ipv6))
        return rules[target]

    home = rule(TunnelTarget.HOME_ADDRESS)
    prefixes = {prefix: rule(effective_target(prefix, target)) for prefix, target in binding.prefixes.items()}
    return Compiled(copies, home.copies, ipv4_sources(care_ofs, copies), prefixes)


@dataclass(frozen=True)
class Change:
    """One home address's binding before and after an event (None: none)."""

    home_address: IPv4Address
    old: HomeBinding | None
    new: HomeBinding | None

    def routed_prefixes(self) -> tuple[set[IPv6Network], set[IPv6Network]]:
        """Prefixes (not link-local: those ride the home-address tunnel) that gained and lost a route."""
        if self.old is not None and self.new is not None and self.old.prefixes is self.new.prefixes:
            return set(), set()  # a care-of change: the prefixes were carried over as they were
        before = {p for p in (self.old.prefixes if self.old else {}) if not p.is_link_local}
        after = {p for p in (self.new.prefixes if self.new else {}) if not p.is_link_local}
        return after - before, before - after


class HomeProjection:
    """The core's events, recorded per home address; each method returns the :class:`Change` to install
    (None when nothing the datapath holds changes, e.g. a renewal, RFC 5944 §3.8.3)."""

    def __init__(self) -> None:
        self.bindings: dict[IPv4Address, HomeBinding] = {}
        self._owners: dict[IPv6Network, IPv4Address] = {}

    def owner(self, prefix: IPv6Network) -> IPv4Address | None:
        """The home address that registered exactly ``prefix``."""
        return self._owners.get(prefix)

    def add_care_of(
        self,
        home_address: IPv4Address,
        care_of: IPv4Address,
        encapsulation: Encapsulation,
        home_agent: IPv4Address,
        udp_port: int | None = None,
    ) -> Change | None:
        """``BindingAdded`` / ``BindingUpdated``: another care-of is kept beside the others (the core
        removes the ones it replaces with ``BindingRemoved``)."""
        old = self.bindings.get(home_address)
        if (
            old is not None
            and old.home_agent == home_agent
            and old.care_ofs.get(care_of) == encapsulation
            and old.udp_ports.get(care_of) == udp_port
        ):
            return None
        binding = old or HomeBinding(home_address, home_agent)
        udp_ports = {key: port for key, port in binding.udp_ports.items() if key != care_of}
        if udp_port is not None:
            udp_ports[care_of] = udp_port
        care_ofs = {**binding.care_ofs, care_of: encapsulation}
        return self._set(old, replace(binding, home_agent=home_agent, care_ofs=care_ofs, udp_ports=udp_ports))

    def remove_care_of(
        self, home_address: IPv4Address, care_of: IPv4Address | None = None, udp_port: int | None = None
    ) -> Change | None:
        """``BindingRemoved``: one care-of (all with ``care_of`` None); with ``udp_port`` only while that
        care-of is still reached at that port (a NAT's old mapping going must not take its new one along).
        The last one takes the binding and its prefixes with it (RFC 5944 §3.6.1.2, RFC 5454 §3.8)."""
        old = self.bindings.get(home_address)
        if old is None or (care_of is not None and care_of not in old.care_ofs):
            return None
        if care_of is not None and udp_port is not None and old.udp_ports.get(care_of) != udp_port:
            return None
        care_ofs = {} if care_of is None else {k: v for k, v in old.care_ofs.items() if k != care_of}
        if not care_ofs:
            for prefix in old.prefixes:
                self._owners.pop(prefix, None)
            return self._set(old, None)
        udp_ports = {key: port for key, port in old.udp_ports.items() if key in care_ofs}
        return self._set(old, replace(old, care_ofs=care_ofs, udp_ports=udp_ports))

    def add_prefix(self, prefix: IPv6Network, home_address: IPv4Address, target: TunnelTarget) -> Change:
        """``PrefixRegistered`` (new, or its target changed); ValueError without an IPv4 binding first
        (the core always sends ``BindingAdded`` before, RFC 5454 §3.1)."""
        old = self.bindings.get(home_address)
        if old is None:
            raise ValueError(f"no IPv4 binding for {home_address}: register it first (RFC 5454 §3.1)")
        self._owners[prefix] = home_address
        return self._set(old, replace(old, prefixes={**old.prefixes, prefix: target}))

    def remove_prefix(self, prefix: IPv6Network) -> Change | None:
        """``PrefixDeregistered`` (RFC 5454 §3.8)."""
        home_address = self._owners.pop(prefix, None)
        old = self.bindings.get(home_address) if home_address is not None else None
        if old is None:
            return None
        prefixes = {key: value for key, value in old.prefixes.items() if key != prefix}
        return self._set(old, replace(old, prefixes=prefixes))

    def _set(self, old: HomeBinding | None, new: HomeBinding | None) -> Change:
        home_address = (new or old).home_address  # type: ignore[union-attr]
        if new is None:
            self.bindings.pop(home_address, None)
        else:
            self.bindings[home_address] = new
        return Change(home_address, old, new)
