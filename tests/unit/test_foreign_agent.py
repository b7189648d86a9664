"""Foreign agent decisions on a fake clock (RFC 5944 §2.3, §3.7; RFC 3024 §3.3, §4.2; RFC 5454 §3.3.2).

Every test drives :class:`ForeignAgent` with requests signed by :func:`build_request` and replies
signed by :func:`build_reply`, and checks what goes to the home agent and to the mobile node (code,
Lifetime, Identification, addresses, link-layer address) and the events; each names the RFC section
it pins.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.mip.common.config import Encapsulation
from agents.mip.common.events import DatagramDiscarded, MalformedDatagram
from agents.mip.fa.config import AdvertisementConfig, DeliveryStyle, ForeignAgentConfig, PeerAssociation
from agents.mip.fa.events import (
    AdvertisementSent,
    ForeignAgentDenied,
    ForeignAgentEvent,
    ForeignAuthenticationFailed,
    LinkDatagram,
    ReplyRelayed,
    RequestRelayed,
    SolicitationReceived,
    VisitorAdded,
    VisitorRemoved,
    VisitorUpdated,
)
from agents.mip.fa.foreign_agent import ForeignAgent
from agents.mip.wire.auth import SecurityAssociation, append_authentication, verify_with
from agents.mip.wire.codes import ExtensionType, RegistrationFlag, ReplyCode
from agents.mip.wire.extensions import EncapsulatingDeliveryStyle, Extension, NaiExtension
from agents.mip.wire.icmp import AdvertisementFlag, AgentAdvertisement
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest, build_reply, build_request

F = RegistrationFlag
KEY = bytes(range(16))
MN_FA_KEY = bytes(range(16, 32))
FA_HA_KEY = bytes(range(32, 48))
MN_HA = SecurityAssociation(0x100, KEY)
MN_FA = SecurityAssociation(0x200, MN_FA_KEY)
FA_HA = SecurityAssociation(0x300, FA_HA_KEY)
HA = IPv4Address("192.0.2.1")
HOA = IPv4Address("192.0.2.10")
HOA2 = IPv4Address("192.0.2.11")
COA = IPv4Address("198.51.100.1")
ACCESS = IPv4Interface("198.51.100.1/24")
MAC = bytes.fromhex("020000000010")
MAC2 = bytes.fromhex("020000000020")
MN_PORT = 49152
IDENT = 0xE8A1B2C3_00000001
T0 = 100.0


def make_fa(**changes: Any) -> ForeignAgent:
    advertisement = changes.pop("advertisement", AdvertisementConfig(router_addresses=(ACCESS,)))
    config = ForeignAgentConfig((COA,), advertisement=advertisement, **changes)
    return ForeignAgent(config, rng=random.Random(5))


def request_bytes(
    *,
    flags: F = F.T,
    lifetime: int = 300,
    home: IPv4Address = HOA,
    home_agent: IPv4Address = HA,
    care_of: IPv4Address = COA,
    ident: int = IDENT,
    extensions: Sequence[Extension] = (),
    fa_extensions: Sequence[Extension] = (),
    mn_fa: SecurityAssociation | None = None,
) -> bytes:
    request = RegistrationRequest(flags, lifetime, home, home_agent, care_of, ident, tuple(extensions))
    return build_request(request, MN_HA, fa_extensions, mn_fa)


def reply_bytes(
    code: int = 0,
    lifetime: int = 300,
    *,
    home: IPv4Address = HOA,
    ident: int = IDENT,
    fa_ha: SecurityAssociation | None = None,
) -> bytes:
    return build_reply(RegistrationReply(code, lifetime, home, HA, ident), MN_HA, fa_ha)


@dataclass
class Run:
    """What one input made the FA send and emit."""

    to_ha: list[LinkDatagram]
    to_mn: list[LinkDatagram]
    events: list[ForeignAgentEvent]


def drain(fa: ForeignAgent, now: float) -> Run:
    out = fa.datagrams_to_send(now)
    events = []
    while (event := fa.next_event()) is not None:
        events.append(event)
    return Run([d for d in out if d.destination == HA], [d for d in out if d.destination != HA], events)


def send_request(
    fa: ForeignAgent,
    raw: bytes,
    now: float = T0,
    *,
    ttl: int | None = 255,
    link: bytes | None = MAC,
    source: IPv4Address = HOA,
    destination: IPv4Address = COA,
) -> Run:
    source_pair = (source, MN_PORT)
    fa.receive_datagram(raw, source_pair, destination, now, link_address=link, ttl=ttl, interface="acc0")
    return drain(fa, now)


def send_reply(fa: ForeignAgent, raw: bytes, now: float = T0 + 0.05, source: IPv4Address = HA) -> Run:
    fa.receive_datagram(raw, (source, 434), COA, now)
    return drain(fa, now)


def register(
    fa: ForeignAgent, now: float = T0, lifetime: int = 300, granted: int = 300, **request: Any
) -> Run:
    ident = request.pop("ident", IDENT)
    relayed = send_request(fa, request_bytes(lifetime=lifetime, ident=ident, **request), now)
    assert len(relayed.to_ha) == 1, relayed.events
    return send_reply(fa, reply_bytes(0, granted, ident=ident, home=request.get("home", HOA)), now + 0.05)


def only_reply(run: Run) -> RegistrationReply:
    assert run.to_ha == [] and len(run.to_mn) == 1, run.events
    return RegistrationReply.decode(run.to_mn[0].payload)


def denied(run: Run, code: int) -> RegistrationReply:
    reply = only_reply(run)
    assert reply.code == code, [event.to_dict() for event in run.events]
    assert [event.code for event in run.events if isinstance(event, ForeignAgentDenied)] == [code]
    return reply


def of_type(run: Run, kind: type) -> list[Any]:
    return [event for event in run.events if isinstance(event, kind)]


# -- relay (RFC 5944 §3.7.2.3, §3.6.1.3; RFC 3024 §3.3) ------------------------------------------------


def test_relay_strips_fa_extensions_and_keeps_mn_bytes_rfc5944_3_7_2_3() -> None:
    fa = make_fa(mobile_node_associations=(PeerAssociation(HOA, MN_FA.spi, MN_FA_KEY),))
    nai = NaiExtension("mn@example.org")
    raw = request_bytes(extensions=(nai,), fa_extensions=(EncapsulatingDeliveryStyle(),), mn_fa=MN_FA)
    run = send_request(fa, raw)
    (relayed,) = run.to_ha
    request = RegistrationRequest.decode(relayed.payload)
    assert [extension.type for extension in request.extensions] == [131, 32]  # 130 and MN-FA consumed
    assert raw.startswith(relayed.payload)  # the MN's bytes through MN-HA, unchanged
    assert verify_with(relayed.payload, ExtensionType.MOBILE_HOME_AUTH, MN_HA)
    assert (relayed.destination, relayed.port, relayed.source, relayed.source_port) == (HA, 434, COA, 434)
    assert relayed.link_address is None
    (event,) = of_type(run, RequestRelayed)
    assert (event.home_address, event.link_address, event.source_port) == (HOA, MAC, MN_PORT)
    assert fa.visitor(HOA) is None  # nothing delivered before the HA accepts


def test_relay_adds_fa_ha_authentication_rfc5944_3_5_4() -> None:
    fa = make_fa(home_agent_associations=(PeerAssociation(HA, FA_HA.spi, FA_HA_KEY),))
    raw = request_bytes(fa_extensions=(EncapsulatingDeliveryStyle(),))
    (relayed,) = send_request(fa, raw).to_ha
    request = RegistrationRequest.decode(relayed.payload)
    assert [extension.type for extension in request.extensions] == [32, 34]
    assert verify_with(relayed.payload, ExtensionType.FOREIGN_HOME_AUTH, FA_HA)
    assert verify_with(relayed.payload, ExtensionType.MOBILE_HOME_AUTH, MN_HA)


def test_deregistration_is_relayed_without_fa_ha_protocol_md_2() -> None:
    fa = make_fa(home_agent_associations=(PeerAssociation(HA, FA_HA.spi, FA_HA_KEY),))
    (relayed,) = send_request(fa, request_bytes(lifetime=0)).to_ha
    assert [e.type for e in RegistrationRequest.decode(relayed.payload).extensions] == [32]


def test_reply_goes_to_the_mobile_node_at_its_mac_and_port_rfc5944_3_7_3_2() -> None:
    fa = make_fa()
    send_request(fa, request_bytes())
    run = send_reply(fa, reply_bytes(0, 200))
    (to_mn,) = run.to_mn
    assert (to_mn.destination, to_mn.port, to_mn.source, to_mn.source_port) == (HOA, MN_PORT, COA, 434)
    assert (to_mn.link_address, to_mn.interface) == (MAC, "acc0")  # never ARP for the home address
    assert to_mn.payload == reply_bytes(0, 200)  # relayed unchanged (no MN-FA association)
    assert [(e.code, e.lifetime) for e in of_type(run, ReplyRelayed)] == [(0, 200)]


def test_reply_relay_drops_fa_ha_and_adds_mn_fa_rfc5944_3_7_3_2() -> None:
    fa = make_fa(
        mobile_node_associations=(PeerAssociation(HOA, MN_FA.spi, MN_FA_KEY),),
        home_agent_associations=(PeerAssociation(HA, FA_HA.spi, FA_HA_KEY),),
    )
    send_request(fa, request_bytes(mn_fa=MN_FA))
    (to_mn,) = send_reply(fa, reply_bytes(fa_ha=FA_HA)).to_mn
    reply = RegistrationReply.decode(to_mn.payload)
    assert [extension.type for extension in reply.extensions] == [32, 33]
    assert verify_with(to_mn.payload, ExtensionType.MOBILE_FOREIGN_AUTH, MN_FA)


# -- the FA's denials (RFC 5944 §3.7.2.1-§3.7.2.2; RFC 3024 §4.2) -------------------------------------------


def test_69_carries_the_fa_maximum_in_lifetime_rfc5944_3_7_2_2() -> None:
    fa = make_fa(max_lifetime=600)
    reply = denied(send_request(fa, request_bytes(lifetime=601)), ReplyCode.FA_LIFETIME_TOO_LONG)
    assert reply.lifetime == 600
    assert (reply.home_address, reply.home_agent, reply.identification) == (HOA, HA, IDENT)
    run = send_request(fa, request_bytes(lifetime=0xFFFF), T0 + 2)
    infinite = denied(run, ReplyCode.FA_LIFETIME_TOO_LONG)
    assert infinite.lifetime == 600
    assert len(send_request(fa, request_bytes(lifetime=600), T0 + 3).to_ha) == 1  # the maximum itself is fine


def test_denial_is_addressed_like_a_relayed_reply_rfc5944_3_7_2_3() -> None:
    run = send_request(make_fa(max_lifetime=10), request_bytes())
    (to_mn,) = run.to_mn
    assert (to_mn.destination, to_mn.port, to_mn.source, to_mn.link_address) == (HOA, MN_PORT, COA, MAC)


def test_denial_to_a_request_sent_to_224_0_0_11_comes_from_the_care_of_address_rfc5944_3_7_2_3() -> None:
    run = send_request(make_fa(max_lifetime=10), request_bytes(), destination=IPv4Address("224.0.0.11"))
    assert run.to_mn[0].source == COA


def _reserved_x() -> bytes:
    raw = bytearray(request_bytes())
    raw[1] |= 0x01  # 'x' reserved bit; MN-HA no longer verifies, the FA does not check it
    return bytes(raw)


def _extension_after_mn_ha() -> bytes:
    return append_authentication(request_bytes() + NaiExtension("late@example.org").encode(), 33, MN_FA)


def _style_twice() -> bytes:
    return request_bytes() + EncapsulatingDeliveryStyle().encode() * 2


def _no_mn_ha() -> bytes:
    return RegistrationRequest(F.T, 300, HOA, HA, COA, IDENT).encode()


def _bad_extension_length() -> bytes:
    return request_bytes() + bytes((131, 40, 0x61))  # NAI Length runs past the end


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_reserved_x(), id="reserved-x"),
        pytest.param(request_bytes(flags=F.T | F.R), id="reserved-r"),
        pytest.param(request_bytes(flags=F.T | F.M | F.G), id="M-and-G"),
        pytest.param(_no_mn_ha(), id="no-MN-HA"),
        pytest.param(request_bytes(flags=F(0)) + EncapsulatingDeliveryStyle().encode(), id="130-without-T"),
        pytest.param(_style_twice(), id="130-twice"),
        pytest.param(_extension_after_mn_ha(), id="NAI-after-MN-HA"),
        pytest.param(_bad_extension_length(), id="malformed-extension"),
    ],
)
def test_70_poorly_formed_request_rfc5944_3_7_2_1(raw: bytes) -> None:
    reply = denied(send_request(make_fa(), raw), ReplyCode.FA_POORLY_FORMED_REQUEST)
    assert (reply.home_address, reply.identification, reply.lifetime) == (HOA, IDENT, 0)


def test_70_for_malformed_extensions_also_reports_the_malformed_datagram() -> None:
    fa = make_fa()
    run = send_request(fa, _bad_extension_length())
    assert len(of_type(run, MalformedDatagram)) == 1 and fa.counters["malformed"] == 1


@pytest.mark.parametrize(
    ("flags", "encapsulations"),
    [(F.T | F.G, {Encapsulation.IP_IN_IP, Encapsulation.MINIMAL}), (F.T | F.M, {Encapsulation.IP_IN_IP})],
)
def test_72_encapsulation_unavailable_rfc5944_3_7_2_2(flags: F, encapsulations: set[Encapsulation]) -> None:
    fa = make_fa(encapsulations=frozenset(encapsulations))
    denied(send_request(fa, request_bytes(flags=flags)), ReplyCode.FA_ENCAPSULATION_UNAVAILABLE)


def test_74_reverse_tunnel_unavailable_rfc3024_4_2() -> None:
    fa = make_fa(reverse_tunnel_supported=False, encapsulating_delivery_supported=False)
    denied(send_request(fa, request_bytes(flags=F.T), ttl=64), ReplyCode.FA_REVERSE_TUNNEL_UNAVAILABLE)
    assert len(send_request(fa, request_bytes(flags=F(0)), T0 + 1).to_ha) == 1


def test_75_reverse_tunnel_mandatory_rfc3024_4_2() -> None:
    fa = make_fa(reverse_tunnel_required=True)
    denied(send_request(fa, request_bytes(flags=F(0))), ReplyCode.FA_REVERSE_TUNNEL_MANDATORY)
    assert len(send_request(fa, request_bytes(flags=F.T), T0 + 1).to_ha) == 1


def test_76_ttl_not_255_at_most_one_reply_per_second_rfc3024_4_2_1() -> None:
    fa = make_fa()
    denied(send_request(fa, request_bytes(), T0, ttl=64), ReplyCode.FA_MOBILE_NODE_TOO_DISTANT)
    for now in (T0 + 0.3, T0 + 0.9):  # within the second: silently dropped, nothing relayed either
        run = send_request(fa, request_bytes(), now, ttl=254)
        assert run.to_mn == [] and run.to_ha == [] and len(of_type(run, DatagramDiscarded)) == 1
    assert fa.counters["too_distant_suppressed"] == 2
    denied(send_request(fa, request_bytes(), T0 + 1.0, ttl=1), ReplyCode.FA_MOBILE_NODE_TOO_DISTANT)
    assert fa.counters["denied_76"] == 2


def test_76_only_for_reverse_tunnel_requests_and_known_ttl_rfc3024_4_2_1() -> None:
    fa = make_fa()
    assert len(send_request(fa, request_bytes(), T0, ttl=255).to_ha) == 1
    assert len(send_request(fa, request_bytes(), T0 + 1, ttl=None).to_ha) == 1  # runtime could not read it
    assert len(send_request(fa, request_bytes(flags=F(0)), T0 + 2, ttl=64).to_ha) == 1  # no T: no rule


def test_79_encapsulating_delivery_unsupported_rfc3024_3_3() -> None:
    fa = make_fa(encapsulating_delivery_supported=False)
    raw = request_bytes(fa_extensions=(EncapsulatingDeliveryStyle(),))
    denied(send_request(fa, raw), ReplyCode.FA_DELIVERY_STYLE_UNSUPPORTED)
    assert len(send_request(fa, request_bytes(), T0 + 1).to_ha) == 1  # direct delivery still served


def _mn_fa_twice() -> bytes:
    return append_authentication(request_bytes(mn_fa=MN_FA), 33, MN_FA)


@pytest.mark.parametrize(
    ("raw", "spi"),
    [
        pytest.param(request_bytes(), None, id="missing"),
        pytest.param(request_bytes(mn_fa=SecurityAssociation(MN_FA.spi, KEY)), MN_FA.spi, id="wrong-key"),
        pytest.param(request_bytes(mn_fa=SecurityAssociation(0x999, MN_FA_KEY)), 0x999, id="wrong-spi"),
        pytest.param(_mn_fa_twice(), MN_FA.spi, id="twice"),
    ],
)
def test_67_mn_fa_authentication_failed_rfc5944_3_7_2_1(raw: bytes, spi: int | None) -> None:
    fa = make_fa(mobile_node_associations=(PeerAssociation(HOA, MN_FA.spi, MN_FA_KEY),))
    run = send_request(fa, raw)
    denied(run, ReplyCode.FA_MOBILE_NODE_FAILED_AUTHENTICATION)
    # the FA signs its own reply with the MN-FA association
    assert verify_with(run.to_mn[0].payload, ExtensionType.MOBILE_FOREIGN_AUTH, MN_FA)
    (failure,) = of_type(run, ForeignAuthenticationFailed)
    assert (failure.extension_type, failure.spi, failure.home_address) == (33, spi, HOA)


def test_mn_fa_checked_only_where_an_association_exists_rfc5944_3_7_2_1() -> None:
    fa = make_fa(mobile_node_associations=(PeerAssociation(HOA, MN_FA.spi, MN_FA_KEY),))
    assert len(send_request(fa, request_bytes(mn_fa=MN_FA)).to_ha) == 1
    assert len(send_request(fa, request_bytes(home=HOA2), T0 + 1).to_ha) == 1  # no SA for HOA2


def test_77_care_of_address_not_ours_rfc5944_3_7_2_2() -> None:
    fa = make_fa()
    other = IPv4Address("203.0.113.9")
    denied(send_request(fa, request_bytes(care_of=other)), ReplyCode.FA_INVALID_CARE_OF_ADDRESS)
    deregistration = request_bytes(care_of=other, lifetime=0)
    denied(send_request(fa, deregistration, T0 + 1), ReplyCode.FA_INVALID_CARE_OF_ADDRESS)
    colocated = request_bytes(flags=F.T | F.D, care_of=other)  # R-bit registration of a co-located address
    (relayed,) = send_request(fa, colocated, T0 + 2, source=other).to_ha
    assert relayed.source == COA


@pytest.mark.parametrize("home_agent", ["0.0.0.0", "255.255.255.255", "224.0.0.11", "127.0.0.1", str(COA)])
def test_194_invalid_home_agent_address_rfc5944_3_7_2_2(home_agent: str) -> None:
    raw = request_bytes(home_agent=IPv4Address(home_agent))
    fa = make_fa()
    fa.receive_datagram(raw, (HOA, MN_PORT), COA, T0, link_address=MAC, ttl=255)
    run = drain(fa, T0)
    assert len(run.to_mn) == 1 and RegistrationReply.decode(run.to_mn[0].payload).code == 194


def advertised_flags(fa: ForeignAgent, now: float) -> AdvertisementFlag:
    fa.receive_solicitation(IPv4Address("0.0.0.0"), now)
    return AgentAdvertisement.decode(fa.advertisements_to_send(now)[-1].payload).mobility.flags


def test_66_at_the_visitor_limit_and_b_flag_rfc5944_2_1_1() -> None:
    fa = make_fa(max_visitors=1)
    register(fa)
    assert AdvertisementFlag.B in advertised_flags(fa, T0 + 0.1)
    denied(send_request(fa, request_bytes(home=HOA2), T0 + 1), ReplyCode.FA_INSUFFICIENT_RESOURCES)
    assert len(send_request(fa, request_bytes(ident=IDENT + 1), T0 + 2).to_ha) == 1  # a known visitor renews
    send_reply(fa, reply_bytes(0, 0, ident=IDENT + 1), T0 + 2.1)  # granted nothing: visitor gone
    fa.handle_timer(T0 + 3)
    assert AdvertisementFlag.B not in advertised_flags(fa, T0 + 3)
    assert len(send_request(fa, request_bytes(home=HOA2), T0 + 4).to_ha) == 1


def test_66_when_configured_busy_rfc5944_2_1_1() -> None:
    denied(send_request(make_fa(busy=True), request_bytes()), ReplyCode.FA_INSUFFICIENT_RESOURCES)


def test_deregistration_skips_service_checks_rfc5944_3_7() -> None:
    fa = make_fa(max_lifetime=10, reverse_tunnel_required=True, busy=True)
    assert len(send_request(fa, request_bytes(lifetime=0, flags=F(0))).to_ha) == 1


# -- pending list (RFC 5944 §3.7.1) ---------------------------------------------------------------------


def test_78_when_the_home_agent_does_not_answer_rfc5944_3_7_1() -> None:
    fa = make_fa(pending_timeout=7.0)
    send_request(fa, request_bytes())
    assert fa.visitor_list.next_deadline() == T0 + 7.0
    fa.handle_timer(T0 + 6.9)
    assert drain(fa, T0 + 6.9).to_mn == []
    fa.handle_timer(T0 + 7.0)
    reply = denied(drain(fa, T0 + 7.0), ReplyCode.FA_REGISTRATION_TIMEOUT)
    assert reply.identification == IDENT
    assert fa.status(T0 + 7)["pending"] == 0
    late = send_reply(fa, reply_bytes(), T0 + 8)  # too late: unsolicited now
    assert late.to_mn == [] and fa.visitor(HOA) is None


def test_pending_timeout_is_configurable_rfc5944_3_7_1() -> None:
    fa = make_fa(pending_timeout=2.5)
    send_request(fa, request_bytes())
    fa.handle_timer(T0 + 2.5)
    denied(drain(fa, T0 + 2.5), ReplyCode.FA_REGISTRATION_TIMEOUT)


def test_retransmissions_keep_the_first_deadline_and_78_names_the_latest_rfc5944_3_7_1() -> None:
    fa = make_fa()
    for attempt in range(4):  # the MN retransmits every 2 s with a fresh timestamp (RFC 5944 §3.6.3)
        assert len(send_request(fa, request_bytes(ident=IDENT + attempt), T0 + 2 * attempt).to_ha) == 1
    fa.handle_timer(T0 + 6.99)
    assert drain(fa, T0 + 6.99).to_mn == []
    fa.handle_timer(T0 + 7.0)
    reply = denied(drain(fa, T0 + 7.0), ReplyCode.FA_REGISTRATION_TIMEOUT)
    assert reply.identification == IDENT + 3  # the one the MN is waiting for


def test_newer_request_supersedes_the_pending_one_rfc5944_5_7() -> None:
    fa = make_fa()
    send_request(fa, request_bytes(ident=IDENT))
    send_request(fa, request_bytes(ident=IDENT + 5), T0 + 1)
    assert send_reply(fa, reply_bytes(ident=IDENT), T0 + 1.1).to_mn == []  # the MN no longer waits for it
    assert len(send_reply(fa, reply_bytes(ident=IDENT + 5), T0 + 1.2).to_mn) == 1
    fa.handle_timer(T0 + 30)
    assert [e for e in drain(fa, T0 + 30).events if isinstance(e, ForeignAgentDenied)] == []


# -- replies from the home agent (RFC 5944 §3.7.3) -----------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(reply_bytes(), id="missing"),
        pytest.param(reply_bytes(fa_ha=SecurityAssociation(FA_HA.spi, KEY)), id="wrong-key"),
        pytest.param(reply_bytes(fa_ha=SecurityAssociation(0x301, FA_HA_KEY)), id="wrong-spi"),
    ],
)
def test_68_when_fa_ha_fails_on_the_reply_rfc5944_3_7_3_1(raw: bytes) -> None:
    fa = make_fa(home_agent_associations=(PeerAssociation(HA, FA_HA.spi, FA_HA_KEY),))
    send_request(fa, request_bytes())
    run = send_reply(fa, raw)
    reply = denied(run, ReplyCode.FA_HOME_AGENT_FAILED_AUTHENTICATION)
    assert reply.identification == IDENT and fa.visitor(HOA) is None
    assert [event.extension_type for event in of_type(run, ForeignAuthenticationFailed)] == [34]


def test_valid_fa_ha_reply_is_accepted_rfc5944_3_7_3_1() -> None:
    fa = make_fa(home_agent_associations=(PeerAssociation(HA, FA_HA.spi, FA_HA_KEY),))
    send_request(fa, request_bytes())
    assert len(of_type(send_reply(fa, reply_bytes(fa_ha=FA_HA)), VisitorAdded)) == 1


def test_71_for_a_malformed_reply_to_a_pending_request_rfc5944_3_7_3() -> None:
    fa = make_fa()
    send_request(fa, request_bytes())
    reply = denied(send_reply(fa, reply_bytes() + bytes((131, 9))), ReplyCode.FA_POORLY_FORMED_REPLY)
    assert reply.identification == IDENT
    send_request(fa, request_bytes(ident=IDENT + 1), T0 + 1)
    unsigned = RegistrationReply(0, 300, HOA, HA, IDENT + 1).encode()  # nothing for the MN to verify
    denied(send_reply(fa, unsigned, T0 + 1.1), ReplyCode.FA_POORLY_FORMED_REPLY)


@pytest.mark.parametrize(
    ("raw", "source"),
    [
        pytest.param(reply_bytes(home=HOA2), HA, id="unknown-home-address"),
        pytest.param(reply_bytes(ident=IDENT + 1), HA, id="other-identification"),
        pytest.param(reply_bytes(), IPv4Address("203.0.113.66"), id="accept-from-elsewhere"),
    ],
)
def test_unknown_and_unsolicited_replies_are_dropped_rfc5944_3_7_3_1(raw: bytes, source: IPv4Address) -> None:
    fa = make_fa()
    send_request(fa, request_bytes())
    run = send_reply(fa, raw, source=source)
    assert run.to_mn == [] and len(of_type(run, DatagramDiscarded)) == 1
    assert fa.counters["unsolicited_replies"] == 1 and fa.visitor(HOA) is None
    assert fa.status(T0)["pending"] == 1  # still waiting for the real one


def test_only_the_low_32_bits_of_identification_are_matched_rfc5944_5_7() -> None:
    fa = make_fa()
    send_request(fa, request_bytes(ident=IDENT))
    ha_time_high = (0x12345678 << 32) | (IDENT & 0xFFFFFFFF)  # a 133 carries the HA's time high
    run = send_reply(fa, reply_bytes(133, 0, ident=ha_time_high))
    assert RegistrationReply.decode(run.to_mn[0].payload).code == 133 and fa.visitor(HOA) is None


def test_denial_from_the_home_agent_is_relayed_without_a_visitor_rfc5944_3_7_3_2() -> None:
    fa = make_fa()
    send_request(fa, request_bytes())
    run = send_reply(fa, reply_bytes(ReplyCode.HA_MOBILE_NODE_FAILED_AUTHENTICATION, 0))
    assert RegistrationReply.decode(run.to_mn[0].payload).code == 131
    assert of_type(run, VisitorAdded) == [] and fa.visitor(HOA) is None


# -- visitor list (RFC 5944 §3.7.1, §3.7.3.1) -------------------------------------------------------------


def test_visitor_added_with_everything_delivery_needs_rfc5944_3_7_1() -> None:
    fa = make_fa()
    raw = request_bytes(flags=F.T | F.G, lifetime=300, fa_extensions=(EncapsulatingDeliveryStyle(),))
    send_request(fa, raw)
    run = send_reply(fa, reply_bytes(0, 120))
    (added,) = of_type(run, VisitorAdded)
    assert (added.home_address, added.home_agent, added.care_of) == (HOA, HA, COA)
    assert (added.link_address, added.source_port, added.interface) == (MAC, MN_PORT, "acc0")
    assert added.reverse_tunnel and added.delivery_style is DeliveryStyle.ENCAPSULATING
    assert added.encapsulation is Encapsulation.GRE and not added.colocated
    assert added.lifetime == 120  # min(requested 300, granted 120)
    assert added.to_dict()["link_address"] == "02:00:00:00:00:10"


def test_visitor_lifetime_is_min_of_requested_and_granted_rfc5944_3_4() -> None:
    fa = make_fa()
    register(fa, lifetime=100, granted=250)  # an HA must not grant more; the FA holds to the request
    visitor = fa.visitor(HOA)
    assert visitor is not None and visitor.lifetime == 100 and visitor.expires_at == T0 + 100
    assert fa.visitors(T0 + 40)[0]["remaining"] == 60.0


def test_visitor_updated_on_reregistration_with_new_mac_rfc5944_3_7_1() -> None:
    fa = make_fa()
    register(fa)
    relayed = send_request(fa, request_bytes(ident=IDENT + 1, flags=F(0)), T0 + 200, link=MAC2)
    assert len(relayed.to_ha) == 1
    run = send_reply(fa, reply_bytes(0, 300, ident=IDENT + 1), T0 + 200.1)
    (updated,) = of_type(run, VisitorUpdated)
    assert updated.link_address == MAC2 and not updated.reverse_tunnel
    assert updated.delivery_style is DeliveryStyle.DIRECT
    visitor = fa.visitor(HOA)
    assert visitor is not None and visitor.expires_at == T0 + 500


def test_deregistration_removes_the_visitor_when_the_ha_accepts_rfc5944_3_7_3_1() -> None:
    fa = make_fa()
    register(fa)
    send_request(fa, request_bytes(lifetime=0, ident=IDENT + 1), T0 + 10)
    assert fa.visitor(HOA) is not None  # not before the HA says so
    run = send_reply(fa, reply_bytes(0, 0, ident=IDENT + 1), T0 + 10.1)
    (removed,) = of_type(run, VisitorRemoved)
    assert (removed.home_address, removed.reason, removed.link_address) == (HOA, "deregistered", MAC)
    assert fa.visitor(HOA) is None and len(run.to_mn) == 1


def test_denied_deregistration_keeps_the_visitor_rfc5944_3_7_3_1() -> None:
    fa = make_fa()
    register(fa)
    send_request(fa, request_bytes(lifetime=0, ident=IDENT + 1), T0 + 10)
    run = send_reply(fa, reply_bytes(133, 0, ident=IDENT + 1), T0 + 10.1)
    assert of_type(run, VisitorRemoved) == [] and fa.visitor(HOA) is not None


def test_visitor_expires_on_the_timer_rfc5944_3_7_1() -> None:
    fa = make_fa()
    register(fa, lifetime=30, granted=30)
    fa.handle_timer(T0 + 29.9)
    assert fa.visitor(HOA) is not None
    fa.handle_timer(T0 + 30.0)
    removed = of_type(drain(fa, T0 + 30), VisitorRemoved)
    assert [(event.home_address, event.reason) for event in removed] == [(HOA, "expired")]
    assert fa.visitor(HOA) is None
    assert drain(fa, T0 + 30).to_mn == []  # the FA never sends anything because a lifetime ran out


def test_infinite_lifetime_visitor_never_expires_rfc5944_3_3() -> None:
    fa = make_fa(max_lifetime=0xFFFF)
    register(fa, lifetime=0xFFFF, granted=0xFFFF)
    fa.handle_timer(T0 + 10**7)
    assert fa.visitor(HOA) is not None and fa.visitors(T0)[0]["remaining"] is None


def test_timer_covers_pending_and_expiry_rfc5944_3_7_1() -> None:
    fa = make_fa(advertisement=AdvertisementConfig(max_interval=1000.0))
    fa.handle_timer(0.0)
    register(fa, lifetime=40, granted=40)
    assert fa.get_timer() == pytest.approx(16.0)  # the next advertisement (first three ≤ 16 s apart)
    send_request(fa, request_bytes(home=HOA2), T0 + 1)
    deadlines = set()
    while (deadline := fa.get_timer()) is not None and deadline < T0 + 100:
        deadlines.add(round(deadline, 6))
        fa.handle_timer(deadline)
    assert {T0 + 1 + 7.0, T0 + 40.0} <= deadlines


# -- robustness ---------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=80),
        st.binary(max_size=60).map(lambda tail: b"\x01" + tail),
        st.binary(max_size=60).map(lambda tail: b"\x03" + tail),
        st.integers(0, 200).map(lambda cut: request_bytes()[:cut]),
    ),
    st.integers(0, 255),
)
def test_receive_never_raises_and_counts_rfc5944_1_8(data: bytes, ttl: int) -> None:
    fa = make_fa(mobile_node_associations=(PeerAssociation(HOA, MN_FA.spi, MN_FA_KEY),))
    send_request(fa, request_bytes(mn_fa=MN_FA))
    fa.receive_datagram(data, (HOA, MN_PORT), COA, T0 + 1, link_address=MAC, ttl=ttl)
    fa.receive_datagram(data, (HA, 434), COA, T0 + 1)
    drain(fa, T0 + 1)
    assert fa.counters["internal_errors"] == 0


def test_unknown_message_type_and_truncated_request_are_reported_rfc5944_1_8() -> None:
    fa = make_fa()
    run = send_request(fa, b"\x04\x04\x00\x00")
    assert run.to_mn == [] and len(of_type(run, DatagramDiscarded)) == 1
    run = send_request(fa, request_bytes()[:20])
    assert run.to_mn == [] and len(of_type(run, MalformedDatagram)) == 1


def test_unknown_non_skippable_extension_is_discarded_rfc5944_1_8() -> None:
    raw = RegistrationRequest(F.T, 300, HOA, HA, COA, IDENT).encode() + bytes((100, 0))
    run = send_request(make_fa(), raw)
    assert run.to_mn == [] and run.to_ha == [] and len(of_type(run, DatagramDiscarded)) == 1


def test_solicitation_is_answered_and_traced_rfc5944_2_3() -> None:
    fa = make_fa()
    fa.receive_solicitation(HOA, 5.0, link_address=MAC)
    (answer,) = fa.advertisements_to_send(5.0)
    assert (answer.destination, answer.link_address, answer.ttl) == (HOA, MAC, 1)
    events = drain(fa, 5.0).events
    assert [type(event) for event in events] == [SolicitationReceived, AdvertisementSent]


def test_shutdown_withdraws_the_advertisement_rfc1256() -> None:
    fa = make_fa()
    fa.shutdown(1.0)
    (last,) = fa.advertisements_to_send(1.0)
    assert AgentAdvertisement.decode(last.payload).lifetime == 0


def test_status_visitors_and_events_are_json_able() -> None:
    fa = make_fa()
    run = register(fa)
    json.dumps(fa.status(T0 + 1))
    json.dumps(fa.visitors(T0 + 1))
    for event in run.events:
        json.dumps(event.to_dict())
    assert fa.status(T0 + 1)["visitors"] == 1


# -- configuration (RFC 5944 §3.7.1, RFC 3024) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"care_of_addresses": ()}, "care_of_addresses"),
        ({"care_of_addresses": (IPv4Address("0.0.0.0"),)}, "unusable|usable"),
        ({"care_of_addresses": (COA, COA)}, "twice"),
        ({"max_lifetime": 0}, "max_lifetime"),
        ({"encapsulations": frozenset({Encapsulation.GRE})}, "ipip"),
        ({"reverse_tunnel_supported": False}, "encapsulating_delivery_supported"),
        (
            {
                "reverse_tunnel_supported": False,
                "encapsulating_delivery_supported": False,
                "reverse_tunnel_required": True,
            },
            "reverse_tunnel_required",
        ),
        ({"pending_timeout": 0}, "pending_timeout"),
        ({"max_visitors": 0}, "max_visitors"),
        ({"mobile_node_associations": (PeerAssociation(HOA, 0x200, KEY),) * 2}, "twice"),
    ],
)
def test_bad_foreign_agent_config_is_refused_rfc5944_3_7_1(changes: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"care_of_addresses": (COA,)}
    with pytest.raises(ValueError, match=message):
        ForeignAgentConfig(**{**base, **changes})


def test_reserved_spi_is_refused_rfc5944_1_6() -> None:
    with pytest.raises(ValueError, match="reserved"):
        PeerAssociation(HA, 255, KEY)


def test_skippable_unknown_after_mn_ha_is_consumed_rfc5944_1_8_3_6_1_3() -> None:
    unknown = struct.pack("!BB", 200, 2) + b"ab"
    raw = request_bytes(extensions=(NaiExtension("mn@example.org"),))
    (relayed,) = send_request(make_fa(), raw + unknown).to_ha
    assert relayed.payload == raw  # NAI kept for the HA; the unknown after MN-HA was for the FA
