"""From a loaded run to metrics: flow statistics, handover rows, summary, verdicts (writes no file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reports.announced import pre_checks
from reports.bicast import bicast_checks
from reports.budget import budget
from reports.handovers import build_handovers, flow_timelines
from reports.probes import flow_stats
from reports.rundir import Run
from reports.windows import FlowTimeline

META_KEYS = (
    "scenario",
    "argv",
    "seed",
    "datapath",
    "detection",
    "adv_interval",
    "rate",
    "moves",
    "dwell",
    "git_rev",
    "versions",
    "kernel_features",
    "start_utc",
    "end_utc",
    "wall_time_s",
    "t0",
    "mobile_node",
    "home_agent",
    "flows",
)


@dataclass(frozen=True)
class Verdict:
    """One expectation and whether the run met it."""

    name: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass
class RunResult:
    """Everything computed for a run: ``metrics`` is what ``metrics.json`` holds."""

    run_dir: Path
    metrics: dict[str, Any]
    handovers: list[dict[str, Any]]
    verdicts: list[Verdict]
    overall_passed: bool
    flows: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    array = np.asarray(values, dtype=np.float64)
    return round(float(np.median(array)), 3), round(float(np.percentile(array, 95)), 3)


def _flow_summary(rows: list[dict[str, Any]], flow: str) -> dict[str, Any]:
    interruptions = [r[f"{flow}_interruption_ms"] for r in rows if r[f"{flow}_interruption_ms"] is not None]
    lost = [float(r[f"{flow}_lost"]) for r in rows]
    median, p95 = _stats(interruptions)
    lost_median, _ = _stats(lost)
    return {
        "handovers": len(rows),
        "measured": len(interruptions),
        "restored": sum(1 for r in rows if r[f"{flow}_restored"]),
        "interruption_ms_median": median,
        "interruption_ms_p95": p95,
        "lost_median": lost_median,
    }


def summarise(rows: list[dict[str, Any]], flows: dict[str, int]) -> dict[str, Any]:
    """Interruption median/p95 (ms) and median loss per flow, per detection mode and per family.

    ``flows`` maps each flow name to its address family.
    """
    detections = sorted({str(r["detection"]) for r in rows})
    by_family: dict[str, Any] = {}
    for family in sorted(set(flows.values())):
        members = [name for name, fam in flows.items() if fam == family]
        values = [
            r[f"{n}_interruption_ms"] for r in rows for n in members if r[f"{n}_interruption_ms"] is not None
        ]
        median, p95 = _stats(values)
        by_family[str(family)] = {
            "flows": members,
            "interruption_ms_median": median,
            "interruption_ms_p95": p95,
        }
    return {
        "by_flow": {name: _flow_summary(rows, name) for name in flows},
        "by_detection": {
            detection: {
                name: _flow_summary([r for r in rows if str(r["detection"]) == detection], name)
                for name in flows
            }
            for detection in detections
        },
        "by_family": by_family,
    }


def _describe(row: dict[str, Any]) -> str:
    return f"handover {row['handover']} ({row['from']}→{row['to']})"


def judge(
    run: Run,
    rows: list[dict[str, Any]],
    stats: dict[str, dict[str, Any]],
    timelines: dict[str, FlowTimeline],
) -> list[Verdict]:
    """The built-in expectations, then the harness's own from ``meta.json``."""
    verdicts: list[Verdict] = []
    for flow, flow_stat in stats.items():
        received = flow_stat["received"]
        verdicts.append(
            Verdict(
                f"{flow} received packets",
                received > 0,
                f"{received} of {flow_stat['sent']} packets received",
            )
        )
    for flow in stats:
        missing = [_describe(r) for r in rows if not r[f"{flow}_restored"]]
        detail = f"restored after all {len(rows)} moves"
        if missing:
            detail = "never restored after " + ", ".join(missing)
        verdicts.append(Verdict(f"{flow} restored after every move", not missing, detail))
    problems = []
    for row in rows:
        codes = row["rrp_codes"]
        if not codes:
            problems.append(f"{_describe(row)}: no registration reply")
        elif any(not isinstance(code, int) or code >= 2 for code in codes):
            problems.append(f"{_describe(row)}: reply codes {codes}")
    verdicts.append(
        Verdict(
            "every registration accepted",
            not problems,
            "; ".join(problems) if problems else f"{len(rows)} handovers, every reply code < 2",
        )
    )
    link_moves = [row for row in rows if row.get("detection") == "link"]
    if link_moves:
        missed = [str(row["handover"]) for row in link_moves if row.get("movement_reason") != "link"]
        verdicts.append(
            Verdict(
                "every carrier drop seen by the mobile node",
                not missed,
                f"handovers {', '.join(missed)} detected otherwise"
                if missed
                else f"{len(link_moves)} link-event moves, each detected by its link event",
            )
        )
    expected_moves = run.meta.get("moves")
    if isinstance(expected_moves, int):
        verdicts.append(
            Verdict(
                "every move recorded",
                len(rows) == expected_moves,
                f"{len(rows)} move_started events for {expected_moves} moves",
            )
        )
    for name, passed, detail in bicast_checks(rows, list(stats), run.meta.get("handoff")):
        verdicts.append(Verdict(name, passed, detail))
    for name, passed, detail in pre_checks(rows, timelines, run.meta.get("handoff")):
        verdicts.append(Verdict(name, passed, detail))
    for item in run.meta.get("expectations") or []:
        verdicts.append(Verdict(str(item["name"]), bool(item["passed"]), str(item.get("detail") or "")))
    return verdicts


def analyse(run: Run) -> RunResult:
    """Compute every metric of ``run``; pure (reads nothing more, writes nothing)."""
    stats = {name: flow_stats(flow) for name, flow in run.flows.items()}
    timelines = flow_timelines(run)
    rows = build_handovers(run, timelines)
    verdicts = judge(run, rows, stats, timelines)
    overall = all(verdict.passed for verdict in verdicts)
    metrics: dict[str, Any] = {
        "run": {key: run.meta[key] for key in META_KEYS if key in run.meta},
        "flows": stats,
        "handovers": rows,
        "summary": summarise(rows, {name: flow.family for name, flow in run.flows.items()}),
        "budget": budget(rows),
        "verdicts": [verdict.to_dict() for verdict in verdicts],
        "overall_passed": overall,
        "notes": list(run.notes),
    }
    return RunResult(
        run_dir=run.path,
        metrics=metrics,
        handovers=rows,
        verdicts=verdicts,
        overall_passed=overall,
        flows=list(run.flows),
        notes=list(run.notes),
    )
