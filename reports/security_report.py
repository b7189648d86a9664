"""A security run's outputs: metrics.json and report.md (per attack: sent, dropped, logged, forwarded)."""

from __future__ import annotations

from typing import Any

from reports.metrics import RunResult
from reports.render import _write, metrics_json
from reports.rundir import Run


def write_outputs(run: Run, result: RunResult) -> None:
    from reports.security_plots import render_security_plots

    render_security_plots(result.metrics.get("figures", {}), run.path / "plots")
    _write(run.path / "metrics.json", metrics_json(result))
    _write(run.path / "report.md", report_markdown(run, result))


def report_markdown(run: Run, result: RunResult) -> str:
    meta, figures = run.meta, result.metrics.get("figures", {})
    lines = [
        f"# Security run {run.path.name}",
        "",
        f"HA maximum lifetime {meta.get('ha_max_lifetime')} s; probes at {meta.get('rate')} packets/s "
        "per flow; "
        f"datapath {meta.get('datapath')}; wall time {meta.get('wall_time_s')} s. Captures in pcaps/.",
        "",
        edge_line(meta),
        "",
        "Traffic bound under every attack: per flow at most 1 % of the probes sent in the phase lost "
        "(by sequence number) and no gap between two probes over 1 s.",
        "",
        "![attacks](plots/attacks.png)",
        "",
        "## Attacks",
        "",
        "| attack | from | sent | dropped / refused by the HA | dropped by the HA's kernel | logged "
        "| forwarded (spoofs) / replies sent (floods) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, row in figures.get("spoof", {}).items():
        dropped = ", ".join(f"{reason} {count}" for reason, count in row["dropped"].items()) or "0"
        lines.append(
            f"| spoof {kind} | {row['vantage']} | {row['sent']} | {dropped} | – | "
            f"{row['logged']} trace lines | "
            f"{'?' if row['forwarded'] is None else row['forwarded']} |"
        )
    for kind, code in figures.get("forged", {}).items():
        logged = figures.get("forged_logged", {}).get(kind, "?")
        lines.append(f"| {kind} | cn | 1 | reply code {code} | – | {logged} trace lines | – |")
    for kind, row in figures.get("flood", {}).items():
        lines.append(
            f"| flood {kind} ({row['rate']}/s sent, {row.get('ha_rx_rate')}/s at the HA"
            f"{'' if row.get('edge_dropped') is None else ', ' + str(row['edge_dropped']) + ' dropped at r0'}"
            f") | cn | {row['sent']} | "
            f"{_known(row.get('refused_or_dropped_by_ha'))} counted | "
            f"{_known(row.get('kernel_rcvbuf_drops'))} (UDP RcvbufErrors) | "
            f"{_known(row.get('log_lines'))} log lines ({row.get('log_lines_per_s')}/s), "
            f"{row.get('trace_security_lines')} trace lines | "
            f"{_known(row.get('replies_sent'))} ({_known(row.get('signed_refusals_sent'))} signed refusals) |"
        )
    for key, name in (("flood_binding", "floods"), ("flood_forged_binding", "floods forging FA1")):
        lines += binding_lines(figures.get(key), name)
    lines += traffic_lines(figures.get("traffic") or {})
    read = {
        kind: row.get("read_by_ha") for kind, row in figures.get("flood", {}).items() if row.get("read_by_ha")
    }
    if read:
        lines += [
            "",
            "Datagrams the HA read per flood from its priority socket (known peers, steered by the kernel) "
            "and its general socket: "
            + "; ".join(
                f"{kind} {counts['priority_received']} / {counts['general_received']}"
                for kind, counts in read.items()
            )
            + ".",
        ]
    lines += fault_lines(figures)
    lines += ["", "## Verdicts", "", "| | expectation | detail |", "|---|---|---|"]
    for verdict in result.verdicts:
        detail = verdict.detail.replace("|", "\\|")
        lines.append(f"| {'✔' if verdict.passed else '✘'} | {verdict.name} | {detail} |")
    met = sum(v.passed for v in result.verdicts)
    lines += ["", f"**{'PASS' if result.overall_passed else 'FAIL'}**: {met} of {len(result.verdicts)} met."]
    if run.notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in run.notes]]
    return "\n".join(lines) + "\n"


def fault_lines(figures: dict[str, Any]) -> list[str]:
    """Per fault: what it cost (registration time under loss, outages after restarts)."""
    lines = []
    for leg, loss in (figures.get("loss") or {}).items():
        if not isinstance(loss, dict):
            continue
        lines.append(
            f"- signalling loss {loss['probability']} each way on {leg} (rules in {loss['node']}): "
            f"registrations completed in median {loss['completion_s_median']} s, "
            f"longest {loss['completion_s_max']} s ("
            + ", ".join(f"{t['completion_s']} s / {t['requests']} requests" for t in loss["trials"])
            + f"); the rules dropped {loss['dropped_by_rules']}"
        )
    nat = figures.get("nat_loss")
    if nat:
        lines.append(
            f"- NAT mapping lost (K = {nat['keepalive_s']} s): binding port {nat['port_before']} → "
            f"{nat['port_after']}, registered again {nat['registered_again_s']} s after (noticed by "
            f"{nat.get('noticed_by', '?')}); outage (ms) "
            f"{nat['outage_ms']}"
        )
    ha = figures.get("ha_restart")
    if ha:
        lines.append(
            f"- HA kill -9 + restart with its journal: up again after {ha['restart_s']} s, bindings restored "
            f"{ha['bindings_restored']}; outage (longest probe gap, ms) {ha['outage_ms']}"
        )
    fa = figures.get("fa_restart")
    if fa:
        lines.append(
            f"- FA kill -9 + restart: up after {fa['restart_s']} s; the MN saw the reboot "
            f"{fa['noticed_s']} s "
            f"and was registered {fa['registered_s']} s after the kill; outage (ms) {fa['outage_ms']}"
        )
    return ["", "## Faults", "", "![faults](plots/faults.png)", "", *lines] if lines else []


def _known(value: object) -> str:
    return "?" if value is None else str(value)


def edge_line(meta: dict[str, Any]) -> str:
    """Whether r0's ingress filter (BCP 38) was on, where, and for which phases it was lifted."""
    if not meta.get("ingress_filter"):
        return "Ingress filter at r0 (BCP 38 / RFC 2827): off (--no-ingress-filter)."
    where = ", ".join(meta.get("ingress_filter_interfaces") or []) or "?"
    lifted = ", ".join(meta.get("ingress_filter_lifted_for") or []) or "none"
    return (
        f"Ingress filter at r0 (BCP 38 / RFC 2827, kernel rpfilter): on for {where}; lifted during: {lifted} "
        "(that phase tests the HA's own source checks)."
    )


def binding_lines(binding: dict[str, Any] | None, name: str) -> list[str]:
    if not binding:
        return []
    return [
        "",
        f"During the {name} phase ({binding['phase_s']} s) the HA accepted {binding['renewals']} "
        "renewals "
        f"and removed the binding {binding['removed']} times; the MN's registration expired "
        f"{binding.get('mn_registration_expired', '?')} times, FA1 removed the visitor "
        f"{binding.get('fa_visitor_removed', '?')} times (renewal margin "
        f"{binding.get('renewal_margin_s', '?')} s).",
    ]


def traffic_lines(traffic: dict[str, Any]) -> list[str]:
    """Per attack phase: probes lost of those sent per flow, and the longest gap."""
    lines = []
    for phase, row in traffic.items():
        sent, lost, gaps = row.get("sent") or {}, row.get("lost") or {}, row.get("max_gap_ms") or {}
        flows = ", ".join(
            f"{name} {lost.get(name)}/{sent.get(name, '?')} lost, gap {gaps.get(name)} ms" for name in lost
        )
        lines.append(f"- traffic during {phase}: {flows}")
    return ["", *lines] if lines else []
