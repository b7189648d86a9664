"""What the security scenario's attacker sends (pure builders over our wire library, no scapy):

* spoofed reverse-tunnel packets for a registered mobile node, each carrying a UDP datagram with a marker
  (:data:`MARKER` + the attack's name) to the correspondent, so a capture there shows whether any was
  forwarded (RFC 3024 §4.3.2, RFC 5454 §3.3.2 and §4: the HA must drop them);
* whole IPv4/UDP datagrams to the HA's port 434 for the floods: garbage, and Registration Requests with a
  wrong MN-HA authenticator (RFC 5944 §3.8.2.1), from a forged source address.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from agents.mip.common.config import MOBILE_IP_PORT
from agents.mip.wire.auth import SecurityAssociation
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.registration import RegistrationRequest, build_request
from agents.mip.wire.tunnel import encapsulate_ipv4_in_ipv4, encapsulate_ipv6_in_ipv4

MARKER = b"DSMIP-SPOOF "
"""The start of every spoofed inner datagram's payload (then the attack's name)."""
DISCARD_PORT = 9
WRONG_KEY = hashlib.sha256(b"not the mobile node's key").digest()[:16]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def udp4(source: IPv4Address, destination: IPv4Address, port: int, payload: bytes, ttl: int = 64) -> bytes:
    """A whole IPv4/UDP datagram (IPv4 header checksum set, UDP checksum 0 = none, RFC 768)."""
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    header = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, ttl, 17, 0, source.packed, destination.packed
        )
    )
    struct.pack_into("!H", header, 10, _checksum(bytes(header)))
    return bytes(header) + udp


def udp6(source: IPv6Address, destination: IPv6Address, port: int, payload: bytes) -> bytes:
    """A whole IPv6/UDP datagram with its (mandatory) checksum (RFC 8200 §8.1)."""
    length = 8 + len(payload)
    pseudo = source.packed + destination.packed + struct.pack("!IxxxB", length, 17)
    udp = struct.pack("!HHHH", 40000, port, length, 0) + payload
    checksum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", checksum) + udp[8:]
    return struct.pack("!IHBB", 6 << 28, length, 17, 64) + source.packed + destination.packed + udp


@dataclass(frozen=True)
class Target:
    """The registered mobile node the spoofs pretend to come from, and where they go."""

    home_agent: IPv4Address
    home_address: IPv4Address
    home_address6: IPv6Address
    care_of: IPv4Address
    correspondent4: IPv4Address
    correspondent6: IPv6Address
    attacker4: IPv4Address
    """The correspondent's own address: an outer source that is no registered care-of address."""


@dataclass(frozen=True)
class Spoof:
    """One kind of spoofed reverse-tunnel packet: its name, the node that sends it, and the packet."""

    name: str
    vantage: str
    packet: bytes
    what: str


OUTSIDE4 = IPv4Address("198.18.0.66")
OUTSIDE6 = IPv6Address("2001:db8:dead::66")
"""Inner sources that no binding holds (RFC 2544 benchmarking range; a prefix nobody registered)."""


def spoofs(target: Target, correspondent: str, visited: str) -> list[Spoof]:
    """Every spoof of the scenario's spoof phase: IPv4 and IPv6, outer and inner sources, nested and not,
    from the correspondent's node and from a node in a visited network (RFC 3024 §4.3.2, RFC 5454 §4)."""
    t = target

    def v4(name: str, source: IPv4Address) -> bytes:
        return udp4(source, t.correspondent4, DISCARD_PORT, MARKER + name.encode())

    def v6(name: str, source: IPv6Address) -> bytes:
        return udp6(source, t.correspondent6, DISCARD_PORT, MARKER + name.encode())

    def ipip(inner: bytes, outer: IPv4Address) -> bytes:
        return encapsulate_ipv4_in_ipv4(inner, outer, t.home_agent)

    def six4(inner: bytes, outer: IPv4Address) -> bytes:
        return encapsulate_ipv6_in_ipv4(inner, outer, t.home_agent)

    return [
        Spoof(
            "v4-outer",
            correspondent,
            ipip(v4("v4-outer", t.home_address), t.attacker4),
            "IPv4 in IPv4, outer source no care-of address, inner the HoA",
        ),
        Spoof(
            "v4-inner",
            visited,
            ipip(v4("v4-inner", OUTSIDE4), t.care_of),
            "IPv4 in IPv4, outer the registered care-of address (forged), inner not the HoA",
        ),
        Spoof(
            "v6-outer",
            correspondent,
            six4(v6("v6-outer", t.home_address6), t.attacker4),
            "IPv6 in IPv4, outer source no care-of address, inner the MN's IPv6 address",
        ),
        Spoof(
            "v6-inner",
            visited,
            ipip(six4(v6("v6-inner", OUTSIDE6), t.home_address), t.care_of),
            "nested (care-of tunnel, then HoA tunnel), innermost IPv6 source outside the prefixes",
        ),
        Spoof(
            "v6-unnested",
            visited,
            six4(v6("v6-unnested", t.home_address6), t.home_address),
            "IPv6 in IPv4 from the HoA sent straight, not inside the care-of tunnel",
        ),
        Spoof(
            "v6-nested-outer",
            correspondent,
            ipip(six4(v6("v6-nested-outer", t.home_address6), t.home_address), t.attacker4),
            "nested, right inner layers, outer source no care-of address",
        ),
    ]


def bad_auth_datagram(
    source: IPv4Address,
    home_agent: IPv4Address,
    home_address: IPv4Address,
    care_of: IPv4Address,
    spi: int,
    identification: int,
    lifetime: int = 3,
) -> bytes:
    """An IPv4/UDP datagram from ``source`` (forged) carrying a Registration Request for ``home_address``
    with the right SPI and a wrong authenticator: the HA denies it 131 (RFC 5944 §3.8.2.1)."""
    request = RegistrationRequest(
        RegistrationFlag.T, lifetime, home_address, home_agent, care_of, identification
    )
    payload = build_request(request, SecurityAssociation(spi, WRONG_KEY))
    return udp4(source, home_agent, MOBILE_IP_PORT, payload)


def garbage_datagram(source: IPv4Address, home_agent: IPv4Address, index: int) -> bytes:
    """Type 1 and 0–59 random bytes: too short for a Registration Request (RFC 5944 §3.3)."""
    return udp4(source, home_agent, MOBILE_IP_PORT, bytes([1]) + os.urandom(index % 60))


def wrong_key_registration(
    home_address: IPv4Address,
    home_agent: IPv4Address,
    care_of: IPv4Address,
    spi: int,
    identification: int,
) -> bytes:
    """A (UDP payload) request moving ``home_address`` to ``care_of`` signed with a wrong key: 131."""
    request = RegistrationRequest(RegistrationFlag.T, 60, home_address, home_agent, care_of, identification)
    return build_request(request, SecurityAssociation(spi, WRONG_KEY))
