"""What the state machines hand to the runtime: events (``next_event()``) and datagrams.

Events are frozen dataclasses, one per kind of thing the runtime acts on (tunnels, routes, ARP) or
records in the trace (messages sent and received, security and diagnostic events). Every event has
a stable ``name`` used as the trace's ``"event"`` field, and ``to_dict()`` giving JSON-able fields.
:class:`OutgoingDatagram` is what ``datagrams_to_send()`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from ipaddress import IPv4Address, IPv6Address, IPv6Interface, IPv6Network
from typing import ClassVar

from agents.mip.common.bindings import CareOf, PrefixBinding, TunnelTarget
from agents.mip.common.config import Encapsulation
from agents.mip.common.trace_schema import TraceEvent

_PLAIN = frozenset({str, int, bool, float, type(None)})


def _jsonable(value: object) -> object:
    if type(value) in _PLAIN:  # most fields: no conversion (checked first, for every trace line)
        return value
    if isinstance(value, IPv4Address | IPv6Address | IPv6Network | IPv6Interface | CareOf):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PrefixBinding):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    return value


class _Event:
    """Shared helpers; subclasses are frozen dataclasses."""

    name: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, object]:
        """The event's fields as JSON-able values, plus ``"event": name``."""
        result: dict[str, object] = {"event": self.name}
        for name in _field_names(type(self)):
            result[name] = _jsonable(getattr(self, name))
        return result


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """The dataclass field names of an event class, looked up once (``fields()`` is slow per call)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(item.name for item in fields(cls))
    return names


@dataclass(frozen=True)
class OutgoingDatagram:
    """A UDP payload to send: where to, and the source address/port and TTL the sender prefers.

    ``source``/``source_port`` None means "any"; ``ttl`` None means the system default.
    """

    payload: bytes
    destination: IPv4Address
    port: int
    source: IPv4Address | None = None
    source_port: int | None = None
    ttl: int | None = None


class ArpOwner(StrEnum):
    """Whose link-layer address a gratuitous ARP announces (RFC 5944 §4.6)."""

    HOME_AGENT = "home-agent"
    MOBILE_NODE = "mobile-node"


# -- diagnostics and security (both roles) -------------------------------------------------------


@dataclass(frozen=True)
class MalformedDatagram(_Event):
    """A datagram that did not decode; it was counted and dropped."""

    name: ClassVar[str] = TraceEvent.MALFORMED_DATAGRAM
    source: IPv4Address
    port: int
    reason: str
    offset: int | None = None


@dataclass(frozen=True)
class DatagramDiscarded(_Event):
    """A well-formed datagram silently discarded, with why (e.g. RFC 5944 §3.8.2.1 no SA)."""

    name: ClassVar[str] = TraceEvent.DATAGRAM_DISCARDED
    source: IPv4Address
    port: int
    reason: str


@dataclass(frozen=True)
class AuthenticationFailed(_Event):
    """A message whose MN-HA authenticator did not verify (RFC 5944 §3.8.2.1, §3.6.2.1)."""

    name: ClassVar[str] = TraceEvent.AUTHENTICATION_FAILED
    source: IPv4Address
    home_address: IPv4Address
    spi: int
    reason: str


@dataclass(frozen=True)
class IdentificationRejected(_Event):
    """A request whose Identification failed the replay check (RFC 5944 §5.7): replied with 133."""

    name: ClassVar[str] = TraceEvent.IDENTIFICATION_REJECTED
    home_address: IPv4Address
    identification: int
    reason: str


# -- home agent ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestReceived(_Event):
    """A decoded Registration Request (trace)."""

    name: ClassVar[str] = TraceEvent.RRQ_RECEIVED
    source: IPv4Address
    port: int
    home_address: IPv4Address
    care_of: IPv4Address
    lifetime: int
    flags: int
    identification: int


@dataclass(frozen=True)
class ReplySent(_Event):
    """A Registration Reply queued for sending (trace)."""

    name: ClassVar[str] = TraceEvent.RRP_SENT
    destination: IPv4Address
    port: int
    home_address: IPv4Address
    code: int
    lifetime: int
    identification: int
    prefix_replies: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class RequestDenied(_Event):
    """The HA denied an authenticated request with ``code`` (RFC 5944 §3.8.3.2), and why."""

    name: ClassVar[str] = TraceEvent.RRQ_DENIED
    home_address: IPv4Address
    care_of: IPv4Address
    code: int
    reason: str


@dataclass(frozen=True)
class BindingAdded(_Event):
    """A new care-of binding: the datapath starts tunnelling to it (RFC 5944 §3.8.3)."""

    name: ClassVar[str] = TraceEvent.BINDING_ADDED
    home_address: IPv4Address
    care_of: CareOf
    encapsulation: Encapsulation
    reverse_tunnel: bool
    lifetime: int
    prefixes: tuple[PrefixBinding, ...] = ()


@dataclass(frozen=True)
class BindingUpdated(_Event):
    """An existing care-of binding re-registered (new lifetime, maybe new encapsulation)."""

    name: ClassVar[str] = TraceEvent.BINDING_UPDATED
    home_address: IPv4Address
    care_of: CareOf
    encapsulation: Encapsulation
    reverse_tunnel: bool
    lifetime: int
    prefixes: tuple[PrefixBinding, ...] = ()


@dataclass(frozen=True)
class BindingRemoved(_Event):
    """A care-of binding gone: ``reason`` is deregistered, expired or replaced."""

    name: ClassVar[str] = TraceEvent.BINDING_REMOVED
    home_address: IPv4Address
    care_of: CareOf
    reason: str


@dataclass(frozen=True)
class UdpTunnelBound(_Event):
    """A half-bound UDP binding (R flag) completed by the MN's keepalive from ``care_of`` (the NAT's address
    and port), ``waited`` seconds after the registration (RFC 3519 §4.6, §4.11); ``previous_port``: the
    port it replaced (None: it had none yet)."""

    name: ClassVar[str] = TraceEvent.UDP_TUNNEL_BOUND
    home_address: IPv4Address
    care_of: CareOf
    waited: float
    previous_port: int | None = None


@dataclass(frozen=True)
class PrefixRegistered(_Event):
    """An IPv6 prefix now routed into the MN's tunnel, or its tunnel target changed (RFC 5454 §3.3)."""

    name: ClassVar[str] = TraceEvent.PREFIX_REGISTERED
    home_address: IPv4Address
    prefix: PrefixBinding


@dataclass(frozen=True)
class PrefixDeregistered(_Event):
    """An IPv6 prefix no longer registered (omitted, deregistered, expired; RFC 5454 §3.8)."""

    name: ClassVar[str] = TraceEvent.PREFIX_DEREGISTERED
    home_address: IPv4Address
    prefix: PrefixBinding
    reason: str


@dataclass(frozen=True)
class ProxyArpStarted(_Event):
    """Answer ARP for the away MN's home address on the home link (RFC 5944 §4.6)."""

    name: ClassVar[str] = TraceEvent.PROXY_ARP_STARTED
    home_address: IPv4Address


@dataclass(frozen=True)
class ProxyArpStopped(_Event):
    """Stop proxy ARP for this home address (MN home, or its last binding gone; RFC 5944 §4.6)."""

    name: ClassVar[str] = TraceEvent.PROXY_ARP_STOPPED
    home_address: IPv4Address


@dataclass(frozen=True)
class GratuitousArpRequested(_Event):
    """Broadcast a gratuitous ARP for ``address`` with the owner's link-layer address (RFC 5944 §4.6)."""

    name: ClassVar[str] = TraceEvent.GRATUITOUS_ARP
    address: IPv4Address
    owner: ArpOwner


# -- mobile node ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestSent(_Event):
    """A Registration Request queued for sending (trace): attempt 1 is the first transmission."""

    name: ClassVar[str] = TraceEvent.RRQ_SENT
    care_of: IPv4Address
    lifetime: int
    identification: int
    attempt: int


@dataclass(frozen=True)
class ReplyReceived(_Event):
    """A Registration Reply that matched a pending request and verified (trace)."""

    name: ClassVar[str] = TraceEvent.RRP_RECEIVED
    code: int
    lifetime: int
    identification: int


@dataclass(frozen=True)
class RegistrationAccepted(_Event):
    """The HA accepted the registration for ``lifetime`` seconds (RFC 5944 §3.6.2.2)."""

    name: ClassVar[str] = TraceEvent.REGISTRATION_ACCEPTED
    care_of: IPv4Address
    lifetime: int
    code: int


@dataclass(frozen=True)
class RegistrationDenied(_Event):
    """The HA denied the registration with ``code`` (RFC 5944 §3.6.2.3)."""

    name: ClassVar[str] = TraceEvent.REGISTRATION_DENIED
    care_of: IPv4Address
    code: int


@dataclass(frozen=True)
class RegistrationExpired(_Event):
    """The granted lifetime ran out before a renewal was accepted."""

    name: ClassVar[str] = TraceEvent.REGISTRATION_EXPIRED
    care_of: IPv4Address


@dataclass(frozen=True)
class Deregistered(_Event):
    """The HA accepted a deregistration (or the MN gave up waiting for it on shutdown)."""

    name: ClassVar[str] = TraceEvent.DEREGISTERED
    care_of: IPv4Address
    confirmed: bool


@dataclass(frozen=True)
class ClockResynchronised(_Event):
    """After a 133, the MN adjusted its timestamp offset or took the HA's nonce (RFC 5944 §5.7)."""

    name: ClassVar[str] = TraceEvent.CLOCK_RESYNCHRONISED
    offset: float
    nonce: int | None = None


@dataclass(frozen=True)
class PrefixAccepted(_Event):
    """A requested prefix accepted, tunnelled to the HoA (code 0) or the CoA (code 1) (RFC 5454 §3.5)."""

    name: ClassVar[str] = TraceEvent.PREFIX_ACCEPTED
    prefix: IPv6Network
    target: TunnelTarget
    link_local: bool
    code: int


@dataclass(frozen=True)
class PrefixRejected(_Event):
    """A requested prefix rejected; ``code`` is None when the reply had no matching extension."""

    name: ClassVar[str] = TraceEvent.PREFIX_REJECTED
    prefix: IPv6Network
    link_local: bool
    code: int | None


@dataclass(frozen=True)
class Ipv4OnlyFallback(_Event):
    """The reply carried no Prefix Reply at all: the HA lacks DSMIPv4 (RFC 5454 §3.5 case 1)."""

    name: ClassVar[str] = TraceEvent.IPV4_ONLY_FALLBACK


@dataclass(frozen=True)
class TunnelUp(_Event):
    """Bring up (or move) the MN's tunnel between ``care_of`` and the HA (RFC 5944 §3.6.2.2).

    ``colocated`` False: ``care_of`` is a foreign agent's, which does the IPv4 tunnelling; the MN
    only carries IPv6 in IPv4 between its home address and the HA (RFC 5454 §3.3.2, code 0).
    """

    name: ClassVar[str] = TraceEvent.TUNNEL_UP
    care_of: IPv4Address
    home_agent: IPv4Address
    home_address: IPv4Address
    encapsulation: Encapsulation
    reverse_tunnel: bool
    colocated: bool = True
    udp_keepalive: float | None = None
    """Set when the home agent agreed to RFC 3519 UDP tunnelling: every packet to and from the HA goes
    in UDP (Tunnel Data, port 434) and keepalives go every this many seconds (§4.9)."""


@dataclass(frozen=True)
class KeepaliveDue(_Event):
    """Send a UDP-encapsulated ICMP Echo Request from the home address to the HA (RFC 3519 §4.9)."""

    name: ClassVar[str] = TraceEvent.KEEPALIVE_DUE
    home_agent: IPv4Address
    home_address: IPv4Address
    sequence: int
    attempt: int


@dataclass(frozen=True)
class KeepaliveAnswered(_Event):
    """The HA's Echo Reply to keepalive ``sequence`` arrived through the tunnel (RFC 3519 §4.10)."""

    name: ClassVar[str] = TraceEvent.KEEPALIVE_ANSWERED
    sequence: int


@dataclass(frozen=True)
class KeepaliveLost(_Event):
    """``missed`` keepalives in a row went unanswered: the NAT mapping is presumed lost and the mobile
    node registers again (RFC 3519 §4.9)."""

    name: ClassVar[str] = TraceEvent.KEEPALIVE_LOST
    missed: int


@dataclass(frozen=True)
class TunnelDown(_Event):
    """Take the MN's tunnel down: ``reason`` is deregistered, expired, link-down or shutdown."""

    name: ClassVar[str] = TraceEvent.TUNNEL_DOWN
    care_of: IPv4Address
    reason: str


@dataclass(frozen=True)
class Ipv6AddressAdded(_Event):
    """Install this address on the MN's tunnel interface (RFC 5454 §3.5, RFC 4213 §3.7)."""

    name: ClassVar[str] = TraceEvent.IPV6_ADDRESS_ADDED
    address: IPv6Interface
    target: TunnelTarget


@dataclass(frozen=True)
class Ipv6AddressRemoved(_Event):
    name: ClassVar[str] = TraceEvent.IPV6_ADDRESS_REMOVED
    address: IPv6Interface
    target: TunnelTarget


@dataclass(frozen=True)
class Ipv6RouteAdded(_Event):
    """Route this IPv6 prefix through the tunnel to the HA (``::/0`` for the default route)."""

    name: ClassVar[str] = TraceEvent.IPV6_ROUTE_ADDED
    prefix: IPv6Network
    target: TunnelTarget


@dataclass(frozen=True)
class Ipv6RouteRemoved(_Event):
    name: ClassVar[str] = TraceEvent.IPV6_ROUTE_REMOVED
    prefix: IPv6Network
    target: TunnelTarget


HomeAgentEvent = (
    MalformedDatagram
    | DatagramDiscarded
    | AuthenticationFailed
    | IdentificationRejected
    | RequestReceived
    | ReplySent
    | RequestDenied
    | BindingAdded
    | BindingUpdated
    | UdpTunnelBound
    | BindingRemoved
    | PrefixRegistered
    | PrefixDeregistered
    | ProxyArpStarted
    | ProxyArpStopped
    | GratuitousArpRequested
)
"""Everything :class:`agents.mip.ha.home_agent.HomeAgent` emits; the role's ``apply`` matches each one."""

RegistrationEvent = (
    MalformedDatagram
    | DatagramDiscarded
    | AuthenticationFailed
    | RequestSent
    | ReplyReceived
    | RegistrationAccepted
    | RegistrationDenied
    | RegistrationExpired
    | Deregistered
    | ClockResynchronised
    | PrefixAccepted
    | PrefixRejected
    | Ipv4OnlyFallback
    | TunnelUp
    | KeepaliveDue
    | KeepaliveAnswered
    | KeepaliveLost
    | TunnelDown
    | Ipv6AddressAdded
    | Ipv6AddressRemoved
    | Ipv6RouteAdded
    | Ipv6RouteRemoved
)
"""The mobile node's registration machine's events (RFC 5944 §3.6, RFC 3519, RFC 5454 §3.5)."""


# -- mobile node: agent discovery and movement detection (RFC 5944 §2.4) ----------------------------


class MovementReason(StrEnum):
    """Why the mobile node decided it moved (RFC 5944 §2.4.2, §2.4.3, §2.4.4)."""

    LIFETIME = "lifetime"  # algorithm 1: the current agent's advertisement Lifetime expired
    PREFIX = "prefix"  # algorithm 2: an advertisement with a different network prefix
    LINK = "link"  # the link went down and up (carrier), or came up
    REBOOT = "reboot"  # the current foreign agent's sequence number fell below 256: re-register
    HOME = "home"  # an advertisement from its own home agent (H set): back home


@dataclass(frozen=True)
class OutgoingIcmp:
    """An ICMP message to send (``solicitations_to_send()``): payload from the ICMP header on.

    ``ttl`` is 1 for Agent Solicitations (RFC 5944 §2.2); ``source`` None means "any".
    """

    payload: bytes
    destination: IPv4Address
    ttl: int = 1
    source: IPv4Address | None = None


@dataclass(frozen=True)
class AgentDiscovered(_Event):
    """A mobility agent heard for the first time on this link (RFC 5944 §2.4)."""

    name: ClassVar[str] = TraceEvent.AGENT_DISCOVERED
    agent: IPv4Address
    flags: int
    lifetime: int
    care_of_addresses: tuple[IPv4Address, ...]
    sequence: int


@dataclass(frozen=True)
class AgentLost(_Event):
    """An agent dropped from the table: ``reason`` is expired (its Lifetime ran out) or link-down."""

    name: ClassVar[str] = TraceEvent.AGENT_LOST
    agent: IPv4Address
    reason: str


@dataclass(frozen=True)
class MovementDetected(_Event):
    """The MN decided it moved (or must re-register); ``to_agent`` None: none known yet, soliciting."""

    name: ClassVar[str] = TraceEvent.MOVEMENT_DETECTED
    reason: MovementReason
    from_agent: IPv4Address | None
    to_agent: IPv4Address | None


@dataclass(frozen=True)
class SolicitationSent(_Event):
    """An Agent Solicitation queued for sending (trace); attempt 1 is the first of a round."""

    name: ClassVar[str] = TraceEvent.SOLICITATION_SENT
    destination: IPv4Address
    attempt: int


@dataclass(frozen=True)
class AdvertisementDiscarded(_Event):
    """An ICMP message dropped: malformed (``offset`` set when decoding failed) or not usable."""

    name: ClassVar[str] = TraceEvent.ADVERTISEMENT_DISCARDED
    source: IPv4Address
    reason: str
    offset: int | None = None


@dataclass(frozen=True)
class AtHome(_Event):
    """The MN is on its home link (its own HA's advertisement, or the HoA as co-located address): use the
    home address natively there, with the home link's routers (RFC 5944 §2.4.3, §4.6)."""

    name: ClassVar[str] = TraceEvent.AT_HOME
    home_address: IPv4Address


@dataclass(frozen=True)
class ArpModeChanged(_Event):
    """ARP for the home address on the MN's own link (RFC 5944 §4.6).

    ``away`` True (registering via ``foreign_agent``): send no broadcast ARP, answer ARP for the
    home address only when unicast by that FA (unicast reply), learn the FA's link-layer address
    from its advertisement. ``away`` False (back home): ARP as usual again and forget entries
    learned on the visited link; a :class:`GratuitousArpRequested` follows.
    """

    name: ClassVar[str] = TraceEvent.ARP_MODE_CHANGED
    home_address: IPv4Address
    away: bool
    foreign_agent: IPv4Address | None = None


# -- RFC 4881 pre-registration (agents.mip.mn.llh_pre) ---------------------------------------------


@dataclass(frozen=True)
class PreRegistrationStarted(_Event):
    """L2 trigger taken: the new care-of address is registered through the old link (RFC 4881 §3.3)."""

    name: ClassVar[str] = TraceEvent.LLH_PRE_STARTED
    agent: IPv4Address
    care_of: IPv4Address


@dataclass(frozen=True)
class PreRegistrationReady(_Event):
    """The home agent accepted the new care-of address before the move (RFC 4881 §3.1)."""

    name: ClassVar[str] = TraceEvent.LLH_PRE_READY
    agent: IPv4Address
    care_of: IPv4Address


@dataclass(frozen=True)
class PreRegistrationAttached(_Event):
    """The link came up at the target: the MN routes via it without a new request (RFC 4881 §3.1)."""

    name: ClassVar[str] = TraceEvent.LLH_PRE_ATTACHED
    agent: IPv4Address
    ready: bool
    """False: the reply had not arrived yet at the move (it comes through the new FA's buffer)."""


@dataclass(frozen=True)
class PreRegistrationAbandoned(_Event):
    """The trigger was stale, denied, or never became a move: back to the standard handoff."""

    name: ClassVar[str] = TraceEvent.LLH_PRE_ABANDONED
    agent: IPv4Address | None
    reason: str


DiscoveryEvent = (
    AgentDiscovered
    | AgentLost
    | MovementDetected
    | SolicitationSent
    | AdvertisementDiscarded
    | ArpModeChanged
    | AtHome
    | PreRegistrationStarted
    | PreRegistrationReady
    | PreRegistrationAttached
    | PreRegistrationAbandoned
)
"""The mobile node's agent-discovery and pre-registration events (RFC 5944 §2.4, RFC 4881 §3)."""

MobileNodeEvent = RegistrationEvent | DiscoveryEvent | GratuitousArpRequested
"""Everything :class:`agents.mip.mn.mobile_node.MobileNode` emits; the role's ``apply`` matches each one."""
