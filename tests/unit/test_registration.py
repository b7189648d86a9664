"""Tests for agents.mip.registration: RRQ/RRP vectors, strict decoding, builders and round trips."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.mip.auth import SecurityAssociation, locate_authentication, verify, verify_with
from agents.mip.codes import ExtensionType, RegistrationFlag, ReplyCode
from agents.mip.errors import DecodeError
from agents.mip.extensions import (
    AuthenticationExtension,
    EncapsulatingDeliveryStyle,
    Extension,
    NaiExtension,
    PrefixReply,
    PrefixRequest,
    TunnelingMode,
    UdpTunnelReply,
    UdpTunnelRequest,
    UnknownExtension,
)
from agents.mip.registration import (
    RegistrationReply,
    RegistrationRequest,
    append_foreign_home_authentication,
    build_foreign_agent_reply,
    build_reply,
    build_request,
    decode_message,
    fa_relay_reply,
    fa_relay_request,
)
from tests.unit.test_extensions import extension_sequences

D, T = RegistrationFlag.D, RegistrationFlag.T
HOA, HA, COA = IPv4Address("10.1.0.5"), IPv4Address("192.0.2.1"), IPv4Address("10.0.2.10")
ID = 0xE8A1B2C300000001
KEY = bytes(range(16))
MN_HA = SecurityAssociation(0x100, KEY)
MN_FA = SecurityAssociation(0x200, b"mn-fa key")
FA_HA = SecurityAssociation(0x300, b"fa-ha key")
NET48 = IPv6Network("2001:db8:1::/48")
NET64 = IPv6Network("2001:db8:1:2::/64")
P48 = "20010db8000100000000000000000000"
NAI = "mn1@example.org"
AUTH = "11" * 16

# --- hand-written vectors ------------------------------------------------------------------------

RRQ_HEX = (
    "01" "22" "012c" "0a010005" "c0000201" "0a00020a" "e8a1b2c300000001"  # RFC 5944 §3.3, D|T
    "830f" + NAI.encode().hex()  # RFC 2794 NAI
    + "9812" "01" "30" + P48  # RFC 5454 §2.1 Prefix Request /48
    + "9802" "03" "00"  # RFC 5454 §2.3 Tunneling Mode
    + "9006" "00" "00" "00" "00" "0000"  # RFC 3519 §3.1 UDP Tunnel Request, encapsulation 0
    + "2014" "00000100" + AUTH  # MN-HA
    + "8200"  # RFC 3024 §3.3 (FA-only)
    + "2108" "00000200" "01020304"  # MN-FA
)
RRQ = RegistrationRequest(
    D | T,
    300,
    HOA,
    HA,
    COA,
    ID,
    (
        NaiExtension(NAI),
        PrefixRequest.for_network(NET48),
        TunnelingMode(),
        UdpTunnelRequest(force=False, r_flag=False, encapsulation=0),
        AuthenticationExtension(32, 0x100, bytes.fromhex(AUTH)),
        EncapsulatingDeliveryStyle(),
        AuthenticationExtension(33, 0x200, bytes.fromhex("01020304")),
    ),
)
RRP_HEX = (
    "03" "00" "012c" "0a010005" "c0000201" "e8a1b2c300000001"  # RFC 5944 §3.4
    "9814" "02" "00" "30" "00" + P48  # RFC 5454 §2.2 Prefix Reply, accepted to HoA
    + "2c06" "00" "00" "8000" "006e"  # RFC 3519 §3.2 UDP Tunnel Reply, F, keepalive 110
    + "2014" "00000100" + AUTH
)
RRP = RegistrationReply(
    ReplyCode.ACCEPTED,
    300,
    HOA,
    HA,
    ID,
    (
        PrefixReply(0, 48, NET48.network_address),
        UdpTunnelReply(code=0, force=True, keepalive=110),
        AuthenticationExtension(32, 0x100, bytes.fromhex(AUTH)),
    ),
)


def test_rfc5944_s3_3_request_vector_decode() -> None:
    assert RegistrationRequest.decode(bytes.fromhex(RRQ_HEX)) == RRQ
    assert decode_message(bytes.fromhex(RRQ_HEX)) == RRQ


def test_rfc5944_s3_3_request_vector_encode() -> None:
    assert RRQ.encode().hex() == RRQ_HEX


def test_rfc5944_s3_4_reply_vector_decode() -> None:
    reply = RegistrationReply.decode(bytes.fromhex(RRP_HEX))
    assert reply == RRP
    assert reply.code is ReplyCode.ACCEPTED and reply.accepted
    assert decode_message(bytes.fromhex(RRP_HEX)) == RRP


def test_rfc5944_s3_4_reply_vector_encode() -> None:
    assert RRP.encode().hex() == RRP_HEX


def test_protocol_md_fixed_part_offsets() -> None:
    """protocol.md §1: request extensions start at 24, reply extensions at 20."""
    assert len(RRQ.fixed_part()) == 24 and len(RRP.fixed_part()) == 20


def test_unknown_flag_bits_and_codes_survive() -> None:
    """Reserved flag bits r and x, and an unknown code, are kept so re-encoding is byte-identical."""
    raw_request = bytes.fromhex("01ff0000") + bytes(20)
    request = RegistrationRequest.decode(raw_request)
    assert RegistrationFlag.R in request.flags and RegistrationFlag.X in request.flags
    assert request.encode() == raw_request
    raw_reply = bytes.fromhex("03c8ffff") + bytes(16)
    reply = RegistrationReply.decode(raw_reply)
    assert reply.code == 200 and not isinstance(reply.code, ReplyCode) and not reply.accepted
    assert reply.lifetime == 0xFFFF
    assert reply.encode() == raw_reply


def test_lookups() -> None:
    assert RRQ.nai == NAI
    assert RRQ.prefix_requests == (PrefixRequest.for_network(NET48),)
    assert RRQ.tunneling_modes == (TunnelingMode(),)
    assert len(RRQ.udp_tunnel_requests) == 1
    assert len(RRQ.find(ExtensionType.DSMIPV4)) == 2
    assert RRQ.authentication(33) == AuthenticationExtension(33, 0x200, bytes.fromhex("01020304"))
    assert RRQ.authentication(34) is None
    assert not RRQ.has_unknown_non_skippable and not RRQ.is_deregistration
    assert RRP.prefix_replies == (PrefixReply(0, 48, NET48.network_address),)
    assert RRP.udp_tunnel_reply == UdpTunnelReply(0, True, 110)
    assert RRP.nai is None and RRP.prefix_requests == ()


def test_rfc5944_s1_8_message_with_unknown_non_skippable_is_flagged() -> None:
    """RFC 5944 §1.8: an unknown 0-127 extension means the receiver discards the message silently."""
    raw = bytes.fromhex(RRQ_HEX)[:24] + bytes.fromhex("2402abcd" "2014")
    request = RegistrationRequest.decode(raw)
    assert request.has_unknown_non_skippable
    assert request.extensions == (UnknownExtension(36, bytes.fromhex("02abcd2014")),)
    assert request.encode() == raw


@pytest.mark.parametrize("length", range(24))
def test_truncated_request_fixed_part_is_decode_error(length: int) -> None:
    with pytest.raises(DecodeError):
        RegistrationRequest.decode(bytes.fromhex(RRQ_HEX)[:length])


@pytest.mark.parametrize("length", range(20))
def test_truncated_reply_fixed_part_is_decode_error(length: int) -> None:
    with pytest.raises(DecodeError):
        RegistrationReply.decode(bytes.fromhex(RRP_HEX)[:length])


def test_wrong_message_types_are_decode_errors() -> None:
    with pytest.raises(DecodeError) as caught:
        RegistrationRequest.decode(bytes.fromhex(RRP_HEX))
    assert caught.value.offset == 0
    with pytest.raises(DecodeError):
        RegistrationReply.decode(bytes.fromhex(RRQ_HEX))
    for first in (0, 2, 4, 7, 255):
        with pytest.raises(DecodeError):
            decode_message(bytes([first]) + bytes(30))
    with pytest.raises(DecodeError):
        decode_message(b"")


def test_extension_error_offsets_count_from_message_start() -> None:
    raw = bytes.fromhex(RRQ_HEX)[:24] + bytes.fromhex("830f") + b"short"
    with pytest.raises(DecodeError) as caught:
        RegistrationRequest.decode(raw)
    assert caught.value.offset == 25


def test_constructors_validate_ranges() -> None:
    with pytest.raises(ValueError):
        RegistrationRequest(RegistrationFlag(0), 65536, HOA, HA, COA, ID)
    with pytest.raises(ValueError):
        RegistrationRequest(RegistrationFlag(0), 0, HOA, HA, COA, 2**64)
    with pytest.raises(ValueError):
        RegistrationRequest(256, 0, HOA, HA, COA, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RegistrationReply(256, 0, HOA, HA, 0)
    with pytest.raises(ValueError):
        RegistrationReply(0, 0, HOA, HA, 0, (UnknownExtension(36, b""), TunnelingMode()))


# --- builders: order and authenticators (RFC 5944 §3.6.1.3, §3.5.1) -----------------------------


def _request(flags: RegistrationFlag, *extensions: Extension, lifetime: int = 300) -> RegistrationRequest:
    return RegistrationRequest(flags, lifetime, HOA, HA, COA, ID, extensions)


def test_build_request_reproduces_protocol_md_vector() -> None:
    """protocol.md §2: T flag, lifetime 300, MN-HA SPI 0x100 → HMAC-MD5 1207993e…."""
    raw = build_request(_request(T), MN_HA)
    assert raw.hex() == (
        "0102012c0a010005c00002010a00020ae8a1b2c300000001201400000100" "1207993e86f32d389cafb229c4558976"
    )


def test_rfc5944_s3_6_1_3_request_extension_order() -> None:
    """RFC 5944 §3.6.1.3: HA-bound (NAI first, RFC 2794; DSMIPv4 before MN-HA, RFC 5454 §3.1),
    MN-HA, FA-only (130), MN-FA."""
    request = _request(
        D | T,
        PrefixRequest.for_network(NET48),
        PrefixRequest.for_network(NET64),
        TunnelingMode(),
        NaiExtension(NAI),
        UdpTunnelRequest(False, False, 0),
    )
    raw = build_request(request, MN_HA, [EncapsulatingDeliveryStyle()], MN_FA)
    decoded = RegistrationRequest.decode(raw)
    kinds = [type(e).__name__ for e in decoded.extensions]
    assert kinds == [
        "NaiExtension", "PrefixRequest", "PrefixRequest", "TunnelingMode", "UdpTunnelRequest",
        "AuthenticationExtension", "EncapsulatingDeliveryStyle", "AuthenticationExtension",
    ]
    assert [e.type for e in decoded.extensions if isinstance(e, AuthenticationExtension)] == [32, 33]
    assert decoded.prefix_requests[0].network == NET48 and decoded.prefix_requests[1].network == NET64
    assert verify_with(raw, 32, MN_HA) and verify_with(raw, 33, MN_FA)


def test_rfc5944_s3_5_1_builder_covers_exactly_the_right_bytes() -> None:
    raw = build_request(_request(T, NaiExtension(NAI)), MN_HA, [EncapsulatingDeliveryStyle()], MN_FA)
    mn_ha = locate_authentication(raw, 32)
    mn_fa = locate_authentication(raw, 33)
    assert mn_ha is not None and mn_fa is not None
    assert mn_ha.covered == raw[: mn_ha.start + 6] and mn_ha.start == 24 + 2 + len(NAI)
    assert mn_fa.covered == raw[: mn_fa.start + 6] and mn_fa.start == mn_ha.end + 2
    assert mn_fa.end == len(raw)


def test_build_request_link_local_prefix_request_for_pd_bootstrap() -> None:
    """RFC 5454 §3.7.1: Prefix Length 255 with the link-local address fe80::c000:205."""
    link_local = PrefixRequest.for_link_local(IPv6Address("fe80::c000:205"))
    raw = build_request(_request(T, link_local), MN_HA)
    assert raw[24:44].hex() == "9812" "01" "ff" "fe80000000000000" "00000000c0000205"
    assert RegistrationRequest.decode(raw).prefix_requests == (link_local,)


@pytest.mark.parametrize(
    ("flags", "ha_extensions", "fa_extensions", "rule"),
    [
        (RegistrationFlag(0), [], [EncapsulatingDeliveryStyle()], "RFC 3024 §3.3"),
        (T, [EncapsulatingDeliveryStyle()], [], "RFC 5944 §3.6.1.3"),
        (T, [], [NaiExtension(NAI)], "after the MN-HA"),
        (T, [TunnelingMode()], [], "RFC 5454 §3.5"),
        (D, [TunnelingMode(), TunnelingMode()], [], "RFC 5454 §3.5"),
        (T, [UdpTunnelRequest(False, False, 0)], [], "RFC 3519"),
        (D, [PrefixRequest.for_network(NET48), UdpTunnelRequest(False, False, 4)], [], "RFC 5454 §3.9"),
        (T, [NaiExtension("a@b"), NaiExtension("c@d")], [], "RFC 2794"),
        (T, [AuthenticationExtension(32, 256, b"")], [], "RFC 5944 §3.6.1.3"),
        (T, [PrefixReply(0, 48, NET48.network_address)], [], "RFC 5944 §3.6.1.3"),
        (T, [UnknownExtension(36, b"")], [], "RFC 5944 §3.6.1.3"),
        (T, [], [EncapsulatingDeliveryStyle(), EncapsulatingDeliveryStyle()], "RFC 3024 §3.3"),
    ],
)
def test_build_request_rejects_rule_breaking_input(
    flags: RegistrationFlag, ha_extensions: list[Extension], fa_extensions: list[Extension], rule: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(rule)):
        build_request(_request(flags, *ha_extensions), MN_HA, fa_extensions)


def test_build_request_keeps_skippable_unknowns_before_mn_ha() -> None:
    raw = build_request(_request(T, UnknownExtension(200, b"x")), MN_HA)
    assert RegistrationRequest.decode(raw).extensions[0] == UnknownExtension(200, b"x")


def test_rfc3519_s4_5_fa_relay_appends_udp_tunnel_request_then_fa_ha() -> None:
    """RFC 3519 §4.5: the FA's 144 goes after MN-HA and before FA-HA; the MN's part is unchanged."""
    from_mn = build_request(_request(T, NaiExtension(NAI)), MN_HA, [EncapsulatingDeliveryStyle()], MN_FA)
    relayed = fa_relay_request(from_mn, UdpTunnelRequest(True, False, 4), FA_HA)
    mn_ha = locate_authentication(from_mn, 32)
    assert mn_ha is not None and relayed[: mn_ha.end] == from_mn[: mn_ha.end]
    kinds = [type(e).__name__ for e in RegistrationRequest.decode(relayed).extensions]
    assert kinds == ["NaiExtension", "AuthenticationExtension", "UdpTunnelRequest", "AuthenticationExtension"]
    assert verify_with(relayed, 32, MN_HA) and verify_with(relayed, 34, FA_HA)
    assert locate_authentication(relayed, 33) is None  # MN-FA was for the FA only


def test_fa_relay_request_without_additions_is_the_part_through_mn_ha() -> None:
    from_mn = build_request(_request(T), MN_HA, [EncapsulatingDeliveryStyle()], MN_FA)
    assert fa_relay_request(from_mn) == build_request(_request(T), MN_HA)


def test_fa_relay_request_refusals() -> None:
    with pytest.raises(ValueError, match=re.escape("RFC 3519 §4.6.1")):
        fa_relay_request(build_request(_request(D | T), MN_HA), UdpTunnelRequest(False, False, 0))
    with pytest.raises(ValueError, match="MN-HA"):
        fa_relay_request(_request(T).encode())
    with pytest.raises(ValueError, match=re.escape("RFC 5944 §1.8")):
        fa_relay_request(build_request(_request(T), MN_HA) + b"\x24")
    with pytest.raises(DecodeError):
        fa_relay_request(b"\x01\x00")


def _reply(code: int, *extensions: Extension) -> RegistrationReply:
    return RegistrationReply(code, 300, HOA, HA, ID, extensions)


def test_rfc5944_reply_order_extensions_mn_ha_then_fa_ha() -> None:
    reply = _reply(
        0,
        PrefixReply.answering(PrefixRequest.for_network(NET48), 0),
        PrefixReply.answering(PrefixRequest.for_network(NET64), 9),
        UdpTunnelReply(0, False, 110),
    )
    raw = build_reply(reply, MN_HA, FA_HA)
    decoded = RegistrationReply.decode(raw)
    assert decoded.extensions[:3] == reply.extensions
    assert [e.type for e in decoded.extensions[3:]] == [32, 34]
    assert verify_with(raw, 32, MN_HA) and verify_with(raw, 34, FA_HA)
    assert [r.accepted for r in decoded.prefix_replies] == [True, False]


def test_rfc5454_s3_3_build_reply_rejects_two_replies_for_one_prefix() -> None:
    """RFC 5454 §3.3: the HA MUST NOT include more than one Prefix Reply for the same prefix."""
    twice = PrefixReply(0, 48, NET48.network_address)
    with pytest.raises(ValueError, match=re.escape("RFC 5454 §3.3")):
        build_reply(_reply(0, twice, twice), MN_HA)
    with pytest.raises(ValueError):
        build_reply(_reply(0, UdpTunnelReply(0, False, 0), UdpTunnelReply(0, False, 0)), MN_HA)
    with pytest.raises(ValueError):
        build_reply(_reply(0, PrefixRequest.for_network(NET48)), MN_HA)


def test_fa_relay_reply_drops_fa_ha_and_adds_mn_fa() -> None:
    from_ha = build_reply(_reply(0, UdpTunnelReply(0, False, 0)), MN_HA, FA_HA)
    relayed = fa_relay_reply(from_ha, MN_FA)
    assert [e.type for e in RegistrationReply.decode(relayed).extensions] == [44, 32, 33]
    assert verify_with(relayed, 32, MN_HA) and verify_with(relayed, 33, MN_FA)
    assert not verify(relayed, 34, FA_HA.key)
    assert fa_relay_reply(from_ha) == build_reply(_reply(0, UdpTunnelReply(0, False, 0)), MN_HA)


def test_append_foreign_home_authentication() -> None:
    """RFC 5944 §3.5.4: FA-HA follows MN-HA; a relayed reply gets it appended once."""
    plain = build_reply(_reply(0), MN_HA)
    signed = append_foreign_home_authentication(plain, FA_HA)
    assert signed.startswith(plain) and verify_with(signed, 34, FA_HA)
    assert signed == build_reply(_reply(0), MN_HA, FA_HA)
    with pytest.raises(ValueError):
        append_foreign_home_authentication(signed, FA_HA)
    with pytest.raises(ValueError):
        append_foreign_home_authentication(_reply(0).encode(), FA_HA)


def test_rfc5944_s3_7_2_foreign_agent_denial() -> None:
    raw = build_foreign_agent_reply(_reply(ReplyCode.FA_DELIVERY_STYLE_UNSUPPORTED), MN_FA)
    decoded = RegistrationReply.decode(raw)
    assert decoded.code is ReplyCode.FA_DELIVERY_STYLE_UNSUPPORTED
    assert verify_with(raw, 33, MN_FA)
    assert build_foreign_agent_reply(_reply(69)) == _reply(69).encode()
    with pytest.raises(ValueError):
        build_foreign_agent_reply(_reply(69, UdpTunnelReply(64, False, 0)))


# --- hypothesis round trips ------------------------------------------------------------------------

addresses = st.integers(0, 2**32 - 1).map(IPv4Address)
requests = st.builds(
    RegistrationRequest,
    flags=st.integers(0, 255).map(RegistrationFlag),
    lifetime=st.integers(0, 0xFFFF),
    home_address=addresses,
    home_agent=addresses,
    care_of_address=addresses,
    identification=st.integers(0, 2**64 - 1),
    extensions=extension_sequences,
)
replies = st.builds(
    RegistrationReply,
    code=st.integers(0, 255),
    lifetime=st.integers(0, 0xFFFF),
    home_address=addresses,
    home_agent=addresses,
    identification=st.integers(0, 2**64 - 1),
    extensions=extension_sequences,
)


@settings(max_examples=150, deadline=None)
@given(requests)
def test_roundtrip_requests(request: RegistrationRequest) -> None:
    raw = request.encode()
    assert RegistrationRequest.decode(raw) == request
    assert decode_message(raw) == request
    assert RegistrationRequest.decode(raw).encode() == raw


@settings(max_examples=150, deadline=None)
@given(replies)
def test_roundtrip_replies(reply: RegistrationReply) -> None:
    raw = reply.encode()
    assert RegistrationReply.decode(raw) == reply
    assert decode_message(raw) == reply
    assert RegistrationReply.decode(raw).encode() == raw
