"""Registration authenticators (RFC 5944 §3.5.1, §5.1) computed and checked on raw message bytes.

The Authenticator of extension 32, 33 or 34 covers the UDP payload from the message's Type byte,
through every earlier extension in full, plus this extension's Type, Length and SPI. It does not
cover itself, anything after it, or the UDP header. The default algorithm is HMAC-MD5 (RFC 2104)
with a 128-bit key; prefix+suffix keyed MD5 is kept for backward compatibility only (§5.1).

Verification works on the bytes as received, never on a re-encoding.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from agents.mip.wire.codes import FIXED_PART_LENGTH
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.extensions import (
    AUTHENTICATION_TYPES,
    AuthenticationExtension,
    LocatedExtension,
    locate_extensions,
)

AUTHENTICATOR_LENGTH = 16
"""Both algorithms produce an MD5-sized (128-bit) Authenticator, so Length = 20 (RFC 5944 §3.5.1)."""

_TYPE_LENGTH_SPI = 6  # Type(1) + Length(1) + SPI(4)


class AuthAlgorithm(Enum):
    """Authentication algorithms of a mobility security association (RFC 5944 §5.1)."""

    HMAC_MD5 = "hmac-md5"
    PREFIX_SUFFIX_MD5 = "prefix-suffix-md5"


def hmac_md5(key: bytes, covered: bytes) -> bytes:
    """HMAC-MD5 (RFC 2104) of ``covered``: the default, mandatory algorithm (RFC 5944 §5.1)."""
    return hmac.digest(key, covered, "md5")  # the one-shot C path: a flood's failures cost less


def prefix_suffix_md5(key: bytes, covered: bytes) -> bytes:
    """MD5(key || covered || key): legacy keyed MD5, backward compatibility only (RFC 5944 §5.1)."""
    return hashlib.md5(key + covered + key).digest()


def authenticator(algorithm: AuthAlgorithm, key: bytes, covered: bytes) -> bytes:
    """The Authenticator that ``algorithm`` gives for ``covered`` under ``key``."""
    if algorithm is AuthAlgorithm.HMAC_MD5:
        return hmac_md5(key, covered)
    return prefix_suffix_md5(key, covered)


@dataclass(frozen=True)
class SecurityAssociation:
    """The sender's side of a mobility security association: SPI, key, algorithm (RFC 5944 §1.6).

    SPI values 0-255 are reserved and MUST NOT be used (§1.6), so they are refused here. The key is
    left out of ``repr``.
    """

    spi: int
    key: bytes = field(repr=False)
    algorithm: AuthAlgorithm = AuthAlgorithm.HMAC_MD5

    def __post_init__(self) -> None:
        if not 256 <= self.spi <= 0xFFFFFFFF:
            raise ValueError(f"SPI {self.spi} is reserved or out of range; use 256..2**32-1 (RFC 5944 §1.6)")
        if not self.key:
            raise ValueError("empty key")


def append_authentication(message: bytes, ext_type: int, association: SecurityAssociation) -> bytes:
    """``message`` followed by an authentication extension of ``ext_type`` that covers all of it.

    ``message`` must be a whole message so far (fixed part and every earlier extension).
    """
    if ext_type not in AUTHENTICATION_TYPES:
        raise ValueError(f"type {ext_type} is not an authentication extension (32, 33, 34)")
    header = struct.pack("!BBI", ext_type, 4 + AUTHENTICATOR_LENGTH, association.spi)
    covered = bytes(message) + header
    return covered + authenticator(association.algorithm, association.key, covered)


class AuthenticatorLocation(NamedTuple):
    """Where an authentication extension sits in a raw message and what its Authenticator covers (a
    tuple: the home agent makes one per request, issue 9)."""

    ext_type: int
    spi: int
    start: int
    """Offset of the extension's Type byte."""
    end: int
    """Offset one past the extension's last byte."""
    covered: bytes
    """The bytes the Authenticator is computed over (RFC 5944 §3.5.1)."""
    authenticator: bytes


def locate_authentication(raw: bytes, ext_type: int, occurrence: int = 0) -> AuthenticatorLocation | None:
    """Find the ``occurrence``-th (0 = first) extension of ``ext_type`` in a raw RRQ or RRP.

    Returns None if there is no such extension. Raises :class:`DecodeError` if ``raw`` is not a
    well-formed Registration Request or Reply.
    """
    if occurrence < 0:
        raise ValueError(f"occurrence {occurrence} is negative")
    raw = bytes(raw)
    if not raw or raw[0] not in FIXED_PART_LENGTH:
        raise DecodeError(0, "not a Registration Request (1) or Reply (3)")
    fixed = FIXED_PART_LENGTH[raw[0]]
    if len(raw) < fixed:
        raise DecodeError(len(raw), f"message shorter than its {fixed}-byte fixed part")
    matches = list(_locations(raw, locate_extensions(raw[fixed:], fixed), ext_type))
    return matches[occurrence] if occurrence < len(matches) else None


def _locations(
    raw: bytes, located: Iterable[LocatedExtension], ext_type: int
) -> Iterator[AuthenticatorLocation]:
    """Each ``ext_type`` authentication extension of ``located`` (the extensions of ``raw``), in order, with
    what its Authenticator covers: ``raw`` up to and including its SPI (RFC 5944 §3.5.1)."""
    for item in located:
        extension = item.extension
        if isinstance(extension, AuthenticationExtension) and extension.type == ext_type:
            covered_end = item.start + _TYPE_LENGTH_SPI
            yield AuthenticatorLocation(
                ext_type, extension.spi, item.start, item.end, raw[:covered_end], raw[covered_end : item.end]
            )


def _verifies(location: AuthenticatorLocation, algorithm: AuthAlgorithm, key: bytes) -> bool:
    """The Authenticator at ``location`` is right for ``key`` (compared in constant time)."""
    return hmac.compare_digest(authenticator(algorithm, key, location.covered), location.authenticator)


def verify(
    raw: bytes,
    ext_type: int,
    key: bytes,
    algorithm: AuthAlgorithm = AuthAlgorithm.HMAC_MD5,
    *,
    occurrence: int = 0,
    spi: int | None = None,
) -> bool:
    """True if the ``occurrence``-th ``ext_type`` extension of ``raw`` has a valid Authenticator.

    False if the extension is missing or (when ``spi`` is given) carries another SPI. Compares in
    constant time. Raises :class:`DecodeError` if ``raw`` is malformed.
    """
    location = locate_authentication(raw, ext_type, occurrence)
    if location is None or (spi is not None and location.spi != spi):
        return False
    return _verifies(location, algorithm, key)


def verify_located(
    raw: bytes, located: Iterable[LocatedExtension], ext_type: int, association: SecurityAssociation
) -> bool:
    """:func:`verify_with` for the first ``ext_type`` extension of ``raw``, found in ``located`` (what
    :meth:`RegistrationRequest.decode_located` gave for ``raw``) instead of parsing ``raw`` again: the
    Authenticator covers ``raw`` up to the extension's SPI (RFC 5944 §3.5.1)."""
    location = next(_locations(bytes(raw), located, ext_type), None)
    if location is None or location.spi != association.spi:
        return False
    return _verifies(location, association.algorithm, association.key)


def verify_with(raw: bytes, ext_type: int, association: SecurityAssociation, occurrence: int = 0) -> bool:
    """:func:`verify` with the SPI, key and algorithm of ``association``."""
    return verify(
        raw, ext_type, association.key, association.algorithm, occurrence=occurrence, spi=association.spi
    )
