"""Home agent decisions on a fake clock (RFC 5944 §3.8, §3.6.1.2, §4.6, §5.7; RFC 3024 §4; RFC 5454 §3).

Every test drives :class:`HomeAgent` with hand-built, signed Registration Requests and checks the
reply code, the reply's extensions and the events; each names the RFC section it pins.
"""

from __future__ import annotations

import dataclasses
import json
import random
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.mip.common.bindings import TunnelTarget
from agents.mip.common.config import Encapsulation, HomeAgentConfig, MobileNodeAccount, ReplayProtection
from agents.mip.common.events import (
    ArpOwner,
    AuthenticationFailed,
    BindingAdded,
    BindingRemoved,
    BindingUpdated,
    GratuitousArpRequested,
    HomeAgentEvent,
    IdentificationRejected,
    MalformedDatagram,
    PrefixDeregistered,
    PrefixRegistered,
    ProxyArpStarted,
    ProxyArpStopped,
    RequestDenied,
)
from agents.mip.common.states import IllegalTransition, NodeTrigger
from agents.mip.ha.home_agent import HomeAgent, NodeState
from agents.mip.wire import identification
from agents.mip.wire.auth import SecurityAssociation, append_authentication, verify_with
from agents.mip.wire.codes import ExtensionType, PrefixReplyCode, RegistrationFlag, ReplyCode
from agents.mip.wire.dsmip import PrefixReply, PrefixRequest, TunnelingMode
from agents.mip.wire.extensions import Extension, NaiExtension, UnknownExtension
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest

F = RegistrationFlag
KEY = bytes(range(16))
OTHER_KEY = bytes(range(1, 17))
SPI = 0x100
HA = IPv4Address("192.0.2.1")
HOME_NET = IPv4Network("192.0.2.0/24")
HOA = IPv4Address("192.0.2.10")
HOA2 = IPv4Address("192.0.2.11")
COA = IPv4Address("198.51.100.5")
COA2 = IPv4Address("203.0.113.7")
ALLOWED = IPv6Network("2001:db8:10::/48")
P1 = IPv6Network("2001:db8:10:1::/64")
P2 = IPv6Network("2001:db8:10:2::/64")
LINK_LOCAL = IPv6Address("fe80::c000:20a")
WALL = 1_700_000_000.0  # wall-clock offset: unix time = now + WALL
SOURCE_PORT = 49152


def account(home: IPv4Address = HOA, **changes: Any) -> MobileNodeAccount:
    base = MobileNodeAccount(home, SPI, KEY, allowed_prefixes=(ALLOWED,))
    return dataclasses.replace(base, **changes)


def make_ha(**changes: Any) -> HomeAgent:
    accounts = changes.pop("mobile_nodes", (account(), account(HOA2, allowed_prefixes=(ALLOWED,))))
    config = dataclasses.replace(HomeAgentConfig(HA, HOME_NET, accounts), **changes)
    return HomeAgent(config, wall_clock_offset=WALL, rng=random.Random(7))


class Clock:
    """Fake monotonic clock plus a per-test Identification sequence that always increases."""

    def __init__(self) -> None:
        self.now = 100.0
        self._step = 0

    def ident(self, skew: float = 0.0) -> int:
        self._step += 1
        return identification.unix_to_ntp(WALL + self.now + skew) + self._step


@pytest.fixture
def clock() -> Clock:
    return Clock()


def rrq(
    clock: Clock,
    *,
    flags: RegistrationFlag = F.D | F.T,
    lifetime: int = 300,
    home: IPv4Address = HOA,
    agent: IPv4Address = HA,
    care_of: IPv4Address = COA,
    ident: int | None = None,
    extensions: tuple[Extension, ...] = (),
    key: bytes = KEY,
    spi: int = SPI,
    after_auth: tuple[Extension, ...] = (),
) -> bytes:
    """A Registration Request signed with MN-HA auth; ``after_auth`` goes after the authenticator."""
    request = RegistrationRequest(
        flags, lifetime, home, agent, care_of, clock.ident() if ident is None else ident, extensions
    )
    signed = append_authentication(
        request.encode(), ExtensionType.MOBILE_HOME_AUTH, SecurityAssociation(spi, key)
    )
    return signed + b"".join(extension.encode() for extension in after_auth)


def prefixes(*networks: IPv6Network, mode: bool = False) -> tuple[Extension, ...]:
    requests: tuple[Extension, ...] = tuple(PrefixRequest.for_network(network) for network in networks)
    return (*requests, TunnelingMode()) if mode else requests


def deliver(ha: HomeAgent, raw: bytes, clock: Clock, source: IPv4Address = COA) -> list[RegistrationReply]:
    ha.receive_datagram(raw, (source, SOURCE_PORT), HA, clock.now)
    return [RegistrationReply.decode(out.payload) for out in ha.datagrams_to_send(clock.now)]


def one_reply(ha: HomeAgent, raw: bytes, clock: Clock, source: IPv4Address = COA) -> RegistrationReply:
    replies = deliver(ha, raw, clock, source)
    assert len(replies) == 1, replies
    return replies[0]


def drain(ha: HomeAgent) -> list[HomeAgentEvent]:
    events = []
    while (event := ha.next_event()) is not None:
        events.append(event)
    return events


def of_type(events: list[HomeAgentEvent], kind: type[Any]) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def register(ha: HomeAgent, clock: Clock, **kwargs: Any) -> RegistrationReply:
    reply = one_reply(ha, rrq(clock, **kwargs), clock, kwargs.get("care_of", COA))
    return reply


# -- authentication (RFC 5944 §3.8.2.1) -------------------------------------------------------


def test_valid_request_is_accepted_with_signed_reply_rfc5944_3_8_2_1(clock: Clock) -> None:
    ha = make_ha()
    ha.receive_datagram(rrq(clock), (COA, SOURCE_PORT), HA, clock.now)
    [out] = ha.datagrams_to_send(clock.now)
    reply = RegistrationReply.decode(out.payload)
    assert reply.code == ReplyCode.ACCEPTED and reply.lifetime == 300
    assert verify_with(out.payload, ExtensionType.MOBILE_HOME_AUTH, SecurityAssociation(SPI, KEY))
    # RFC 5944 §3.4: the reply goes back to the request's source address and port, from port 434.
    assert (out.destination, out.port, out.source, out.source_port) == (COA, SOURCE_PORT, HA, 434)


def test_bad_authenticator_gets_131_rfc5944_3_8_2_1(clock: Clock) -> None:
    ha = make_ha()
    reply = one_reply(ha, rrq(clock, key=OTHER_KEY), clock)
    assert reply.code == ReplyCode.HA_MOBILE_NODE_FAILED_AUTHENTICATION
    assert of_type(drain(ha), AuthenticationFailed)
    assert ha.table.get(HOA) is None


def test_unknown_spi_gets_131_rfc5944_3_8_2_1(clock: Clock) -> None:
    ha = make_ha()
    assert one_reply(ha, rrq(clock, spi=0x200), clock).code == ReplyCode.HA_MOBILE_NODE_FAILED_AUTHENTICATION


def test_nai_mismatch_gets_131_rfc2794_2(clock: Clock) -> None:
    ha = make_ha(mobile_nodes=(account(nai="mn1@example.test"),))
    reply = one_reply(ha, rrq(clock, extensions=(NaiExtension("mn2@example.test"),)), clock)
    assert reply.code == ReplyCode.HA_MOBILE_NODE_FAILED_AUTHENTICATION
    assert one_reply(ha, rrq(clock, extensions=(NaiExtension("mn1@example.test"),)), clock).code == 0


def test_missing_mn_ha_extension_gets_131_rfc5944_3_8_2_1(clock: Clock) -> None:
    """No authorization-enabling extension: reject, reply 131, log a security exception."""
    ha = make_ha()
    request = RegistrationRequest(F.D, 300, HOA, HA, COA, clock.ident())
    assert one_reply(ha, request.encode(), clock).code == ReplyCode.HA_MOBILE_NODE_FAILED_AUTHENTICATION
    assert "no MN-HA" in of_type(drain(ha), AuthenticationFailed)[0].reason
    assert ha.table.get(HOA) is None


def test_two_mn_ha_extensions_get_131_rfc5944_3_8_2_1(clock: Clock) -> None:
    """Exactly one MN-HA extension: a valid request with a second one appended is rejected with 131."""
    ha = make_ha()
    valid = rrq(clock)
    doubled = valid + valid[-22:]  # the whole MN-HA extension again: type, length, SPI, authenticator
    assert one_reply(ha, doubled, clock).code == ReplyCode.HA_MOBILE_NODE_FAILED_AUTHENTICATION
    assert ha.table.get(HOA) is None


def test_unknown_home_address_is_silently_discarded_rfc5944_3_8_2_1(clock: Clock) -> None:
    ha = make_ha()
    assert deliver(ha, rrq(clock, home=IPv4Address("192.0.2.99")), clock) == []
    assert ha.counters["discarded"] == 1


def test_unknown_non_skippable_extension_discards_rfc5944_1_8(clock: Clock) -> None:
    ha = make_ha()
    assert deliver(ha, rrq(clock, after_auth=(UnknownExtension(100, b"\x00\x00"),)), clock) == []


def test_unknown_skippable_extension_is_ignored_rfc5944_1_8(clock: Clock) -> None:
    ha = make_ha()
    assert register(ha, clock, extensions=(UnknownExtension(200, b"xy"),)).code == ReplyCode.ACCEPTED


# -- identification (RFC 5944 §5.7) ---------------------------------------------------------------


def test_stale_timestamp_gets_133_with_ha_time_high_bits_rfc5944_5_7(clock: Clock) -> None:
    ha = make_ha()
    stale = clock.ident(skew=-60.0)
    reply = one_reply(ha, rrq(clock, ident=stale), clock)
    assert reply.code == ReplyCode.HA_IDENTIFICATION_MISMATCH
    assert reply.identification & 0xFFFFFFFF == stale & 0xFFFFFFFF
    assert reply.identification >> 32 == identification.unix_to_ntp(WALL + clock.now) >> 32
    assert of_type(drain(ha), IdentificationRejected) and ha.table.get(HOA) is None


def test_timestamp_within_tolerance_is_accepted_rfc5944_5_7(clock: Clock) -> None:
    assert register(make_ha(), clock, ident=clock.ident(skew=5.0)).code == ReplyCode.ACCEPTED
    strict = make_ha(timestamp_tolerance=3.0)
    assert register(strict, clock, ident=clock.ident(skew=5.0)).code == ReplyCode.HA_IDENTIFICATION_MISMATCH


def test_replayed_request_gets_133_rfc5944_5_7(clock: Clock) -> None:
    ha = make_ha()
    raw = rrq(clock)
    assert one_reply(ha, raw, clock).code == ReplyCode.ACCEPTED
    clock.now += 1
    assert one_reply(ha, raw, clock).code == ReplyCode.HA_IDENTIFICATION_MISMATCH


def test_nonce_mode_hands_out_and_checks_nonces_rfc5944_5_7(clock: Clock) -> None:
    ha = make_ha(replay_protection=ReplayProtection.NONCE)
    first = one_reply(ha, rrq(clock, ident=0x12345678), clock)
    assert first.code == ReplyCode.HA_IDENTIFICATION_MISMATCH
    assert first.identification & 0xFFFFFFFF == 0x12345678
    nonce = first.identification >> 32
    good = one_reply(ha, rrq(clock, ident=(nonce << 32) | 0xAAAA), clock)
    assert good.code == ReplyCode.ACCEPTED and good.identification & 0xFFFFFFFF == 0xAAAA
    assert good.identification >> 32 != nonce  # a fresh nonce in every reply
    replay = one_reply(ha, rrq(clock, ident=(nonce << 32) | 0xBBBB), clock)
    assert replay.code == ReplyCode.HA_IDENTIFICATION_MISMATCH


# -- validity (RFC 5944 §3.8.2.2, §3.8.3; RFC 3024 §4.3.1) ----------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"flags": F.D | F.M | F.G}, "both M and G"),
        ({"care_of": HOA}, "CoA = HoA with a lifetime"),
        ({"care_of": IPv4Address("0.0.0.0")}, "unspecified CoA"),
        ({"extensions": (*prefixes(P1), TunnelingMode(), TunnelingMode())}, "two Tunneling Modes"),
        ({"after_auth": prefixes(P1)}, "Prefix Request after MN-HA"),
    ],
)
def test_poorly_formed_requests_get_134_rfc5944_3_8_2_2(
    clock: Clock, kwargs: dict[str, Any], why: str
) -> None:
    ha = make_ha()
    reply = register(ha, clock, **kwargs)
    assert reply.code == ReplyCode.HA_POORLY_FORMED_REQUEST, why
    assert ha.table.get(HOA) is None
    [denied] = of_type(drain(ha), RequestDenied)
    assert denied.code == 134 and denied.reason


def test_broadcast_home_agent_field_gets_136_with_unicast_address_rfc5944_3_8_2_1(clock: Clock) -> None:
    ha = make_ha()
    reply = register(ha, clock, agent=HOME_NET.broadcast_address)
    assert reply.code == ReplyCode.HA_UNKNOWN_HOME_AGENT_ADDRESS and reply.home_agent == HA


def test_other_home_agent_address_is_discarded_rfc5944_3_8_2_1(clock: Clock) -> None:
    ha = make_ha()
    assert deliver(ha, rrq(clock, agent=IPv4Address("192.0.2.2")), clock) == []


def test_lifetime_is_capped_never_increased_rfc5944_3_8_3_1(clock: Clock) -> None:
    ha = make_ha(max_lifetime=1800)
    assert register(ha, clock, lifetime=5000).lifetime == 1800
    assert ha.get_timer() == clock.now + 1800
    assert register(ha, clock, lifetime=100).lifetime == 100


def test_infinite_lifetime_sets_no_timer_rfc5944_3_3(clock: Clock) -> None:
    ha = make_ha(max_lifetime=0xFFFF)
    assert register(ha, clock, lifetime=0xFFFF).lifetime == 0xFFFF
    assert ha.get_timer() is None


@pytest.mark.parametrize(
    ("flags", "expected"),
    [(F.D, Encapsulation.IP_IN_IP), (F.D | F.G, Encapsulation.GRE), (F.D | F.M, Encapsulation.MINIMAL)],
)
def test_encapsulation_choice_rfc5944_3_8_3(
    clock: Clock, flags: RegistrationFlag, expected: Encapsulation
) -> None:
    ha = make_ha()
    assert register(ha, clock, flags=flags).code == ReplyCode.ACCEPTED
    [added] = of_type(drain(ha), BindingAdded)
    assert added.encapsulation is expected


def test_unsupported_encapsulation_gets_139_rfc3024_4_3_1(clock: Clock) -> None:
    ha = make_ha(encapsulations=frozenset({Encapsulation.IP_IN_IP}))
    assert register(ha, clock, flags=F.D | F.G).code == ReplyCode.HA_ENCAPSULATION_UNAVAILABLE
    assert register(ha, clock, flags=F.D | F.M).code == ReplyCode.HA_ENCAPSULATION_UNAVAILABLE
    assert ha.table.get(HOA) is None


def test_reverse_tunnel_unavailable_gets_137_rfc3024_4_3_1(clock: Clock) -> None:
    ha = make_ha(reverse_tunnel_supported=False)
    assert register(ha, clock, flags=F.D | F.T).code == ReplyCode.HA_REVERSE_TUNNEL_UNAVAILABLE
    assert register(ha, clock, flags=F.D).code == ReplyCode.ACCEPTED


def test_reverse_tunnel_mandatory_gets_138_rfc3024_4_3_1(clock: Clock) -> None:
    ha = make_ha(reverse_tunnel_required=True)
    assert register(ha, clock, flags=F.D).code == ReplyCode.HA_REVERSE_TUNNEL_MANDATORY
    assert register(ha, clock, flags=F.D | F.T).code == ReplyCode.ACCEPTED
    [added] = of_type(drain(ha), BindingAdded)
    assert added.reverse_tunnel


# -- simultaneous bindings (RFC 5944 §3.6.1.3, §3.8.3) ---------------------------------------------


def test_s_flag_keeps_both_care_of_addresses_rfc5944_3_6_1_3(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock, flags=F.D | F.S)
    assert register(ha, clock, flags=F.D | F.S, care_of=COA2).code == ReplyCode.ACCEPTED
    binding = ha.table.get(HOA)
    assert binding is not None and {key.address for key in binding.care_ofs} == {COA, COA2}
    assert not of_type(drain(ha), BindingRemoved)


def test_s_flag_unsupported_replaces_and_answers_code_1_rfc5944_3_8_3(clock: Clock) -> None:
    ha = make_ha(simultaneous_bindings=False)
    register(ha, clock, flags=F.D | F.S)
    drain(ha)
    assert (
        register(ha, clock, flags=F.D | F.S, care_of=COA2).code == ReplyCode.ACCEPTED_NO_SIMULTANEOUS_BINDINGS
    )
    binding = ha.table.get(HOA)
    assert binding is not None and [key.address for key in binding.care_ofs] == [COA2]
    [removed] = of_type(drain(ha), BindingRemoved)
    assert (removed.care_of.address, removed.reason) == (COA, "replaced")


def test_without_s_flag_new_care_of_replaces_old_rfc5944_3_6_1_3(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock)
    drain(ha)
    assert register(ha, clock, care_of=COA2).code == ReplyCode.ACCEPTED
    binding = ha.table.get(HOA)
    assert binding is not None and [key.address for key in binding.care_ofs] == [COA2]
    kinds = [type(event).__name__ for event in drain(ha) if isinstance(event, BindingAdded | BindingRemoved)]
    assert kinds == ["BindingAdded", "BindingRemoved"]  # the new tunnel exists before the old one goes


def test_too_many_simultaneous_bindings_gets_135_rfc5944_3_4(clock: Clock) -> None:
    ha = make_ha(max_bindings_per_node=1)
    register(ha, clock, flags=F.D | F.S)
    assert (
        register(ha, clock, flags=F.D | F.S, care_of=COA2).code == ReplyCode.HA_TOO_MANY_SIMULTANEOUS_BINDINGS
    )
    assert register(ha, clock, flags=F.D | F.S).code == ReplyCode.ACCEPTED  # same CoA refreshes


# -- expiry, deregistration, ARP (RFC 5944 §3.8.1, §3.6.1.2, §4.6) ------------------------------------


def test_binding_expires_at_its_lifetime_rfc5944_3_8_1(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock, lifetime=30, extensions=prefixes(P1))
    drain(ha)
    assert ha.get_timer() == clock.now + 30
    ha.handle_timer(clock.now + 29.9)
    assert drain(ha) == [] and ha.node_state(HOA) is NodeState.AWAY
    ha.handle_timer(clock.now + 30)
    events = drain(ha)
    assert [type(event) for event in events] == [BindingRemoved, PrefixDeregistered, ProxyArpStopped]
    assert events[0].reason == "expired" and ha.table.get(HOA) is None and ha.get_timer() is None


def test_refresh_extends_expiry_rfc5944_3_8_1(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock, lifetime=30)
    clock.now += 20
    register(ha, clock, lifetime=30)
    assert isinstance(of_type(drain(ha), BindingUpdated)[0], BindingUpdated)
    ha.handle_timer(clock.now + 15)
    assert ha.table.get(HOA) is not None


def test_proxy_arp_and_gratuitous_arp_on_leaving_home_rfc5944_4_6(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock)
    events = drain(ha)
    assert of_type(events, ProxyArpStarted) == [ProxyArpStarted(HOA)]
    assert of_type(events, GratuitousArpRequested) == [GratuitousArpRequested(HOA, ArpOwner.HOME_AGENT)]
    register(ha, clock, care_of=COA2)
    assert not of_type(drain(ha), ProxyArpStarted)  # already away: no second start


def test_deregistration_of_one_care_of_keeps_the_others_rfc5944_3_6_1_2(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock, flags=F.D | F.S)
    register(ha, clock, flags=F.D | F.S, care_of=COA2)
    drain(ha)
    reply = register(ha, clock, lifetime=0, care_of=COA2)
    assert (reply.code, reply.lifetime) == (ReplyCode.ACCEPTED, 0)
    binding = ha.table.get(HOA)
    assert binding is not None and [key.address for key in binding.care_ofs] == [COA]
    assert not of_type(drain(ha), ProxyArpStopped) and ha.node_state(HOA) is NodeState.AWAY


def test_deregistering_last_care_of_stops_proxy_arp_rfc5944_3_6_1_2(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock, extensions=prefixes(P1))
    drain(ha)
    register(ha, clock, lifetime=0)
    events = drain(ha)
    assert of_type(events, ProxyArpStopped) and of_type(events, PrefixDeregistered)
    assert not of_type(events, GratuitousArpRequested)
    assert ha.table.prefix_owner(P1) is None


def test_deregistration_with_home_address_removes_everything_rfc5944_3_6_1_2(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock, flags=F.D | F.S, extensions=prefixes(P1))
    register(ha, clock, flags=F.D | F.S, care_of=COA2, extensions=prefixes(P1))
    drain(ha)
    reply = one_reply(ha, rrq(clock, lifetime=0, care_of=HOA), clock, source=HOA)
    assert reply.code == ReplyCode.ACCEPTED
    events = drain(ha)
    assert len(of_type(events, BindingRemoved)) == 2 and of_type(events, ProxyArpStopped)
    # Back home: the MN's own link-layer address is announced again (RFC 5944 §4.6).
    assert GratuitousArpRequested(HOA, ArpOwner.MOBILE_NODE) in events
    assert ha.table.get(HOA) is None and ha.get_timer() is None


def test_deregistration_without_binding_is_accepted_rfc5944_3_8_3(clock: Clock) -> None:
    ha = make_ha()
    assert register(ha, clock, lifetime=0).code == ReplyCode.ACCEPTED
    assert ha.node_state(HOA) is NodeState.HOME


def test_illegal_transition_raises() -> None:
    ha = make_ha()
    with pytest.raises(IllegalTransition):
        ha._transition(HOA, NodeTrigger.CARE_OF_REMOVED)


# -- DSMIPv4 explicit mode (RFC 5454 §3.2-§3.8) ------------------------------------------------------


def replies_by_prefix(reply: RegistrationReply) -> dict[tuple[int, IPv6Address], int]:
    return {(item.prefix_length, item.prefix): item.code for item in reply.prefix_replies}


def test_one_prefix_reply_per_request_same_prefix_rfc5454_3_3(clock: Clock) -> None:
    ha = make_ha()
    reply = register(ha, clock, extensions=prefixes(P1, P2, P1))
    assert len(reply.prefix_replies) == 2
    assert replies_by_prefix(reply) == {(64, P1.network_address): 0, (64, P2.network_address): 0}


def test_tunneling_mode_with_colocated_care_of_gives_code_1_rfc5454_3_3_2(clock: Clock) -> None:
    ha = make_ha()
    reply = register(ha, clock, flags=F.D | F.T, extensions=prefixes(P1, mode=True))
    assert [item.code for item in reply.prefix_replies] == [PrefixReplyCode.ACCEPTED_TO_COA]
    assert ha.table.get(HOA).prefixes[P1].target is TunnelTarget.CARE_OF  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("flags", "honour", "why"),
    [
        (F.T, True, "no D flag: FA care-of address (RFC 5454 §3.5)"),
        (F.D | F.T | F.M, True, "minimal encapsulation cannot carry IPv6 (RFC 5454 §3.3.2)"),
        (F.D | F.T, False, "HA configured to ignore Tunneling Mode (RFC 5454 §3.3.2)"),
    ],
)
def test_tunneling_mode_falls_back_to_home_address_rfc5454_3_3_2(
    clock: Clock, flags: RegistrationFlag, honour: bool, why: str
) -> None:
    ha = make_ha(honour_tunneling_mode=honour)
    reply = register(ha, clock, flags=flags, extensions=prefixes(P1, mode=True))
    assert [item.code for item in reply.prefix_replies] == [PrefixReplyCode.ACCEPTED_TO_HOA], why


def test_no_tunneling_mode_gives_code_0_rfc5454_3_3_2(clock: Clock) -> None:
    reply = register(make_ha(), clock, extensions=prefixes(P1))
    assert [item.code for item in reply.prefix_replies] == [PrefixReplyCode.ACCEPTED_TO_HOA]


def test_prefix_outside_policy_gets_code_9_rfc5454_3_7(clock: Clock) -> None:
    ha = make_ha()
    outside = IPv6Network("2001:db8:99::/64")
    reply = register(ha, clock, extensions=prefixes(P1, outside))
    assert replies_by_prefix(reply)[(64, outside.network_address)] == PrefixReplyCode.REJECTED_ADMIN
    assert replies_by_prefix(reply)[(64, P1.network_address)] == PrefixReplyCode.ACCEPTED_TO_HOA
    assert reply.code == ReplyCode.ACCEPTED  # a prefix reject does not reject the registration


def test_overlapping_prefix_of_another_mn_is_refused_rfc5454_3_3(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock, extensions=prefixes(P1))
    covering = IPv6Network("2001:db8:10::/56")  # contains P1
    reply = register(ha, clock, home=HOA2, care_of=COA2, extensions=prefixes(covering))
    assert [item.code for item in reply.prefix_replies] == [PrefixReplyCode.REJECTED_UNSPECIFIED]
    assert ha.table.prefix_owner(covering) == HOA
    register(ha, clock, lifetime=0)  # the owner leaves: the prefix is free again
    reply = register(ha, clock, home=HOA2, care_of=COA2, extensions=prefixes(covering))
    assert [item.code for item in reply.prefix_replies] == [PrefixReplyCode.ACCEPTED_TO_HOA]


def test_overlap_within_one_mn_is_allowed_rfc5454_3_3(clock: Clock) -> None:
    reply = register(make_ha(), clock, extensions=prefixes(P1, IPv6Network("2001:db8:10::/56")))
    assert all(item.code == 0 for item in reply.prefix_replies)


def test_reregistration_omitting_a_prefix_deregisters_it_rfc5454_3_8(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock, extensions=prefixes(P1, P2))
    drain(ha)
    register(ha, clock, extensions=prefixes(P1))
    [gone] = of_type(drain(ha), PrefixDeregistered)
    assert gone.prefix.prefix == P2 and "omitted" in gone.reason
    assert ha.table.prefix_owner(P2) is None and ha.table.prefix_owner(P1) == HOA


def test_mode_change_on_reregistration_is_reported_rfc5454_3_3_2(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock, extensions=prefixes(P1))
    drain(ha)
    register(ha, clock, extensions=prefixes(P1, mode=True))
    [changed] = of_type(drain(ha), PrefixRegistered)
    assert changed.prefix.target is TunnelTarget.CARE_OF


def test_link_local_bootstrap_prefix_length_255_rfc5454_3_7_1(clock: Clock) -> None:
    ha = make_ha()
    request = PrefixRequest.for_link_local(LINK_LOCAL)
    reply = register(ha, clock, extensions=(request, TunnelingMode()))
    [answer] = reply.prefix_replies
    assert (answer.code, answer.prefix_length, answer.prefix) == (0, 255, LINK_LOCAL)
    binding = ha.table.get(HOA)
    assert binding is not None
    [registered] = binding.prefixes.values()
    assert registered.link_local and registered.target is TunnelTarget.HOME_ADDRESS
    assert ha.accepts_reverse_ipv6(HOA, LINK_LOCAL)  # DHCPv6 over the HoA tunnel


def test_link_local_refusals_rfc5454_3_7_1(clock: Clock) -> None:
    ha = make_ha(mobile_nodes=(account(allow_link_local=False),))
    reply = register(ha, clock, extensions=(PrefixRequest.for_link_local(LINK_LOCAL),))
    assert reply.prefix_replies[0].code == PrefixReplyCode.REJECTED_ADMIN
    not_link_local = PrefixRequest(255, IPv6Address("2001:db8:10::1"))
    reply = register(make_ha(), clock, extensions=(not_link_local,))
    assert reply.prefix_replies[0].code == PrefixReplyCode.REJECTED_UNSPECIFIED


def test_host_bits_are_ignored_but_echoed_rfc5454_2_1(clock: Clock) -> None:
    ha = make_ha()
    sloppy = PrefixRequest(64, IPv6Address("2001:db8:10:1::55"))
    reply = register(ha, clock, extensions=(sloppy,))
    assert reply.prefix_replies == (PrefixReply.answering(sloppy, 0),)
    assert ha.table.prefix_owner(P1) == HOA


def test_dsmipv4_off_sends_no_reply_extensions_rfc5454_3_5(clock: Clock) -> None:
    ha = make_ha(dsmipv4=False)
    reply = register(ha, clock, extensions=prefixes(P1, mode=True))
    assert reply.code == ReplyCode.ACCEPTED
    assert not any(extension.type == ExtensionType.DSMIPV4 for extension in reply.extensions)
    assert ha.table.get(HOA).prefixes == {}  # type: ignore[union-attr]


def test_denied_registration_carries_no_prefix_replies_rfc5454_3_2(clock: Clock) -> None:
    ha = make_ha(encapsulations=frozenset({Encapsulation.IP_IN_IP}))
    reply = register(ha, clock, flags=F.D | F.G, extensions=prefixes(P1))
    assert reply.code == ReplyCode.HA_ENCAPSULATION_UNAVAILABLE and reply.prefix_replies == ()
    assert ha.table.prefix_owner(P1) is None


# -- reverse tunnel checks exposed to the datapath (RFC 3024 §4.3.2, RFC 5454 §3.3.2) -----------------


def test_reverse_tunnel_source_checks_rfc3024_4_3_2_rfc5454_3_3_2(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock, extensions=prefixes(P1))
    inside, outside = IPv6Address("2001:db8:10:1::9"), IPv6Address("2001:db8:10:2::9")
    assert ha.accepts_reverse_ipv4(COA, HOA)
    assert not ha.accepts_reverse_ipv4(COA2, HOA)
    assert not ha.accepts_reverse_ipv4(COA, HOA2)
    assert ha.accepts_reverse_ipv6(HOA, inside)  # code 0: only from the home address (RFC 5454 §3.3.2)
    assert not ha.accepts_reverse_ipv6(COA, inside)
    assert not ha.accepts_reverse_ipv6(HOA, outside)
    assert not ha.accepts_reverse_ipv6(COA2, inside)


# -- robustness and control-socket views ------------------------------------------------------------


def test_malformed_datagrams_are_counted_not_raised(clock: Clock) -> None:
    ha = make_ha()
    for junk in (b"", b"\x01", b"\x03" + bytes(19), rrq(clock)[:-3], b"\x09abc"):
        ha.receive_datagram(junk, (COA, SOURCE_PORT), HA, clock.now)
    events = drain(ha)
    assert len(of_type(events, MalformedDatagram)) == 2  # the truncated request and b"\x01"
    assert ha.counters["malformed"] == 2 and ha.counters["discarded"] == 3
    assert ha.datagrams_to_send(clock.now) == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.integers(min_value=0, max_value=200))
def test_fuzzed_requests_never_raise(noise: bytes, cut: int) -> None:
    clock = Clock()
    ha = make_ha()
    valid = rrq(clock, extensions=prefixes(P1, mode=True))
    for data in (noise, b"\x01" + noise, valid[:cut] + noise):
        ha.receive_datagram(data, (COA, SOURCE_PORT), HA, clock.now)
    assert ha.counters["internal_errors"] == 0


def test_status_and_bindings_are_json(clock: Clock) -> None:
    ha = make_ha()
    register(ha, clock, extensions=prefixes(P1))
    bindings = ha.bindings(clock.now + 10)
    assert bindings[0]["care_ofs"][0]["remaining"] == 290.0  # type: ignore[index]
    json.dumps(bindings)
    status = ha.status(clock.now)
    assert status["away"] == [str(HOA)]
    json.dumps(status)
    json.dumps([event.to_dict() for event in drain(ha)])
