"""``python -m reports RUN_DIR [--json] [-q]``: re-render a run folder and print its verdict.

Exit status: 0 when every expectation holds, 1 when some fail, 2 (one-line message, no traceback) when
the folder is missing or one of its files is malformed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from reports.deregistration import render_deregistration
from reports.dhcpv6_pd import render_dhcpv6_pd
from reports.errors import RunFolderError
from reports.metrics import RunResult
from reports.nat_traversal import render_nat_traversal
from reports.render import metrics_json, render
from reports.rundir import scenario_of
from reports.security import render_security
from reports.table import overall_line, summary_table, verdict_lines

RENDERERS: dict[str, Callable[[Path], RunResult]] = {
    "deregistration": render_deregistration,
    "dhcpv6_pd": render_dhcpv6_pd,
    "nat_traversal": render_nat_traversal,
    "security": render_security,
}
"""meta.json's ``scenario`` → its renderer; anything else (the handover scenario) → :func:`render`."""
PHASED = ("deregistration", "dhcpv6_pd", "security")
"""Scenarios judged per phase: their verdicts are printed without the handover table."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m reports",
        description="Re-render a run folder: metrics.json, handovers.csv, plots/*.png and report.md.",
        epilog="Exit status: 0 all expectations met, 1 some failed, 2 unusable run folder.",
    )
    parser.add_argument("run_dir", type=Path, help="the run folder (holds meta.json, traces/, probes/)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print metrics.json instead of the table")
    output.add_argument("-q", "--quiet", action="store_true", help="print only the overall verdict line")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        scenario = scenario_of(args.run_dir)
        result = RENDERERS.get(scenario or "", render)(args.run_dir)
    except RunFolderError as exc:
        print(f"reports: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"reports: cannot write into {args.run_dir}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(metrics_json(result))
    elif args.quiet:
        print(overall_line(result))
    elif scenario in PHASED:
        print(verdict_lines(result))
    else:
        print(summary_table(result))
        print()
        print(verdict_lines(result))
        print(f"\nreport: {Path(args.run_dir) / 'report.md'}")
    return 0 if result.overall_passed else 1


if __name__ == "__main__":
    sys.exit(main())
