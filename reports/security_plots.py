"""PNG plots of a security run (matplotlib's Agg canvas, as :mod:`reports.plots`):

* ``attacks.png``: per attack what was sent, dropped or refused by the HA, logged and forwarded (log
  scale: a 10-packet spoof and a 160,000-datagram flood on one axis);
* ``faults.png``: per fault (signalling loss per leg, NAT mapping loss, HA and FA restart) the outage of
  each probe flow, or the registration completion time under loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from reports.plots import _no_data, _save

COUNT_COLOURS = {
    "sent": "#1f77b4",
    "dropped": "#2ca02c",
    "kernel drops": "#8c564b",
    "logged": "#ff7f0e",
    "forwarded": "#d62728",
}
"""Bars per attack. ``kernel drops``: the HA namespace's UDP RcvbufErrors during a flood; ``forwarded``:
for a spoof, packets that reached the correspondent; for a flood, datagrams the HA sent back (replies)."""
FLOW_COLOURS = {"v4-down": "#1f77b4", "v4-up": "#aec7e8", "v6-down": "#ff7f0e", "v6-up": "#ffbb78"}


def attack_rows(figures: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """(attack, {sent, dropped, kernel drops, logged, forwarded}) from the report's figures."""
    rows = []
    for kind, row in figures.get("spoof", {}).items():
        counts = {
            "sent": row.get("sent") or 0,
            "dropped": sum((row.get("dropped") or {}).values()),
            "kernel drops": 0,
            "logged": row.get("logged") or 0,
            "forwarded": row.get("forwarded") or 0,
        }
        rows.append((f"spoof {kind}", counts))
    for kind, code in figures.get("forged", {}).items():
        logged = figures.get("forged_logged", {}).get(kind) or 0
        rows.append(
            (
                kind,
                {
                    "sent": 1,
                    "dropped": 1 if code in (131, 133) else 0,
                    "kernel drops": 0,
                    "logged": logged,
                    "forwarded": 0,
                },
            )
        )
    for kind, row in figures.get("flood", {}).items():
        counts = {
            "sent": row.get("sent") or 0,
            "dropped": row.get("refused_or_dropped_by_ha") or 0,
            "kernel drops": row.get("kernel_rcvbuf_drops") or 0,
            "logged": row.get("log_lines") or 0,
            "forwarded": row.get("forwarded") or 0,
        }
        rows.append((f"flood {kind}", counts))
    return rows


def attacks(figures: dict[str, Any], path: Path) -> Path:
    rows = attack_rows(figures)
    figure = Figure(figsize=(10, 4.8))
    axes = figure.add_subplot()
    if not rows:
        _no_data(axes, "no attack in this run")
    else:
        x = np.arange(len(rows))
        width = 0.16
        for index, (name, colour) in enumerate(COUNT_COLOURS.items()):
            values = [max(counts[name], 0) for _, counts in rows]
            bars = axes.bar(x + (index - 2) * width, [v if v > 0 else np.nan for v in values], width,
                            label=name, color=colour)  # fmt: skip
            for bar, value in zip(bars, values, strict=True):
                if value == 0:
                    axes.text(bar.get_x() + width / 2, 1, "0", ha="center", va="bottom", fontsize=6)
        axes.set_yscale("log")
        axes.set_ylim(bottom=0.8)
        axes.set_xticks(x, [label for label, _ in rows], rotation=35, ha="right", fontsize=7)
        axes.set_ylabel("datagrams / packets / lines")
        axes.legend(fontsize=8)
    axes.set_title("Attacks: sent, refused by the HA, dropped by its kernel, logged, forwarded / replied")
    figure.tight_layout()
    return _save(figure, path)


def fault_rows(figures: dict[str, Any]) -> list[tuple[str, dict[str, float | None]]]:
    """(fault, {flow: outage ms}) for restarts and NAT loss."""
    rows = []
    for key, label in (("nat_loss", "NAT mapping lost"), ("ha_restart", "HA kill -9 + restart"),
                       ("fa_restart", "FA kill -9 + restart")):  # fmt: skip
        if key in figures:
            rows.append((label, dict(figures[key].get("outage_ms") or {})))
    return rows


def faults(figures: dict[str, Any], path: Path) -> Path:
    rows = fault_rows(figures)
    legs = figures.get("loss") or {}
    figure = Figure(figsize=(10, 4.2))
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    if not rows:
        _no_data(left, "no restart or NAT loss in this run")
    else:
        x = np.arange(len(rows))
        width = 0.16
        for index, (flow, colour) in enumerate(FLOW_COLOURS.items()):
            values = [outages.get(flow) for _, outages in rows]
            left.bar(x + (index - 1.5) * width, [np.nan if v is None else v for v in values], width,
                     label=flow, color=colour)  # fmt: skip
        left.set_xticks(x, [label for label, _ in rows], fontsize=8)
        left.set_ylabel("outage (longest probe gap, ms)")
        left.legend(fontsize=7)
    left.set_title("Outage per fault")
    if not legs or not isinstance(next(iter(legs.values())), dict):
        _no_data(right, "no signalling loss in this run")
    else:
        names = list(legs)
        times: list[list[float]] = [
            [float(t["completion_s"]) for t in legs[leg]["trials"] if t["completion_s"] is not None]
            for leg in names
        ]
        for index, completions in enumerate(times):
            right.scatter([index] * len(completions), completions, color="#1f77b4", alpha=0.7, zorder=3)
            if completions:
                right.hlines(
                    float(np.median(completions)), index - 0.25, index + 0.25, color="#d62728", zorder=4
                )
        right.set_xticks(range(len(names)), [f"{leg} ({legs[leg]['probability']})" for leg in names])
        right.set_xlim(-0.6, len(names) - 0.4)
        right.set_ylabel("registration completion (s); red: median")
    right.set_title("Registration under signalling loss, per leg")
    figure.tight_layout()
    return _save(figure, path)


def render_security_plots(figures: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [attacks(figures, out_dir / "attacks.png"), faults(figures, out_dir / "faults.png")]
