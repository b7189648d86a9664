"""DSMIPv4 extension, type 152, short format with a subtype (RFC 5454 §2).

Offsets count from the extension's Type byte:

* subtype 1, IPv6 Prefix Request (§2.1): Type, Length=18, Subtype, Prefix Length, Prefix(16).
* subtype 2, IPv6 Prefix Reply (§2.2): Type, Length=20, Subtype, Code, Prefix Length, Reserved, Prefix(16).
* subtype 3, IPv6 Tunneling Mode (§2.3): Type, Length=2, Subtype, Reserved.

Prefix Length 0..128 is a prefix length; 255 means the field carries a link-local address (§2.2,
used by the DHCPv6-PD bootstrap of §3.7.1). Other values (129..254) have no meaning and are rejected
as malformed. Bits past the prefix length "MUST be set to 0 by the originator ... and ignored by the
receiver" (§2.1): the decoder therefore ACCEPTS set host bits and keeps them (so re-encoding is
byte-identical); :attr:`PrefixRequest.network` ignores them, as the receiver must.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv6Address, IPv6Network
from typing import ClassVar

from agents.mip.wire.codes import DsmipSubtype, ExtensionType, PrefixReplyCode
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.memo import remember

LINK_LOCAL_PREFIX_LENGTH = 255
"""Prefix Length value meaning "the prefix field holds a link-local address" (RFC 5454 §2.2)."""

PREFIX_REQUEST_LENGTH = 18
PREFIX_REPLY_LENGTH = 20
TUNNELING_MODE_LENGTH = 2


def _check_prefix_fields(prefix_length: int, prefix: IPv6Address) -> None:
    if not (0 <= prefix_length <= 128 or prefix_length == LINK_LOCAL_PREFIX_LENGTH):
        raise ValueError(f"prefix length {prefix_length} is neither 0..128 nor 255 (RFC 5454 §2.1)")
    if not isinstance(prefix, IPv6Address):
        raise ValueError(f"prefix must be an IPv6Address, not {type(prefix).__name__}")


def _network(prefix_length: int, prefix: IPv6Address) -> IPv6Network | None:
    """The registered prefix, host bits ignored (RFC 5454 §2.1); None for a link-local (255)."""
    if prefix_length == LINK_LOCAL_PREFIX_LENGTH:
        return None
    return IPv6Network((int(prefix), prefix_length), strict=False)  # an int: no text round trip


def _has_host_bits(prefix_length: int, prefix: IPv6Address) -> bool:
    network = _network(prefix_length, prefix)
    return network is not None and network.network_address != prefix


def _check_byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} {value} does not fit in one byte")


@dataclass(frozen=True)
class PrefixRequest:
    """IPv6 Prefix Request, 152/1, in a Registration Request (RFC 5454 §2.1)."""

    type: ClassVar[int] = ExtensionType.DSMIPV4
    subtype: ClassVar[int] = DsmipSubtype.PREFIX_REQUEST
    prefix_length: int
    prefix: IPv6Address

    def __post_init__(self) -> None:
        _check_prefix_fields(self.prefix_length, self.prefix)

    @classmethod
    def for_network(cls, network: IPv6Network) -> PrefixRequest:
        """Request registration of ``network`` (explicit mode, RFC 5454 §2.1)."""
        return cls(network.prefixlen, network.network_address)

    @classmethod
    def for_link_local(cls, address: IPv6Address) -> PrefixRequest:
        """Prefix Length 255 carrying a link-local address, for DHCPv6-PD bootstrap (RFC 5454 §3.7.1)."""
        if not address.is_link_local:
            raise ValueError(f"{address} is not a link-local address (RFC 5454 §3.7.1)")
        return cls(LINK_LOCAL_PREFIX_LENGTH, address)

    @property
    def is_link_local(self) -> bool:
        """True when Prefix Length is 255 (RFC 5454 §2.2)."""
        return self.prefix_length == LINK_LOCAL_PREFIX_LENGTH

    @cached_property
    def network(self) -> IPv6Network | None:
        """The requested prefix with host bits ignored, or None for a link-local request (built once: the
        request is frozen)."""
        return _network(self.prefix_length, self.prefix)

    @cached_property
    def text(self) -> str:
        """``prefix/length`` as the trace shows it (e.g. the home agent's ``rrp_sent`` line; ``/255`` for a
        link-local): made once per request object, and a renewal's Prefix Request is the same object each
        time (:func:`decode_dsmip_body`), so the IPv6 text is not made again per reply (issue 9)."""
        return f"{self.prefix}/{self.prefix_length}"

    @property
    def has_host_bits(self) -> bool:
        """True if bits past the prefix length are set (the sender broke RFC 5454 §2.1's MUST)."""
        return _has_host_bits(self.prefix_length, self.prefix)

    def encode(self) -> bytes:
        header = struct.pack("!BBBB", self.type, PREFIX_REQUEST_LENGTH, self.subtype, self.prefix_length)
        return header + self.prefix.packed


@dataclass(frozen=True)
class PrefixReply:
    """IPv6 Prefix Reply, 152/2, in a Registration Reply (RFC 5454 §2.2)."""

    type: ClassVar[int] = ExtensionType.DSMIPV4
    subtype: ClassVar[int] = DsmipSubtype.PREFIX_REPLY
    code: int
    prefix_length: int
    prefix: IPv6Address
    reserved: int = 0

    def __post_init__(self) -> None:
        _check_byte("code", self.code)
        _check_byte("reserved", self.reserved)
        _check_prefix_fields(self.prefix_length, self.prefix)

    @classmethod
    def answering(cls, request: PrefixRequest, code: int) -> PrefixReply:
        """The reply to ``request``: its prefix MUST equal the requested one (RFC 5454 §3.3)."""
        return cls(code, request.prefix_length, request.prefix)

    @property
    def reply_code(self) -> PrefixReplyCode | int:
        """The code as a :class:`PrefixReplyCode` when known, else the plain int."""
        try:
            return PrefixReplyCode(self.code)
        except ValueError:
            return self.code

    @property
    def accepted(self) -> bool:
        """True for accept codes 0..7 (RFC 5454 §2.2)."""
        return PrefixReplyCode.is_accepted(self.code)

    @property
    def is_link_local(self) -> bool:
        """True when Prefix Length is 255 (RFC 5454 §2.2)."""
        return self.prefix_length == LINK_LOCAL_PREFIX_LENGTH

    @property
    def network(self) -> IPv6Network | None:
        """The prefix with host bits ignored, or None for a link-local reply."""
        return _network(self.prefix_length, self.prefix)

    def matches(self, request: PrefixRequest) -> bool:
        """True if this reply answers ``request`` (same length and prefix, RFC 5454 §3.3, §3.5)."""
        return (self.prefix_length, self.prefix) == (request.prefix_length, request.prefix)

    def encode(self) -> bytes:
        fields = (self.type, PREFIX_REPLY_LENGTH, self.subtype, self.code, self.prefix_length, self.reserved)
        header = struct.pack("!BBBBBB", *fields)
        return header + self.prefix.packed


@dataclass(frozen=True)
class TunnelingMode:
    """IPv6 Tunneling Mode, 152/3: tunnel IPv6 to the care-of address (RFC 5454 §2.3)."""

    type: ClassVar[int] = ExtensionType.DSMIPV4
    subtype: ClassVar[int] = DsmipSubtype.TUNNELING_MODE
    reserved: int = 0

    def __post_init__(self) -> None:
        _check_byte("reserved", self.reserved)

    def encode(self) -> bytes:
        return struct.pack("!BBBB", self.type, TUNNELING_MODE_LENGTH, self.subtype, self.reserved)


DsmipExtension = PrefixRequest | PrefixReply | TunnelingMode

_EXPECTED_LENGTH = {
    DsmipSubtype.PREFIX_REQUEST: PREFIX_REQUEST_LENGTH,
    DsmipSubtype.PREFIX_REPLY: PREFIX_REPLY_LENGTH,
    DsmipSubtype.TUNNELING_MODE: TUNNELING_MODE_LENGTH,
}


def _decoded_prefix_length(value: int, at: int) -> int:
    if 0 <= value <= 128 or value == LINK_LOCAL_PREFIX_LENGTH:
        return value
    raise DecodeError(at, f"DSMIPv4 prefix length {value} is neither 0..128 nor 255 (RFC 5454 §2.1)")


DECODED_REQUESTS_SIZE = 16384
"""Distinct Prefix Requests :func:`decode_dsmip_body` hands out again (cleared when full)."""
_DECODED_REQUESTS: dict[bytes, PrefixRequest] = {}
"""Prefix Length and Prefix bytes → the request decoded from them: a renewal repeats its prefixes, and one
frozen object per prefix builds its address and :attr:`~PrefixRequest.network` once (issue 9). A pure
function of the bytes, so nothing ever makes an entry wrong."""


def decode_dsmip_body(body: bytes, at: int) -> DsmipExtension | None:
    """Decode the Data of a type-152 extension (subtype first); None for an unknown subtype.

    ``at`` is the offset of the extension's Type byte in the whole message (for errors).
    """
    if not body:
        raise DecodeError(at + 1, "DSMIPv4 extension with Length 0 has no subtype (RFC 5454 §2)")
    subtype = body[0]
    if subtype not in _EXPECTED_LENGTH:
        return None
    expected = _EXPECTED_LENGTH[DsmipSubtype(subtype)]
    if len(body) != expected:
        raise DecodeError(at + 1, f"DSMIPv4 subtype {subtype} needs Length {expected}, got {len(body)}")
    if subtype == DsmipSubtype.TUNNELING_MODE:
        return TunnelingMode(reserved=body[1])
    if subtype == DsmipSubtype.PREFIX_REQUEST:
        key = bytes(body[1:18])
        known = _DECODED_REQUESTS.get(key)
        if known is None:
            request = PrefixRequest(_decoded_prefix_length(body[1], at + 3), IPv6Address(body[2:18]))
            known = remember(_DECODED_REQUESTS, key, request, DECODED_REQUESTS_SIZE)
        return known
    length = _decoded_prefix_length(body[2], at + 4)
    return PrefixReply(code=body[1], prefix_length=length, prefix=IPv6Address(body[4:20]), reserved=body[3])
