"""ICMP Agent Advertisement and Agent Solicitation (RFC 5944 §2, on RFC 1256 Router Discovery).

``encode()`` writes the ICMP message (no IP header) with its checksum; ``decode()`` verifies it.
The IP-level rules (TTL 1, destinations) are constants here for the runtime to apply.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag
from ipaddress import IPv4Address
from typing import Self

from agents.mip.wire.errors import DecodeError
from agents.mip.wire.ip import Buffer
from agents.mip.wire.ip import internet_checksum as internet_checksum  # re-exported: the ICMP checksum

ICMP_ROUTER_ADVERTISEMENT = 9
ICMP_ROUTER_SOLICITATION = 10
CODE_ROUTES_COMMON_TRAFFIC = 0
CODE_MOBILITY_ONLY = 16
"""Code 16: the agent does not route common traffic, only registered mobile nodes' (RFC 5944 §2.1)."""
ADVERTISEMENT_CODES = frozenset({CODE_ROUTES_COMMON_TRAFFIC, CODE_MOBILITY_ONLY})
ADDRESS_ENTRY_SIZE = 2

EXTENSION_PADDING = 0
EXTENSION_MOBILITY_AGENT = 16
EXTENSION_PREFIX_LENGTHS = 19
RECOGNIZED_EXTENSIONS = frozenset({EXTENSION_PADDING, EXTENSION_MOBILITY_AGENT, EXTENSION_PREFIX_LENGTHS})
INFINITE_REGISTRATION_LIFETIME = 0xFFFF

ADVERTISEMENT_TTL = 1  # RFC 5944 §2.1
SOLICITATION_TTL = 1  # RFC 5944 §2.2
ALL_SYSTEMS = IPv4Address("224.0.0.1")
ALL_ROUTERS = IPv4Address("224.0.0.2")
MOBILE_AGENTS = IPv4Address("224.0.0.11")
LIMITED_BROADCAST = IPv4Address("255.255.255.255")
ADVERTISEMENT_DESTINATIONS = frozenset({ALL_SYSTEMS, LIMITED_BROADCAST})
"""Multicast/broadcast advertisements (RFC 5944 §2.1); a unicast one goes to the MN's home address."""
SOLICITATION_DESTINATIONS = frozenset({ALL_ROUTERS, LIMITED_BROADCAST, MOBILE_AGENTS})
"""RFC 1256 §5.3 destinations, plus 224.0.0.11, which every agent MUST process (RFC 5944 §2.3)."""

DEFAULT_MAX_ADVERTISEMENT_INTERVAL = 600  # RFC 1256 §4.1, range 4–1800 s
DEFAULT_MIN_ADVERTISEMENT_INTERVAL = 450  # 0.75 × MaxAdvertisementInterval
DEFAULT_ADVERTISEMENT_LIFETIME = 1800  # 3 × MaxAdvertisementInterval
SEQUENCE_AFTER_WRAP = 256  # RFC 5944 §2.3.2

_HEADER = struct.Struct("!BBHBBH")
_ROUTER_ENTRY = struct.Struct("!4si")
_MOBILITY_FIXED = struct.Struct("!HHH")


class AdvertisementFlag(IntFlag):
    """Flags of the Mobility Agent Advertisement extension (RFC 5944 §2.1.1). Reserved 0x001F kept."""

    R = 0x8000  # registration required
    B = 0x4000  # busy
    H = 0x2000  # home agent
    F = 0x1000  # foreign agent
    M = 0x0800  # minimal encapsulation (RFC 2004)
    G = 0x0400  # GRE (RFC 2784)
    r = 0x0200  # sent as 0, ignored (formerly Van Jacobson compression)
    T = 0x0100  # reverse tunnelling (RFC 3024)
    U = 0x0080  # UDP tunnelling, FA behind a NAT (RFC 3519 §3.4)
    X = 0x0040  # registration revocation (RFC 3543)
    I = 0x0020  # noqa: E741 - regional registration (RFC 4857)


RESERVED_FLAGS = 0x001F


def next_sequence(sequence: int) -> int:
    """The advertisement sequence number after ``sequence``: after 0xFFFF comes 256 (RFC 5944 §2.3.2)."""
    if not 0 <= sequence <= 0xFFFF:
        raise ValueError(f"sequence number {sequence} out of range")
    return SEQUENCE_AFTER_WRAP if sequence == 0xFFFF else sequence + 1


def agent_rebooted(previous: int, current: int) -> bool:
    """True if a drop in sequence number means the agent rebooted (RFC 5944 §2.4.4).

    A decrease to 0–255 is a reboot (the MN SHOULD re-register); a decrease to 256 or more is rollover.
    """
    return current < previous and current < SEQUENCE_AFTER_WRAP


def max_advertisement_interval(lifetime: int) -> float:
    """The longest nominal advertisement interval for an ICMP Lifetime: one third of it (RFC 5944 §2.3.1)."""
    return lifetime / 3


@dataclass(frozen=True)
class MobilityAgentExtension:
    """Mobility Agent Advertisement extension, type 16, Length 6 + 4N (RFC 5944 §2.1.1)."""

    sequence: int
    registration_lifetime: int
    flags: AdvertisementFlag
    care_of_addresses: tuple[IPv4Address, ...] = ()

    def encode(self) -> bytes:
        """Type, Length and body."""
        for name in ("sequence", "registration_lifetime", "flags"):
            if not 0 <= int(getattr(self, name)) <= 0xFFFF:
                raise ValueError(f"{name} {getattr(self, name)} out of range")
        if len(self.care_of_addresses) > (255 - 6) // 4:
            raise ValueError(f"{len(self.care_of_addresses)} care-of addresses do not fit one extension")
        body = _MOBILITY_FIXED.pack(self.sequence, self.registration_lifetime, int(self.flags))
        body += b"".join(address.packed for address in self.care_of_addresses)
        return bytes((EXTENSION_MOBILITY_AGENT, len(body))) + body

    @classmethod
    def decode(cls, body: Buffer, offset: int = 0) -> Self:
        """Decode the extension body (the bytes after Type and Length); ``offset`` locates errors."""
        if len(body) < 6 or (len(body) - 6) % 4:
            raise DecodeError(offset + 1, f"Mobility Agent extension length {len(body)} is not 6 + 4N")
        sequence, registration_lifetime, flags = _MOBILITY_FIXED.unpack_from(body, 0)
        addresses = tuple(IPv4Address(bytes(body[start : start + 4])) for start in range(6, len(body), 4))
        return cls(sequence, registration_lifetime, AdvertisementFlag(flags), addresses)


@dataclass(frozen=True)
class AgentAdvertisement:
    """ICMP Router Advertisement (type 9) carrying Mobile IP extensions (RFC 5944 §2.1, RFC 1256 §3).

    ``router_addresses`` holds (address, preference) pairs; preference is a signed 32-bit integer.
    ``padding`` counts one-byte type-0 pads, written last. ``unknown_extensions`` keeps (type, data)
    of extensions this module does not interpret, in order, written after ext 16 and ext 19.
    """

    code: int
    lifetime: int
    router_addresses: tuple[tuple[IPv4Address, int], ...]
    mobility: MobilityAgentExtension
    prefix_lengths: tuple[int, ...] | None = None
    padding: int = 0
    unknown_extensions: tuple[tuple[int, bytes], ...] = ()

    def encode(self) -> bytes:
        """The ICMP message with a correct checksum."""
        self._check_encodable()
        parts = [
            _HEADER.pack(
                ICMP_ROUTER_ADVERTISEMENT,
                self.code,
                0,
                len(self.router_addresses),
                ADDRESS_ENTRY_SIZE,
                self.lifetime,
            )
        ]
        parts += [_ROUTER_ENTRY.pack(address.packed, pref) for address, pref in self.router_addresses]
        parts.append(self.mobility.encode())
        if self.prefix_lengths is not None:
            parts.append(bytes((EXTENSION_PREFIX_LENGTHS, len(self.prefix_lengths), *self.prefix_lengths)))
        parts += [bytes((kind, len(data))) + data for kind, data in self.unknown_extensions]
        message = bytearray(b"".join(parts) + bytes(self.padding))
        struct.pack_into("!H", message, 2, internet_checksum(message))
        return bytes(message)

    def _check_encodable(self) -> None:
        if not 0 <= self.code <= 0xFF or not 0 <= self.lifetime <= 0xFFFF or self.padding < 0:
            raise ValueError("code, lifetime or padding out of range")
        if len(self.router_addresses) > 0xFF:
            raise ValueError(f"{len(self.router_addresses)} router addresses exceed Num Addrs")
        if any(not -(2**31) <= preference < 2**31 for _, preference in self.router_addresses):
            raise ValueError("router preference is a signed 32-bit integer")
        if self.prefix_lengths is not None and (
            len(self.prefix_lengths) > 0xFF or any(not 0 <= p <= 0xFF for p in self.prefix_lengths)
        ):
            raise ValueError("prefix lengths do not fit extension 19")
        for kind, data in self.unknown_extensions:
            if kind in RECOGNIZED_EXTENSIONS or not 0 <= kind <= 0xFF or len(data) > 0xFF:
                raise ValueError(f"extension type {kind} with {len(data)} bytes cannot be written as unknown")

    @classmethod
    def decode(cls, data: Buffer) -> Self:
        """Decode an ICMP message; raises DecodeError unless it is a well-formed Mobile IP advertisement."""
        if len(data) < _HEADER.size:
            raise DecodeError(0, f"ICMP advertisement needs 8 bytes, got {len(data)}")
        kind, code, _, count, entry_size, lifetime = _HEADER.unpack_from(data, 0)
        if kind != ICMP_ROUTER_ADVERTISEMENT or code not in ADVERTISEMENT_CODES:
            raise DecodeError(0, f"ICMP type {kind} code {code} is not an agent advertisement")
        if internet_checksum(data) != 0:
            raise DecodeError(2, "bad ICMP checksum")
        if entry_size != ADDRESS_ENTRY_SIZE:
            raise DecodeError(5, f"Addr Entry Size {entry_size}, expected 2 (RFC 5944 §2.1)")
        extensions_start = _HEADER.size + 8 * count
        if len(data) < extensions_start:
            raise DecodeError(len(data), f"{count} router addresses need {extensions_start} bytes")
        routers = tuple(
            (IPv4Address(address), preference)
            for address, preference in _ROUTER_ENTRY.iter_unpack(bytes(data[_HEADER.size : extensions_start]))
        )
        mobility, prefix_lengths, padding, unknown = _decode_extensions(data, extensions_start)
        return cls(code, lifetime, routers, mobility, prefix_lengths, padding, unknown)

    @property
    def unrecognized_nonskippable(self) -> tuple[int, ...]:
        """Unknown extension types 0–127: a receiver MUST silently discard the message (RFC 5944 §1.8)."""
        return tuple(kind for kind, _ in self.unknown_extensions if kind < 128)

    def problems(self) -> tuple[str, ...]:
        """Violations of the RFC 5944 §2.1 / §2.1.1 rules (reserved bits are not a problem: §2.4)."""
        flags = self.mobility.flags
        found = []
        if self.code not in ADVERTISEMENT_CODES:
            found.append(f"code {self.code} is neither 0 nor 16 (RFC 5944 §2.1)")
        if AdvertisementFlag.B in flags and AdvertisementFlag.F not in flags:
            found.append("B (busy) set without F (RFC 5944 §2.1.1)")
        if not flags & (AdvertisementFlag.F | AdvertisementFlag.H):
            found.append("neither F nor H set (RFC 5944 §2.1.1)")
        if AdvertisementFlag.R in flags and AdvertisementFlag.F not in flags:
            found.append("R (registration required) set without F (RFC 5944 §2.1.1)")
        if AdvertisementFlag.F in flags and not self.mobility.care_of_addresses:
            found.append("F set but no care-of address (RFC 5944 §2.1.1)")
        if self.prefix_lengths is not None:
            if len(self.prefix_lengths) != len(self.router_addresses):
                found.append("Prefix-Lengths extension length differs from Num Addrs (RFC 5944 §2.1.2)")
            if any(length > 32 for length in self.prefix_lengths):
                found.append("prefix length above 32 (RFC 5944 §2.1.2)")
        return tuple(found)

    def validate(self) -> None:
        """Raise ValueError if this advertisement must not be sent: §2.1.1 rules, reserved bits, padding."""
        found = list(self.problems())
        if self.mobility.flags & (RESERVED_FLAGS | AdvertisementFlag.r):
            found.append("reserved flag bits (r or 0x001F) set; they MUST be sent as 0 (RFC 5944 §2.1.1)")
        if self.padding > 1:
            found.append("more than one padding byte (RFC 5944 §2.1.3)")
        if found:
            raise ValueError("; ".join(found))


_Extensions = tuple[MobilityAgentExtension, tuple[int, ...] | None, int, tuple[tuple[int, bytes], ...]]


def _decode_extensions(data: Buffer, position: int) -> _Extensions:
    """Walk the extensions after the router entries; ext 16 is required and at most one of 16 and 19."""
    mobility: MobilityAgentExtension | None = None
    prefix_lengths: tuple[int, ...] | None = None
    padding = 0
    unknown: list[tuple[int, bytes]] = []
    while position < len(data):
        kind = data[position]
        if kind == EXTENSION_PADDING:
            padding, position = padding + 1, position + 1
            continue
        if position + 2 > len(data) or position + 2 + data[position + 1] > len(data):
            raise DecodeError(position, f"extension type {kind} truncated")
        body = bytes(data[position + 2 : position + 2 + data[position + 1]])
        if kind == EXTENSION_MOBILITY_AGENT:
            if mobility is not None:
                raise DecodeError(position, "second Mobility Agent Advertisement extension")
            mobility = MobilityAgentExtension.decode(body, position)
        elif kind == EXTENSION_PREFIX_LENGTHS:
            if prefix_lengths is not None:
                raise DecodeError(position, "second Prefix-Lengths extension")
            prefix_lengths = tuple(body)
        else:
            unknown.append((kind, body))
        position += 2 + len(body)
    if mobility is None:
        raise DecodeError(position, "no Mobility Agent Advertisement extension (type 16): not Mobile IP")
    return mobility, prefix_lengths, padding, tuple(unknown)


@dataclass(frozen=True)
class AgentSolicitation:
    """Agent Solicitation: an ICMP Router Solicitation, type 10, code 0 (RFC 5944 §2.2, RFC 1256 §3)."""

    def encode(self) -> bytes:
        """Type 10, code 0, checksum, 4 reserved zero bytes."""
        message = bytearray(_HEADER.pack(ICMP_ROUTER_SOLICITATION, 0, 0, 0, 0, 0))
        struct.pack_into("!H", message, 2, internet_checksum(message))
        return bytes(message)

    @classmethod
    def decode(cls, data: Buffer) -> Self:
        """Validate per RFC 1256 §4.2: checksum, code 0, at least 8 bytes (reserved bytes ignored)."""
        if len(data) < 8:
            raise DecodeError(0, f"ICMP solicitation needs 8 bytes, got {len(data)}")
        if data[0] != ICMP_ROUTER_SOLICITATION or data[1] != 0:
            raise DecodeError(0, f"ICMP type {data[0]} code {data[1]} is not a router solicitation")
        if internet_checksum(data) != 0:
            raise DecodeError(2, "bad ICMP checksum")
        return cls()


def decode_agent_message(data: Buffer) -> AgentAdvertisement | AgentSolicitation:
    """Decode an ICMP Agent Advertisement or Solicitation, dispatching on the type byte."""
    if len(data) and data[0] == ICMP_ROUTER_SOLICITATION:
        return AgentSolicitation.decode(data)
    return AgentAdvertisement.decode(data)
