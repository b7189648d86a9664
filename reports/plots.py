"""PNG plots of a run, drawn with matplotlib's Agg canvas (no display, no pyplot global state).

* ``timeline.png``: per-packet one-way delay over time for each flow, coloured by attachment, lost packets
  ticked at the bottom, moves (from→to) and accepted registrations marked;
* ``interruption.png``: interruption per handover, IPv4 vs IPv6, down and up;
* ``registration_rtt.png``: registration round trip per handover;
* ``cdf.png``: CDF of the interruptions per address family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from agents.mip.common.trace_schema import TraceEvent
from reports.metrics import RunResult
from reports.probes import FlowData
from reports.rundir import Run

FAMILY_COLOURS = {4: "#1f77b4", 6: "#ff7f0e", 0: "#7f7f7f"}
PATH_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
LOST_COLOUR = "#d62728"
REGISTRATION_COLOUR = "#006400"
DPI = 110


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI)
    return path


def _no_data(axes: Axes, text: str = "no data") -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="#777777")


def render_plots(run: Run, result: RunResult, out_dir: Path) -> list[Path]:
    """Draw every plot into ``out_dir`` (created if needed); returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        timeline(run, result, out_dir / "timeline.png"),
        interruption(run, result, out_dir / "interruption.png"),
        registration_rtt(result, out_dir / "registration_rtt.png"),
        cdf(run, result, out_dir / "cdf.png"),
    ]


def _draw_flow(axes: Axes, flow: FlowData, t0: float, legend_paths: dict[str, str]) -> None:
    received = ~np.isnan(flow.recv_t)
    x = flow.send_t - t0
    delay = (flow.recv_t - flow.send_t) * 1000.0
    for code, label in enumerate(flow.path_labels):
        chosen = received & (flow.path_codes == code)
        if np.any(chosen):
            colour = legend_paths.setdefault(label, PATH_COLOURS[len(legend_paths) % len(PATH_COLOURS)])
            axes.plot(
                x[chosen],
                delay[chosen],
                linestyle="none",
                marker=".",
                markersize=1.5,
                color=colour,
            )
    lost = ~received
    if np.any(lost):
        axes.plot(
            x[lost],
            np.zeros(int(np.count_nonzero(lost))),
            linestyle="none",
            marker="|",
            markersize=5,
            color=LOST_COLOUR,
        )
    if not flow.seq.size:
        _no_data(axes, "no packets")
    axes.set_ylabel(f"{flow.name}\ndelay ms")
    axes.grid(True, alpha=0.3)


def timeline(run: Run, result: RunResult, path: Path) -> Path:
    flows = list(run.flows.values())
    rows = max(1, len(flows))
    figure = Figure(figsize=(11, 1.9 * rows + 1.0))
    axes_list = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    legend_paths: dict[str, str] = {}
    for axes, flow in zip(axes_list, flows, strict=False):
        _draw_flow(axes, flow, run.t0, legend_paths)
    accepted = run.events(run.mobile_node, TraceEvent.REGISTRATION_ACCEPTED, TraceEvent.DEREGISTERED)
    registrations = [event["t"] - run.t0 for event in accepted]
    for axes in axes_list:
        for row in result.handovers:
            axes.axvline(row["t_move"] - run.t0, color="black", linestyle="--", linewidth=0.8)
        for t in registrations:
            axes.axvline(t, color=REGISTRATION_COLOUR, linestyle=":", linewidth=0.8)
    top = axes_list[0]
    for row in result.handovers:
        top.annotate(
            f"{row['from']}→{row['to']}",
            xy=(row["t_move"] - run.t0, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, 2),
            textcoords="offset points",
            fontsize=8,
            rotation=0,
            va="bottom",
        )
    handles = [
        Line2D([], [], linestyle="none", marker="o", markersize=5, color=colour, label=label)
        for label, colour in legend_paths.items()
    ]
    if any(np.isnan(flow.recv_t).any() for flow in flows):
        handles.append(
            Line2D([], [], linestyle="none", marker="|", markersize=8, color=LOST_COLOUR, label="lost")
        )
    if result.handovers:
        handles.append(Line2D([], [], color="black", linestyle="--", linewidth=0.8, label="move"))
    if registrations:
        handles.append(Line2D([], [], color=REGISTRATION_COLOUR, linestyle=":", label="registration"))
    if handles:
        figure.legend(handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=8)
    axes_list[-1].set_xlabel("seconds since t0 (send time)")
    figure.subplots_adjust(left=0.09, right=0.98, top=0.94, bottom=0.12 if rows > 1 else 0.25, hspace=0.15)
    return _save(figure, path)


def _handover_labels(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{row['handover']}\n{row['from']}→{row['to']}" for row in rows]


def interruption(run: Run, result: RunResult, path: Path) -> Path:
    rows = result.handovers
    order = sorted(run.flows, key=lambda name: (run.flows[name].direction != "down", run.flows[name].family))
    figure = Figure(figsize=(max(6.0, 1.6 * len(rows) + 3), 4.5))
    axes = figure.subplots()
    width = 0.8 / max(1, len(order))
    positions = np.arange(len(rows), dtype=np.float64)
    for slot, name in enumerate(order):
        flow = run.flows[name]
        values = [row[f"{name}_interruption_ms"] for row in rows]
        heights = [np.nan if value is None else value for value in values]
        offsets = positions - 0.4 + width * (slot + 0.5)
        axes.bar(
            offsets,
            heights,
            width,
            color=FAMILY_COLOURS.get(flow.family, "#7f7f7f"),
            hatch="//" if flow.direction == "up" else None,
            edgecolor="white",
            label=name,
        )
        for x, row in zip(offsets, rows, strict=True):
            if not row[f"{name}_restored"]:
                axes.text(x, 0, "never", rotation=90, ha="center", va="bottom", fontsize=7, color="#d62728")
    axes.set_xticks(positions, _handover_labels(rows))
    axes.set_ylabel("interruption ms")
    axes.set_title("Interruption per handover (IPv4 vs IPv6; hatched = up)")
    axes.grid(True, axis="y", alpha=0.3)
    if rows:
        axes.legend(fontsize=8)
    else:
        _no_data(axes)
    figure.tight_layout()
    return _save(figure, path)


def registration_rtt(result: RunResult, path: Path) -> Path:
    rows = result.handovers
    figure = Figure(figsize=(max(6.0, 1.2 * len(rows) + 3), 4.0))
    axes = figure.subplots()
    values = [np.nan if row["registration_rtt_ms"] is None else row["registration_rtt_ms"] for row in rows]
    positions = np.arange(len(rows), dtype=np.float64)
    axes.bar(positions, values, 0.6, color="#2ca02c")
    for x, value in zip(positions, values, strict=True):
        axes.text(
            x,
            0 if np.isnan(value) else value,
            "-" if np.isnan(value) else f"{value:.1f}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axes.set_xticks(positions, _handover_labels(rows))
    axes.set_ylabel("registration RTT ms (rrq_sent → rrp_received)")
    axes.set_title("Registration round trip per handover")
    axes.grid(True, axis="y", alpha=0.3)
    if not rows or all(np.isnan(values)):
        _no_data(axes)
    figure.tight_layout()
    return _save(figure, path)


def cdf(run: Run, result: RunResult, path: Path) -> Path:
    figure = Figure(figsize=(6.5, 4.5))
    axes = figure.subplots()
    drawn = False
    for family in sorted({flow.family for flow in run.flows.values()}):
        names = [name for name, flow in run.flows.items() if flow.family == family]
        values = np.sort(
            np.asarray(
                [
                    row[f"{n}_interruption_ms"]
                    for row in result.handovers
                    for n in names
                    if row[f"{n}_interruption_ms"] is not None
                ],
                dtype=np.float64,
            )
        )
        if values.size:
            fraction = np.arange(1, values.size + 1) / values.size
            axes.step(
                np.concatenate(([0.0], values)),
                np.concatenate(([0.0], fraction)),
                where="post",
                color=FAMILY_COLOURS.get(family, "#7f7f7f"),
                label=f"IPv{family} ({values.size})",
            )
            drawn = True
    axes.set_xlabel("interruption ms")
    axes.set_ylabel("fraction of handovers × flows")
    axes.set_ylim(0, 1.02)
    axes.set_title("Interruption CDF per address family")
    axes.grid(True, alpha=0.3)
    if drawn:
        axes.legend(fontsize=8)
    else:
        _no_data(axes)
    figure.tight_layout()
    return _save(figure, path)
