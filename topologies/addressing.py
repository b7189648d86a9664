"""The dual-stack testbed's address plan: documentation ranges (RFC 5737, RFC 3849) and private ones
(RFC 1918) only. The full table is in :mod:`topologies.dualstack`'s docstring."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

MAX_FOREIGN_AGENTS = 16
"""198.51.100.0/24 holds sixteen /28 network links."""
MAX_MOBILE_NODES = 25
"""Home addresses 192.0.2.10, .20, ... .250."""

CN_ROUTER4, CN_ROUTER6 = IPv4Interface("203.0.113.1/26"), IPv6Interface("2001:db8:ff::1/64")
CN4, CN6 = IPv4Interface("203.0.113.10/26"), IPv6Interface("2001:db8:ff::10/64")

HOME_NETWORK4, HOME_NETWORK6 = IPv4Network("192.0.2.0/24"), IPv6Network("2001:db8:0:1::/64")
HOME_ROUTER4, HOME_ROUTER6 = IPv4Interface("192.0.2.254/24"), IPv6Interface("2001:db8:0:1::fe/64")
HA4, HA6 = IPv4Interface("192.0.2.1/24"), IPv6Interface("2001:db8:0:1::1/64")

NAT_ROUTER4, NAT_PUBLIC4 = IPv4Interface("203.0.113.65/26"), IPv4Interface("203.0.113.66/26")
NAT_PRIVATE4 = IPv4Interface("192.168.1.1/24")
NAT_FA_ROUTER4, NAT_FA_CARE_OF4 = IPv4Interface("192.168.2.1/30"), IPv4Interface("192.168.2.2/30")
"""The link nat1 – fan (the foreign agent behind the NAT): nat1's end, and fan's end = its care-of address."""
NAT_FA_ACCESS4 = IPv4Interface("192.168.1.2/24")
"""fan on the private LAN, where it advertises R and U (RFC 3519 §3.4)."""
NAT_FA = "fan"
COLOCATED_NETWORK4 = IPv4Network("203.0.113.128/26")
"""A visited network without a foreign agent, where mobile nodes use a co-located care-of address."""
COLOCATED_ROUTER4 = IPv4Interface("203.0.113.129/26")
TESTBED_RANGES: tuple[IPv4Network | IPv6Network, ...] = (
    IPv4Network("192.0.2.0/24"),
    IPv4Network("198.51.100.0/24"),
    IPv4Network("203.0.113.0/24"),
    IPv4Network("10.0.0.0/16"),
    IPv4Network("192.168.1.0/24"),
    IPv4Network("192.168.2.0/24"),
    IPv6Network("2001:db8::/32"),
)
"""Every range the address plan draws from (links, home and co-located networks, NAT, prefixes)."""
MAX_PREFIXES = 10
"""IPv6 prefixes per mobile node: 2001:db8:(10·i + k)::/48 for k < 10 never meet the next node's."""


def _check_index(kind: str, index: int, limit: int) -> None:
    if not 1 <= index <= limit:
        raise ValueError(f"{kind} index {index} must be 1..{limit}")


@dataclass(frozen=True)
class ForeignAgentPlan:
    """Visited network k: a /28 network link to r0 (fa's end = its care-of address) and a /24 access LAN.
    Even k also carries IPv6 on the network link (a dual-stack visited network); odd k is IPv4 only."""

    index: int

    def __post_init__(self) -> None:
        _check_index("foreign agent", self.index, MAX_FOREIGN_AGENTS)

    @property
    def name(self) -> str:
        return f"fa{self.index}"

    @property
    def network(self) -> IPv4Network:
        return IPv4Network(f"198.51.100.{16 * (self.index - 1)}/28")

    @property
    def router4(self) -> IPv4Interface:
        return IPv4Interface(f"{self.network.network_address + 1}/28")

    @property
    def care_of4(self) -> IPv4Interface:
        return IPv4Interface(f"{self.network.network_address + 2}/28")

    @property
    def access4(self) -> IPv4Interface:
        return IPv4Interface(f"10.0.{self.index}.1/24")

    @property
    def dual_stack(self) -> bool:
        return self.index % 2 == 0

    @property
    def network6(self) -> IPv6Network | None:
        return IPv6Network(f"2001:db8:0:f{self.index:x}::/64") if self.dual_stack else None

    @property
    def router6(self) -> IPv6Interface | None:
        net = self.network6
        return None if net is None else IPv6Interface(f"{net.network_address + 1}/64")

    @property
    def address6(self) -> IPv6Interface | None:
        net = self.network6
        return None if net is None else IPv6Interface(f"{net.network_address + 2}/64")


@dataclass(frozen=True)
class MobileNodePlan:
    """Mobile node i: HoA 192.0.2.(10·i), prefix 2001:db8:(10·i)::/48 and, in it, the address whose
    interface identifier is ``::a.b.c.d`` of the HoA; SPI 256 + i - 1 and its own 16-byte key.

    With ``prefix_count`` k > 1 it also owns 2001:db8:(10·i + 1)::/48 ... 2001:db8:(10·i + k - 1)::/48 (an
    address in each, same identifier). ``colocated``: it lives on the co-located visited network (no foreign
    agent) at 203.0.113.(129 + i) and registers that address as its care-of address (RFC 5944 §3.6)."""

    index: int
    prefix_count: int = 1
    colocated: bool = False

    def __post_init__(self) -> None:
        _check_index("mobile node", self.index, MAX_MOBILE_NODES)
        if not 1 <= self.prefix_count <= MAX_PREFIXES:
            raise ValueError(f"prefix_count {self.prefix_count} must be 1..{MAX_PREFIXES}")

    @property
    def name(self) -> str:
        return f"mn{self.index}"

    @property
    def home_address(self) -> IPv4Address:
        return IPv4Address(f"192.0.2.{10 * self.index}")

    @property
    def prefix(self) -> IPv6Network:
        return IPv6Network(f"2001:db8:{10 * self.index}::/48")

    @property
    def address6(self) -> IPv6Address:
        return self.prefix.network_address + int(self.home_address)

    @property
    def prefixes(self) -> list[IPv6Network]:
        """Every prefix the node owns, :attr:`prefix` first."""
        return [IPv6Network(f"2001:db8:{10 * self.index + k}::/48") for k in range(self.prefix_count)]

    @property
    def addresses6(self) -> list[IPv6Address]:
        """The node's address in each of :attr:`prefixes`, in the same order."""
        return [prefix.network_address + int(self.home_address) for prefix in self.prefixes]

    @property
    def care_of4(self) -> IPv4Interface | None:
        """The co-located care-of address on the co-located visited network (None: it uses FAs)."""
        if not self.colocated:
            return None
        return IPv4Interface(f"{COLOCATED_ROUTER4.ip + self.index}/{COLOCATED_NETWORK4.prefixlen}")

    @property
    def spi(self) -> int:
        return 256 + self.index - 1

    @property
    def key(self) -> str:
        """A fixed, distinct 128-bit MN-HA key (hex) so every run is reproducible."""
        return hashlib.sha256(f"dualstack-mn{self.index}".encode()).hexdigest()[:32]
