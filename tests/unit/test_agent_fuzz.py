"""Fuzzing of the ICMP, IP and tunnel decoders: nothing but DecodeError may escape.

Each decoder gets 100,000 purely random inputs and 100,000 mutations of valid encodings, all from a
seeded ``random.Random``. Mutations are bit flips, byte overwrites, truncation, extension, insertion,
deletion, length-field corruption and splices of two encodings. Half of the mutated inputs have their
checksums repaired afterwards, so that the fuzzing reaches past the checksum checks into the structure.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import pytest

from agents.mip.errors import DecodeError
from agents.mip.icmp import (
    AdvertisementFlag,
    AgentAdvertisement,
    AgentSolicitation,
    MobilityAgentExtension,
    decode_agent_message,
)
from agents.mip.ip import IPv4Header, IPv6Header, internet_checksum
from agents.mip.tunnel import (
    GreHeader,
    MinimalForwardingHeader,
    TunnelDataHeader,
    decapsulate,
    decapsulate_gre_payload,
    decapsulate_udp_tunnel_data,
    encapsulate,
    encapsulate_udp_tunnel_data,
)

RANDOM_INPUTS = 100_000
MUTATED_INPUTS = 100_000
HA = IPv4Address("192.0.2.1")
COA = IPv4Address("10.0.2.10")
F = AdvertisementFlag


def _inner4(tos: int = 0xB9, payload: bytes = bytes(12)) -> bytes:
    header = IPv4Header(IPv4Address("10.1.0.5"), IPv4Address("198.51.100.1"), 17, 20 + len(payload),
                        tos=tos, flags=2, ttl=64)
    return header.encode() + payload


def _inner6(traffic_class: int = 0x02, payload: bytes = bytes(12)) -> bytes:
    header = IPv6Header(IPv6Address("2001:db8:1::5"), IPv6Address("2001:db8:2::1"), 17, len(payload),
                        traffic_class=traffic_class)
    return header.encode() + payload


def _advertisements() -> list[bytes]:
    coa = IPv4Address("10.0.2.1")
    return [
        AgentAdvertisement(0, 1800, ((coa, 0),), MobilityAgentExtension(1, 300, F.F | F.T, (coa,)),
                           prefix_lengths=(24,), padding=1).encode(),
        AgentAdvertisement(16, 600, (), MobilityAgentExtension(0, 0xFFFF, F.H)).encode(),
        AgentAdvertisement(0, 9, ((coa, -1), (HA, 5)), MobilityAgentExtension(9, 1, F(0xFFFF), (coa, HA)),
                           prefix_lengths=(24, 16), unknown_extensions=((24, b"abc"), (200, b""))).encode(),
    ]


def _tunnelled() -> list[bytes]:
    packets = []
    for inner in (_inner4(), _inner6(), _inner4(0x03, b"x" * 40)):
        for protocol in (4, 47, 55):
            if inner[0] >> 4 == 6 and protocol == 55:
                continue
            packets.append(encapsulate(inner, HA, COA, protocol))
        packets.append(encapsulate(inner, HA, COA, 47, gre_checksum=True))
    return packets


ADVERTISEMENTS = _advertisements()
SOLICITATIONS = [AgentSolicitation().encode(), AgentSolicitation().encode() + b"extra"]
TUNNELLED = _tunnelled()
GRE_PACKETS = [packet[20:] for packet in TUNNELLED if packet[9] == 47]
MINIMAL_HEADERS = [MinimalForwardingHeader(17, COA).encode(), MinimalForwardingHeader(6, COA, HA, 3).encode()]
UDP_TUNNEL_DATA = [encapsulate_udp_tunnel_data(_inner4(), 4), encapsulate_udp_tunnel_data(_inner6(), 41),
                   encapsulate_udp_tunnel_data(GRE_PACKETS[0], 47)]


def _fix_at(data: bytearray, at: int, start: int, end: int) -> None:
    """Rewrite the 16-bit checksum at ``at`` so that data[start:end] sums correctly."""
    if at + 2 <= len(data) and start < end <= len(data):
        data[at:at + 2] = b"\0\0"
        data[at:at + 2] = internet_checksum(data[start:end]).to_bytes(2, "big")


def _fix_icmp(data: bytearray) -> None:
    _fix_at(data, 2, 0, len(data))


def _fix_ipv4(data: bytearray) -> None:
    if len(data) >= 20:
        ihl = (data[0] & 0x0F) * 4
        if 20 <= ihl <= len(data):
            protocol = data[9]
            if protocol == 47 and len(data) >= ihl + 8 and data[ihl] & 0x80:
                _fix_at(data, ihl + 4, ihl, len(data))
            elif protocol == 55 and len(data) >= ihl + 8:
                _fix_at(data, ihl + 2, ihl, ihl + (12 if data[ihl + 1] & 0x80 else 8))
            _fix_at(data, 10, 0, ihl)


def _fix_gre(data: bytearray) -> None:
    if len(data) >= 8 and data[0] & 0x80:
        _fix_at(data, 4, 0, len(data))


def _fix_minimal(data: bytearray) -> None:
    if len(data) >= 8:
        _fix_at(data, 2, 0, 12 if data[1] & 0x80 else 8)


def _mutate(seed: bytes, rng: random.Random, seeds: list[bytes]) -> bytearray:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 3)):
        choice = rng.randrange(9)
        position = rng.randrange(len(data) + 1)
        if choice == 0 and data:  # flip bits
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif choice == 1 and data:  # overwrite a byte with a boundary or random value
            data[rng.randrange(len(data))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif choice == 2:  # truncate
            del data[position:]
        elif choice == 3:  # append
            data += rng.randbytes(rng.randint(1, 16))
        elif choice == 4:  # insert
            data[position:position] = rng.randbytes(rng.randint(1, 8))
        elif choice == 5:  # delete a range
            del data[position:position + rng.randint(1, 8)]
        elif choice == 6 and len(data) > 6:  # corrupt a likely length/count field near the front
            offset = rng.choice((1, 2, 3, 4, 5, 17, 20, 21, 22, 23, 24, 25)) % len(data)
            data[offset] = rng.choice((0, 1, 2, 5, 6, 8, 10, 40, 0xFF, len(data) & 0xFF, rng.randrange(256)))
        elif choice == 7:  # splice with another seed
            other = rng.choice(seeds)
            data = data[:position] + bytearray(other[rng.randrange(len(other) + 1):])
        else:  # zero a run
            data[position:position + 4] = bytes(len(data[position:position + 4]))
    return data


def _random_input(rng: random.Random, first_bytes: bytes) -> bytes:
    data = rng.randbytes(rng.choice((rng.randrange(12), rng.randrange(80))))
    if data and rng.random() < 0.5:
        data = bytes((rng.choice(first_bytes),)) + data[1:]
    return data


Decoder = Callable[[bytes], object]
CASES: list[tuple[str, Decoder, list[bytes], Callable[[bytearray], None], bytes]] = [
    ("AgentAdvertisement", AgentAdvertisement.decode, ADVERTISEMENTS, _fix_icmp, b"\x09"),
    ("AgentSolicitation", AgentSolicitation.decode, SOLICITATIONS, _fix_icmp, b"\x0a"),
    ("decode_agent_message", decode_agent_message, ADVERTISEMENTS + SOLICITATIONS, _fix_icmp, b"\x09\x0a"),
    ("MobilityAgentExtension", MobilityAgentExtension.decode, [a[18:] for a in ADVERTISEMENTS],
     lambda data: None, b"\x00"),
    ("IPv4Header", IPv4Header.decode, [p for p in TUNNELLED], _fix_ipv4, b"\x45\x46\x4f"),
    ("IPv6Header", IPv6Header.decode, [_inner6()], lambda data: None, b"\x60\x6f"),
    ("TunnelDataHeader", TunnelDataHeader.decode, UDP_TUNNEL_DATA, lambda data: None, b"\x04"),
    ("decapsulate_udp_tunnel_data", decapsulate_udp_tunnel_data, UDP_TUNNEL_DATA, lambda data: None, b"\x04"),
    ("decapsulate", decapsulate, TUNNELLED, _fix_ipv4, b"\x45\x46"),
    ("GreHeader", GreHeader.decode, GRE_PACKETS, _fix_gre, b"\x00\x80"),
    ("decapsulate_gre_payload", decapsulate_gre_payload, GRE_PACKETS, _fix_gre, b"\x00\x80"),
    ("MinimalForwardingHeader", MinimalForwardingHeader.decode, MINIMAL_HEADERS, _fix_minimal, b"\x11"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "decoder", "seeds", "fix", "first_bytes"), CASES, ids=[c[0] for c in CASES])
def test_only_decode_error_escapes(name: str, decoder: Decoder, seeds: list[bytes],
                                   fix: Callable[[bytearray], None], first_bytes: bytes) -> None:
    rng = random.Random(f"dsmip-fuzz-{name}")
    decoded = 0
    for index in range(RANDOM_INPUTS + MUTATED_INPUTS):
        if index % 2:
            data = _random_input(rng, first_bytes)
        else:
            mutated = _mutate(rng.choice(seeds), rng, seeds)
            if index % 4 == 0:
                fix(mutated)
            data = bytes(mutated)
        try:
            decoder(data)
            decoded += 1
        except DecodeError:
            pass
        except Exception as error:  # report the input that broke the decoder
            pytest.fail(f"{name}: {type(error).__name__}: {error} on input {data.hex()}")
    assert decoded > 0  # the mutations do reach valid inputs too
