"""Handover interruption against the MN–HA round trip: a netem sweep, measured vs predicted (issue 15).

For each added round trip R (``--rtts``, default 0, 20, 50, 100 ms) the handover scenario runs with
``--ha-rtt R`` (sch_netem on the home uplink, half each way), and the moves to a foreign agent, whose
registration crosses that uplink, are read from the run's metrics.json. The decomposition predicts

    interruption ≈ detection + one MN–HA round trip + datapath update

with detection = the MN's ``movement_detected`` after the move, the round trip = the registration round trip
measured in the same run (it includes R), and the datapath update = ``tunnel_up`` − ``registration_accepted``
at the MN. The table puts the median prediction next to the median measured interruption of each flow.

    sudo /usr/bin/python3 -m benchmarks.netem_sweep [--rtts 0,20,50,100] [--moves 3] [--rate 200] [--dwell 6]

Needs root and sch_netem; in the VM: ``sudo ./testbed vm exec /usr/bin/python3 -m benchmarks.netem_sweep``.
A figure, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FLOWS = ("v4-down", "v4-up", "v6-down", "v6-up")


def rtts(text: str) -> list[float]:
    try:
        values = [float(word) for word in text.split(",") if word.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give milliseconds separated by commas") from None
    if not values or any(not 0 <= value <= 10000 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or more values from 0 to 10000 ms")
    return values


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def decompose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the prediction's parts and of each flow's interruption over the moves to a foreign agent."""
    moves = [row for row in rows if row.get("to") != "home"]

    def column(name: str) -> list[float]:
        return [float(row[name]) for row in moves if row.get(name) is not None]

    update = [
        float(row["tunnel_up_ms"]) - float(row["registration_accepted_ms"])
        for row in moves
        if row.get("tunnel_up_ms") is not None and row.get("registration_accepted_ms") is not None
    ]
    predicted = [
        float(row["movement_detected_ms"]) + float(row["registration_rtt_ms"]) + up
        for row, up in zip(moves, update, strict=False)
        if row.get("movement_detected_ms") is not None and row.get("registration_rtt_ms") is not None
    ]
    return {
        "moves": len(moves),
        "detection_ms": median(column("movement_detected_ms")),
        "registration_rtt_ms": median(column("registration_rtt_ms")),
        "datapath_update_ms": median(update),
        "predicted_ms": median(predicted),
        "measured_ms": {flow: median(column(f"{flow}_interruption_ms")) for flow in FLOWS},
    }


def run_one(rtt: float, args: argparse.Namespace, out: Path) -> tuple[int, dict[str, Any] | None]:
    command = [sys.executable, "-m", "scenarios.handover", "-q", "--no-pcap", "--moves", str(args.moves)]
    command += ["--rate", str(args.rate), "--dwell", str(args.dwell), "--datapath", args.datapath]
    command += ["--out", str(out)] + (["--ha-rtt", f"{rtt:g}"] if rtt else [])
    result = subprocess.run(command, check=False)
    metrics = out / "metrics.json"
    if not metrics.exists():
        return result.returncode, None
    return result.returncode, json.loads(metrics.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.netem_sweep")
    parser.add_argument("--rtts", type=rtts, default=[0.0, 20.0, 50.0, 100.0], help="added RTTs, ms")
    parser.add_argument("--moves", type=int, default=3, help="cycles home → FA1 → FA2 → home per RTT")
    parser.add_argument("--rate", type=float, default=200.0, help="probe packets/s per flow (default 200)")
    parser.add_argument("--dwell", type=float, default=6.0, help="seconds at each attachment (default 6)")
    parser.add_argument("--datapath", default="userspace")
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs (default: temporary)")
    args = parser.parse_args(argv)
    base = args.out or Path(tempfile.mkdtemp(prefix="netem-sweep-"))
    header = f"{'RTT ms':>6} {'moves':>5} {'detect':>7} {'reg RTT':>8} {'dp upd':>7} {'predicted':>9}"
    header += "".join(f" {flow:>8}" for flow in FLOWS)
    lines, failures = [header], 0
    for rtt in args.rtts:
        started = time.monotonic()
        code, metrics = run_one(rtt, args, base / f"rtt-{rtt:g}")
        wall = time.monotonic() - started
        if metrics is None:
            print(f"netem_sweep: RTT {rtt:g} ms: no metrics (scenario exit {code})", file=sys.stderr)
            return 2
        failures += code != 0
        parts = decompose(metrics["handovers"])
        print(f"RTT {rtt:g} ms: scenario exit {code}, {wall:.0f} s; {json.dumps(parts)}", flush=True)

        def cell(value: float | None, width: int) -> str:
            return f"{value:>{width}.1f}" if value is not None else f"{'-':>{width}}"

        row = f"{rtt:>6g} {parts['moves']:>5} {cell(parts['detection_ms'], 7)} "
        row += f"{cell(parts['registration_rtt_ms'], 8)} {cell(parts['datapath_update_ms'], 7)} "
        row += cell(parts["predicted_ms"], 9)
        row += "".join(f" {cell(parts['measured_ms'][flow], 8)}" for flow in FLOWS)
        lines.append(row)
    print(
        f"runs in {base}; medians over the moves to a foreign agent ({args.rate:g} packets/s per flow, "
        f"interruption granularity {1000 / args.rate:g} ms)"
    )
    print("\n".join(lines))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
