"""Tests for agents.mip.codes: flags, reply codes and extension numbers (protocol.md §1, §2, §6)."""

from __future__ import annotations

import pytest

from agents.mip.codes import (
    FIXED_PART_LENGTH,
    DsmipSubtype,
    ExtensionType,
    MessageType,
    PrefixReplyCode,
    RegistrationFlag,
    ReplyCode,
    UdpTunnelReplyCode,
    describe,
    is_accepted,
    is_fa_denial,
    is_ha_denial,
    is_skippable,
)

# Every code of protocol.md §1's table.
PROTOCOL_MD_CODES = [0, 1, *range(64, 83), 88, 89, 90, *range(96, 102), *range(104, 110), 127, 194]
PROTOCOL_MD_CODES += [*range(128, 145), 192]


def test_rfc5944_s3_3_flag_masks() -> None:
    """RFC 5944 §3.3: S B D M G r T x from the most significant bit."""
    masks = [(flag.name, flag.value) for flag in RegistrationFlag]
    assert masks == [
        ("S", 0x80), ("B", 0x40), ("D", 0x20), ("M", 0x10), ("G", 0x08), ("R", 0x04), ("T", 0x02), ("X", 0x01)
    ]


def test_every_flag_byte_is_representable() -> None:
    """Decoding keeps unknown/reserved flag bits: every byte value maps to a RegistrationFlag."""
    for value in range(256):
        assert int(RegistrationFlag(value)) == value


@pytest.mark.parametrize("code", PROTOCOL_MD_CODES)
def test_rfc5944_s3_4_every_listed_reply_code_is_named(code: int) -> None:
    """RFC 5944 §3.4 (and RFC 3024, 2794, 3519, 4064, 4433): each code of protocol.md §1 has a member."""
    assert ReplyCode(code).value == code


def test_reply_code_set_is_exactly_the_table() -> None:
    assert sorted(int(code) for code in ReplyCode) == sorted(PROTOCOL_MD_CODES)


def test_selected_reply_code_names() -> None:
    assert ReplyCode(136) is ReplyCode.HA_UNKNOWN_HOME_AGENT_ADDRESS
    assert ReplyCode(142) is ReplyCode.HA_UDP_ENCAPSULATION_UNAVAILABLE
    assert ReplyCode(143) is ReplyCode.HA_REREGISTER_WITH_REDIRECTED_HA
    assert ReplyCode(79) is ReplyCode.FA_DELIVERY_STYLE_UNSUPPORTED
    assert ReplyCode(133) is ReplyCode.HA_IDENTIFICATION_MISMATCH


def test_rfc5944_s3_4_accept_codes() -> None:
    """RFC 5944 §3.4: 0 and 1 are the success codes."""
    assert [code for code in range(256) if is_accepted(code)] == [0, 1]


def test_rfc4064_s2_denial_ranges() -> None:
    """RFC 4064 §2: FA denials 64-127, HA denials 128-192; 194 is an FA code (RFC 5944 §3.4)."""
    assert is_fa_denial(64) and is_fa_denial(127) and is_fa_denial(194)
    assert not is_fa_denial(63) and not is_fa_denial(128) and not is_fa_denial(193)
    assert is_ha_denial(128) and is_ha_denial(192)
    assert not is_ha_denial(127) and not is_ha_denial(193) and not is_ha_denial(194)
    for code in range(256):
        assert not (is_fa_denial(code) and is_ha_denial(code))
        assert not (is_accepted(code) and (is_fa_denial(code) or is_ha_denial(code)))


def test_describe_names_known_and_unknown_codes() -> None:
    assert describe(0) == "ACCEPTED (0)"
    assert describe(131) == "HA_MOBILE_NODE_FAILED_AUTHENTICATION (131)"
    assert describe(120) == "unknown foreign-agent denial (120)"
    assert describe(150) == "unknown home-agent denial (150)"
    assert describe(2) == "unknown code (2)"
    assert describe(255) == "unknown code (255)"
    for code in range(256):
        assert str(code) in describe(code)


def test_extension_type_numbers() -> None:
    """RFC 5454 §2: DSMIPv4 is 152, not 148 (RFC 5177 Mobile Network); RFC 3519: 144 and 44."""
    assert int(ExtensionType.DSMIPV4) == 152
    assert int(ExtensionType.MOBILE_NETWORK) == 148
    assert int(ExtensionType.UDP_TUNNEL_REQUEST) == 144
    assert int(ExtensionType.UDP_TUNNEL_REPLY) == 44
    assert {32, 33, 34, 36, 44, 130, 131, 137, 144, 148, 152} == {int(t) for t in ExtensionType}


def test_rfc5944_s1_8_skippability() -> None:
    """RFC 5944 §1.8: 0-127 non-skippable, 128-255 skippable; so 44 is not skippable and 144 is."""
    assert not is_skippable(ExtensionType.UDP_TUNNEL_REPLY)
    assert is_skippable(ExtensionType.UDP_TUNNEL_REQUEST)
    assert [t for t in range(256) if is_skippable(t)] == list(range(128, 256))


def test_rfc5454_s2_subtypes_and_prefix_reply_codes() -> None:
    """RFC 5454 §2.1-§2.3 subtypes and §2.2 codes: 0-7 accept, 8+ reject."""
    assert [int(s) for s in DsmipSubtype] == [1, 2, 3]
    assert [int(code) for code in PrefixReplyCode] == [0, 1, 8, 9]
    assert PrefixReplyCode(8) is PrefixReplyCode.REJECTED_UNSPECIFIED
    assert PrefixReplyCode(9) is PrefixReplyCode.REJECTED_ADMIN
    assert [c for c in range(256) if PrefixReplyCode.is_accepted(c)] == list(range(8))


def test_rfc3519_s3_2_udp_tunnel_reply_codes() -> None:
    assert UdpTunnelReplyCode(0) is UdpTunnelReplyCode.WILL_DO_TUNNELING
    assert UdpTunnelReplyCode(64) is UdpTunnelReplyCode.DECLINED_REASON_UNSPECIFIED


def test_message_types_and_fixed_lengths() -> None:
    """RFC 5944 §3.3/§3.4: request fixed part 24 bytes, reply 20; RFC 3519 §3.3 tunnel data is 4."""
    assert MessageType(4) is MessageType.TUNNEL_DATA
    assert FIXED_PART_LENGTH == {1: 24, 3: 20}
