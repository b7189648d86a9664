"""Deregistration and binding lifetimes: what the home agent keeps, and for how long, when a mobile node
leaves (RFC 5944 §3.6.1.2, §3.8.3, §4.6; RFC 5454 §3.8). Phases, each judged from the HA's observed state
(binding table, proxy ARP, tunnel routes), the FA's visitor list, the home link's ARP caches and probes:

1. ``omission``   a prefix left out of a re-registration is withdrawn, the other keeps flowing (RFC 5454 §3.8)
2. ``visited-fa`` lifetime 0 through FA1: binding, tunnel routes and proxy ARP go (RFC 5944 §3.6.1.2)
3. ``visited-colocated`` the same from a co-located care-of address (mn2)
4. ``return-home`` CoA = HoA, lifetime 0, gratuitous ARP: the home link's caches point at the MN (§4.6)
5. ``lifetime``   a lifetime above the HA's maximum is shortened; ≥ 3 renewals without a gap in traffic
6. ``forged``     a deregistration with a wrong key (131) or replayed from the capture (133) changes nothing
7. ``silent-death`` the MN is killed (SIGKILL) away from home: the binding, tunnel and proxy ARP last
   exactly until the granted lifetime runs out (the black-hole window), and the FA's visitor entry with it

    sudo python -m scenarios.deregistration [--lifetime S] [--dwell S] [--rate PPS] [--out DIR] ...

Exit 0 only when every verdict held; 1 when one failed (named) or the testbed could not be set up; 2 for
wrong use, no root or a missing tool; 130 after Ctrl-C and 143 after SIGTERM, once everything is removed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scenarios.harness.options import add_common_options, add_timing_options, run_main, run_plan, whole
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import RunFolder

SETTLE_TIMEOUT = 10.0


def lifetime(text: str) -> int:
    """The HA's maximum lifetime for this run: whole seconds, 2..600."""
    return whole(text, 2, 600, "seconds")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.deregistration",
        description="Deregister a dual-stack mobile node every way it can leave; check what the HA keeps.",
    )
    parser.add_argument(
        "--lifetime",
        type=lifetime,
        default=4,
        help="the HA's maximum binding lifetime in whole seconds (default 4); the MN asks for 60",
    )
    add_timing_options(
        parser,
        dwell=1.5,
        dwell_means="to watch each state",
        settle=SETTLE_TIMEOUT,
        settle_means="a registration or deregistration may take",
    )
    parser.add_argument(
        "--no-pcap",
        action="store_true",
        help="capture only the HA's home link (the verdicts and the replay need it), not every interface",
    )
    add_common_options(parser, "deregistration", default_rate=200.0)
    parser.set_defaults(always_captures=True)  # the HA's home link, whatever --no-pcap says
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_main("deregistration", parse_args(argv), argv, execute)


def execute(
    args: argparse.Namespace, run: RunFolder, progress: Progress, seed: int, features: dict[str, Any]
) -> int:
    """Run the scenario into ``run``; the exit status (a setup failure is one line, not a traceback)."""
    from scenarios.deregistration_run import DeregistrationRun  # imports mininet: after the checks

    def plan() -> DeregistrationRun:
        return DeregistrationRun(args, run, progress, seed, features)

    return run_plan("deregistration", args, run, plan)


if __name__ == "__main__":
    sys.exit(main())
