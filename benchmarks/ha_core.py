"""Home agent core (sans-I/O) registration rate with many bindings and no sockets: the runtime's ceiling.

    python -m benchmarks.ha_core [--bindings 10000] [--repeats 5] [--requests 5000]

Every mobile node has an MN-HA security association and one IPv6 prefix; the table is filled with
``--bindings`` bindings first, then authenticated re-registrations (NAI-less, one Prefix Request each) are
timed. The baseline in the same run: the same requests against a table with one binding.
"""

from __future__ import annotations

import argparse
import statistics
import time
from ipaddress import IPv4Address, IPv4Network, IPv6Network

from agents.mip.common.config import HomeAgentConfig, MobileNodeAccount
from agents.mip.ha.home_agent import HomeAgent
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.dsmip import PrefixRequest
from agents.mip.wire.identification import timestamp_identification
from agents.mip.wire.registration import RegistrationRequest, build_request

HA = IPv4Address("10.0.0.1")
HOME = IPv4Network("10.0.0.0/16")
KEY = bytes(range(16))
EPOCH = 1_800_000_000.0


def accounts(count: int) -> tuple[MobileNodeAccount, ...]:
    return tuple(
        MobileNodeAccount(HA + 1 + i, 256 + i, KEY, allowed_prefixes=(IPv6Network(f"2001:db8:{i:x}::/48"),))
        for i in range(count)
    )


def request(account: MobileNodeAccount, now: float) -> bytes:
    prefix = account.allowed_prefixes[0]
    rrq = RegistrationRequest(
        RegistrationFlag.D | RegistrationFlag.T,
        600,
        account.home_address,
        HA,
        IPv4Address("198.51.100.10"),
        timestamp_identification(EPOCH + now, 0),
        (PrefixRequest.for_network(prefix),),
    )
    return build_request(rrq, account.association)


def rate(bindings: int, requests: int) -> float:
    """Registrations per second handled by a HomeAgent already holding ``bindings`` bindings."""
    mns = accounts(bindings)
    agent = HomeAgent(HomeAgentConfig(HA, HOME, mns, max_lifetime=3600), wall_clock_offset=EPOCH)
    source = (IPv4Address("198.51.100.10"), 49152)
    for index, account in enumerate(mns):  # fill the table
        agent.receive_datagram(request(account, index * 1e-4), source, HA, index * 1e-4)
    agent.datagrams_to_send(0.0)
    while agent.next_event() is not None:
        pass
    now = 10.0
    wires = [request(mns[i % bindings], now + i * 1e-4) for i in range(requests)]
    start = time.perf_counter()
    for i, wire in enumerate(wires):
        agent.receive_datagram(wire, source, HA, now + i * 1e-4)
        agent.datagrams_to_send(now)
        while agent.next_event() is not None:
            pass
        agent.get_timer()
    elapsed = time.perf_counter() - start
    assert agent.counters.get("accepted", requests) > 0
    return requests / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindings", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    baseline = statistics.median(rate(1, args.requests) for _ in range(args.repeats))
    loaded = statistics.median(rate(args.bindings, args.requests) for _ in range(args.repeats))
    print(f"HA core, 1 binding (baseline):      {baseline:>10,.0f} registrations/s")
    print(f"HA core, {args.bindings:,} bindings:          {loaded:>10,.0f} registrations/s")
    print(f"ratio loaded/baseline: {loaded / baseline:.2f}  (median of {args.repeats} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
