"""Encode and decode rates of a full DSMIPv4 Registration Request.

The message: fixed part, NAI, three IPv6 Prefix Requests (RFC 5454 §2.1) and MN-HA authentication with
HMAC-MD5 (RFC 5944 §3.5.2). A bare 24-byte RRQ is measured in the same run as the baseline.

    python -m benchmarks.wire_rates [--repeats 7] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Network

from agents.mip.wire.auth import SecurityAssociation, verify_with
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.extensions import NaiExtension, PrefixRequest
from agents.mip.wire.registration import RegistrationRequest, build_request

ASSOCIATION = SecurityAssociation(spi=0x100, key=bytes(range(16)))


def full_request() -> RegistrationRequest:
    prefixes = ("2001:db8:1::/48", "2001:db8:2::/48", "2001:db8:3:4::/64")
    return RegistrationRequest(
        flags=RegistrationFlag.D | RegistrationFlag.T,
        lifetime=300,
        home_address=IPv4Address("10.1.0.5"),
        home_agent=IPv4Address("192.0.2.1"),
        care_of_address=IPv4Address("198.51.100.10"),
        identification=0xE8A1B2C300000001,
        extensions=(
            NaiExtension("mn1@example.net"),
            *(PrefixRequest.for_network(IPv6Network(p)) for p in prefixes),
        ),
    )


def rate(operation: Callable[[], object], seconds: float) -> float:
    """Operations per second over one timed window of about ``seconds``."""
    count = 0
    batch = 200
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            operation()
        count += batch
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def median_rate(operation: Callable[[], object], repeats: int, seconds: float) -> float:
    return statistics.median(rate(operation, seconds) for _ in range(repeats))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args(argv)

    request = full_request()
    wire = build_request(request, ASSOCIATION)
    bare = RegistrationRequest(
        request.flags, 300, request.home_address, request.home_agent, request.care_of_address, 1
    )
    bare_wire = bare.encode()
    cases: list[tuple[str, Callable[[], object]]] = [
        ("baseline: bare RRQ encode", bare.encode),
        ("baseline: bare RRQ decode", lambda: RegistrationRequest.decode(bare_wire)),
        ("full DSMIPv4 RRQ encode + sign (build_request)", lambda: build_request(request, ASSOCIATION)),
        ("full DSMIPv4 RRQ decode", lambda: RegistrationRequest.decode(wire)),
        ("full DSMIPv4 RRQ verify MN-HA", lambda: verify_with(wire, 32, ASSOCIATION)),
    ]
    print(f"full RRQ: {len(wire)} bytes; median of {args.repeats} runs of {args.seconds} s each")
    for name, operation in cases:
        print(f"{name:50s} {median_rate(operation, args.repeats, args.seconds):>12,.0f} msg/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
