"""Registration extensions on UDP port 434 and their framing (RFC 5944 §1.8-§1.11, §3.5).

One frozen dataclass per extension; each has ``encode() -> bytes`` giving the whole extension
(Type and Length included). :func:`decode_extensions` turns the bytes after a message's fixed part
into a tuple of them, and :func:`encode_extensions` does the reverse, byte-identically.

Unknown extensions (RFC 5944 §1.8):

* skippable (128-255): kept as :class:`UnknownExtension` with their Data, and parsing goes on;
* non-skippable (0-127, including type 0, which has no meaning on UDP 434): their length format is
  unknown, so parsing stops there and the rest of the message becomes one :class:`UnknownExtension`
  whose ``body`` is everything after its Type byte (``skippable`` is False). The receiver must then
  discard the message silently. A UDP Tunnel Reply (44, non-skippable) with a subtype other than 0
  is handled the same way.

Malformed input raises :class:`DecodeError`: a Length that runs past the end, a wrong fixed Length
for a known type/subtype, a short-format extension (144, 44, 152) with no subtype byte, an NAI that
is not UTF-8, an authentication extension shorter than its SPI.

The DSMIPv4 classes (type 152) live in :mod:`agents.mip.wire.dsmip` and are re-exported here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from agents.mip.wire.codes import ExtensionType, is_skippable
from agents.mip.wire.dsmip import PrefixReply, PrefixRequest, TunnelingMode, decode_dsmip_body
from agents.mip.wire.errors import DecodeError

__all__ = [
    "AUTHENTICATION_TYPES",
    "AuthenticationExtension",
    "EncapsulatingDeliveryStyle",
    "Extension",
    "LocatedExtension",
    "NaiExtension",
    "PrefixReply",
    "PrefixRequest",
    "TunnelingMode",
    "UdpTunnelReply",
    "UdpTunnelRequest",
    "UnknownExtension",
    "check_extension_order",
    "decode_extensions",
    "encode_extensions",
    "locate_extensions",
]

AUTHENTICATION_TYPES = frozenset(
    {ExtensionType.MOBILE_HOME_AUTH, ExtensionType.MOBILE_FOREIGN_AUTH, ExtensionType.FOREIGN_HOME_AUTH}
)
SPI_LENGTH = 4
MAX_DATA_LENGTH = 255
UDP_TUNNEL_LENGTH = 6


def _check_range(name: str, value: int, upper: int) -> None:
    if not 0 <= value <= upper:
        raise ValueError(f"{name} {value} is outside 0..{upper}")


@dataclass(frozen=True)
class AuthenticationExtension:
    """MN-HA (32), MN-FA (33) or FA-HA (34) authentication: SPI(4) + Authenticator (RFC 5944 §3.5)."""

    type: int
    spi: int
    authenticator: bytes

    def __post_init__(self) -> None:
        if self.type not in AUTHENTICATION_TYPES:
            raise ValueError(f"type {self.type} is not an authentication extension (32, 33, 34)")
        _check_range("SPI", self.spi, 0xFFFFFFFF)
        _check_range("authenticator length", len(self.authenticator), MAX_DATA_LENGTH - SPI_LENGTH)

    @property
    def spi_reserved(self) -> bool:
        """True for SPI 0-255, which are reserved and MUST NOT be used (RFC 5944 §1.6)."""
        return self.spi <= 255

    def encode(self) -> bytes:
        length = SPI_LENGTH + len(self.authenticator)
        return struct.pack("!BBI", self.type, length, self.spi) + self.authenticator


@dataclass(frozen=True)
class NaiExtension:
    """Mobile Node NAI, type 131: the NAI as UTF-8, 1..255 bytes (RFC 2794 §2)."""

    type: ClassVar[int] = ExtensionType.MOBILE_NODE_NAI
    nai: str

    def __post_init__(self) -> None:
        try:
            length = len(self.nai.encode("utf-8"))
        except UnicodeEncodeError as error:
            raise ValueError(f"NAI is not encodable as UTF-8: {error}") from None
        if not 1 <= length <= MAX_DATA_LENGTH:
            raise ValueError(f"NAI is {length} bytes; it must be 1..255 (RFC 2794 §2)")

    def encode(self) -> bytes:
        data = self.nai.encode("utf-8")
        return bytes((self.type, len(data))) + data


@dataclass(frozen=True)
class EncapsulatingDeliveryStyle:
    """Encapsulating Delivery Style, type 130, Length 0; FA-only, needs the T bit (RFC 3024 §3.3)."""

    type: ClassVar[int] = ExtensionType.ENCAPSULATING_DELIVERY_STYLE

    def encode(self) -> bytes:
        return bytes((self.type, 0))


@dataclass(frozen=True)
class UdpTunnelRequest:
    """UDP Tunnel Request, type 144, Length 6, subtype 0 (RFC 3519 §3.1).

    ``encapsulation`` is an IP protocol number (4, 47, 55; 0 = use the M/G flags, and RFC 5454 §3.9
    requires 0 for IPv6). ``reserved2`` is the 6 low bits of the flag byte. Reserved values are kept
    so that decoding and re-encoding is byte-identical.
    """

    type: ClassVar[int] = ExtensionType.UDP_TUNNEL_REQUEST
    force: bool
    r_flag: bool
    encapsulation: int
    reserved1: int = 0
    reserved2: int = 0
    reserved3: int = 0

    FORCE_MASK: ClassVar[int] = 0x80
    R_MASK: ClassVar[int] = 0x40

    def __post_init__(self) -> None:
        _check_range("encapsulation", self.encapsulation, 0xFF)
        _check_range("reserved1", self.reserved1, 0xFF)
        _check_range("reserved2", self.reserved2, 0x3F)
        _check_range("reserved3", self.reserved3, 0xFFFF)

    @property
    def reserved3_nonzero(self) -> bool:
        """Reserved3 != 0: treat the extension as not understood (RFC 3519 §3.1; HA replies 134)."""
        return self.reserved3 != 0

    def encode(self) -> bytes:
        flags = (self.FORCE_MASK if self.force else 0) | (self.R_MASK if self.r_flag else 0) | self.reserved2
        return struct.pack(
            "!BBBBBBH",
            self.type,
            UDP_TUNNEL_LENGTH,
            0,
            self.reserved1,
            flags,
            self.encapsulation,
            self.reserved3,
        )


@dataclass(frozen=True)
class UdpTunnelReply:
    """UDP Tunnel Reply, type 44 (NON-skippable), Length 6, subtype 0 (RFC 3519 §3.2).

    ``code`` 0-63 means the HA will tunnel, 64-255 that it declined. ``keepalive`` is in seconds,
    0 = use the configured default. ``reserved`` is the 15 bits after the F flag.
    """

    type: ClassVar[int] = ExtensionType.UDP_TUNNEL_REPLY
    code: int
    force: bool
    keepalive: int
    reserved: int = 0

    FORCE_MASK: ClassVar[int] = 0x8000

    def __post_init__(self) -> None:
        _check_range("code", self.code, 0xFF)
        _check_range("keepalive", self.keepalive, 0xFFFF)
        _check_range("reserved", self.reserved, 0x7FFF)

    @property
    def accepted(self) -> bool:
        """True for codes 0-63: the HA will use UDP tunnelling (RFC 3519 §3.2)."""
        return self.code < 64

    def encode(self) -> bytes:
        flags = (self.FORCE_MASK if self.force else 0) | self.reserved
        return struct.pack("!BBBBHH", self.type, UDP_TUNNEL_LENGTH, 0, self.code, flags, self.keepalive)


@dataclass(frozen=True)
class UnknownExtension:
    """An extension this module does not interpret, kept verbatim (RFC 5944 §1.8).

    Skippable (type 128-255): ``body`` is the Data after the Length byte. Non-skippable (0-127):
    ``body`` is everything after the Type byte to the end of the message, since its framing is
    unknown; it is always the last extension of a decoded message.
    """

    type: int
    body: bytes

    def __post_init__(self) -> None:
        _check_range("type", self.type, 0xFF)
        if self.skippable:
            _check_range("body length", len(self.body), MAX_DATA_LENGTH)

    @property
    def skippable(self) -> bool:
        """True for types 128-255 (RFC 5944 §1.8)."""
        return is_skippable(self.type)

    def encode(self) -> bytes:
        if self.skippable:
            return bytes((self.type, len(self.body))) + self.body
        return bytes((self.type,)) + self.body


Extension = (
    AuthenticationExtension
    | NaiExtension
    | EncapsulatingDeliveryStyle
    | UdpTunnelRequest
    | UdpTunnelReply
    | PrefixRequest
    | PrefixReply
    | TunnelingMode
    | UnknownExtension
)
"""Any extension a registration message can carry."""


def _expect_length(name: str, body: bytes, expected: int, at: int) -> None:
    if len(body) != expected:
        raise DecodeError(at + 1, f"{name} needs Length {expected}, got {len(body)}")


def _decode_authentication(ext_type: int, body: bytes, at: int) -> Extension:
    if len(body) < SPI_LENGTH:
        raise DecodeError(at + 1, f"authentication extension {ext_type}: Length {len(body)} < 4 (no SPI)")
    (spi,) = struct.unpack_from("!I", body)
    return AuthenticationExtension(ext_type, spi, body[SPI_LENGTH:])


def _decode_nai(ext_type: int, body: bytes, at: int) -> Extension:
    if not body:
        raise DecodeError(at + 1, "NAI extension with Length 0 (RFC 2794 §2)")
    try:
        return NaiExtension(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise DecodeError(at + 2 + error.start, "NAI is not valid UTF-8") from None


def _decode_delivery_style(ext_type: int, body: bytes, at: int) -> Extension:
    _expect_length("Encapsulating Delivery Style (RFC 3024 §3.3)", body, 0, at)
    return EncapsulatingDeliveryStyle()


def _require_subtype(name: str, body: bytes, at: int) -> None:
    if not body:
        raise DecodeError(at + 1, f"{name} with Length 0 has no subtype (RFC 5944 §1.11)")


def _decode_udp_tunnel_request(ext_type: int, body: bytes, at: int) -> Extension | None:
    _require_subtype("UDP Tunnel Request", body, at)
    if body[0] != 0:
        return UnknownExtension(ext_type, body)  # skippable, subtype we do not know
    _expect_length("UDP Tunnel Request (RFC 3519 §3.1)", body, UDP_TUNNEL_LENGTH, at)
    _, reserved1, flags, encapsulation, reserved3 = struct.unpack("!BBBBH", body)
    return UdpTunnelRequest(
        force=bool(flags & UdpTunnelRequest.FORCE_MASK),
        r_flag=bool(flags & UdpTunnelRequest.R_MASK),
        encapsulation=encapsulation,
        reserved1=reserved1,
        reserved2=flags & 0x3F,
        reserved3=reserved3,
    )


def _decode_udp_tunnel_reply(ext_type: int, body: bytes, at: int) -> Extension | None:
    _require_subtype("UDP Tunnel Reply", body, at)
    if body[0] != 0:
        return None  # non-skippable and not understood: keep the rest opaque
    _expect_length("UDP Tunnel Reply (RFC 3519 §3.2)", body, UDP_TUNNEL_LENGTH, at)
    _, code, flags, keepalive = struct.unpack("!BBHH", body)
    force = bool(flags & UdpTunnelReply.FORCE_MASK)
    return UdpTunnelReply(code=code, force=force, keepalive=keepalive, reserved=flags & 0x7FFF)


def _decode_dsmip(ext_type: int, body: bytes, at: int) -> Extension | None:
    decoded = decode_dsmip_body(body, at)
    return UnknownExtension(ext_type, body) if decoded is None else decoded


_BodyDecoder = Callable[[int, bytes, int], Extension | None]

_DECODERS: dict[int, _BodyDecoder] = {
    ExtensionType.MOBILE_HOME_AUTH: _decode_authentication,
    ExtensionType.MOBILE_FOREIGN_AUTH: _decode_authentication,
    ExtensionType.FOREIGN_HOME_AUTH: _decode_authentication,
    ExtensionType.UDP_TUNNEL_REPLY: _decode_udp_tunnel_reply,
    ExtensionType.ENCAPSULATING_DELIVERY_STYLE: _decode_delivery_style,
    ExtensionType.MOBILE_NODE_NAI: _decode_nai,
    ExtensionType.UDP_TUNNEL_REQUEST: _decode_udp_tunnel_request,
    ExtensionType.DSMIPV4: _decode_dsmip,
}


def _frame(data: bytes, position: int, offset: int) -> int:
    """End index of the simple-TLV extension starting at ``position`` (RFC 5944 §1.9, §1.11)."""
    ext_type = data[position]
    if position + 2 > len(data):
        raise DecodeError(offset + position, f"extension {ext_type} has no Length byte")
    end = position + 2 + data[position + 1]
    if end > len(data):
        left = len(data) - position - 2
        reason = f"extension {ext_type}: Length {data[position + 1]} runs past the end ({left} bytes left)"
        raise DecodeError(offset + position + 1, reason)
    return end


def _decode_one(data: bytes, position: int, offset: int) -> tuple[Extension, int]:
    """Decode the extension at ``position``; return it and where the next one starts."""
    ext_type = data[position]
    known = ext_type in _DECODERS
    if not known and not is_skippable(ext_type):
        return UnknownExtension(ext_type, data[position + 1 :]), len(data)
    end = _frame(data, position, offset)
    body = data[position + 2 : end]
    if not known:
        return UnknownExtension(ext_type, body), end
    decoded = _DECODERS[ext_type](ext_type, body, offset + position)
    if decoded is None:
        return UnknownExtension(ext_type, data[position + 1 :]), len(data)
    return decoded, end


class LocatedExtension(NamedTuple):
    """A decoded extension and where it sits: ``start`` is its Type byte, ``end`` one past its last byte.

    Both count from the start of the whole message (they include the ``offset`` given to
    :func:`locate_extensions`).
    """

    extension: Extension
    start: int
    end: int


def locate_extensions(data: bytes, offset: int = 0) -> tuple[LocatedExtension, ...]:
    """Like :func:`decode_extensions`, also telling where each extension starts and ends."""
    data = bytes(data)
    located: list[LocatedExtension] = []
    position = 0
    while position < len(data):
        extension, end = _decode_one(data, position, offset)
        located.append(LocatedExtension(extension, offset + position, offset + end))
        position = end
    return tuple(located)


def decode_extensions(data: bytes, offset: int = 0) -> tuple[Extension, ...]:
    """Decode every extension in ``data`` (the bytes after a message's fixed part).

    ``offset`` is where ``data`` starts in the whole message; it is used only in
    :class:`DecodeError` offsets. Raises only :class:`DecodeError`.
    """
    return tuple(item.extension for item in locate_extensions(data, offset))


def check_extension_order(extensions: Iterable[Extension]) -> None:
    """Raise ValueError if a non-skippable :class:`UnknownExtension` is not the last extension.

    Its body runs to the end of the message, so anything after it could not be decoded back.
    """
    items = list(extensions)
    for index, extension in enumerate(items[:-1]):
        if isinstance(extension, UnknownExtension) and not extension.skippable:
            raise ValueError(f"non-skippable unknown extension {extension.type} at index {index} is not last")


def encode_extensions(extensions: Iterable[Extension]) -> bytes:
    """Concatenate the encodings of ``extensions``, in order."""
    items = tuple(extensions)
    check_extension_order(items)
    return b"".join(extension.encode() for extension in items)
