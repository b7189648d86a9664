"""Registration Identification: NTP timestamps, nonces, replay checks (RFC 5944 §5.7)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.mip.identification import (
    DEFAULT_TOLERANCE,
    NTP_UNIX_OFFSET,
    ReplayState,
    check_nonce,
    ha_nonce,
    identification_time,
    low32_matches,
    mismatch_reply_identification,
    new_nonce,
    next_timestamp_identification,
    nonce_identification,
    nonce_reply_identification,
    ntp_to_unix,
    resync_offset,
    timestamp_acceptable,
    timestamp_identification,
    unix_to_ntp,
)

# The Identification of protocol.md's worked RRQ: NTP seconds 0xe8a1b2c3 = Unix 1693922371.
VECTOR_ID = 0xE8A1B2C3_00000001
VECTOR_UNIX = 0xE8A1B2C3 - 2_208_988_800
ERA1_START = 2**32 - NTP_UNIX_OFFSET  # 2036-02-07 06:28:16 UTC


class TestNtp:
    def test_epochs(self) -> None:
        """RFC 5944 §5.7: 32-bit seconds since 1 January 1900, then a 32-bit fraction."""
        assert NTP_UNIX_OFFSET == 2_208_988_800
        assert unix_to_ntp(0) == 0x83AA7E80 << 32
        assert unix_to_ntp(1.5) == (0x83AA7E81 << 32) | 0x8000_0000
        assert ntp_to_unix(0x83AA7E80 << 32) == 0.0

    def test_vector(self) -> None:
        assert VECTOR_UNIX == 1_693_922_371
        assert identification_time(VECTOR_ID) == pytest.approx(VECTOR_UNIX + 2**-32, abs=1e-6)
        assert unix_to_ntp(VECTOR_UNIX) == VECTOR_ID - 1

    def test_era_one_after_2036(self) -> None:
        """RFC 4330 §3: seconds without the top bit set belong to era 1 (from 2036-02-07)."""
        assert ERA1_START == 2_085_978_496
        assert unix_to_ntp(ERA1_START) == 0
        assert ntp_to_unix(0) == ERA1_START
        assert ntp_to_unix(0x7FFF_FFFF << 32) == ERA1_START + 0x7FFF_FFFF

    @settings(max_examples=200)
    @given(st.floats(min_value=-31_000_000.0, max_value=4_000_000_000.0))
    def test_round_trip(self, unix_time: float) -> None:
        assert abs(ntp_to_unix(unix_to_ntp(unix_time)) - unix_time) < 1e-6


class TestTimestamps:
    def test_random_low_bits(self) -> None:
        """RFC 5944 §5.7: fraction bits the clock cannot supply SHOULD be random."""
        assert timestamp_identification(VECTOR_UNIX + 0.5, 0xFFFF_FABC) == 0xE8A1B2C3_80000ABC
        assert timestamp_identification(VECTOR_UNIX + 0.5, 0xFFFF_FFFF, 32) == 0xE8A1B2C3_80000000
        assert timestamp_identification(VECTOR_UNIX + 0.5, 0x1234_5678, 0) == 0xE8A1B2C3_12345678
        with pytest.raises(ValueError):
            timestamp_identification(0, 0, 33)

    @pytest.mark.parametrize(("offset", "acceptable"), [
        (0.0, True), (6.9, True), (7.0, True), (-7.0, True), (7.01, False), (-7.5, False), (3600, False),
    ])
    def test_tolerance(self, offset: float, acceptable: bool) -> None:
        """RFC 5944 §5.7: default tolerance 7 s (SHOULD exceed 3 s)."""
        assert DEFAULT_TOLERANCE == 7.0
        identification = timestamp_identification(VECTOR_UNIX + offset, 0, 32)
        assert timestamp_acceptable(identification, VECTOR_UNIX) is acceptable

    def test_mismatch_reply_and_resync(self) -> None:
        """RFC 5944 §5.7: code 133 carries the HA's time in the high 32 bits, the request's low 32;
        the MN checks the low bits and resynchronizes from the high bits."""
        reply = mismatch_reply_identification(VECTOR_ID, VECTOR_UNIX + 77.75)
        assert reply == 0xE8A1B310_00000001
        assert low32_matches(VECTOR_ID, reply)
        assert resync_offset(reply, VECTOR_UNIX + 0.2) == pytest.approx(76.8)
        fixed = timestamp_identification(VECTOR_UNIX + 0.2 + resync_offset(reply, VECTOR_UNIX + 0.2), 0)
        assert timestamp_acceptable(fixed, VECTOR_UNIX + 77.75)

    def test_low32_mismatch_is_discarded(self) -> None:
        """RFC 5944 §5.7: the MN silently discards a reply whose low 32 bits differ."""
        assert not low32_matches(VECTOR_ID, VECTOR_ID + 1)
        assert low32_matches(VECTOR_ID, VECTOR_ID + (5 << 32))

    def test_mobile_node_ids_increase_even_if_clock_steps_back(self) -> None:
        """RFC 5944 §5.7: the Identification MUST increase monotonically."""
        rng = random.Random(1)
        first = next_timestamp_identification(VECTOR_UNIX + 10, None, rng)
        second = next_timestamp_identification(VECTOR_UNIX, first, rng)
        assert second == first + 1
        third = next_timestamp_identification(VECTOR_UNIX + 20, second, rng)
        assert third > second and third >> 32 == (VECTOR_ID >> 32) + 20

    @settings(max_examples=100)
    @given(st.floats(min_value=0, max_value=2.0e9), st.integers(0, 2**32 - 1), st.integers(0, 32))
    def test_fields(self, unix_time: float, random_bits: int, clock_bits: int) -> None:
        identification = timestamp_identification(unix_time, random_bits, clock_bits)
        random_mask = (1 << (32 - clock_bits)) - 1
        assert identification >> 32 == unix_to_ntp(unix_time) >> 32
        assert identification & random_mask == random_bits & random_mask
        assert 0 <= identification < 2**64


class TestNonces:
    def test_layout(self) -> None:
        """RFC 5944 §5.7: the HA's nonce is the high 32 bits, the MN's the low 32 bits."""
        request = nonce_identification(0x11223344, 0x55667788)
        assert request == 0x11223344_55667788
        assert check_nonce(request, 0x11223344) and not check_nonce(request, 0x11223345)
        reply = nonce_reply_identification(0x99AABBCC, request)
        assert reply == 0x99AABBCC_55667788 and low32_matches(request, reply)
        assert ha_nonce(reply) == 0x99AABBCC
        with pytest.raises(ValueError):
            nonce_identification(2**32, 0)

    def test_new_nonce_from_rng(self) -> None:
        assert new_nonce(random.Random(7)) == random.Random(7).getrandbits(32)


class TestReplayState:
    def test_monotonic_per_mobile_node(self) -> None:
        """RFC 5944 §5.7: the Identification MUST increase monotonically, per mobile node."""
        state = ReplayState()
        assert state.last("mn1") is None and state.is_fresh("mn1", 5)
        state.record("mn1", 5)
        assert not state.is_fresh("mn1", 5) and not state.is_fresh("mn1", 4) and state.is_fresh("mn1", 6)
        assert state.is_fresh("mn2", 1)
        with pytest.raises(ValueError):
            state.record("mn1", 5)
        state.forget("mn1")
        assert state.last("mn1") is None

    def test_timestamp_valid(self) -> None:
        state = ReplayState()
        now = VECTOR_UNIX
        identification = timestamp_identification(now - 1, 0)
        assert state.timestamp_valid("mn", identification, now)
        state.record("mn", identification)
        assert not state.timestamp_valid("mn", identification, now)  # replayed
        assert not state.timestamp_valid("mn", timestamp_identification(now + 30, 0), now)  # too far
        assert state.timestamp_valid("mn", timestamp_identification(now, 0), now)
