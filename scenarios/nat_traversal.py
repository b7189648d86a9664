"""NAT traversal (RFC 3519, RFC 5454 §3.9): a dual-stack mobile node starts at home, moves behind the NAT
(a private address from the visited network, registered with UDP tunnelling: IPv4 and IPv6 both ways
through a real iptables MASQUERADE), sends keepalives, survives the NAT forgetting its mapping (the MN
notices, registers again, the HA moves the binding to the new public port), then moves to FA1 (plain
IP-in-IP again) and home. With ``--via-fa`` a foreign agent behind the NAT advertises R and U: the mobile
node registers its co-located address through it with the R flag, and the HA learns the NAT's port for the
mobile node from its first keepalive (RFC 3519 §3.1.2, §4.4, §4.6, §4.11).

    sudo python -m scenarios.nat_traversal [--keepalive S] [--via-fa] [--dwell S] [--rate PPS] [--out DIR] ...

Exit 0 only when every expectation held; 1 when one failed (named) or the testbed could not be set up; 2 for
wrong use, no root or a missing tool; 130 after Ctrl-C and 143 after SIGTERM, once everything is removed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scenarios.harness.options import (
    add_common_options,
    add_timing_options,
    count,
    run_main,
    run_plan,
    whole,
)
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import RunFolder

SETTLE_TIMEOUT = 15.0


def keepalive(text: str) -> int:
    """The HA's keepalive interval K for this run: whole seconds, 1..110 (RFC 3519 §4.9: 110 by default)."""
    return whole(text, 1, 110, "seconds")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.nat_traversal",
        description="Move a dual-stack mobile node home → NAT → FA1 → home; the NAT forgets it once.",
    )
    parser.add_argument(
        "--keepalive",
        type=keepalive,
        default=2,
        help="keepalive interval K the HA gives, seconds (default 2)",
    )
    parser.add_argument(
        "--losses", type=count, default=1, help="times the NAT forgets the mapping (default 1)"
    )
    parser.add_argument(
        "--via-fa",
        action="store_true",
        help="a foreign agent behind the NAT advertises R and U: register the co-located address through "
        "it with the R flag; the HA waits for the first keepalive (RFC 3519 §4.11)",
    )
    add_timing_options(
        parser,
        dwell=2.0,
        dwell_means="at each attachment",
        settle=SETTLE_TIMEOUT,
        settle_means="a move or a recovery may take",
    )
    parser.add_argument(
        "--no-pcap",
        action="store_true",
        help="capture only the NAT's two sides (the verdicts read them), not every agent interface",
    )
    add_common_options(parser, "nat_traversal", default_rate=200.0)
    # what the handover frame reads: link events, the agents' default advertisement interval, no CLI
    parser.set_defaults(always_captures=True, detection="link", adv_interval=1.0, moves=1, cli=False)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_main("nat_traversal", parse_args(argv), argv, execute)


def execute(
    args: argparse.Namespace, run: RunFolder, progress: Progress, seed: int, features: dict[str, Any]
) -> int:
    """Run the scenario into ``run``; the exit status (a setup failure is one line, not a traceback)."""
    from scenarios.nat_traversal_run import NatTraversalRun  # imports mininet: after the checks

    def plan() -> NatTraversalRun:
        return NatTraversalRun(args, run, progress, seed, features)

    return run_plan("nat_traversal", args, run, plan)


if __name__ == "__main__":
    sys.exit(main())
