"""Fuzzing the registration decoders: random and mutated input must only ever raise DecodeError.

Seeded ``random.Random`` so failures reproduce; the failing input is printed as hex. Whatever a
decoder accepts must also re-encode to the very same bytes (decoding is lossless).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest

from agents.mip.wire.auth import SecurityAssociation, verify
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.extensions import (
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
from agents.mip.wire.registration import (
    RegistrationReply,
    RegistrationRequest,
    build_reply,
    build_request,
    decode_message,
)

RANDOM_INPUTS = 50_000
MUTATED_INPUTS = 120_000
SEED = 5454


def _random_extension(rng: random.Random) -> Extension:
    choice = rng.randrange(9)
    prefix = IPv6Address(rng.getrandbits(128))
    length = rng.choice([0, 48, 64, 128, 255, rng.randrange(129)])
    makers: list[Callable[[], Extension]] = [
        lambda: NaiExtension(f"mn{rng.randrange(1000)}@example.org"),
        lambda: PrefixRequest(length, prefix),
        lambda: PrefixReply(rng.choice([0, 1, 8, 9, rng.randrange(256)]), length, prefix),
        lambda: TunnelingMode(rng.randrange(256)),
        lambda: UdpTunnelRequest(rng.random() < 0.5, rng.random() < 0.5, rng.choice([0, 4, 47, 55])),
        lambda: UdpTunnelReply(rng.choice([0, 64]), rng.random() < 0.5, rng.randrange(65536)),
        lambda: EncapsulatingDeliveryStyle(),
        lambda: UnknownExtension(rng.randrange(128, 256), rng.randbytes(rng.randrange(8))),
        lambda: UnknownExtension(rng.choice([0, 36, 47]), rng.randbytes(rng.randrange(8))),
    ]
    return makers[choice]()


def _seed_messages(rng: random.Random, count: int) -> list[bytes]:
    """Valid encodings: signed requests and replies with assorted extensions."""
    association = SecurityAssociation(0x100, bytes(range(16)))
    seeds: list[bytes] = []
    for _ in range(count):
        drawn = [_random_extension(rng) for _ in range(rng.randrange(5))]
        opaque: list[Extension] = [e for e in drawn if isinstance(e, UnknownExtension) and not e.skippable]
        extensions = tuple([e for e in drawn if e not in opaque] + opaque[:1])  # opaque one last only
        home, agent, care_of = (IPv4Address(rng.getrandbits(32)) for _ in range(3))
        lifetime, identification = rng.randrange(65536), rng.getrandbits(64)
        flags = RegistrationFlag(rng.randrange(256))
        message: RegistrationRequest | RegistrationReply
        if rng.random() < 0.5:
            message = RegistrationRequest(flags, lifetime, home, agent, care_of, identification, extensions)
        else:
            message = RegistrationReply(rng.randrange(256), lifetime, home, agent, identification, extensions)
        seeds.append(message.encode())
    fixed_request = RegistrationRequest(RegistrationFlag.T, 300, home, agent, care_of, 1)
    seeds.append(build_request(fixed_request, association))
    seeds.append(build_reply(RegistrationReply(0, 300, home, agent, 1), association))
    return seeds


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """One of: bit flips, truncation, extension-length corruption, insertion, deletion, type change."""
    buffer = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(buffer))
            buffer[position] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del buffer[rng.randrange(len(buffer) + 1) :]
    elif kind == 2:
        fixed = 24 if buffer[0] == 1 else 20
        try:
            starts = [item.start for item in locate_extensions(bytes(buffer[fixed:]), fixed)]
        except DecodeError:
            starts = []
        position = rng.choice(starts) + 1 if starts else rng.randrange(len(buffer))
        if position < len(buffer):
            buffer[position] = rng.choice([0, 1, 2, 5, 17, 18, 19, 20, 21, 255, rng.randrange(256)])
    elif kind == 3:
        position = rng.randrange(len(buffer) + 1)
        buffer[position:position] = rng.randbytes(rng.randint(1, 6))
    elif kind == 4:
        start = rng.randrange(len(buffer))
        del buffer[start : start + rng.randint(1, 6)]
    else:
        buffer[0] = rng.choice([0, 1, 3, 4, rng.randrange(256)])
    return bytes(buffer)


def _inputs(rng: random.Random) -> Iterator[bytes]:
    for _ in range(RANDOM_INPUTS):
        first = rng.choice([1, 3, rng.randrange(256)])
        yield bytes([first]) + rng.randbytes(rng.randrange(80))
    seeds = _seed_messages(rng, 300)
    for _ in range(MUTATED_INPUTS):
        data = rng.choice(seeds)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            if data:
                data = _mutate(rng, data)
        yield data


def _fail(decoder: str, data: bytes, error: BaseException) -> None:
    pytest.fail(f"{decoder} raised {error!r} on input {data.hex()}")


def _check_message_decoders(data: bytes) -> None:
    decoders: list[tuple[str, Callable[[bytes], RegistrationRequest | RegistrationReply]]] = [
        ("RegistrationRequest.decode", RegistrationRequest.decode),
        ("RegistrationReply.decode", RegistrationReply.decode),
        ("decode_message", decode_message),
    ]
    for name, decoder in decoders:
        try:
            message = decoder(data)
        except DecodeError:
            continue
        except Exception as error:
            _fail(name, data, error)
        else:
            assert message.encode() == data, f"{name} is lossy on {data.hex()}"


def _check_extension_decoder(data: bytes) -> None:
    try:
        extensions = decode_extensions(data, 24)
    except DecodeError:
        return
    except Exception as error:
        _fail("decode_extensions", data, error)
    assert encode_extensions(extensions) == data, f"decode_extensions is lossy on {data.hex()}"


def _check_verify(data: bytes) -> None:
    try:
        verify(data, 32, bytes(range(16)))
    except DecodeError:
        return
    except Exception as error:
        _fail("verify", data, error)


@pytest.mark.slow
def test_fuzz_decoders_raise_only_decode_error() -> None:
    """At least 100,000 random and mutated inputs into every decoder (and verify on raw bytes)."""
    rng = random.Random(SEED)
    count = 0
    for data in _inputs(rng):
        _check_message_decoders(data)
        _check_extension_decoder(data[24:] if len(data) > 24 and rng.random() < 0.5 else data)
        _check_verify(data)
        count += 1
    assert count >= 100_000
