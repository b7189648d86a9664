"""DHCPv6 prefix delegation over the link-local tunnel with a real Kea server (RFC 5454 §3.7.1, RFC 8415).

mn1 starts at home with no IPv6 at all, moves to FA1's IPv4-only network, registers its IPv4 home address,
then its tunnel link-local fe80::<HoA> (Prefix Length 255), runs DHCPv6 (Solicit/Reply with Rapid
Commit, or the 4-message exchange) IPv6-in-IPv4-in-IPv4 to Kea on the home agent's tunnel device, registers
the delegated prefix, talks to the correspondent from its new address both ways, renews the lease, moves to
FA2 keeping the prefix, and finally releases the prefix and deregisters. Phases:

1. ``home``        at home: IPv4 only, no IPv6 prefix
2. ``visit-fa1``   IPv4 registration through FA1
3. ``link-local``  fe80::<HoA> registered (code 0)
4. ``dhcpv6``      Solicit → Reply (or Advertise/Request/Reply); Kea's lease names mn1's DUID
5. ``prefix``      the delegated prefix registered (explicit mode); the HA checked it against Kea's leases
6. ``traffic``     correspondent ↔ mn1's address in the delegated prefix, both ways
7. ``renew``       Renew at T1 keeps the prefix, traffic uninterrupted
8. ``move-fa2``    mn1 moves to FA2 and keeps the prefix
9. ``deregistration`` Release (Kea's lease ends), then deregistration

    sudo python -m scenarios.dhcpv6_pd [--four-message] [--lease S] [--pool-size N] [--dwell S] ...

With ``--pool-size 0`` the pool's only prefix is held for another client: mn1 gets NoPrefixAvail and stays
IPv4-only (and says so). Exit 0 only when every verdict held; 1 when one failed (named) or the testbed could
not be set up; 2 for wrong use, no root, a missing tool, or Kea missing or failing to start; 130 after Ctrl-C
and 143 after SIGTERM, once everything (Kea included) is removed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scenarios.harness.options import (
    add_common_options,
    add_timing_options,
    number,
    run_main,
    run_plan,
    whole,
)
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import RunFolder

SETTLE_TIMEOUT = 10.0


def lease(text: str) -> int:
    """Kea's valid lifetime for the run: whole seconds, 4..3600 (T1 = ½, T2 = ⅘ of it)."""
    return whole(text, 4, 3600, "seconds")


def pool_size(text: str) -> int:
    """How many /56 prefixes Kea may delegate: 0 (every one held by another client) or a power of two."""
    value = int(text) if text.isdigit() else -1
    if value < 0 or value > 256 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"must be 0 or a power of two up to 256, got {text!r}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.dhcpv6_pd",
        description="Bootstrap a mobile node's IPv6 by DHCPv6-PD over its HoA tunnel (RFC 5454 §3.7.1).",
    )
    parser.add_argument(
        "--four-message",
        action="store_true",
        help="Solicit/Advertise/Request/Reply instead of Rapid Commit's Solicit/Reply",
    )
    parser.add_argument(
        "--link-local-first",
        action="store_true",
        help="put fe80::<HoA> in the first Registration Request instead of a second one (saves the 1 s gap)",
    )
    parser.add_argument(
        "--lease", type=lease, default=8, help="Kea's valid lifetime in seconds (default 8: T1 4 s, T2 6 s)"
    )
    parser.add_argument(
        "--pool-size",
        type=pool_size,
        default=None,
        help="shrink the pool to N prefixes; 0 = every prefix held by another client (pool exhausted)",
    )
    parser.add_argument(
        "--sol-max-delay",
        type=lambda text: number(text, 0, 1, "seconds"),
        default=0.0,
        help="random delay before the first Solicit, up to this (RFC 8415 SOL_MAX_DELAY is 1 s; default 0)",
    )
    add_timing_options(
        parser,
        dwell=1.5,
        dwell_means="to watch each state",
        settle=SETTLE_TIMEOUT,
        settle_means="a registration or DHCPv6 exchange may take",
    )
    parser.add_argument("--no-pcap", action="store_true", help="do not capture packets")
    parser.add_argument("--kea-debug", action="store_true", help="Kea logs every packet (kea/kea-dhcp6.log)")
    add_common_options(parser, "dhcpv6_pd", default_rate=200.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_main("dhcpv6_pd", parse_args(argv), argv, execute)


def execute(
    args: argparse.Namespace, run: RunFolder, progress: Progress, seed: int, features: dict[str, Any]
) -> int:
    """Run the scenario into ``run``; the exit status (a setup failure is one line, not a traceback)."""
    from scenarios.dhcpv6_pd_run import PdRun
    from scenarios.harness.kea import KeaUnavailable, find_kea

    try:
        find_kea()
    except KeaUnavailable as error:
        print(f"dhcpv6_pd: {error}", file=sys.stderr)
        return 2

    def plan() -> PdRun:
        return PdRun(args, run, progress, seed, features)

    try:
        return run_plan("dhcpv6_pd", args, run, plan)
    except KeaUnavailable as error:
        print(f"dhcpv6_pd: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
