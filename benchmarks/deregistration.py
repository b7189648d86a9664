"""Deregistration figures over repeated runs of the deregistration scenario (issue 12).

Runs ``scenarios.deregistration`` ``--runs`` times for each HA maximum lifetime in ``--lifetimes`` and prints
medians (and the range) of: deregistration request → HA state removed (binding, prefixes, proxy ARP) per
way of leaving; the black-hole window after a silent death vs the remaining and the granted lifetime; the
FA's visitor expiry relative to the binding's; packets lost and the longest gap across renewals.

    sudo .venv/bin/python -m benchmarks.deregistration [--runs 5] [--lifetimes 3 6] [--datapath userspace]

Needs root (Mininet). A figure, not a pass/fail test: the machine is noisy, so quote medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def one_run(lifetime: int, datapath: str, out: Path) -> dict[str, Any] | None:
    command = [sys.executable, "-m", "scenarios.deregistration", "-q", "--lifetime", str(lifetime)]
    command += ["--datapath", datapath, "--out", str(out)]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    metrics = out / "metrics.json"
    if not metrics.exists():
        print(
            f"deregistration: no metrics (exit {result.returncode}): {result.stderr[-300:]}", file=sys.stderr
        )
        return None
    data = json.loads(metrics.read_text())
    if result.returncode != 0:
        failed = [v["name"] for v in data["verdicts"] if not v["passed"]]
        print(f"run {out} failed: {failed}", file=sys.stderr)
    return dict(data["figures"])


def describe(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values):8.3f}  ({min(values):.3f}..{max(values):.3f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deregistration")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lifetimes", type=int, nargs="+", default=[3, 6])
    parser.add_argument("--datapath", choices=("userspace", "auto"), default="userspace")
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="dereg-bench-"))
    print(f"runs in {base}; datapath {args.datapath}; median (min..max) over {args.runs} runs each")
    for lifetime in args.lifetimes:
        figures = [
            f for i in range(args.runs) if (f := one_run(lifetime, args.datapath, base / f"l{lifetime}-{i}"))
        ]
        removal: dict[str, list[float]] = {}
        for f in figures:
            for phase, ms in f.get("deregistration_ms", {}).items():
                if ms is not None:
                    removal.setdefault(phase, []).append(ms)
        holes = [f["black_hole"] for f in figures if "black_hole" in f]
        renewals = [f["renewals"] for f in figures if "renewals" in f]
        print(f"\nHA maximum lifetime {lifetime} s ({len(figures)} runs with figures)")
        for phase, values in sorted(removal.items()):
            print(f"  request → HA state removed, {phase:<18} ms {describe(values)}")
        measured = [h["measured_s"] for h in holes if h["measured_s"] is not None]
        print(f"  black-hole window measured (pcap)    s  {describe(measured)}")
        remaining = [h["remaining_lifetime_s"] for h in holes]
        print(f"  remaining lifetime at the kill       s  {describe(remaining)}")
        error = [
            abs(h["measured_s"] - h["remaining_lifetime_s"]) * 1000
            for h in holes
            if h["measured_s"] is not None
        ]
        print(f"  |measured - remaining|               ms {describe(error)}")
        skew = [h["fa_visitor_skew_s"] * 1000 for h in holes if h.get("fa_visitor_skew_s") is not None]
        print(f"  FA visitor expiry - HA expiry        ms {describe(skew)}")
        lost = [sum(r["lost"].values()) for r in renewals]
        gaps = [max(g for g in r["max_gap_ms"].values() if g is not None) for r in renewals]
        print(f"  renewals per run: {[r['count'] for r in renewals]}; packets lost across them {lost}")
        print(f"  longest gap between probe packets across renewals ms {describe(gaps)} (200 packets/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
