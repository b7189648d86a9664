"""What a flood forging a known peer costs the home agent core (sans-I/O), per request: the quick raw-bytes
rejection past the source's failure budget (agents/mip/ha/quick_reject.py, issue 16) against the full
decode-screen-verify pipeline it replaces (the baseline, in the same run: the same core with the quick check
switched off, so each failure past the budget is decoded and verified, then dropped unanswered).

    python -m benchmarks.forged_peer [--requests 50000] [--repeats 5]

One mobile node registered from its FA's address; then ``--requests`` bad-authenticator requests for it
from that same address (what the security scenario's floods forge). Printed: requests/s and µs per
request, median of ``--repeats``; the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from ipaddress import IPv4Address, IPv4Network

from agents.mip.common.config import HomeAgentConfig, MobileNodeAccount
from agents.mip.ha.home_agent import HomeAgent
from agents.mip.wire.auth import SecurityAssociation
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.identification import timestamp_identification
from agents.mip.wire.registration import RegistrationRequest, build_request

HA, HOA, FA = IPv4Address("192.0.2.1"), IPv4Address("192.0.2.10"), IPv4Address("198.51.100.2")
KEY, WRONG = bytes(range(16)), bytes(16)
EPOCH = 1_800_000_000.0


def request(key: bytes, n: int) -> bytes:
    rrq = RegistrationRequest(RegistrationFlag.T, 600, HOA, HA, FA, timestamp_identification(EPOCH, n))
    return build_request(rrq, SecurityAssociation(256, key))


def rate(requests: int, quick: bool) -> float:
    """Bad-auth requests per second from the registered FA's address."""
    config = HomeAgentConfig(HA, IPv4Network("192.0.2.0/24"), (MobileNodeAccount(HOA, 256, KEY),))
    ha = HomeAgent(config, wall_clock_offset=EPOCH)
    if not quick:
        ha._quickly_rejected = lambda *_args: False  # type: ignore[method-assign]  # the baseline
    ha.receive_datagram(request(KEY, 0), (FA, 434), HA, 0.0)
    assert ha.table.get(HOA) is not None, "the registration was refused"
    ha.datagrams_to_send(0.0)
    while ha.next_event() is not None:
        pass
    flood = [request(WRONG, n) for n in range(1, 101)]
    started = time.perf_counter()
    for index in range(requests):
        ha.receive_datagram(flood[index % 100], (FA, 434), HA, 1.0)
        ha.datagrams_to_send(1.0)
        while ha.next_event() is not None:
            pass
    elapsed = time.perf_counter() - started
    assert ha.counters["authentication_failures"] == requests
    assert (ha.counters["rejected_quickly"] > 0) == quick
    return requests / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    full = statistics.median(rate(args.requests, quick=False) for _ in range(args.repeats))
    quick = statistics.median(rate(args.requests, quick=True) for _ in range(args.repeats))
    print(f"full pipeline (baseline): {full:>9,.0f} requests/s  {1e6 / full:5.1f} µs each")
    print(f"quick rejection:          {quick:>9,.0f} requests/s  {1e6 / quick:5.1f} µs each")
    print(f"ratio quick/full: {quick / full:.2f}  (median of {args.repeats} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
