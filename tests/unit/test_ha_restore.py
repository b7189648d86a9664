"""The home agent core takes back saved bindings after a restart, on the fake clock (crash recovery).

RFC 5944 §3.8.1 (lifetimes), §4.6 (proxy and gratuitous ARP), §5.7 (replay protection survives),
RFC 5454 §3.3 (prefixes still allowed and free), RFC 3024 §4 (reverse tunnelling still offered).
"""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address

import pytest

from agents.mip.common.bindings import CareOf, CareOfEntry, PrefixBinding, TunnelTarget
from agents.mip.common.config import Encapsulation
from agents.mip.common.events import (
    ArpOwner,
    BindingAdded,
    BindingRemoved,
    GratuitousArpRequested,
    PrefixDeregistered,
    PrefixRegistered,
    ProxyArpStarted,
    ProxyArpStopped,
)
from agents.mip.ha.home_agent import KNOWN_GRACE, NodeState
from agents.mip.ha.restore import SavedBinding
from agents.mip.wire.codes import ReplyCode
from tests.unit.test_home_agent import (
    ALLOWED,
    COA,
    COA2,
    HOA,
    HOA2,
    P1,
    P2,
    SOURCE_PORT,
    Clock,
    drain,
    make_ha,
    of_type,
    one_reply,
    register,
    rrq,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


HOME_COA = CareOf(COA)


def entry(
    clock: Clock, *, care_of: CareOf = HOME_COA, expires_in: float = 200.0, **changes: object
) -> CareOfEntry:
    base = CareOfEntry(
        care_of=care_of,
        encapsulation=Encapsulation.IP_IN_IP,
        reverse_tunnel=True,
        colocated=True,
        lifetime=300,
        registered_at=clock.now - 100.0,
        expires_at=clock.now + expires_in,
        identification=clock.ident(),
        request_source=(care_of.address, SOURCE_PORT),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_restore_binds_again_and_announces_rfc5944_4_6(clock: Clock) -> None:
    """A valid saved binding: tunnel and prefix events, then proxy ARP and a gratuitous ARP by the HA."""
    ha = make_ha()
    saved = SavedBinding(HOA, (entry(clock),), (PrefixBinding(P1, TunnelTarget.CARE_OF),), clock.ident())
    outcome = ha.restore_binding(saved, clock.now)
    assert outcome.restored and not outcome.skipped
    events = drain(ha)
    [added] = of_type(events, BindingAdded)
    assert (added.home_address, added.care_of, added.reverse_tunnel) == (HOA, CareOf(COA), True)
    assert [event.prefix.prefix for event in of_type(events, PrefixRegistered)] == [P1]
    assert of_type(events, ProxyArpStarted)[0].home_address == HOA
    assert of_type(events, GratuitousArpRequested)[0].owner is ArpOwner.HOME_AGENT
    assert ha.node_state(HOA) is NodeState.AWAY
    assert ha.accepts_reverse_ipv4(COA, HOA)
    assert ha.get_timer() == pytest.approx(clock.now + 200.0)


def test_restored_binding_expires_on_the_restored_deadline_rfc5944_3_8_1(clock: Clock) -> None:
    ha = make_ha()
    ha.restore_binding(
        SavedBinding(HOA, (entry(clock, expires_in=50.0),), (PrefixBinding(P1, TunnelTarget.HOME_ADDRESS),)),
        clock.now,
    )
    drain(ha)
    ha.handle_timer(clock.now + 49.0)
    assert not drain(ha)
    ha.handle_timer(clock.now + 50.0)
    events = drain(ha)
    assert of_type(events, BindingRemoved)[0].reason == "expired"
    assert of_type(events, PrefixDeregistered) and of_type(events, ProxyArpStopped)
    assert ha.table.get(HOA) is None


def test_expired_entries_are_not_restored(clock: Clock) -> None:
    ha = make_ha()
    old = entry(clock, expires_in=0.0)
    outcome = ha.restore_binding(SavedBinding(HOA, (old,)), clock.now)
    assert not outcome.restored and "expired" in outcome.skipped[0]
    assert not drain(ha) and ha.table.get(HOA) is None and ha.node_state(HOA) is NodeState.HOME


def test_identification_survives_so_a_replay_is_refused_rfc5944_5_7(clock: Clock) -> None:
    """The last accepted Identification comes back even without a binding: the same request replayed
    after the restart gets 133, a newer one is accepted."""
    first = make_ha()
    raw = rrq(clock)
    assert one_reply(first, raw, clock).code == ReplyCode.ACCEPTED
    last = first.last_identification(HOA)
    assert last is not None
    restarted = make_ha()
    restarted.restore_binding(SavedBinding(HOA, (), (), last), clock.now)
    assert one_reply(restarted, raw, clock).code == ReplyCode.HA_IDENTIFICATION_MISMATCH
    assert register(restarted, clock).code == ReplyCode.ACCEPTED
    fresh = make_ha()  # without the restore the replay would have been accepted
    assert one_reply(fresh, raw, clock).code == ReplyCode.ACCEPTED


def test_unknown_home_address_and_withdrawn_policy_are_skipped_rfc5454_3_3(clock: Clock) -> None:
    ha = make_ha(mobile_nodes=(make_ha().config.mobile_nodes[0],))
    unknown = ha.restore_binding(SavedBinding(HOA2, (entry(clock),)), clock.now)
    assert not unknown.restored and "no mobile node account" in unknown.skipped[0]
    outside = PrefixBinding(P1.supernet(new_prefix=16), TunnelTarget.HOME_ADDRESS)
    outcome = ha.restore_binding(
        SavedBinding(HOA, (entry(clock),), (outside, PrefixBinding(P2, TunnelTarget.HOME_ADDRESS))), clock.now
    )
    assert outcome.restored and [item.prefix for item in outcome.prefixes] == [P2]
    assert any("outside the allowed" in reason for reason in outcome.skipped)
    assert ALLOWED.supernet_of(P2)


def test_encapsulation_no_longer_offered_is_skipped_rfc5944_3_8_3(clock: Clock) -> None:
    ha = make_ha(encapsulations=frozenset({Encapsulation.IP_IN_IP}))
    gre = entry(clock, encapsulation=Encapsulation.GRE)
    outcome = ha.restore_binding(SavedBinding(HOA, (gre,)), clock.now)
    assert not outcome.restored and "encapsulation" in outcome.skipped[0]


def test_simultaneous_entries_limited_to_one_when_unsupported_rfc5944_3_6_1_3(clock: Clock) -> None:
    newer = entry(clock, care_of=CareOf(COA2), registered_at=clock.now - 10.0)
    older = entry(clock)
    kept_both = make_ha()
    assert len(kept_both.restore_binding(SavedBinding(HOA, (older, newer)), clock.now).care_ofs) == 2
    single = make_ha(simultaneous_bindings=False)
    outcome = single.restore_binding(SavedBinding(HOA, (older, newer)), clock.now)
    assert [item.care_of for item in outcome.care_ofs] == [CareOf(COA2)]


def test_restore_twice_is_refused(clock: Clock) -> None:
    ha = make_ha()
    ha.restore_binding(SavedBinding(HOA, (entry(clock),)), clock.now)
    with pytest.raises(ValueError, match="already bound"):
        ha.restore_binding(SavedBinding(HOA, (entry(clock),)), clock.now)


def test_renewal_after_restore_is_an_update_not_a_new_binding(clock: Clock) -> None:
    """The MN's next renewal finds its binding: no second proxy ARP or gratuitous ARP."""
    ha = make_ha()
    ha.restore_binding(SavedBinding(HOA, (entry(clock),)), clock.now)
    drain(ha)
    assert register(ha, clock).code == ReplyCode.ACCEPTED
    events = drain(ha)
    assert not of_type(events, BindingAdded) and not of_type(events, ProxyArpStarted)


def test_a_restored_bindings_request_source_is_a_known_peer_again(clock: Clock) -> None:
    """Issue 16: the kernel steering (agents/runtime/steering.py) serves known peers first; after a crash
    the FA or care-of address a restored binding's requests came from is known until the binding expires,
    so its renewal is not left in the flood's queue."""
    ha = make_ha()
    relay = IPv4Address("198.51.100.2")
    assert relay not in ha.known_sources(clock.now)
    ha.restore_binding(SavedBinding(HOA, (entry(clock, request_source=(relay, 434)),)), clock.now)
    assert ha.known_sources(clock.now) == {relay, HOA}  # HOA has a binding; other homes have none
    gone = clock.now + 201.0 + KNOWN_GRACE
    assert ha.is_known_source(relay, clock.now + 199.0) and not ha.is_known_source(relay, gone)
    assert relay not in ha.known_sources(gone)
