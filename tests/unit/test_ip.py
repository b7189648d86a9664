"""IPv4 / IPv6 header codecs, the Internet checksum and TOS helpers (agents/mip/ip.py)."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.mip.errors import DecodeError
from agents.mip.ip import (
    FLAG_DONT_FRAGMENT,
    FLAG_MORE_FRAGMENTS,
    HopLimitExceeded,
    IPv4Header,
    IPv6Header,
    datagram_version,
    dscp,
    ecn,
    forwarded_ipv4,
    forwarded_ipv6,
    internet_checksum,
    make_tos,
    packet_tos,
    update_checksum,
    with_tos,
)

# The classic RFC 791 header example: UDP 192.168.0.1 -> 192.168.0.199, DF, TTL 64, checksum b861
# (hand-summed: 4500+0073+0000+4000+4011+c0a8+0001+c0a8+00c7 = 0x2479c -> 0x479e, ~ = 0xb861).
IPV4_VECTOR = bytes.fromhex("45000073000040004011b861c0a80001c0a800c7")
IPV4_FIELDS = IPv4Header(IPv4Address("192.168.0.1"), IPv4Address("192.168.0.199"), protocol=17,
                         total_length=0x73, flags=FLAG_DONT_FRAGMENT, ttl=64)

# IPv6: traffic class 0xb9 (DSCP 46 EF, ECT(1)), flow label 0x12345, 8 payload bytes, UDP, hop limit 64.
IPV6_VECTOR = bytes.fromhex("6b912345" "0008" "11" "40"
                            "20010db8000100000000000000000005" "20010db8000200000000000000000001")
IPV6_FIELDS = IPv6Header(IPv6Address("2001:db8:1::5"), IPv6Address("2001:db8:2::1"), next_header=17,
                         payload_length=8, traffic_class=0xB9, flow_label=0x12345, hop_limit=64)


def reference_checksum(data: bytes) -> int:
    """Word-by-word RFC 1071 reference with end-around carry, to test the fast version against."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for index in range(0, len(data), 2):
        total += (data[index] << 8) | data[index + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class TestChecksum:
    def test_rfc791_header_vector(self) -> None:
        """RFC 1071: the checksum of a header with its checksum field zeroed is the stored value."""
        zeroed = IPV4_VECTOR[:10] + b"\x00\x00" + IPV4_VECTOR[12:]
        assert internet_checksum(zeroed) == 0xB861
        assert internet_checksum(IPV4_VECTOR) == 0

    def test_all_zero_and_negative_zero(self) -> None:
        assert internet_checksum(b"") == 0xFFFF
        assert internet_checksum(bytes(6)) == 0xFFFF
        assert internet_checksum(b"\xff\xff") == 0x0000
        assert internet_checksum(b"\x00\x01\xff\xfe") == 0x0000

    def test_odd_length_pads_with_zero(self) -> None:
        """RFC 1071 §4.1: an odd trailing byte is summed as the high byte of a word."""
        assert internet_checksum(b"\x0a") == internet_checksum(b"\x0a\x00") == 0xF5FF

    @settings(max_examples=300)
    @given(st.binary(max_size=200))
    def test_matches_reference(self, data: bytes) -> None:
        assert internet_checksum(data) == reference_checksum(data)

    @settings(max_examples=200)
    @given(st.binary(min_size=20, max_size=20).filter(any), st.integers(0, 0xFFFF))
    def test_incremental_update_rfc1624(self, header: bytes, new_word: int) -> None:
        """RFC 1624 eqn. 3 gives the same checksum as recomputing."""
        base = bytearray(header)
        base[10:12] = reference_checksum(bytes(base[:10]) + b"\0\0" + bytes(base[12:])).to_bytes(2, "big")
        old_word = int.from_bytes(base[0:2], "big")
        updated = update_checksum(int.from_bytes(base[10:12], "big"), old_word, new_word)
        changed = bytearray(base)
        changed[0:2] = new_word.to_bytes(2, "big")
        changed[10:12] = b"\0\0"
        if any(changed):
            assert updated == reference_checksum(bytes(changed))


class TestTos:
    def test_dscp_and_ecn_split(self) -> None:
        """RFC 2474 §3 / RFC 3168 §5: DSCP is the high 6 bits, ECN the low 2."""
        assert dscp(0xB9) == 46 and ecn(0xB9) == 0b01
        assert dscp(0x03) == 0 and ecn(0x03) == 0b11
        assert make_tos(46, 0b10) == 0xBA
        with pytest.raises(ValueError):
            make_tos(64, 0)

    def test_with_tos_ipv4_fixes_checksum(self) -> None:
        changed = with_tos(IPV4_VECTOR, 0xB8)
        assert changed[1] == 0xB8 and changed[:1] + changed[2:10] == IPV4_VECTOR[:1] + IPV4_VECTOR[2:10]
        assert internet_checksum(changed) == 0
        assert packet_tos(changed) == 0xB8

    def test_with_tos_ipv6_keeps_flow_label(self) -> None:
        changed = with_tos(IPV6_VECTOR, 0x2A)
        assert IPv6Header.decode(changed) == dataclasses.replace(IPV6_FIELDS, traffic_class=0x2A)
        assert packet_tos(IPV6_VECTOR) == 0xB9


class TestIPv4Header:
    def test_decode_vector(self) -> None:
        assert IPv4Header.decode(IPV4_VECTOR) == dataclasses.replace(IPV4_FIELDS, checksum=0xB861)

    def test_encode_vector(self) -> None:
        assert IPV4_FIELDS.encode() == IPV4_VECTOR

    def test_flag_properties(self) -> None:
        header = IPv4Header.decode(IPV4_VECTOR)
        assert header.dont_fragment and not header.more_fragments and not header.is_fragment
        fragment = dataclasses.replace(IPV4_FIELDS, flags=FLAG_MORE_FRAGMENTS)
        assert fragment.is_fragment
        assert dataclasses.replace(IPV4_FIELDS, fragment_offset=3).is_fragment

    def test_options_kept(self) -> None:
        header = dataclasses.replace(IPV4_FIELDS, options=b"\x01\x01\x01\x00", total_length=0x77)
        data = header.encode()
        assert data[0] == 0x46 and len(data) == 24
        assert IPv4Header.decode(data).options == b"\x01\x01\x01\x00"

    @pytest.mark.parametrize(("data", "offset"), [
        (IPV4_VECTOR[:19], 0),
        (b"\x65" + IPV4_VECTOR[1:], 0),  # version 6
        (b"\x44" + IPV4_VECTOR[1:], 0),  # IHL 4
        (b"\x46" + IPV4_VECTOR[1:], 20),  # IHL 6 but only 20 bytes
        (IPV4_VECTOR[:2] + b"\x00\x10" + IPV4_VECTOR[4:], 2),  # total length 16
        (IPV4_VECTOR[:10] + b"\xb8\x62" + IPV4_VECTOR[12:], 10),  # bad checksum
    ])
    def test_decode_rejects(self, data: bytes, offset: int) -> None:
        with pytest.raises(DecodeError) as caught:
            IPv4Header.decode(data)
        assert caught.value.offset == offset

    def test_decode_without_checksum_check(self) -> None:
        broken = IPV4_VECTOR[:10] + b"\x00\x00" + IPV4_VECTOR[12:]
        assert IPv4Header.decode(broken, verify_checksum=False).checksum == 0

    @pytest.mark.parametrize("change", [
        {"ttl": 256}, {"tos": -1}, {"flags": 8}, {"fragment_offset": 0x2000}, {"options": b"\x01"},
        {"total_length": 19}, {"checksum": 0x10000},
    ])
    def test_encode_rejects(self, change: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            dataclasses.replace(IPV4_FIELDS, **change).encode()  # type: ignore[arg-type]

    @settings(max_examples=200)
    @given(st.builds(
        IPv4Header, st.builds(IPv4Address, st.integers(0, 2**32 - 1)),
        st.builds(IPv4Address, st.integers(0, 2**32 - 1)), st.integers(0, 255), st.integers(60, 0xFFFF),
        st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 7), st.integers(0, 0x1FFF),
        st.integers(0, 255), st.none(), st.integers(0, 10).map(lambda words: b"\x01" * (4 * words))))
    def test_round_trip(self, header: IPv4Header) -> None:
        data = header.encode()
        decoded = IPv4Header.decode(data)
        assert dataclasses.replace(decoded, checksum=None) == header
        assert decoded.encode() == data


class TestIPv6Header:
    def test_decode_vector(self) -> None:
        assert IPv6Header.decode(IPV6_VECTOR) == IPV6_FIELDS

    def test_encode_vector(self) -> None:
        assert IPV6_FIELDS.encode() == IPV6_VECTOR

    def test_decode_rejects(self) -> None:
        with pytest.raises(DecodeError):
            IPv6Header.decode(IPV6_VECTOR[:39])
        with pytest.raises(DecodeError):
            IPv6Header.decode(b"\x4b" + IPV6_VECTOR[1:])

    def test_encode_rejects(self) -> None:
        with pytest.raises(ValueError):
            dataclasses.replace(IPV6_FIELDS, flow_label=1 << 20).encode()

    @settings(max_examples=200)
    @given(st.builds(
        IPv6Header, st.builds(IPv6Address, st.integers(0, 2**128 - 1)),
        st.builds(IPv6Address, st.integers(0, 2**128 - 1)), st.integers(0, 255), st.integers(0, 0xFFFF),
        st.integers(0, 255), st.integers(0, 0xFFFFF), st.integers(0, 255)))
    def test_round_trip(self, header: IPv6Header) -> None:
        assert IPv6Header.decode(header.encode()) == header


class TestDatagramHelpers:
    def test_datagram_version(self) -> None:
        assert datagram_version(IPV4_FIELDS.encode() + bytes(0x73 - 20)) == 4
        assert datagram_version(IPV6_VECTOR + bytes(8)) == 6
        for bad in (b"", IPV4_VECTOR, IPV6_VECTOR, b"\x50" + bytes(39)):
            with pytest.raises(ValueError):
                datagram_version(bad)

    def test_forwarded_ipv4_decrements_ttl_and_fixes_checksum(self) -> None:
        """RFC 2003 §3.1: the inner TTL is decremented when the encapsulator forwards."""
        packet = IPV4_VECTOR + bytes(0x73 - 20)
        out = bytes(forwarded_ipv4(packet, True))
        assert out[8] == 63 and internet_checksum(out[:20]) == 0
        assert forwarded_ipv4(packet, False) is packet

    def test_forwarded_ipv4_ttl_zero(self) -> None:
        """RFC 2003 §3.1: never encapsulate a datagram with TTL 0."""
        one = bytearray(IPV4_VECTOR)
        one[8] = 1
        with pytest.raises(HopLimitExceeded):
            forwarded_ipv4(one, True)
        one[8] = 0
        with pytest.raises(HopLimitExceeded):
            forwarded_ipv4(one, False)

    def test_forwarded_ipv6_hop_limit(self) -> None:
        """RFC 4213 §3.3: the encapsulator decrements the hop limit when forwarding."""
        assert bytes(forwarded_ipv6(IPV6_VECTOR, True))[7] == 63
        one = bytearray(IPV6_VECTOR)
        one[7] = 1
        with pytest.raises(HopLimitExceeded):
            forwarded_ipv6(one, True)
