"""Handover: a dual-stack mobile node starts at home, then moves home → FA1 → FA2 → home (``--moves``
cycles) while IPv4 and IPv6 probe flows run both ways; the run folder gets pcaps, traces, probe CSVs,
metrics, plots and a report, and the summary table is printed (design.md §6-§7).

    sudo python -m scenarios.handover [--moves N] [--detection link|advert|both] [--out DIR] ...

Exit 0 only when every expectation held (both families restored after every move, every registration
accepted, agents exiting cleanly); 1 when one failed (named) or the testbed could not be set up; 2 for
wrong use, no root, a missing tool or root-namespace names in use; 130 after Ctrl-C (SIGINT) and 143 after
SIGTERM, once everything the run created is removed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from scenarios.harness.preflight import PreflightError, check_environment
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import RunFolder
from scenarios.harness.signals import Interrupted, sigterm_raises

ROUTE = ("fa1", "fa2", "home")
SETTLE_TIMEOUT = 15.0
"""Seconds a move may take to register (or deregister at home) before the scenario calls it failed."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.handover",
        description="Move a dual-stack mobile node home → FA1 → FA2 → home and measure each handover.",
    )
    parser.add_argument("--out", type=Path, help="run folder (default: reports/runs/handover-<UTC time>)")
    parser.add_argument("--moves", type=_count, default=1, help="cycles home → FA1 → FA2 → home (default 1)")
    parser.add_argument("--dwell", type=_seconds, default=3.0, help="seconds at each attachment (default 3)")
    parser.add_argument(
        "--detection",
        choices=("link", "advert", "both"),
        default="link",
        help="how the MN notices a move: carrier events, advertisements only, or both in turn (per cycle)",
    )
    parser.add_argument("--adv-interval", type=_seconds, default=1.0, help="agent advertisement interval (s)")
    parser.add_argument("--rate", type=_rate, default=1000.0, help="probe packets per second per flow")
    parser.add_argument(
        "--settle-timeout",
        type=_seconds,
        default=SETTLE_TIMEOUT,
        help=f"seconds a move may take to register (or deregister at home) (default {SETTLE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--start-timeout",
        type=_seconds,
        default=60.0,
        help="seconds building and starting the network may take (default 60)",
    )
    parser.add_argument("--datapath", choices=("userspace", "auto"), default="userspace")
    parser.add_argument("--no-pcap", action="store_true", help="do not capture packets")
    parser.add_argument("--cli", action="store_true", help="open the Mininet CLI (with mobility commands)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time based, recorded)")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="show every step")
    loudness.add_argument("-q", "--quiet", action="store_true", help="print only the verdict and the folder")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON at the end")
    return parser.parse_args(argv)


def _count(text: str) -> int:
    value = int(text) if text.isdigit() else -1
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: want a whole number 1..1000")
    return value


def _number(text: str, low: float, high: float, unit: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text}: want {low:g}..{high:g} {unit}")
    return value


def _seconds(text: str) -> float:
    return _number(text, 0.05, 3600, "seconds")


def _rate(text: str) -> float:
    return _number(text, 1, 20000, "packets per second")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    progress = Progress(verbose=args.verbose, quiet=args.quiet, stream=sys.stderr if args.json else None)
    run: RunFolder | None = None
    try:
        with sigterm_raises():
            try:
                features = check_environment(pcap=not args.no_pcap)
            except PreflightError as error:
                print(f"handover: {error}", file=sys.stderr)
                return 2
            seed = args.seed if args.seed is not None else int(time.time())
            random.seed(seed)
            try:
                run = RunFolder.create("handover", args.out)
            except OSError as error:
                print(f"handover: cannot create the run folder: {error}", file=sys.stderr)
                return 2
            return execute(args, run, progress, seed, features)
    except (KeyboardInterrupt, Interrupted) as stop:
        what = "terminated" if isinstance(stop, Interrupted) else "interrupted"
        where = f"; partial run in {run.path}" if run is not None else ""
        print(f"handover: {what}; everything the run created was removed{where}", flush=True)
        return 143 if isinstance(stop, Interrupted) else 130
    finally:
        if run is not None:
            run.remove_sockets()  # the testbed removes it too; not when stopped before it was built


def execute(
    args: argparse.Namespace, run: RunFolder, progress: Progress, seed: int, features: dict[str, Any]
) -> int:
    """Run the scenario into ``run``; the exit status (a setup failure is one line, not a traceback)."""
    from scenarios.handover_run import SETUP_ERRORS, HandoverRun  # imports mininet: after the checks
    from topologies.build import NamesInUseError

    plan = HandoverRun(args, run, progress, seed, features, route=ROUTE, settle_timeout=args.settle_timeout)
    try:
        result = plan.execute()
    except NamesInUseError as error:
        print(f"handover: {error}", file=sys.stderr)
        return 2
    except SETUP_ERRORS as error:
        print(f"handover: the testbed failed: {error}; run folder: {run.path}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.metrics, indent=2, default=str))
    return 0 if result.overall_passed else 1


if __name__ == "__main__":
    sys.exit(main())
