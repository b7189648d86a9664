"""What an unauthenticated flood may cost the home agent, on a fake clock (RFC 5944 §3.8.2.1: reject,
SHOULD reply 131, log; §5.7: 133). Failures are charged to per-source budgets and one shared budget
(:class:`agents.mip.common.budgets.SourceBudget`):
past them no reply, no event, and the authenticator is checked
on the raw bytes (agents/mip/ha/quick_reject.py); no request is ever dropped unverified."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from agents.mip.common.budgets import SourceBudget
from agents.mip.common.events import AuthenticationFailed, IdentificationRejected, RequestReceived
from agents.mip.ha.home_agent import KNOWN_GRACE
from agents.mip.wire.codes import ReplyCode
from agents.runtime.udp import MobileIpSocket, Received
from tests.unit.test_home_agent import (
    COA,
    HA,
    HOA,
    OTHER_KEY,
    Clock,
    deliver,
    drain,
    make_ha,
    of_type,
    register,
    rrq,
)

ATTACKER = IPv4Address("203.0.113.66")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_source_budget_burst_then_rate() -> None:
    budget = SourceBudget(burst=5, rate=1.0, total_burst=100, total_rate=100)
    assert [budget.charge("a", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert budget.exhausted("a", 0.5) and not budget.exhausted("b", 0.5)
    assert budget.charge("a", 1.0) and not budget.charge("a", 1.0)  # one a second after the burst
    assert not budget.exhausted("a", 2.0)  # refilled; exhausted() never consumes
    assert budget.charge("a", 2.0)


def test_shared_budget_bounds_all_sources_together() -> None:
    budget = SourceBudget(total_burst=100, total_rate=100)
    assert sum(budget.charge(n, 0.0) for n in range(10_000)) == 100
    assert sum(budget.charge(n, 1.0) for n in range(10_000, 20_000)) == 100


def test_remembered_sources_are_bounded() -> None:
    budget = SourceBudget(max_sources=50)
    for n in range(1000):
        budget.charge(n, 0.0)
    assert len(budget) == 50
    with pytest.raises(ValueError):
        SourceBudget(rate=0)


def test_bad_auth_flood_from_one_source_gets_five_replies_then_is_rejected_quickly(clock: Clock) -> None:
    """1000 bad-auth requests within 0.9 s from one address: 5 signed 131s and 5 reports, the rest
    silently rejected, most by the raw-bytes check (no decode)."""
    ha = make_ha()
    replies = []
    for _ in range(1000):
        clock.now += 0.0009
        replies += deliver(ha, rrq(clock, key=OTHER_KEY, care_of=ATTACKER), clock, ATTACKER)
    events = drain(ha)
    assert [r.code for r in replies] == [ReplyCode.HA_MOBILE_NODE_FAILED_AUTHENTICATION] * 5
    assert ha.counters["refusal_replies"] == 5  # the signed 131s reflected (reports/security.py)
    assert len(of_type(events, AuthenticationFailed)) == 5 and len(of_type(events, RequestReceived)) == 5
    assert ha.counters["rejected_quickly"] > 900
    assert ha.counters["authentication_failures"] == 1000


def test_replay_failures_share_the_budget(clock: Clock) -> None:
    """RFC 5944 §5.7: stale timestamps get 133, within the same per-source budget."""
    ha = make_ha()
    stale = [deliver(ha, rrq(clock, ident=1 << 32, care_of=ATTACKER), clock, ATTACKER) for _ in range(20)]
    assert sum(len(replies) for replies in stale) == 5
    assert {r.code for replies in stale for r in replies} == {ReplyCode.HA_IDENTIFICATION_MISMATCH}
    assert len(of_type(drain(ha), IdentificationRejected)) == 5


def test_spoofed_flood_from_the_care_of_address_cannot_take_the_binding(clock: Clock) -> None:
    """A flood that forges the MN's own care-of address as source: every request is still verified
    (the source is known), the forged ones get at most the per-source budget of 131s, and the MN's
    renewals in the middle of the flood are accepted, so its binding never expires."""
    ha = make_ha()
    assert register(ha, clock, lifetime=4).code == ReplyCode.ACCEPTED
    accepted, failures = 0, 0
    for step in range(1, 10_001):
        clock.now += 0.001  # 10 s at 1000 forged requests/s
        for reply in deliver(ha, rrq(clock, key=OTHER_KEY, lifetime=4), clock, COA):
            failures += 1
            assert reply.code == ReplyCode.HA_MOBILE_NODE_FAILED_AUTHENTICATION
        if step % 2000 == 0:  # the MN renews every 2 s
            [renewal] = deliver(ha, rrq(clock, lifetime=4), clock, COA)
            accepted += renewal.code == ReplyCode.ACCEPTED
        assert ha.table.get(HOA) is not None, f"binding lost at {clock.now}"
    assert accepted == 5
    assert failures <= 5 + 10  # burst + one a second
    assert ha.counters["dropped_over_failure_budget"] == 0  # no request is ever dropped unverified


def test_random_spoofed_sources_get_at_most_the_shared_budget_of_replies(clock: Clock) -> None:
    """Each forged source fails once: per-source budgets cannot help, the shared one bounds the
    reflection to 100 signed replies in the first second and 100/s after that."""
    ha = make_ha()
    replies = 0
    for n in range(20_000):
        clock.now += 0.0001  # 2 s at 10,000/s
        source = IPv4Address(0x0A000000 + n)
        replies += len(deliver(ha, rrq(clock, key=OTHER_KEY, care_of=source), clock, source))
    assert 150 <= replies <= 300
    assert ha.is_known_source(COA, clock.now) is False and ha.is_known_source(HA, clock.now) is False


def test_home_addresses_and_registered_sources_are_known(clock: Clock) -> None:
    ha = make_ha()
    assert not ha.is_known_source(HOA, clock.now)  # no binding: nothing to deregister from home
    assert not ha.is_known_source(COA, clock.now)
    register(ha, clock, lifetime=10)
    assert ha.is_known_source(HOA, clock.now)  # deregistration from home, RFC 5944 §3.6.1.2
    # a renewal held up past the expiry is still a known peer's for KNOWN_GRACE s (issue 16)
    assert ha.is_known_source(COA, clock.now + 11)
    assert not ha.is_known_source(COA, clock.now + 11 + KNOWN_GRACE)
    assert not ha.is_known_source(ATTACKER, clock.now)


def test_socket_drains_and_serves_known_sources_first() -> None:
    """The runtime side: one wakeup reads everything queued, then serves the known sources' datagrams
    (a mobile node's renewal) before the flood that arrived around them."""
    queued = [Received(bytes([n]), (COA if n in (3, 7) else ATTACKER, 434), HA, 1) for n in range(10)]
    sock = MobileIpSocket.__new__(MobileIpSocket)
    sock.receive_one = lambda: queued.pop(0) if queued else None  # type: ignore[method-assign]
    served: list[int] = []
    sock._drain(lambda received: served.append(received.payload[0]), lambda source: source == COA)
    assert served == [3, 7, 0, 1, 2, 4, 5, 6, 8, 9] and not queued


def test_a_flood_forging_a_known_peer_is_rejected_on_the_raw_bytes_past_its_budget(clock: Clock) -> None:
    """Issue 16: past the forged source's budget its bad authenticators are rejected by the quick check
    (agents/mip/ha/quick_reject.py: no decode), counted as every failure is, and the MN's own renewals
    still go the full way and are accepted (RFC 5944 §3.8.2.1)."""
    ha = make_ha()
    assert register(ha, clock, lifetime=4).code == ReplyCode.ACCEPTED
    accepted = 0
    for step in range(1, 2001):
        clock.now += 0.001
        deliver(ha, rrq(clock, key=OTHER_KEY, lifetime=4), clock, COA)
        if step % 500 == 0:
            [renewal] = deliver(ha, rrq(clock, lifetime=4), clock, COA)
            accepted += renewal.code == ReplyCode.ACCEPTED
    assert accepted == 4
    assert ha.counters["rejected_quickly"] >= 1990 - 5
    assert ha.counters["authentication_failures"] == 2000
    assert ha.counters["requests"] == 2001 + 4


def test_the_quick_check_rejects_only_what_the_full_pipeline_rejects(clock: Clock) -> None:
    """Every shape: valid, wrong key, wrong SPI, no MN-HA extension, an extension after it, torn."""
    from agents.mip.ha.quick_reject import fails_quickly
    from agents.mip.wire.auth import SecurityAssociation
    from tests.unit.test_home_agent import KEY, SPI

    association = SecurityAssociation(SPI, KEY)
    valid = rrq(clock)
    assert not fails_quickly(valid, association)
    assert not fails_quickly(valid[:-3], association)  # torn: left to the decoder (malformed)
    assert not fails_quickly(valid[:24], association)  # no extension: the full path says so
    assert fails_quickly(rrq(clock, key=OTHER_KEY), association)
    assert fails_quickly(rrq(clock, spi=SPI + 1), association)
    for raw, verdict in ((rrq(clock, key=OTHER_KEY), True), (rrq(clock, spi=SPI + 1), True), (valid, False)):
        fresh = make_ha()
        replies = deliver(fresh, raw, clock, COA)
        rejected = [r.code for r in replies] == [ReplyCode.HA_MOBILE_NODE_FAILED_AUTHENTICATION]
        assert rejected == verdict


NEW_COA = IPv4Address("198.51.100.77")


@pytest.mark.parametrize("rate", [5, 10, 50])
def test_a_flood_forging_a_new_care_of_address_cannot_lock_the_mn_out(clock: Clock, rate: int) -> None:
    """Issue 16 review: forged bad-auth requests from a care-of address the HA has not seen yet, starting
    2 s before the MN registers from it. Past the source's failure budget each request is still verified
    (RFC 5944 §3.8.2.1 rejects a request for its authenticator, not its source), so the MN's first
    request is accepted; only the forged ones' 131s stay rate-limited."""
    ha = make_ha()
    step = 1.0 / rate
    start = clock.now
    forged_replies = 0
    accepted_at = None
    attempt, next_attempt, backoff = 0, start + 2.0, 1.0
    while clock.now < start + 122.0 and accepted_at is None:
        clock.now += step
        raw = rrq(clock, key=OTHER_KEY, care_of=NEW_COA)
        forged_replies += len(deliver(ha, raw, clock, NEW_COA))
        if clock.now >= next_attempt:  # the MN (re)tries with exponential backoff (RFC 5944 §3.6.3)
            attempt += 1
            replies = deliver(ha, rrq(clock, care_of=NEW_COA), clock, NEW_COA)
            if replies and replies[0].code == ReplyCode.ACCEPTED:
                accepted_at = attempt
            next_attempt, backoff = clock.now + backoff, backoff * 2
    assert accepted_at is not None and accepted_at <= 2, f"not accepted (attempts: {attempt})"
    assert ha.table.get(HOA) is not None
    assert forged_replies <= 5 + 3  # the burst, then one a second
    assert ha.counters["dropped_over_failure_budget"] == 0
