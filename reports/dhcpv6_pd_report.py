"""A DHCPv6-PD run's outputs: metrics.json, plots/phase_timeline.png and report.md."""

from __future__ import annotations

import math
from pathlib import Path

from reports.metrics import RunResult
from reports.render import _write, metrics_json
from reports.rundir import Run

MILESTONES = (
    ("IPv4 registration", "registration"),
    ("link-local registration", "link-local"),
    ("to the first Solicit", "solicit"),
    ("DHCPv6 exchange", "delegated"),
    ("prefix registration", "prefix registered"),
    ("to the first IPv6 packet from the CN", "first IPv6 from CN"),
)
"""(phase label, milestone that ends it); each phase starts where the previous one ended."""


EXCHANGES = {True: "Solicit/Reply with Rapid Commit", False: "Solicit/Advertise/Request/Reply"}


def phases(milestones: dict[str, float]) -> list[tuple[str, float, float]]:
    """(label, start, duration) in seconds after the first registration request; NaN-ended ones left out."""
    spans, start = [], 0.0
    for label, key in MILESTONES:
        end = milestones.get(key, math.nan)
        if not isinstance(end, int | float) or math.isnan(end):
            break
        spans.append((label, start, end - start))
        start = end
    return spans


def write_outputs(run: Run, result: RunResult) -> None:
    plots = run.path / "plots"
    plots.mkdir(exist_ok=True)
    phase_timeline(run, result, plots / "phase_timeline.png")
    _write(run.path / "metrics.json", metrics_json(result))
    _write(run.path / "report.md", report_markdown(run, result))


def phase_timeline(run: Run, result: RunResult, path: Path) -> None:
    """One bar per bootstrap phase, then the run's later events (Renew, move, Release) as marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spans = phases(result.metrics.get("milestones_s", {}))
    figure, axis = plt.subplots(figsize=(11, 0.5 * len(MILESTONES) + 1.8))
    for row, (_label, start, duration) in enumerate(spans):
        axis.barh(row, duration, left=start, height=0.6, color=f"C{row}")
        axis.text(start + duration, row, f" {duration * 1000:.0f} ms", va="center", fontsize=8)
    axis.set_yticks(range(len(MILESTONES)), [label for label, _ in MILESTONES])
    axis.invert_yaxis()
    axis.set_xlabel("seconds after mn1's first Registration Request via FA1")
    rapid = "rapid commit" if run.meta.get("rapid_commit") else "4-message"
    axis.set_title(
        f"DHCPv6-PD bootstrap over the link-local tunnel ({rapid}): {result.metrics.get('delegated')}"
    )
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def lease_table(path: Path) -> list[str]:
    """Every row Kea wrote to its memfile (one per allocation, renewal and release; a valid lifetime of
    0 is the release), as a table."""
    from reports.dhcpv6_pd import kea_leases

    rows = kea_leases(path) if path.is_file() else []
    if not rows:
        return ["(no lease recorded)"]
    lines = [
        "| prefix | DUID | IAID | preferred s | valid s | expires (Unix time) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        prefix = f"{row.get('address')}/{row.get('prefix_len')}"
        lines.append(
            f"| {prefix} | {row.get('duid')} | {row.get('iaid')} | {row.get('pref_lifetime')} | "
            f"{row.get('valid_lifetime')} | {row.get('expire')} |"
        )
    return lines


def report_markdown(run: Run, result: RunResult) -> str:
    meta, metrics = run.meta, result.metrics
    lines = [
        "# DHCPv6-PD bootstrap over the link-local tunnel (RFC 5454 §3.7.1)",
        "",
        f"- run: `{' '.join(meta.get('argv', []))}`, seed {meta.get('seed')}, {meta.get('start_utc')}",
        f"- exchange: {EXCHANGES[bool(meta.get('rapid_commit'))]}",
        f"- pool {meta.get('pool')} (size {meta.get('pool_size') or 'full'}), lease {meta.get('lease')}",
        f"- delegated: {metrics.get('delegated')}",
        "",
        "## Bootstrap phases (from mn1's first Registration Request via FA1)",
        "",
        "| phase | start s | duration ms |",
        "|---|---:|---:|",
    ]
    for label, start, duration in phases(metrics.get("milestones_s", {})):
        lines.append(f"| {label} | {start:.3f} | {duration * 1000:.1f} |")
    lines += [
        "",
        "Each registration after the first waits for RFC 5944 §3.6.3's one request per second; the last",
        "phase includes the scenario noticing the registration and starting the probes.",
        "",
        "![phases](plots/phase_timeline.png)",
        "",
        "## Verdicts",
        "",
    ]
    lines += [
        f"- {'✔' if v.passed else '✘'} {v.name}" + (f": {v.detail}" if v.detail else "")
        for v in result.verdicts
    ]
    lines += ["", "## The lease as Kea recorded it", "", *lease_table(run.path / "kea" / "kea-leases6.csv")]
    lines += ["", "Kea's lease file: `kea/kea-leases6.csv`; its log: `kea/kea-dhcp6.log`.", ""]
    if result.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in result.notes], ""]
    return "\n".join(lines)
