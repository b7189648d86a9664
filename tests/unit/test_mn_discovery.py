"""Mobile node in foreign-agent care-of mode on a fake clock: solicitation, movement detection, agent
reboot, registration via the FA, returning home (RFC 5944 §2.2, §2.4, §3.6.1, §4.6; RFC 3024 §3.2;
RFC 5454 §3.5).

Advertisements are built with the wire library and fed in by hand; the FA and HA are played by hand
too (the tests decode what the MN sends and answer with signed replies).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from ipaddress import IPv4Address, IPv6Network
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.mip.common.bindings import TunnelTarget
from agents.mip.common.config import CareOfMode, Encapsulation, MobileNodeConfig, MovementDetection
from agents.mip.common.events import (
    AdvertisementDiscarded,
    AgentDiscovered,
    AgentLost,
    ArpModeChanged,
    ArpOwner,
    AtHome,
    AuthenticationFailed,
    Deregistered,
    GratuitousArpRequested,
    MovementDetected,
    MovementReason,
    OutgoingDatagram,
    PrefixAccepted,
    RegistrationDenied,
    SolicitationSent,
    TunnelDown,
    TunnelUp,
)
from agents.mip.mn.mobile_node import MnState, MobileNode
from agents.mip.wire.auth import SecurityAssociation, append_authentication, verify_with
from agents.mip.wire.codes import ExtensionType, RegistrationFlag, ReplyCode
from agents.mip.wire.dsmip import PrefixReply
from agents.mip.wire.icmp import (
    AdvertisementFlag,
    AgentAdvertisement,
    AgentSolicitation,
    MobilityAgentExtension,
    decode_agent_message,
)
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest, build_foreign_agent_reply

A = AdvertisementFlag
F = RegistrationFlag
KEY = bytes(range(16))
SPI = 0x100
HA = IPv4Address("192.0.2.1")
HOA = IPv4Address("192.0.2.10")
FA1 = IPv4Address("198.51.100.1")  # the agent's address on visited link 1 (its advertisements' source)
COA1 = IPv4Address("203.0.113.1")  # the care-of address FA1 advertises
FA2 = IPv4Address("198.51.101.1")
COA2 = IPv4Address("203.0.113.2")
FA1B = IPv4Address("198.51.100.2")  # a second agent on link 1 (same prefix as FA1)
COA1B = IPv4Address("203.0.113.3")
COLOCATED = IPv4Address("198.51.100.77")
P1 = IPv6Network("2001:db8:10:1::/64")
WALL = 1_700_000_000.0
FA_FLAGS = A.F | A.T
MN_HA = SecurityAssociation(SPI, KEY)


def make_mn(**changes: Any) -> MobileNode:
    base = MobileNodeConfig(
        HOA, HA, SPI, KEY, lifetime=100, care_of_mode=CareOfMode.FOREIGN_AGENT, solicitation_jitter=0.0
    )
    return MobileNode(dataclasses.replace(base, **changes), wall_clock_offset=WALL, rng=random.Random(7))


def advert(
    source: IPv4Address = FA1,
    care_of: IPv4Address | None = COA1,
    *,
    sequence: int = 300,
    lifetime: int = 3,
    flags: AdvertisementFlag = FA_FLAGS,
    prefix_length: int | None = None,
    registration_lifetime: int = 1800,
) -> bytes:
    """An Agent Advertisement from ``source``, which is also its only router address."""
    care_ofs = () if care_of is None else (care_of,)
    mobility = MobilityAgentExtension(sequence, registration_lifetime, flags, care_ofs)
    lengths = None if prefix_length is None else (prefix_length,)
    return AgentAdvertisement(0, lifetime, ((source, 0),), mobility, lengths).encode()


def home_advert(sequence: int = 300, source: IPv4Address = HA, flags: AdvertisementFlag = A.H) -> bytes:
    return advert(source, None, sequence=sequence, flags=flags)


def hear(mn: MobileNode, data: bytes, source: IPv4Address, now: float) -> None:
    mn.receive_advertisement(data, source, now, interface="eth0")


def drain(mn: MobileNode) -> list[Any]:
    events = []
    while (event := mn.next_event()) is not None:
        events.append(event)
    return events


def of_type(events: list[Any], kind: type[Any]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def requests(mn: MobileNode, now: float) -> list[tuple[OutgoingDatagram, RegistrationRequest]]:
    return [(out, RegistrationRequest.decode(out.payload)) for out in mn.datagrams_to_send(now)]


def request_one(mn: MobileNode, now: float) -> tuple[OutgoingDatagram, RegistrationRequest]:
    [sent] = requests(mn, now)
    return sent


def signed_reply(request: RegistrationRequest, code: int = 0, prefix_code: int = 0) -> bytes:
    replies = tuple(PrefixReply.answering(item, prefix_code) for item in request.prefix_requests)
    reply = RegistrationReply(
        code, request.lifetime, request.home_address, request.home_agent, request.identification, replies
    )
    return append_authentication(reply.encode(), ExtensionType.MOBILE_HOME_AUTH, MN_HA)


def advance(mn: MobileNode, until: float, feed: Any = None) -> list[float]:
    """Run the MN's timer up to ``until``; ``feed(now)`` may inject inputs. Returns solicitation times."""
    times: list[float] = []
    now = 0.0
    while (deadline := mn.get_timer()) is not None and deadline <= until:
        now = max(now, deadline)
        mn.handle_timer(now)
        times += [now] * len(mn.solicitations_to_send(now))
        if feed is not None:
            feed(now)
    return times


def attached(mn: MobileNode, now: float = 0.0, **advert_changes: Any) -> RegistrationRequest:
    """Link up, FA1 heard, its request answered: registered via FA1."""
    mn.link_changed(True, None, now)
    mn.solicitations_to_send(now)
    hear(mn, advert(**advert_changes), FA1, now)
    _, request = request_one(mn, now)
    mn.receive_datagram(signed_reply(request), (FA1, 434), HOA, now + 0.1)
    assert mn.state is MnState.REGISTERED
    return request


# -- solicitation (RFC 5944 §2.2, §2.4) --------------------------------------------------------------


def test_link_up_without_address_solicits_at_once_with_ttl_1_rfc5944_2_2() -> None:
    mn = make_mn()
    mn.link_changed(True, None, 5.0)
    [out] = mn.solicitations_to_send(5.0)
    assert isinstance(decode_agent_message(out.payload), AgentSolicitation)
    assert (out.destination, out.ttl) == (IPv4Address("224.0.0.11"), 1)
    events = drain(mn)
    assert MovementDetected(MovementReason.LINK, None, None) in events
    assert of_type(events, SolicitationSent) == [SolicitationSent(IPv4Address("224.0.0.11"), 1)]
    assert mn.datagrams_to_send(5.0) == [] and mn.state is MnState.IDLE


def test_broadcast_solicitation_destination_rfc5944_2_2() -> None:
    mn = make_mn(solicitation_destination=IPv4Address("255.255.255.255"))
    mn.link_changed(True, None, 0.0)
    assert [out.destination for out in mn.solicitations_to_send(0.0)] == [IPv4Address("255.255.255.255")]


def test_three_solicitations_one_per_second_then_doubling_to_the_cap_rfc5944_2_4() -> None:
    mn = make_mn()
    mn.link_changed(True, None, 0.0)
    times = [0.0] * len(mn.solicitations_to_send(0.0)) + advance(mn, 400.0)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[:10] == [1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


@pytest.mark.parametrize("seed", range(5))
def test_solicitation_gaps_are_randomised_within_bounds_rfc5944_2_4(seed: int) -> None:
    config = MobileNodeConfig(
        HOA,
        HA,
        SPI,
        KEY,
        care_of_mode=CareOfMode.FOREIGN_AGENT,
        solicitation_jitter=0.5,
        solicitation_max_interval=64.0,
    )
    mn = MobileNode(config, rng=random.Random(seed))
    mn.link_changed(True, None, 0.0)
    times = [0.0] * len(mn.solicitations_to_send(0.0)) + advance(mn, 600.0)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    nominal = [1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 64.0]
    assert all(low <= gap <= low * 1.5 for gap, low in zip(gaps, nominal, strict=False))
    assert len(set(gaps[:9])) == 9  # drawn, not fixed: never below the nominal gap (at most 1/s)


def test_solicitations_stop_when_an_advertisement_arrives_rfc5944_2_4() -> None:
    mn = make_mn()
    mn.link_changed(True, None, 0.0)
    times = [0.0] * len(mn.solicitations_to_send(0.0)) + advance(mn, 1.4)
    hear(mn, advert(), FA1, 1.5)
    assert len(requests(mn, 1.5)) == 1
    for tick in range(2, 60):  # FA1 keeps advertising every second (Lifetime 3)
        times += advance(mn, float(tick) - 0.1)
        hear(mn, advert(sequence=300 + tick), FA1, float(tick))
    assert times == [0.0, 1.0]  # none after the advertisement


def test_link_flapping_cannot_beat_one_solicitation_per_second_rfc5944_2_4() -> None:
    mn = make_mn()
    mn.link_changed(True, None, 0.0)
    assert len(mn.solicitations_to_send(0.0)) == 1
    mn.link_changed(False, None, 0.2)
    mn.link_changed(True, None, 0.3)
    assert mn.solicitations_to_send(0.3) == [] and mn.get_timer() == 1.0
    mn.handle_timer(1.0)
    assert len(mn.solicitations_to_send(1.0)) == 1


def test_link_down_then_up_solicits_at_once_rfc5944_2_4() -> None:
    mn = make_mn()
    attached(mn)
    drain(mn)
    mn.link_changed(False, None, 10.0)
    events = drain(mn)
    assert AgentLost(FA1, "link-down") in events and TunnelDown(COA1, "link-down") in events
    assert mn.solicitations_to_send(10.0) == [] and mn.state is MnState.IDLE
    mn.link_changed(True, None, 12.0)
    assert len(mn.solicitations_to_send(12.0)) == 1
    assert MovementDetected(MovementReason.LINK, None, None) in drain(mn)


def test_solicit_command_starts_a_round() -> None:
    mn = make_mn()
    attached(mn)
    assert mn.solicit(20.0) and len(mn.solicitations_to_send(20.0)) == 1


# -- algorithm 1: advertisement lifetime (RFC 5944 §2.4.2.1) --------------------------------------


def test_lifetime_expiry_switches_to_another_unexpired_agent_rfc5944_2_4_2_1() -> None:
    mn = make_mn()
    attached(mn, lifetime=3)
    hear(mn, advert(FA1B, COA1B, lifetime=9), FA1B, 1.0)  # same link, no move while FA1 lives
    assert requests(mn, 1.0) == []
    drain(mn)
    assert mn.get_timer() == 3.0
    mn.handle_timer(3.0)
    events = drain(mn)
    assert AgentLost(FA1, "expired") in events
    assert MovementDetected(MovementReason.LIFETIME, FA1, FA1B) in events
    out, request = request_one(mn, 3.0)
    assert (out.destination, request.care_of_address) == (FA1B, COA1B)
    assert mn.solicitations_to_send(3.0) == []


def test_lifetime_expiry_without_another_agent_solicits_rfc5944_2_4_2_1() -> None:
    mn = make_mn()
    attached(mn, lifetime=3)
    drain(mn)
    mn.handle_timer(3.0)
    events = drain(mn)
    assert MovementDetected(MovementReason.LIFETIME, FA1, None) in events
    assert TunnelDown(COA1, "agent-lost") in events and mn.state is MnState.IDLE
    assert len(mn.solicitations_to_send(3.0)) == 1 and requests(mn, 3.0) == []
    hear(mn, advert(FA2, COA2), FA2, 4.0)
    out, request = request_one(mn, 4.0)
    assert (out.destination, request.care_of_address) == (FA2, COA2)


def test_lifetime_zero_advertisement_is_an_immediate_loss_rfc5944_2_4_2_1() -> None:
    mn = make_mn()
    attached(mn, lifetime=30)
    drain(mn)
    hear(mn, advert(lifetime=0, sequence=301), FA1, 5.0)
    assert MovementDetected(MovementReason.LIFETIME, FA1, None) in drain(mn)
    assert len(mn.solicitations_to_send(5.0)) == 1


def test_prefix_only_detection_does_not_act_on_expiry_rfc5944_2_4_2() -> None:
    mn = make_mn(movement_detection=MovementDetection.PREFIX)
    attached(mn, lifetime=3)
    drain(mn)
    mn.handle_timer(3.0)
    events = drain(mn)
    assert AgentLost(FA1, "expired") in events and not of_type(events, MovementDetected)
    assert mn.solicitations_to_send(3.0) == [] and mn.state is MnState.REGISTERED


# -- algorithm 2: network prefixes (RFC 5944 §2.4.2.2) --------------------------------------------


def test_prefix_change_with_ext_19_in_both_moves_at_once_rfc5944_2_4_2_2() -> None:
    mn = make_mn()
    attached(mn, lifetime=30, prefix_length=24)
    drain(mn)
    hear(mn, advert(FA2, COA2, lifetime=30, prefix_length=24), FA2, 5.0)
    assert MovementDetected(MovementReason.PREFIX, FA1, FA2) in drain(mn)
    out, request = request_one(mn, 5.0)
    assert (out.destination, request.care_of_address) == (FA2, COA2)


@pytest.mark.parametrize(("old", "new"), [(24, None), (None, 24), (None, None)])
def test_prefix_rule_needs_ext_19_in_both_advertisements_rfc5944_2_4_2_2(
    old: int | None, new: int | None
) -> None:
    mn = make_mn()
    attached(mn, lifetime=30, prefix_length=old)
    drain(mn)
    hear(mn, advert(FA2, COA2, lifetime=30, prefix_length=new), FA2, 5.0)
    assert not of_type(drain(mn), MovementDetected) and requests(mn, 5.0) == []


def test_same_prefix_is_no_move_rfc5944_2_4_2_2() -> None:
    mn = make_mn()
    attached(mn, lifetime=30, prefix_length=24)
    drain(mn)
    hear(mn, advert(FA1B, COA1B, lifetime=30, prefix_length=24), FA1B, 5.0)  # 198.51.100.0/24 too
    assert not of_type(drain(mn), MovementDetected) and requests(mn, 5.0) == []


def test_lifetime_only_detection_ignores_prefixes_rfc5944_2_4_2() -> None:
    mn = make_mn(movement_detection=MovementDetection.LIFETIME)
    attached(mn, lifetime=30, prefix_length=24)
    hear(mn, advert(FA2, COA2, lifetime=30, prefix_length=24), FA2, 5.0)
    assert requests(mn, 5.0) == []


# -- agent reboot (RFC 5944 §2.3.2, §2.4.4) -------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "reregisters"),
    [
        (700, 255, True),
        (300, 0, True),
        (700, 256, False),
        (0xFFFF, 256, False),
        (10, 11, False),
        (5, 5, False),
    ],
)
def test_sequence_drop_below_256_re_registers_rfc5944_2_4_4(
    before: int, after: int, reregisters: bool
) -> None:
    mn = make_mn()
    attached(mn, sequence=before, lifetime=30)
    drain(mn)
    hear(mn, advert(sequence=after, lifetime=30), FA1, 5.0)
    sent = requests(mn, 5.0)
    moves = of_type(drain(mn), MovementDetected)
    if reregisters:
        assert moves == [MovementDetected(MovementReason.REBOOT, FA1, FA1)]
        [(out, request)] = sent
        assert (out.destination, request.care_of_address, request.lifetime) == (FA1, COA1, 100)
        assert mn.counters["agent_reboots"] == 1
    else:
        assert moves == [] and sent == []


def test_reboot_of_another_agent_changes_nothing_rfc5944_2_4_4() -> None:
    mn = make_mn()
    attached(mn, lifetime=30)
    hear(mn, advert(FA1B, COA1B, sequence=900, lifetime=30), FA1B, 1.0)
    hear(mn, advert(FA1B, COA1B, sequence=1, lifetime=30), FA1B, 5.0)
    assert requests(mn, 5.0) == [] and mn.counters["agent_reboots"] == 1


# -- registration via the foreign agent (RFC 5944 §3.6.1.1, RFC 3024 §3.2, RFC 5454 §3.5) ---------


def test_request_via_fa_fields_rfc5944_3_6_1_1_rfc3024_3_2_rfc5454_3_5() -> None:
    mn = make_mn(prefixes=(P1,), request_tunneling_mode=True, nai="mn@example.test")
    mn.link_changed(True, None, 0.0)
    hear(mn, advert(), FA1, 0.5)
    out, request = request_one(mn, 0.5)
    assert (out.destination, out.port, out.source, out.ttl) == (FA1, 434, HOA, 255)
    assert request.care_of_address == COA1 and (request.home_address, request.home_agent) == (HOA, HA)
    assert request.flags == F.T  # D clear, T because the FA advertises T
    assert [item.network for item in request.prefix_requests] == [P1]  # prefixes still requested
    assert request.tunneling_modes == ()  # never with an FA care-of address (RFC 5454 §3.5)
    assert verify_with(out.payload, ExtensionType.MOBILE_HOME_AUTH, MN_HA)
    assert ArpModeChanged(HOA, True, FA1) in drain(mn)  # RFC 5944 §4.6 while away


def test_flags_follow_what_the_fa_advertises_rfc3024_3_1_rfc5944_2_1_1() -> None:
    mn = make_mn(encapsulation=Encapsulation.GRE, simultaneous_bindings=True)
    mn.link_changed(True, None, 0.0)
    hear(mn, advert(flags=A.F), FA1, 0.0)  # neither T nor G advertised
    assert request_one(mn, 0.0)[1].flags == F.S
    mn2 = make_mn(encapsulation=Encapsulation.GRE)
    mn2.link_changed(True, None, 0.0)
    hear(mn2, advert(flags=A.F | A.G | A.T), FA1, 0.0)
    assert request_one(mn2, 0.0)[1].flags == F.G | F.T


def test_requested_lifetime_is_at_most_the_fa_registration_lifetime_rfc5944_2_1_1() -> None:
    mn = make_mn(lifetime=100)
    mn.link_changed(True, None, 0.0)
    hear(mn, advert(registration_lifetime=30), FA1, 0.0)
    assert request_one(mn, 0.0)[1].lifetime == 30  # not 100: the FA would deny with 69


@pytest.mark.parametrize(
    ("flags", "care_of", "registration_lifetime"),
    [(A.F | A.B, COA1, 1800), (A.H, COA1, 1800), (A.F | A.R, None, 1800), (A.F, COA1, 0)],
    ids=["busy", "not-an-fa", "no-care-of", "lifetime-0"],
)
def test_unusable_agents_are_not_registered_with_rfc5944_2_1_1(
    flags: AdvertisementFlag, care_of: IPv4Address | None, registration_lifetime: int
) -> None:
    mn = make_mn()
    mn.link_changed(True, None, 0.0)
    hear(mn, advert(flags=flags, care_of=care_of, registration_lifetime=registration_lifetime), FA1, 0.5)
    assert requests(mn, 0.5) == []
    assert mn.get_timer() == 1.0  # still soliciting


def test_accept_via_fa_brings_up_a_non_colocated_tunnel_and_ipv6_over_the_hoa_rfc5454_3_3_2() -> None:
    mn = make_mn(prefixes=(P1,))
    mn.link_changed(True, None, 0.0)
    hear(mn, advert(), FA1, 0.0)
    _, request = request_one(mn, 0.0)
    drain(mn)
    mn.receive_datagram(signed_reply(request, prefix_code=1), (FA1, 434), HOA, 0.2)
    events = drain(mn)
    up = TunnelUp(COA1, HA, HOA, Encapsulation.IP_IN_IP, True, colocated=False)
    assert of_type(events, TunnelUp) == [up]
    # code 1 without Tunneling Mode: the MN can only take IPv6 over the HoA tunnel (code 0 semantics)
    assert of_type(events, PrefixAccepted) == [PrefixAccepted(P1, TunnelTarget.HOME_ADDRESS, False, 1)]
    assert mn.status(0.2)["foreign_agent"] == str(FA1)


def test_fa_denial_without_mn_ha_is_taken_from_that_fa_only_rfc5944_3_6_2_1() -> None:
    mn = make_mn()
    mn.link_changed(True, None, 0.0)
    hear(mn, advert(), FA1, 0.0)
    _, request = request_one(mn, 0.0)
    denial = RegistrationReply(ReplyCode.FA_REVERSE_TUNNEL_UNAVAILABLE, 0, HOA, HA, request.identification)
    raw = build_foreign_agent_reply(denial)
    mn.receive_datagram(raw, (FA2, 434), HOA, 0.1)  # not the FA it asked
    assert of_type(drain(mn), AuthenticationFailed)
    mn.receive_datagram(raw, (FA1, 434), HOA, 0.2)
    assert of_type(drain(mn), RegistrationDenied) == [RegistrationDenied(COA1, 74)]
    assert mn.state is MnState.REGISTERING


def test_shutdown_via_fa_deregisters_through_it_rfc5944_3_6_1_2() -> None:
    mn = make_mn()
    attached(mn)
    mn.shutdown(10.0)
    out, request = request_one(mn, 10.0)
    assert (out.destination, out.source, request.lifetime, request.care_of_address) == (FA1, HOA, 0, COA1)
    assert F.D not in request.flags


# -- returning home (RFC 5944 §2.4.3, §3.6.1.2, §4.6) -----------------------------------------------


def test_own_home_agent_advertisement_means_home_rfc5944_2_4_3_3_6_1_2_4_6() -> None:
    mn = make_mn(prefixes=(P1,))
    attached(mn)
    drain(mn)
    mn.link_changed(True, None, 20.0)
    hear(mn, home_advert(), HA, 20.5)
    out, request = request_one(mn, 20.5)
    assert (request.lifetime, request.care_of_address) == (0, HOA)  # every binding (§3.6.1.2)
    assert (out.destination, out.source, out.ttl) == (HA, HOA, 255)
    events = drain(mn)
    assert MovementDetected(MovementReason.HOME, None, HA) in events
    arp = [event for event in events if isinstance(event, ArpModeChanged | GratuitousArpRequested)]
    assert arp == [ArpModeChanged(HOA, False, None), GratuitousArpRequested(HOA, ArpOwner.MOBILE_NODE)]
    assert of_type(events, AtHome) == [AtHome(HOA)]  # the runtime puts the HoA back on the home link
    mn.receive_datagram(signed_reply(request), (HA, 434), HOA, 20.6)
    assert of_type(drain(mn), Deregistered) == [Deregistered(HOA, True)]
    assert mn.state is MnState.IDLE and mn.status(20.6)["at_home"] is True
    hear(mn, home_advert(301), HA, 21.0)  # still home: nothing more
    assert requests(mn, 21.0) == [] and not of_type(drain(mn), MovementDetected)


def test_leaving_home_before_the_deregistration_reply_registers_afresh_rfc5944_3_6_1_2() -> None:
    """Home, deregistration sent, the reply lost (the link moved on); back at the same FA before it came:
    a fresh registration with the full request, not a renewal of the binding being deregistered."""
    mn = make_mn(prefixes=(P1,))
    attached(mn)
    hear(mn, home_advert(), HA, 20.0)
    _, deregistration = request_one(mn, 20.0)
    assert (deregistration.lifetime, mn.state) == (0, MnState.DEREGISTERING)
    mn.handle_timer(21.0)
    assert [r.lifetime for _, r in requests(mn, 21.0)] == [0]  # retransmitted, still unanswered
    hear(mn, advert(sequence=301), FA1, 22.5)  # FA1 heard again while the home agent is still heard
    assert requests(mn, 22.5) == [] and mn.state is MnState.DEREGISTERING
    mn.handle_timer(23.1)  # the HA's advertisement (lifetime 3) runs out: FA1 it is
    _, request = request_one(mn, 23.1)
    assert request.lifetime > 0 and request.care_of_address == COA1 and request.prefix_requests
    assert mn.state is MnState.REGISTERING
    mn.receive_datagram(signed_reply(request), (FA1, 434), HOA, 23.6)
    assert mn.state is MnState.REGISTERED
    assert of_type(drain(mn), TunnelUp)


def test_home_told_by_the_link_then_by_the_home_agent_deregisters_once_rfc5944_3_6_1_2() -> None:
    mn = make_mn()
    attached(mn)
    mn.link_changed(True, HOA, 20.0)  # the runtime knows it is home
    _, request = request_one(mn, 20.0)
    assert (request.lifetime, request.care_of_address) == (0, HOA)
    hear(mn, home_advert(), HA, 21.5)
    assert requests(mn, 21.5) == [] and mn.get_timer() == 21.0  # only the retransmission


@pytest.mark.parametrize(
    ("source", "flags"), [(IPv4Address("192.0.2.2"), A.H), (HA, A.F)], ids=["other-ha", "no-h-bit"]
)
def test_not_home_without_h_from_its_own_home_agent_rfc5944_2_4_3(
    source: IPv4Address, flags: AdvertisementFlag
) -> None:
    mn = make_mn()
    attached(mn, lifetime=30)
    care_of = COA2 if A.F in flags else None
    hear(mn, advert(source, care_of, flags=flags, lifetime=30), source, 5.0)
    assert requests(mn, 5.0) == [] and mn.status(5.0)["at_home"] is False


def test_home_agent_advertisement_in_colocated_mode_also_means_home_rfc5944_2_4_3() -> None:
    mn = make_mn(care_of_mode=CareOfMode.COLOCATED)
    mn.link_changed(True, COLOCATED, 0.0)
    _, request = request_one(mn, 0.0)
    assert request.flags == F.D | F.T and mn.solicitations_to_send(0.0) == []  # unchanged co-located
    mn.receive_datagram(signed_reply(request), (HA, 434), COLOCATED, 0.1)
    hear(mn, advert(FA2, COA2, lifetime=30), FA2, 1.0)  # FAs are ignored when co-located
    assert requests(mn, 1.0) == []
    hear(mn, home_advert(), HA, 5.0)
    _, home = request_one(mn, 5.0)
    assert (home.lifetime, home.care_of_address) == (0, HOA)


def test_colocated_link_flap_with_the_same_address_registers_again() -> None:
    mn = make_mn(care_of_mode=CareOfMode.COLOCATED)
    mn.link_changed(True, COLOCATED, 0.0)
    _, request = request_one(mn, 0.0)
    mn.receive_datagram(signed_reply(request), (HA, 434), COLOCATED, 0.1)
    mn.link_changed(False, None, 5.0)
    mn.link_changed(True, COLOCATED, 6.0)  # the binding is still valid: a fresh registration, not a renewal
    assert request_one(mn, 6.0)[1].care_of_address == COLOCATED and mn.state is MnState.REGISTERING


def test_leaving_home_by_lifetime_then_an_fa_rfc5944_2_4_2_1() -> None:
    mn = make_mn()
    mn.link_changed(True, None, 0.0)
    hear(mn, home_advert(), HA, 0.5)
    requests(mn, 0.5)
    drain(mn)
    mn.handle_timer(3.5)  # the HA's Lifetime (3 s) ran out: left home
    assert MovementDetected(MovementReason.LIFETIME, HA, None) in drain(mn)
    hear(mn, advert(FA2, COA2), FA2, 4.0)
    out, request = request_one(mn, 4.0)
    assert (out.destination, request.care_of_address, request.lifetime) == (FA2, COA2, 100)


# -- auto mode ----------------------------------------------------------------------------------


def test_auto_mode_uses_colocated_unless_an_fa_requires_registration_rfc5944_3_6() -> None:
    mn = make_mn(care_of_mode=CareOfMode.AUTO)
    mn.link_changed(True, COLOCATED, 0.0)
    out, request = request_one(mn, 0.0)
    assert (out.destination, request.care_of_address, F.D in request.flags) == (HA, COLOCATED, True)
    assert len(mn.solicitations_to_send(0.0)) == 1  # listening for agents all the same
    hear(mn, advert(lifetime=30), FA1, 2.0)
    assert requests(mn, 2.0) == []
    hear(mn, advert(FA1B, COA1B, flags=A.F | A.R | A.T, lifetime=30), FA1B, 3.0)
    out, request = request_one(mn, 3.0)
    assert (out.destination, request.care_of_address, F.D in request.flags) == (FA1B, COA1B, False)
    mn.handle_timer(33.0)  # both agents expire: back to the co-located address
    _, request = request_one(mn, 33.0)
    assert request.care_of_address == COLOCATED


def test_auto_mode_without_address_behaves_as_foreign_agent_mode() -> None:
    mn = make_mn(care_of_mode=CareOfMode.AUTO)
    mn.link_changed(True, None, 0.0)
    assert len(mn.solicitations_to_send(0.0)) == 1
    hear(mn, advert(), FA1, 0.5)
    assert request_one(mn, 0.5)[1].care_of_address == COA1


# -- rate limits (RFC 5944 §2.4.2) ------------------------------------------------------------------


def test_at_most_one_registration_per_second_under_an_advertisement_storm_rfc5944_2_4_2() -> None:
    mn = make_mn(lifetime=1000)
    mn.link_changed(True, None, 0.0)
    sent_at: list[float] = []
    now = 0.0
    for step in range(3000):  # 30 s: every 10 ms a prefix change, every 70 ms a reboot
        now = step * 0.01
        agent, care_of = (FA1, COA1) if step % 2 else (FA2, COA2)
        sequence = 1 if step % 7 == 0 else 1000 + step
        hear(mn, advert(agent, care_of, sequence=sequence, prefix_length=24), agent, now)
        if (deadline := mn.get_timer()) is not None and deadline <= now:
            mn.handle_timer(now)
        sent_at += [now] * len(mn.datagrams_to_send(now))
    assert len(sent_at) >= 25  # it keeps trying
    assert len(sent_at) <= 31  # ≤ 1 per second on average (30 s)
    assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in itertools.pairwise(sent_at))


# -- robustness -------------------------------------------------------------------------------------


def test_discarded_messages_are_counted_events_rfc5944_1_8_2_1_1() -> None:
    mn = make_mn()
    mn.link_changed(True, None, 0.0)
    drain(mn)
    hear(mn, advert()[:-1], FA1, 0.1)  # bad checksum / cut
    hear(mn, AgentSolicitation().encode(), FA1, 0.2)
    hear(mn, advert(care_of=None), FA1, 0.3)  # F without a care-of address
    mobility = MobilityAgentExtension(1, 1800, A.F, (COA1,))
    unknown = AgentAdvertisement(0, 3, ((FA1, 0),), mobility, unknown_extensions=((99, b"x"),)).encode()
    hear(mn, unknown, FA1, 0.4)  # unknown type below 128: discard (§1.8)
    discarded = of_type(drain(mn), AdvertisementDiscarded)
    assert len(discarded) == 4 and discarded[0].offset is not None
    assert mn.counters["malformed_advertisements"] == 1 and mn.counters["advertisements_discarded"] == 3
    assert requests(mn, 0.4) == [] and mn.status(0.4)["agents"] == []


def test_agent_table_and_events() -> None:
    mn = make_mn()
    mn.link_changed(True, None, 0.0)
    hear(mn, advert(sequence=42), FA1, 0.0)
    assert AgentDiscovered(FA1, int(FA_FLAGS), 3, (COA1,), 42) in drain(mn)
    [row] = mn.status(1.0)["agents"]  # type: ignore[misc]
    assert row == {
        "agent": str(FA1),
        "current": True,
        "flags": int(FA_FLAGS),
        "sequence": 42,
        "care_of": str(COA1),
        "remaining": 2.0,
        "interface": "eth0",
    }
    assert mn.get_timer() == pytest.approx(1.0)  # the retransmission comes before FA1's expiry (3 s)
    json.dumps(mn.status(1.0))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_fuzzed_advertisements_never_raise(noise: bytes) -> None:
    mn = make_mn()
    mn.link_changed(True, None, 0.0)
    for data in (noise, b"\x09" + noise, advert()[:12] + noise):
        mn.receive_advertisement(data, FA1, 0.1)
    assert mn.counters["internal_errors"] == 0
    json.dumps(mn.status(0.1))


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"solicitation_interval": 0.5},
        {"solicitation_initial_count": 4},
        {"solicitation_initial_count": 0},
        {"solicitation_max_interval": 30.0},
        {"solicitation_jitter": 1.5},
        {"solicitation_destination": IPv4Address("224.0.0.2")},
    ],
)
def test_solicitation_settings_are_checked_rfc5944_2_4(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="mobile node: solicitation"):
        dataclasses.replace(MobileNodeConfig(HOA, HA, SPI, KEY), **change)


# -- the foreign agent's registration timeout, 78 (RFC 5944 §3.6.3, §3.7.1) ---------------------------


def send_times(mn: MobileNode, until: float, feed: Any = None) -> list[float]:
    """When the MN sends its (re)transmissions, running its timer up to ``until``."""
    times: list[float] = []
    now = 0.0
    while (deadline := mn.get_timer()) is not None and deadline <= until:
        now = max(now, deadline)
        mn.handle_timer(now)
        times += [now] * len(requests(mn, now))
        if feed is not None:
            feed(now)
    return times


def fa_timeout(request: RegistrationRequest) -> bytes:
    """FA1's 78 for ``request``: no reply from the home agent in time (RFC 5944 §3.7.1)."""
    reply = RegistrationReply(ReplyCode.FA_REGISTRATION_TIMEOUT, 0, HOA, HA, request.identification)
    return build_foreign_agent_reply(reply)


def test_78_for_an_earlier_copy_keeps_the_doubling_retransmissions_rfc5944_3_6_3() -> None:
    """The FA gave up on the first copy after the MN's first retransmission: the MN's own timer already
    covers "no reply", so the schedule stays 0, 1, 3, 7 s (each timeout double the previous, §3.6.3)
    instead of waiting ``retransmit_max`` (16 s) as after a denial; the retransmission is still answered."""
    mn = make_mn()
    mn.link_changed(True, None, 0.0)
    hear(mn, advert(lifetime=60), FA1, 0.0)  # FA1 stays for the whole test
    _, first = request_one(mn, 0.0)
    mn.handle_timer(1.0)
    _, second = request_one(mn, 1.0)
    assert second.identification != first.identification  # timestamps: a new ID per copy
    mn.receive_datagram(fa_timeout(first), (FA1, 434), HOA, 1.2)
    assert not of_type(drain(mn), RegistrationDenied)
    assert mn.state is MnState.REGISTERING
    assert send_times(mn, 8.0) == [3.0, 7.0]
    mn.receive_datagram(signed_reply(second), (FA1, 434), HOA, 8.1)  # the retransmission's answer
    assert mn.state is MnState.REGISTERED


def test_78_for_the_latest_copy_retransmits_on_schedule_not_after_the_maximum_rfc5944_3_6_3() -> None:
    """The FA's 78 after three unanswered copies (its pending timeout runs from the first, §3.7.1): the
    next copy goes when the doubling schedule says (15 s), not 16 s after the 78 (23.5 s)."""
    mn = make_mn()
    mn.link_changed(True, None, 0.0)
    hear(mn, advert(lifetime=60), FA1, 0.0)  # FA1 stays for the whole test
    request_one(mn, 0.0)
    latest: list[RegistrationRequest] = []

    def at(now: float) -> None:
        if now == 7.0:
            mn.receive_datagram(fa_timeout(latest[-1]), (FA1, 434), HOA, 7.5)

    def recording(until: float) -> list[float]:
        times: list[float] = []
        now = 0.0
        while (deadline := mn.get_timer()) is not None and deadline <= until:
            now = max(now, deadline)
            mn.handle_timer(now)
            sent = requests(mn, now)
            latest.extend(request for _, request in sent)
            times += [now] * len(sent)
            at(now)
        return times

    assert recording(20.0) == [1.0, 3.0, 7.0, 15.0]
    assert mn.counters["fa_timeouts"] == 1
