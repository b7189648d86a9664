"""A deregistration run's outputs: metrics.json, plots/state_timeline.png and report.md (design.md §7)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from agents.mip.common.trace_schema import TraceEvent
from reports.metrics import RunResult
from reports.render import _write, metrics_json
from reports.rundir import Run

STATE_ROWS = (
    ("binding mn1", TraceEvent.BINDING_ADDED, TraceEvent.BINDING_REMOVED, "home_address", "hoa"),
    ("proxy ARP mn1", TraceEvent.PROXY_ARP_STARTED, TraceEvent.PROXY_ARP_STOPPED, "home_address", "hoa"),
    ("binding mn2", TraceEvent.BINDING_ADDED, TraceEvent.BINDING_REMOVED, "home_address", "hoa2"),
    ("proxy ARP mn2", TraceEvent.PROXY_ARP_STARTED, TraceEvent.PROXY_ARP_STOPPED, "home_address", "hoa2"),
)
"""(row label, HA event that starts it, event that ends it, field to match, meta key of its value)."""


def write_outputs(run: Run, result: RunResult) -> None:
    plots = run.path / "plots"
    plots.mkdir(exist_ok=True)
    state_timeline(run, plots / "state_timeline.png")
    _write(run.path / "metrics.json", metrics_json(result))
    _write(run.path / "report.md", report_markdown(run, result))


def intervals(run: Run, start: str, end: str, match: dict[str, Any]) -> list[tuple[float, float]]:
    """Times (s after t0) between a ``start`` event and the next ``end`` event of the HA's trace."""
    spans, opened = [], None
    names = {start, end, TraceEvent.BINDING_UPDATED} if start == TraceEvent.BINDING_ADDED else {start, end}
    for event in run.events(run.home_agent, *names):
        if any(event.get(k) != v for k, v in match.items()):
            continue
        if event["event"] in (start, TraceEvent.BINDING_UPDATED) and opened is None:
            opened = event["t"]
        elif event["event"] == end and opened is not None:
            spans.append((opened - run.t0, event["t"] - opened))
            opened = None
    if opened is not None:
        last = max((e["t"] for events in run.traces.values() for e in events), default=opened)
        spans.append((opened - run.t0, last - opened))
    return spans


def prefix_intervals(run: Run, hoa: str, prefix: str) -> list[tuple[float, float]]:
    spans, opened = [], None
    for event in run.events(
        run.home_agent,
        TraceEvent.PREFIX_REGISTERED,
        TraceEvent.PREFIX_DEREGISTERED,
        TraceEvent.BINDING_REMOVED,
    ):
        if event.get("home_address") != hoa:
            continue
        mentioned = (
            event["event"] == TraceEvent.BINDING_REMOVED or event.get("prefix", {}).get("prefix") == prefix
        )
        if not mentioned:
            continue
        if event["event"] == TraceEvent.PREFIX_REGISTERED and opened is None:
            opened = event["t"]
        elif event["event"] != TraceEvent.PREFIX_REGISTERED and opened is not None:
            spans.append((opened - run.t0, event["t"] - opened))
            opened = None
    if opened is not None:
        last = max((e["t"] for events in run.traces.values() for e in events), default=opened)
        spans.append((opened - run.t0, last - opened))
    return spans


def state_timeline(run: Run, path: Path) -> None:
    """Per phase: what the HA held (from its trace) above what the probes delivered."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = run.meta
    rows: list[tuple[str, list[tuple[float, float]]]] = []
    for label, start, end, key, meta_key in STATE_ROWS:
        rows.append(
            (
                label,
                intervals(
                    run,
                    start,
                    end,
                    {key: meta.get("home_address" if meta_key == "hoa" else "colocated_home_address")},
                ),
            )
        )
    for prefix in meta.get("prefixes", []):
        rows.append((f"prefix {prefix}", prefix_intervals(run, str(meta.get("home_address")), str(prefix))))
    flows = list(run.flows)
    figure, axis = plt.subplots(figsize=(12, 0.45 * (len(rows) + len(flows)) + 1.6))
    for index, (_label, spans) in enumerate(rows):
        axis.broken_barh(spans, (index - 0.35, 0.7), color="tab:blue")
    for offset, name in enumerate(flows, start=len(rows)):
        flow = run.flows[name]
        received = flow.recv_t[~np.isnan(flow.recv_t)] - run.t0
        axis.plot(received, np.full(received.shape, offset), "|", color="tab:green", markersize=8, alpha=0.4)
    labels = [label for label, _ in rows] + [f"delivered {name}" for name in flows]
    axis.set_yticks(range(len(labels)), labels)
    axis.set_ylim(len(labels) - 0.5, -1.9)  # top rows hold the phase names
    _shade_phases(run, axis)
    axis.set_xlabel("seconds since the run started")
    axis.set_title("State at the home agent (blue, from its trace) vs probe packets delivered (green)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _shade_phases(run: Run, axis: Any) -> None:
    starts = {e["phase"]: e["t"] - run.t0 for e in run.events("scenario", TraceEvent.PHASE_STARTED)}
    ends = {e["phase"]: e["t"] - run.t0 for e in run.events("scenario", TraceEvent.PHASE_FINISHED)}
    for index, (phase, start) in enumerate(starts.items()):
        end = ends.get(phase, start)
        axis.axvspan(start, end, color="grey" if index % 2 else "white", alpha=0.12)
        axis.text((start + end) / 2, -0.7 - 0.6 * (index % 2), phase, ha="center", va="bottom", fontsize=8)


def report_markdown(run: Run, result: RunResult) -> str:
    meta, figures = run.meta, result.metrics.get("figures", {})
    lines = [
        f"# Deregistration run {run.path.name}",
        "",
        f"HA maximum lifetime {meta.get('ha_max_lifetime')} s "
        f"(the MNs ask for {meta.get('requested_lifetime')} s); "
        f"probes at {meta.get('rate')} packets/s; datapath {meta.get('datapath')}; wall time "
        f"{meta.get('wall_time_s')} s.",
        "",
        "![state at the HA vs probe delivery](plots/state_timeline.png)",
        "",
        "## Figures",
        "",
    ]
    for phase, ms in figures.get("deregistration_ms", {}).items():
        lines.append(f"- {phase}: deregistration request → HA state removed: {_ms(ms)}")
    hole = figures.get("black_hole")
    if hole:
        lines.append(
            f"- silent death (black hole): the HA tunnelled its last packet for the dead node "
            f"{hole['measured_s']} s after the kill (home-link capture); the remaining lifetime was "
            f"{hole['remaining_lifetime_s']} s (granted {meta.get('ha_max_lifetime')} s); the HA's trace has "
            f"the expiry at {hole['ha_expiry_s']} s, the scenario saw the binding gone at "
            f"{hole['polled_gone_s']} s; FA visitor entry removed {hole.get('fa_visitor_skew_s')} s after it"
        )
    renewals = figures.get("renewals")
    if renewals:
        lines.append(
            f"- renewals: {renewals['count']}; packets lost across them {renewals['lost']}; "
            f"longest gap between two packets (ms) {renewals['max_gap_ms']}"
        )
    lines += ["", "## Verdicts", "", "| | expectation | detail |", "|---|---|---|"]
    for verdict in result.verdicts:
        detail = verdict.detail.replace("|", "\\|")
        lines.append(f"| {'✔' if verdict.passed else '✘'} | {verdict.name} | {detail} |")
    met = sum(v.passed for v in result.verdicts)
    lines += ["", f"**{'PASS' if result.overall_passed else 'FAIL'}**: {met} of {len(result.verdicts)} met."]
    if run.notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in run.notes]]
    return "\n".join(lines) + "\n"


def _ms(value: float | None) -> str:
    return "not measured" if value is None or not math.isfinite(value) else f"{value:.1f} ms"
