"""Mobile node (co-located CoA) on a fake clock (RFC 5944 §3.6, §5.7; RFC 3024 §3.2; RFC 5454 §3.5, §3.7.1).

The home agent is played by hand: tests decode what the MN sends and answer with signed replies.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from ipaddress import IPv4Address, IPv6Address, IPv6Interface, IPv6Network
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.mip.common.bindings import TunnelTarget
from agents.mip.common.config import Encapsulation, MobileNodeConfig, ReplayProtection
from agents.mip.common.events import (
    ArpOwner,
    AuthenticationFailed,
    ClockResynchronised,
    DatagramDiscarded,
    Deregistered,
    GratuitousArpRequested,
    Ipv4OnlyFallback,
    Ipv6AddressAdded,
    Ipv6AddressRemoved,
    Ipv6RouteAdded,
    Ipv6RouteRemoved,
    MobileNodeEvent,
    OutgoingDatagram,
    PrefixAccepted,
    PrefixRejected,
    RegistrationAccepted,
    RegistrationDenied,
    RegistrationExpired,
    TunnelDown,
    TunnelUp,
)
from agents.mip.common.states import IllegalTransition, MnTrigger
from agents.mip.mn.mobile_node import MnState, MobileNode
from agents.mip.wire import identification
from agents.mip.wire.auth import SecurityAssociation, append_authentication, verify_with
from agents.mip.wire.codes import ExtensionType, PrefixReplyCode, RegistrationFlag, ReplyCode
from agents.mip.wire.dsmip import PrefixReply, PrefixRequest, TunnelingMode
from agents.mip.wire.extensions import NaiExtension
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest

F = RegistrationFlag
KEY = bytes(range(16))
SPI = 0x100
HA = IPv4Address("192.0.2.1")
HOA = IPv4Address("192.0.2.10")
COA = IPv4Address("198.51.100.5")
COA2 = IPv4Address("203.0.113.7")
P1 = IPv6Network("2001:db8:10:1::/64")
P2 = IPv6Network("2001:db8:10:2::/64")
LINK_LOCAL = IPv6Address("fe80::c000:20a")
WALL = 1_700_000_000.0


def make_mn(skew: float = 0.0, **changes: Any) -> MobileNode:
    config = dataclasses.replace(MobileNodeConfig(HOA, HA, SPI, KEY, lifetime=100), **changes)
    return MobileNode(config, wall_clock_offset=WALL + skew, rng=random.Random(3))


def sent(mn: MobileNode, now: float) -> list[tuple[OutgoingDatagram, RegistrationRequest]]:
    return [(out, RegistrationRequest.decode(out.payload)) for out in mn.datagrams_to_send(now)]


def sent_one(mn: MobileNode, now: float) -> RegistrationRequest:
    [(_, request)] = sent(mn, now)
    return request


def drain(mn: MobileNode) -> list[MobileNodeEvent]:
    events = []
    while (event := mn.next_event()) is not None:
        events.append(event)
    return events


def of_type(events: list[MobileNodeEvent], kind: type[Any]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def reply_to(
    request: RegistrationRequest,
    code: int = 0,
    lifetime: int | None = None,
    prefix_replies: tuple[PrefixReply, ...] | None = None,
    identification_value: int | None = None,
    key: bytes = KEY,
) -> bytes:
    """A signed reply; by default it accepts every Prefix Request with code 0."""
    if prefix_replies is None:
        prefix_replies = tuple(PrefixReply.answering(item, 0) for item in request.prefix_requests)
    reply = RegistrationReply(
        code,
        request.lifetime if lifetime is None else lifetime,
        request.home_address,
        request.home_agent,
        request.identification if identification_value is None else identification_value,
        prefix_replies,
    )
    return append_authentication(
        reply.encode(), ExtensionType.MOBILE_HOME_AUTH, SecurityAssociation(SPI, key)
    )


def answer(mn: MobileNode, raw: bytes, now: float) -> list[MobileNodeEvent]:
    mn.receive_datagram(raw, (HA, 434), COA, now)
    return drain(mn)


def registered(mn: MobileNode, now: float = 0.0, **reply_kwargs: Any) -> RegistrationRequest:
    """Attach at COA, answer the first request; returns that request."""
    mn.link_changed(True, COA, now)
    request = sent_one(mn, now)
    answer(mn, reply_to(request, **reply_kwargs), now)
    assert mn.state is MnState.REGISTERED
    return request


# -- the request (RFC 5944 §3.6.1, RFC 3024 §3.2, RFC 5454 §3.1) ----------------------------------


def test_link_up_sends_signed_request_from_care_of_rfc5944_3_6_1_1() -> None:
    mn = make_mn(nai="mn1@example.test", prefixes=(P1,), request_tunneling_mode=True)
    mn.link_changed(True, COA, 0.0)
    [(out, request)] = sent(mn, 0.0)
    assert (out.destination, out.port, out.source, out.ttl) == (HA, 434, COA, 255)  # TTL: RFC 3024 §3.2
    assert request.flags == F.D | F.T and request.lifetime == 100
    assert (request.home_address, request.home_agent, request.care_of_address) == (HOA, HA, COA)
    assert verify_with(out.payload, ExtensionType.MOBILE_HOME_AUTH, SecurityAssociation(SPI, KEY))
    kinds = [type(extension) for extension in request.extensions]
    assert kinds[:3] == [NaiExtension, PrefixRequest, TunnelingMode]
    assert request.extensions[-1].type == ExtensionType.MOBILE_HOME_AUTH
    assert mn.state is MnState.REGISTERING


@pytest.mark.parametrize(("encapsulation", "flag"), [(Encapsulation.GRE, F.G), (Encapsulation.MINIMAL, F.M)])
def test_encapsulation_and_s_flags_rfc5944_3_3(encapsulation: Encapsulation, flag: RegistrationFlag) -> None:
    mn = make_mn(encapsulation=encapsulation, simultaneous_bindings=True, reverse_tunnel=False)
    mn.link_changed(True, COA, 0.0)
    assert sent_one(mn, 0.0).flags == F.D | F.S | flag


def test_link_local_bootstrap_request_rfc5454_3_7_1() -> None:
    mn = make_mn(link_local_bootstrap=True, prefixes=(P1,))
    mn.link_changed(True, COA, 0.0)
    first, second = sent_one(mn, 0.0).prefix_requests
    assert (first.prefix_length, first.prefix) == (255, LINK_LOCAL)
    assert second.network == P1


def test_tunneling_mode_only_with_prefixes_rfc5454_3_5() -> None:
    mn = make_mn(request_tunneling_mode=True)
    mn.link_changed(True, COA, 0.0)
    assert sent_one(mn, 0.0).tunneling_modes == ()


# -- retransmission (RFC 5944 §3.6.3) -----------------------------------------------------------------


def test_retransmission_starts_at_one_second_doubles_and_caps_rfc5944_3_6_3() -> None:
    mn = make_mn(retransmit_initial=1.0, retransmit_max=8.0)
    mn.link_changed(True, COA, 0.0)
    times, idents = [0.0], [sent_one(mn, 0.0).identification]
    for _ in range(6):
        deadline = mn.get_timer()
        assert deadline is not None
        mn.handle_timer(deadline)
        times.append(deadline)
        idents.append(sent_one(mn, deadline).identification)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert idents == sorted(set(idents))  # timestamps: a new, increasing ID per copy (§5.7)


def test_retransmission_cap_is_at_most_the_requested_lifetime_rfc5944_3_6_3() -> None:
    mn = make_mn(lifetime=3, retransmit_max=60.0)
    mn.link_changed(True, COA, 0.0)
    sent(mn, 0.0)
    now, gaps = 0.0, []
    for _ in range(4):
        deadline = mn.get_timer()
        assert deadline is not None
        gaps.append(deadline - now)
        mn.handle_timer(deadline)
        sent(mn, deadline)
        now = deadline
    assert gaps == [1.0, 2.0, 3.0, 3.0]


def test_nonce_mode_resends_the_same_request_rfc5944_3_6_3() -> None:
    mn = make_mn(replay_protection=ReplayProtection.NONCE)
    mn.link_changed(True, COA, 0.0)
    [(first, _)] = sent(mn, 0.0)
    mn.handle_timer(1.0)
    [(second, _)] = sent(mn, 1.0)
    assert first.payload == second.payload


def test_handle_timer_early_does_nothing() -> None:
    mn = make_mn()
    mn.link_changed(True, COA, 0.0)
    sent(mn, 0.0)
    mn.handle_timer(0.5)
    assert sent(mn, 0.5) == []


# -- replies and renewal (RFC 5944 §3.6.2, §3.6.1.2) ---------------------------------------------------


def test_accepted_reply_brings_tunnel_up_rfc5944_3_6_2_2() -> None:
    mn = make_mn()
    mn.link_changed(True, COA, 0.0)
    request = sent_one(mn, 0.0)
    drain(mn)
    events = answer(mn, reply_to(request), 0.2)
    assert of_type(events, RegistrationAccepted) == [RegistrationAccepted(COA, 100, 0)]
    assert of_type(events, TunnelUp) == [TunnelUp(COA, HA, HOA, Encapsulation.IP_IN_IP, True)]
    assert mn.state is MnState.REGISTERED


@pytest.mark.parametrize(("granted", "used"), [(50, 50), (500, 100)])
def test_lifetime_is_the_smaller_of_request_and_reply_rfc5944_3_4(granted: int, used: int) -> None:
    mn = make_mn(renewal_fraction=0.5)
    registered(mn, lifetime=granted)
    assert mn.bindings(0.0)[0]["lifetime"] == used
    assert mn.get_timer() == used * 0.5


def test_lifetime_runs_from_when_the_answered_copy_was_sent_rfc5944_3_6_1_2() -> None:
    mn = make_mn(replay_protection=ReplayProtection.NONCE)
    mn.link_changed(True, COA, 0.0)
    request = sent_one(mn, 0.0)
    mn.handle_timer(1.0)
    sent(mn, 1.0)  # nonce mode: the same request again
    answer(mn, reply_to(request), 1.5)
    assert mn.bindings(1.5)[0]["remaining"] == 98.5  # 100 s from t=0, not from t=1


def test_renewal_before_expiry_then_expiry_when_unanswered_rfc5944_3_6_1_2() -> None:
    mn = make_mn(renewal_fraction=0.75, prefixes=(P1,))
    registered(mn)
    drain(mn)
    assert mn.get_timer() == 75.0
    mn.handle_timer(75.0)
    assert sent_one(mn, 75.0).lifetime == 100 and mn.state is MnState.RENEWING
    now = 75.0
    while (deadline := mn.get_timer()) is not None and deadline < 100.0:
        mn.handle_timer(deadline)
        sent(mn, deadline)
        now = deadline
    assert mn.get_timer() == 100.0 and now < 100.0
    mn.handle_timer(100.0)
    events = drain(mn)
    assert of_type(events, RegistrationExpired) == [RegistrationExpired(COA)]
    assert of_type(events, TunnelDown) == [TunnelDown(COA, "expired")]
    assert of_type(events, Ipv6AddressRemoved) and of_type(events, Ipv6RouteRemoved)
    assert mn.state is MnState.REGISTERING and mn.get_timer() is not None


def test_renewal_answer_keeps_tunnel_and_addresses() -> None:
    mn = make_mn(prefixes=(P1,))
    registered(mn)
    drain(mn)
    mn.handle_timer(75.0)
    events = answer(mn, reply_to(sent_one(mn, 75.0)), 75.1)
    assert of_type(events, RegistrationAccepted) and not of_type(events, TunnelUp)
    assert not of_type(events, Ipv6AddressAdded) and not of_type(events, PrefixAccepted)
    assert mn.get_timer() == pytest.approx(75.0 + 75.0)


def test_denied_reply_is_reported_and_retried_later_rfc5944_3_6_2_3() -> None:
    mn = make_mn(retransmit_max=16.0)
    mn.link_changed(True, COA, 0.0)
    events = answer(mn, reply_to(sent_one(mn, 0.0), code=ReplyCode.HA_ENCAPSULATION_UNAVAILABLE), 0.1)
    assert of_type(events, RegistrationDenied) == [RegistrationDenied(COA, 139)]
    assert mn.get_timer() == pytest.approx(16.1) and mn.state is MnState.REGISTERING


def test_accept_with_zero_lifetime_leaves_no_binding_rfc5944_3_4() -> None:
    mn = make_mn(retransmit_max=8.0)
    registered(mn)
    drain(mn)
    mn.handle_timer(75.0)
    events = answer(mn, reply_to(sent_one(mn, 75.0), lifetime=0), 75.1)
    assert of_type(events, TunnelDown) and mn.state is MnState.RENEWING
    assert mn.bindings(75.1) == [] and mn.get_timer() == pytest.approx(83.1)


def test_reply_failing_authentication_is_ignored_rfc5944_3_6_2_1() -> None:
    mn = make_mn()
    mn.link_changed(True, COA, 0.0)
    events = answer(mn, reply_to(sent_one(mn, 0.0), key=bytes(16)), 0.1)
    assert of_type(events, AuthenticationFailed) and mn.state is MnState.REGISTERING


def test_reply_with_other_low_bits_is_discarded_rfc5944_5_7() -> None:
    mn = make_mn()
    mn.link_changed(True, COA, 0.0)
    request = sent_one(mn, 0.0)
    events = answer(mn, reply_to(request, identification_value=request.identification ^ 1), 0.1)
    assert of_type(events, DatagramDiscarded) and mn.state is MnState.REGISTERING


def test_late_duplicate_reply_is_discarded() -> None:
    mn = make_mn()
    request = registered(mn)
    events = answer(mn, reply_to(request), 0.5)
    assert [type(event) for event in events] == [DatagramDiscarded]


# -- identification resync (RFC 5944 §5.7) -------------------------------------------------------------


def test_133_resynchronises_timestamp_and_resends_rfc5944_5_7() -> None:
    mn = make_mn(skew=100.0)  # the MN's clock is 100 s ahead of the HA's
    mn.link_changed(True, COA, 0.0)
    request = sent_one(mn, 0.0)
    ha_time = identification.mismatch_reply_identification(request.identification, WALL + 0.2)
    events = answer(mn, reply_to(request, code=133, lifetime=0, identification_value=ha_time), 0.2)
    [resync] = of_type(events, ClockResynchronised)
    assert resync.offset == pytest.approx(-100.2, abs=1.0)
    assert mn.get_timer() == 1.0  # never two requests less than 1 s apart (RFC 5944 §3.6.3)
    mn.handle_timer(1.0)
    fresh = sent_one(mn, 1.0)
    assert abs(identification.identification_time(fresh.identification) - (WALL + 1.0)) < 1.5
    assert fresh.identification < request.identification  # allowed: the HA recorded none of them


def test_133_for_a_stale_reordered_copy_does_not_resync_rfc5944_5_7() -> None:
    mn = make_mn()
    mn.link_changed(True, COA, 0.0)
    first = sent_one(mn, 0.0)
    mn.handle_timer(1.0)
    second = sent_one(mn, 1.0)
    # The HA took the second copy first, then refused the older first copy as not increasing.
    refused = identification.mismatch_reply_identification(first.identification, WALL + 1.2)
    events = answer(mn, reply_to(first, code=133, lifetime=0, identification_value=refused), 1.2)
    assert not of_type(events, ClockResynchronised) and mn.status(1.2)["clock_correction"] == 0.0
    assert of_type(answer(mn, reply_to(second), 1.3), RegistrationAccepted)


def test_133_with_wrong_low_bits_does_not_resync_rfc5944_5_7() -> None:
    mn = make_mn(skew=100.0)
    mn.link_changed(True, COA, 0.0)
    request = sent_one(mn, 0.0)
    bogus = identification.mismatch_reply_identification(request.identification ^ 0xFF, WALL)
    events = answer(mn, reply_to(request, code=133, identification_value=bogus), 0.2)
    assert not of_type(events, ClockResynchronised)


def test_133_in_nonce_mode_adopts_the_nonce_rfc5944_5_7() -> None:
    mn = make_mn(replay_protection=ReplayProtection.NONCE)
    mn.link_changed(True, COA, 0.0)
    request = sent_one(mn, 0.0)
    nonce_reply = identification.nonce_reply_identification(0xCAFEBABE, request.identification)
    events = answer(mn, reply_to(request, code=133, identification_value=nonce_reply), 0.1)
    assert of_type(events, ClockResynchronised)[0].nonce == 0xCAFEBABE
    mn.handle_timer(1.0)
    assert sent_one(mn, 1.0).identification >> 32 == 0xCAFEBABE


# -- per-prefix outcomes (RFC 5454 §3.5) ---------------------------------------------------------------


def test_prefix_to_home_address_and_to_care_of_rfc5454_3_5() -> None:
    mn = make_mn(prefixes=(P1, P2), request_tunneling_mode=True)
    mn.link_changed(True, COA, 0.0)
    request = sent_one(mn, 0.0)
    first, second = request.prefix_requests
    replies = (PrefixReply.answering(first, 0), PrefixReply.answering(second, 1))
    events = answer(mn, reply_to(request, prefix_replies=replies), 0.1)
    assert of_type(events, PrefixAccepted) == [
        PrefixAccepted(P1, TunnelTarget.HOME_ADDRESS, False, 0),
        PrefixAccepted(P2, TunnelTarget.CARE_OF, False, 1),
    ]
    assert of_type(events, Ipv6AddressAdded) == [
        Ipv6AddressAdded(IPv6Interface("2001:db8:10:1::c000:20a/128"), TunnelTarget.HOME_ADDRESS),
        Ipv6AddressAdded(IPv6Interface("2001:db8:10:2::c000:20a/128"), TunnelTarget.CARE_OF),
    ]
    assert of_type(events, Ipv6RouteAdded) == [Ipv6RouteAdded(IPv6Network("::/0"), TunnelTarget.HOME_ADDRESS)]


def test_rejected_and_missing_prefix_replies_are_rejections_rfc5454_3_5() -> None:
    mn = make_mn(prefixes=(P1, P2))
    mn.link_changed(True, COA, 0.0)
    request = sent_one(mn, 0.0)
    replies = (PrefixReply.answering(request.prefix_requests[0], PrefixReplyCode.REJECTED_ADMIN),)
    events = answer(mn, reply_to(request, prefix_replies=replies), 0.1)
    assert of_type(events, PrefixRejected) == [PrefixRejected(P1, False, 9), PrefixRejected(P2, False, None)]
    assert not of_type(events, Ipv6AddressAdded) and not of_type(events, Ipv4OnlyFallback)
    assert mn.state is MnState.REGISTERED  # prefix rejections do not reject the registration


def test_no_prefix_replies_at_all_falls_back_to_ipv4_only_rfc5454_3_5() -> None:
    mn = make_mn(prefixes=(P1,))
    mn.link_changed(True, COA, 0.0)
    events = answer(mn, reply_to(sent_one(mn, 0.0), prefix_replies=()), 0.1)
    assert of_type(events, Ipv4OnlyFallback) == [Ipv4OnlyFallback()]
    assert not of_type(events, PrefixRejected) and not of_type(events, Ipv6AddressAdded)
    assert mn.status(0.1)["ipv4_only"] is True and mn.state is MnState.REGISTERED
    mn.handle_timer(75.0)
    events = answer(mn, reply_to(sent_one(mn, 75.0)), 75.1)  # the HA now answers the prefix
    assert of_type(events, PrefixAccepted) and mn.status(75.1)["ipv4_only"] is False


def test_reply_for_an_unrequested_prefix_is_ignored_rfc5454_3_5() -> None:
    mn = make_mn(prefixes=(P1,))
    mn.link_changed(True, COA, 0.0)
    request = sent_one(mn, 0.0)
    stray = PrefixReply.answering(PrefixRequest.for_network(P2), 0)
    events = answer(mn, reply_to(request, prefix_replies=(stray,)), 0.1)
    assert of_type(events, PrefixRejected) == [PrefixRejected(P1, False, None)]


def test_mode_change_moves_the_address_to_the_other_tunnel_rfc5454_3_5() -> None:
    mn = make_mn(prefixes=(P1,))
    registered(mn)
    drain(mn)
    mn.handle_timer(75.0)
    request = sent_one(mn, 75.0)
    to_care_of = (PrefixReply.answering(request.prefix_requests[0], 1),)
    events = answer(mn, reply_to(request, prefix_replies=to_care_of), 75.1)
    address = IPv6Interface("2001:db8:10:1::c000:20a/128")
    assert Ipv6AddressRemoved(address, TunnelTarget.HOME_ADDRESS) in events
    assert Ipv6AddressAdded(address, TunnelTarget.CARE_OF) in events


def test_link_local_accepted_gives_tunnel_link_local_address_rfc5454_3_7_1() -> None:
    mn = make_mn(link_local_bootstrap=True)
    registered(mn)
    assert mn.bindings(0.0)[0]["ipv6_addresses"] == ["fe80::c000:20a/64"]


def test_set_prefixes_reregisters_and_drops_omitted_rfc5454_3_8() -> None:
    mn = make_mn(prefixes=(P1,))
    registered(mn)
    drain(mn)
    mn.set_prefixes((P2,), 5.0)
    request = sent_one(mn, 5.0)
    assert [item.network for item in request.prefix_requests] == [P2]
    events = answer(mn, reply_to(request), 5.1)
    assert (
        Ipv6AddressRemoved(IPv6Interface("2001:db8:10:1::c000:20a/128"), TunnelTarget.HOME_ADDRESS) in events
    )
    assert Ipv6AddressAdded(IPv6Interface("2001:db8:10:2::c000:20a/128"), TunnelTarget.HOME_ADDRESS) in events
    with pytest.raises(ValueError):
        mn.set_prefixes((IPv6Network("fe80::/64"),), 6.0)


# -- moves, home, deregistration, shutdown (RFC 5944 §3.6.1.2, §4.6) --------------------------------------


def test_move_registers_the_new_care_of() -> None:
    mn = make_mn()
    registered(mn)
    drain(mn)
    mn.link_changed(False, None, 10.0)
    assert of_type(drain(mn), TunnelDown) == [TunnelDown(COA, "link-down")]
    assert mn.state is MnState.IDLE and sent(mn, 10.0) == []
    mn.link_changed(True, COA2, 10.5)
    request = sent_one(mn, 10.5)
    assert request.care_of_address == COA2 and mn.state is MnState.REGISTERING
    events = answer(mn, reply_to(request), 10.6)
    assert of_type(events, TunnelUp)[0].care_of == COA2


def test_returning_home_deregisters_everything_rfc5944_3_6_1_2_and_4_6() -> None:
    mn = make_mn(prefixes=(P1,))
    registered(mn)
    drain(mn)
    mn.link_changed(True, HOA, 20.0)
    [(out, request)] = sent(mn, 20.0)
    assert (request.lifetime, request.care_of_address, out.source) == (0, HOA, HOA)
    events = drain(mn)
    assert GratuitousArpRequested(HOA, ArpOwner.MOBILE_NODE) in events
    assert TunnelDown(COA, "home") in events
    events = answer(mn, reply_to(request), 20.1)
    assert of_type(events, Deregistered) == [Deregistered(HOA, True)]
    assert mn.state is MnState.IDLE and mn.status(20.1)["at_home"] is True


def test_deregister_command_one_care_of_or_all_rfc5944_3_6_1_2() -> None:
    mn = make_mn(prefixes=(P1,))
    registered(mn)
    drain(mn)
    assert mn.deregister(30.0)
    request = sent_one(mn, 30.0)
    assert (request.lifetime, request.care_of_address, request.prefix_requests) == (0, COA, ())
    events = answer(mn, reply_to(request), 30.1)
    assert of_type(events, TunnelDown) == [TunnelDown(COA, "deregistered")]
    assert of_type(events, Ipv6AddressRemoved) and mn.state is MnState.IDLE
    assert mn.get_timer() is None  # no renewal after a deregistration
    mn.register(31.0)
    answer(mn, reply_to(sent_one(mn, 31.0)), 31.1)
    assert mn.deregister(40.0, all_care_ofs=True)
    assert sent_one(mn, 40.0).care_of_address == HOA


def test_shutdown_deregisters_then_stops_rfc5944_3_6_1_2() -> None:
    mn = make_mn()
    registered(mn)
    mn.shutdown(50.0)
    request = sent_one(mn, 50.0)
    assert request.lifetime == 0 and not mn.is_stopped
    events = answer(mn, reply_to(request), 50.1)
    assert Deregistered(COA, True) in events and mn.is_stopped
    assert mn.get_timer() is None
    mn.link_changed(True, COA2, 51.0)
    assert sent(mn, 51.0) == []


def test_shutdown_gives_up_after_bounded_attempts() -> None:
    mn = make_mn(deregister_attempts=3)
    registered(mn)
    mn.shutdown(50.0)
    copies = len(sent(mn, 50.0))
    while (deadline := mn.get_timer()) is not None and not mn.is_stopped:
        mn.handle_timer(deadline)
        copies += len(sent(mn, deadline))
        if deadline > 200:
            break
    assert copies == 3 and mn.is_stopped
    assert Deregistered(COA, False) in drain(mn)


def shutdown_send_times(mn: MobileNode, start: float, deadline: float) -> tuple[list[float], float]:
    """Run a shutdown on the fake clock: when each deregistration copy went out, and when it stopped."""
    mn.shutdown(start, deadline=deadline)
    times = [start] * len(sent(mn, start))
    now = start
    while (timer := mn.get_timer()) is not None and not mn.is_stopped and timer < start + 100:
        now = timer
        mn.handle_timer(now)
        times += [now] * len(sent(mn, now))
    return times, now


@pytest.mark.parametrize(
    ("attempts", "window", "expected_times", "stopped_after"),
    [
        (3, 5.0, [0.0, 5 / 3, 10 / 3], 5.0),  # doubling (1+2+4 = 7 s) does not fit: evenly spread
        (3, 10.0, [0.0, 1.0, 3.0], 7.0),  # it fits: the usual backoff (RFC 5944 §3.6.3)
        (4, 4.0, [0.0, 1.0, 2.0, 3.0], 4.0),
        (5, 3.0, [0.0, 1.0, 2.0], 3.0),  # never closer than 1 s: only 3 fit, given up at the deadline
    ],
)
def test_shutdown_sends_the_configured_attempts_within_the_deadline_rfc5944_3_6_1_2(
    attempts: int, window: float, expected_times: list[float], stopped_after: float
) -> None:
    """RFC 5944 §3.6.1.2, §3.6.3: on shutdown all ``deregister_attempts`` copies go out before the stop
    deadline (as many as fit 1 s apart), and with no reply the machine gives up exactly at the deadline."""
    mn = make_mn(deregister_attempts=attempts)
    registered(mn, now=40.0)
    drain(mn)
    times, stopped_at = shutdown_send_times(mn, 50.0, 50.0 + window)
    assert times == pytest.approx([50.0 + t for t in expected_times])
    assert mn.is_stopped and stopped_at == pytest.approx(50.0 + stopped_after)
    assert Deregistered(COA, False) in drain(mn)


def test_shutdown_right_after_a_request_still_fits_every_attempt_rfc5944_3_6_3() -> None:
    """A request 0.5 s before SIGTERM delays the first copy by the 1 s minimum gap; the rest are spread over
    what is left, so all three still go out before the deadline."""
    mn = make_mn(deregister_attempts=3)
    registered(mn, now=49.5)
    times, stopped_at = shutdown_send_times(mn, 50.0, 55.0)
    assert times == pytest.approx([50.5, 52.0, 53.5]) and stopped_at == pytest.approx(55.0)


def test_shutdown_deadline_does_not_stop_a_confirmed_deregistration_early() -> None:
    mn = make_mn(deregister_attempts=3)
    registered(mn, now=40.0)
    mn.shutdown(50.0, deadline=55.0)
    request = sent_one(mn, 50.0)
    events = answer(mn, reply_to(request), 50.2)
    assert Deregistered(COA, True) in events and mn.is_stopped and mn.get_timer() is None


def test_shutdown_when_idle_stops_at_once() -> None:
    mn = make_mn()
    mn.shutdown(0.0)
    assert mn.is_stopped and sent(mn, 0.0) == []


def test_illegal_transition_raises() -> None:
    mn = make_mn()
    with pytest.raises(IllegalTransition):
        mn._transition(MnTrigger.ACCEPTED)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_fuzzed_replies_never_raise(noise: bytes) -> None:
    mn = make_mn(prefixes=(P1,))
    mn.link_changed(True, COA, 0.0)
    request = sent_one(mn, 0.0)
    for data in (noise, b"\x03" + noise, reply_to(request)[:20] + noise):
        mn.receive_datagram(data, (HA, 434), COA, 0.1)
    json.dumps(mn.status(0.1))
    json.dumps(mn.bindings(0.1))
