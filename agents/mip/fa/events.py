"""What the foreign agent hands to the runtime: events (``next_event()``) and datagrams.

Same style as :mod:`agents.mip.common.events`: frozen dataclasses with a stable ``name`` (the trace's
``"event"`` field) and ``to_dict()``; link-layer addresses are rendered ``aa:bb:cc:dd:ee:ff``.
The foreign agent also emits the shared diagnostics :class:`~agents.mip.common.events.MalformedDatagram`
and :class:`~agents.mip.common.events.DatagramDiscarded`.

The runtime acts on :class:`VisitorAdded`, :class:`VisitorUpdated` and :class:`VisitorRemoved`
(delivery state for a visitor, RFC 5944 §3.7.1, §4.2.2; RFC 3024 §5); the rest is for the trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import ClassVar

from agents.mip.common.config import Encapsulation
from agents.mip.common.events import DatagramDiscarded, MalformedDatagram, OutgoingDatagram, _Event
from agents.mip.common.trace_schema import TraceEvent
from agents.mip.fa.config import DeliveryStyle


def format_link_address(address: bytes | None) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` for a link-layer address, None for None."""
    return None if address is None else ":".join(f"{byte:02x}" for byte in address)


def _render(value: object) -> object:
    return format_link_address(value) if isinstance(value, bytes) else value


class _FaEvent(_Event):
    """:class:`agents.mip.common.events._Event` with bytes fields rendered as link-layer addresses."""

    def to_dict(self) -> dict[str, object]:
        result = super().to_dict()
        return {key: _render(value) for key, value in result.items()}


@dataclass(frozen=True)
class LinkDatagram(OutgoingDatagram):
    """An :class:`~agents.mip.common.events.OutgoingDatagram` for the access link: send it out ``interface``
    to ``link_address`` directly, never by ARP for ``destination`` (a visitor's home address;
    RFC 5944 §3.7.3.2, §4.2.2). Both are None for datagrams to the home agent (normal routing)."""

    link_address: bytes | None = None
    interface: str | None = None


# -- relay trace ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRelayed(_FaEvent):
    """A visitor's Registration Request passed the checks and was relayed to its HA (RFC 5944 §3.7.2.3)."""

    name: ClassVar[str] = TraceEvent.FA_RRQ_RELAYED
    home_address: IPv4Address
    home_agent: IPv4Address
    care_of: IPv4Address
    lifetime: int
    flags: int
    identification: int
    link_address: bytes | None
    source_port: int


@dataclass(frozen=True)
class ReplyRelayed(_FaEvent):
    """The HA's Registration Reply relayed to the visitor (RFC 5944 §3.7.3.2)."""

    name: ClassVar[str] = TraceEvent.FA_RRP_RELAYED
    home_address: IPv4Address
    home_agent: IPv4Address
    code: int
    lifetime: int
    identification: int


@dataclass(frozen=True)
class ForeignAgentDenied(_FaEvent):
    """The FA answered a request itself with denial ``code`` (RFC 5944 §3.7.2.2; RFC 3024 §4.2), and why.

    Code 78 means the home agent did not answer before the pending timeout (RFC 5944 §3.7.1).
    """

    name: ClassVar[str] = TraceEvent.FA_DENIED
    home_address: IPv4Address
    home_agent: IPv4Address
    care_of: IPv4Address
    code: int
    reason: str


@dataclass(frozen=True)
class ForeignAuthenticationFailed(_FaEvent):
    """An MN-FA (33) or FA-HA (34) authenticator missing, duplicated or wrong (RFC 5944 §3.7.2.1, §3.7.3.1).

    ``spi`` is the SPI seen, None when the extension was missing.
    """

    name: ClassVar[str] = TraceEvent.FA_AUTHENTICATION_FAILED
    source: IPv4Address
    home_address: IPv4Address
    extension_type: int
    spi: int | None
    reason: str


# -- visitor list: the runtime turns these into delivery state -------------------------------------


@dataclass(frozen=True)
class VisitorAdded(_FaEvent):
    """A new visitor accepted by its HA: decapsulate ``encapsulation`` from ``home_agent`` to ``care_of``
    and deliver to ``link_address`` on ``interface`` (RFC 5944 §4.2.2); with ``reverse_tunnel``, tunnel
    its packets back in the given delivery style (RFC 3024 §5). ``colocated`` (D): no FA datapath role.
    ``lifetime`` 0xFFFF is infinite."""

    name: ClassVar[str] = TraceEvent.VISITOR_ADDED
    home_address: IPv4Address
    home_agent: IPv4Address
    care_of: IPv4Address
    link_address: bytes | None
    source_address: IPv4Address
    source_port: int
    interface: str | None
    reverse_tunnel: bool
    delivery_style: DeliveryStyle
    encapsulation: Encapsulation
    colocated: bool
    lifetime: int


@dataclass(frozen=True)
class VisitorUpdated(_FaEvent):
    """An existing visitor re-registered: replace its delivery state with these values."""

    name: ClassVar[str] = TraceEvent.VISITOR_UPDATED
    home_address: IPv4Address
    home_agent: IPv4Address
    care_of: IPv4Address
    link_address: bytes | None
    source_address: IPv4Address
    source_port: int
    interface: str | None
    reverse_tunnel: bool
    delivery_style: DeliveryStyle
    encapsulation: Encapsulation
    colocated: bool
    lifetime: int


@dataclass(frozen=True)
class VisitorRemoved(_FaEvent):
    """A visitor gone: ``reason`` is deregistered or expired. Remove its delivery state."""

    name: ClassVar[str] = TraceEvent.VISITOR_REMOVED
    home_address: IPv4Address
    home_agent: IPv4Address
    care_of: IPv4Address
    link_address: bytes | None
    interface: str | None
    reason: str


# -- agent discovery trace -------------------------------------------------------------------------


@dataclass(frozen=True)
class SolicitationReceived(_FaEvent):
    """An Agent Solicitation (RFC 5944 §2.2)."""

    name: ClassVar[str] = TraceEvent.SOLICITATION_RECEIVED
    source: IPv4Address
    link_address: bytes | None
    interface: str | None = None


@dataclass(frozen=True)
class AdvertisementSent(_FaEvent):
    """An Agent Advertisement handed to the runtime (RFC 5944 §2.1)."""

    name: ClassVar[str] = TraceEvent.ADVERTISEMENT_SENT
    destination: IPv4Address
    sequence: int
    solicited: bool


# -- low-latency handoff (RFC 4881; agents.mip.fa.handoff) ------------------------------------------


@dataclass(frozen=True)
class VisitorExpected(_FaEvent):
    """An L2 target trigger: ``home_address`` (at ``link_address``) is coming; buffer its packets for up
    to ``timeout`` seconds (RFC 4881 §1.3 L2-TT, §3.1)."""

    name: ClassVar[str] = TraceEvent.LLH_VISITOR_EXPECTED
    home_address: IPv4Address
    link_address: bytes
    timeout: float


@dataclass(frozen=True)
class VisitorAttached(_FaEvent):
    """The expected visitor is on the access link (L2-LU or its first solicitation): flush its buffer."""

    name: ClassVar[str] = TraceEvent.LLH_VISITOR_ATTACHED
    home_address: IPv4Address
    link_address: bytes
    how: str


@dataclass(frozen=True)
class EdgeTunnelUp(_FaEvent):
    """This FA's end of a bidirectional edge tunnel to the FA at ``peer`` (RFC 4881 §4): ``side`` old
    (forward the MN's packets after L2-LD) or new (take them from ``peer``, deliver to ``link_address``)."""

    name: ClassVar[str] = TraceEvent.LLH_BET_UP
    home_address: IPv4Address
    peer: IPv4Address
    side: str
    link_address: bytes | None
    lifetime: float


@dataclass(frozen=True)
class EdgeTunnelForwarding(_FaEvent):
    """L2-LD at the old FA: the MN's packets now go through the BET to ``peer`` (RFC 4881 §4)."""

    name: ClassVar[str] = TraceEvent.LLH_BET_FORWARDING
    home_address: IPv4Address
    peer: IPv4Address


@dataclass(frozen=True)
class EdgeTunnelClosed(_FaEvent):
    """The BET end is gone: the MN registered through the new FA, or the lifetime ran out (§4)."""

    name: ClassVar[str] = TraceEvent.LLH_BET_CLOSED
    home_address: IPv4Address
    peer: IPv4Address
    side: str
    reason: str


ForeignAgentEvent = (
    MalformedDatagram
    | DatagramDiscarded
    | RequestRelayed
    | ReplyRelayed
    | ForeignAgentDenied
    | ForeignAuthenticationFailed
    | VisitorAdded
    | VisitorUpdated
    | VisitorRemoved
    | SolicitationReceived
    | AdvertisementSent
    | VisitorExpected
    | VisitorAttached
    | EdgeTunnelUp
    | EdgeTunnelForwarding
    | EdgeTunnelClosed
)
"""Everything :class:`agents.mip.fa.foreign_agent.ForeignAgent` emits; the role's ``apply`` matches each."""
