"""How long ``reports.render`` takes on a long run: metrics, handovers.csv, the four plots and report.md.

The run folder is synthetic (the generator the reports tests use, tests/unit/runfolder.py): four probe flows
at 1000 packets/s for ``--seconds`` (default 60: 60,000 packets each) and the standard run's three
handovers with their traces. The baseline, rendered in the same run, is the standard 15-second run
(15,000 packets a flow). Printed: median, fastest and slowest of ``--repeats`` renders, and the ratio.

    python -m benchmarks.render_time [--seconds 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from reports import render
from tests.unit.runfolder import MOVES, RunFolderBuilder, standard_flows, standard_traces

START = 1000.5
"""When the synthetic flows start (the standard run's moves are at 1005–1013)."""
SHORTEST = 15.0
"""Seconds of flow the standard run has: every move falls inside it."""


def run_folder(root: Path, seconds: float) -> Path:
    """The standard run's handovers with four flows of ``seconds`` at 1000 packets/s, written to ``root``."""
    builder = RunFolderBuilder(root, moves=len(MOVES))
    standard_flows(builder, start=START, end=START + seconds)
    standard_traces(builder)
    return builder.write()


def render_seconds(root: Path, repeats: int) -> list[float]:
    """Wall-clock seconds of each of ``repeats`` renders of the run folder at ``root``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        render(root)
        times.append(time.perf_counter() - started)
    return times


def describe(label: str, times: list[float]) -> str:
    return (
        f"{label:<36} median {statistics.median(times):6.2f} s"
        f"   (fastest {min(times):.2f} s, slowest {max(times):.2f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of flow (1000 packets/s each)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.seconds < SHORTEST or args.repeats < 1:
        parser.error(f"--seconds must be at least {SHORTEST:g} (the moves are inside) and --repeats >= 1")
    with tempfile.TemporaryDirectory(prefix="render-time-") as scratch:
        baseline = render_seconds(run_folder(Path(scratch) / "baseline", SHORTEST), args.repeats)
        measured = render_seconds(run_folder(Path(scratch) / "long", args.seconds), args.repeats)
    packets = round(args.seconds * 1000)
    print(f"reports.render on a synthetic run, median of {args.repeats} renders")
    print(describe(f"baseline: 4 flows × {round(SHORTEST * 1000):,} packets", baseline))
    print(describe(f"4 flows × {packets:,} packets", measured))
    print(f"{'ratio':<36} {statistics.median(measured) / statistics.median(baseline):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
