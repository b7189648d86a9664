"""Mobile node → foreign agent → home agent → foreign agent → mobile node, wired in memory on a fake
clock over links that drop, delay, reorder and duplicate (RFC 5944 §2.3, §3.6.3, §3.7, §3.8; RFC 3024).

The home agent is the real sans-I/O :class:`HomeAgent`. The mobile node is a small scripted one,
written here from the RFC (the real :class:`MobileNode` is being extended for FA care-of mode
elsewhere): it solicits, takes the care-of address from the advertisement, sends requests built
with :func:`build_request` (a fresh timestamp Identification per attempt, backoff 1, 2, 4 s), checks
the reply's Identification and MN-HA authenticator, and renews at 75 % of the granted lifetime.
Everything is deterministic: each test seeds its own random generators.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from agents.mip.common.config import HomeAgentConfig, MobileNodeAccount
from agents.mip.common.events import OutgoingDatagram
from agents.mip.fa.config import AdvertisementConfig, DeliveryStyle, ForeignAgentConfig, PeerAssociation
from agents.mip.fa.events import ForeignAgentDenied, LinkDatagram, VisitorAdded, VisitorRemoved
from agents.mip.fa.foreign_agent import ForeignAgent
from agents.mip.ha.home_agent import HomeAgent
from agents.mip.wire import identification
from agents.mip.wire.auth import SecurityAssociation, verify_with
from agents.mip.wire.codes import ExtensionType, RegistrationFlag, ReplyCode, is_fa_denial
from agents.mip.wire.extensions import EncapsulatingDeliveryStyle, Extension
from agents.mip.wire.icmp import AdvertisementFlag, AgentAdvertisement
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest, build_request
from tests.support.fake_clock import ClockGuard

KEY = bytes(range(16))
FA_HA_KEY = bytes(range(32, 48))
MN_HA = SecurityAssociation(256, KEY)
HA = IPv4Address("192.0.2.1")
HOA = IPv4Address("192.0.2.10")
COA = IPv4Address("198.51.100.1")
MAC = bytes.fromhex("020000000010")
MN_PORT = 50000
WALL = 1_700_000_000.0
LIFETIME = 20


@dataclass
class LossyLink:
    """Drops with probability ``loss``, delays 5 ms plus up to ``jitter`` s (so reorders), duplicates."""

    rng: random.Random
    loss: float
    jitter: float
    duplicate: float = 0.1
    queue: list[tuple[float, int, Callable[[float], None]]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def send(self, now: float, deliver: Callable[[float], None]) -> None:
        copies = 2 if self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            if self.rng.random() >= self.loss:
                arrival = now + 0.005 + self.rng.uniform(0.0, self.jitter)
                heapq.heappush(self.queue, (arrival, next(self._order), deliver))


class ScriptedMobileNode:
    """Registers through the FA whose advertisement it heard (RFC 5944 §2.4, §3.6)."""

    def __init__(self, rng: random.Random, delivery_style: bool = False) -> None:
        self.rng = rng
        self.delivery_style = delivery_style
        self.care_of: IPv4Address | None = None
        self.pending: tuple[int, float, int] | None = None  # (identification, sent at, lifetime)
        self.last_ident: int | None = None
        self.next_send: float | None = None
        self.backoff = 1.0
        self.bound_until = -1.0
        self.outgoing: list[bytes] = []
        self.codes: list[int] = []
        self.stopping = False
        self.deregistered = False

    def receive_advertisement(self, payload: bytes, now: float) -> None:
        advertisement = AgentAdvertisement.decode(payload)
        advertisement.validate()
        mobility = advertisement.mobility
        if self.care_of is None and AdvertisementFlag.F in mobility.flags:
            self.care_of = mobility.care_of_addresses[0]
            self.next_send = now

    def deregister(self, now: float) -> None:
        self.stopping, self.backoff, self.next_send = True, 1.0, now

    def handle_timer(self, now: float) -> None:
        if self.next_send is None or now < self.next_send or self.care_of is None:
            return
        lifetime = 0 if self.stopping else LIFETIME
        ident = identification.next_timestamp_identification(WALL + now, self.last_ident, self.rng)
        self.last_ident = ident
        request = RegistrationRequest(RegistrationFlag.T, lifetime, HOA, HA, self.care_of, ident)
        style: tuple[Extension, ...] = (EncapsulatingDeliveryStyle(),) if self.delivery_style else ()
        self.outgoing.append(build_request(request, MN_HA, style))
        self.pending = (ident, now, lifetime)
        self.next_send = now + self.backoff  # RFC 5944 §3.6.3: at least 1 s, doubling
        self.backoff = min(self.backoff * 2, 4.0)

    def receive_reply(self, payload: bytes, now: float) -> None:
        reply = RegistrationReply.decode(payload)
        if self.pending is None or (reply.identification ^ self.pending[0]) & 0xFFFF_FFFF:
            return  # not for the outstanding request (RFC 5944 §3.6.2.1)
        signed = verify_with(payload, ExtensionType.MOBILE_HOME_AUTH, MN_HA)
        if not signed and not is_fa_denial(reply.code):
            return
        self.codes.append(int(reply.code))
        _, sent_at, lifetime = self.pending
        if reply.accepted:
            self.pending, self.backoff = None, 1.0
            granted = min(lifetime, reply.lifetime)
            self.bound_until = sent_at + granted
            self.deregistered = lifetime == 0
            self.next_send = None if lifetime == 0 else sent_at + 0.75 * granted


class World:
    """The MN, the FA and the HA, an access link and a network link, advanced event by event."""

    def __init__(
        self, seed: int, loss: float, jitter: float, *, fa_ha: bool = False, style: bool = False
    ) -> None:
        account = MobileNodeAccount(HOA, 256, KEY)
        ha_config = HomeAgentConfig(HA, IPv4Network("192.0.2.0/24"), (account,))
        self.ha = HomeAgent(ha_config, wall_clock_offset=WALL, rng=random.Random(seed))
        access = IPv4Interface("198.51.100.1/24")
        advertisement = AdvertisementConfig(max_interval=0.5, router_addresses=(access,))
        associations = (PeerAssociation(HA, 0x300, FA_HA_KEY),) if fa_ha else ()
        config = ForeignAgentConfig((COA,), advertisement=advertisement, home_agent_associations=associations)
        self.fa = ForeignAgent(config, rng=random.Random(seed + 1))
        self.mn = ScriptedMobileNode(random.Random(seed + 2), style)
        self.access = LossyLink(random.Random(seed + 3), loss, jitter)
        self.network = LossyLink(random.Random(seed + 4), loss, jitter)
        self.now = 0.0
        self.fa_events: list[tuple[float, object]] = []

    def run_until(self, end: float, sample: list[bool] | None = None) -> None:
        next_sample = self.now
        guard = ClockGuard()
        while True:
            guard.step(self.now)
            queued = [link.queue[0][0] for link in (self.access, self.network) if link.queue]
            timers = [self.fa.get_timer(), self.ha.get_timer(), self.mn.next_send]
            upcoming = min([*queued, *(t for t in timers if t is not None), end])
            while sample is not None and next_sample <= upcoming and next_sample < end:
                sample.append(self.agree())
                next_sample += 1.0
            if upcoming >= end:
                self.now = end
                return
            self.now = max(self.now, upcoming)
            self._step()

    def agree(self) -> bool:
        visitor, binding = self.fa.visitor(HOA), self.ha.table.get(HOA)
        return visitor is not None and binding is not None and [c.address for c in binding.care_ofs] == [COA]

    def _step(self) -> None:
        for link in (self.access, self.network):
            while link.queue and link.queue[0][0] <= self.now:
                _, _, deliver = heapq.heappop(link.queue)
                deliver(self.now)
                self._collect()
        for machine in (self.fa, self.ha):
            deadline = machine.get_timer()
            if deadline is not None and deadline <= self.now:
                machine.handle_timer(self.now)
        self.mn.handle_timer(self.now)
        self._collect()

    def _collect(self) -> None:
        now = self.now
        for payload in self.mn.outgoing:
            self.access.send(now, lambda t, p=payload: self._from_mn(p, t))
        self.mn.outgoing.clear()
        for item in self.fa.advertisements_to_send(now):
            self.access.send(now, lambda t, p=item.payload: self.mn.receive_advertisement(p, t))
        for datagram in self.fa.datagrams_to_send(now):
            if datagram.destination == HA:
                self.network.send(now, lambda t, d=datagram: self._to_ha(d, t))
            else:
                self.access.send(now, lambda t, d=datagram: self._to_mn(d, t))
        for reply in self.ha.datagrams_to_send(now):
            self.network.send(now, lambda t, d=reply: self._to_fa(d, t))
        while (event := self.fa.next_event()) is not None:
            self.fa_events.append((now, event))
        while self.ha.next_event() is not None:
            pass

    def _from_mn(self, payload: bytes, now: float) -> None:
        source = (HOA, MN_PORT)
        self.fa.receive_datagram(payload, source, COA, now, link_address=MAC, ttl=255, interface="acc0")

    def _to_ha(self, datagram: LinkDatagram, now: float) -> None:
        assert (datagram.source, datagram.port) == (COA, 434)
        self.ha.receive_datagram(datagram.payload, (COA, datagram.source_port or 434), HA, now)

    def _to_fa(self, datagram: OutgoingDatagram, now: float) -> None:
        assert (datagram.destination, datagram.port) == (COA, 434)
        self.fa.receive_datagram(datagram.payload, (HA, 434), COA, now)

    def _to_mn(self, datagram: LinkDatagram, now: float) -> None:
        # delivered by link-layer address on the access interface, to the request's source port
        assert (datagram.link_address, datagram.interface) == (MAC, "acc0")
        assert (datagram.destination, datagram.port, datagram.source) == (HOA, MN_PORT, COA)
        self.mn.receive_reply(datagram.payload, now)

    def solicit(self) -> None:
        self.access.send(self.now, lambda t: self.fa.receive_solicitation(HOA, t, link_address=MAC))

    def calm(self) -> None:
        for link in (self.access, self.network):
            link.loss, link.jitter, link.duplicate = 0.0, 0.01, 0.0


def assert_visitor_and_binding_agree(world: World) -> None:
    """Same request behind both: care-of, Identification, reverse tunnel, lifetime; the visitor never
    outlives the binding (RFC 5944 §3.7.1, §3.8.1)."""
    visitor, binding = world.fa.visitor(HOA), world.ha.table.get(HOA)
    assert visitor is not None and binding is not None
    (entry,) = binding.care_ofs.values()
    assert entry.care_of.address == visitor.care_of == COA
    assert entry.identification == visitor.identification
    assert entry.reverse_tunnel is visitor.reverse_tunnel is True
    assert entry.lifetime == visitor.lifetime == LIFETIME
    assert visitor.expires_at <= entry.expires_at < visitor.expires_at + 1.0
    assert (visitor.link_address, visitor.source_port, visitor.interface) == (MAC, MN_PORT, "acc0")
    assert world.fa.counters["internal_errors"] == 0 and world.ha.counters["internal_errors"] == 0


@pytest.mark.parametrize("seed", range(6))
def test_registration_via_fa_holds_over_lossy_reordering_links_rfc5944_3_7(seed: int) -> None:
    world = World(seed, loss=0.25, jitter=0.8, style=seed % 2 == 1)
    world.solicit()
    samples: list[bool] = []
    world.run_until(300.0, samples)
    assert sum(samples[30:]) / len(samples[30:]) > 0.8  # visitor and binding both present most of the time
    assert world.mn.codes.count(0) >= 10
    world.calm()
    world.run_until(world.now + 2 * LIFETIME)
    assert_visitor_and_binding_agree(world)
    visitor = world.fa.visitor(HOA)
    assert visitor is not None
    expected_style = DeliveryStyle.ENCAPSULATING if seed % 2 else DeliveryStyle.DIRECT
    assert visitor.delivery_style is expected_style
    assert any(isinstance(event, VisitorAdded) for _, event in world.fa_events)


def test_fa_ha_authentication_over_the_wire_rfc5944_3_5_4() -> None:
    world = World(21, loss=0.1, jitter=0.3, fa_ha=True)
    world.solicit()
    world.run_until(60.0)
    world.calm()
    world.run_until(world.now + 2 * LIFETIME)
    # this HA has no FA-HA key, so its replies carry none: the FA answers 68 and never adds a visitor
    assert world.fa.visitor(HOA) is None
    assert set(world.mn.codes) == {ReplyCode.FA_HOME_AGENT_FAILED_AUTHENTICATION}
    assert world.ha.table.get(HOA) is not None  # the HA did accept: the binding outlives the refusal


def test_deregistration_via_fa_removes_visitor_and_binding_rfc5944_3_6_1_2() -> None:
    world = World(7, loss=0.2, jitter=0.5)
    world.solicit()
    world.run_until(60.0)
    world.calm()
    world.run_until(world.now + LIFETIME)
    assert_visitor_and_binding_agree(world)
    world.mn.deregister(world.now)
    world.run_until(world.now + 10.0)
    assert world.mn.deregistered
    assert world.fa.visitor(HOA) is None and world.ha.table.get(HOA) is None
    reasons = [event.reason for _, event in world.fa_events if isinstance(event, VisitorRemoved)]
    assert reasons[-1] == "deregistered"


def test_home_agent_unreachable_gives_78_then_recovers_rfc5944_3_7_1() -> None:
    world = World(4, loss=0.0, jitter=0.05)
    world.network.loss = 1.0  # the network side is down
    world.solicit()
    world.run_until(30.0)
    assert ReplyCode.FA_REGISTRATION_TIMEOUT in world.mn.codes
    timeouts = [e for _, e in world.fa_events if isinstance(e, ForeignAgentDenied) and e.code == 78]
    assert timeouts and world.fa.visitor(HOA) is None
    world.network.loss = 0.0
    world.run_until(world.now + 2 * LIFETIME)
    assert_visitor_and_binding_agree(world)


def test_visitor_expires_when_the_mobile_node_goes_silent_rfc5944_3_7_1() -> None:
    world = World(9, loss=0.1, jitter=0.3)
    world.solicit()
    world.run_until(40.0)
    world.calm()
    world.run_until(world.now + LIFETIME)
    assert_visitor_and_binding_agree(world)
    world.mn.next_send = None  # gone without deregistering
    world.run_until(world.now + LIFETIME + 1)
    assert world.fa.visitor(HOA) is None and world.ha.table.get(HOA) is None
    reasons = [event.reason for _, event in world.fa_events if isinstance(event, VisitorRemoved)]
    assert reasons == ["expired"]
