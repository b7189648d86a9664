"""Agent Advertisement scheduling, sans-I/O (RFC 5944 §2.1, §2.3; RFC 1256 §4.1, §5.5).

An :class:`Advertiser` builds ICMP Agent Advertisements (the ICMP message, no IP header) with
:class:`~agents.mip.wire.icmp.AgentAdvertisement`, numbers them (0 first, after 0xFFFF comes 256,
RFC 5944 §2.3.2), schedules the next unsolicited one at a jittered interval drawn from an injected
``random.Random`` and answers solicitations, at most one advertisement per destination per
``solicited_min_gap``. It never reads a clock: every input carries ``now``. Output is pulled with
:meth:`Advertiser.advertisements_to_send`; the IP TTL is always 1 (RFC 5944 §2.1).

The foreign agent owns one (:func:`foreign_agent_advertiser`); a home agent advertising on its
home link drives one beside its :class:`~agents.mip.ha.home_agent.HomeAgent` (:func:`home_agent_advertiser`).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import NamedTuple

from agents.mip.common.config import Encapsulation, HomeAgentConfig
from agents.mip.common.timers import earliest
from agents.mip.fa.config import AdvertisementConfig, ForeignAgentConfig
from agents.mip.wire.icmp import (
    ADVERTISEMENT_TTL,
    LIMITED_BROADCAST,
    AdvertisementFlag,
    AgentAdvertisement,
    MobilityAgentExtension,
    next_sequence,
)

MAX_INITIAL_ADVERTISEMENTS = 3  # RFC 1256 §6 (router constants)
MAX_INITIAL_ADVERT_INTERVAL = 16.0  # RFC 1256 §6: the first three advertisements come at most 16 s apart
_PRUNE_ABOVE = 256  # forget per-destination send times beyond this many destinations


class OutgoingAdvertisement(NamedTuple):
    """An ICMP Agent Advertisement to send with IP TTL ``ttl`` (always 1, RFC 5944 §2.1).

    ``link_address`` is set for a unicast answer to a solicitor whose link-layer address is known:
    send to it directly rather than resolving ``destination`` (a visitor's home address is not on-link).
    """

    payload: bytes
    destination: IPv4Address
    ttl: int
    link_address: bytes | None = None
    sequence: int = 0
    solicited: bool = False


class _Deferred(NamedTuple):
    due: float
    link_address: bytes | None


class Advertiser:
    """Unsolicited and solicited Agent Advertisements on one link (RFC 5944 §2.3, RFC 1256 §5.5)."""

    def __init__(
        self,
        config: AdvertisementConfig,
        *,
        flags: AdvertisementFlag,
        registration_lifetime: int,
        care_of_addresses: Sequence[IPv4Address] = (),
        rng: random.Random,
    ) -> None:
        self.config = config
        self.counters: Counter[str] = Counter()
        self._flags = flags
        self._registration_lifetime = registration_lifetime
        self._care_ofs = tuple(care_of_addresses)
        self._rng = rng
        self._sequence = 0
        self._sent = 0
        self._next_unsolicited: float | None = 0.0  # due at once: the first one goes at the first timer
        self._last_sent: dict[IPv4Address, float] = {}
        self._deferred: dict[IPv4Address, _Deferred] = {}
        self._queue: list[OutgoingAdvertisement] = []
        self.build().validate()  # a configuration that cannot be advertised fails here, not later

    # -- state ---------------------------------------------------------------------------------

    @property
    def sequence(self) -> int:
        """The sequence number the next advertisement will carry (RFC 5944 §2.3.2)."""
        return self._sequence

    @property
    def flags(self) -> AdvertisementFlag:
        return self._flags

    def set_flags(self, flags: AdvertisementFlag) -> None:
        """Change the advertised flags (e.g. B when busy); ValueError if they break RFC 5944 §2.1.1."""
        previous, self._flags = self._flags, flags
        try:
            self.build().validate()
        except ValueError:
            self._flags = previous
            raise

    def set_busy(self, busy: bool) -> None:
        """Set or clear B: no registrations from additional mobile nodes (RFC 5944 §2.1.1)."""
        flags = self._flags | AdvertisementFlag.B if busy else self._flags & ~AdvertisementFlag.B
        self.set_flags(AdvertisementFlag(flags))

    def build(self, lifetime: int | None = None, sequence: int | None = None) -> AgentAdvertisement:
        """The advertisement as it would be sent now (ICMP Lifetime ``lifetime`` if given)."""
        config = self.config
        routers = tuple((item.ip, config.preference) for item in config.router_addresses)
        prefix_lengths = None
        if config.prefix_lengths:
            prefix_lengths = tuple(item.network.prefixlen for item in config.router_addresses)
        mobility = MobilityAgentExtension(
            self._sequence if sequence is None else sequence,
            self._registration_lifetime,
            self._flags,
            self._care_ofs,
        )
        icmp_lifetime = config.effective_lifetime if lifetime is None else lifetime
        return AgentAdvertisement(config.code, icmp_lifetime, routers, mobility, prefix_lengths)

    # -- sans-I/O interface ----------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The next unsolicited or deferred solicited advertisement, or None after :meth:`withdraw`."""
        return earliest(self._next_unsolicited, *(item.due for item in self._deferred.values()))

    def handle_timer(self, now: float) -> None:
        """Queue every advertisement due at ``now`` and schedule the next unsolicited one (RFC 1256 §4.1)."""
        if self._next_unsolicited is not None and self._next_unsolicited <= now:
            self._send(self.config.destination.address, None, now, solicited=False)
            self._next_unsolicited = now + self._next_interval()
        for destination, deferred in list(self._deferred.items()):
            if deferred.due <= now:
                del self._deferred[destination]
                self._send(destination, deferred.link_address, now, solicited=True)

    def receive_solicitation(
        self, source: IPv4Address, now: float, *, link_address: bytes | None = None
    ) -> None:
        """Answer an Agent Solicitation (RFC 5944 §2.3: any source, not only neighbours).

        At most one advertisement per destination per ``solicited_min_gap``: an early one is deferred
        to the end of the gap, and solicitations arriving meanwhile share it.
        """
        self.counters["solicitations"] += 1
        if self._next_unsolicited is None:
            self.counters["solicitations_after_withdraw"] += 1
            return
        destination, link = self._answer_destination(source, link_address)
        if destination in self._deferred:
            self.counters["solicitations_coalesced"] += 1
            return
        gap = self.config.effective_solicited_min_gap
        due = max(now, self._last_sent.get(destination, -math.inf) + gap)
        if due <= now:
            self._send(destination, link, now, solicited=True)
        else:
            self.counters["solicitations_deferred"] += 1
            self._deferred[destination] = _Deferred(due, link)

    def advertisements_to_send(self, now: float) -> list[OutgoingAdvertisement]:
        """Advertisements queued since the last call."""
        queued, self._queue = self._queue, []
        return queued

    def withdraw(self, now: float) -> None:
        """Stop advertising: one last advertisement with ICMP Lifetime 0 (RFC 1256 §5.2 on shutdown)."""
        if self._next_unsolicited is None:
            return
        self._next_unsolicited = None
        self._deferred.clear()
        self._send(self.config.destination.address, None, now, solicited=False, lifetime=0)

    def status(self) -> dict[str, object]:
        """A JSON-able summary."""
        config = self.config
        return {
            "flags": "|".join(str(flag.name) for flag in AdvertisementFlag if flag in self._flags),
            "next_sequence": self._sequence,
            "sent": self._sent,
            "interval": [config.effective_min_interval, config.max_interval],
            "lifetime": config.effective_lifetime,
            "destination": str(config.destination.address),
            "counters": dict(sorted(self.counters.items())),
        }

    # -- internals -------------------------------------------------------------------------------

    def _next_interval(self) -> float:
        """Uniform in [min, max] (RFC 1256 §4.1); the first three at most 16 s apart (RFC 1256 §6)."""
        interval = self._rng.uniform(self.config.effective_min_interval, self.config.max_interval)
        if self._sent <= MAX_INITIAL_ADVERTISEMENTS:
            interval = min(interval, MAX_INITIAL_ADVERT_INTERVAL)
        return interval

    def _answer_destination(
        self, source: IPv4Address, link_address: bytes | None
    ) -> tuple[IPv4Address, bytes | None]:
        """Unicast to the solicitor when it can be reached without ARP for a home address (RFC 1256 §5.5,
        RFC 5944 §2.1: a unicast advertisement goes to the mobile node's address); otherwise the
        configured multicast or broadcast address."""
        config = self.config
        unicast = not (source.is_unspecified or source.is_multicast or source == LIMITED_BROADCAST)
        on_link = any(source in item.network for item in config.router_addresses)
        if config.unicast_solicited and unicast and (link_address is not None or on_link):
            return source, link_address
        return config.destination.address, None

    def _send(
        self,
        destination: IPv4Address,
        link: bytes | None,
        now: float,
        *,
        solicited: bool,
        lifetime: int | None = None,
    ) -> None:
        advertisement = self.build(lifetime)
        advertisement.validate()
        sequence = self._sequence
        payload = advertisement.encode()
        self._queue.append(
            OutgoingAdvertisement(payload, destination, ADVERTISEMENT_TTL, link, sequence, solicited)
        )
        self._sequence = next_sequence(sequence)
        self._sent += 1
        self.counters["solicited_sent" if solicited else "unsolicited_sent"] += 1
        self._last_sent[destination] = now
        if len(self._last_sent) > _PRUNE_ABOVE:
            horizon = now - self.config.effective_solicited_min_gap
            self._last_sent = {key: at for key, at in self._last_sent.items() if at >= horizon}


def foreign_agent_advertiser(config: ForeignAgentConfig, rng: random.Random) -> Advertiser:
    """The foreign agent's advertiser: F and the capability flags, its care-of addresses, and its
    maximum registration lifetime in extension 16 (RFC 5944 §2.1.1, RFC 3024 §3.1)."""
    return Advertiser(
        config.advertisement,
        flags=config.advertisement_flags,
        registration_lifetime=config.max_lifetime,
        care_of_addresses=config.care_of_addresses,
        rng=rng,
    )


def home_agent_flags(config: HomeAgentConfig) -> AdvertisementFlag:
    """H, with M, G and T from the home agent's capabilities; never F, R or B (RFC 5944 §2.1.1)."""
    flags = AdvertisementFlag.H
    if Encapsulation.MINIMAL in config.encapsulations:
        flags |= AdvertisementFlag.M
    if Encapsulation.GRE in config.encapsulations:
        flags |= AdvertisementFlag.G
    if config.reverse_tunnel_supported:
        flags |= AdvertisementFlag.T
    return flags


def home_agent_advertiser(
    config: HomeAgentConfig, advertisement: AdvertisementConfig, rng: random.Random
) -> Advertiser:
    """Advertisements on the home link so a returning mobile node sees it is home (RFC 5944 §2.4.3).

    ``advertisement.advertise_home`` must be set: it is the configuration switch for the H bit.
    """
    if not advertisement.advertise_home:
        raise ValueError("home agent advertisement: set advertise_home (the H bit, RFC 5944 §2.1.1)")
    return Advertiser(
        advertisement, flags=home_agent_flags(config), registration_lifetime=config.max_lifetime, rng=rng
    )
