"""Minimal IPv4 (RFC 791) and IPv6 (RFC 8200) header codecs, the Internet checksum, TOS helpers.

Used by the tunnel functions (:mod:`agents.mip.wire.tunnel`) and by tests.
Header codecs are frozen dataclasses;
the per-packet fast path in ``tunnel.py`` works on bytes directly and only borrows the small helpers here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Self

from agents.mip.wire.errors import DecodeError

Buffer = bytes | bytearray | memoryview

PROTO_ICMP = 1
PROTO_IPIP = 4
PROTO_UDP = 17
PROTO_IPV6 = 41
PROTO_GRE = 47
PROTO_MINIMAL = 55

IPV4_HEADER_LENGTH = 20
IPV4_MAX_HEADER_LENGTH = 60
IPV6_HEADER_LENGTH = 40

FLAG_RESERVED = 0x4
FLAG_DONT_FRAGMENT = 0x2
FLAG_MORE_FRAGMENTS = 0x1

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_U16 = struct.Struct("!H")


def internet_checksum(data: Buffer) -> int:
    """The 16-bit one's complement of the one's complement sum of ``data`` (RFC 1071).

    Odd-length data is padded with one zero byte. Checking a received header: the checksum of the
    header *including* its checksum field is 0 when the header is intact.
    """
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    total = int.from_bytes(data, "big")
    if total == 0:
        return 0xFFFF
    # 2**16 == 1 (mod 0xFFFF), so the end-around-carry sum of 16-bit words is total mod 0xFFFF,
    # with a non-zero multiple of 0xFFFF summing to 0xFFFF ("negative zero").
    remainder = total % 0xFFFF
    return 0xFFFF - remainder if remainder else 0


def dscp(tos: int) -> int:
    """The Differentiated Services codepoint: the high 6 bits of the TOS / Traffic Class (RFC 2474)."""
    return (tos >> 2) & 0x3F


def ecn(tos: int) -> int:
    """The ECN field: the low 2 bits of the TOS / Traffic Class (RFC 3168 §5)."""
    return tos & 0x03


def make_tos(dscp_value: int, ecn_value: int) -> int:
    """The TOS byte holding ``dscp_value`` (0–63) and ``ecn_value`` (0–3)."""
    if not 0 <= dscp_value <= 0x3F or not 0 <= ecn_value <= 3:
        raise ValueError(f"DSCP {dscp_value} / ECN {ecn_value} out of range")
    return (dscp_value << 2) | ecn_value


def packet_tos(packet: Buffer) -> int:
    """The IPv4 TOS or IPv6 Traffic Class of a raw packet (version read from the first nibble)."""
    if packet[0] >> 4 == 6:
        return ((packet[0] & 0x0F) << 4) | (packet[1] >> 4)
    return packet[1]


def with_tos(packet: Buffer, tos: int) -> bytes:
    """A copy of an IPv4 or IPv6 packet with its TOS / Traffic Class set to ``tos``.

    The IPv4 header checksum is updated incrementally (RFC 1624 eqn. 3), so a header that arrived
    with a bad checksum keeps a bad one.
    """
    out = bytearray(packet)
    if out[0] >> 4 == 6:
        out[0] = 0x60 | (tos >> 4)
        out[1] = ((tos & 0x0F) << 4) | (out[1] & 0x0F)
        return bytes(out)
    old_word = (out[0] << 8) | out[1]
    out[1] = tos
    _U16.pack_into(out, 10, update_checksum(_U16.unpack_from(out, 10)[0], old_word, (out[0] << 8) | tos))
    return bytes(out)


def update_checksum(checksum: int, old_word: int, new_word: int) -> int:
    """Incremental Internet checksum update for one changed 16-bit word (RFC 1624 eqn. 3)."""
    total = (~checksum & 0xFFFF) + (~old_word & 0xFFFF) + new_word
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class HopLimitExceeded(ValueError):
    """The TTL / hop limit is (or would become) 0: do not encapsulate (RFC 2003 §3.1).

    The caller SHOULD answer with an ICMP / ICMPv6 Time Exceeded.
    """


def datagram_version(packet: Buffer) -> int:
    """The IP version (4 or 6) of a whole datagram whose own length fields match ``len(packet)``.

    Raises ValueError for anything else (truncated header, trailing bytes, other versions).
    """
    size = len(packet)
    version = packet[0] >> 4 if size else 0
    if version == 4:
        if size < 20 or (packet[0] & 0x0F) < 5 or (packet[0] & 0x0F) * 4 > size:
            raise ValueError("truncated IPv4 header")
        if _U16.unpack_from(packet, 2)[0] != size:
            raise ValueError(f"IPv4 total length differs from the {size} bytes given")
        return 4
    if version == 6:
        if size < 40 or _U16.unpack_from(packet, 4)[0] + 40 != size:
            raise ValueError(f"IPv6 payload length differs from the {size} bytes given")
        return 6
    raise ValueError(f"IP version {version}")


def forwarded_ipv4(packet: Buffer, forwarding: bool) -> Buffer:
    """RFC 2003 §3.1: decrement the TTL when forwarding; never encapsulate TTL 0 (HopLimitExceeded)."""
    ttl = packet[8]
    if not forwarding:
        if ttl == 0:
            raise HopLimitExceeded("inner TTL is 0 (RFC 2003 §3.1)")
        return packet
    if ttl <= 1:
        raise HopLimitExceeded(f"inner TTL {ttl} expires when forwarded (RFC 2003 §3.1)")
    out = bytearray(packet)
    out[8] = ttl - 1
    old_checksum = _U16.unpack_from(packet, 10)[0]
    new_checksum = update_checksum(old_checksum, (ttl << 8) | packet[9], ((ttl - 1) << 8) | packet[9])
    _U16.pack_into(out, 10, new_checksum)
    return out


def forwarded_ipv6(packet: Buffer, forwarding: bool) -> Buffer:
    """RFC 4213 §3.3: the tunnel is one hop; decrement the hop limit when forwarding.

    Like RFC 2003 for IPv4, a hop limit that is or would become 0 raises HopLimitExceeded.
    """
    hop_limit = packet[7]
    if not forwarding:
        if hop_limit == 0:
            raise HopLimitExceeded("inner hop limit is 0")
        return packet
    if hop_limit <= 1:
        raise HopLimitExceeded(f"inner hop limit {hop_limit} expires when forwarded (RFC 4213 §3.3)")
    out = bytearray(packet)
    out[7] = hop_limit - 1
    return out


@dataclass(frozen=True)
class IPv4Header:
    """An IPv4 header (RFC 791 §3.1). ``checksum`` None means "compute on encode"."""

    source: IPv4Address
    destination: IPv4Address
    protocol: int
    total_length: int
    tos: int = 0
    identification: int = 0
    flags: int = 0
    fragment_offset: int = 0
    ttl: int = 64
    checksum: int | None = None
    options: bytes = b""

    @property
    def header_length(self) -> int:
        """Header length in bytes (IHL × 4)."""
        return IPV4_HEADER_LENGTH + len(self.options)

    @property
    def dont_fragment(self) -> bool:
        return bool(self.flags & FLAG_DONT_FRAGMENT)

    @property
    def more_fragments(self) -> bool:
        return bool(self.flags & FLAG_MORE_FRAGMENTS)

    @property
    def is_fragment(self) -> bool:
        """True for any fragment (MF set or a non-zero offset): RFC 2004 §3 refuses these."""
        return self.more_fragments or self.fragment_offset != 0

    def encode(self) -> bytes:
        """The header bytes (no payload), with the checksum computed unless one was given."""
        self._check_fields()
        ihl = self.header_length // 4
        header = bytearray(
            _IPV4.pack(
                0x40 | ihl,
                self.tos,
                self.total_length,
                self.identification,
                (self.flags << 13) | self.fragment_offset,
                self.ttl,
                self.protocol,
                0,
                self.source.packed,
                self.destination.packed,
            )
            + self.options
        )
        checksum = internet_checksum(header) if self.checksum is None else self.checksum
        struct.pack_into("!H", header, 10, checksum)
        return bytes(header)

    def _check_fields(self) -> None:
        if len(self.options) % 4 or len(self.options) > IPV4_MAX_HEADER_LENGTH - IPV4_HEADER_LENGTH:
            raise ValueError(f"options length {len(self.options)} is not a multiple of 4 up to 40")
        limits = {
            "tos": 0xFF,
            "total_length": 0xFFFF,
            "identification": 0xFFFF,
            "flags": 0x7,
            "fragment_offset": 0x1FFF,
            "ttl": 0xFF,
            "protocol": 0xFF,
        }
        for name, limit in limits.items():
            if not 0 <= getattr(self, name) <= limit:
                raise ValueError(f"{name} {getattr(self, name)} out of range 0..{limit}")
        if self.total_length < self.header_length:
            raise ValueError(f"total length {self.total_length} shorter than the header")
        if self.checksum is not None and not 0 <= self.checksum <= 0xFFFF:
            raise ValueError(f"checksum {self.checksum} out of range")

    @classmethod
    def decode(cls, data: Buffer, *, verify_checksum: bool = True) -> Self:
        """Decode the header at the start of ``data`` (a whole packet or just its header)."""
        if len(data) < IPV4_HEADER_LENGTH:
            raise DecodeError(0, f"IPv4 header needs 20 bytes, got {len(data)}")
        (ver_ihl, tos, total_length, ident, flags_frag, ttl, protocol, checksum, source, destination) = (
            _IPV4.unpack_from(data, 0)
        )
        if ver_ihl >> 4 != 4:
            raise DecodeError(0, f"IP version {ver_ihl >> 4}, expected 4")
        length = (ver_ihl & 0x0F) * 4
        if length < IPV4_HEADER_LENGTH:
            raise DecodeError(0, f"IHL {length // 4} below 5")
        if len(data) < length:
            raise DecodeError(len(data), f"header length {length} exceeds the {len(data)} bytes given")
        if total_length < length:
            raise DecodeError(2, f"total length {total_length} shorter than the {length}-byte header")
        if verify_checksum and internet_checksum(data[:length]) != 0:
            raise DecodeError(10, "bad IPv4 header checksum")
        options = bytes(data[IPV4_HEADER_LENGTH:length])
        return cls(
            IPv4Address(source),
            IPv4Address(destination),
            protocol,
            total_length,
            tos,
            ident,
            flags_frag >> 13,
            flags_frag & 0x1FFF,
            ttl,
            checksum,
            options,
        )


@dataclass(frozen=True)
class IPv6Header:
    """The IPv6 fixed header (RFC 8200 §3). No checksum exists at this layer."""

    source: IPv6Address
    destination: IPv6Address
    next_header: int
    payload_length: int
    traffic_class: int = 0
    flow_label: int = 0
    hop_limit: int = 64

    def encode(self) -> bytes:
        """The 40 header bytes."""
        limits = {
            "traffic_class": 0xFF,
            "flow_label": 0xFFFFF,
            "payload_length": 0xFFFF,
            "next_header": 0xFF,
            "hop_limit": 0xFF,
        }
        for name, limit in limits.items():
            if not 0 <= getattr(self, name) <= limit:
                raise ValueError(f"{name} {getattr(self, name)} out of range 0..{limit}")
        first_word = (6 << 28) | (self.traffic_class << 20) | self.flow_label
        return _IPV6.pack(
            first_word,
            self.payload_length,
            self.next_header,
            self.hop_limit,
            self.source.packed,
            self.destination.packed,
        )

    @classmethod
    def decode(cls, data: Buffer) -> Self:
        """Decode the fixed header at the start of ``data``."""
        if len(data) < IPV6_HEADER_LENGTH:
            raise DecodeError(0, f"IPv6 header needs 40 bytes, got {len(data)}")
        first_word, payload_length, next_header, hop_limit, source, destination = _IPV6.unpack_from(data, 0)
        if first_word >> 28 != 6:
            raise DecodeError(0, f"IP version {first_word >> 28}, expected 6")
        return cls(
            IPv6Address(source),
            IPv6Address(destination),
            next_header,
            payload_length,
            (first_word >> 20) & 0xFF,
            first_word & 0xFFFFF,
            hop_limit,
        )
