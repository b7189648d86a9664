"""``report.md``: what ran, what was seen per handover, and whether each expectation held."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from reports.budget import budget
from reports.handovers import STEP_COLUMNS
from reports.metrics import META_KEYS, RunResult
from reports.rundir import Run
from reports.table import FAIL_MARK, PASS_MARK, overall_line

STEP_NAMES = {
    "l2_trigger_ms": "L2 trigger announced (harness, RFC 4881)",
    "pre_ready_ms": "pre-registration accepted (MN)",
    "link_down_ms": "link down (harness)",
    "link_up_ms": "link up (harness)",
    "pre_attached_ms": "routes via the pre-registered FA (MN)",
    "fa_attached_ms": "buffer flushed, visitor attached (new FA)",
    "movement_detected_ms": "movement detected (MN)",
    "solicitation_sent_ms": "agent solicitation sent (MN)",
    "agent_discovered_ms": "advertisement heard, agent discovered (MN)",
    "rrq_sent_ms": "registration request sent (MN)",
    "fa_rrq_relayed_ms": "request relayed (FA)",
    "ha_rrq_received_ms": "request received (HA)",
    "ha_binding_ms": "binding changed (HA)",
    "ha_rrp_sent_ms": "reply sent (HA)",
    "fa_rrp_relayed_ms": "reply relayed (FA)",
    "rrp_received_ms": "reply received (MN)",
    "registration_accepted_ms": "registration accepted (MN)",
    "tunnel_up_ms": "tunnel up (MN)",
    "ha_old_binding_removed_ms": "old binding removed (HA)",
    "move_finished_ms": "move finished (harness)",
}


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    headers = list(headers)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


TABLED_ELSEWHERE = ("versions", "kernel_features")
"""meta.json keys the "What ran" section shows on lines of their own, below the table."""


def _meta_section(run: Run, result: RunResult) -> list[str]:
    meta = run.meta
    keys = [key for key in META_KEYS if key not in TABLED_ELSEWHERE]
    rows: list[tuple[str, object]] = []
    for key in keys:
        if key not in meta:
            continue
        value: object = meta[key]
        if key == "argv" and isinstance(value, list):
            value = "`" + " ".join(str(item) for item in value) + "`"
        rows.append((key, value))
    features = meta.get("kernel_features")
    if isinstance(features, dict):
        rows.append(
            (
                "kernel features",
                ", ".join(
                    f"{k}={'yes' if v else 'no'}" if isinstance(v, bool) else f"{k}={v}"
                    for k, v in features.items()
                ),
            )
        )
    versions = meta.get("versions")
    if isinstance(versions, dict):
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    return ["## What ran", "", *_table(["", "value"], rows), ""]


def _flows_section(result: RunResult) -> list[str]:
    flows = result.metrics["flows"]
    summary = result.metrics["summary"]["by_flow"]
    headers = [
        "flow",
        "family",
        "dir",
        "sent",
        "received",
        "lost",
        "dup",
        "reordered",
        "delay median ms",
        "delay p95 ms",
        "delay max ms",
        "interruption median ms",
        "interruption p95 ms",
        "lost median",
    ]
    rows = [
        [
            name,
            f"IPv{s['family']}",
            s["direction"],
            s["sent"],
            s["received"],
            s["lost"],
            s["duplicates"],
            s["reordered"],
            s["delay_ms_median"],
            s["delay_ms_p95"],
            s["delay_ms_max"],
            summary[name]["interruption_ms_median"],
            summary[name]["interruption_ms_p95"],
            summary[name]["lost_median"],
        ]
        for name, s in flows.items()
    ]
    return ["## Probe flows", "", *_table(headers, rows), ""]


def _interruption_text(row: dict[str, Any], flow: str) -> str:
    if not row[f"{flow}_restored"]:
        return f"{FAIL_MARK} never restored"
    return _cell(row[f"{flow}_interruption_ms"])


def _budget_section(result: RunResult) -> list[str]:
    """The latency budget of standard link-event handovers (reports.budget), when there are any."""
    entries = budget(result.handovers)
    if not any(entry["measured"] for entry in entries):
        return []
    lines = ["## Latency budget (standard link-event handovers to an FA, medians)", ""]
    rows = [
        [
            e["step"],
            e["target_ms"],
            e["median_ms"],
            e["p95_ms"],
            e["measured"],
            "over" if e["over_target"] else "",
        ]
        for e in entries
    ]
    lines += _table(["step", "target ms", "median ms", "p95 ms", "handovers", ""], rows)
    return [*lines, ""]


def _handover_section(run: Run, result: RunResult) -> list[str]:
    lines = ["## Handovers", ""]
    if not result.handovers:
        return [*lines, "No `move_started` event in `traces/scenario.jsonl`: no handover to report.", ""]
    headers = ["#", "move", "detection"]
    for flow in result.flows:
        headers += [f"{flow} ms", f"{flow} lost"]
    headers.append("registration RTT ms")
    rows = []
    for row in result.handovers:
        cells: list[object] = [row["handover"], f"{row['from']}→{row['to']}", row["detection"]]
        for flow in result.flows:
            cells += [_interruption_text(row, flow), row[f"{flow}_lost"]]
        cells.append(row["registration_rtt_ms"])
        rows.append(cells)
    lines += [*_table(headers, rows), ""]
    lines += [
        "Interruption: last packet received via the old attachment → first packet sent after the move and "
        "received via the new one (the longest silence in between). Lost: sent from this move to the next.",
        "",
    ]
    for row in result.handovers:
        heading = f"### Handover {row['handover']}: {row['from']} → {row['to']}"
        lines += [f"{heading} ({row['detection']} detection, t = {row['t_move_s']:.3f} s)", ""]
        flow_rows = []
        for flow in result.flows:
            stats = result.metrics["flows"][flow]
            flow_rows.append(
                [
                    flow,
                    f"IPv{stats['family']}",
                    stats["direction"],
                    _interruption_text(row, flow),
                    row[f"{flow}_lost"],
                    row[f"{flow}_first_rx_ms"],
                ]
            )
        lines += _table(
            ["flow", "family", "direction", "interruption ms", "lost", "first new packet ms"], flow_rows
        )
        steps = [[STEP_NAMES[column], row[column]] for column in STEP_COLUMNS if row[column] is not None]
        lines += [
            "",
            f"Registration: RTT {_cell(row['registration_rtt_ms'])} ms, "
            f"{row['registration_attempts']} request(s), reply code {_cell(row['rrp_code'])}; "
            f"movement reason {_cell(row['movement_reason'])}.",
            "",
        ]
        if steps:
            lines += _table(["step (first after the move)", "ms after move"], steps)
        else:
            lines.append("No trace event in this handover's window.")
        lines.append("")
    return lines


def render_report(run: Run, result: RunResult, plot_names: list[str]) -> str:
    """The Markdown text of ``report.md`` (links are relative to the run folder)."""
    title = run.meta.get("scenario", "run")
    lines = [f"# {title} run: {run.path.name}", "", f"**{overall_line(result)}**", ""]
    lines += _meta_section(run, result)
    lines += _flows_section(result)
    lines += _handover_section(run, result)
    lines += _budget_section(result)
    lines += ["## Expectations", ""]
    lines += [
        f"- {PASS_MARK if v.passed else FAIL_MARK} **{v.name}**" + (f": {v.detail}" if v.detail else "")
        for v in result.verdicts
    ]
    lines += ["", "## Plots", ""]
    lines += [f"![{name}](plots/{name})" for name in plot_names]
    lines += ["", "## Captures", ""]
    lines += [f"- [pcaps/{name}](pcaps/{name})" for name in run.pcaps] or ["No capture in `pcaps/`."]
    if result.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in result.notes]
    lines += [
        "",
        "## Re-rendering",
        "",
        "Everything here is computed from this folder alone (no root, no Mininet). To re-render "
        "`metrics.json`, `handovers.csv`, `plots/` and this file:",
        "",
        "```",
        f"python -m reports {run.path}",
        "```",
        "",
        "`--json` prints the metrics as JSON; the exit status is 0 when every expectation holds, "
        "1 otherwise.",
        "",
    ]
    return "\n".join(lines)
