"""DHCPv6 wire codec for prefix delegation (RFC 8415 §8, §11, §21).

What the PD client needs and nothing more: the client/server message header (§8: msg-type(1),
transaction-id(3), options), Client ID 1 and Server ID 2 holding a DUID (§11: DUID-EN 2, DUID-LL 3, any
other type kept raw), ORO 6, Elapsed Time 8, Status Code 13, Rapid Commit 14, IA_PD 25 with IAPREFIX 26
(§21.21, §21.22). Other options are kept as :class:`RawOption` so re-encoding is byte-identical. Every
option is code(2), len(2), data (§21.1). Decoders raise only :class:`DecodeError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import IPv6Address, IPv6Network

from agents.mip.wire.errors import DecodeError

CLIENT_PORT = 546
SERVER_PORT = 547
ALL_DHCP_RELAY_AGENTS_AND_SERVERS = IPv6Address("ff02::1:2")
"""Link-scoped destination of every client message (RFC 8415 §7.1)."""
INFINITY = 0xFFFFFFFF
"""A lifetime of 0xffffffff is infinite (RFC 8415 §7.7)."""


class MessageType(IntEnum):
    """RFC 8415 §7.3."""

    SOLICIT = 1
    ADVERTISE = 2
    REQUEST = 3
    CONFIRM = 4
    RENEW = 5
    REBIND = 6
    REPLY = 7
    RELEASE = 8
    DECLINE = 9
    RECONFIGURE = 10
    INFORMATION_REQUEST = 11


class OptionCode(IntEnum):
    """RFC 8415 §21."""

    CLIENTID = 1
    SERVERID = 2
    ORO = 6
    ELAPSED_TIME = 8
    STATUS_CODE = 13
    RAPID_COMMIT = 14
    IA_PD = 25
    IAPREFIX = 26


class Status(IntEnum):
    """Status Code values (RFC 8415 §21.13; NoPrefixAvail from RFC 3633 §16)."""

    SUCCESS = 0
    UNSPEC_FAIL = 1
    NO_ADDRS_AVAIL = 2
    NO_BINDING = 3
    NOT_ON_LINK = 4
    USE_MULTICAST = 5
    NO_PREFIX_AVAIL = 6


DUID_EN = 2
DUID_LL = 3
HARDWARE_ETHERNET = 1


def duid_en(enterprise: int, identifier: bytes) -> bytes:
    """DUID-EN: type 2, enterprise-number(4), identifier (RFC 8415 §11.3)."""
    if not 0 <= enterprise <= 0xFFFFFFFF or not identifier:
        raise ValueError("DUID-EN needs a 32-bit enterprise number and a non-empty identifier")
    return struct.pack("!HI", DUID_EN, enterprise) + identifier


def duid_ll(link_layer_address: bytes, hardware_type: int = HARDWARE_ETHERNET) -> bytes:
    """DUID-LL: type 3, hardware type(2), link-layer address (RFC 8415 §11.4)."""
    if not link_layer_address:
        raise ValueError("DUID-LL needs a link-layer address")
    return struct.pack("!HH", DUID_LL, hardware_type) + link_layer_address


def _check_u32(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{name} {value} does not fit in 32 bits")


def _option(code: int, data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError(f"option {code} data is {len(data)} bytes; at most 65535")
    return struct.pack("!HH", code, len(data)) + data


def _split_options(data: bytes, base: int) -> list[tuple[int, bytes, int]]:
    """(code, data, offset) for each option in ``data``; ``base`` is its offset in the message."""
    options: list[tuple[int, bytes, int]] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 4:
            raise DecodeError(base + offset, "truncated option header")
        code, length = struct.unpack_from("!HH", data, offset)
        end = offset + 4 + length
        if end > len(data):
            raise DecodeError(base + offset, f"option {code} length {length} runs past the end")
        options.append((code, data[offset + 4 : end], base + offset))
        offset = end
    return options


@dataclass(frozen=True)
class RawOption:
    """An option this codec does not interpret, kept verbatim."""

    code: int
    data: bytes

    def encode(self) -> bytes:
        return _option(self.code, self.data)


@dataclass(frozen=True)
class StatusCode:
    """Status Code option 13: status-code(2), UTF-8 message (RFC 8415 §21.13)."""

    status: int
    message: str = ""

    def encode(self) -> bytes:
        return _option(OptionCode.STATUS_CODE, struct.pack("!H", self.status) + self.message.encode())

    @classmethod
    def decode(cls, data: bytes, offset: int) -> StatusCode:
        if len(data) < 2:
            raise DecodeError(offset, "Status Code option shorter than 2 bytes")
        try:
            message = data[2:].decode()
        except UnicodeDecodeError:
            raise DecodeError(offset, "Status Code message is not UTF-8") from None
        return cls(struct.unpack_from("!H", data)[0], message)


@dataclass(frozen=True)
class IaPrefix:
    """IAPREFIX option 26: preferred(4), valid(4), prefix-length(1), prefix(16), options (§21.22)."""

    preferred: int
    valid: int
    prefix: IPv6Network
    status: StatusCode | None = None

    def __post_init__(self) -> None:
        _check_u32("preferred lifetime", self.preferred)
        _check_u32("valid lifetime", self.valid)

    def encode(self) -> bytes:
        body = struct.pack("!IIB", self.preferred, self.valid, self.prefix.prefixlen)
        body += self.prefix.network_address.packed
        if self.status is not None:
            body += self.status.encode()
        return _option(OptionCode.IAPREFIX, body)

    @classmethod
    def decode(cls, data: bytes, offset: int) -> IaPrefix:
        if len(data) < 25:
            raise DecodeError(offset, f"IAPREFIX is {len(data)} bytes; at least 25 (RFC 8415 §21.22)")
        preferred, valid, length = struct.unpack_from("!IIB", data)
        if length > 128:
            raise DecodeError(offset + 12, f"prefix length {length} exceeds 128")
        prefix = IPv6Network((IPv6Address(data[9:25]), length), strict=False)
        status = None
        for code, option, where in _split_options(data[25:], offset + 29):
            if code == OptionCode.STATUS_CODE:
                status = StatusCode.decode(option, where)
        return cls(preferred, valid, prefix, status)


@dataclass(frozen=True)
class IaPd:
    """IA_PD option 25: IAID(4), T1(4), T2(4), IAPREFIX and Status Code options (RFC 8415 §21.21)."""

    iaid: int
    t1: int = 0
    t2: int = 0
    prefixes: tuple[IaPrefix, ...] = ()
    status: StatusCode | None = None

    def __post_init__(self) -> None:
        for name, value in (("IAID", self.iaid), ("T1", self.t1), ("T2", self.t2)):
            _check_u32(name, value)

    def encode(self) -> bytes:
        body = struct.pack("!III", self.iaid, self.t1, self.t2)
        body += b"".join(prefix.encode() for prefix in self.prefixes)
        if self.status is not None:
            body += self.status.encode()
        return _option(OptionCode.IA_PD, body)

    @classmethod
    def decode(cls, data: bytes, offset: int) -> IaPd:
        if len(data) < 12:
            raise DecodeError(offset, f"IA_PD is {len(data)} bytes; at least 12 (RFC 8415 §21.21)")
        iaid, t1, t2 = struct.unpack_from("!III", data)
        prefixes: list[IaPrefix] = []
        status = None
        for code, option, where in _split_options(data[12:], offset + 16):
            if code == OptionCode.IAPREFIX:
                prefixes.append(IaPrefix.decode(option, where))
            elif code == OptionCode.STATUS_CODE:
                status = StatusCode.decode(option, where)
        return cls(iaid, t1, t2, tuple(prefixes), status)


Option = RawOption | StatusCode | IaPd


@dataclass(frozen=True)
class Message:
    """A client/server message (RFC 8415 §8) with the options PD uses as fields, in encoding order."""

    msg_type: int
    transaction_id: int
    client_id: bytes | None = None
    server_id: bytes | None = None
    ia_pds: tuple[IaPd, ...] = ()
    rapid_commit: bool = False
    elapsed_time: int | None = None
    """Hundredths of a second since the exchange began, capped at 0xffff (§21.9)."""
    oro: tuple[int, ...] | None = None
    status: StatusCode | None = None
    other: tuple[RawOption, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.msg_type <= 0xFF:
            raise ValueError(f"msg-type {self.msg_type} does not fit in one byte")
        if not 0 <= self.transaction_id <= 0xFFFFFF:
            raise ValueError(f"transaction-id {self.transaction_id} does not fit in 24 bits")
        if self.elapsed_time is not None and not 0 <= self.elapsed_time <= 0xFFFF:
            raise ValueError(f"elapsed time {self.elapsed_time} does not fit in 16 bits")

    def encode(self) -> bytes:
        parts = [struct.pack("!I", self.msg_type << 24 | self.transaction_id)]
        if self.client_id is not None:
            parts.append(_option(OptionCode.CLIENTID, self.client_id))
        if self.server_id is not None:
            parts.append(_option(OptionCode.SERVERID, self.server_id))
        if self.oro is not None:
            parts.append(_option(OptionCode.ORO, b"".join(struct.pack("!H", code) for code in self.oro)))
        if self.elapsed_time is not None:
            parts.append(_option(OptionCode.ELAPSED_TIME, struct.pack("!H", self.elapsed_time)))
        if self.rapid_commit:
            parts.append(_option(OptionCode.RAPID_COMMIT, b""))
        parts.extend(ia_pd.encode() for ia_pd in self.ia_pds)
        if self.status is not None:
            parts.append(self.status.encode())
        parts.extend(option.encode() for option in self.other)
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Parse one message; relay messages (12, 13) are not client/server messages and are refused."""
        if len(data) < 4:
            raise DecodeError(0, "DHCPv6 message shorter than 4 bytes")
        header = struct.unpack_from("!I", data)[0]
        msg_type, transaction_id = header >> 24, header & 0xFFFFFF
        if msg_type in (12, 13):
            raise DecodeError(0, "relay message: not handled by a client")
        parts = _Parts()
        for code, option, where in _split_options(data[4:], 4):
            parts.add(code, option, where)
        return cls(
            msg_type,
            transaction_id,
            parts.client_id,
            parts.server_id,
            tuple(parts.ia_pds),
            parts.rapid_commit,
            parts.elapsed_time,
            parts.oro,
            parts.status,
            tuple(parts.other),
        )

    @property
    def type_name(self) -> str:
        """``SOLICIT``, ``REPLY``, ... or the number."""
        try:
            return MessageType(self.msg_type).name
        except ValueError:
            return str(self.msg_type)


@dataclass
class _Parts:
    """Options of a message being decoded."""

    client_id: bytes | None = None
    server_id: bytes | None = None
    ia_pds: list[IaPd] = field(default_factory=list)
    rapid_commit: bool = False
    elapsed_time: int | None = None
    oro: tuple[int, ...] | None = None
    status: StatusCode | None = None
    other: list[RawOption] = field(default_factory=list)

    def add(self, code: int, option: bytes, where: int) -> None:
        if code in (OptionCode.CLIENTID, OptionCode.SERVERID):
            if not option:
                raise DecodeError(where, "empty DUID")
            if code == OptionCode.CLIENTID:
                self.client_id = option
            else:
                self.server_id = option
        elif code == OptionCode.ORO:
            if len(option) % 2:
                raise DecodeError(where, "ORO length is odd")
            self.oro = tuple(struct.unpack(f"!{len(option) // 2}H", option))
        elif code == OptionCode.ELAPSED_TIME:
            if len(option) != 2:
                raise DecodeError(where, "Elapsed Time length must be 2")
            self.elapsed_time = struct.unpack("!H", option)[0]
        elif code == OptionCode.RAPID_COMMIT:
            if option:
                raise DecodeError(where, "Rapid Commit length must be 0")
            self.rapid_commit = True
        elif code == OptionCode.IA_PD:
            self.ia_pds.append(IaPd.decode(option, where))
        elif code == OptionCode.STATUS_CODE:
            self.status = StatusCode.decode(option, where)
        else:
            self.other.append(RawOption(code, option))
