"""What an attacker sends to a home agent in the deregistration scenario (RFC 5944 §5, §3.8.2.1):
a deregistration signed with a wrong key, and the bytes of a real deregistration replayed from a capture.

Pure functions over our wire library; reading the capture uses dpkt (the run's pcaps)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

from agents.mip.common.config import MOBILE_IP_PORT
from agents.mip.wire.auth import SecurityAssociation
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.identification import timestamp_identification
from agents.mip.wire.registration import RegistrationRequest, build_request, decode_message
from reports.pcapread import ipv4_packets


def wrong_key_deregistration(
    home_address: IPv4Address,
    home_agent: IPv4Address,
    care_of: IPv4Address,
    spi: int,
    now: float | None = None,
) -> bytes:
    """A Lifetime-0 request for ``home_address`` with a fresh timestamp and the right SPI, but an
    authenticator made with a key that is not the MN-HA key: the HA must answer 131 (RFC 5944 §3.8.2.1)."""
    request = RegistrationRequest(
        flags=RegistrationFlag.T,
        lifetime=0,
        home_address=home_address,
        home_agent=home_agent,
        care_of_address=care_of,
        identification=timestamp_identification(time.time() if now is None else now, 0),
    )
    forged_key = hashlib.sha256(b"not the mobile node's key").digest()[:16]
    return build_request(request, SecurityAssociation(spi, forged_key))


def captured_requests(pcap: Path) -> Iterator[tuple[float, bytes]]:
    """(capture time, UDP payload) of every Registration Request to port 434 in ``pcap`` (IPv4 over
    Ethernet, as tcpdump writes them in a run folder)."""
    import dpkt

    for timestamp, ip in ipv4_packets(pcap):
        udp = ip.data
        if isinstance(udp, dpkt.udp.UDP) and udp.dport == MOBILE_IP_PORT:
            payload = bytes(udp.data)
            if payload and payload[0] == RegistrationRequest.TYPE:
                yield timestamp, payload


def last_deregistration(pcap: Path, home_address: IPv4Address, before: float) -> bytes | None:
    """The last deregistration (Lifetime 0) for ``home_address`` captured in ``pcap`` before ``before``
    (Unix time: what the attacker had seen by then), as it was sent on the wire."""
    found = None
    for when, payload in captured_requests(pcap):
        if when >= before:
            break
        try:
            message = decode_message(payload)
        except DecodeError:
            continue
        if (
            isinstance(message, RegistrationRequest)
            and message.is_deregistration
            and message.home_address == home_address
        ):
            found = payload
    return found
