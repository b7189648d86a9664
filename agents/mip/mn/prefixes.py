"""The mobile node's view of its IPv6 prefixes: reply matching and tunnel-interface config (RFC 5454 §3.5).

Pure functions: from the Prefix Requests sent and the Prefix Replies received, decide each prefix's
outcome; from the outcomes, the addresses and routes the tunnel interface must carry; and the
add/remove events that turn one configuration into the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Interface, IPv6Network

from agents.mip.common.bindings import TunnelTarget
from agents.mip.common.events import (
    Ipv4OnlyFallback,
    Ipv6AddressAdded,
    Ipv6AddressRemoved,
    Ipv6RouteAdded,
    Ipv6RouteRemoved,
    PrefixAccepted,
    PrefixRejected,
    RegistrationEvent,
)
from agents.mip.wire.codes import PrefixReplyCode
from agents.mip.wire.dsmip import PrefixReply, PrefixRequest

DEFAULT_ROUTE = IPv6Network("::/0")
LINK_LOCAL_LENGTH = 64  # fe80::/64 on the tunnel link (RFC 4213 §3.7)


@dataclass(frozen=True)
class PrefixOutcome:
    """What became of one Prefix Request: accepted to a target, or rejected (``code`` None = no reply)."""

    network: IPv6Network
    link_local: bool
    code: int | None
    target: TunnelTarget | None

    @property
    def accepted(self) -> bool:
        return self.target is not None


def request_key(request: PrefixRequest) -> tuple[IPv6Network, bool]:
    """The prefix a request stands for; a link-local (Prefix Length 255) as a /128."""
    network = request.network
    if network is None:
        return IPv6Network(request.prefix), True
    return network, False


def _outcome(request: PrefixRequest, reply: PrefixReply | None, colocated: bool = True) -> PrefixOutcome:
    network, link_local = request_key(request)
    if reply is None:
        return PrefixOutcome(network, link_local, None, None)  # missing reply = rejected (§3.5)
    if not PrefixReplyCode.is_accepted(reply.code):
        return PrefixOutcome(network, link_local, reply.code, None)
    # Code 1 with a co-located CoA: the CoA tunnel; every other accept code, and any accept with an
    # FA care-of address (which never asks for Tunneling Mode): the HoA tunnel (§3.3.2, §3.5).
    to_care_of = colocated and reply.code == PrefixReplyCode.ACCEPTED_TO_COA
    target = TunnelTarget.CARE_OF if to_care_of else TunnelTarget.HOME_ADDRESS
    return PrefixOutcome(network, link_local, reply.code, target)


def _matching_reply(request: PrefixRequest, replies: tuple[PrefixReply, ...]) -> PrefixReply | None:
    return next((reply for reply in replies if reply.matches(request)), None)


def evaluate(
    requests: tuple[PrefixRequest, ...], replies: tuple[PrefixReply, ...], colocated: bool = True
) -> tuple[list[PrefixOutcome], bool]:
    """Match each request with its reply (RFC 5454 §3.5); the flag is True for "no replies at all".

    With no Prefix Reply at all the HA lacks DSMIPv4: every outcome is a rejection and the caller
    falls back to IPv4 only (case 1). Replies for prefixes never requested are ignored.
    """
    outcomes = [_outcome(request, _matching_reply(request, replies), colocated) for request in requests]
    return outcomes, bool(requests) and not replies


@dataclass(frozen=True)
class Ipv6Config:
    """Addresses and routes on the MN's tunnel interface, each with the tunnel it uses."""

    addresses: dict[IPv6Interface, TunnelTarget] = field(default_factory=dict)
    routes: dict[IPv6Network, TunnelTarget] = field(default_factory=dict)


def address_in(prefix: IPv6Network, interface_identifier: IPv6Address) -> IPv6Address:
    """The MN's address in ``prefix``: the prefix bits, then the identifier's low bits."""
    host_bits = int(interface_identifier) & int(prefix.hostmask)
    return IPv6Address(int(prefix.network_address) | host_bits)


def ipv6_config(outcomes: list[PrefixOutcome], interface_identifier: IPv6Address) -> Ipv6Config:
    """Accepted prefixes → one /128 address each, the link-local as /64, ``::/0`` via the first prefix."""
    addresses: dict[IPv6Interface, TunnelTarget] = {}
    routes: dict[IPv6Network, TunnelTarget] = {}
    for outcome in outcomes:
        if outcome.target is None:
            continue
        if outcome.link_local:
            address = outcome.network.network_address
            addresses[IPv6Interface((address, LINK_LOCAL_LENGTH))] = outcome.target
            continue
        addresses[IPv6Interface((address_in(outcome.network, interface_identifier), 128))] = outcome.target
        routes.setdefault(DEFAULT_ROUTE, outcome.target)
    return Ipv6Config(addresses, routes)


def config_changes(old: Ipv6Config, new: Ipv6Config) -> list[RegistrationEvent]:
    """Events turning ``old`` into ``new``: removals first, then additions (a target change is both)."""
    events: list[RegistrationEvent] = []
    for route, target in old.routes.items():
        if new.routes.get(route) != target:
            events.append(Ipv6RouteRemoved(route, target))
    for address, target in old.addresses.items():
        if new.addresses.get(address) != target:
            events.append(Ipv6AddressRemoved(address, target))
    for address, target in new.addresses.items():
        if old.addresses.get(address) != target:
            events.append(Ipv6AddressAdded(address, target))
    for route, target in new.routes.items():
        if old.routes.get(route) != target:
            events.append(Ipv6RouteAdded(route, target))
    return events


def outcome_changes(
    old: dict[IPv6Network, PrefixOutcome], new: list[PrefixOutcome]
) -> list[RegistrationEvent]:
    """PrefixAccepted / PrefixRejected for each prefix whose outcome differs from last time."""
    events: list[RegistrationEvent] = []
    for outcome in new:
        if old.get(outcome.network) == outcome:
            continue
        if outcome.target is not None:
            code = outcome.code if outcome.code is not None else 0
            events.append(PrefixAccepted(outcome.network, outcome.target, outcome.link_local, code))
        else:
            events.append(PrefixRejected(outcome.network, outcome.link_local, outcome.code))
    return events


class PrefixState:
    """The MN's current prefix outcomes and tunnel-interface config; methods return the events."""

    def __init__(self, interface_identifier: IPv6Address) -> None:
        self.interface_identifier = interface_identifier
        self.outcomes: dict[IPv6Network, PrefixOutcome] = {}
        self.ipv6 = Ipv6Config()
        self.ipv4_only = False

    def apply_reply(
        self, requests: tuple[PrefixRequest, ...], replies: tuple[PrefixReply, ...], colocated: bool = True
    ) -> list[RegistrationEvent]:
        """Outcomes of an accepting reply (RFC 5454 §3.5); no replies at all → IPv4 only (case 1)."""
        outcomes, no_replies = evaluate(requests, replies, colocated)
        events: list[RegistrationEvent] = []
        if no_replies:
            if not self.ipv4_only:
                events.append(Ipv4OnlyFallback())
            self.ipv4_only = True
            outcomes = []
        else:
            self.ipv4_only = False
            events.extend(outcome_changes(self.outcomes, outcomes))
        self.outcomes = {outcome.network: outcome for outcome in outcomes}
        return events + self._set_config(ipv6_config(outcomes, self.interface_identifier))

    def clear(self) -> list[RegistrationEvent]:
        """Forget every prefix (binding expired, deregistered, stopped); remove addresses and routes."""
        self.outcomes = {}
        return self._set_config(Ipv6Config())

    def _set_config(self, new: Ipv6Config) -> list[RegistrationEvent]:
        events = config_changes(self.ipv6, new)
        self.ipv6 = new
        return events

    def to_dicts(self) -> list[dict[str, object]]:
        """Outcomes as JSON-able dicts."""
        return [
            {
                "prefix": str(item.network),
                "link_local": item.link_local,
                "code": item.code,
                "target": None if item.target is None else str(item.target),
            }
            for item in self.outcomes.values()
        ]
