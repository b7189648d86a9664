"""Role configuration for the home agent and the mobile node (co-located or FA care-of address).

Frozen dataclasses validated in ``__post_init__``: a bad value raises :class:`ValueError` whose
message names the field and says what is allowed. Loading from TOML is in
:mod:`agents.runtime.configfile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from agents.mip.wire.auth import AuthAlgorithm, SecurityAssociation
from agents.mip.wire.memo import remember
from agents.mip.wire.tunnel import ipv4_embedded_link_local

MOBILE_IP_PORT = 434
"""UDP port of Mobile IP registration (RFC 5944 §3.3)."""

INFINITE_LIFETIME = 0xFFFF
"""A Lifetime of 0xFFFF means infinity (RFC 5944 §3.3)."""

MINIMUM_SPI = 256
"""SPI values 0-255 are reserved (RFC 5944 §1.6)."""

LINK_LOCAL_NETWORK = IPv6Network("fe80::/10")


class Encapsulation(StrEnum):
    """Forward-tunnel encapsulation negotiated with the M and G flags (RFC 5944 §3.3, §3.8.3)."""

    IP_IN_IP = "ipip"  # RFC 2003, the default and mandatory one
    GRE = "gre"  # RFC 2784, G flag
    MINIMAL = "minimal"  # RFC 2004, M flag; carries IPv4 only (RFC 5454 §3.3.2)


class ReplayProtection(StrEnum):
    """Identification style of a security association (RFC 5944 §5.7)."""

    TIMESTAMP = "timestamp"
    NONCE = "nonce"


class CareOfMode(StrEnum):
    """Which care-of address the mobile node registers (RFC 5944 §3.6)."""

    COLOCATED = "co-located"  # its own address on the visited link, given by link_changed()
    FOREIGN_AGENT = "foreign-agent"  # an FA's advertised care-of address, registered via that FA
    AUTO = "auto"  # co-located when link_changed() gives an address and no FA requires registration (R)


class UdpTunnelling(StrEnum):
    """Whether a co-located mobile node asks for RFC 3519 UDP tunnelling (NAT traversal)."""

    OFF = "off"  # never send the UDP Tunnel Request extension
    AUTO = "auto"  # ask; the home agent tunnels in UDP only when it sees a NAT (RFC 3519 §4.6)
    FORCE = "force"  # ask with the F flag: UDP tunnelling even without a NAT (RFC 3519 §3.1.1)


DEFAULT_KEEPALIVE = 110
"""RFC 3519 §4.9: the keepalive interval K when the home agent's reply gives 0."""


class MovementDetection(StrEnum):
    """Move-detection algorithms used with agent advertisements (RFC 5944 §2.4.2)."""

    LIFETIME = "lifetime"  # algorithm 1: the current agent's ICMP Lifetime expires
    PREFIX = "prefix"  # algorithm 2: a different network prefix (Prefix-Lengths extension)
    BOTH = "both"


SOLICITATION_DESTINATIONS = (IPv4Address("224.0.0.11"), IPv4Address("255.255.255.255"))
"""Where the mobile node sends Agent Solicitations (RFC 5944 §2.2, §2.3)."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_spi_and_key(owner: str, spi: int, key: bytes) -> None:
    _require(
        MINIMUM_SPI <= spi <= 0xFFFFFFFF,
        f"{owner}: spi {spi} is reserved or too large: use 256..4294967295 (RFC 5944 §1.6)",
    )
    _require(len(key) > 0, f"{owner}: key must not be empty")


def _check_lifetime(owner: str, name: str, value: int) -> None:
    _require(1 <= value <= INFINITE_LIFETIME, f"{owner}: {name} {value} must be 1..65535 seconds")


def _check_port(owner: str, name: str, value: int, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    _require(low <= value <= 0xFFFF, f"{owner}: {name} {value} must be {low}..65535")


def _check_ipv6_prefixes(owner: str, name: str, prefixes: tuple[IPv6Network, ...]) -> None:
    for prefix in prefixes:
        _require(
            not prefix.overlaps(LINK_LOCAL_NETWORK),
            f"{owner}: {name} {prefix} is link-local; use the link-local switch instead (RFC 5454 §3.7.1)",
        )
        _require(not prefix.is_multicast, f"{owner}: {name} {prefix} is multicast")
    _require(len(set(prefixes)) == len(prefixes), f"{owner}: {name} lists a prefix twice")


ALLOWS_MEMO_SIZE = 64
"""Prefixes whose :meth:`MobileNodeAccount.allows` answer one account remembers (cleared when full)."""

link_local_for = ipv4_embedded_link_local
"""The tunnel link-local ``fe80::a.b.c.d`` embedding an IPv4 address (RFC 4213 §3.7); one implementation."""


@dataclass(frozen=True)
class MobileNodeAccount:
    """What the home agent knows of one mobile node: its MN-HA security association and policy."""

    home_address: IPv4Address
    spi: int
    key: bytes
    algorithm: AuthAlgorithm = AuthAlgorithm.HMAC_MD5
    nai: str | None = None
    allowed_prefixes: tuple[IPv6Network, ...] = ()
    """IPv6 prefixes this MN may register; a request inside one of them is allowed (RFC 5454 §3.7)."""
    allow_link_local: bool = True
    """Accept Prefix Length 255 (link-local) for the DHCPv6-PD bootstrap (RFC 5454 §3.7.1)."""
    nat_traversal: bool = True
    """Allow RFC 3519 UDP tunnelling for this MN; False: a request that needs it gets 129 (§4.6)."""

    def __post_init__(self) -> None:
        owner = f"mobile node {self.home_address}"
        _check_spi_and_key(owner, self.spi, self.key)
        _require(self.nai is None or 0 < len(self.nai) <= 255, f"{owner}: nai must be 1..255 characters")
        _check_ipv6_prefixes(owner, "allowed_prefixes", self.allowed_prefixes)

    @cached_property
    def association(self) -> SecurityAssociation:
        """The MN-HA security association (RFC 5944 §3.5.2); built once, the account is immutable."""
        return SecurityAssociation(self.spi, self.key, self.algorithm)

    def allows(self, prefix: IPv6Network) -> bool:
        """True if ``prefix`` lies inside one of the allowed prefixes (RFC 5454 §3.7). The answers are
        remembered per account (issue 9: a renewal asks the same question every time); the account is
        frozen, so an answer never changes (a changed config is a new account with an empty memo)."""
        known = self._allows_memo.get(prefix)
        if known is None:
            inside = any(prefix.subnet_of(allowed) for allowed in self.allowed_prefixes)
            known = remember(self._allows_memo, prefix, inside, ALLOWS_MEMO_SIZE)
        return known

    @cached_property
    def _allows_memo(self) -> dict[IPv6Network, bool]:
        return {}


@dataclass(frozen=True)
class HomeAgentConfig:
    """Home agent (RFC 5944 §3.8, RFC 3024 §4, RFC 5454 §3.3)."""

    address: IPv4Address
    home_network: IPv4Network
    mobile_nodes: tuple[MobileNodeAccount, ...] = ()
    max_lifetime: int = 1800
    simultaneous_bindings: bool = True
    max_bindings_per_node: int = 4
    encapsulations: frozenset[Encapsulation] = field(
        default_factory=lambda: frozenset({Encapsulation.IP_IN_IP, Encapsulation.GRE, Encapsulation.MINIMAL})
    )
    reverse_tunnel_supported: bool = True
    reverse_tunnel_required: bool = False
    dsmipv4: bool = True
    honour_tunneling_mode: bool = True
    replay_protection: ReplayProtection = ReplayProtection.TIMESTAMP
    timestamp_tolerance: float = 7.0
    port: int = MOBILE_IP_PORT
    udp_tunnelling: bool = True
    """Answer UDP Tunnel Requests (RFC 3519); False: the extension (skippable) is ignored."""
    keepalive_interval: int = DEFAULT_KEEPALIVE
    """K in the UDP Tunnel Reply (RFC 3519 §3.2, §4.9); 0 lets each MN use its own default."""

    def __post_init__(self) -> None:
        owner = "home agent"
        self._check_addresses(owner)
        _check_lifetime(owner, "max_lifetime", self.max_lifetime)
        _require(self.max_bindings_per_node >= 1, f"{owner}: max_bindings_per_node must be at least 1")
        _require(
            Encapsulation.IP_IN_IP in self.encapsulations,
            f"{owner}: encapsulations must include ipip, which every home agent supports (RFC 5944 §3.8)",
        )
        _require(
            self.reverse_tunnel_supported or not self.reverse_tunnel_required,
            f"{owner}: reverse_tunnel_required needs reverse_tunnel_supported (RFC 3024 §4)",
        )
        _require(
            self.timestamp_tolerance >= 3.0,
            f"{owner}: timestamp_tolerance must be at least 3 seconds (RFC 5944 §5.7: SHOULD exceed 3 s)",
        )
        _check_port(owner, "port", self.port)
        _require(0 <= self.keepalive_interval <= 0xFFFF, f"{owner}: keepalive_interval must be 0..65535 s")
        self._check_accounts(owner)

    def _check_addresses(self, owner: str) -> None:
        network = self.home_network
        _require(self.address in network, f"{owner}: address {self.address} is outside home_network")
        edges = (network.network_address, network.broadcast_address)
        _require(
            network.prefixlen >= 31 or self.address not in edges,
            f"{owner}: address {self.address} is the network or broadcast address of {network}",
        )

    def _check_accounts(self, owner: str) -> None:
        seen_addresses: set[IPv4Address] = set()
        seen_nais: set[str] = set()
        for account in self.mobile_nodes:
            home = account.home_address
            _require(home in self.home_network, f"{owner}: home address {home} is outside home_network")
            _require(home != self.address, f"{owner}: home address {home} is the home agent's own address")
            _require(home not in seen_addresses, f"{owner}: home address {home} is configured twice")
            seen_addresses.add(home)
            if account.nai is not None:
                _require(account.nai not in seen_nais, f"{owner}: nai {account.nai!r} is configured twice")
                seen_nais.add(account.nai)

    def account_for(self, home_address: IPv4Address) -> MobileNodeAccount | None:
        """The configured mobile node with this home address, if any (a dict lookup)."""
        return self._accounts_by_home.get(home_address)

    @cached_property
    def _accounts_by_home(self) -> dict[IPv4Address, MobileNodeAccount]:
        return {account.home_address: account for account in self.mobile_nodes}


@dataclass(frozen=True)
class MobileNodeConfig:
    """Mobile node with a co-located or a foreign agent care-of address (RFC 5944 §2.4, §3.6; RFC 5454)."""

    home_address: IPv4Address
    home_agent: IPv4Address
    spi: int
    key: bytes
    algorithm: AuthAlgorithm = AuthAlgorithm.HMAC_MD5
    nai: str | None = None
    lifetime: int = 300
    prefixes: tuple[IPv6Network, ...] = ()
    link_local_bootstrap: bool = False
    """Request the RFC 4213 link-local ``fe80::HoA`` with Prefix Length 255 (RFC 5454 §3.7.1)."""
    request_tunneling_mode: bool = False
    """Send the IPv6 Tunneling Mode extension: IPv6 to the co-located CoA (RFC 5454 §3.5)."""
    reverse_tunnel: bool = True
    encapsulation: Encapsulation = Encapsulation.IP_IN_IP
    simultaneous_bindings: bool = False
    replay_protection: ReplayProtection = ReplayProtection.TIMESTAMP
    retransmit_initial: float = 1.0
    retransmit_max: float = 16.0
    renewal_fraction: float = 0.75
    deregister_attempts: int = 3
    home_agent_port: int = MOBILE_IP_PORT
    local_port: int = 0
    """UDP source port of requests; 0 lets the runtime choose (RFC 5944 §3.3)."""
    interface_identifier: IPv6Address | None = None
    """Low bits of the MN's address in each accepted prefix; default ``::a.b.c.d`` of the HoA."""
    care_of_mode: CareOfMode = CareOfMode.COLOCATED
    movement_detection: MovementDetection = MovementDetection.BOTH
    solicitation_interval: float = 1.0
    """Gap between the initial Agent Solicitations: at most one per second (RFC 5944 §2.4)."""
    solicitation_initial_count: int = 3
    """Solicitations sent at ``solicitation_interval`` before the backoff doubles (RFC 5944 §2.4: 3)."""
    solicitation_max_interval: float = 60.0
    """Backoff cap, at least one minute (RFC 5944 §2.4)."""
    solicitation_jitter: float = 0.25
    """Each gap is drawn from [nominal, nominal × (1 + jitter)] with the injected rng (RFC 5944 §2.4)."""
    solicitation_destination: IPv4Address = SOLICITATION_DESTINATIONS[0]
    udp_tunnelling: UdpTunnelling = UdpTunnelling.OFF
    """Ask for RFC 3519 UDP tunnelling with a co-located care-of address: directly, or through an FA
    that advertises R and U, with the R flag (never with an FA care-of address, §3.1.2, §4.4)."""
    agent_wait: float = 0.0
    """Auto mode: seconds to wait, after a link gives a co-located address, for an agent advertising R
    before registering that address directly (RFC 5944 §3.6: with R it MUST go through the FA; the MN
    solicits at once). 0: register directly at once, switch when such an advertisement comes."""
    keepalive_interval: float = DEFAULT_KEEPALIVE
    """K when the reply's keepalive interval is 0 (RFC 3519 §4.9: 110 s). Values below 10 s are for
    tests only: the RFC never lets an MN go below 10 s in the field."""
    keepalive_attempts: int = 3
    """Unanswered keepalives (one second apart after the first) before the MN re-registers (§4.9)."""

    def __post_init__(self) -> None:
        owner = "mobile node"
        self._check_solicitation(owner)
        _require(self.home_address != self.home_agent, f"{owner}: home_address equals home_agent")
        _check_spi_and_key(owner, self.spi, self.key)
        _require(self.nai is None or 0 < len(self.nai) <= 255, f"{owner}: nai must be 1..255 characters")
        _check_lifetime(owner, "lifetime", self.lifetime)
        _check_ipv6_prefixes(owner, "prefixes", self.prefixes)
        _require(
            self.retransmit_initial >= 1.0,
            f"{owner}: retransmit_initial must be at least 1 second (RFC 5944 §3.6.3)",
        )
        _require(
            self.retransmit_max >= self.retransmit_initial,
            f"{owner}: retransmit_max must be at least retransmit_initial",
        )
        _require(0.0 < self.renewal_fraction < 1.0, f"{owner}: renewal_fraction must be between 0 and 1")
        _require(self.deregister_attempts >= 1, f"{owner}: deregister_attempts must be at least 1")
        _check_port(owner, "home_agent_port", self.home_agent_port)
        _check_port(owner, "local_port", self.local_port, allow_zero=True)
        _require(0.1 <= self.keepalive_interval <= 0xFFFF, f"{owner}: keepalive_interval must be 0.1..65535")
        _require(self.keepalive_attempts >= 1, f"{owner}: keepalive_attempts must be at least 1")
        _require(0.0 <= self.agent_wait <= 60.0, f"{owner}: agent_wait must be 0..60 seconds")
        _require(
            self.udp_tunnelling is UdpTunnelling.OFF or self.care_of_mode is not CareOfMode.FOREIGN_AGENT,
            f"{owner}: udp_tunnelling needs a co-located care-of address (RFC 3519 §3.1); "
            "care_of_mode is foreign-agent",
        )

    @property
    def association(self) -> SecurityAssociation:
        """The MN-HA security association (RFC 5944 §3.5.2)."""
        return SecurityAssociation(self.spi, self.key, self.algorithm)

    def _check_solicitation(self, owner: str) -> None:
        _require(
            self.solicitation_interval >= 1.0,
            f"{owner}: solicitation_interval must be at least 1 second (RFC 5944 §2.4)",
        )
        _require(
            1 <= self.solicitation_initial_count <= 3,
            f"{owner}: solicitation_initial_count must be 1..3 (RFC 5944 §2.4)",
        )
        _require(
            self.solicitation_max_interval >= max(60.0, self.solicitation_interval),
            f"{owner}: solicitation_max_interval must be at least 60 seconds (RFC 5944 §2.4)",
        )
        _require(0.0 <= self.solicitation_jitter <= 1.0, f"{owner}: solicitation_jitter must be 0..1")
        _require(
            self.solicitation_destination in SOLICITATION_DESTINATIONS,
            f"{owner}: solicitation_destination must be 224.0.0.11 or 255.255.255.255 (RFC 5944 §2.2)",
        )

    @property
    def link_local_address(self) -> IPv6Address:
        """The tunnel link-local address ``fe80::HoA`` (RFC 4213 §3.7, RFC 5454 §3.7.1)."""
        return link_local_for(self.home_address)

    @property
    def effective_interface_identifier(self) -> IPv6Address:
        """The interface identifier used in accepted prefixes (``::a.b.c.d`` unless configured)."""
        if self.interface_identifier is not None:
            return self.interface_identifier
        return IPv6Address(int(self.home_address))
