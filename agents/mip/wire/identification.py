"""Registration Identification and replay protection (RFC 5944 §5.7), as pure functions.

Timestamps: the 64-bit Identification is an NTP timestamp (32-bit seconds since 1900, 32-bit fraction).
Nonces: the high 32 bits are the home agent's nonce, the low 32 bits the mobile node's. In both
schemes the reply copies the request's low 32 bits. No clock is read here: every time is a parameter
(Unix seconds as a float) and randomness is passed in as ints or a ``random.Random``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable

NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01)."""
DEFAULT_TOLERANCE = 7.0  # RFC 5944 §5.7: default 7 s, SHOULD be more than 3 s
DEFAULT_CLOCK_FRACTION_BITS = 20
"""Fraction bits a microsecond clock supplies (2**-20 s ≈ 0.95 µs); the rest SHOULD be random."""

_LOW32 = 0xFFFF_FFFF
_ERA = 1 << 32
_MAX_ID = (1 << 64) - 1


def unix_to_ntp(unix_time: float) -> int:
    """The 64-bit NTP timestamp for a Unix time (seconds wrap modulo 2**32, era by era)."""
    seconds = math.floor(unix_time)
    fraction = int((unix_time - seconds) * _ERA)
    if fraction >= _ERA:  # a tiny negative time: t - floor(t) rounds up to 1.0
        seconds, fraction = seconds + 1, 0
    return (((seconds + NTP_UNIX_OFFSET) % _ERA) << 32) | fraction


def ntp_to_unix(timestamp: int) -> float:
    """The Unix time of a 64-bit NTP timestamp, valid 1968–2104 (RFC 4330 §3 era rule).

    Seconds with the top bit set are era 0 (1968–2036); without it, era 1 (2036–2104).
    """
    seconds, fraction = timestamp >> 32, timestamp & _LOW32
    if not seconds & 0x8000_0000:
        seconds += _ERA
    return seconds - NTP_UNIX_OFFSET + fraction / _ERA


def timestamp_identification(
    unix_time: float, random_bits: int, clock_fraction_bits: int = DEFAULT_CLOCK_FRACTION_BITS
) -> int:
    """A timestamp Identification (RFC 5944 §5.7): NTP time, with the fraction bits the clock
    cannot supply (the low ``32 - clock_fraction_bits``) taken from ``random_bits``.
    """
    if not 0 <= clock_fraction_bits <= 32:
        raise ValueError(f"clock_fraction_bits {clock_fraction_bits} outside 0..32")
    random_mask = (1 << (32 - clock_fraction_bits)) - 1
    return (unix_to_ntp(unix_time) & ~random_mask) | (random_bits & random_mask)


def next_timestamp_identification(
    unix_time: float,
    previous: int | None,
    rng: random.Random,
    clock_fraction_bits: int = DEFAULT_CLOCK_FRACTION_BITS,
) -> int:
    """A fresh timestamp Identification for a mobile node, kept above ``previous`` so that the IDs
    it sends increase monotonically (RFC 5944 §5.7) even if the clock steps back.
    """
    identification = timestamp_identification(unix_time, rng.getrandbits(32), clock_fraction_bits)
    if previous is not None and identification <= previous:
        identification = previous + 1
    return identification & _MAX_ID


def identification_time(identification: int) -> float:
    """The Unix time an NTP-timestamp Identification stands for."""
    return ntp_to_unix(identification)


def timestamp_acceptable(
    identification: int, ha_unix_time: float, tolerance: float = DEFAULT_TOLERANCE
) -> bool:
    """True if the timestamp is within ``tolerance`` seconds of the home agent's time (RFC 5944 §5.7)."""
    return abs(identification_time(identification) - ha_unix_time) <= tolerance


def low32_matches(request_identification: int, reply_identification: int) -> bool:
    """True if the reply copies the request's low 32 bits; if not, the MN silently discards the reply."""
    return request_identification & _LOW32 == reply_identification & _LOW32


def mismatch_reply_identification(request_identification: int, ha_unix_time: float) -> int:
    """The Identification of a code-133 reply under timestamps: high 32 bits from the home agent's
    time of day, low 32 bits copied from the request (RFC 5944 §5.7).
    """
    return (unix_to_ntp(ha_unix_time) & ~_LOW32) | (request_identification & _LOW32)


def resync_offset(reply_identification: int, local_unix_time: float) -> float:
    """Seconds to add to the mobile node's clock to match the home agent's, from a code-133 reply.

    Only the reply's high 32 bits (whole seconds of the HA's time) are used, so the result is the
    HA's time truncated to a second minus the local time.
    """
    return identification_time(reply_identification & ~_LOW32) - local_unix_time


def new_nonce(rng: random.Random) -> int:
    """A fresh 32-bit nonce."""
    return rng.getrandbits(32)


def nonce_identification(ha_nonce: int, mn_nonce: int) -> int:
    """A request Identification under nonces: the HA's last nonce high, the MN's own nonce low."""
    if not 0 <= ha_nonce <= _LOW32 or not 0 <= mn_nonce <= _LOW32:
        raise ValueError("nonces are 32-bit values")
    return (ha_nonce << 32) | mn_nonce


def nonce_reply_identification(next_ha_nonce: int, request_identification: int) -> int:
    """A reply Identification under nonces: a fresh HA nonce high, the request's low 32 bits copied."""
    return nonce_identification(next_ha_nonce, request_identification & _LOW32)


def ha_nonce(identification: int) -> int:
    """The home agent's nonce: the high 32 bits of a (reply or request) Identification."""
    return identification >> 32


def check_nonce(request_identification: int, expected_ha_nonce: int) -> bool:
    """True if a request echoes the nonce the HA last sent that MN; if not, the HA replies 133 with
    a new nonce (RFC 5944 §5.7).
    """
    return ha_nonce(request_identification) == expected_ha_nonce


class ReplayState:
    """The last accepted Identification of each mobile node: IDs MUST increase monotonically (§5.7).

    Keys are whatever identifies a mobile node to the home agent (home address, NAI).
    """

    def __init__(self) -> None:
        self._last: dict[Hashable, int] = {}

    def last(self, mobile_node: Hashable) -> int | None:
        """The last Identification accepted from ``mobile_node``, if any."""
        return self._last.get(mobile_node)

    def is_fresh(self, mobile_node: Hashable, identification: int) -> bool:
        """True if ``identification`` is greater than every one accepted before from this node."""
        last = self._last.get(mobile_node)
        return last is None or identification > last

    def timestamp_valid(
        self,
        mobile_node: Hashable,
        identification: int,
        ha_unix_time: float,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> bool:
        """The whole timestamp check: close enough to the HA's clock and newer than the last one."""
        return timestamp_acceptable(identification, ha_unix_time, tolerance) and self.is_fresh(
            mobile_node, identification
        )

    def record(self, mobile_node: Hashable, identification: int) -> None:
        """Remember an accepted Identification; ValueError if it is not fresh."""
        if not self.is_fresh(mobile_node, identification):
            raise ValueError(f"identification {identification:#018x} does not increase")
        self._last[mobile_node] = identification

    def forget(self, mobile_node: Hashable) -> None:
        """Drop the state of one mobile node."""
        self._last.pop(mobile_node, None)
