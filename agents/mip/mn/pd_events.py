"""Events and datagrams of the DHCPv6 prefix-delegation client (:mod:`agents.mip.mn.pd_client`).

Same shape as :mod:`agents.mip.common.events`: frozen dataclasses with a stable ``name`` (the trace's
``"event"``) and ``to_dict()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from agents.mip.common.events import _Event
from agents.mip.common.trace_schema import TraceEvent
from agents.mip.wire.dhcpv6 import ALL_DHCP_RELAY_AGENTS_AND_SERVERS, SERVER_PORT


@dataclass(frozen=True)
class Dhcpv6Datagram:
    """A client message to send from port 546 on the tunnel link (RFC 8415 §7.1, §7.2)."""

    payload: bytes
    destination: IPv6Address = ALL_DHCP_RELAY_AGENTS_AND_SERVERS
    port: int = SERVER_PORT


@dataclass(frozen=True)
class Dhcpv6Sent(_Event):
    """A Solicit, Request, Renew, Rebind or Release left; ``attempt`` counts retransmissions from 1."""

    name = TraceEvent.DHCPV6_SENT
    message: str
    transaction_id: int
    attempt: int
    rapid_commit: bool = False


@dataclass(frozen=True)
class Dhcpv6Received(_Event):
    """An Advertise or Reply matching the current exchange was accepted for processing."""

    name = TraceEvent.DHCPV6_RECEIVED
    message: str
    transaction_id: int
    rapid_commit: bool = False


@dataclass(frozen=True)
class Dhcpv6Ignored(_Event):
    """A message or a prefix was discarded (RFC 8415 §16: wrong client, transaction or state)."""

    name = TraceEvent.DHCPV6_IGNORED
    reason: str
    message: str = ""


@dataclass(frozen=True)
class PrefixDelegated(_Event):
    """A prefix was delegated (or renewed/rebound: ``how``); seconds are relative to now (RFC 8415 §21.21)."""

    name = TraceEvent.PREFIX_DELEGATED
    prefix: IPv6Network
    preferred: int
    valid: int
    t1: float
    t2: float
    how: str
    server_id: str


@dataclass(frozen=True)
class DelegationLost(_Event):
    """Stop using the prefix: ``expired``, ``released``, ``withdrawn`` (lifetime 0) or ``no-binding``."""

    name = TraceEvent.DELEGATION_LOST
    prefix: IPv6Network
    reason: str


@dataclass(frozen=True)
class NoPrefixAvailable(_Event):
    """The server has no prefix for us (status NoPrefixAvail, RFC 3633 §16 / RFC 8415 §21.13)."""

    name = TraceEvent.DHCPV6_NO_PREFIX
    message: str


@dataclass(frozen=True)
class ReleaseFinished(_Event):
    """The Release exchange ended: confirmed by a Reply, or given up after REL_MAX_RC (RFC 8415 §18.2.7)."""

    name = TraceEvent.DHCPV6_RELEASE_FINISHED
    confirmed: bool


PdClientEvent = (
    Dhcpv6Sent
    | Dhcpv6Received
    | Dhcpv6Ignored
    | PrefixDelegated
    | DelegationLost
    | NoPrefixAvailable
    | ReleaseFinished
)
