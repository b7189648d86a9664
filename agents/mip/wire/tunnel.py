"""Tunnel encapsulation and decapsulation as pure bytes → bytes functions.

IPv4-in-IPv4 (RFC 2003), IPv6-in-IPv4 (RFC 4213), GRE (RFC 2784), minimal encapsulation (RFC 2004) and
the MIP Tunnel Data message (RFC 3519 §3.3, RFC 5454 §3.9). Every encapsulator returns a whole outer
IPv4 packet, ready for a raw socket with IP_HDRINCL; the outer Identification defaults to 0, which
Linux replaces with a fresh value on such sockets. ECN and DSCP rules live in :mod:`agents.mip.wire.ecn`.

The per-packet functions work on bytes with ``struct`` and lookup tables; the frozen dataclasses
(``GreHeader``, ``MinimalForwardingHeader``, ``TunnelDataHeader``) are codecs for tests and tools.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple, Self

from agents.mip.wire.ecn import INGRESS_TOS_TABLES, DscpModel, EcnMode, apply_egress
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.ip import (
    PROTO_GRE,
    PROTO_IPIP,
    PROTO_IPV6,
    PROTO_MINIMAL,
    Buffer,
    datagram_version,
    forwarded_ipv4,
    forwarded_ipv6,
    internet_checksum,
)
from agents.mip.wire.ip import HopLimitExceeded as HopLimitExceeded  # raised by the encapsulators

DEFAULT_OUTER_TTL = 64
ENCAPSULATION_PROTOCOLS = frozenset({PROTO_IPIP, PROTO_IPV6, PROTO_GRE, PROTO_MINIMAL})
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
TUNNEL_MTU_MIN = 1280
TUNNEL_MTU_MAX = 1480
DEFAULT_TUNNEL_MTU = 1280
IPV6_IN_IPV4_LENGTH_OVERHEAD = 60
"""RFC 4213 §3.5: outer Total Length = IPv6 Payload Length + 60 (20 outer + 40 inner header bytes)."""
TUNNEL_DATA_TYPE = 4

Address = IPv4Address | bytes
"""An IPv4 address, or its 4 packed bytes (cheaper on the per-packet path)."""

_OUTER = struct.Struct("!BBHHHBBH4s4s")
_U16 = struct.Struct("!H")
_ADDRESSES = struct.Struct("!II")
_DF = 0x4000
_FRAGMENT_BITS = 0x3FFF  # MF flag + fragment offset
_GRE_FLAGS_DROP = 0x7C00  # Reserved0 bits 1–5 (RFC 1701 C/R/K/S/s): RFC 2784 §2.3 drop
_GRE_RESERVED0_KEEP = 0x03F8  # Reserved0 bits 6–12: sent as zero, ignored on receipt
_GRE_CHECKSUM_BIT = 0x8000
_GRE_ETHERTYPES = {ETHERTYPE_IPV4: 4, ETHERTYPE_IPV6: 6}
_GRE_PLAIN = {ethertype: struct.pack("!HH", 0, ethertype) for ethertype in _GRE_ETHERTYPES}
_MINIMAL_S_BIT = 0x80
_MODELS = len(DscpModel)
_TUNNEL_DATA_NEXT_HEADERS = frozenset({PROTO_IPIP, PROTO_IPV6, PROTO_GRE, PROTO_MINIMAL})


class Decapsulated(NamedTuple):
    """One decapsulated packet: outer addresses, the outer IP protocol and the inner datagram."""

    outer_source: IPv4Address
    outer_destination: IPv4Address
    protocol: int
    inner: bytes
    inner_version: int


def _packed(address: Address) -> bytes:
    packed = address if isinstance(address, bytes) else address.packed
    if len(packed) != 4:
        raise ValueError(f"an IPv4 address is 4 bytes, got {len(packed)}")
    return packed


def _ipv4_packet(
    source: Address,
    destination: Address,
    protocol: int,
    tos: int,
    flags: int,
    ttl: int,
    identification: int,
    prefix: Buffer,
    payload: Buffer,
) -> bytes:
    """An outer IPv4 header (IHL 5, checksum set) followed by ``prefix`` and ``payload``."""
    total = 20 + len(prefix) + len(payload)
    if total > 0xFFFF:
        raise ValueError(f"outer packet of {total} bytes exceeds 65535")
    try:
        header = bytearray(
            _OUTER.pack(
                0x45,
                tos,
                total,
                identification,
                flags,
                ttl,
                protocol,
                0,
                _packed(source),
                _packed(destination),
            )
        )
    except struct.error as error:
        raise ValueError(f"outer header field out of range: {error}") from None
    _U16.pack_into(header, 10, internet_checksum(header))
    return b"".join((header, prefix, payload))


def encapsulate_ipv4_in_ipv4(
    inner: Buffer,
    source: Address,
    destination: Address,
    *,
    ttl: int = DEFAULT_OUTER_TTL,
    ecn_mode: EcnMode = EcnMode.NORMAL,
    dscp_model: DscpModel = DscpModel.UNIFORM,
    forwarding: bool = False,
    identification: int = 0,
) -> bytes:
    """IP-in-IP (RFC 2003 §3.1): outer TOS from the inner (RFC 2983, RFC 6040), DF copied if set."""
    if datagram_version(inner) != 4:
        raise ValueError("IPv4-in-IPv4 needs an IPv4 inner datagram")
    inner = forwarded_ipv4(inner, forwarding)
    tos = INGRESS_TOS_TABLES[ecn_mode * _MODELS + dscp_model][inner[1]]
    return _ipv4_packet(
        source, destination, PROTO_IPIP, tos, (inner[6] << 8) & _DF, ttl, identification, b"", inner
    )


def encapsulate_ipv6_in_ipv4(
    inner: Buffer,
    source: Address,
    destination: Address,
    *,
    ttl: int = DEFAULT_OUTER_TTL,
    ecn_mode: EcnMode = EcnMode.NORMAL,
    dscp_model: DscpModel = DscpModel.UNIFORM,
    forwarding: bool = False,
    identification: int = 0,
) -> bytes:
    """IPv6-in-IPv4 (RFC 4213 §3.5): protocol 41, IHL 5, Total Length = payload length + 60, DF clear.

    DF stays clear because the tunnel uses a static MTU (RFC 4213 §3.2); TOS from the inner Traffic
    Class (RFC 5454 §3.6: DSCP per RFC 2983, ECN per RFC 3168 / RFC 6040).
    """
    if datagram_version(inner) != 6:
        raise ValueError("IPv6-in-IPv4 needs an IPv6 inner datagram")
    inner = forwarded_ipv6(inner, forwarding)
    traffic_class = ((inner[0] & 0x0F) << 4) | (inner[1] >> 4)
    tos = INGRESS_TOS_TABLES[ecn_mode * _MODELS + dscp_model][traffic_class]
    return _ipv4_packet(source, destination, PROTO_IPV6, tos, 0, ttl, identification, b"", inner)


def encapsulate_gre(
    inner: Buffer,
    source: Address,
    destination: Address,
    *,
    checksum: bool = False,
    ttl: int = DEFAULT_OUTER_TTL,
    ecn_mode: EcnMode = EcnMode.NORMAL,
    dscp_model: DscpModel = DscpModel.UNIFORM,
    forwarding: bool = False,
    identification: int = 0,
) -> bytes:
    """GRE (RFC 2784), protocol type 0x0800 or 0x86DD (RFC 5454 §3.3.2), outer rules as for IP-in-IP.

    IPv4 inner: DF copied (RFC 2003 §3.1). IPv6 inner: DF clear, static tunnel MTU (RFC 4213 §3.2).
    """
    if datagram_version(inner) == 4:
        inner = forwarded_ipv4(inner, forwarding)
        tos, flags, ethertype = inner[1], (inner[6] << 8) & _DF, ETHERTYPE_IPV4
    else:
        inner = forwarded_ipv6(inner, forwarding)
        tos, flags, ethertype = ((inner[0] & 0x0F) << 4) | (inner[1] >> 4), 0, ETHERTYPE_IPV6
    outer_tos = INGRESS_TOS_TABLES[ecn_mode * _MODELS + dscp_model][tos]
    gre = GreHeader(ethertype, True).encode(inner) if checksum else _GRE_PLAIN[ethertype]
    return _ipv4_packet(source, destination, PROTO_GRE, outer_tos, flags, ttl, identification, gre, inner)


def encapsulate_minimal(
    inner: Buffer, encapsulator: Address, tunnel_exit: Address, *, forwarding: bool = False
) -> bytes:
    """Minimal encapsulation (RFC 2004 §3): the original header is modified, no second IP header.

    Refuses IPv6 (RFC 5454 §3.3.2) and fragments (RFC 2004 §3) with ValueError. The TTL is not
    changed by encapsulation; ``forwarding`` applies the normal forwarding decrement first.
    """
    if datagram_version(inner) != 4:
        raise ValueError("minimal encapsulation cannot carry IPv6 (RFC 5454 §3.3.2)")
    if _U16.unpack_from(inner, 6)[0] & _FRAGMENT_BITS:
        raise ValueError("minimal encapsulation MUST NOT be used on fragments (RFC 2004 §3)")
    inner = forwarded_ipv4(inner, forwarding)
    ihl = (inner[0] & 0x0F) * 4
    source, exit_address = _packed(encapsulator), _packed(tunnel_exit)
    original_source = bytes(inner[12:16])
    forwarding_header = _minimal_forwarding_header(
        inner[9], bytes(inner[16:20]), original_source if original_source != source else None, 0
    )
    total = len(inner) + len(forwarding_header)
    if total > 0xFFFF:
        raise ValueError(f"minimal-encapsulated datagram of {total} bytes exceeds 65535")
    header = bytearray(inner[:ihl])
    header[9] = PROTO_MINIMAL
    header[12:16] = source
    header[16:20] = exit_address
    _U16.pack_into(header, 2, total)
    _U16.pack_into(header, 10, 0)
    _U16.pack_into(header, 10, internet_checksum(header))
    return b"".join((header, forwarding_header, inner[ihl:]))


def encapsulate(
    inner: Buffer,
    source: Address,
    destination: Address,
    protocol: int,
    *,
    ttl: int = DEFAULT_OUTER_TTL,
    ecn_mode: EcnMode = EcnMode.NORMAL,
    dscp_model: DscpModel = DscpModel.UNIFORM,
    forwarding: bool = False,
    gre_checksum: bool = False,
    identification: int = 0,
) -> bytes:
    """Encapsulate with the negotiated mechanism: 4 (IP-in-IP), 41, 47 (GRE) or 55 (minimal).

    IP-in-IP with an IPv6 inner datagram is sent as protocol 41 (RFC 5454 §3.3.2).
    """
    if protocol in (PROTO_IPIP, PROTO_IPV6):
        is_ipv6 = len(inner) > 0 and inner[0] >> 4 == 6
        if protocol == PROTO_IPV6 and not is_ipv6:
            raise ValueError("protocol 41 needs an IPv6 inner datagram")
        encapsulator = encapsulate_ipv6_in_ipv4 if is_ipv6 else encapsulate_ipv4_in_ipv4
        return encapsulator(
            inner,
            source,
            destination,
            ttl=ttl,
            ecn_mode=ecn_mode,
            dscp_model=dscp_model,
            forwarding=forwarding,
            identification=identification,
        )
    if protocol == PROTO_GRE:
        return encapsulate_gre(
            inner,
            source,
            destination,
            checksum=gre_checksum,
            ttl=ttl,
            ecn_mode=ecn_mode,
            dscp_model=dscp_model,
            forwarding=forwarding,
            identification=identification,
        )
    if protocol == PROTO_MINIMAL:
        return encapsulate_minimal(inner, source, destination, forwarding=forwarding)
    raise ValueError(f"unsupported encapsulation protocol {protocol}")


def _checked_outer_header(data: bytes) -> tuple[int, int]:
    """Validate the outer IPv4 header; return (header length, total length)."""
    size = len(data)
    if size < 20 or data[0] >> 4 != 4:
        raise DecodeError(0, "not an IPv4 packet")
    ihl = (data[0] & 0x0F) * 4
    total = _U16.unpack_from(data, 2)[0]
    if ihl < 20 or ihl > size or not ihl <= total <= size:
        raise DecodeError(0, f"IHL {ihl // 4} / total length {total} inconsistent with {size} bytes")
    if _U16.unpack_from(data, 6)[0] & _FRAGMENT_BITS:
        raise DecodeError(6, "outer header is a fragment; reassemble first")
    if internet_checksum(data[:ihl]) != 0:
        raise DecodeError(10, "bad outer IPv4 header checksum")
    return ihl, total


def _tunnel_payload(data: bytes, ihl: int, total: int, protocol: int) -> tuple[bytes, int]:
    """The inner datagram of an IP-in-IP, IPv6-in-IPv4 or GRE packet, and its IP version."""
    if protocol == PROTO_GRE:
        ethertype, payload = decapsulate_gre_payload(data[ihl:total], ihl)
        expected = _GRE_ETHERTYPES[ethertype]
    elif protocol in (PROTO_IPIP, PROTO_IPV6):
        payload, expected = data[ihl:total], 4 if protocol == PROTO_IPIP else 6
    else:
        raise DecodeError(9, f"protocol {protocol} is not a tunnel (4, 41, 47, 55)")
    return payload, _checked_inner(payload, ihl, expected)


def _checked_inner(payload: bytes, offset: int, expected_version: int) -> int:
    try:
        version = datagram_version(payload)
    except ValueError as error:
        raise DecodeError(offset, str(error)) from None
    if version != expected_version:
        raise DecodeError(offset, f"inner IP version {version}, expected {expected_version}")
    return version


def decapsulate(outer: Buffer, *, dscp_model: DscpModel = DscpModel.UNIFORM) -> Decapsulated | None:
    """Strip an outer IPv4 header of protocol 4, 41, 47 or 55 and return the inner datagram.

    The inner ECN follows the RFC 6040 §4.2 egress table; None means "drop" (outer CE over an inner
    Not-ECT). The inner DSCP takes the outer one in the uniform model, and is kept in the pipe model
    (RFC 2983 §3). The inner TTL / hop limit is not changed (RFC 2003 §3.1). Malformed → DecodeError.
    Minimal encapsulation has no second header, so its ECN and DSCP are left as they arrived.
    """
    data = outer if isinstance(outer, bytes) else bytes(outer)
    ihl, total = _checked_outer_header(data)
    protocol = data[9]
    source, destination = _ADDRESSES.unpack_from(data, 12)
    if protocol == PROTO_MINIMAL:
        inner: bytes | None = _restore_minimal(data, ihl, total)
        version = 4
    else:
        payload, version = _tunnel_payload(data, ihl, total, protocol)
        inner = apply_egress(data[1], payload, dscp_model)
    if inner is None:
        return None
    return Decapsulated(IPv4Address(source), IPv4Address(destination), protocol, inner, version)


@dataclass(frozen=True)
class GreHeader:
    """The RFC 2784 §2 GRE header. ``checksum`` None means "compute on encode"."""

    protocol_type: int
    checksum_present: bool = False
    checksum: int | None = None
    reserved0: int = 0
    """Reserved0 bits 6–12 (7 bits): sent as zero, ignored on receipt (RFC 2784 §2.2)."""
    reserved1: int = 0

    @property
    def length(self) -> int:
        return 8 if self.checksum_present else 4

    def encode(self, payload: Buffer = b"") -> bytes:
        """The header bytes; with C set, the checksum covers this header and ``payload``."""
        if not 0 <= self.protocol_type <= 0xFFFF or not 0 <= self.reserved0 <= 0x7F:
            raise ValueError("protocol type or Reserved0 out of range")
        first = (_GRE_CHECKSUM_BIT if self.checksum_present else 0) | (self.reserved0 << 3)
        if not self.checksum_present:
            return struct.pack("!HH", first, self.protocol_type)
        if not 0 <= self.reserved1 <= 0xFFFF:
            raise ValueError("Reserved1 out of range")
        header = bytearray(struct.pack("!HHHH", first, self.protocol_type, 0, self.reserved1))
        if self.checksum is None:
            _U16.pack_into(header, 4, internet_checksum(bytes(header) + bytes(payload)))
        else:
            _U16.pack_into(header, 4, self.checksum)
        return bytes(header)

    @classmethod
    def decode(cls, data: Buffer, offset: int = 0) -> Self:
        """Decode the header at the start of a GRE packet; with C set, verify the checksum over ``data``."""
        if len(data) < 4:
            raise DecodeError(offset, f"GRE header needs 4 bytes, got {len(data)}")
        first, protocol_type = struct.unpack_from("!HH", data, 0)
        if first & 0x0007:
            raise DecodeError(offset + 1, f"GRE version {first & 7}, expected 0 (RFC 2784 §2.3.1)")
        if first & _GRE_FLAGS_DROP:
            raise DecodeError(offset, "GRE Reserved0 bits 1-5 set (RFC 2784 §2.3: discard)")
        reserved0 = (first & _GRE_RESERVED0_KEEP) >> 3
        if not first & _GRE_CHECKSUM_BIT:
            return cls(protocol_type, False, None, reserved0, 0)
        if len(data) < 8:
            raise DecodeError(offset + len(data), "GRE checksum present but header truncated")
        checksum, reserved1 = struct.unpack_from("!HH", data, 4)
        if internet_checksum(data) != 0:
            raise DecodeError(offset + 4, "bad GRE checksum")
        return cls(protocol_type, True, checksum, reserved0, reserved1)


def decapsulate_gre_payload(data: bytes, offset: int = 0) -> tuple[int, bytes]:
    """Split a GRE packet into (protocol type, payload); only 0x0800 and 0x86DD are accepted."""
    header = GreHeader.decode(data, offset)
    if header.protocol_type not in _GRE_ETHERTYPES:
        raise DecodeError(offset + 2, f"GRE protocol type {header.protocol_type:#06x} is not IPv4/IPv6")
    return header.protocol_type, data[header.length :]


def _minimal_forwarding_header(
    protocol: int, destination: bytes, source: bytes | None, reserved: int
) -> bytes:
    flags = (_MINIMAL_S_BIT if source is not None else 0) | reserved
    header = bytearray(struct.pack("!BBH4s", protocol, flags, 0, destination) + (source or b""))
    _U16.pack_into(header, 2, internet_checksum(header))
    return bytes(header)


@dataclass(frozen=True)
class MinimalForwardingHeader:
    """The RFC 2004 §3 minimal forwarding header: 8 bytes, or 12 when the original source is carried."""

    protocol: int
    original_destination: IPv4Address
    original_source: IPv4Address | None = None
    reserved: int = 0
    """The 7 bits after S: sent as zero, ignored on receipt."""

    @property
    def length(self) -> int:
        return 8 if self.original_source is None else 12

    def encode(self) -> bytes:
        if not 0 <= self.protocol <= 0xFF or not 0 <= self.reserved <= 0x7F:
            raise ValueError("protocol or reserved bits out of range")
        source = None if self.original_source is None else self.original_source.packed
        destination = self.original_destination.packed
        return _minimal_forwarding_header(self.protocol, destination, source, self.reserved)

    @classmethod
    def decode(cls, data: Buffer, offset: int = 0) -> Self:
        """Decode and checksum-verify the forwarding header at the start of ``data``."""
        if len(data) < 8:
            raise DecodeError(offset, f"minimal forwarding header needs 8 bytes, got {len(data)}")
        length = 12 if data[1] & _MINIMAL_S_BIT else 8
        if len(data) < length:
            raise DecodeError(offset + len(data), "minimal forwarding header truncated (S bit set)")
        if internet_checksum(data[:length]) != 0:
            raise DecodeError(offset + 2, "bad minimal forwarding header checksum")
        source = IPv4Address(bytes(data[8:12])) if length == 12 else None
        return cls(data[0], IPv4Address(bytes(data[4:8])), source, data[1] & 0x7F)


def _restore_minimal(data: bytes, ihl: int, total: int) -> bytes:
    """Rebuild the original datagram from a minimal-encapsulated one (RFC 2004 §3)."""
    forwarding = MinimalForwardingHeader.decode(data[ihl:total], ihl)
    header = bytearray(data[:ihl])
    header[9] = forwarding.protocol
    header[16:20] = forwarding.original_destination.packed
    if forwarding.original_source is not None:
        header[12:16] = forwarding.original_source.packed
    _U16.pack_into(header, 2, total - forwarding.length)
    _U16.pack_into(header, 10, 0)
    _U16.pack_into(header, 10, internet_checksum(header))
    return bytes(header) + data[ihl + forwarding.length : total]


@dataclass(frozen=True)
class TunnelDataHeader:
    """The MIP Tunnel Data message header (RFC 3519 §3.3): type 4, Next Header, Reserved."""

    next_header: int
    reserved: int = 0

    def encode(self) -> bytes:
        if self.next_header not in _TUNNEL_DATA_NEXT_HEADERS or not 0 <= self.reserved <= 0xFFFF:
            raise ValueError(f"next header {self.next_header} not in 4/41/47/55, or reserved out of range")
        return struct.pack("!BBH", TUNNEL_DATA_TYPE, self.next_header, self.reserved)

    @classmethod
    def decode(cls, data: Buffer) -> Self:
        if len(data) < 4:
            raise DecodeError(0, f"Tunnel Data header needs 4 bytes, got {len(data)}")
        message_type, next_header, reserved = struct.unpack_from("!BBH", data, 0)
        if message_type != TUNNEL_DATA_TYPE:
            raise DecodeError(0, f"message type {message_type}, expected 4 (Tunnel Data)")
        if next_header not in _TUNNEL_DATA_NEXT_HEADERS:
            raise DecodeError(1, f"next header {next_header} not 4/41/47/55 (RFC 3519 §3.3, RFC 5454 §3.9)")
        return cls(next_header, reserved)


_TUNNEL_DATA_PREFIXES = {value: TunnelDataHeader(value).encode() for value in _TUNNEL_DATA_NEXT_HEADERS}


def encapsulate_udp_tunnel_data(inner: Buffer, next_header: int) -> bytes:
    """The UDP payload of a MIP Tunnel Data message (RFC 3519 §3.3); the runtime adds UDP and IP.

    Next header 4 or 41 (RFC 5454 §3.9) must match the inner datagram's IP version.
    """
    prefix = _TUNNEL_DATA_PREFIXES.get(next_header)
    if prefix is None:
        raise ValueError(f"next header {next_header} not in 4/41/47/55")
    if next_header in (PROTO_IPIP, PROTO_IPV6) and datagram_version(inner) != (4 if next_header == 4 else 6):
        raise ValueError(f"next header {next_header} does not match the inner IP version")
    return prefix + bytes(inner)


def decapsulate_udp_tunnel_data(payload: Buffer) -> tuple[int, bytes]:
    """Split a Tunnel Data message into (next header, data); for 4/41 the inner datagram is checked."""
    header = TunnelDataHeader.decode(payload)
    data = bytes(payload[4:])
    if header.next_header in (PROTO_IPIP, PROTO_IPV6):
        _checked_inner(data, 4, 4 if header.next_header == PROTO_IPIP else 6)
    return header.next_header, data


def check_static_tunnel_mtu(mtu: int = DEFAULT_TUNNEL_MTU) -> int:
    """Return ``mtu`` if it is a legal static IPv6 tunnel MTU, 1280–1480 (RFC 4213 §3.2), else ValueError."""
    if not TUNNEL_MTU_MIN <= mtu <= TUNNEL_MTU_MAX:
        raise ValueError(f"static tunnel MTU {mtu} outside {TUNNEL_MTU_MIN}-{TUNNEL_MTU_MAX} (RFC 4213 §3.2)")
    return mtu


def exceeds_tunnel_mtu(inner_length: int, mtu: int = DEFAULT_TUNNEL_MTU) -> bool:
    """True if an IPv6 datagram of ``inner_length`` bytes exceeds the tunnel MTU (send Packet Too Big)."""
    return inner_length > mtu


def ipv4_embedded_link_local(address: IPv4Address) -> IPv6Address:
    """The tunnel link-local address fe80::a.b.c.d (RFC 4213 §3.7)."""
    return IPv6Address(b"\xfe\x80" + bytes(10) + address.packed)
