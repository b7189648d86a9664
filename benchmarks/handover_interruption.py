"""Handover interruption per handoff mode, with the advertisement-driven comparison, in one invocation
(issues 4 and 14).

Five runs of the handover scenario, one after the other on the same machine:

* ``standard``: link-event moves (carrier drop; the MN solicits at once), break-before-make;
* ``pre``: the same moves with ``--handoff pre`` (RFC 4881 §3 pre-registration on an L2 trigger, S-bit
  make-before-break, the new FA's buffer): FA1 → FA2 moves are pre-registered, the others stay standard;
* ``post``: the same with ``--handoff post`` (RFC 4881 §4: the old FA forwards through an edge tunnel to
  the new one, which buffers until the MN attaches; the MN registers at link up);
* ``make-before-break``: the same with ``--handoff make-before-break`` (a second MN interface on FA2's
  link registers FA2's care-of address with S before the first leaves FA1's link; the HA bicasts,
  RFC 5944 §3.6.1.3): the ``dups`` column counts the copies of the overlap;
* ``advert``: moves without carrier events, detected from the next Agent Advertisement
  (``--adv-interval``, RFC 5944 §2.4.2).

For each run and kind of move it prints, per flow (family and direction), the median and p95
interruption, the median packets lost and duplicated per move, the median sender gap (the probe
sender's longest silence inside the interruption: one packet interval, 0.2 ms at 5,000 packets/s, for a
steady sender; more means it waited for a CPU the agents held) and the median lost span (first to last
send lost inside the interruption: with one outage and a constant delay, a lower bound of the path's own
outage whatever the sender did), all from handovers.csv. The ratio of the
advertisement-driven to the link-event median is printed at the end.

    sudo .venv/bin/python -m benchmarks.handover_interruption [--cycles 21] [--advert-cycles 7] [--out DIR]
        [--datapath userspace ebpf] [--modes standard make-before-break ...]

``--modes`` picks some of the runs (default all five). With several ``--datapath`` backends the runs
are made once per backend (sub-folders named after it),
and each table row names its backend.

Needs root (Mininet). A figure, not a pass/fail test: the machine is noisy, so quote medians.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from reports.announced import SETTLED_S
from scenarios.harness.options import DEFAULT_AGENT_PRIORITY, agent_priority
from scenarios.harness.runfolder import S_HANDOFFS

FLOWS = ("v4-down", "v4-up", "v6-down", "v6-up")
MODES = ("standard", "pre", "post", "make-before-break", "advert")
ANNOUNCED = ("pre", "post", "make-before-break")
"""Runs whose FA1 → FA2 moves begin before the move (an ``l2_trigger``)."""


def run_scenario(out: Path, args: argparse.Namespace, *extra: str) -> tuple[int, float]:
    command = [sys.executable, "-m", "scenarios.handover", "-q", "--dwell", str(args.dwell)]
    command += ["--rate", str(args.rate), "--adv-interval", str(args.adv_interval), "--out", str(out)]
    if not args.pcap:
        command.append("--no-pcap")
    started = time.monotonic()
    result = subprocess.run([*command, *extra], check=False)
    return result.returncode, time.monotonic() - started


def load_rows(run: Path) -> list[dict[str, str]]:
    with (run / "handovers.csv").open() as handle:
        return list(csv.DictReader(handle))


def figures(
    rows: Iterable[dict[str, str]], flow: str
) -> tuple[int, float, float, float, float, float, float]:
    """(moves measured, median ms, p95 ms, median lost, median duplicates, median sender gap ms, median
    lost span ms) of ``flow`` over ``rows``; the sender gap is the sender's longest silence inside the
    interruption (one packet interval when it kept its pace), the lost span the time from the first to
    the last send lost inside it, a lower bound of the path's own outage (:mod:`reports.windows`)."""
    chosen = [row for row in rows if row[f"{flow}_interruption_ms"] not in ("", "None")]
    if not chosen:
        return 0, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), float("nan")
    interruption = np.array([float(row[f"{flow}_interruption_ms"]) for row in chosen])
    lost = np.array([float(row[f"{flow}_lost"]) for row in chosen])
    duplicates = np.array([float(row.get(f"{flow}_duplicates") or 0) for row in chosen])
    gaps, spans = (_measured(chosen, f"{flow}_{column}") for column in ("sender_gap_ms", "lost_span_ms"))
    return (
        len(chosen),
        float(np.median(interruption)),
        float(np.percentile(interruption, 95)),
        float(np.median(lost)),
        float(np.median(duplicates)),
        float(np.median(gaps)) if gaps else float("nan"),
        float(np.median(spans)) if spans else float("nan"),
    )


def _measured(rows: list[dict[str, str]], column: str) -> list[float]:
    """``column``'s values where it has one (empty when a reordered or duplicated packet ended the
    interruption)."""
    return [float(value) for row in rows if (value := row.get(column)) not in (None, "", "None")]


def announced_losses(run: Path, flow: str) -> list[int]:
    """Per announced move (an ``l2_trigger``): ``flow``'s packets sent from the trigger to
    :data:`reports.announced.SETTLED_S` (0.5 s) after the move that never arrived. handovers.csv's ``lost``
    runs to the next move, so it also counts packets in flight when the *next* link goes down; this does
    not."""
    import json

    events = [json.loads(line) for line in (run / "traces" / "scenario.jsonl").read_text().splitlines()]
    triggers = {e["handover"]: e["t"] for e in events if e["event"] == "l2_trigger"}
    moves = {e["handover"]: e["t"] for e in events if e["event"] == "move_started"}
    with (run / "probes" / f"{flow}.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    received = {row["seq"] for row in rows if row["recv_t"]}
    lost = np.array([float(r["send_t"]) for r in rows if not r["recv_t"] and r["seq"] not in received])
    return [
        int(np.count_nonzero((lost >= start) & (lost < moves[number] + SETTLED_S)))
        for number, start in sorted(triggers.items())
        if number in moves
    ]


def print_announced(parent: Path, names: Iterable[str]) -> None:
    print("\nannounced moves, packets lost from the L2 trigger to 0.5 s after the move:")
    for name in names:
        for flow in FLOWS:
            per_move = announced_losses(parent / name, flow)
            if per_move:
                zero = sum(1 for count in per_move if count == 0)
                print(
                    f"{name:<17} {flow:<8} moves {len(per_move):>3}  median {np.median(per_move):>4.0f}  "
                    f"max {max(per_move):>4}  with no loss {zero}/{len(per_move)}"
                )


def print_table(label: str, rows: list[dict[str, str]]) -> dict[str, float]:
    medians: dict[str, float] = {}
    for flow in FLOWS:
        moves, median, p95, lost, duplicates, gap, span = figures(rows, flow)
        medians[flow] = median
        print(
            f"{label:<28} {flow:<8} {moves:>5} {median:>10.1f} {p95:>8.1f} {lost:>8.0f} {duplicates:>6.0f}"
            f" {gap:>13.2f} {span:>12.2f}"
        )
    return medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.handover_interruption",
        description="Handover interruption per datapath and handoff mode, in one invocation: per flow "
        "(v4/v6, down/up) the median and p95 interruption, the median packets lost and duplicated per move "
        "and the probe sender's median gap and lost span, for all moves and for FA1 → FA2; then the "
        "advertisement-only / link-event ratio, the announced moves' losses and the standard moves' latency "
        "budget.",
    )
    parser.add_argument("--cycles", type=int, default=21, help="link-event cycles per mode (default 21)")
    parser.add_argument("--advert-cycles", type=int, default=7, help="advertisement-only cycles (default 7)")
    parser.add_argument(
        "--adv-interval",
        type=float,
        default=1.0,
        help="the FAs' advertisement interval for the advertisement-only run, seconds (default 1.0)",
    )
    parser.add_argument("--dwell", type=float, default=2.0, help="seconds on each attachment (default 2.0)")
    parser.add_argument("--rate", type=float, default=1000.0, help="probe packets/s per flow (default 1000)")
    parser.add_argument("--pcap", action="store_true", help="capture packets as well (more load)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs (default: temporary)")
    parser.add_argument("--analyse", type=Path, default=None, help="only print the figures of earlier runs")
    parser.add_argument(
        "--datapath",
        nargs="+",
        default=["userspace"],
        choices=["userspace", "ebpf", "kernel", "auto"],
        help="backends, one set of runs each (default userspace; kernel needs a kernel with ipip/sit, "
        "e.g. the VM: the scenario says what is missing and the benchmark exits 2; it skips pre and "
        "make-before-break, which need simultaneous bindings)",
    )
    parser.add_argument(
        "--agent-priority",
        nargs="+",
        type=agent_priority,
        default=[DEFAULT_AGENT_PRIORITY],
        metavar="N",
        help=f"the agents' SCHED_FIFO priority, 0 = normal scheduling (default {DEFAULT_AGENT_PRIORITY}); "
        "several: one set of runs each (e.g. 10 0: with and without)",
    )
    parser.add_argument(
        "--modes", nargs="+", default=list(MODES), choices=MODES, help="which runs to make (default all)"
    )
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.advert_cycles < 0:
        parser.error("--cycles must be at least 1 and --advert-cycles at least 0")
    base = args.analyse or args.out or Path(tempfile.mkdtemp(prefix="handover-bench-"))
    status = 0
    for datapath in args.datapath:
        for priority in args.agent_priority:
            parent = base / datapath if len(args.datapath) > 1 else base
            parent = parent / f"priority-{priority}" if len(args.agent_priority) > 1 else parent
            code = one_backend(parent, datapath, priority, args)
            if code == 2:
                return 2
            status = status or code
    return status


def one_backend(parent: Path, datapath: str, priority: int, args: argparse.Namespace) -> int:
    """The runs (standard, pre, post, make-before-break, advertisement-only) with one datapath backend and
    agent priority, and their tables."""
    link_moves = ["--detection", "link", "--moves", str(args.cycles)]
    plans = [(name, [*link_moves, "--handoff", name]) for name in ("standard", *ANNOUNCED)]
    if args.advert_cycles:
        plans.append(("advert", ["--detection", "advert", "--moves", str(args.advert_cycles)]))
    plans = [(name, extra) for name, extra in plans if name in args.modes]
    if datapath == "kernel":  # its home agent keeps one binding per node: no S-bit handoffs
        skipped = [name for name, _extra in plans if name in S_HANDOFFS]
        if skipped:
            print(
                f"handover_interruption: kernel: {', '.join(skipped)} skipped (needs simultaneous bindings)"
            )
        plans = [(name, extra) for name, extra in plans if name not in S_HANDOFFS]
    rows: dict[str, list[dict[str, str]]] = {}
    status = 0
    for name, extra in plans:
        out = parent / name
        chosen = ("--datapath", datapath, "--agent-priority", str(priority))
        run = (0, 0.0) if args.analyse else run_scenario(out, args, *extra, *chosen)
        code, wall = run
        if not (out / "handovers.csv").exists():
            print(f"handover_interruption: {name}: no handovers.csv (scenario exit {code})", file=sys.stderr)
            return 2
        status = status or (0 if code == 0 else 1)
        rows[name] = load_rows(out)
        print(
            f"run {datapath} {name}, agent priority {priority}: {out} (exit {code}, {wall:.0f} s wall, "
            f"{args.rate:g} packets/s each)"
        )
    print()
    print(f"{datapath}, agents at " + (f"SCHED_FIFO {priority}" if priority else "normal priority"))
    heading = (
        f"{datapath}: run / moves",
        "flow",
        "moves",
        "median ms",
        "p95 ms",
        "lost",
        "dups",
        "sender gap ms",
        "lost span ms",
    )
    print("{:<28} {:<8} {:>5} {:>10} {:>8} {:>8} {:>6} {:>13} {:>12}".format(*heading))
    link: dict[str, float] = {}
    for name, run_rows in rows.items():
        fa_to_fa = [row for row in run_rows if row["from"] == "fa1" and row["to"] == "fa2"]
        if name in ANNOUNCED:
            fa_to_fa = [row for row in fa_to_fa if row.get("handoff") == name]
        medians = print_table(f"{name}: all moves", run_rows)
        if name == "standard":
            link = medians
        print_table(f"{name}: fa1 → fa2", fa_to_fa)
    if "advert" in rows and link:
        advert = {flow: figures(rows["advert"], flow)[1] for flow in FLOWS}
        ratios = ", ".join(f"{flow} {advert[flow] / link[flow]:.0f}×" for flow in FLOWS if link[flow] > 0)
        print(f"\nadvertisement-only / link-event median interruption (all moves): {ratios}")
    print_announced(parent, [name for name in ANNOUNCED if name in rows])
    if "make-before-break" in rows:
        print_bicast(rows["make-before-break"])
    if "standard" in rows:
        print_budget(parent / "standard")
    return status


def print_bicast(rows: list[dict[str, str]]) -> None:
    """Make-before-break moves: copies received during the overlap and after the old binding went."""
    chosen = [row for row in rows if row.get("handoff") == "make-before-break"]
    print("\nmake-before-break moves, duplicates per move (overlap / after the old binding was removed):")
    for flow in ("v4-down", "v6-down"):
        after = [int(row.get(f"{flow}_duplicates_after") or 0) for row in chosen]
        overlap = [
            int(row.get(f"{flow}_duplicates") or 0) - late for row, late in zip(chosen, after, strict=True)
        ]
        if chosen:
            print(
                f"  {flow:<8} moves {len(chosen):>3}  overlap median {np.median(overlap):>5.0f} "
                f"min {min(overlap):>5}  after: max {max(after)}"
            )


def print_budget(run: Path) -> None:
    """The latency budget of the standard run (metrics.json, reports.budget): median and p95 per step."""
    import json

    try:
        steps = json.loads((run / "metrics.json").read_text()).get("budget") or []
    except (OSError, ValueError):
        return
    print(f"\nlatency budget, standard link-event moves to an FA ({run.name}):")
    for step in steps:
        median, p95 = step.get("median_ms"), step.get("p95_ms")
        if median is None:
            continue
        name, target = step["step"], step["target_ms"]
        print(f"  {name:<50} target {target:>3} ms  median {median:>6.2f}  p95 {p95:>6.2f}")


if __name__ == "__main__":
    sys.exit(main())
