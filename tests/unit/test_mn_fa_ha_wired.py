"""Mobile node, two foreign agents and the home agent (which advertises on its home link) wired in
memory on a fake clock, over links that drop, delay and reorder (RFC 5944 §2.4 discovery and moves,
§3.6.1.1 registration via the FA, §3.7 relay, §3.6.1.2 deregistration at home, §4.6 ARP;
RFC 3024 §3.2; RFC 5454 §3.5).

The real :class:`ForeignAgent` and :class:`HomeAgent` cores take part; the MN is on one link at a
time (``where``): advertisements and replies reach it only there. Everything is seeded.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Network
from typing import Any

import pytest

from agents.mip.common.bindings import TunnelTarget
from agents.mip.common.config import (
    CareOfMode,
    HomeAgentConfig,
    MobileNodeAccount,
    MobileNodeConfig,
    MovementDetection,
)
from agents.mip.common.events import (
    AgentDiscovered,
    AgentLost,
    ArpModeChanged,
    GratuitousArpRequested,
    MovementDetected,
    MovementReason,
    OutgoingDatagram,
    PrefixAccepted,
    RequestSent,
    SolicitationSent,
    TunnelUp,
)
from agents.mip.fa.advertiser import home_agent_advertiser
from agents.mip.fa.config import AdvertisementConfig, ForeignAgentConfig
from agents.mip.fa.foreign_agent import ForeignAgent
from agents.mip.ha.home_agent import HomeAgent, NodeState
from agents.mip.mn.mobile_node import MnState, MobileNode
from tests.support.fake_clock import ClockGuard

KEY = bytes(range(16))
HA = IPv4Address("192.0.2.1")
HOA = IPv4Address("192.0.2.10")
MAC = bytes.fromhex("020000000010")
MN_PORT = 50000
P1 = IPv6Network("2001:db8:10:1::/64")
WALL = 1_700_000_000.0
ACCESS = {"fa1": IPv4Interface("198.51.100.1/24"), "fa2": IPv4Interface("198.51.101.1/24")}
CARE_OF = {"fa1": IPv4Address("203.0.113.1"), "fa2": IPv4Address("203.0.113.2")}
BOUND = (MnState.REGISTERED, MnState.RENEWING)


@dataclass
class LossyNet:
    """Each delivery is lost with ``loss``, else delayed 5 ms + up to ``jitter`` s (so reordered)."""

    rng: random.Random
    loss: float
    jitter: float
    queue: list[tuple[float, int, Callable[[float], None]]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def send(self, now: float, deliver: Callable[[float], None]) -> None:
        if self.rng.random() >= self.loss:
            arrival = now + 0.005 + self.rng.uniform(0.0, self.jitter)
            heapq.heappush(self.queue, (arrival, next(self._order), deliver))


class World:
    """One MN, FA1 and FA2 on their access links, the HA on the home link."""

    def __init__(self, seed: int, loss: float, jitter: float, **mn_changes: Any) -> None:
        account = MobileNodeAccount(HOA, 256, KEY, allowed_prefixes=(IPv6Network("2001:db8:10::/48"),))
        ha_config = HomeAgentConfig(HA, IPv4Network("192.0.2.0/24"), (account,))
        self.ha = HomeAgent(ha_config, wall_clock_offset=WALL, rng=random.Random(seed))
        home_link = AdvertisementConfig(
            router_addresses=(IPv4Interface("192.0.2.1/24"),), prefix_lengths=True, advertise_home=True
        )
        self.ha_adverts = home_agent_advertiser(ha_config, home_link, random.Random(seed + 1))
        self.fas = {name: self._new_fa(name, seed + 2 + index) for index, name in enumerate(ACCESS)}
        mn_config = MobileNodeConfig(
            HOA, HA, 256, KEY, lifetime=20, retransmit_max=4.0, care_of_mode=CareOfMode.FOREIGN_AGENT,
            **mn_changes,
        )
        self.mn = MobileNode(mn_config, wall_clock_offset=WALL, rng=random.Random(seed + 5))
        self.net = LossyNet(random.Random(seed + 6), loss, jitter)
        self.where: str | None = None
        self.now = 0.0
        self.mn_events: list[tuple[float, Any]] = []

    @staticmethod
    def _new_fa(name: str, seed: int) -> ForeignAgent:
        advertisement = AdvertisementConfig(router_addresses=(ACCESS[name],), prefix_lengths=True)
        return ForeignAgent(ForeignAgentConfig((CARE_OF[name],), advertisement), rng=random.Random(seed))

    # -- driving --------------------------------------------------------------------------------

    def attach(self, where: str | None, link_event: bool = True) -> None:
        """Put the MN on a link; with ``link_event`` the MN is told (carrier down, then up)."""
        if link_event and self.where is not None:
            self.mn.link_changed(False, None, self.now)
        self.where = where
        if link_event and where is not None:
            self.mn.link_changed(True, None, self.now)
        self._collect()

    def run_until(self, end: float) -> None:
        guard = ClockGuard()
        while True:
            guard.step(self.now)
            deadlines = [machine.get_timer() for machine in self._machines()]
            if self.net.queue:
                deadlines.append(self.net.queue[0][0])
            upcoming = min([t for t in deadlines if t is not None] + [end])
            if upcoming >= end:
                self.now = end
                return
            self.now = max(self.now, upcoming)
            while self.net.queue and self.net.queue[0][0] <= self.now:
                _, _, deliver = heapq.heappop(self.net.queue)
                deliver(self.now)
                self._collect()
            for machine in self._machines():
                deadline = machine.get_timer()
                if deadline is not None and deadline <= self.now:
                    machine.handle_timer(self.now)
            self._collect()

    def _machines(self) -> list[Any]:
        return [self.mn, self.ha, self.ha_adverts, *self.fas.values()]

    def _on(self, where: str) -> Callable[[Callable[[float], None]], Callable[[float], None]]:
        """Deliver to the MN only if it is still on ``where`` when the packet arrives."""
        def wrap(deliver: Callable[[float], None]) -> Callable[[float], None]:
            return lambda now: deliver(now) if self.where == where else None
        return wrap

    # -- the links ----------------------------------------------------------------------------

    def _collect(self) -> None:
        self._from_mn()
        for name, fa in self.fas.items():
            self._from_fa(name, fa)
        for datagram in self.ha.datagrams_to_send(self.now):
            owner = next((name for name, address in CARE_OF.items() if address == datagram.destination), None)
            if owner is not None:
                payload, to = datagram.payload, datagram.destination
                self.net.send(self.now, lambda now, p=payload, o=owner, d=to: self.fas[o].receive_datagram(
                    p, (HA, 434), d, now))
            elif datagram.destination == HOA:
                self.net.send(self.now, self._on("home")(self._to_mn(datagram.payload, HA)))
        for advert in self.ha_adverts.advertisements_to_send(self.now):
            self.net.send(self.now, self._on("home")(
                lambda now, p=advert.payload: self.mn.receive_advertisement(p, HA, now)))
        while (event := self.mn.next_event()) is not None:
            self.mn_events.append((self.now, event))

    def _to_mn(self, payload: bytes, source: IPv4Address) -> Callable[[float], None]:
        return lambda now: self.mn.receive_datagram(payload, (source, 434), HOA, now)

    def _from_mn(self) -> None:
        where = self.where
        for datagram in self.mn.datagrams_to_send(self.now):
            payload, source = datagram.payload, datagram.source or HOA
            if datagram.destination == HA:
                self.net.send(self.now, lambda now, p=payload, s=source: self.ha.receive_datagram(
                    p, (s, MN_PORT), HA, now))
            elif where in self.fas and datagram.destination == ACCESS[where].ip:
                self.net.send(self.now, self._to_fa(where, datagram))
        for _ in self.mn.solicitations_to_send(self.now):
            if where in self.fas:
                self.net.send(self.now, lambda now, w=where: self.fas[w].receive_solicitation(
                    HOA, now, link_address=MAC))
            elif where == "home":
                self.net.send(self.now, lambda now: self.ha_adverts.receive_solicitation(HOA, now))

    def _to_fa(self, name: str, datagram: OutgoingDatagram) -> Callable[[float], None]:
        """A request on the access link, with the MN's link-layer address and IP TTL."""
        def deliver(now: float) -> None:
            fa, ttl, to = self.fas[name], datagram.ttl, datagram.destination
            fa.receive_datagram(datagram.payload, (HOA, MN_PORT), to, now, link_address=MAC, ttl=ttl)
        return deliver

    def _from_fa(self, name: str, fa: ForeignAgent) -> None:
        for datagram in fa.datagrams_to_send(self.now):
            if datagram.destination == HA:
                source = datagram.source or CARE_OF[name]
                self.net.send(self.now, lambda now, p=datagram.payload, s=source: self.ha.receive_datagram(
                    p, (s, 434), HA, now))
            else:
                self.net.send(self.now, self._on(name)(self._to_mn(datagram.payload, ACCESS[name].ip)))
        for advert in fa.advertisements_to_send(self.now):
            self.net.send(self.now, self._on(name)(
                lambda now, p=advert.payload, s=ACCESS[name].ip: self.mn.receive_advertisement(p, s, now)))
        while fa.next_event() is not None:
            pass

    # -- checks --------------------------------------------------------------------------------

    def events(self, kind: type[Any], since: float = 0.0) -> list[Any]:
        return [event for t, event in self.mn_events if isinstance(event, kind) and t >= since]

    def times(self, kind: type[Any]) -> list[float]:
        return [t for t, event in self.mn_events if isinstance(event, kind)]


def via(world: World, name: str) -> bool:
    """Registered through FA ``name``: the HA's binding, the FA's visitor entry and the MN agree."""
    binding = world.ha.table.get(HOA)
    return (
        binding is not None
        and [key.address for key in binding.care_ofs] == [CARE_OF[name]]
        and world.fas[name].visitor(HOA) is not None
        and world.mn.state in BOUND
        and world.mn.status(world.now)["foreign_agent"] == str(ACCESS[name].ip)
    )


def assert_via(world: World, name: str, within: float = 30.0) -> None:
    """``via`` holds now or within ``within`` seconds (losses can leave one side briefly behind)."""
    deadline = world.now + within
    while not via(world, name) and world.now < deadline:
        world.run_until(world.now + 0.5)
    assert via(world, name)
    assert world.ha.counters["authentication_failures"] == 0 and world.mn.counters["internal_errors"] == 0


def assert_rate_limits(world: World) -> None:
    """≤ 1 registration per second (RFC 5944 §2.4.2, §3.6.3); ≥ 1 s between solicitations (§2.4)."""
    for kind in (RequestSent, SolicitationSent):
        times = world.times(kind)
        assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in itertools.pairwise(times)), kind


@pytest.mark.parametrize("seed", range(4))
def test_moves_between_foreign_agents_then_home_over_lossy_links_rfc5944_2_4_3_6(seed: int) -> None:
    world = World(seed, loss=0.2, jitter=0.4, prefixes=(P1,))
    world.attach("fa1")
    world.run_until(40.0)
    assert_via(world, "fa1")
    up = world.events(TunnelUp)[-1]
    assert (up.care_of, up.colocated) == (CARE_OF["fa1"], False)
    assert PrefixAccepted(P1, TunnelTarget.HOME_ADDRESS, False, 0) in world.events(PrefixAccepted)
    assert ArpModeChanged(HOA, True, ACCESS["fa1"].ip) in world.events(ArpModeChanged)

    world.attach("fa2")  # carrier down, then up on visited link 2
    world.run_until(80.0)
    assert_via(world, "fa2")

    world.attach("home")
    world.run_until(140.0)
    assert world.ha.table.get(HOA) is None and world.ha.node_state(HOA) is NodeState.HOME
    assert world.mn.state is MnState.IDLE and world.mn.status(world.now)["at_home"] is True
    assert MovementDetected(MovementReason.HOME, None, HA) in world.events(MovementDetected, since=80.0)
    assert ArpModeChanged(HOA, False, None) in world.events(ArpModeChanged, since=80.0)
    assert world.events(GratuitousArpRequested, since=80.0)
    assert_rate_limits(world)
    json.dumps([event.to_dict() for _, event in world.mn_events])  # every event traces as JSON


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("detection", [MovementDetection.PREFIX, MovementDetection.LIFETIME])
def test_move_without_link_events_by_advertisements_rfc5944_2_4_2(
    detection: MovementDetection, seed: int
) -> None:
    world = World(20 + seed, loss=0.1, jitter=0.2, movement_detection=detection)
    world.attach("fa1")
    world.run_until(30.0)
    assert_via(world, "fa1")
    start = world.now
    world.attach("fa2", link_event=False)  # the MN is not told: only advertisements show the move
    world.run_until(start + 30.0)
    assert_via(world, "fa2")
    fa1, fa2 = ACCESS["fa1"].ip, ACCESS["fa2"].ip
    later = [(t, event) for t, event in world.mn_events if t > start]
    moved_at, move = next((t, event) for t, event in later if isinstance(event, MovementDetected))
    [lost_at] = [t for t, event in later if event == AgentLost(fa1, "expired")]
    heard_at = min(t for t, event in later if isinstance(event, AgentDiscovered) and event.agent == fa2)
    if detection is MovementDetection.PREFIX:  # algorithm 2: at FA2's first advertisement
        assert move == MovementDetected(MovementReason.PREFIX, fa1, fa2) and moved_at == heard_at
    else:  # algorithm 1: when FA1's ICMP Lifetime (3 s) runs out, to FA2 if heard by then, else solicit
        to_agent = fa2 if heard_at < lost_at else None
        assert move == MovementDetected(MovementReason.LIFETIME, fa1, to_agent) and moved_at == lost_at
    assert_rate_limits(world)


@pytest.mark.parametrize("seed", range(3))
def test_foreign_agent_reboot_makes_the_mn_register_again_rfc5944_2_4_4(seed: int) -> None:
    world = World(9 + seed, loss=0.1, jitter=0.3)
    world.attach("fa1")
    world.run_until(60.0)  # past 60 advertisements: sequence numbers above 60
    assert_via(world, "fa1")
    rebooted_at = world.now
    world.fas["fa1"] = World._new_fa("fa1", 99)  # rebooted: empty visitor list, sequence 0 again
    world.run_until(rebooted_at + 30.0)
    assert_via(world, "fa1")
    reboots = [
        t for t, event in world.mn_events
        if isinstance(event, MovementDetected) and event.reason is MovementReason.REBOOT and t > rebooted_at
    ]
    # at the first advertisement after the reboot. (While sequence numbers are below 256, a solicited
    # advertisement overtaking an unsolicited one also looks like a reboot: one extra registration.)
    assert reboots and reboots[0] < rebooted_at + 3.0
