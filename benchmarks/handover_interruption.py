"""Handover interruption with link-event detection vs advertisement-only detection, in one run (issue 4).

Runs the handover scenario with ``--detection both``: cycles alternate between moves with a carrier drop
(the MN reacts to the link event) and moves that keep the carrier up (the MN must hear the new agent's
advertisement, sent every ``--adv-interval`` seconds). Prints, per detection and per flow (family and
direction), the median and p95 interruption and the median packets lost, from the run's metrics.json.

    sudo .venv/bin/python -m benchmarks.handover_interruption [--cycles 14] [--adv-interval 1] [--out DIR]
        [--datapath userspace ebpf]

With several ``--datapath`` backends the scenario runs once per backend, one after the other in the same
invocation, and the table has a row per backend, detection and flow.

Needs root (Mininet). A figure, not a pass/fail test: the machine is noisy, so quote medians.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.handover_interruption")
    parser.add_argument("--cycles", type=int, default=14, help="cycles home → FA1 → FA2 → home (default 14)")
    parser.add_argument("--adv-interval", type=float, default=1.0)
    parser.add_argument("--dwell", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    parser.add_argument(
        "--datapath", nargs="+", default=["userspace"], choices=["userspace", "ebpf", "auto"], help="backends"
    )
    args = parser.parse_args(argv)
    base = args.out or Path(tempfile.mkdtemp(prefix="handover-bench-"))
    rows: list[str] = []
    status = 0
    for datapath in args.datapath:
        out = base / f"run-{datapath}" if len(args.datapath) > 1 or args.out is None else base
        command = [sys.executable, "-m", "scenarios.handover", "--detection", "both", "-q"]
        command += ["--moves", str(args.cycles), "--adv-interval", str(args.adv_interval)]
        command += ["--dwell", str(args.dwell), "--rate", str(args.rate), "--out", str(out)]
        command += ["--datapath", datapath]
        started = time.monotonic()
        result = subprocess.run(command, check=False)
        wall = time.monotonic() - started
        metrics_file = out / "metrics.json"
        if not metrics_file.exists():
            print(f"handover_interruption: no metrics (scenario exit {result.returncode})", file=sys.stderr)
            return 2
        metrics = json.loads(metrics_file.read_text())
        print(f"run: {out} (exit {result.returncode}, {wall:.0f} s wall, {args.rate:g} packets/s per flow)")
        status = status or (0 if result.returncode == 0 else 1)
        for detection, flows in sorted(metrics["summary"]["by_detection"].items()):
            for flow, figures in flows.items():
                median, p95 = figures["interruption_ms_median"], figures["interruption_ms_p95"]
                moves, lost = figures["measured"], figures["lost_median"]
                figures_text = f"{moves:>5} {median:>10.1f} {p95:>8.1f} {lost:>14.0f}"
                rows.append(f"{datapath:<10} {detection:<10} {flow:<8} {figures_text}")
    header = f"{'moves':>5} {'median ms':>10} {'p95 ms':>8} {'lost (median)':>14}"
    print(f"{'datapath':<10} {'detection':<10} {'flow':<8} {header}")
    print("\n".join(rows))
    return status


if __name__ == "__main__":
    sys.exit(main())
