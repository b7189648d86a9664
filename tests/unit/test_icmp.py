"""ICMP Agent Advertisement / Solicitation (agents/mip/icmp.py), RFC 5944 §2 and RFC 1256."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.mip.errors import DecodeError
from agents.mip.icmp import (
    ADVERTISEMENT_DESTINATIONS,
    ADVERTISEMENT_TTL,
    MOBILE_AGENTS,
    RESERVED_FLAGS,
    SOLICITATION_DESTINATIONS,
    SOLICITATION_TTL,
    AdvertisementFlag,
    AgentAdvertisement,
    AgentSolicitation,
    MobilityAgentExtension,
    agent_rebooted,
    decode_agent_message,
    internet_checksum,
    max_advertisement_interval,
    next_sequence,
)

FA = IPv4Address("10.0.2.1")
F = AdvertisementFlag

# FA advertisement: code 0, 1 router (10.0.2.1, preference 0), lifetime 1800; ext 16 (Length 6 + 4 = 10):
# sequence 1, registration lifetime 300, flags F|T = 0x1100, CoA 10.0.2.1; ext 19 (Length 1): /24;
# one padding byte. Checksum hand-summed: 0x7644 -> ~ = 0x89bb.
FA_ADVERTISEMENT = bytes.fromhex("090089bb" "01020708" "0a000201" "00000000"
                                 "100a" "0001" "012c" "1100" "0a000201" "130118" "00")
FA_FIELDS = AgentAdvertisement(
    code=0, lifetime=1800, router_addresses=((FA, 0),),
    mobility=MobilityAgentExtension(1, 300, F.F | F.T, (FA,)), prefix_lengths=(24,), padding=1)

# HA-only advertisement: code 16 (no common traffic), 0 router addresses, ext 16 with H only,
# infinite registration lifetime, sequence 0, no care-of address.
HA_ADVERTISEMENT = bytes.fromhex("0910bfdf" "00020708" "1006" "0000" "ffff" "2000")
HA_FIELDS = AgentAdvertisement(16, 1800, (), MobilityAgentExtension(0, 0xFFFF, F.H))

# Unknown extensions kept in order: type 24 (0–127, so receivers must discard) and type 200 (skippable).
UNKNOWN_ADVERTISEMENT = bytes.fromhex("0900a5d1" "00020708" "100a" "0001" "012c" "101f" "0a000201"
                                      "1803010203" "c800")

SOLICITATION = bytes.fromhex("0a00f5ff00000000")


def checksummed(message: bytes | bytearray) -> bytes:
    out = bytearray(message)
    out[2:4] = b"\0\0"
    out[2:4] = internet_checksum(out).to_bytes(2, "big")
    return bytes(out)


class TestAdvertisementVectors:
    def test_fa_decode(self) -> None:
        assert AgentAdvertisement.decode(FA_ADVERTISEMENT) == FA_FIELDS

    def test_fa_encode(self) -> None:
        """RFC 5944 §2.1: ext 16 follows the router entries; ext 19 after it; padding last (§2.1.3)."""
        assert FA_FIELDS.encode() == FA_ADVERTISEMENT

    def test_ha_vector(self) -> None:
        """RFC 5944 §2.1: Num Addrs MAY be 0; code 16 = not a router for common traffic."""
        assert HA_FIELDS.encode() == HA_ADVERTISEMENT
        assert AgentAdvertisement.decode(HA_ADVERTISEMENT) == HA_FIELDS
        assert HA_FIELDS.problems() == ()

    def test_unknown_extensions_kept(self) -> None:
        """RFC 5944 §1.8: unknown 0–127 → discard the message; 128–255 → skip the extension."""
        advertisement = AgentAdvertisement.decode(UNKNOWN_ADVERTISEMENT)
        assert advertisement.unknown_extensions == ((24, b"\x01\x02\x03"), (200, b""))
        assert advertisement.unrecognized_nonskippable == (24,)
        assert int(advertisement.mobility.flags) == 0x101F  # reserved bits kept on decode
        assert advertisement.encode() == UNKNOWN_ADVERTISEMENT

    def test_negative_preference(self) -> None:
        """RFC 1256 §3: Preference Level is a signed 32-bit value (0x80000000 = never default)."""
        advertisement = dataclasses.replace(FA_FIELDS, router_addresses=((FA, -(2**31)),))
        data = advertisement.encode()
        assert data[12:16] == b"\x80\x00\x00\x00"
        assert AgentAdvertisement.decode(data) == advertisement


class TestFlags:
    @pytest.mark.parametrize(("flag", "mask"), [
        (F.R, 0x8000), (F.B, 0x4000), (F.H, 0x2000), (F.F, 0x1000), (F.M, 0x0800), (F.G, 0x0400),
        (F.r, 0x0200), (F.T, 0x0100), (F.U, 0x0080), (F.X, 0x0040), (F.I, 0x0020),
    ])
    def test_each_bit(self, flag: AdvertisementFlag, mask: int) -> None:
        """RFC 5944 §2.1.1 (U: RFC 3519 §3.4, X: RFC 3543, I: RFC 4857): mask and wire position."""
        assert int(flag) == mask
        data = dataclasses.replace(FA_FIELDS, mobility=MobilityAgentExtension(1, 300, flag, (FA,))).encode()
        assert data[16 + 6:16 + 8] == mask.to_bytes(2, "big")  # ext 16 starts after 8 + 8 bytes
        assert AgentAdvertisement.decode(data).mobility.flags == flag

    @pytest.mark.parametrize("bit", [0x10, 0x08, 0x04, 0x02, 0x01])
    def test_reserved_bits_kept_and_ignored(self, bit: int) -> None:
        """RFC 5944 §2.4: the MN MUST ignore reserved bits rather than discard the advertisement."""
        fields = dataclasses.replace(FA_FIELDS, mobility=MobilityAgentExtension(1, 300, F.F | bit, (FA,)))
        decoded = AgentAdvertisement.decode(fields.encode())
        assert int(decoded.mobility.flags) & RESERVED_FLAGS == bit
        assert decoded.problems() == ()
        with pytest.raises(ValueError):
            decoded.validate()  # but an agent MUST send them as zero


class TestRules:
    @pytest.mark.parametrize(("flags", "coas", "fragment"), [
        (F.B | F.H, (), "B (busy)"),
        (F.M, (), "neither F nor H"),
        (F.R | F.H, (), "R (registration required)"),
        (F.F, (), "no care-of address"),
    ])
    def test_rfc5944_2_1_1(self, flags: AdvertisementFlag, coas: tuple[IPv4Address, ...],
                           fragment: str) -> None:
        """RFC 5944 §2.1.1: B needs F; F or H; R needs F; F needs at least one care-of address."""
        advertisement = dataclasses.replace(FA_FIELDS, mobility=MobilityAgentExtension(1, 300, flags, coas))
        assert any(fragment in problem for problem in advertisement.problems())
        with pytest.raises(ValueError, match="RFC 5944"):
            advertisement.validate()

    def test_code_0_or_16(self) -> None:
        """RFC 5944 §2.1: code 0 (routes common traffic) or 16 (does not)."""
        assert dataclasses.replace(FA_FIELDS, code=1).problems()
        assert dataclasses.replace(FA_FIELDS, code=16).problems() == ()

    def test_prefix_lengths_count(self) -> None:
        """RFC 5944 §2.1.2: the Prefix-Lengths Length equals Num Addrs."""
        advertisement = dataclasses.replace(FA_FIELDS, prefix_lengths=(24, 16))
        assert any("Num Addrs" in problem for problem in advertisement.problems())
        assert AgentAdvertisement.decode(advertisement.encode()).prefix_lengths == (24, 16)
        assert dataclasses.replace(FA_FIELDS, prefix_lengths=(33,)).problems()

    def test_padding_at_most_one(self) -> None:
        """RFC 5944 §2.1.3: at most one padding byte, and last."""
        two = dataclasses.replace(FA_FIELDS, padding=2)
        assert AgentAdvertisement.decode(two.encode()).padding == 2
        with pytest.raises(ValueError):
            two.validate()
        FA_FIELDS.validate()

    def test_ip_level_constants(self) -> None:
        """RFC 5944 §2.1 (TTL 1, 224.0.0.1 / 255.255.255.255), §2.2 (TTL 1), §2.3 (224.0.0.11)."""
        assert ADVERTISEMENT_TTL == SOLICITATION_TTL == 1
        assert {IPv4Address("224.0.0.1"), IPv4Address("255.255.255.255")} == ADVERTISEMENT_DESTINATIONS
        assert IPv4Address("224.0.0.11") == MOBILE_AGENTS and MOBILE_AGENTS in SOLICITATION_DESTINATIONS
        assert MOBILE_AGENTS not in ADVERTISEMENT_DESTINATIONS
        assert max_advertisement_interval(1800) == 600


class TestSequenceNumbers:
    def test_next_sequence_wraps_to_256(self) -> None:
        """RFC 5944 §2.3.2: 0 after boot, then up; after 0xFFFF comes 256."""
        assert next_sequence(0) == 1
        assert next_sequence(0xFFFE) == 0xFFFF
        assert next_sequence(0xFFFF) == 256
        with pytest.raises(ValueError):
            next_sequence(0x10000)

    @pytest.mark.parametrize(("previous", "current", "rebooted"), [
        (10, 5, True), (300, 255, True), (0xFFFF, 0, True), (0xFFFF, 100, True),
        (0xFFFF, 256, False), (1000, 256, False), (300, 299, False), (5, 6, False), (5, 5, False),
    ])
    def test_agent_rebooted(self, previous: int, current: int, rebooted: bool) -> None:
        """RFC 5944 §2.4.4: a drop to 0–255 is a reboot; a drop to 256 or more is rollover."""
        assert agent_rebooted(previous, current) is rebooted


class TestAdvertisementRejects:
    @pytest.mark.parametrize(("data", "reason"), [
        (FA_ADVERTISEMENT[:7], "8 bytes"),
        (FA_ADVERTISEMENT[:2] + b"\x89\xbc" + FA_ADVERTISEMENT[4:], "checksum"),
        (checksummed(b"\x0a" + FA_ADVERTISEMENT[1:]), "not an agent advertisement"),
        (checksummed(FA_ADVERTISEMENT[:1] + b"\x01" + FA_ADVERTISEMENT[2:]), "not an agent advertisement"),
        (checksummed(FA_ADVERTISEMENT[:5] + b"\x03" + FA_ADVERTISEMENT[6:]), "Addr Entry Size"),
        (checksummed(FA_ADVERTISEMENT[:4] + b"\x05" + FA_ADVERTISEMENT[5:]), "router addresses"),
        (checksummed(FA_ADVERTISEMENT[:16]), "type 16"),
        (checksummed(FA_ADVERTISEMENT[:30]), "truncated"),
        (checksummed(FA_ADVERTISEMENT[:17] + b"\x0f" + FA_ADVERTISEMENT[18:]), "truncated"),
        (checksummed(FA_ADVERTISEMENT[:17] + b"\x09" + FA_ADVERTISEMENT[18:27] + FA_ADVERTISEMENT[28:]),
         r"is not 6 \+ 4N"),
        (checksummed(FA_ADVERTISEMENT[:28] + FA_ADVERTISEMENT[16:28]), "second Mobility"),
        (checksummed(FA_ADVERTISEMENT[:31] + b"\x13\x01\x10"), "second Prefix"),
    ])
    def test_malformed(self, data: bytes, reason: str) -> None:
        with pytest.raises(DecodeError, match=reason):
            AgentAdvertisement.decode(data)

    def test_encode_rejects(self) -> None:
        for change in ({"lifetime": 0x10000}, {"unknown_extensions": ((16, b""),)},
                       {"router_addresses": ((FA, 2**31),)}, {"prefix_lengths": (256,)}):
            with pytest.raises(ValueError):
                dataclasses.replace(FA_FIELDS, **change).encode()
        with pytest.raises(ValueError):
            MobilityAgentExtension(0x10000, 0, F.F).encode()


class TestSolicitation:
    def test_vector(self) -> None:
        """RFC 5944 §2.2 / RFC 1256 §3: type 10, code 0, checksum, 4 reserved bytes (~0x0a00 = 0xf5ff)."""
        assert AgentSolicitation().encode() == SOLICITATION
        assert AgentSolicitation.decode(SOLICITATION) == AgentSolicitation()

    def test_validation(self) -> None:
        """RFC 1256 §4.2: checksum valid, code 0, length 8 or more (the reserved bytes are ignored)."""
        assert AgentSolicitation.decode(checksummed(SOLICITATION[:4] + b"\x01\x02\x03\x04" + b"xy"))
        for bad in (SOLICITATION[:7], SOLICITATION[:2] + b"\xf5\xfe" + SOLICITATION[4:],
                    checksummed(b"\x0a\x01" + SOLICITATION[2:]), checksummed(b"\x09" + SOLICITATION[1:])):
            with pytest.raises(DecodeError):
                AgentSolicitation.decode(bad)

    def test_dispatch(self) -> None:
        assert decode_agent_message(SOLICITATION) == AgentSolicitation()
        assert decode_agent_message(FA_ADVERTISEMENT) == FA_FIELDS
        with pytest.raises(DecodeError):
            decode_agent_message(b"")


addresses = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
mobility_extensions = st.builds(
    MobilityAgentExtension, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF).map(AdvertisementFlag), st.lists(addresses, max_size=6).map(tuple))
advertisements = st.builds(
    AgentAdvertisement, st.sampled_from([0, 16]), st.integers(0, 0xFFFF),
    st.lists(st.tuples(addresses, st.integers(-(2**31), 2**31 - 1)), max_size=5).map(tuple),
    mobility_extensions, st.none() | st.lists(st.integers(0, 255), max_size=5).map(tuple),
    st.integers(0, 3),
    st.lists(st.tuples(st.integers(1, 255).filter(lambda kind: kind not in (16, 19)), st.binary(max_size=20)),
             max_size=3).map(tuple))


@settings(max_examples=200)
@given(advertisements)
def test_advertisement_round_trip(advertisement: AgentAdvertisement) -> None:
    data = advertisement.encode()
    assert internet_checksum(data) == 0
    assert AgentAdvertisement.decode(data) == advertisement
