"""Mobile node and home agent wired in memory on a fake clock, over a link that drops, delays, reorders
and duplicates datagrams (RFC 5944 §3.6.3 retransmission, §5.7 resync, §3.6.1.2 deregistration;
RFC 5454 §3.5, §3.7.1, §3.8).

Everything is deterministic: each test seeds its own random generators.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Interface, IPv6Network
from typing import Any

import pytest

from agents.mip.common.bindings import TunnelTarget
from agents.mip.common.config import HomeAgentConfig, MobileNodeAccount, MobileNodeConfig, ReplayProtection
from agents.mip.common.events import (
    HomeAgentEvent,
    MobileNodeEvent,
    OutgoingDatagram,
    ProxyArpStopped,
    RequestSent,
)
from agents.mip.ha.home_agent import HomeAgent, NodeState
from agents.mip.mn.mobile_node import MnState, MobileNode
from tests.support.fake_clock import ClockGuard

KEY = bytes(range(16))
HA = IPv4Address("192.0.2.1")
HOA = IPv4Address("192.0.2.10")
COA = IPv4Address("198.51.100.5")
COA2 = IPv4Address("203.0.113.7")
P1 = IPv6Network("2001:db8:10:1::/64")
WALL = 1_700_000_000.0
MN_PORT = 50000
BOUND = (MnState.REGISTERED, MnState.RENEWING)


@dataclass
class LossyLink:
    """Drops with probability ``loss``, delays 10 ms plus up to ``jitter`` s (so reorders), duplicates."""

    rng: random.Random
    loss: float
    jitter: float
    duplicate: float = 0.1
    queue: list[tuple[float, int, str, OutgoingDatagram]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def send(self, now: float, towards: str, datagram: OutgoingDatagram) -> None:
        copies = 2 if self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            if self.rng.random() >= self.loss:
                arrival = now + 0.01 + self.rng.uniform(0.0, self.jitter)
                heapq.heappush(self.queue, (arrival, next(self._order), towards, datagram))

    def next_time(self) -> float | None:
        return self.queue[0][0] if self.queue else None


class World:
    """One MN, one HA and the link between them, advanced event by event."""

    def __init__(
        self, seed: int, loss: float, jitter: float, mn_skew: float = 0.0, **mn_changes: Any
    ) -> None:
        replay = mn_changes.pop("replay_protection", ReplayProtection.TIMESTAMP)
        account = MobileNodeAccount(HOA, 256, KEY, allowed_prefixes=(IPv6Network("2001:db8:10::/48"),))
        ha_config = HomeAgentConfig(HA, IPv4Network("192.0.2.0/24"), (account,), replay_protection=replay)
        mn_config = MobileNodeConfig(
            HOA, HA, 256, KEY, lifetime=20, retransmit_max=4.0, replay_protection=replay, **mn_changes
        )
        self.ha = HomeAgent(ha_config, wall_clock_offset=WALL, rng=random.Random(seed))
        self.mn = MobileNode(mn_config, wall_clock_offset=WALL + mn_skew, rng=random.Random(seed + 1))
        self.link = LossyLink(random.Random(seed + 2), loss, jitter)
        self.now = 0.0
        self.mn_address: IPv4Address | None = None
        self.mn_events: list[tuple[float, MobileNodeEvent]] = []
        self.ha_events: list[tuple[float, HomeAgentEvent]] = []

    def attach(self, address: IPv4Address | None) -> None:
        self.mn_address = address
        self.mn.link_changed(address is not None, address, self.now)
        self._collect()

    def run_until(self, end: float, sample: list[bool] | None = None) -> None:
        next_sample = self.now
        guard = ClockGuard()
        while True:
            guard.step(self.now)
            deadlines = [
                t for t in (self.mn.get_timer(), self.ha.get_timer(), self.link.next_time()) if t is not None
            ]
            upcoming = min([*deadlines, end])
            while sample is not None and next_sample <= upcoming and next_sample < end:
                sample.append(self.ha.table.get(HOA) is not None and self.mn.state in BOUND)
                next_sample += 1.0
            if upcoming >= end:
                self.now = end
                return
            self.now = upcoming
            self._step()

    def _step(self) -> None:
        while self.link.queue and self.link.queue[0][0] <= self.now:
            _, _, towards, datagram = heapq.heappop(self.link.queue)
            self._deliver(towards, datagram)
        for machine in (self.mn, self.ha):
            deadline = machine.get_timer()
            if deadline is not None and deadline <= self.now:
                machine.handle_timer(self.now)
        self._collect()

    def _deliver(self, towards: str, datagram: OutgoingDatagram) -> None:
        if towards == "ha":
            source = (datagram.source or HOA, datagram.source_port or MN_PORT)
            self.ha.receive_datagram(datagram.payload, source, datagram.destination, self.now)
        elif datagram.destination == self.mn_address:  # packets to an old CoA are lost
            self.mn.receive_datagram(datagram.payload, (HA, 434), datagram.destination, self.now)
        self._collect()

    def _collect(self) -> None:
        for datagram in self.mn.datagrams_to_send(self.now):
            self.link.send(self.now, "ha", datagram)
        for datagram in self.ha.datagrams_to_send(self.now):
            self.link.send(self.now, "mn", datagram)
        while (event := self.mn.next_event()) is not None:
            self.mn_events.append((self.now, event))
        while (event := self.ha.next_event()) is not None:
            self.ha_events.append((self.now, event))

    def request_times(self) -> list[float]:
        return [t for t, event in self.mn_events if isinstance(event, RequestSent)]


def assert_consistent(world: World, care_of: IPv4Address) -> None:
    binding = world.ha.table.get(HOA)
    assert binding is not None and [key.address for key in binding.care_ofs] == [care_of]
    assert world.mn.state in (MnState.REGISTERED, MnState.RENEWING)
    assert world.ha.counters["internal_errors"] == 0 and world.ha.counters["authentication_failures"] == 0


@pytest.mark.parametrize("seed", range(6))
def test_registration_holds_over_a_lossy_reordering_link_rfc5944_3_6_3(seed: int) -> None:
    world = World(seed, loss=0.3, jitter=1.5, prefixes=(P1,))
    world.attach(COA)
    samples: list[bool] = []
    world.run_until(600.0, samples)
    assert sum(samples[30:]) / len(samples[30:]) > 0.85  # bound, after the first registration settles
    times = world.request_times()
    assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in itertools.pairwise(times))
    world.run_until(world.now + 60.0)
    assert world.ha.table.get(HOA) is not None
    mn_addresses = world.mn.bindings(world.now)
    if world.mn.state is MnState.REGISTERED and mn_addresses:
        assert mn_addresses[0]["ipv6_addresses"] == ["2001:db8:10:1::c000:20a/128"]


@pytest.mark.parametrize("replay", [ReplayProtection.TIMESTAMP, ReplayProtection.NONCE])
def test_identification_resync_over_the_link_rfc5944_5_7(replay: ReplayProtection) -> None:
    world = World(11, loss=0.2, jitter=0.8, mn_skew=300.0, replay_protection=replay)
    world.attach(COA)
    world.run_until(60.0)
    assert world.ha.counters["identification_mismatches"] >= 1
    world.run_until(world.now + 1.0)
    assert world.ha.table.get(HOA) is not None and world.ha.node_state(HOA) is NodeState.AWAY


def test_move_then_return_home_rfc5944_3_6_1_2_and_4_6() -> None:
    world = World(5, loss=0.25, jitter=1.0, deregister_attempts=8)
    world.attach(COA)
    world.run_until(40.0)
    assert_consistent(world, COA)
    world.attach(None)  # carrier down while moving
    world.run_until(41.0)
    world.attach(COA2)
    world.run_until(100.0)
    assert_consistent(world, COA2)
    world.attach(None)
    world.run_until(101.0)
    world.attach(HOA)  # back on the home link
    world.run_until(160.0)
    assert world.ha.table.get(HOA) is None and world.ha.node_state(HOA) is NodeState.HOME
    assert any(isinstance(event, ProxyArpStopped) for _, event in world.ha_events)
    assert world.mn.state is MnState.IDLE and world.mn.status(world.now)["at_home"] is True


def test_shutdown_deregisters_over_the_link() -> None:
    world = World(8, loss=0.2, jitter=0.5, deregister_attempts=6)
    world.attach(COA)
    world.run_until(30.0)
    assert_consistent(world, COA)
    world.mn.shutdown(world.now)
    world.run_until(world.now + 60.0)
    assert world.mn.is_stopped
    assert world.ha.table.get(HOA) is None  # deregistered, or at worst expired (lifetime 20 s)


def test_link_local_bootstrap_then_delegated_prefix_rfc5454_3_7_1() -> None:
    world = World(3, loss=0.2, jitter=0.5, link_local_bootstrap=True, request_tunneling_mode=True)
    world.attach(COA)
    world.run_until(20.0)
    binding = world.ha.table.get(HOA)
    assert binding is not None and [item.link_local for item in binding.prefixes.values()] == [True]
    world.mn.set_prefixes((P1,), world.now)  # as if DHCPv6-PD had delegated P1
    world.run_until(world.now + 30.0)
    binding = world.ha.table.get(HOA)
    assert binding is not None
    assert {prefix: item.target for prefix, item in binding.prefixes.items()} == {
        IPv6Network("fe80::c000:20a/128"): TunnelTarget.HOME_ADDRESS,
        P1: TunnelTarget.CARE_OF,
    }
    if world.mn.state is MnState.REGISTERED:
        assert world.mn._ipv6.ipv6.addresses == {
            IPv6Interface("fe80::c000:20a/64"): TunnelTarget.HOME_ADDRESS,
            IPv6Interface("2001:db8:10:1::c000:20a/128"): TunnelTarget.CARE_OF,
        }
