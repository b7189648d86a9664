"""Tests for agents.mip.extensions and agents.mip.dsmip: hand-written vectors both ways, errors,
unknown-extension handling and hypothesis round trips.

The strategies at the top are also used by test_registration.py.
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.mip.codes import PrefixReplyCode
from agents.mip.errors import DecodeError
from agents.mip.extensions import (
    AuthenticationExtension,
    EncapsulatingDeliveryStyle,
    Extension,
    NaiExtension,
    PrefixReply,
    PrefixRequest,
    TunnelingMode,
    UdpTunnelReply,
    UdpTunnelRequest,
    UnknownExtension,
    decode_extensions,
    encode_extensions,
    locate_extensions,
)

# --- strategies ---------------------------------------------------------------------------

_KNOWN_TYPES = {32, 33, 34, 44, 130, 131, 144, 152}

authentication_extensions = st.builds(
    AuthenticationExtension,
    type=st.sampled_from([32, 33, 34]),
    spi=st.integers(0, 2**32 - 1),
    authenticator=st.binary(max_size=251),
)
nai_extensions = st.builds(
    NaiExtension,
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=80).filter(
        lambda text: len(text.encode("utf-8")) <= 255
    ),
)
udp_tunnel_requests = st.builds(
    UdpTunnelRequest,
    force=st.booleans(),
    r_flag=st.booleans(),
    encapsulation=st.integers(0, 255),
    reserved1=st.integers(0, 255),
    reserved2=st.integers(0, 63),
    reserved3=st.integers(0, 0xFFFF),
)
udp_tunnel_replies = st.builds(
    UdpTunnelReply,
    code=st.integers(0, 255),
    force=st.booleans(),
    keepalive=st.integers(0, 0xFFFF),
    reserved=st.integers(0, 0x7FFF),
)
ipv6_addresses = st.integers(0, 2**128 - 1).map(IPv6Address)
prefix_lengths = st.one_of(st.integers(0, 128), st.just(255))
prefix_requests = st.builds(PrefixRequest, prefix_length=prefix_lengths, prefix=ipv6_addresses)
prefix_replies = st.builds(
    PrefixReply,
    code=st.integers(0, 255),
    prefix_length=prefix_lengths,
    prefix=ipv6_addresses,
    reserved=st.integers(0, 255),
)
tunneling_modes = st.builds(TunnelingMode, reserved=st.integers(0, 255))
skippable_unknowns = st.one_of(
    st.builds(
        UnknownExtension,
        type=st.integers(128, 255).filter(lambda t: t not in _KNOWN_TYPES),
        body=st.binary(max_size=255),
    ),
    # A DSMIPv4 extension with a subtype other than 1, 2, 3 (RFC 5454 §2: skippable).
    st.builds(
        lambda subtype, rest: UnknownExtension(152, bytes([subtype]) + rest),
        st.integers(0, 255).filter(lambda s: s not in (1, 2, 3)),
        st.binary(max_size=254),
    ),
    # A UDP Tunnel Request with a subtype other than 0 (RFC 3519 §3.1).
    st.builds(
        lambda subtype, rest: UnknownExtension(144, bytes([subtype]) + rest),
        st.integers(1, 255),
        st.binary(max_size=254),
    ),
)


def _opaque_udp_tunnel_reply(subtype: int, data: bytes, trailer: bytes) -> UnknownExtension:
    """A type-44 extension with a subtype other than 0, kept opaque with the rest of the message."""
    return UnknownExtension(44, bytes([len(data) + 1, subtype]) + data + trailer)


non_skippable_unknowns = st.one_of(
    st.builds(
        UnknownExtension,
        type=st.integers(0, 127).filter(lambda t: t not in _KNOWN_TYPES),
        body=st.binary(max_size=300),
    ),
    st.builds(_opaque_udp_tunnel_reply, st.integers(1, 255), st.binary(max_size=40), st.binary(max_size=40)),
)
known_extensions = st.one_of(
    authentication_extensions,
    nai_extensions,
    st.just(EncapsulatingDeliveryStyle()),
    udp_tunnel_requests,
    udp_tunnel_replies,
    prefix_requests,
    prefix_replies,
    tunneling_modes,
)
middle_extensions = st.one_of(known_extensions, skippable_unknowns)
extension_sequences = st.builds(
    lambda middle, last: tuple(middle) + tuple(last),
    st.lists(middle_extensions, max_size=5),
    st.lists(non_skippable_unknowns, max_size=1),
)

# --- hand-written vectors (hex of the whole extension, object) ------------------------------

KEY_AUTH = bytes.fromhex("1207993e86f32d389cafb229c4558976")
NET48 = IPv6Network("2001:db8:1::/48")
NET64 = IPv6Network("2001:db8:1:2::/64")
LINK_LOCAL = IPv6Address("fe80::c000:205")
P48 = "20010db8000100000000000000000000"
P64 = "20010db8000100020000000000000000"

VECTORS: list[tuple[str, Extension]] = [
    # RFC 5944 §3.5.2: MN-HA, Length 20 = SPI(4) + 16-byte authenticator.
    ("2014" "00000100" + KEY_AUTH.hex(), AuthenticationExtension(32, 0x100, KEY_AUTH)),
    ("2108" "deadbeef" "01020304", AuthenticationExtension(33, 0xDEADBEEF, bytes([1, 2, 3, 4]))),
    ("2204" "00000001", AuthenticationExtension(34, 1, b"")),
    # RFC 2794 §2: NAI, Length = NAI length.
    ("830f" + b"mn1@example.org".hex(), NaiExtension("mn1@example.org")),
    ("8306" + "c3a9" + b"t@x1".hex(), NaiExtension("\u00e9t@x1")),
    # RFC 3024 §3.3: Encapsulating Delivery Style, Length 0.
    ("8200", EncapsulatingDeliveryStyle()),
    # RFC 3519 §3.1: UDP Tunnel Request.
    ("9006" "00" "00" "80" "00" "0000", UdpTunnelRequest(force=True, r_flag=False, encapsulation=0)),
    ("9006" "00" "00" "40" "04" "0000", UdpTunnelRequest(force=False, r_flag=True, encapsulation=4)),
    ("9006" "00" "07" "c5" "2f" "0001", UdpTunnelRequest(True, True, 47, 7, 5, 1)),
    # RFC 3519 §3.2: UDP Tunnel Reply (type 44).
    ("2c06" "00" "00" "8000" "006e", UdpTunnelReply(code=0, force=True, keepalive=110)),
    ("2c06" "00" "40" "0003" "0000", UdpTunnelReply(code=64, force=False, keepalive=0, reserved=3)),
    # RFC 5454 §2.1: IPv6 Prefix Request, a /48, a /64, and 255 with a link-local address.
    ("9812" "01" "30" + P48, PrefixRequest.for_network(NET48)),
    ("9812" "01" "40" + P64, PrefixRequest.for_network(NET64)),
    ("9812" "01" "ff" "fe800000000000000000" "0000c0000205", PrefixRequest.for_link_local(LINK_LOCAL)),
    # RFC 5454 §2.2: IPv6 Prefix Reply, codes 0, 1, 8, 9.
    ("9814" "02" "00" "30" "00" + P48, PrefixReply(0, 48, NET48.network_address)),
    ("9814" "02" "01" "40" "00" + P64, PrefixReply(1, 64, NET64.network_address)),
    ("9814" "02" "08" "30" "00" + P48, PrefixReply(8, 48, NET48.network_address)),
    ("9814" "02" "09" "ff" "00" "fe800000000000000000" "0000c0000205", PrefixReply(9, 255, LINK_LOCAL)),
    # RFC 5454 §2.3: IPv6 Tunneling Mode.
    ("9802" "03" "00", TunnelingMode()),
    # Skippable unknowns survive (RFC 5944 §1.8).
    ("c803" "aabbcc", UnknownExtension(200, bytes.fromhex("aabbcc"))),
    ("9803" "07" "0102", UnknownExtension(152, bytes.fromhex("070102"))),
    ("9001" "05", UnknownExtension(144, b"\x05")),
]


@pytest.mark.parametrize(("hex_text", "extension"), VECTORS)
def test_vector_encode(hex_text: str, extension: Extension) -> None:
    """Object → hex (RFC 5944 §3.5, RFC 2794 §2, RFC 3024 §3.3, RFC 3519 §3, RFC 5454 §2)."""
    assert extension.encode().hex() == hex_text


@pytest.mark.parametrize(("hex_text", "extension"), VECTORS)
def test_vector_decode(hex_text: str, extension: Extension) -> None:
    """Hex → object for every extension."""
    assert decode_extensions(bytes.fromhex(hex_text), 24) == (extension,)


def test_all_vectors_in_one_block() -> None:
    data = bytes.fromhex("".join(hex_text for hex_text, _ in VECTORS))
    expected = tuple(extension for _, extension in VECTORS)
    assert decode_extensions(data) == expected
    assert encode_extensions(expected) == data


def test_locate_extensions_reports_offsets() -> None:
    data = bytes.fromhex("8200" "830f" + b"mn1@example.org".hex() + "9802" "0300")
    located = locate_extensions(data, 24)
    assert [(item.start, item.end) for item in located] == [(24, 26), (26, 43), (43, 47)]


# --- DSMIPv4 prefix semantics ----------------------------------------------------------------


def test_rfc5454_s2_1_prefix_request_properties() -> None:
    request = PrefixRequest.for_network(NET48)
    assert request.network == NET48 and not request.is_link_local and not request.has_host_bits
    link_local = PrefixRequest.for_link_local(LINK_LOCAL)
    assert link_local.prefix_length == 255 and link_local.is_link_local and link_local.network is None


def test_rfc5454_s2_1_host_bits_are_ignored_by_the_receiver() -> None:
    """RFC 5454 §2.1: bits past the length MUST be 0 when sent and are ignored by the receiver.

    So decode accepts them, keeps them (byte-identical), and .network masks them.
    """
    data = bytes.fromhex("9812" "01" "30" "20010db8000100000000000000000001")
    (request,) = decode_extensions(data)
    assert isinstance(request, PrefixRequest)
    assert request.has_host_bits
    assert request.network == NET48
    assert request.encode() == data


@pytest.mark.parametrize("length", [129, 200, 254])
def test_rfc5454_s2_1_prefix_length_outside_0_128_or_255_is_malformed(length: int) -> None:
    data = bytes.fromhex("9812" "01") + bytes([length]) + bytes(16)
    with pytest.raises(DecodeError) as caught:
        decode_extensions(data, 24)
    assert caught.value.offset == 27
    reply = bytes.fromhex("9814" "02" "00") + bytes([length, 0]) + bytes(16)
    with pytest.raises(DecodeError):
        decode_extensions(reply)
    with pytest.raises(ValueError):
        PrefixRequest(length, IPv6Address(0))


def test_rfc5454_s3_7_1_for_link_local_refuses_global_address() -> None:
    with pytest.raises(ValueError):
        PrefixRequest.for_link_local(IPv6Address("2001:db8::1"))


def test_rfc5454_s2_2_prefix_reply_codes() -> None:
    assert PrefixReply(0, 48, NET48.network_address).accepted
    assert PrefixReply(1, 48, NET48.network_address).accepted
    assert PrefixReply(7, 48, NET48.network_address).accepted
    assert not PrefixReply(8, 48, NET48.network_address).accepted
    assert not PrefixReply(9, 48, NET48.network_address).accepted
    assert PrefixReply(9, 48, NET48.network_address).reply_code is PrefixReplyCode.REJECTED_ADMIN
    assert PrefixReply(42, 48, NET48.network_address).reply_code == 42


def test_rfc5454_s3_3_prefix_reply_answering_echoes_the_request() -> None:
    request = PrefixRequest.for_network(NET64)
    reply = PrefixReply.answering(request, 1)
    assert reply.matches(request) and reply.network == NET64 and reply.code == 1
    assert not reply.matches(PrefixRequest.for_network(NET48))


# --- other extension properties ---------------------------------------------------------------


def test_rfc5944_s1_6_reserved_spi_is_decoded_and_flagged() -> None:
    """RFC 5944 §1.6: SPI 0-255 are reserved; decoding accepts them but says so."""
    (extension,) = decode_extensions(bytes.fromhex("2014" "000000ff") + bytes(16))
    assert isinstance(extension, AuthenticationExtension)
    assert extension.spi_reserved
    assert not AuthenticationExtension(32, 256, b"").spi_reserved


def test_rfc3519_s3_1_reserved3_nonzero_is_flagged() -> None:
    """RFC 3519 §3.1: Reserved3 != 0 means the extension must be treated as not understood."""
    assert UdpTunnelRequest(False, False, 0, reserved3=1).reserved3_nonzero
    assert not UdpTunnelRequest(False, False, 0).reserved3_nonzero


def test_rfc3519_s3_2_udp_tunnel_reply_accept_range() -> None:
    assert UdpTunnelReply(63, False, 0).accepted and not UdpTunnelReply(64, False, 0).accepted


@pytest.mark.parametrize(
    "bad",
    [
        lambda: AuthenticationExtension(35, 256, b""),
        lambda: AuthenticationExtension(32, 2**32, b""),
        lambda: AuthenticationExtension(32, 256, bytes(252)),
        lambda: NaiExtension(""),
        lambda: NaiExtension("x" * 256),
        lambda: NaiExtension("\ud800"),
        lambda: UdpTunnelRequest(False, False, 256),
        lambda: UdpTunnelRequest(False, False, 0, reserved2=64),
        lambda: UdpTunnelReply(0, False, 65536),
        lambda: UdpTunnelReply(0, False, 0, reserved=0x8000),
        lambda: PrefixReply(256, 48, IPv6Address(0)),
        lambda: TunnelingMode(256),
        lambda: UnknownExtension(200, bytes(256)),
        lambda: UnknownExtension(256, b""),
    ],
)
def test_constructors_reject_values_that_do_not_fit(bad: object) -> None:
    with pytest.raises(ValueError):
        bad()  # type: ignore[operator]


# --- unknown extensions (RFC 5944 §1.8) --------------------------------------------------------


def test_rfc5944_s1_8_unknown_skippable_is_skipped_and_parsing_continues() -> None:
    data = bytes.fromhex("fe02abcd" "8200")
    expected = (UnknownExtension(254, bytes.fromhex("abcd")), EncapsulatingDeliveryStyle())
    assert decode_extensions(data) == expected


@pytest.mark.parametrize("ext_type", [0, 36, 47, 127])
def test_rfc5944_s1_8_unknown_non_skippable_keeps_the_rest_opaque(ext_type: int) -> None:
    """RFC 5944 §1.8: an unknown 0-127 type stops parsing; the rest is one opaque extension.

    Type 0 has no meaning on UDP 434 and is treated the same way.
    """
    data = bytes.fromhex("8200") + bytes([ext_type]) + bytes.fromhex("ff0102" "8200")
    extensions = decode_extensions(data)
    opaque = UnknownExtension(ext_type, bytes.fromhex("ff01028200"))
    assert extensions == (EncapsulatingDeliveryStyle(), opaque)
    last = extensions[-1]
    assert isinstance(last, UnknownExtension) and not last.skippable
    assert encode_extensions(extensions) == data


def test_rfc5944_s1_8_non_skippable_unknown_as_last_byte() -> None:
    assert decode_extensions(b"\x24") == (UnknownExtension(36, b""),)


def test_rfc3519_s3_2_udp_tunnel_reply_with_unknown_subtype_is_opaque() -> None:
    """Type 44 is non-skippable; a subtype other than 0 is not understood, so the rest is kept opaque."""
    data = bytes.fromhex("2c06" "01" "00000000" "00" "8200")
    assert decode_extensions(data) == (UnknownExtension(44, data[1:]),)


def test_non_skippable_unknown_must_be_last_when_encoding() -> None:
    with pytest.raises(ValueError):
        encode_extensions([UnknownExtension(36, b"\x00"), EncapsulatingDeliveryStyle()])


# --- malformed input ---------------------------------------------------------------------------

MALFORMED = [
    ("20", 24, "no Length byte"),
    ("2014" "00000100", 25, "runs past"),
    ("2003" "000001", 25, "< 4"),
    ("8300", 25, "Length 0"),
    ("8302" "c328", 26, "UTF-8"),
    ("8201" "00", 25, "Length 0"),
    ("9005" "0000000000", 25, "Length 6"),
    ("9007" "00000000000000", 25, "Length 6"),
    ("2c05" "0000000000", 25, "Length 6"),
    ("9800", 25, "no subtype"),
    ("9000", 25, "no subtype"),
    ("2c00", 25, "no subtype"),
    ("9813" "01" + "00" * 18, 25, "Length 18"),
    ("9811" "01" + "00" * 16, 25, "Length 18"),
    ("9812" "02" + "00" * 17, 25, "Length 20"),
    ("9803" "030000", 25, "Length 2"),
    ("8200" "c8", 26, "no Length byte"),
    ("c805" "0102", 25, "runs past"),
]


@pytest.mark.parametrize(("hex_text", "offset", "reason"), MALFORMED)
def test_malformed_extensions_raise_decode_error_with_offset(hex_text: str, offset: int, reason: str) -> None:
    """Length past the end, or a wrong fixed length for a known type, is a DecodeError at that offset."""
    with pytest.raises(DecodeError) as caught:
        decode_extensions(bytes.fromhex(hex_text), 24)
    assert caught.value.offset == offset
    assert reason in caught.value.reason


# --- hypothesis round trips --------------------------------------------------------------------

SMALL = settings(max_examples=150, deadline=None)


@SMALL
@given(
    st.one_of(
        authentication_extensions,
        nai_extensions,
        st.just(EncapsulatingDeliveryStyle()),
        udp_tunnel_requests,
        udp_tunnel_replies,
    )
)
def test_roundtrip_mip_extensions(extension: Extension) -> None:
    assert decode_extensions(extension.encode()) == (extension,)


@SMALL
@given(st.one_of(prefix_requests, prefix_replies, tunneling_modes))
def test_roundtrip_dsmip_extensions(extension: Extension) -> None:
    assert decode_extensions(extension.encode()) == (extension,)


@SMALL
@given(st.one_of(skippable_unknowns, non_skippable_unknowns))
def test_roundtrip_unknown_extensions(extension: UnknownExtension) -> None:
    assert decode_extensions(extension.encode()) == (extension,)


@SMALL
@given(extension_sequences)
def test_roundtrip_extension_sequences(extensions: tuple[Extension, ...]) -> None:
    data = encode_extensions(extensions)
    assert decode_extensions(data) == extensions
    assert encode_extensions(decode_extensions(data)) == data
