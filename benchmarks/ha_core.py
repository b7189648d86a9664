"""Home agent core (sans-I/O) registration rate with many bindings and no sockets: the runtime's ceiling.

    python -m benchmarks.ha_core [--bindings 10000] [--repeats 5] [--requests 5000] [--calls]

Every mobile node has an MN-HA security association and one IPv6 prefix; the table is filled with
``--bindings`` bindings first, then authenticated re-registrations (NAI-less, one Prefix Request each) are
timed, with the CPU each renewal took on this thread's clock (what a busy machine changes least). The baseline
in the same run: the same requests against a table with one binding. ``--calls`` also
counts the Python function calls of one renewal (cProfile, 2,000 renewals): a figure a busy machine does not
change, for comparing two trees.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
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
SOURCE = (IPv4Address("198.51.100.10"), 49152)


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


def filled(bindings: int) -> tuple[HomeAgent, tuple[MobileNodeAccount, ...]]:
    """A HomeAgent holding ``bindings`` bindings (every event and datagram taken)."""
    mns = accounts(bindings)
    agent = HomeAgent(HomeAgentConfig(HA, HOME, mns, max_lifetime=3600), wall_clock_offset=EPOCH)
    for index, account in enumerate(mns):  # fill the table
        agent.receive_datagram(request(account, index * 1e-4), SOURCE, HA, index * 1e-4)
    agent.datagrams_to_send(0.0)
    while agent.next_event() is not None:
        pass
    return agent, mns


def renew(agent: HomeAgent, wires: list[bytes], now: float) -> None:
    """Hand each renewal to ``agent`` and take what it queued, as the runtime does."""
    for i, wire in enumerate(wires):
        agent.receive_datagram(wire, SOURCE, HA, now + i * 1e-4)
        agent.datagrams_to_send(now)
        while agent.next_event() is not None:
            pass
        agent.get_timer()


def rate(bindings: int, requests: int) -> tuple[float, float]:
    """Registrations per second handled by a HomeAgent already holding ``bindings`` bindings, and the CPU
    (µs, this thread's clock: waiting for a CPU on a busy machine is not counted) per renewal."""
    agent, mns = filled(bindings)
    now = 10.0
    wires = [request(mns[i % bindings], now + i * 1e-4) for i in range(requests)]
    start, cpu = time.perf_counter(), time.thread_time()
    renew(agent, wires, now)
    elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
    assert agent.counters.get("accepted", requests) > 0
    return requests / elapsed, cpu / requests * 1e6


def calls_per_request(bindings: int, requests: int) -> float:
    """Python function calls per renewal (cProfile's count): unlike a rate, the same on a busy machine."""
    agent, mns = filled(bindings)
    now = 10.0
    wires = [request(mns[i % bindings], now + i * 1e-4) for i in range(requests)]
    profile = cProfile.Profile()
    profile.runcall(renew, agent, wires, now)
    return pstats.Stats(profile).total_calls / requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindings", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--calls", action="store_true", help="also count Python function calls per renewal (cProfile)"
    )
    args = parser.parse_args(argv)
    baselines = [rate(1, args.requests) for _ in range(args.repeats)]
    loads = [rate(args.bindings, args.requests) for _ in range(args.repeats)]
    baseline, loaded = (statistics.median(run[0] for run in runs) for runs in (baselines, loads))
    print(f"HA core, 1 binding (baseline):      {baseline:>10,.0f} registrations/s")
    print(f"HA core, {args.bindings:,} bindings:          {loaded:>10,.0f} registrations/s")
    print(f"ratio loaded/baseline: {loaded / baseline:.2f}  (median of {args.repeats} runs)")
    for label, runs in (("1 binding", baselines), (f"{args.bindings:,} bindings", loads)):
        cpu = statistics.median(run[1] for run in runs)
        print(f"CPU per renewal (thread clock), {label}: {cpu:,.1f} µs (median of {args.repeats} runs)")
    if args.calls:
        calls = calls_per_request(args.bindings, min(args.requests, 2_000))
        print(f"Python function calls per renewal, {args.bindings:,} bindings: {calls:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
