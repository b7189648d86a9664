"""Handover: a dual-stack mobile node starts at home, then moves home → FA1 → FA2 → home (``--moves``
cycles) while IPv4 and IPv6 probe flows run both ways; the run folder gets pcaps, traces, probe CSVs,
metrics, plots and a report, and the summary table is printed (design.md §6-§7).

    sudo python -m scenarios.handover [--moves N] [--detection link|advert|both]
        [--handoff standard|pre|post|make-before-break] ...

Exit 0 only when every expectation held (both families restored after every move, every registration
accepted, agents exiting cleanly); 1 when one failed (named) or the testbed could not be set up; 2 for
wrong use, no root, a missing tool or root-namespace names in use; 130 after Ctrl-C (SIGINT) and 143 after
SIGTERM, once everything the run created is removed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scenarios.harness.options import (
    add_common_options,
    add_netem_options,
    add_timing_options,
    count,
    run_main,
    run_plan,
    seconds,
)
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import S_HANDOFFS, RunFolder

ROUTE = ("fa1", "fa2", "home")
SETTLE_TIMEOUT = 15.0
"""Seconds a move may take to register (or deregister at home) before the scenario calls it failed."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.handover",
        description="Move a dual-stack mobile node home → FA1 → FA2 → home and measure each handover.",
    )
    parser.add_argument("--moves", type=count, default=1, help="cycles home → FA1 → FA2 → home (default 1)")
    parser.add_argument(
        "--detection",
        choices=("link", "advert", "both"),
        default="link",
        help="how the MN notices a move: carrier events, advertisements only, or both in turn (per cycle)",
    )
    parser.add_argument("--adv-interval", type=seconds, default=1.0, help="agent advertisement interval (s)")
    parser.add_argument(
        "--handoff",
        choices=("standard", "pre", "post", "make-before-break"),
        default="standard",
        help="standard (break, then register); pre: RFC 4881 §3 pre-registration on an L2 trigger the "
        "harness announces before each FA-to-FA move; post: RFC 4881 §4 edge tunnel from the old FA to "
        "the new one, which buffers until the MN attaches; make-before-break: a second MN interface on "
        "the new FA's link registers with S (RFC 5944 §3.6.1.3) before the first leaves the old link",
    )
    add_timing_options(
        parser,
        dwell=3.0,
        dwell_means="at each attachment",
        settle=SETTLE_TIMEOUT,
        settle_means="a move may take to register (or deregister at home)",
    )
    parser.add_argument("--no-pcap", action="store_true", help="do not capture packets")
    parser.add_argument("--cli", action="store_true", help="open the Mininet CLI (with mobility commands)")
    add_common_options(parser, "handover", default_rate=1000.0)
    add_netem_options(parser)
    args = parser.parse_args(argv)
    if args.handoff in S_HANDOFFS and args.datapath == "kernel":
        parser.error(
            f"--handoff {args.handoff} needs simultaneous bindings (RFC 5944 §3.6.1.3), which the kernel "
            "datapath cannot copy (its HA answers S with code 1): use --datapath userspace, ebpf or auto"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    return run_main("handover", parse_args(argv), argv, execute)


def execute(
    args: argparse.Namespace, run: RunFolder, progress: Progress, seed: int, features: dict[str, Any]
) -> int:
    """Run the scenario into ``run``; the exit status (a setup failure is one line, not a traceback)."""
    from scenarios.handover_run import HandoverRun  # imports mininet: after the checks

    return run_plan(
        "handover",
        args,
        run,
        lambda: HandoverRun(
            args, run, progress, seed, features, route=ROUTE, settle_timeout=args.settle_timeout
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
