"""Foreign agent and agent-advertisement configuration (RFC 5944 §2.1, §2.3, §3.7; RFC 3024 §3; RFC 1256 §4).

Frozen dataclasses validated in ``__post_init__``: a bad value raises :class:`ValueError` whose
message names the field and says what is allowed (the style of :mod:`agents.mip.common.config`).

* :class:`AdvertisementConfig`: how an agent advertises on one link (interval, ICMP Lifetime, code,
  destination, router addresses). Used by the foreign agent and, with ``advertise_home``, by the
  home agent on its home link (H bit, RFC 5944 §2.4.3).
* :class:`ForeignAgentConfig`: care-of addresses and the interface-independent foreign-agent policy;
  :attr:`ForeignAgentConfig.advertisement_flags` derives the extension-16 flags from capabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface

from agents.mip.common.config import INFINITE_LIFETIME, MINIMUM_SPI, MOBILE_IP_PORT, Encapsulation
from agents.mip.wire.auth import AuthAlgorithm, SecurityAssociation
from agents.mip.wire.icmp import (
    ALL_SYSTEMS,
    CODE_MOBILITY_ONLY,
    CODE_ROUTES_COMMON_TRAFFIC,
    LIMITED_BROADCAST,
)
from agents.mip.wire.icmp import AdvertisementFlag as Flag

MIN_ADVERTISEMENT_INTERVAL = 0.05
"""Shortest advertisement interval accepted here (50 ms; RFC 1256 §4.1 allows 3 s, the testbed needs less)."""
MAX_ADVERTISEMENT_INTERVAL = 1800.0  # RFC 1256 §4.1 MaxAdvertisementInterval upper bound
MAX_ICMP_LIFETIME = 9000  # RFC 1256 §4.1 AdvertisementLifetime upper bound
DEFAULT_PENDING_TIMEOUT = 7.0
"""Seconds a relayed request waits for the home agent before the FA replies 78 (RFC 5944 §3.7.1)."""
MAX_CARE_OF_ADDRESSES = (255 - 6) // 4  # what fits one Mobility Agent extension (RFC 5944 §2.1.1)


class AdvertisementDestination(StrEnum):
    """Where unsolicited advertisements go: 224.0.0.1 or 255.255.255.255 (RFC 5944 §2.1)."""

    MULTICAST = "multicast"
    BROADCAST = "broadcast"

    @property
    def address(self) -> IPv4Address:
        return ALL_SYSTEMS if self is AdvertisementDestination.MULTICAST else LIMITED_BROADCAST


class DeliveryStyle(StrEnum):
    """How a reverse-tunnelling visitor hands its packets to the FA (RFC 3024 §5)."""

    DIRECT = "direct"  # the default: plain IP, FA as default router (RFC 3024 §5.1)
    ENCAPSULATING = "encapsulating"  # MN tunnels to the FA; asked for with extension 130 (RFC 3024 §5.2)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class AdvertisementConfig:
    """Agent Advertisements on one link (RFC 5944 §2.1, §2.3; RFC 1256 §4.1).

    Each interval is drawn uniformly from [``min_interval``, ``max_interval``] (RFC 1256 §4.1, jitter);
    ``min_interval`` defaults to 0.75 × ``max_interval`` (at least 50 ms) and the ICMP ``lifetime`` to
    3 × ``max_interval`` rounded up (RFC 1256 defaults; RFC 5944 §2.3.1: the interval is at most a
    third of the lifetime).
    """

    max_interval: float = 1.0
    min_interval: float | None = None
    lifetime: int | None = None
    code: int = CODE_ROUTES_COMMON_TRAFFIC
    destination: AdvertisementDestination = AdvertisementDestination.MULTICAST
    router_addresses: tuple[IPv4Interface, ...] = ()
    """RFC 1256 router addresses of the agent on this link (Num Addrs MAY be 0, RFC 5944 §2.1)."""
    preference: int = 0
    prefix_lengths: bool = False
    """Add the Prefix-Lengths extension 19, one length per router address (RFC 5944 §2.1.2)."""
    advertise_home: bool = False
    """Set H: this agent is a home agent on this link (RFC 5944 §2.1.1, §2.4.3)."""
    unicast_solicited: bool = True
    """Answer a solicitation by unicast when its source and link-layer address are known (RFC 1256 §5.5)."""
    solicited_min_gap: float | None = None
    """Least time between two advertisements to one destination; default ``min_interval``."""

    def __post_init__(self) -> None:
        owner = "advertisement"
        _require(
            MIN_ADVERTISEMENT_INTERVAL <= self.max_interval <= MAX_ADVERTISEMENT_INTERVAL,
            f"{owner}: max_interval {self.max_interval} must be 0.05..1800 seconds (RFC 1256 §4.1)",
        )
        low = self.effective_min_interval
        _require(
            MIN_ADVERTISEMENT_INTERVAL <= low <= self.max_interval,
            f"{owner}: min_interval {low} must be 0.05..max_interval (RFC 1256 §4.1)",
        )
        lifetime = self.effective_lifetime
        _require(
            3 * self.max_interval <= lifetime <= MAX_ICMP_LIFETIME,
            f"{owner}: lifetime {lifetime} must be 3 × max_interval..9000 s (RFC 5944 §2.3.1, RFC 1256)",
        )
        _require(
            self.code in (CODE_ROUTES_COMMON_TRAFFIC, CODE_MOBILITY_ONLY),
            f"{owner}: code {self.code} must be 0 or 16 (RFC 5944 §2.1)",
        )
        _require(-(2**31) <= self.preference < 2**31, f"{owner}: preference must be a signed 32-bit integer")
        _require(len(self.router_addresses) <= 0xFF, f"{owner}: at most 255 router_addresses")
        _require(
            not self.prefix_lengths or bool(self.router_addresses),
            f"{owner}: prefix_lengths needs router_addresses to describe (RFC 5944 §2.1.2)",
        )
        gap = self.solicited_min_gap
        _require(
            gap is None or 0 <= gap <= MAX_ADVERTISEMENT_INTERVAL,
            f"{owner}: solicited_min_gap {gap} must be 0..1800 seconds",
        )

    @property
    def effective_min_interval(self) -> float:
        """``min_interval``, or 0.75 × ``max_interval`` (RFC 1256 §4.1 default) but not below 50 ms."""
        if self.min_interval is not None:
            return self.min_interval
        return max(MIN_ADVERTISEMENT_INTERVAL, 0.75 * self.max_interval)

    @property
    def effective_lifetime(self) -> int:
        """``lifetime``, or 3 × ``max_interval`` rounded up to whole seconds (RFC 1256 §4.1)."""
        return math.ceil(3 * self.max_interval) if self.lifetime is None else self.lifetime

    @property
    def effective_solicited_min_gap(self) -> float:
        return self.effective_min_interval if self.solicited_min_gap is None else self.solicited_min_gap


@dataclass(frozen=True)
class PeerAssociation:
    """A mobility security association with one peer: MN-FA by home address, FA-HA by HA address (§3.5)."""

    peer: IPv4Address
    spi: int
    key: bytes = field(repr=False)
    algorithm: AuthAlgorithm = AuthAlgorithm.HMAC_MD5

    def __post_init__(self) -> None:
        owner = f"security association with {self.peer}"
        _require(
            MINIMUM_SPI <= self.spi <= 0xFFFFFFFF,
            f"{owner}: spi {self.spi} is reserved or too large: use 256..4294967295 (RFC 5944 §1.6)",
        )
        _require(len(self.key) > 0, f"{owner}: key must not be empty")

    @property
    def association(self) -> SecurityAssociation:
        return SecurityAssociation(self.spi, self.key, self.algorithm)


def _default_encapsulations() -> frozenset[Encapsulation]:
    return frozenset({Encapsulation.IP_IN_IP, Encapsulation.GRE, Encapsulation.MINIMAL})


@dataclass(frozen=True)
class ForeignAgentConfig:
    """Foreign agent (RFC 5944 §3.7, RFC 3024 §3-§5): care-of addresses and policy."""

    care_of_addresses: tuple[IPv4Address, ...]
    advertisement: AdvertisementConfig = field(default_factory=AdvertisementConfig)
    max_lifetime: int = 1800
    """Longest registration lifetime accepted; advertised in extension 16; 69 above it (RFC 5944 §3.7.2.2)."""
    encapsulations: frozenset[Encapsulation] = field(default_factory=_default_encapsulations)
    reverse_tunnel_supported: bool = True
    reverse_tunnel_required: bool = False
    encapsulating_delivery_supported: bool = True
    registration_required: bool = False
    """R: visitors must register through this FA even with a co-located address (RFC 5944 §2.1.1)."""
    udp_tunnelling: bool = False
    """U: this FA sits behind a NAT and relays co-located registrations that ask for RFC 3519 UDP
    tunnelling (RFC 3519 §3.4, §4.11). It MUST NOT be set by an FA that is not behind a NAT (§3.4), and
    here it needs ``registration_required``: this FA tunnels nothing in UDP itself (it never adds its
    own UDP Tunnel Request, §4.5), so U only serves a mobile node registering its co-located address
    through it, the R flag of the UDP Tunnel Request (§3.1.2, §4.4)."""
    busy: bool = False
    """B: no registrations from additional mobile nodes (RFC 5944 §2.1.1); also set at ``max_visitors``."""
    pending_timeout: float = DEFAULT_PENDING_TIMEOUT
    max_visitors: int | None = None
    mobile_node_associations: tuple[PeerAssociation, ...] = ()
    """MN-FA associations keyed by home address (RFC 5944 §3.5.3)."""
    home_agent_associations: tuple[PeerAssociation, ...] = ()
    """FA-HA associations keyed by home agent address (RFC 5944 §3.5.4)."""
    port: int = MOBILE_IP_PORT

    def __post_init__(self) -> None:
        owner = "foreign agent"
        self._check_care_ofs(owner)
        _require(
            1 <= self.max_lifetime <= INFINITE_LIFETIME,
            f"{owner}: max_lifetime {self.max_lifetime} must be 1..65535 seconds",
        )
        _require(
            Encapsulation.IP_IN_IP in self.encapsulations,
            f"{owner}: encapsulations must include ipip, which every foreign agent supports (RFC 5944 §3.7)",
        )
        _require(
            self.reverse_tunnel_supported or not self.reverse_tunnel_required,
            f"{owner}: reverse_tunnel_required needs reverse_tunnel_supported (RFC 3024 §3.2)",
        )
        _require(
            self.reverse_tunnel_supported or not self.encapsulating_delivery_supported,
            f"{owner}: encapsulating_delivery_supported needs reverse_tunnel_supported (RFC 3024 §3.3)",
        )
        _require(
            self.registration_required or not self.udp_tunnelling,
            f"{owner}: udp_tunnelling (U) needs registration_required (R): this FA only relays co-located "
            "registrations in UDP tunnelling mode (RFC 3519 §3.4, §4.11)",
        )
        _require(self.pending_timeout > 0, f"{owner}: pending_timeout must be > 0 seconds")
        _require(self.max_visitors is None or self.max_visitors >= 1, f"{owner}: max_visitors must be ≥ 1")
        _require(1 <= self.port <= 0xFFFF, f"{owner}: port {self.port} must be 1..65535")
        for name in ("mobile_node_associations", "home_agent_associations"):
            peers = [item.peer for item in getattr(self, name)]
            _require(len(set(peers)) == len(peers), f"{owner}: {name} lists a peer twice")

    def _check_care_ofs(self, owner: str) -> None:
        addresses = self.care_of_addresses
        _require(bool(addresses), f"{owner}: care_of_addresses must not be empty (RFC 5944 §3.7.1)")
        _require(
            len(addresses) <= MAX_CARE_OF_ADDRESSES,
            f"{owner}: at most {MAX_CARE_OF_ADDRESSES} care_of_addresses fit extension 16 (RFC 5944 §2.1.1)",
        )
        _require(len(set(addresses)) == len(addresses), f"{owner}: care_of_addresses lists an address twice")
        for address in addresses:
            usable = not (address.is_unspecified or address.is_multicast or address.is_loopback)
            usable = usable and address != LIMITED_BROADCAST
            _require(usable, f"{owner}: care-of address {address} is not a usable unicast address")

    @property
    def advertisement_flags(self) -> Flag:
        """Extension-16 flags from capabilities: F, R, B, M, G, T, H (RFC 5944 §2.1.1; RFC 3024 §3.1) and
        U (RFC 3519 §3.4)."""
        flags = Flag.F
        if self.registration_required:
            flags |= Flag.R
        if self.udp_tunnelling:
            flags |= Flag.U
        if self.busy:
            flags |= Flag.B
        if Encapsulation.MINIMAL in self.encapsulations:
            flags |= Flag.M
        if Encapsulation.GRE in self.encapsulations:
            flags |= Flag.G
        if self.reverse_tunnel_supported:
            flags |= Flag.T
        if self.advertisement.advertise_home:
            flags |= Flag.H
        return flags

    def mobile_node_association(self, home_address: IPv4Address) -> SecurityAssociation | None:
        """The MN-FA association for this home address, if configured."""
        found = self._mn_fa.get(home_address)
        return None if found is None else found.association

    def home_agent_association(self, home_agent: IPv4Address) -> SecurityAssociation | None:
        """The FA-HA association for this home agent, if configured."""
        found = self._fa_ha.get(home_agent)
        return None if found is None else found.association

    @cached_property
    def _mn_fa(self) -> dict[IPv4Address, PeerAssociation]:
        return {item.peer: item for item in self.mobile_node_associations}

    @cached_property
    def _fa_ha(self) -> dict[IPv4Address, PeerAssociation]:
        return {item.peer: item for item in self.home_agent_associations}
