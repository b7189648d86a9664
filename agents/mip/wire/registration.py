"""Registration Request (type 1) and Reply (type 3) messages (RFC 5944 §3.3, §3.4).

Decoding is strict about format (anything malformed raises :class:`DecodeError`, nothing else) and
lossless: unknown flag bits, unknown reply codes and unknown extensions are kept, so
``decode(raw).encode() == raw`` for every accepted input. The builders at the end put
extensions in the order RFC 5944 §3.6.1.3 requires and sign them (:mod:`agents.mip.wire.auth`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from ipaddress import IPv4Address
from typing import ClassVar, Self

from agents.mip.wire.auth import SecurityAssociation, append_authentication, locate_authentication
from agents.mip.wire.codes import FIXED_PART_LENGTH, ExtensionType, MessageType, RegistrationFlag, ReplyCode
from agents.mip.wire.codes import is_accepted as is_accepted_code
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.extensions import (
    AuthenticationExtension,
    EncapsulatingDeliveryStyle,
    Extension,
    LocatedExtension,
    NaiExtension,
    PrefixReply,
    PrefixRequest,
    TunnelingMode,
    UdpTunnelReply,
    UdpTunnelRequest,
    UnknownExtension,
    check_extension_order,
    decode_extensions,
    encode_extensions,
    locate_extensions,
)
from agents.mip.wire.memo import remember

_FLAGS = tuple(RegistrationFlag(value) for value in range(0x100))
"""Each flag byte as a :class:`RegistrationFlag` (made once: the ``enum`` call is slow per request)."""
_REQUEST_FORMAT = struct.Struct("!BBH4s4s4sQ")
_REPLY_FORMAT = struct.Struct("!BBH4s4sQ")


def _check_range(name: str, value: int, upper: int) -> None:
    if not 0 <= value <= upper:
        raise ValueError(f"{name} {value} is outside 0..{upper}")


def _check_fixed_part(data: bytes, message_type: int, name: str) -> None:
    if not data:
        raise DecodeError(0, f"empty {name}")
    if data[0] != message_type:
        raise DecodeError(0, f"type {data[0]} is not a {name} ({message_type})")
    fixed = FIXED_PART_LENGTH[message_type]
    if len(data) < fixed:
        raise DecodeError(len(data), f"{name} of {len(data)} bytes is shorter than {fixed} bytes")


class _ExtensionLookups:
    """Lookups shared by both messages over their ``extensions`` tuple (:attr:`tunneling_modes`, asked for
    three times per request by the home agent, is worked out once: messages are frozen, issue 9)."""

    extensions: tuple[Extension, ...]

    def fixed_part(self) -> bytes:
        raise NotImplementedError

    def encode(self) -> bytes:
        """The fixed part followed by every extension, in order."""
        return self.fixed_part() + encode_extensions(self.extensions)

    @property
    def has_unknown_non_skippable(self) -> bool:
        """True if an unknown type 0-127 was found: discard the message silently (RFC 5944 §1.8)."""
        return any(isinstance(e, UnknownExtension) and not e.skippable for e in self.extensions)

    def find(self, extension_type: int) -> tuple[Extension, ...]:
        """Every extension of ``extension_type``, in message order."""
        return tuple(e for e in self.extensions if e.type == extension_type)

    def authentication(self, extension_type: int) -> AuthenticationExtension | None:
        """The first authentication extension of ``extension_type`` (32, 33 or 34), if any."""
        for extension in self.extensions:
            if isinstance(extension, AuthenticationExtension) and extension.type == extension_type:
                return extension
        return None

    @property
    def nai(self) -> str | None:
        """The Mobile Node NAI (RFC 2794 §2), if present."""
        found = [e.nai for e in self.extensions if isinstance(e, NaiExtension)]
        return found[0] if found else None

    @property
    def prefix_requests(self) -> tuple[PrefixRequest, ...]:
        """The DSMIPv4 IPv6 Prefix Requests (RFC 5454 §2.1), in order."""
        return tuple(e for e in self.extensions if isinstance(e, PrefixRequest))

    @property
    def prefix_replies(self) -> tuple[PrefixReply, ...]:
        """The DSMIPv4 IPv6 Prefix Replies (RFC 5454 §2.2), in order."""
        return tuple(e for e in self.extensions if isinstance(e, PrefixReply))

    @cached_property
    def tunneling_modes(self) -> tuple[TunnelingMode, ...]:
        """The DSMIPv4 IPv6 Tunneling Mode extensions (RFC 5454 §2.3); at most one is allowed."""
        return tuple(e for e in self.extensions if isinstance(e, TunnelingMode))

    @property
    def udp_tunnel_requests(self) -> tuple[UdpTunnelRequest, ...]:
        """The UDP Tunnel Request extensions (RFC 3519 §3.1), in order."""
        return tuple(e for e in self.extensions if isinstance(e, UdpTunnelRequest))

    @property
    def udp_tunnel_reply(self) -> UdpTunnelReply | None:
        """The UDP Tunnel Reply (RFC 3519 §3.2), if present."""
        found = [e for e in self.extensions if isinstance(e, UdpTunnelReply)]
        return found[0] if found else None


@dataclass(frozen=True)
class RegistrationRequest(_ExtensionLookups):
    """Registration Request, type 1, 24-byte fixed part then extensions (RFC 5944 §3.3)."""

    TYPE: ClassVar[int] = MessageType.REGISTRATION_REQUEST
    flags: RegistrationFlag
    lifetime: int
    home_address: IPv4Address
    home_agent: IPv4Address
    care_of_address: IPv4Address
    identification: int
    extensions: tuple[Extension, ...] = ()

    def __post_init__(self) -> None:
        _check_range("flags", self.flags, 0xFF)
        object.__setattr__(self, "flags", _FLAGS[self.flags])
        object.__setattr__(self, "extensions", tuple(self.extensions))
        _check_range("lifetime", self.lifetime, 0xFFFF)
        _check_range("identification", self.identification, 2**64 - 1)
        check_extension_order(self.extensions)

    @property
    def is_deregistration(self) -> bool:
        """Lifetime 0 asks to remove the binding(s) (RFC 5944 §3.3)."""
        return self.lifetime == 0

    def fixed_part(self) -> bytes:
        """The 24 bytes before the extensions."""
        return _REQUEST_FORMAT.pack(
            self.TYPE,
            int(self.flags),
            self.lifetime,
            self.home_address.packed,
            self.home_agent.packed,
            self.care_of_address.packed,
            self.identification,
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a whole Registration Request; raises only :class:`DecodeError`."""
        return cls.decode_located(data)[0]

    @classmethod
    def decode_located(cls, data: bytes) -> tuple[Self, tuple[LocatedExtension, ...]]:
        """:meth:`decode`, also telling where each extension sits in ``data``: the home agent checks the
        MN-HA Authenticator with these (:func:`agents.mip.wire.auth.verify_located`) instead of parsing
        the message a second time (issue 9)."""
        data = bytes(data)
        _check_fixed_part(data, cls.TYPE, "Registration Request")
        _, flags, lifetime, home, agent, care_of, identification = _REQUEST_FORMAT.unpack_from(data)
        located = locate_extensions(data[_REQUEST_FORMAT.size :], _REQUEST_FORMAT.size)
        request = cls(
            _FLAGS[flags],
            lifetime,
            decoded_ipv4(home),
            decoded_ipv4(agent),
            decoded_ipv4(care_of),
            identification,
            tuple(item.extension for item in located),
        )
        return request, located


class HashedIPv4Address(IPv4Address):
    """An :class:`~ipaddress.IPv4Address` that works its hash out once, when it is made.

    ``ipaddress`` hashes an address by formatting its integer in hex on every call; the home agent looks a
    request's addresses up in some twenty tables per renewal (bindings, accounts, replay state, known
    sources, ...), and the same decoded objects come back for every renewal (:func:`decoded_ipv4`), so
    the hash is kept with the address (issue 9). It is exactly ``IPv4Address``'s hash of the same
    (immutable) value, so both kinds of object find each other in any dict or set, and they compare equal."""

    __slots__ = ("_hash",)

    def __init__(self, address: object) -> None:
        super().__init__(address)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


DECODED_ADDRESSES_SIZE = 65536
"""Distinct IPv4 addresses :func:`decoded_ipv4` hands out again (cleared when full)."""
_DECODED_ADDRESSES: dict[bytes, IPv4Address] = {}


def decoded_ipv4(packed: bytes) -> IPv4Address:
    """The address of 4 bytes from the wire, the same object each time (issue 9): the home agent's tables
    are keyed by these addresses, and a lookup with the very key object skips ``ipaddress``'s Python
    ``__eq__``. A pure function of the bytes (addresses are immutable), so nothing makes an entry wrong."""
    address = _DECODED_ADDRESSES.get(packed)
    if address is None:
        address = remember(_DECODED_ADDRESSES, packed, HashedIPv4Address(packed), DECODED_ADDRESSES_SIZE)
    return address


def _known_code(code: int) -> int:
    try:
        return ReplyCode(code)
    except ValueError:
        return code


@dataclass(frozen=True)
class RegistrationReply(_ExtensionLookups):
    """Registration Reply, type 3, 20-byte fixed part then extensions (RFC 5944 §3.4).

    ``code`` is a :class:`ReplyCode` when known and a plain int otherwise.
    """

    TYPE: ClassVar[int] = MessageType.REGISTRATION_REPLY
    code: int
    lifetime: int
    home_address: IPv4Address
    home_agent: IPv4Address
    identification: int
    extensions: tuple[Extension, ...] = ()

    def __post_init__(self) -> None:
        _check_range("code", self.code, 0xFF)
        object.__setattr__(self, "code", _known_code(self.code))
        object.__setattr__(self, "extensions", tuple(self.extensions))
        _check_range("lifetime", self.lifetime, 0xFFFF)
        _check_range("identification", self.identification, 2**64 - 1)
        check_extension_order(self.extensions)

    @property
    def accepted(self) -> bool:
        """True for codes 0 and 1 (RFC 5944 §3.4)."""
        return is_accepted_code(self.code)

    def fixed_part(self) -> bytes:
        """The 20 bytes before the extensions."""
        return _REPLY_FORMAT.pack(
            self.TYPE,
            int(self.code),
            self.lifetime,
            self.home_address.packed,
            self.home_agent.packed,
            self.identification,
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a whole Registration Reply; raises only :class:`DecodeError`."""
        data = bytes(data)
        _check_fixed_part(data, cls.TYPE, "Registration Reply")
        _, code, lifetime, home, agent, identification = _REPLY_FORMAT.unpack_from(data)
        extensions = decode_extensions(data[_REPLY_FORMAT.size :], _REPLY_FORMAT.size)
        return cls(code, lifetime, IPv4Address(home), IPv4Address(agent), identification, extensions)


RegistrationMessage = RegistrationRequest | RegistrationReply


def encode_reply(
    code: int,
    lifetime: int,
    home_address: IPv4Address,
    home_agent: IPv4Address,
    identification: int,
    extensions: Sequence[PrefixReply | UdpTunnelReply],
) -> bytes:
    """``RegistrationReply(...).encode()`` for a home agent's own reply (RFC 5944 §3.4) without building
    the message object (issue 9: one per request); the fields must be in range (struct.error otherwise)."""
    fixed = _REPLY_FORMAT.pack(
        MessageType.REGISTRATION_REPLY, code, lifetime, home_address.packed, home_agent.packed, identification
    )
    return fixed + b"".join(extension.encode() for extension in extensions)


def decode_message(data: bytes) -> RegistrationMessage:
    """Decode a UDP-434 payload by its Type byte: 1 → request, 3 → reply (RFC 5944 §1.8).

    Any other type (including 4, Tunnel Data, handled in :mod:`agents.mip.wire.tunnel`) raises
    :class:`DecodeError`.
    """
    data = bytes(data)
    if not data:
        raise DecodeError(0, "empty message")
    if data[0] == MessageType.REGISTRATION_REQUEST:
        return RegistrationRequest.decode(data)
    if data[0] == MessageType.REGISTRATION_REPLY:
        return RegistrationReply.decode(data)
    raise DecodeError(0, f"message type {data[0]} is not a Registration Request (1) or Reply (3)")


# Builders: extension order (RFC 5944 §3.6.1.3) and authenticators (§3.5.1) -----------------

_MN_HA = ExtensionType.MOBILE_HOME_AUTH
_MN_FA = ExtensionType.MOBILE_FOREIGN_AUTH
_FA_HA = ExtensionType.FOREIGN_HOME_AUTH
_HA_BOUND_REQUEST = (NaiExtension, PrefixRequest, TunnelingMode, UdpTunnelRequest)
_HA_BOUND_REPLY = (PrefixReply, UdpTunnelReply)


def _check_kinds(extensions: Sequence[Extension], kinds: tuple[type, ...], where: str) -> None:
    for extension in extensions:
        skippable_unknown = isinstance(extension, UnknownExtension) and extension.skippable
        if not (isinstance(extension, kinds) or skippable_unknown):
            raise ValueError(f"{extension!r} does not belong {where}")


def _at_most_one(extensions: Sequence[Extension], kind: type, rule: str) -> None:
    if sum(isinstance(extension, kind) for extension in extensions) > 1:
        raise ValueError(f"more than one {kind.__name__} ({rule})")


def _check_request_rules(request: RegistrationRequest, fa_extensions: Sequence[Extension]) -> None:
    """Flag-dependent rules for the MN's extensions (RFC 5454 §3.5, §3.9; RFC 3519 §3.1; RFC 3024 §3.3)."""
    co_located = RegistrationFlag.D in request.flags
    if request.tunneling_modes and not co_located:
        raise ValueError("Tunneling Mode needs a co-located care-of address, D flag (RFC 5454 §3.5)")
    if request.udp_tunnel_requests and not co_located:
        raise ValueError("UDP Tunnel Request from the MN needs the D flag (RFC 3519 §3.1, §4.4)")
    if request.prefix_requests and any(e.encapsulation != 0 for e in request.udp_tunnel_requests):
        raise ValueError("with IPv6 prefixes, UDP Tunnel Request Encapsulation MUST be 0 (RFC 5454 §3.9)")
    delivery_style = any(isinstance(e, EncapsulatingDeliveryStyle) for e in fa_extensions)
    if delivery_style and RegistrationFlag.T not in request.flags:
        raise ValueError("Encapsulating Delivery Style needs the T flag (RFC 3024 §3.3)")


def _check_request_extensions(request: RegistrationRequest, fa_extensions: Sequence[Extension]) -> None:
    """Which extension may go where, and how many (RFC 5944 §3.6.1.3)."""
    _check_kinds(request.extensions, _HA_BOUND_REQUEST, "before the MN-HA authentication (RFC 5944 §3.6.1.3)")
    _check_kinds(fa_extensions, (EncapsulatingDeliveryStyle,), "after the MN-HA authentication")
    _at_most_one(request.extensions, NaiExtension, "RFC 2794 §2")
    _at_most_one(request.extensions, TunnelingMode, "RFC 5454 §3.5")
    _at_most_one(request.extensions, UdpTunnelRequest, "RFC 3519 §3.1")
    _at_most_one(fa_extensions, EncapsulatingDeliveryStyle, "RFC 3024 §3.3")
    _check_request_rules(request, fa_extensions)


def build_request(
    request: RegistrationRequest,
    mn_ha: SecurityAssociation,
    fa_extensions: Sequence[Extension] = (),
    mn_fa: SecurityAssociation | None = None,
) -> bytes:
    """Encode and sign a Registration Request from the mobile node (RFC 5944 §3.6.1.3).

    ``request.extensions`` are the HA-bound, non-authentication extensions (NAI, DSMIPv4 152,
    UDP Tunnel Request 144). Order on the wire: fixed part, NAI (RFC 2794 §2), the other HA-bound
    extensions as given (DSMIPv4 before MN-HA, RFC 5454 §3.1), MN-HA authentication, the FA-only
    ``fa_extensions`` (130), then MN-FA authentication if ``mn_fa`` is given.
    Raises ValueError for extensions that break the RFC rules.
    """
    _check_request_extensions(request, fa_extensions)
    nai_first = sorted(request.extensions, key=lambda extension: not isinstance(extension, NaiExtension))
    message = append_authentication(replace(request, extensions=tuple(nai_first)).encode(), _MN_HA, mn_ha)
    message += encode_extensions(fa_extensions)
    if mn_fa is not None:
        message = append_authentication(message, _MN_FA, mn_fa)
    return message


def append_foreign_home_authentication(raw: bytes, fa_ha: SecurityAssociation) -> bytes:
    """Append FA-HA authentication (34) after the MN-HA of a request or reply (RFC 5944 §3.5.4).

    Raises DecodeError if ``raw`` is malformed, ValueError if it has no MN-HA or already has FA-HA.
    """
    message = decode_message(raw)
    if message.authentication(_MN_HA) is None:
        raise ValueError("FA-HA authentication must follow an MN-HA authentication (RFC 5944 §3.6.1.3)")
    if message.authentication(_FA_HA) is not None:
        raise ValueError("message already carries FA-HA authentication")
    return append_authentication(raw, _FA_HA, fa_ha)


def _up_to_mn_ha(raw: bytes) -> bytes:
    """``raw`` cut after its first MN-HA authentication: the part an FA must not change."""
    location = locate_authentication(raw, _MN_HA)
    if location is None:
        raise ValueError("no MN-HA authentication extension (RFC 5944 §3.6.1.3)")
    return bytes(raw[: location.end])


def fa_relay_request(
    raw_request: bytes,
    udp_tunnel_request: UdpTunnelRequest | None = None,
    fa_ha: SecurityAssociation | None = None,
) -> bytes:
    """The request an FA relays to the HA: the MN's bytes through MN-HA unchanged, then an optional
    UDP Tunnel Request (RFC 3519 §4.5), then FA-HA authentication if ``fa_ha`` is given.

    Extensions after MN-HA were for the FA (130, MN-FA; RFC 5944 §3.6.1.3, RFC 3024 §3.3 "consumed")
    and are not relayed (this module's reading of the RFCs). Raises DecodeError if malformed and
    ValueError if the request must not be relayed as asked.
    """
    request = RegistrationRequest.decode(raw_request)
    if request.has_unknown_non_skippable:
        raise ValueError("request has an unknown non-skippable extension: discard it (RFC 5944 §1.8)")
    if udp_tunnel_request is not None and RegistrationFlag.D in request.flags:
        raise ValueError("an FA must not add UDP Tunnel Request when D is set (RFC 3519 §4.6.1: 134)")
    message = _up_to_mn_ha(raw_request)
    if udp_tunnel_request is not None:
        message += udp_tunnel_request.encode()
    if fa_ha is not None:
        message = append_authentication(message, _FA_HA, fa_ha)
    return message


def build_reply(
    reply: RegistrationReply, mn_ha: SecurityAssociation, fa_ha: SecurityAssociation | None = None
) -> bytes:
    """Encode and sign a home agent's Registration Reply (RFC 5944 §3.8.3).

    ``reply.extensions`` are for the MN (DSMIPv4 Prefix Replies, UDP Tunnel Reply 44). Order:
    fixed part, those extensions, MN-HA authentication, then FA-HA authentication when the reply
    goes back through an FA sharing ``fa_ha`` with the HA.
    """
    _check_kinds(reply.extensions, _HA_BOUND_REPLY, "in a home agent's Registration Reply")
    _at_most_one(reply.extensions, UdpTunnelReply, "RFC 3519 §3.2")
    prefixes = [(e.prefix_length, e.prefix) for e in reply.prefix_replies]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError("more than one Prefix Reply for the same prefix (RFC 5454 §3.3)")
    message = append_authentication(reply.encode(), _MN_HA, mn_ha)
    if fa_ha is not None:
        message = append_authentication(message, _FA_HA, fa_ha)
    return message


def fa_relay_reply(raw_reply: bytes, mn_fa: SecurityAssociation | None = None) -> bytes:
    """The reply an FA relays to the MN: the HA's bytes through MN-HA unchanged (FA-HA and anything
    after it dropped), then MN-FA authentication if ``mn_fa`` is given (RFC 5944 §3.7.3)."""
    RegistrationReply.decode(raw_reply)
    message = _up_to_mn_ha(raw_reply)
    return message if mn_fa is None else append_authentication(message, _MN_FA, mn_fa)


def build_foreign_agent_reply(reply: RegistrationReply, mn_fa: SecurityAssociation | None = None) -> bytes:
    """A reply the FA makes itself, e.g. a denial (RFC 5944 §3.7.2), with optional MN-FA auth."""
    _check_kinds(reply.extensions, (), "in a foreign agent's own Registration Reply")
    message = reply.encode()
    return message if mn_fa is None else append_authentication(message, _MN_FA, mn_fa)
