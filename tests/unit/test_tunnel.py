"""Tunnel encapsulation / decapsulation, ECN and DSCP rules (agents/mip/tunnel.py, agents/mip/ecn.py).

Hex vectors were assembled field by field; every checksum in them was summed by hand
(e.g. the IP-in-IP outer header: 45b9+0030+0000+4000+4004+c000+0201+0a00+020a = 0x93f9, ~ = 0x6c06).
"""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agents.mip.ecn import (
    CE,
    ECT_0,
    ECT_1,
    NOT_ECT,
    DscpModel,
    EcnMode,
    dscp_egress,
    dscp_ingress,
    ecn_egress,
    ecn_ingress,
    inner_tos_after_egress,
    outer_tos,
)
from agents.mip.errors import DecodeError
from agents.mip.ip import IPv4Header, IPv6Header, internet_checksum, packet_tos, with_tos
from agents.mip.tunnel import (
    Decapsulated,
    GreHeader,
    HopLimitExceeded,
    MinimalForwardingHeader,
    TunnelDataHeader,
    check_static_tunnel_mtu,
    decapsulate,
    decapsulate_gre_payload,
    decapsulate_udp_tunnel_data,
    encapsulate,
    encapsulate_gre,
    encapsulate_ipv4_in_ipv4,
    encapsulate_ipv6_in_ipv4,
    encapsulate_minimal,
    encapsulate_udp_tunnel_data,
    exceeds_tunnel_mtu,
    ipv4_embedded_link_local,
)

HA = IPv4Address("192.0.2.1")
COA = IPv4Address("10.0.2.10")
HOA = IPv4Address("10.1.0.5")
CN = IPv4Address("198.51.100.1")
UDP8 = "d431003500080000"  # an 8-byte UDP header, the inner payload of every vector

# Inner IPv4: TOS 0xb9 (DSCP 46, ECT(1)), 28 bytes, ID 0x1234, DF, TTL 64, UDP, HoA -> CN.
INNER4 = bytes.fromhex("45b9001c12344000" "4011f3a9" "0a010005" "c6336401" + UDP8)
# RFC 2003 §3.1 outer: TOS copied, Total Length 48, ID 0, DF copied, TTL 64, protocol 4, HA -> CoA.
OUTER_IPIP = bytes.fromhex("45b9003000004000" "40046c06" "c0000201" "0a00020a") + INNER4
# Inner IPv6: traffic class 0xb8 (DSCP 46, Not-ECT), payload 8, UDP, hop limit 64.
INNER6 = bytes.fromhex("6b800000" "0008" "11" "40" "20010db8000100000000000000000005"
                       "20010db8000200000000000000000001" + UDP8)
# RFC 4213 §3.5 outer: TOS 0xb8, Total Length 8 + 60 = 0x44, DF clear, protocol 41.
OUTER_6IN4 = bytes.fromhex("45b8004400000000" "4029abce" "c0000201" "0a00020a") + INNER6
# RFC 2784 GRE, protocol type 0x0800, without and with checksum.
OUTER_GRE = bytes.fromhex("45b9003400004000" "402f6bd7" "c0000201" "0a00020a" "00000800") + INNER4
OUTER_GRE_CHECKSUM = bytes.fromhex("45b9003800004000" "402f6bd3" "c0000201" "0a00020a"
                                   "80000800a3900000") + INNER4
# RFC 2004 §3, S = 0: the HA tunnels its own datagram; forwarding header 11 00 c4ca + original dst.
MINIMAL_INNER_S0 = bytes.fromhex("4500001c12344000" "40113c67" "c0000201" "c6336401" + UDP8)
MINIMAL_S0 = bytes.fromhex("4500002412344000" "40375a64" "c0000201" "0a00020a"
                           "1100c4ca" "c6336401" + UDP8)
# RFC 2004 §3, S = 1: original source 10.1.0.5 moves into the 12-byte forwarding header.
MINIMAL_INNER_S1 = bytes.fromhex("4500001c12344000" "4011f462" "0a010005" "c6336401" + UDP8)
MINIMAL_S1 = bytes.fromhex("4500002812344000" "40375a60" "c0000201" "0a00020a"
                           "1180ba44" "c6336401" "0a010005" + UDP8)


def inner4(tos: int = 0, ttl: int = 64, flags: int = 2, payload: bytes = b"\x00" * 8) -> bytes:
    header = IPv4Header(HOA, CN, 17, 20 + len(payload), tos=tos, flags=flags, ttl=ttl, identification=7)
    return header.encode() + payload


def inner6(traffic_class: int = 0, hop_limit: int = 64, payload: bytes = b"\x00" * 8) -> bytes:
    header = IPv6Header(IPv6Address("2001:db8:1::5"), IPv6Address("2001:db8:2::1"), 17, len(payload),
                        traffic_class=traffic_class, hop_limit=hop_limit)
    return header.encode() + payload


class TestVectors:
    def test_ipv4_in_ipv4(self) -> None:
        """RFC 2003 §3.1 outer header."""
        assert encapsulate_ipv4_in_ipv4(INNER4, HA, COA) == OUTER_IPIP
        assert decapsulate(OUTER_IPIP) == Decapsulated(HA, COA, 4, INNER4, 4)

    def test_ipv6_in_ipv4(self) -> None:
        """RFC 4213 §3.5 outer header."""
        assert encapsulate_ipv6_in_ipv4(INNER6, HA, COA) == OUTER_6IN4
        assert decapsulate(OUTER_6IN4) == Decapsulated(HA, COA, 41, INNER6, 6)

    def test_gre(self) -> None:
        """RFC 2784 §2: 4-byte header, protocol type 0x0800; C bit adds checksum + Reserved1."""
        assert encapsulate_gre(INNER4, HA, COA) == OUTER_GRE
        assert encapsulate_gre(INNER4, HA, COA, checksum=True) == OUTER_GRE_CHECKSUM
        assert decapsulate(OUTER_GRE) == Decapsulated(HA, COA, 47, INNER4, 4)
        assert decapsulate(OUTER_GRE_CHECKSUM) == Decapsulated(HA, COA, 47, INNER4, 4)

    def test_minimal_without_source(self) -> None:
        """RFC 2004 §3: S = 0 when the encapsulator is the original source; 8-byte forwarding header."""
        assert encapsulate_minimal(MINIMAL_INNER_S0, HA, COA) == MINIMAL_S0
        assert decapsulate(MINIMAL_S0) == Decapsulated(HA, COA, 55, MINIMAL_INNER_S0, 4)

    def test_minimal_with_source(self) -> None:
        """RFC 2004 §3: S = 1 carries the original source; 12-byte forwarding header."""
        assert encapsulate_minimal(MINIMAL_INNER_S1, HA, COA) == MINIMAL_S1
        assert decapsulate(MINIMAL_S1) == Decapsulated(HA, COA, 55, MINIMAL_INNER_S1, 4)

    def test_tunnel_data_header(self) -> None:
        """RFC 3519 §3.3 type 4; next header 41 from RFC 5454 §3.9."""
        assert TunnelDataHeader(41).encode() == bytes.fromhex("04290000")
        assert TunnelDataHeader.decode(bytes.fromhex("04040000")) == TunnelDataHeader(4)
        assert TunnelDataHeader.decode(bytes.fromhex("042f0007")) == TunnelDataHeader(47, 7)
        assert TunnelDataHeader(55).encode() == bytes.fromhex("04370000")  # minimal-in-UDP, RFC 3519 §3.3
        assert TunnelDataHeader.decode(bytes.fromhex("04370000")) == TunnelDataHeader(55)
        assert TunnelDataHeader(47).encode() == bytes.fromhex("042f0000")
        assert encapsulate_udp_tunnel_data(INNER6, 41) == bytes.fromhex("04290000") + INNER6
        assert decapsulate_udp_tunnel_data(bytes.fromhex("04040000") + INNER4) == (4, INNER4)

    def test_addresses_accept_packed_bytes(self) -> None:
        assert encapsulate_ipv4_in_ipv4(INNER4, HA.packed, COA.packed) == OUTER_IPIP


class TestEcnIngress:
    @pytest.mark.parametrize(("inner", "normal", "full", "limited"), [
        (NOT_ECT, NOT_ECT, NOT_ECT, NOT_ECT),
        (ECT_0, ECT_0, ECT_0, NOT_ECT),
        (ECT_1, ECT_1, ECT_1, NOT_ECT),
        (CE, CE, ECT_0, NOT_ECT),
    ])
    def test_modes(self, inner: int, normal: int, full: int, limited: int) -> None:
        """RFC 6040 §4.1 normal copies CE too; RFC 3168 §9.1.1 full: CE -> ECT(0); limited: Not-ECT."""
        assert ecn_ingress(inner, EcnMode.NORMAL) == normal
        assert ecn_ingress(inner, EcnMode.FULL_FUNCTIONALITY) == full
        assert ecn_ingress(inner, EcnMode.LIMITED) == limited
        for mode, expected in ((EcnMode.NORMAL, normal), (EcnMode.FULL_FUNCTIONALITY, full),
                               (EcnMode.LIMITED, limited)):
            outer = encapsulate_ipv4_in_ipv4(inner4(tos=0xB8 | inner), HA, COA, ecn_mode=mode)
            assert outer[1] == 0xB8 | expected
            outer6 = encapsulate_ipv6_in_ipv4(inner6(traffic_class=0xB8 | inner), HA, COA, ecn_mode=mode)
            assert outer6[1] == 0xB8 | expected

    def test_rejects_out_of_range(self) -> None:
        with pytest.raises(ValueError):
            ecn_ingress(4)


# RFC 6040 §4.2, Figure 4: rows = arriving inner, columns = arriving outer (Not-ECT, ECT(0), ECT(1), CE).
EGRESS_TABLE = [
    (NOT_ECT, (NOT_ECT, NOT_ECT, NOT_ECT, None)),
    (ECT_0, (ECT_0, ECT_0, ECT_1, CE)),
    (ECT_1, (ECT_1, ECT_1, ECT_1, CE)),
    (CE, (CE, CE, CE, CE)),
]


class TestEcnEgress:
    @pytest.mark.parametrize(("inner", "row"), EGRESS_TABLE)
    def test_rfc6040_table_row(self, inner: int, row: tuple[int | None, ...]) -> None:
        """RFC 6040 §4.2 egress table, one row per arriving inner ECN field."""
        for outer, expected in zip((NOT_ECT, ECT_0, ECT_1, CE), row, strict=True):
            assert ecn_egress(outer, inner) == expected

    @pytest.mark.parametrize(("inner", "row"), EGRESS_TABLE)
    def test_decapsulate_applies_row(self, inner: int, row: tuple[int | None, ...]) -> None:
        """RFC 6040 §4.2 through decapsulate(): None = drop, else the inner ECN is rewritten."""
        for outer, expected in zip((NOT_ECT, ECT_0, ECT_1, CE), row, strict=True):
            for packet in (inner4(tos=0x28 | inner), inner6(traffic_class=0x28 | inner)):
                tunnelled = bytearray(encapsulate(packet, HA, COA, 4))
                tunnelled[1] = 0x28 | outer
                tunnelled[10:12] = b"\0\0"
                tunnelled[10:12] = internet_checksum(tunnelled[:20]).to_bytes(2, "big")
                result = decapsulate(bytes(tunnelled))
                if expected is None:
                    assert result is None
                    continue
                assert result is not None
                assert packet_tos(result.inner) == 0x28 | expected
                assert result.inner == with_tos(packet, 0x28 | expected)
                if result.inner_version == 4:
                    assert internet_checksum(result.inner[:20]) == 0

    def test_rejects_out_of_range(self) -> None:
        with pytest.raises(ValueError):
            ecn_egress(0, 5)


class TestDscp:
    def test_uniform_copies_both_ways(self) -> None:
        """RFC 2983 §3.1 uniform model: DSCP inner -> outer, and outer -> inner at egress."""
        assert dscp_ingress(46) == 46 and dscp_egress(10, 46) == 10
        assert outer_tos(0xB9) == 0xB9
        remarked = bytearray(OUTER_IPIP)
        remarked[1] = 0x29  # a router in the tunnel re-marked DSCP 10, ECT(1)
        remarked[10:12] = b"\0\0"
        remarked[10:12] = internet_checksum(remarked[:20]).to_bytes(2, "big")
        result = decapsulate(bytes(remarked))
        assert result is not None and result.inner[1] == 0x29

    def test_pipe_model(self) -> None:
        """RFC 2983 §3.2 pipe model: outer DSCP is tunnel-local (0); the egress keeps the inner DSCP."""
        assert dscp_ingress(46, DscpModel.PIPE) == 0 and dscp_egress(10, 46, DscpModel.PIPE) == 46
        outer = encapsulate_ipv4_in_ipv4(INNER4, HA, COA, dscp_model=DscpModel.PIPE)
        assert outer[1] == 0x01
        assert inner_tos_after_egress(0x29, 0xB9, DscpModel.PIPE) == 0xB9
        assert inner_tos_after_egress(0x03, 0xB8) is None
        result = decapsulate(outer, dscp_model=DscpModel.PIPE)
        assert result is not None and result.inner == INNER4


class TestIPv4InIPv4Rules:
    def test_df_copied_only_if_set(self) -> None:
        """RFC 2003 §3.1: DF MUST be copied if set on the inner header."""
        assert encapsulate_ipv4_in_ipv4(inner4(flags=2), HA, COA)[6] & 0x40
        assert not encapsulate_ipv4_in_ipv4(inner4(flags=0), HA, COA)[6] & 0x40

    def test_outer_ttl_parameter_and_inner_ttl_unchanged(self) -> None:
        """RFC 2003 §3.1: outer TTL chosen by the encapsulator; inner TTL unchanged unless forwarding."""
        outer = encapsulate_ipv4_in_ipv4(INNER4, HA, COA, ttl=5)
        assert outer[8] == 5 and outer[20:] == INNER4 and internet_checksum(outer[:20]) == 0

    def test_forwarding_decrements_inner_ttl(self) -> None:
        """RFC 2003 §3.1: decrement the inner TTL when encapsulating as part of forwarding."""
        outer = encapsulate_ipv4_in_ipv4(INNER4, HA, COA, forwarding=True)
        assert outer[20 + 8] == 63 and internet_checksum(outer[20:40]) == 0

    def test_never_encapsulate_ttl_zero(self) -> None:
        """RFC 2003 §3.1: an encapsulator MUST NOT encapsulate a datagram with TTL = 0."""
        with pytest.raises(HopLimitExceeded):
            encapsulate_ipv4_in_ipv4(inner4(ttl=0), HA, COA)
        with pytest.raises(HopLimitExceeded):
            encapsulate_ipv4_in_ipv4(inner4(ttl=1), HA, COA, forwarding=True)
        with pytest.raises(HopLimitExceeded):
            encapsulate_gre(inner4(ttl=1), HA, COA, forwarding=True)

    def test_rejects_wrong_inner(self) -> None:
        with pytest.raises(ValueError):
            encapsulate_ipv4_in_ipv4(INNER6, HA, COA)
        with pytest.raises(ValueError):
            encapsulate_ipv4_in_ipv4(INNER4[:-1], HA, COA)  # total length disagrees
        with pytest.raises(ValueError):
            encapsulate_ipv4_in_ipv4(INNER4, b"\x01\x02\x03", COA)
        with pytest.raises(ValueError):
            encapsulate_ipv4_in_ipv4(INNER4, HA, COA, ttl=256)


class TestIPv6InIPv4Rules:
    @pytest.mark.parametrize("payload_length", [0, 1, 8, 1240, 1440])
    def test_total_length_is_payload_plus_60(self, payload_length: int) -> None:
        """RFC 4213 §3.5: Total Length = IPv6 Payload Length + 60; IHL 5; protocol 41."""
        outer = encapsulate_ipv6_in_ipv4(inner6(payload=bytes(payload_length)), HA, COA)
        assert int.from_bytes(outer[2:4], "big") == payload_length + 60 == len(outer)
        assert outer[0] == 0x45 and outer[9] == 41

    def test_df_not_set(self) -> None:
        """RFC 4213 §3.2: with a static tunnel MTU the DF bit MUST NOT be set."""
        assert int.from_bytes(encapsulate_ipv6_in_ipv4(INNER6, HA, COA)[6:8], "big") == 0
        assert int.from_bytes(encapsulate_gre(INNER6, HA, COA)[6:8], "big") == 0

    def test_hop_limit_decrement_when_forwarding(self) -> None:
        """RFC 4213 §3.3: the tunnel is one hop; the forwarding encapsulator decrements."""
        assert encapsulate_ipv6_in_ipv4(INNER6, HA, COA)[20 + 7] == 64
        assert encapsulate_ipv6_in_ipv4(INNER6, HA, COA, forwarding=True)[20 + 7] == 63
        with pytest.raises(HopLimitExceeded):
            encapsulate_ipv6_in_ipv4(inner6(hop_limit=1), HA, COA, forwarding=True)

    def test_static_mtu_range(self) -> None:
        """RFC 4213 §3.2: static MTU 1280–1480, default 1280."""
        assert check_static_tunnel_mtu() == 1280
        assert check_static_tunnel_mtu(1480) == 1480
        for bad in (1279, 1481):
            with pytest.raises(ValueError):
                check_static_tunnel_mtu(bad)
        assert exceeds_tunnel_mtu(1281) and not exceeds_tunnel_mtu(1280)

    def test_link_local(self) -> None:
        """RFC 4213 §3.7: fe80::/64 + 32 zero bits + the IPv4 address."""
        assert ipv4_embedded_link_local(COA) == IPv6Address("fe80::10.0.2.10") == IPv6Address("fe80::a00:20a")

    def test_rejects_ipv4_inner(self) -> None:
        with pytest.raises(ValueError):
            encapsulate_ipv6_in_ipv4(INNER4, HA, COA)


class TestDispatch:
    def test_ip_in_ip_carries_ipv6_as_41(self) -> None:
        """RFC 5454 §3.3.2: in IP-in-IP mode IPv6 goes as protocol 41 (RFC 4213)."""
        assert encapsulate(INNER6, HA, COA, 4) == OUTER_6IN4
        assert encapsulate(INNER4, HA, COA, 4) == OUTER_IPIP
        assert encapsulate(INNER4, HA, COA, 47, gre_checksum=True) == OUTER_GRE_CHECKSUM
        assert encapsulate(MINIMAL_INNER_S1, HA, COA, 55) == MINIMAL_S1

    def test_gre_ipv6_protocol_type(self) -> None:
        """RFC 5454 §3.3.2 / RFC 2464 §3: GRE carries IPv6 with protocol type 0x86DD."""
        outer = encapsulate(INNER6, HA, COA, 47)
        assert outer[20:24] == bytes.fromhex("000086dd")
        assert decapsulate(outer) == Decapsulated(HA, COA, 47, INNER6, 6)

    def test_rejects(self) -> None:
        for inner, protocol in ((INNER4, 41), (INNER4, 17), (INNER6, 55)):
            with pytest.raises(ValueError):
                encapsulate(inner, HA, COA, protocol)


class TestMinimalRules:
    def test_refuses_fragments(self) -> None:
        """RFC 2004 §3: MUST NOT be used on a datagram that is already fragmented."""
        for flags, offset in ((1, 0), (0, 5)):
            header = IPv4Header(HOA, CN, 17, 28, flags=flags, fragment_offset=offset)
            with pytest.raises(ValueError):
                encapsulate_minimal(header.encode() + bytes(8), HA, COA)

    def test_refuses_ipv6(self) -> None:
        """RFC 5454 §3.3.2: minimal encapsulation cannot carry IPv6."""
        with pytest.raises(ValueError):
            encapsulate_minimal(INNER6, HA, COA)

    def test_ttl_not_modified(self) -> None:
        """RFC 2004 §3: the TTL is not modified by encapsulation."""
        assert encapsulate_minimal(MINIMAL_INNER_S1, HA, COA)[8] == MINIMAL_INNER_S1[8]
        assert encapsulate_minimal(MINIMAL_INNER_S1, HA, COA, forwarding=True)[8] == 63

    def test_bad_forwarding_checksum(self) -> None:
        """RFC 2004 §3: the forwarding header carries its own checksum."""
        broken = bytearray(MINIMAL_S1)
        broken[23] ^= 1
        with pytest.raises(DecodeError):
            decapsulate(bytes(broken))

    def test_forwarding_header_codec(self) -> None:
        assert MinimalForwardingHeader.decode(MINIMAL_S1[20:32]) == MinimalForwardingHeader(17, CN, HOA)
        assert MinimalForwardingHeader(17, CN).encode() == MINIMAL_S0[20:28]
        with pytest.raises(DecodeError):
            MinimalForwardingHeader.decode(MINIMAL_S1[20:28])


class TestGreRules:
    def test_header_codec(self) -> None:
        assert GreHeader.decode(OUTER_GRE[20:]) == GreHeader(0x0800)
        assert GreHeader.decode(OUTER_GRE_CHECKSUM[20:]) == GreHeader(0x0800, True, 0xA390)
        assert GreHeader(0x0800, True).encode(INNER4) == OUTER_GRE_CHECKSUM[20:28]

    def test_version_must_be_zero(self) -> None:
        """RFC 2784 §2.3.1: Version MUST be 0."""
        with pytest.raises(DecodeError):
            GreHeader.decode(bytes.fromhex("00010800") + INNER4)

    @pytest.mark.parametrize("bit", [1, 2, 3, 4, 5])
    def test_reserved0_bits_1_to_5_drop(self, bit: int) -> None:
        """RFC 2784 §2.3: discard if any of Reserved0 bits 1–5 is set (RFC 1701 not implemented)."""
        first = (0x8000 >> bit).to_bytes(2, "big")
        with pytest.raises(DecodeError):
            decapsulate_gre_payload(first + b"\x08\x00" + INNER4)

    @pytest.mark.parametrize("bit", [6, 7, 8, 9, 10, 11, 12])
    def test_reserved0_bits_6_to_12_ignored(self, bit: int) -> None:
        """RFC 2784 §2.2: Reserved0 bits 6–12 are ignored on receipt."""
        first = (0x8000 >> bit).to_bytes(2, "big")
        assert decapsulate_gre_payload(first + b"\x08\x00" + INNER4) == (0x0800, INNER4)

    def test_bad_checksum_and_protocol_type(self) -> None:
        broken = bytearray(OUTER_GRE_CHECKSUM[20:])
        broken[5] ^= 1
        with pytest.raises(DecodeError):
            GreHeader.decode(bytes(broken))
        with pytest.raises(DecodeError):
            decapsulate_gre_payload(bytes.fromhex("00006558") + INNER4)  # transparent Ethernet


class TestDecapsulateRejects:
    def corrupt(self, packet: bytes, offset: int, value: int, fix_checksum: bool = True) -> bytes:
        out = bytearray(packet)
        out[offset] = value
        if fix_checksum:
            out[10:12] = b"\0\0"
            out[10:12] = internet_checksum(out[:20]).to_bytes(2, "big")
        return bytes(out)

    @pytest.mark.parametrize(("offset", "value", "fix"), [
        (9, 17, True),  # not a tunnel protocol
        (9, 41, True),  # protocol 41 with an IPv4 inner datagram
        (6, 0x20, True),  # MF set: a fragment
        (10, 0, False),  # bad outer checksum
        (0, 0x44, True),  # IHL 4
        (3, 0x31, True),  # total length beyond the data
        (23, 0x1D, True),  # inner total length disagrees
    ])
    def test_malformed(self, offset: int, value: int, fix: bool) -> None:
        with pytest.raises(DecodeError):
            decapsulate(self.corrupt(OUTER_IPIP, offset, value, fix))

    def test_truncated(self) -> None:
        for size in (0, 19, 20, 39):
            with pytest.raises(DecodeError):
                decapsulate(OUTER_IPIP[:size])

    def test_udp_tunnel_data_rejects(self) -> None:
        for bad in ("03040000", "04110000", "0404"):
            with pytest.raises(DecodeError):
                TunnelDataHeader.decode(bytes.fromhex(bad))
        with pytest.raises(DecodeError):
            decapsulate_udp_tunnel_data(bytes.fromhex("04290000") + INNER4)
        with pytest.raises(ValueError):
            encapsulate_udp_tunnel_data(INNER4, 41)
        with pytest.raises(ValueError):
            TunnelDataHeader(17).encode()


inner4_strategy = st.builds(inner4, st.integers(0, 255), st.integers(1, 255), st.sampled_from([0, 2]),
                            st.binary(max_size=64))
inner6_strategy = st.builds(inner6, st.integers(0, 255), st.integers(1, 255), st.binary(max_size=64))


class TestRoundTrips:
    @settings(max_examples=150)
    @given(st.one_of(inner4_strategy, inner6_strategy), st.sampled_from([4, 41, 47, 55]),
           st.sampled_from(list(EcnMode)), st.sampled_from(list(DscpModel)), st.booleans())
    def test_decapsulate_inverts_encapsulate(self, inner: bytes, protocol: int, ecn_mode: EcnMode,
                                             dscp_model: DscpModel, gre_checksum: bool) -> None:
        """With the same DSCP model at both ends, the inner datagram comes out unchanged (RFC 6040 §4)."""
        assume((inner[0] >> 4, protocol) not in {(6, 55), (4, 41)})
        outer = encapsulate(inner, HA, COA, protocol, ecn_mode=ecn_mode, dscp_model=dscp_model,
                            gre_checksum=gre_checksum)
        assert internet_checksum(outer[:20]) == 0
        result = decapsulate(outer, dscp_model=dscp_model)
        assert result is not None
        assert result.inner == inner
        assert (result.outer_source, result.outer_destination) == (HA, COA)

    @settings(max_examples=100)
    @given(st.integers(0, 0xFFFF), st.booleans(), st.integers(0, 0x7F), st.integers(0, 0xFFFF),
           st.binary(max_size=32))
    def test_gre_header(self, protocol_type: int, checksum: bool, reserved0: int, reserved1: int,
                        payload: bytes) -> None:
        header = GreHeader(protocol_type, checksum, None, reserved0, reserved1 if checksum else 0)
        data = header.encode(payload) + payload
        assert dataclasses.replace(GreHeader.decode(data), checksum=None) == header

    @settings(max_examples=100)
    @given(st.integers(0, 255), st.integers(0, 2**32 - 1), st.none() | st.integers(0, 2**32 - 1),
           st.integers(0, 0x7F))
    def test_minimal_forwarding_header(self, protocol: int, destination: int, source: int | None,
                                       reserved: int) -> None:
        header = MinimalForwardingHeader(protocol, IPv4Address(destination),
                                         None if source is None else IPv4Address(source), reserved)
        assert MinimalForwardingHeader.decode(header.encode()) == header

    @settings(max_examples=50)
    @given(st.sampled_from([4, 41, 47, 55]), st.integers(0, 0xFFFF))
    def test_tunnel_data_header(self, next_header: int, reserved: int) -> None:
        header = TunnelDataHeader(next_header, reserved)
        assert TunnelDataHeader.decode(header.encode()) == header

    @settings(max_examples=50)
    @given(st.one_of(inner4_strategy, inner6_strategy))
    def test_udp_tunnel_data(self, inner: bytes) -> None:
        next_header = 4 if inner[0] >> 4 == 4 else 41
        payload = encapsulate_udp_tunnel_data(inner, next_header)
        assert decapsulate_udp_tunnel_data(payload) == (next_header, inner)
