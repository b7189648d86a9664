"""The home agent's known sources (what kernel steering serves first, issue 16) cost O(1) per renewal.

Issue 9: the runtime asks :meth:`HomeAgent.known_sources` after every burst of binding events, and the set
was built again each time by walking every account and binding, so a renewal cost grew with the table.
It is now built again only when it can differ: these tests count the builds (not time) as the table grows,
and check every answer against :meth:`HomeAgent.is_known_source`, the definition (RFC 5944 §3.8.1: a
binding's lifetime bounds how long its source is known).
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from agents.mip.ha.home_agent import KNOWN_GRACE, HomeAgent
from agents.mip.wire.codes import ReplyCode
from tests.unit.test_home_agent import HOME_NET, SPI, Clock, account, make_ha, register

FIRST_COA = IPv4Address("198.19.0.1")
LIFETIME = 300


def home(index: int) -> IPv4Address:
    return HOME_NET[index + 20]  # up to 192.0.2.253


def care_of(index: int) -> IPv4Address:
    return FIRST_COA + index


def many(count: int) -> HomeAgent:
    """A home agent with ``count`` accounts (no prefixes), none bound yet."""
    accounts = tuple(account(home(i), spi=SPI + i, allowed_prefixes=()) for i in range(count))
    return make_ha(mobile_nodes=accounts)


def bind(ha: HomeAgent, clock: Clock, index: int, lifetime: int = LIFETIME) -> None:
    """Mobile node ``index`` registers (or renews, or with lifetime 0 deregisters) from its care-of."""
    reply = register(ha, clock, home=home(index), spi=SPI + index, care_of=care_of(index), lifetime=lifetime)
    assert reply.code == ReplyCode.ACCEPTED
    while ha.next_event() is not None:
        pass


def expected(ha: HomeAgent, now: float, count: int) -> frozenset[IPv4Address]:
    """The known set by its definition: every candidate address :meth:`is_known_source` accepts."""
    candidates = [home(i) for i in range(count)] + [care_of(i) for i in range(count)]
    return frozenset(address for address in candidates if ha.is_known_source(address, now))


@pytest.mark.parametrize("count", [4, 32, 200])
def test_renewals_leave_the_known_set_as_it_is_whatever_the_table_size(count: int) -> None:
    """Each mobile node renews from the source it registered from: the same set object every time, and
    no build at all, with 4 or 200 bindings (before issue 9's fix, one build per call)."""
    ha, clock = many(count), Clock()
    for index in range(count):
        bind(ha, clock, index)
    first = ha.known_sources(clock.now)
    assert first == expected(ha, clock.now, count)
    builds = ha.known_view_builds
    for index in range(count):
        clock.now += 0.01
        bind(ha, clock, index)
        assert ha.known_sources(clock.now) is first
    assert ha.known_view_builds == builds


@pytest.mark.parametrize("count", [4, 32, 200])
def test_one_build_per_new_binding_whatever_the_table_size(count: int) -> None:
    """A new binding adds its home address and care-of: one build, at the next question, not one per
    event or per binding already held."""
    ha, clock = many(count + 1), Clock()
    for index in range(count):
        bind(ha, clock, index)
    ha.known_sources(clock.now)
    builds = ha.known_view_builds
    bind(ha, clock, count)
    for _ in range(3):
        assert ha.known_sources(clock.now) == expected(ha, clock.now, count + 1)
    assert {home(count), care_of(count)} <= ha.known_sources(clock.now)
    assert ha.known_view_builds == builds + 1


def test_the_kept_set_follows_every_change_rfc5944_3_8_1() -> None:
    """Deregistration, a source that expires (binding lifetime + grace), a home address binding again:
    each answer equals the definition, a cached one included."""
    count = 6
    ha, clock = many(count), Clock()
    for index in range(count):
        bind(ha, clock, index)
        assert ha.known_sources(clock.now) == expected(ha, clock.now, count)
    bind(ha, clock, 2, lifetime=0)  # deregistration: home address 2 has no binding any more
    known = ha.known_sources(clock.now)
    assert known == expected(ha, clock.now, count) and home(2) not in known
    assert care_of(2) in known  # its source stays known until its lifetime ran out
    clock.now += 100.0
    bind(ha, clock, 3, lifetime=30)  # renewed shorter: 3's source is known until the longer one
    assert ha.known_sources(clock.now) == expected(ha, clock.now, count)
    clock.now = 100.0 + LIFETIME + KNOWN_GRACE + 1.0  # the first registrations' sources ran out
    assert ha.known_sources(clock.now) == expected(ha, clock.now, count)
    assert care_of(0) not in ha.known_sources(clock.now)
    bind(ha, clock, 0)
    assert ha.known_sources(clock.now) == expected(ha, clock.now, count)
    assert care_of(0) in ha.known_sources(clock.now)
    assert ha.known_sources(clock.now - 1.0) == expected(ha, clock.now - 1.0, count)  # asked about earlier
