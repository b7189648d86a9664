"""Tests for agents.mip.wire.auth: authenticators and verification on raw bytes (RFC 5944 §3.5.1, §5.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.mip.wire.auth import (
    AUTHENTICATOR_LENGTH,
    AuthAlgorithm,
    SecurityAssociation,
    append_authentication,
    authenticator,
    hmac_md5,
    locate_authentication,
    prefix_suffix_md5,
    verify,
    verify_with,
)
from agents.mip.wire.errors import DecodeError

# protocol.md §2 worked vector (cross-checked there with openssl).
KEY = bytes(range(16))
RRQ_FIXED = bytes.fromhex("0102012c0a010005c00002010a00020ae8a1b2c300000001")
COVERED = RRQ_FIXED + bytes.fromhex("201400000100")
HMAC_VECTOR = bytes.fromhex("1207993e86f32d389cafb229c4558976")
# MD5(key || covered || key), computed with `openssl dgst -md5`.
PREFIX_SUFFIX_VECTOR = bytes.fromhex("08a58d68cfeca546e0dc5c862eb3eefb")
SIGNED_RRQ = COVERED + HMAC_VECTOR
MN_HA = SecurityAssociation(0x100, KEY)


def test_rfc5944_s5_1_hmac_md5_protocol_md_vector() -> None:
    """RFC 5944 §5.1 default HMAC-MD5 over protocol.md §2's covered bytes."""
    assert hmac_md5(KEY, COVERED) == HMAC_VECTOR
    assert authenticator(AuthAlgorithm.HMAC_MD5, KEY, COVERED) == HMAC_VECTOR


def test_rfc5944_s5_1_prefix_suffix_md5_vector() -> None:
    """RFC 5944 §5.1 legacy keyed MD5: MD5(key || data || key)."""
    assert prefix_suffix_md5(KEY, COVERED) == PREFIX_SUFFIX_VECTOR
    assert authenticator(AuthAlgorithm.PREFIX_SUFFIX_MD5, KEY, COVERED) == PREFIX_SUFFIX_VECTOR


def test_rfc5944_s3_5_1_append_authentication_reproduces_the_vector() -> None:
    """RFC 5944 §3.5.1: covered = message + Type + Length + SPI; Length = 4 + 16 = 20."""
    assert append_authentication(RRQ_FIXED, 32, MN_HA) == SIGNED_RRQ
    assert AUTHENTICATOR_LENGTH == 16


def test_locate_authentication_returns_covered_bytes_and_authenticator() -> None:
    location = locate_authentication(SIGNED_RRQ, 32)
    assert location is not None
    assert location.covered == COVERED
    assert location.authenticator == HMAC_VECTOR
    assert (location.spi, location.start, location.end) == (0x100, 24, 46)
    assert locate_authentication(SIGNED_RRQ, 34) is None
    assert locate_authentication(SIGNED_RRQ, 32, occurrence=1) is None


def test_verify_accepts_the_vector() -> None:
    assert verify(SIGNED_RRQ, 32, KEY)
    assert verify(SIGNED_RRQ, 32, KEY, AuthAlgorithm.HMAC_MD5, spi=0x100)
    assert verify_with(SIGNED_RRQ, 32, MN_HA)


def test_verify_rejects_wrong_key_algorithm_spi_or_type() -> None:
    assert not verify(SIGNED_RRQ, 32, bytes(16))
    assert not verify(SIGNED_RRQ, 32, KEY, AuthAlgorithm.PREFIX_SUFFIX_MD5)
    assert not verify(SIGNED_RRQ, 32, KEY, spi=0x101)
    assert not verify(SIGNED_RRQ, 33, KEY)


@pytest.mark.parametrize("index", range(len(SIGNED_RRQ)))
def test_rfc5944_s3_5_1_flipping_any_covered_or_authenticator_byte_fails(index: int) -> None:
    """RFC 5944 §3.5.1: every byte from Type through SPI is covered, and the Authenticator must match.

    (A flip may also make the message malformed, e.g. in the Type or Length byte: that is DecodeError.)
    """
    tampered = bytearray(SIGNED_RRQ)
    tampered[index] ^= 0x01
    try:
        assert not verify(bytes(tampered), 32, KEY)
    except DecodeError:
        assert index in (0, 25)  # message type, or the extension's Length


def test_rfc5944_s3_5_1_bytes_after_the_authenticator_are_not_covered() -> None:
    """RFC 5944 §3.5.1: later extensions (here FA-only 130 and MN-FA 33) do not change the MN-HA result."""
    mn_fa = SecurityAssociation(0x200, b"fa")
    extended = append_authentication(SIGNED_RRQ + bytes.fromhex("8200"), 33, mn_fa)
    assert verify(extended, 32, KEY)
    tampered = bytearray(extended)
    tampered[-1] ^= 0xFF  # inside the MN-FA authenticator, after MN-HA
    assert verify(bytes(tampered), 32, KEY)
    assert not verify(bytes(tampered), 33, b"fa")
    assert verify(extended, 33, b"fa", spi=0x200)


def test_verify_nth_occurrence() -> None:
    twice = append_authentication(SIGNED_RRQ, 32, SecurityAssociation(0x300, b"other"))
    assert verify(twice, 32, KEY, occurrence=0)
    assert not verify(twice, 32, KEY, occurrence=1)
    assert verify(twice, 32, b"other", occurrence=1, spi=0x300)
    with pytest.raises(ValueError):
        locate_authentication(twice, 32, occurrence=-1)


def test_reply_authentication_covers_from_offset_zero() -> None:
    """RFC 5944 §3.5.1 applies to replies too (20-byte fixed part)."""
    reply = bytes.fromhex("0300012c0a010005c0000201e8a1b2c300000001")
    signed = append_authentication(reply, 32, MN_HA)
    location = locate_authentication(signed, 32)
    assert location is not None and location.start == 20
    assert location.authenticator == hmac_md5(KEY, reply + bytes.fromhex("201400000100"))
    assert verify(signed, 32, KEY)


@pytest.mark.parametrize("raw", [b"", b"\x04" + bytes(30), b"\x01" + bytes(10), SIGNED_RRQ[:-1]])
def test_verify_raises_decode_error_on_malformed_messages(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        verify(raw, 32, KEY)


def test_rfc5944_s1_6_security_association_refuses_reserved_spi() -> None:
    """RFC 5944 §1.6: SPI 0-255 are reserved and MUST NOT be used."""
    for spi in (0, 255, 2**32):
        with pytest.raises(ValueError):
            SecurityAssociation(spi, KEY)
    with pytest.raises(ValueError):
        SecurityAssociation(256, b"")
    assert "000102" not in repr(MN_HA) and "\\x00\\x01" not in repr(MN_HA)


def test_append_authentication_refuses_non_auth_type() -> None:
    with pytest.raises(ValueError):
        append_authentication(RRQ_FIXED, 131, MN_HA)


@settings(max_examples=100, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=64),
    spi=st.integers(256, 2**32 - 1),
    algorithm=st.sampled_from(list(AuthAlgorithm)),
    trailer=st.binary(max_size=40),
)
def test_sign_then_verify_roundtrip(key: bytes, spi: int, algorithm: AuthAlgorithm, trailer: bytes) -> None:
    """Whatever follows the signed extension (as a skippable unknown 200), verification holds."""
    signed = append_authentication(RRQ_FIXED, 32, SecurityAssociation(spi, key, algorithm))
    raw = signed + bytes([200, len(trailer)]) + trailer
    assert verify(raw, 32, key, algorithm, spi=spi)
    assert not verify(raw, 32, key + b"x", algorithm, spi=spi)
