"""The mobile node's agent discovery and movement detection (RFC 5944 §2.4).

:class:`AgentDiscovery` keeps the agent table (keyed by the advertisement's source address, with its
ICMP Lifetime and last sequence number) and the current agent, paces Agent Solicitations
(:class:`Solicitor`: §2.4) and decides moves: algorithm 1 (the current agent's Lifetime expired,
§2.4.2.1), algorithm 2 (a different network prefix, §2.4.2.2), agent reboot (§2.4.4) and returning
home (§2.4.3). It never registers: each input returns a :class:`Move` or None and the mobile node
acts on it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from agents.mip.common.config import CareOfMode, MobileNodeConfig, MovementDetection
from agents.mip.common.events import (
    AdvertisementDiscarded,
    AgentDiscovered,
    AgentLost,
    DiscoveryEvent,
    MovementReason,
    OutgoingIcmp,
    SolicitationSent,
)
from agents.mip.common.timers import earliest
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.icmp import (
    SOLICITATION_TTL,
    AdvertisementFlag,
    AgentAdvertisement,
    AgentSolicitation,
    agent_rebooted,
    decode_agent_message,
)

_MAX_DOUBLINGS = 30  # far past any cap; keeps 2**n a small float


@dataclass(frozen=True)
class AgentRecord:
    """The latest advertisement heard from one agent, and when (RFC 5944 §2.4.2)."""

    address: IPv4Address
    advertisement: AgentAdvertisement
    heard_at: float
    interface: str | None = None

    @property
    def expires_at(self) -> float:
        """When its ICMP Lifetime runs out without a new advertisement (algorithm 1)."""
        return self.heard_at + self.advertisement.lifetime

    @property
    def sequence(self) -> int:
        return self.advertisement.mobility.sequence

    @property
    def flags(self) -> AdvertisementFlag:
        return self.advertisement.mobility.flags

    @property
    def care_of(self) -> IPv4Address | None:
        """The first advertised care-of address, the one the MN registers (RFC 5944 §2.1.1)."""
        addresses = self.advertisement.mobility.care_of_addresses
        return addresses[0] if addresses else None

    @property
    def offers_care_of(self) -> bool:
        """A foreign agent (F) with a care-of address, not busy (B), accepting some Lifetime (§2.1.1)."""
        flags = self.flags
        serving = AdvertisementFlag.F in flags and AdvertisementFlag.B not in flags
        return serving and self.care_of is not None and self.advertisement.mobility.registration_lifetime > 0

    def is_home_agent(self, home_agent: IPv4Address) -> bool:
        """An advertisement from the MN's own home agent, H set: the MN is home (RFC 5944 §2.4.3)."""
        routers = (address for address, _ in self.advertisement.router_addresses)
        own = self.address == home_agent or home_agent in routers
        return own and AdvertisementFlag.H in self.flags

    @property
    def networks(self) -> frozenset[IPv4Network] | None:
        """Network prefixes from the Prefix-Lengths extension (RFC 5944 §2.1.2); None without it."""
        lengths = self.advertisement.prefix_lengths
        routers = self.advertisement.router_addresses
        if lengths is None or not routers or len(lengths) != len(routers):
            return None
        pairs = zip(routers, lengths, strict=True)
        return frozenset(IPv4Network((address, length), strict=False) for (address, _), length in pairs)


def prefix_changed(current: AgentRecord, new: AgentRecord) -> bool:
    """Algorithm 2 with an FA care-of address: only when BOTH advertisements carry ext 19 and no
    network prefix is shared (RFC 5944 §2.4.2.2)."""
    old_networks, new_networks = current.networks, new.networks
    if old_networks is None or new_networks is None:
        return False
    return old_networks.isdisjoint(new_networks)


@dataclass(frozen=True)
class Move:
    """A decision for the mobile node: register via ``agent`` (an FA), go home (its HA), or, with
    ``agent`` None, no agent is left. ``reason`` None: a first agent found, nothing moved."""

    reason: MovementReason | None
    agent: AgentRecord | None
    previous: IPv4Address | None = None


class Solicitor:
    """When to send Agent Solicitations (RFC 5944 §2.4).

    The first ``solicitation_initial_count`` go ``solicitation_interval`` apart (at most one per
    second), then each gap doubles up to ``solicitation_max_interval``. Each gap is drawn from
    [nominal, nominal × (1 + jitter)], so never shorter than the rule allows.
    """

    def __init__(self, config: MobileNodeConfig, rng: random.Random) -> None:
        self.config = config
        self._rng = rng
        self.attempts = 0
        self.next_at: float | None = None
        self.last_sent = -math.inf

    @property
    def active(self) -> bool:
        return self.next_at is not None

    def start(self, now: float) -> None:
        """Begin a round: the first solicitation now, unless one went out less than a gap ago."""
        self.attempts = 0
        self.next_at = max(now, self.last_sent + self.config.solicitation_interval)

    def stop(self) -> None:
        self.next_at = None

    def take(self, now: float) -> int | None:
        """If one is due at ``now``: record it and return its attempt number (1-based)."""
        if self.next_at is None or now < self.next_at:
            return None
        self.attempts += 1
        self.last_sent = now
        self.next_at = now + self.gap(self.attempts)
        return self.attempts

    def nominal_gap(self, attempts: int) -> float:
        """The gap after the ``attempts``-th solicitation, before randomisation."""
        config = self.config
        doublings = min(max(0, attempts - config.solicitation_initial_count + 1), _MAX_DOUBLINGS)
        return min(config.solicitation_interval * 2.0**doublings, config.solicitation_max_interval)

    def gap(self, attempts: int) -> float:
        nominal = self.nominal_gap(attempts)
        return nominal * (1.0 + self._rng.uniform(0.0, self.config.solicitation_jitter))


class AgentDiscovery:
    """Agent table, current agent, solicitations and move decisions for one mobile node."""

    def __init__(
        self,
        config: MobileNodeConfig,
        rng: random.Random,
        emit: Callable[[DiscoveryEvent], None],
        counters: Counter[str],
    ) -> None:
        self.config = config
        self.agents: dict[IPv4Address, AgentRecord] = {}
        self.current: AgentRecord | None = None
        self.has_colocated = False
        """The link gave a co-located address (auto mode then uses an FA only when R is set)."""
        self.solicitor = Solicitor(config, rng)
        self._emit = emit
        self._counters = counters
        self._outgoing: list[OutgoingIcmp] = []

    # -- policy -------------------------------------------------------------------------------

    @property
    def solicits(self) -> bool:
        """Co-located mode never solicits (its behaviour is unchanged); the other modes do."""
        return self.config.care_of_mode is not CareOfMode.COLOCATED

    def eligible(self, record: AgentRecord) -> bool:
        """May the MN register via this agent's care-of address (RFC 5944 §2.1.1, §3.6)?"""
        if not record.offers_care_of:
            return False
        mode = self.config.care_of_mode
        if mode is CareOfMode.AUTO:
            return not self.has_colocated or AdvertisementFlag.R in record.flags
        return mode is CareOfMode.FOREIGN_AGENT

    def _uses(self, algorithm: MovementDetection) -> bool:
        return self.config.movement_detection in (algorithm, MovementDetection.BOTH)

    def _detecting(self) -> bool:
        """Algorithms 1 and 2 run while attached via an FA, or at home outside co-located mode."""
        current = self.current
        return current is not None and (self.eligible(current) or self.solicits)

    # -- link events --------------------------------------------------------------------------

    def link_down(self) -> None:
        """Forget every agent and stop soliciting."""
        self._forget_all("link-down")
        self.current = None
        self.solicitor.stop()

    def stop(self) -> None:
        """The mobile node stopped: forget everything quietly."""
        self.agents.clear()
        self.current = None
        self.solicitor.stop()

    def link_up(self, now: float, has_colocated: bool) -> IPv4Address | None:
        """A (new) link: forget the old agents, solicit at once; returns the agent left behind."""
        previous = self.current.address if self.current is not None else None
        self._forget_all("link-change")
        self.current = None
        self.has_colocated = has_colocated
        if self.solicits:
            self.start_soliciting(now)
        return previous

    def start_soliciting(self, now: float) -> None:
        """Start a round of solicitations now (rate limits still apply)."""
        self.solicitor.start(now)
        self._solicit(now)

    # -- advertisements -------------------------------------------------------------------------

    def receive(self, data: bytes, source: IPv4Address, now: float, interface: str | None) -> Move | None:
        """One ICMP message from ``source``; a Move when it changes where the MN should register."""
        advertisement = self._decode(data, source)
        if advertisement is None:
            return None
        previous = self.agents.get(source)
        record = AgentRecord(source, advertisement, now, interface)
        self.agents[source] = record
        self._counters["advertisements"] += 1
        rebooted = previous is not None and agent_rebooted(previous.sequence, record.sequence)
        if previous is None:
            mobility = advertisement.mobility
            self._emit(
                AgentDiscovered(
                    source,
                    int(mobility.flags),
                    advertisement.lifetime,
                    mobility.care_of_addresses,
                    mobility.sequence,
                )
            )
        elif rebooted:
            self._counters["agent_reboots"] += 1
        if self.current is not None and self.current.address == source:
            self.current = record
        return self._decide(record, rebooted, now)

    def _decode(self, data: bytes, source: IPv4Address) -> AgentAdvertisement | None:
        """A usable advertisement, or None after a counted AdvertisementDiscarded (RFC 5944 §1.8, §2.1)."""
        try:
            message = decode_agent_message(data)
        except DecodeError as error:
            self._counters["malformed_advertisements"] += 1
            self._emit(AdvertisementDiscarded(source, error.reason, error.offset))
            return None
        if isinstance(message, AgentSolicitation):
            reason = "an Agent Solicitation: only agents answer those (RFC 5944 §2.2)"
        elif message.unrecognized_nonskippable:
            reason = f"unknown extension types {message.unrecognized_nonskippable} (RFC 5944 §1.8)"
        else:
            reason = "; ".join(message.problems())
        if isinstance(message, AgentSolicitation) or reason:
            self._counters["advertisements_discarded"] += 1
            self._emit(AdvertisementDiscarded(source, reason))
            return None
        return message

    def _decide(self, record: AgentRecord, rebooted: bool, now: float) -> Move | None:
        current = self.current
        previous = current.address if current is not None else None
        if record.advertisement.lifetime == 0:
            return self.handle_timer(now)  # Lifetime 0: no longer valid (RFC 1256 §3), forget it now
        if record.is_home_agent(self.config.home_agent):
            if previous == record.address:
                return None
            return self._select(Move(MovementReason.HOME, record, previous))
        if current is not None and previous == record.address:
            return Move(MovementReason.REBOOT, record, previous) if rebooted else None
        if not self.eligible(record):
            return None
        if current is None:
            return self._select(Move(None, record))
        if self._detecting() and self._uses(MovementDetection.PREFIX) and prefix_changed(current, record):
            return self._select(Move(MovementReason.PREFIX, record, previous))
        return None

    def _select(self, move: Move) -> Move:
        self.current = move.agent
        if move.agent is not None:
            self.solicitor.stop()
        return move

    # -- timers -----------------------------------------------------------------------------------

    def handle_timer(self, now: float) -> Move | None:
        """Forget expired agents; algorithm 1 if the current one expired; solicit when due."""
        expired = [record for record in self.agents.values() if now >= record.expires_at]
        for record in expired:
            del self.agents[record.address]
            self._emit(AgentLost(record.address, "expired"))
        current = self.current
        move = None
        if current is not None and any(record.address == current.address for record in expired):
            move = self._current_expired(current, now)
        self._solicit(now)
        return move

    def _current_expired(self, current: AgentRecord, now: float) -> Move | None:
        """Algorithm 1 (RFC 5944 §2.4.2.1): another unexpired agent, else solicit."""
        if not (self._detecting() and self._uses(MovementDetection.LIFETIME)):
            return None  # keep it as current: only algorithm 2 or a link event moves the MN
        self.current = None
        replacement = self._best_agent(now)
        if replacement is None:
            if self.solicits:
                self.solicitor.start(now)
            return Move(MovementReason.LIFETIME, None, current.address)
        return self._select(Move(MovementReason.LIFETIME, replacement, current.address))

    def _best_agent(self, now: float) -> AgentRecord | None:
        """Its own home agent if heard, else the most recently heard eligible foreign agent."""
        alive = [record for record in self.agents.values() if record.expires_at > now]
        home = [record for record in alive if record.is_home_agent(self.config.home_agent)]
        candidates = home or [record for record in alive if self.eligible(record)]
        return max(candidates, key=lambda record: record.heard_at, default=None)

    def get_timer(self) -> float | None:
        """The next solicitation or agent expiry."""
        expiry = min((record.expires_at for record in self.agents.values()), default=None)
        return earliest(self.solicitor.next_at, expiry)

    # -- solicitations (RFC 5944 §2.2) ---------------------------------------------------------------

    def _solicit(self, now: float) -> None:
        attempt = self.solicitor.take(now)
        if attempt is None:
            return
        destination = self.config.solicitation_destination
        self._outgoing.append(OutgoingIcmp(AgentSolicitation().encode(), destination, SOLICITATION_TTL))
        self._counters["solicitations"] += 1
        self._emit(SolicitationSent(destination, attempt))

    def solicitations_to_send(self) -> list[OutgoingIcmp]:
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def _forget_all(self, reason: str) -> None:
        for address in self.agents:
            self._emit(AgentLost(address, reason))
        self.agents.clear()

    def to_dicts(self, now: float) -> list[dict[str, object]]:
        """The agent table as JSON-able dicts (control socket ``status``)."""
        current = self.current.address if self.current is not None else None
        return [
            {
                "agent": str(record.address),
                "current": record.address == current,
                "flags": int(record.flags),
                "sequence": record.sequence,
                "care_of": None if record.care_of is None else str(record.care_of),
                "remaining": round(max(0.0, record.expires_at - now), 3),
                "interface": record.interface,
            }
            for record in self.agents.values()
        ]
