"""The new foreign agent's bounded buffer for a visitor it expects (RFC 4881 low-latency handoffs).

RFC 4881 lets the new FA (nFA) learn of a coming visitor before it arrives: the pre-registration
(§3) registers the nFA's care-of address while the mobile node is still on the old link, and the
post-registration (§4) sends the MN's packets to the nFA over the edge tunnel before the MN can take
them. Packets that reach the nFA for an expected visitor before its link-layer attachment (the L2-LU
trigger, §1.3) would be lost on a link the MN is not on yet; this buffer holds them instead.

The buffer's shape (size, drop policy, lifetime) is this testbed's choice; what is implemented here,
exactly:

* :meth:`VisitorBuffers.expect` (the L2 target trigger, L2-TT) opens a buffer of at most
  ``limit`` packets for a home address, valid until ``now + timeout``;
* :meth:`offer` stores a packet for an expected, not yet attached visitor; a full buffer drops its
  *oldest* packet to make room (head drop): with simultaneous bindings the old path delivers the older
  copies until the move, so the newest are the ones the visitor may not have; order is kept;
* :meth:`attach` (L2-LU, or the visitor's first frame on the access link) returns every held packet
  in arrival order and closes the buffer;
* at ``timeout`` without attachment (:meth:`handle_timer`: the trigger never became a move) the
  held packets are dropped and the buffer is closed.

Pure and clock-free: every input carries ``now``.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address

DEFAULT_LIMIT = 256
"""Packets held per expected visitor (about 60 ms of four 1000 packet/s flows)."""
DEFAULT_TIMEOUT = 2.0
"""Seconds an expectation lasts without the visitor attaching."""


class Offered(StrEnum):
    """What :meth:`VisitorBuffers.offer` did with a packet."""

    BUFFERED = "buffered"
    OVERFLOW = "overflow"  # expected, buffer full: held, and the oldest held packet dropped (head drop)
    DELIVER = "deliver"  # not expected (or attached already): deliver as usual


@dataclass
class _Expected:
    expires_at: float
    limit: int
    packets: deque[bytes] = field(default_factory=deque)
    dropped: int = 0


@dataclass(frozen=True)
class Expired:
    """A buffer closed by its timeout: how many held packets it dropped (overflow is counted apart)."""

    home_address: IPv4Address
    dropped: int


class VisitorBuffers:
    """Bounded per-visitor buffers at the new FA (RFC 4881 §3.1, §4; limits as documented above)."""

    def __init__(self, limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT) -> None:
        if limit < 1:
            raise ValueError("buffer limit must be at least 1 packet")
        if not timeout > 0:
            raise ValueError("buffer timeout must be positive")
        self.limit, self.timeout = limit, timeout
        self._expected: dict[IPv4Address, _Expected] = {}
        self.counters: Counter[str] = Counter()

    def expect(self, home_address: IPv4Address, now: float, timeout: float | None = None) -> None:
        """Open (or extend) the buffer for ``home_address``; packets already held stay."""
        expires = now + (self.timeout if timeout is None else timeout)
        entry = self._expected.get(home_address)
        if entry is None:
            self._expected[home_address] = _Expected(expires, self.limit)
            self.counters["expected"] += 1
        else:
            entry.expires_at = max(entry.expires_at, expires)

    @property
    def expecting(self) -> bool:
        """True while any buffer is open (a cheap check for the datapath's per-packet path)."""
        return bool(self._expected)

    def is_expected(self, home_address: IPv4Address) -> bool:
        return home_address in self._expected

    def expected_addresses(self) -> tuple[IPv4Address, ...]:
        """The home addresses whose buffers are open (the eBPF FA passes their packets up)."""
        return tuple(self._expected)

    def held(self, home_address: IPv4Address) -> int:
        entry = self._expected.get(home_address)
        return 0 if entry is None else len(entry.packets)

    def offer(self, home_address: IPv4Address, packet: bytes, now: float) -> Offered:
        """Hold ``packet`` for an expected visitor; the caller delivers it when told ``DELIVER``."""
        entry = self._expected.get(home_address)
        if entry is None or now >= entry.expires_at:
            return Offered.DELIVER
        if len(entry.packets) >= entry.limit:
            entry.packets.popleft()
            entry.packets.append(packet)
            entry.dropped += 1
            self.counters["overflow_dropped"] += 1
            return Offered.OVERFLOW
        entry.packets.append(packet)
        self.counters["buffered"] += 1
        return Offered.BUFFERED

    def attach(self, home_address: IPv4Address, now: float) -> list[bytes]:
        """The visitor is on the link (L2-LU): its held packets in arrival order; the buffer closes.
        An expectation that has timed out already gives nothing (its packets were dropped)."""
        entry = self._expected.pop(home_address, None)
        if entry is None:
            return []
        if now >= entry.expires_at:
            self._expire(home_address, entry)
            return []
        self.counters["attached"] += 1
        self.counters["flushed"] += len(entry.packets)
        return list(entry.packets)

    def cancel(self, home_address: IPv4Address) -> int:
        """Forget the expectation (the visitor went elsewhere); the number of packets dropped."""
        entry = self._expected.pop(home_address, None)
        if entry is None:
            return 0
        self.counters["cancelled"] += 1
        self.counters["timeout_dropped"] += len(entry.packets)
        return len(entry.packets)

    def handle_timer(self, now: float) -> list[Expired]:
        """Close every buffer whose visitor did not attach in time, dropping what it held."""
        due = [home for home, entry in self._expected.items() if now >= entry.expires_at]
        return [self._expire(home, self._expected.pop(home)) for home in due]

    def _expire(self, home_address: IPv4Address, entry: _Expected) -> Expired:
        self.counters["timed_out"] += 1
        self.counters["timeout_dropped"] += len(entry.packets)
        return Expired(home_address, len(entry.packets))

    def get_timer(self) -> float | None:
        deadline = min((entry.expires_at for entry in self._expected.values()), default=math.inf)
        return None if math.isinf(deadline) else deadline
