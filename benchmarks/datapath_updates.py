"""How fast a home agent datapath takes binding changes, per backend (needs root; issue 9).

    sudo python -m benchmarks.datapath_updates [--bindings 10000] [--runs 3] [--datapath userspace ebpf]

In a namespace of its own (``dsm-u<pid>``, one veth), for each backend: a home agent datapath gets
``--bindings`` new bindings, each with one IPv6 prefix (what a first registration does: route + table or
maps), then every binding moves to a new care-of address (a handover: for ebpf a map update, for userspace
a table change; no route changes), then all are removed. Prints the median per second of each step over
``--runs``, straight calls on the datapath object, so the agent's protocol work is not in it
(benchmarks.ha_registration measures that end to end).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from ipaddress import IPv4Address, IPv6Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.datapath.base import Encapsulation, TunnelTarget
from agents.datapath.selection import Choice, make_home_agent
from agents.net.netlink import netns_entered

HA = IPv4Address("198.51.100.1")


def one_run(backend: str, count: int) -> tuple[float, float, float]:
    """(new bindings/s, moves/s, removals/s) for one fresh datapath."""
    homes = [IPv4Address(int(IPv4Address("10.0.0.0")) + 1 + i) for i in range(count)]
    care_ofs = [IPv4Address(int(IPv4Address("198.51.100.0")) + 2 + i % 200) for i in range(count)]
    moved = [IPv4Address(int(IPv4Address("198.51.100.0")) + 202 + i % 50) for i in range(count)]
    prefixes = [IPv6Network(f"2001:db8:{i >> 8:x}:{i & 0xFF:x}00::/56") for i in range(count)]
    datapath = make_home_agent(Choice(backend, backend, "benchmark"), HA, interface_name="mip-ha")
    ipip = Encapsulation.IP_IN_IP
    try:
        start = time.perf_counter()
        for home, care_of, prefix in zip(homes, care_ofs, prefixes, strict=True):
            datapath.add_ipv4_tunnel(home, care_of, ipip, home_agent=HA)
            datapath.add_ipv6_prefix(prefix, home, TunnelTarget.CARE_OF)
        added = time.perf_counter() - start
        start = time.perf_counter()
        for home, old, new in zip(homes, care_ofs, moved, strict=True):
            datapath.add_ipv4_tunnel(home, new, ipip, home_agent=HA)
            datapath.remove_ipv4_tunnel(home, old)
        moves = time.perf_counter() - start
        start = time.perf_counter()
        for home in homes:
            datapath.remove_ipv4_tunnel(home)
        removed = time.perf_counter() - start
    finally:
        datapath.close()
    return count / added, count / moves, count / removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindings", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--datapath", nargs="+", default=["userspace", "ebpf"], choices=["userspace", "ebpf"])
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (a network namespace, TUN, tc)", file=sys.stderr)
        return 2
    name = f"dsm-u{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(
            ["ip", "-n", name, "link", "add", "u0", "type", "veth", "peer", "name", "u1"], check=True
        )
        for command in (
            "link set lo up",
            "link set u0 up",
            "link set u1 up",
            "addr add 198.51.100.1/24 dev u0",
        ):
            subprocess.run(["ip", "-n", name, *command.split()], check=True)
        print(
            f"{args.bindings:,} bindings, median of {args.runs} runs, {os.cpu_count()} CPUs (shared machine)"
        )
        print(f"{'backend':10} {'new bindings/s':>15} {'moves/s':>10} {'removals/s':>11}")
        for backend in args.datapath:
            with netns_entered(name):
                runs = [one_run(backend, args.bindings) for _ in range(args.runs)]
            medians = [statistics.median(values) for values in zip(*runs, strict=True)]
            print(f"{backend:10} {medians[0]:15,.0f} {medians[1]:10,.0f} {medians[2]:11,.0f}", flush=True)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
