"""The foreign agent's pending list and visitor list (RFC 5944 §3.7.1).

One pending request and at most one visitor entry per home address. A pending request is a
relayed Registration Request waiting for its reply (deadline: the pending timeout); a visitor is a
registration its home agent accepted, kept for min(requested, granted) seconds counted from when the
FA received the request, so the visitor never outlives the home agent's binding. Deadlines sit in
lazy heaps: :meth:`VisitorList.next_deadline` is O(1) amortised and expiry O(log n) per entry.
Plain data: no clock is read; every method that ages entries takes ``now``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address

from agents.mip.common.config import INFINITE_LIFETIME, Encapsulation
from agents.mip.fa.config import DeliveryStyle
from agents.mip.fa.events import (
    RequestRelayed,
    VisitorAdded,
    VisitorRemoved,
    VisitorUpdated,
    format_link_address,
)
from agents.mip.ha.policy import requested_encapsulation
from agents.mip.wire.codes import RegistrationFlag

LOW32 = 0xFFFF_FFFF


@dataclass(frozen=True)
class PendingRequest:
    """A relayed request awaiting the home agent's reply (RFC 5944 §3.7.1)."""

    home_address: IPv4Address
    home_agent: IPv4Address
    care_of: IPv4Address
    identification: int
    lifetime: int
    flags: int
    source_address: IPv4Address
    source_port: int
    link_address: bytes | None
    interface: str | None
    reply_source: IPv4Address
    """Our address the MN sent the request to: the source of replies to it (RFC 5944 §3.7.3.2)."""
    delivery_style: DeliveryStyle
    received_at: float
    deadline: float
    fa_ha_added: bool

    @property
    def is_deregistration(self) -> bool:
        return self.lifetime == 0

    def relayed_event(self) -> RequestRelayed:
        return RequestRelayed(
            self.home_address,
            self.home_agent,
            self.care_of,
            self.lifetime,
            self.flags,
            self.identification,
            self.link_address,
            self.source_port,
        )

    def matches(self, identification: int) -> bool:
        """The reply's Identification low 32 bits equal the request's (RFC 5944 §3.7.3.1, §5.7)."""
        return (identification & LOW32) == (self.identification & LOW32)


@dataclass(frozen=True)
class Visitor:
    """A visitor list entry (RFC 5944 §3.7.1): who, where to deliver, and until when."""

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
    registered_at: float
    expires_at: float
    identification: int

    @classmethod
    def from_pending(cls, pending: PendingRequest, lifetime: int) -> Visitor:
        """The entry for an accepted request: T, D and M/G from its flags; lifetime counted from when
        the FA received the request (RFC 5944 §3.7.1, §3.7.3.1)."""
        flags = RegistrationFlag(pending.flags)
        return cls(
            pending.home_address,
            pending.home_agent,
            pending.care_of,
            pending.link_address,
            pending.source_address,
            pending.source_port,
            pending.interface,
            RegistrationFlag.T in flags,
            pending.delivery_style,
            requested_encapsulation(flags),
            RegistrationFlag.D in flags,
            lifetime,
            pending.received_at,
            expiry(pending.received_at, lifetime),
            pending.identification,
        )

    def event(self, existed: bool) -> VisitorAdded | VisitorUpdated:
        """:class:`VisitorUpdated` if the home address was already visiting, else :class:`VisitorAdded`."""
        event_type = VisitorUpdated if existed else VisitorAdded
        return event_type(
            self.home_address,
            self.home_agent,
            self.care_of,
            self.link_address,
            self.source_address,
            self.source_port,
            self.interface,
            self.reverse_tunnel,
            self.delivery_style,
            self.encapsulation,
            self.colocated,
            self.lifetime,
        )

    def removed_event(self, reason: str) -> VisitorRemoved:
        return VisitorRemoved(
            self.home_address, self.home_agent, self.care_of, self.link_address, self.interface, reason
        )

    def remaining(self, now: float) -> float:
        """Seconds left (``inf`` for an infinite lifetime)."""
        return max(0.0, self.expires_at - now)

    def to_dict(self, now: float) -> dict[str, object]:
        """A JSON-able view for the control socket (``visitors``)."""
        remaining = self.remaining(now)
        return {
            "home_address": str(self.home_address),
            "home_agent": str(self.home_agent),
            "care_of": str(self.care_of),
            "link_address": format_link_address(self.link_address),
            "source_port": self.source_port,
            "interface": self.interface,
            "reverse_tunnel": self.reverse_tunnel,
            "delivery_style": str(self.delivery_style),
            "encapsulation": str(self.encapsulation),
            "colocated": self.colocated,
            "lifetime": self.lifetime,
            "remaining": None if math.isinf(remaining) else round(remaining, 3),
        }


def expiry(start: float, lifetime: int) -> float:
    """When a registration of ``lifetime`` seconds from ``start`` runs out (0xFFFF: never, RFC 5944 §3.3)."""
    return math.inf if lifetime == INFINITE_LIFETIME else start + lifetime


class VisitorList:
    """Pending requests and visitors by home address, with expiry heaps."""

    def __init__(self) -> None:
        self._pending: dict[IPv4Address, PendingRequest] = {}
        self._visitors: dict[IPv4Address, Visitor] = {}
        self._pending_heap: list[tuple[float, int, IPv4Address]] = []
        self._visitor_heap: list[tuple[float, int, IPv4Address]] = []
        self._pushed = 0

    # -- pending list ------------------------------------------------------------------------------

    def add_pending(self, entry: PendingRequest) -> PendingRequest | None:
        """Record a relayed request; return the older pending one for this home address it supersedes."""
        previous = self._pending.get(entry.home_address)
        self._pending[entry.home_address] = entry
        self._push(self._pending_heap, entry.deadline, entry.home_address)
        return previous

    def pending(self, home_address: IPv4Address) -> PendingRequest | None:
        return self._pending.get(home_address)

    def take_pending(self, home_address: IPv4Address, identification: int) -> PendingRequest | None:
        """Remove and return the pending request a reply answers: same HoA and ID low 32 bits."""
        entry = self._pending.get(home_address)
        if entry is None or not entry.matches(identification):
            return None
        del self._pending[home_address]
        return entry

    def expired_pending(self, now: float) -> list[PendingRequest]:
        """Remove and return the pending requests whose deadline is ≤ ``now``."""
        found = []
        while self._pending_heap and self._pending_heap[0][0] <= now:
            deadline, _, home = heapq.heappop(self._pending_heap)
            entry = self._pending.get(home)
            if entry is not None and entry.deadline == deadline:
                del self._pending[home]
                found.append(entry)
        return found

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # -- visitor list ------------------------------------------------------------------------------

    def get(self, home_address: IPv4Address) -> Visitor | None:
        return self._visitors.get(home_address)

    def put(self, visitor: Visitor) -> Visitor | None:
        """Add or replace the visitor for its home address; return the entry it replaced."""
        previous = self._visitors.get(visitor.home_address)
        self._visitors[visitor.home_address] = visitor
        if not math.isinf(visitor.expires_at):
            self._push(self._visitor_heap, visitor.expires_at, visitor.home_address)
        return previous

    def remove(self, home_address: IPv4Address) -> Visitor | None:
        return self._visitors.pop(home_address, None)

    def expired(self, now: float) -> list[Visitor]:
        """Remove and return the visitors whose lifetime has run out by ``now``."""
        found = []
        while self._visitor_heap and self._visitor_heap[0][0] <= now:
            expires, _, home = heapq.heappop(self._visitor_heap)
            visitor = self._visitors.get(home)
            if visitor is not None and visitor.expires_at == expires:
                del self._visitors[home]
                found.append(visitor)
        return found

    def __len__(self) -> int:
        return len(self._visitors)

    def __iter__(self) -> Iterator[Visitor]:
        return iter(list(self._visitors.values()))

    def occupancy(self) -> int:
        """Distinct home addresses pending or visiting (what ``max_visitors`` limits)."""
        return len(self._visitors.keys() | self._pending.keys())

    def known(self, home_address: IPv4Address) -> bool:
        return home_address in self._visitors or home_address in self._pending

    def snapshot(self, now: float) -> list[dict[str, object]]:
        """Every visitor as a JSON-able dict, by home address."""
        return [self._visitors[home].to_dict(now) for home in sorted(self._visitors)]

    # -- deadlines -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest live pending deadline or visitor expiry, or None."""
        self._drop_stale()
        times = [heap[0][0] for heap in (self._pending_heap, self._visitor_heap) if heap]
        return min(times, default=None)

    def _push(self, heap: list[tuple[float, int, IPv4Address]], when: float, home: IPv4Address) -> None:
        self._pushed += 1
        heapq.heappush(heap, (when, self._pushed, home))

    def _drop_stale(self) -> None:
        while self._pending_heap:
            deadline, _, home = self._pending_heap[0]
            entry = self._pending.get(home)
            if entry is not None and entry.deadline == deadline:
                break
            heapq.heappop(self._pending_heap)
        while self._visitor_heap:
            expires, _, home = self._visitor_heap[0]
            visitor = self._visitors.get(home)
            if visitor is not None and visitor.expires_at == expires:
                break
            heapq.heappop(self._visitor_heap)
