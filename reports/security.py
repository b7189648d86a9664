"""Verdicts, figures and report of a security run (``scenarios.security``), from its folder only.

Inputs: ``meta.json``; ``traces/scenario.jsonl`` (phase marks; ``step`` events with what each attack sent
and the HA's ``mipctl status`` counters before and after it); ``traces/ha.jsonl`` (what the HA did: drops,
replies, binding changes); ``logs/ha.log`` (its log lines, timestamped); the correspondent's capture (what
was forwarded to it); ``probes/*.csv``. Each verdict is a pure function of those files: a doctored file
fails its verdict, and missing evidence fails too (tests/integration/test_security_scenario.py).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from agents.mip.common.trace_schema import TraceEvent
from reports import security_faults, security_nat
from reports.metrics import RunResult, Verdict
from reports.pcapread import ip_packets, readable
from reports.probes import FlowData, logged_by_sender, max_gap_ms, received_between, span_between
from reports.rundir import Run, load_run

SECURITY_DROPS = frozenset(
    {"unknown_outer_source", "inner_source", "encapsulation", "tunnel_target", "unnested_home_address"}
)
"""Datapath drop reasons that are RFC 3024 §4.3.2 / RFC 5454 §4 source checks."""
LOG_LINES_PER_SECOND = 21
"""The security log's bound (agents/runtime/security_log.py: 20 lines and one summary per second)."""
TRACE_BUDGETED = (
    TraceEvent.AUTHENTICATION_FAILED,
    TraceEvent.IDENTIFICATION_REJECTED,
    TraceEvent.FA_AUTHENTICATION_FAILED,
    TraceEvent.SECURITY_DROP,
    TraceEvent.MALFORMED_DATAGRAM,
    TraceEvent.DATAGRAM_DISCARDED,
    TraceEvent.ADVERTISEMENT_DISCARDED,
    TraceEvent.SECURITY_SUPPRESSED,
)
"""The HA's trace lines bounded by the same budget as its security log (agents/runtime/security_log.py)."""
MARKER = b"DSMIP-SPOOF "
FLOWS = ("v4-down", "v4-up", "v6-down", "v6-up")
FLOOD_COUNTERS = frozenset(
    {
        "malformed",
        "discarded",
        "authentication_failures",
        "identification_mismatches",
        "dropped_over_failure_budget",
    }
)
"""The HA's counters (mipctl status ``counters``) a flood datagram the HA read ends in: undecodable,
silently discarded, refused by authentication or replay check (over budget or not), or (runs before the
issue 16 review) dropped unverified over budget."""
REACHED_SHARE = 0.9
"""A flood verdict holds only when at least this share of the offered rate reached the HA's interface."""
MAX_GAP_MS = 1000.0
"""Under an attack the MN's traffic may be delayed, but no gap between two probes may exceed this."""
MAX_LOSS = 0.01
"""Under an attack at most this share of each flow's probes sent in the phase may be lost (1 %: at the
scenario's 100 probes/s a 100 ms hiccup; a binding that expires for one lifetime loses far more)."""
FLOOD_PHASES = ("flood", "flood-forged")


def steps(run: Run, what: str, **match: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in run.events("scenario", TraceEvent.STEP)
        if e.get("what") == what and all(e.get(k) == v for k, v in match.items())
    ]


def phase_window(run: Run, phase: str) -> tuple[float, float]:
    starts = [e["t"] for e in run.events("scenario", TraceEvent.PHASE_STARTED) if e.get("phase") == phase]
    ends = [e["t"] for e in run.events("scenario", TraceEvent.PHASE_FINISHED) if e.get("phase") == phase]
    return (float(starts[0]), float(ends[0])) if starts and ends else (math.nan, math.nan)


def forwarded_markers(run: Run) -> dict[str, int] | None:
    """Per spoof kind, how many of its marked datagrams reached the correspondent un-encapsulated (as the
    HA would forward them), from every capture of the correspondent; None without one."""
    import dpkt

    pcaps = sorted((run.path / "pcaps").glob("cn-*.pcap"))
    if not pcaps:
        return None
    found: dict[str, int] = {}
    for pcap in pcaps:
        if not readable(pcap):
            return None
        for _, ip in ip_packets(pcap):
            udp = ip.data
            if isinstance(udp, dpkt.udp.UDP):
                payload = bytes(udp.data)
                if payload.startswith(MARKER):
                    kind = payload[len(MARKER) :].decode(errors="replace")
                    found[kind] = found.get(kind, 0) + 1
    return found


def log_times(run: Run, node: str = "ha") -> list[float] | None:
    """The monotonic time of each line of ``logs/<node>.log`` (asctime, local time); None without it."""
    path = run.path / "logs" / f"{node}.log"
    offset = run.meta.get("clock_offset")
    if not path.is_file() or not isinstance(offset, int | float):
        return None
    times = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            when = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            continue  # a traceback's continuation line belongs to the line before
        times.append(when - offset)
    return times


def counted_delta(before: Any, after: Any) -> int | None:
    """``after - before`` of a counter recorded in two steps; None when either is missing."""
    if not isinstance(before, int) or not isinstance(after, int):
        return None
    return after - before


def udp_delta(before: Any, after: Any) -> dict[str, int] | None:
    """The kernel's UDP counters' change (``/proc/net/snmp`` in the HA's namespace); None without both."""
    if not isinstance(before, dict) or not isinstance(after, dict) or not after:
        return None
    return {key: int(after[key]) - int(before.get(key, 0)) for key in after}


def delta(
    before: dict[str, Any] | None, after: dict[str, Any] | None, keys: set[str] | frozenset[str]
) -> int:
    before, after = before or {}, after or {}
    return sum(int(after.get(k, 0)) - int(before.get(k, 0)) for k in keys)


class Judge:
    """Computes the verdicts and figures of one run, phase by phase."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.meta = run.meta
        self.hoa = str(self.meta.get("home_address"))
        self.verdicts: list[Verdict] = []
        self.figures: dict[str, Any] = {}

    def check(self, name: str, passed: bool, detail: str = "") -> None:
        self.verdicts.append(Verdict(name, bool(passed), detail))

    def judge(self) -> None:
        for phase in self.meta.get("phases", []):
            getattr(self, phase.replace("-", "_"))()
        self.exit_codes()

    def traffic(self, phase: str, start: float, end: float) -> None:
        """The real MN's traffic keeps flowing through the phase (probes, both directions and families):
        per flow, of the probes sent in the phase (but its last 0.5 s, still in flight) at most
        :data:`MAX_LOSS` lost (by sequence number), and no gap over :data:`MAX_GAP_MS`."""
        flows = {name: self.run.flows.get(name) for name in FLOWS}
        got = {name: received_between(flow, start, end) for name, flow in flows.items()}
        spans = {name: span_between(flow, start, end - 0.5) for name, flow in flows.items()}
        sent = {name: span[0] for name, span in spans.items()}
        lost = {name: span[1] for name, span in spans.items()}
        missing = {name: span[2] for name, span in spans.items()}
        share = {name: round(lost[name] / sent[name], 4) if sent[name] else None for name in FLOWS}
        gaps = {name: max_gap_ms(flow, start, end) for name, flow in flows.items()}
        for name, flow in flows.items():  # rows cut off after the file's last one: the sender's own count
            logged = logged_by_sender(self.run.path, name)
            if flow is None or logged is None or not flow.seq.size:
                continue
            cut_off = logged - (int(flow.seq.max()) + 1)
            if cut_off > 0 and float(flow.send_t.max()) < end - 0.5:  # the file stops inside this phase
                missing[name] += cut_off
        holes = (
            f"; rows missing from the probe file (truncated, edited; the sender's log counts them) {missing}"
            if any(missing.values())
            else ""
        )
        self.figures.setdefault("traffic", {})[phase] = {
            "received": got,
            "sent": sent,
            "lost": lost,
            "loss_share": share,
            "missing_rows": missing,
            "max_gap_ms": gaps,
        }
        self.check(
            f"{phase}: the mobile node's own traffic keeps flowing (loss ≤ {MAX_LOSS:.0%} per flow, "
            f"no probe gap over {MAX_GAP_MS:g} ms)",
            all(got.values())
            and not any(missing.values())
            and all(s is not None and s <= MAX_LOSS for s in share.values())
            and all(g is not None and g <= MAX_GAP_MS for g in gaps.values()),
            f"received {got}; lost {lost} of {sent}; longest gap ms {gaps}" + holes,
        )

    # 1. RFC 3024 §4.3.2, RFC 5454 §4 ---------------------------------------------------------------------

    def spoof(self) -> None:
        start, end = phase_window(self.run, "spoof")
        sent_steps = steps(self.run, "spoof")
        forwarded = forwarded_markers(self.run)
        drops = self.run.events("ha", TraceEvent.SECURITY_DROP)
        rows = self.figures.setdefault("spoof", {})
        expected = int(self.meta.get("spoof_count", 0))
        if not sent_steps:
            self.check("spoof: spoofed packets were sent", False, "no spoof recorded")
        for index, step in enumerate(sent_steps):
            kind = str(step.get("kind"))
            after_previous = sent_steps[index - 1]["t"] if index else start
            dropped = {
                reason: int(step.get("drops_after", {}).get(reason, 0))
                - int(step.get("drops_before", {}).get(reason, 0))
                for reason in SECURITY_DROPS
            }
            dropped = {reason: count for reason, count in dropped.items() if count}
            logged = [
                e for e in drops if after_previous < e["t"] <= step["t"] and e.get("reason") in dropped
            ]  # fmt: skip
            through = None if forwarded is None else forwarded.get(kind, 0)
            sent = int(step.get("sent", 0))
            rows[kind] = {
                "vantage": step.get("vantage"),
                "sent": sent,
                "dropped": dropped,
                "logged": len(logged),
                "forwarded": through,
            }
            self.check(
                f"spoof {kind}: every packet dropped and counted by the HA, logged, none forwarded",
                sent == expected > 0 and sum(dropped.values()) == sent and bool(logged) and through == 0,
                f"from {step.get('vantage')}: sent {sent} of {expected}; HA drop counters +{dropped or 0}; "
                f"{len(logged)} security_drop lines; "
                f"{'? (no capture of the correspondent)' if through is None else through} "
                "reached the correspondent",
            )
        self.traffic("spoof", start, end)

    # 2. RFC 5944 §3.8.2.1, §5.7 --------------------------------------------------------------------------

    def forged(self) -> None:
        marks = steps(self.run, "forged_reply")
        replies = {e.get("kind"): e for e in marks}
        before = (steps(self.run, "binding_seen", label="before") or [{}])[0]
        refusals = self.run.events("ha", TraceEvent.AUTHENTICATION_FAILED, TraceEvent.IDENTIFICATION_REJECTED)
        for index, mark in enumerate(marks):
            since = marks[index - 1]["t"] if index else before.get("t", math.inf)
            logged = [e for e in refusals if since < e["t"] <= mark["t"]]
            self.figures.setdefault("forged_logged", {})[str(mark.get("kind"))] = len(logged)
        after = (steps(self.run, "binding_seen", label="after") or [{}])[0]
        for kind, code, rule in (
            ("wrong-key-deregistration", 131, "§3.8.2.1"),
            ("wrong-key-registration", 131, "§3.8.2.1"),
            ("replay", 133, "§5.7"),
        ):
            reply = replies.get(kind, {})
            self.figures.setdefault("forged", {})[kind] = reply.get("reply_code")
            self.check(
                f"forged: {kind} refused with {code} (RFC 5944 {rule})",
                reply.get("reply_code") == code,
                f"reply code {reply.get('reply_code', reply.get('error', 'none'))}",
            )
        kept = {str(care_of) for care_of, _ in before.get("care_ofs") or []}
        changed = [
            e
            for e in self.run.events(
                "ha", TraceEvent.BINDING_REMOVED, TraceEvent.BINDING_UPDATED, TraceEvent.BINDING_ADDED
            )
            if e.get("home_address") == self.hoa
            and before.get("t", math.inf) <= e["t"] <= after.get("t", -math.inf)
            and (e["event"] == TraceEvent.BINDING_REMOVED or e.get("care_of") not in kept)
        ]
        self.check(
            "forged: the binding is untouched (same care-of address, no change in the HA's trace)",
            bool(before.get("care_ofs")) and before.get("care_ofs") == after.get("care_ofs") and not changed,
            f"care-of before {before.get('care_ofs') or 'none'}, after {after.get('care_ofs') or 'none'}; "
            f"{len(changed)} removals or care-of changes traced in between (renewals aside)",
        )

    # 3. RFC 5944 §3.8.2.1: floods ------------------------------------------------------------------------

    def flood(self, phase: str = "flood") -> None:
        start, end = phase_window(self.run, phase)
        lines = log_times(self.run)
        lifetime = float(self.meta.get("ha_max_lifetime", 0))
        self.figures.setdefault("flood", {})
        kinds = [str(e.get("kind")) for e in steps(self.run, "flood_finished") if start <= e["t"] <= end]
        if not kinds:
            self.check(f"{phase}: the floods were sent", False, "no flood recorded")
        for kind in kinds:
            self.flood_one(kind, lines)
        self.binding_kept(phase, start, end, lifetime)
        self.traffic(phase, start, end)

    def flood_forged(self) -> None:
        """The floods forging FA1's address on every datagram (issue 16 review): same verdicts."""
        self.flood("flood-forged")

    def flood_one(self, kind: str, lines: list[float] | None) -> None:
        """One flood's row and verdicts: the rate that reached the HA, what the HA and the kernel counted,
        what the HA sent back (the reflection), its log and trace volume."""
        rows = self.figures["flood"]
        began = steps(self.run, "flood_started", kind=kind)
        done = steps(self.run, "flood_finished", kind=kind)[0]
        counted = next(iter(steps(self.run, "flood_counters", kind=kind)), None)
        t1, t2 = (began[0]["t"] if began else math.nan), done["t"]
        sent, seconds = int(done.get("sent", 0)), float(done.get("seconds", 0) or 0)
        offered = float(began[0].get("rate") or 0) if began else 0.0
        window = t2 + 1.0 - t1
        rx_before = began[0].get("ha_rx_packets") if began else None
        rx_after = done.get("ha_rx_packets")
        at_ha = rx_after - rx_before if isinstance(rx_before, int) and isinstance(rx_after, int) else None
        at_ha_rate = round(at_ha / seconds) if at_ha is not None and seconds > 0 else None
        edge = counted_delta(began[0].get("edge_dropped") if began else None, done.get("edge_dropped"))
        handled = None if at_ha is None else at_ha + (edge or 0)  # at the HA or dropped at r0's edge
        handled_rate = round(handled / seconds) if handled is not None and seconds > 0 else None
        before, after = (counted or {}).get("before"), (counted or {}).get("after")
        have_counters = isinstance(before, dict) and isinstance(after, dict) and bool(after)
        refused = delta(before, after, FLOOD_COUNTERS) if have_counters else None
        replies = delta(before, after, {"replies"}) if have_counters else None
        refusals = delta(before, after, {"refusal_replies"}) if have_counters else None
        kernel = udp_delta((counted or {}).get("udp_before"), (counted or {}).get("udp_after"))
        steering = {
            key: delta(counted.get("steering_before"), counted.get("steering_after"), {key})
            for key in ("priority_received", "general_received")
        } if counted and counted.get("steering_after") else None  # fmt: skip
        waited = (counted or {}).get("drain_wait_s")
        drain = (
            "counters read at once (no drain wait recorded)"
            if waited is None
            else f"counters read after {waited} s waiting for the HA's UDP 434 queues to drain"
            + ("" if (counted or {}).get("drained") else " (still not drained: gave up)")
        )
        logged = None if not lines else sum(t1 <= t <= t2 + 1.0 for t in lines)
        traced = [e for e in self.run.events("ha", *TRACE_BUDGETED) if t1 <= e["t"] <= t2 + 1.0]
        bound = LOG_LINES_PER_SECOND * (window + 1)
        rows[kind] = {
            "offered_rate": offered or None,
            "sent": sent,
            "seconds": seconds,
            "rate": round(sent / seconds) if seconds else None,
            "ha_rx_packets": at_ha,
            "ha_rx_rate": at_ha_rate,
            "edge_dropped": edge,
            "forged_share": began[0].get("forged_share") if began else None,
            "probe_loss": self.probe_loss(t1, t2),
            "read_by_ha": steering,
            "drain_wait_s": waited,
            "refused_or_dropped_by_ha": refused,
            "kernel_rcvbuf_drops": None if kernel is None else kernel.get("RcvbufErrors"),
            "kernel_udp_in_errors": None if kernel is None else kernel.get("InErrors"),
            "replies_sent": replies,
            "signed_refusals_sent": refusals,
            "log_lines": logged,
            "log_lines_per_s": None if logged is None else round(logged / window, 1),
            "trace_security_lines": len(traced),
            "renewals_during": len(
                [
                    e
                    for e in self.run.events("ha", TraceEvent.BINDING_UPDATED)
                    if e.get("home_address") == self.hoa and t1 <= e["t"] <= t2
                ]
            ),
            "forwarded": replies,
        }
        wanted = REACHED_SHARE * offered
        self.check(
            f"flood {kind}: offered {offered:g}/s, ≥ {REACHED_SHARE:.0%} reached the HA's interface "
            "or was dropped at r0's ingress filter",
            offered > 0
            and handled is not None
            and handled_rate is not None
            and handled_rate >= wanted
            and handled >= REACHED_SHARE * sent,
            f"{sent} sent in {seconds:.2f} s ({rows[kind]['rate']}/s); "
            f"{'? (no interface counts)' if at_ha is None else at_ha} packets at the HA's interface, "
            f"{'no ingress filter' if edge is None else edge} dropped at r0's edge "
            f"({handled_rate}/s together, want ≥ {wanted:.0f}/s): "
            "a slower flood proves nothing about this rate",
        )
        self.check(
            f"flood {kind}: ≥ {REACHED_SHARE:.0%} accounted for (refused by the HA, dropped by its kernel "
            "or at r0's ingress filter)",
            have_counters
            and kernel is not None
            and refused is not None
            and (refused > 0 or (edge or 0) >= REACHED_SHARE * sent)
            and refused + kernel.get("RcvbufErrors", 0) + (edge or 0) >= REACHED_SHARE * sent,
            "no flood_counters (HA status before/after) recorded"
            if not have_counters
            else f"HA counted {refused} ({'/'.join(sorted(FLOOD_COUNTERS))}); kernel RcvbufErrors "
            f"{'? (no /proc/net/snmp counts)' if kernel is None else kernel.get('RcvbufErrors')}; "
            f"r0's ingress filter {'off' if edge is None else edge}; "
            f"together ≥ {REACHED_SHARE:.0%} of the {sent} sent wanted; "
            f"{replies} replies sent, {refusals} of them signed refusals; {drain}",
        )
        self.check(
            f"flood {kind}: the HA's log stays within {LOG_LINES_PER_SECOND} lines/s",
            logged is not None and sent > 0 and logged <= bound and len(traced) <= bound,
            f"{'? (no or empty logs/ha.log)' if logged is None else logged} log lines and {len(traced)} "
            f"security trace lines in {window:.2f} s (bound {bound:.0f} each)",
        )

    def probe_loss(self, start: float, end: float) -> dict[str, Any]:
        """Per flow: probes sent in [start, end] and how many of them were lost."""
        flows = {name: self.run.flows.get(name) for name in FLOWS}
        spans = {name: span_between(flow, start, end) for name, flow in flows.items()}
        return {name: {"sent": span[0], "lost": span[1], "missing": span[2]} for name, span in spans.items()}

    def binding_kept(self, phase: str, start: float, end: float, lifetime: float) -> None:
        """The binding never expires: not at the HA, not at the MN, not in FA1's visitor list."""
        mn = str(self.meta.get("mobile_node", "mn1"))
        fa = str(self.meta.get("foreign_agent", "fa1"))
        expired = [
            e
            for e in self.run.events("ha", TraceEvent.BINDING_REMOVED)
            if e.get("home_address") == self.hoa and start <= e["t"] <= end
        ]
        renewed = [
            e
            for e in self.run.events("ha", TraceEvent.BINDING_UPDATED)
            if e.get("home_address") == self.hoa and start <= e["t"] <= end
        ]
        mn_expired = [
            e for e in self.run.events(mn, TraceEvent.REGISTRATION_EXPIRED) if start <= e["t"] <= end
        ]
        fa_removed = [
            e
            for e in self.run.events(fa, TraceEvent.VISITOR_REMOVED)
            if e.get("home_address") == self.hoa and start <= e["t"] <= end
        ]
        traced = {node: bool(self.run.events(node)) for node in ("ha", mn, fa)}
        wanted = max(1, int((end - start) // max(lifetime, 1.0)))
        label = "after-flood" if phase == "flood" else "after-forged-flood"
        final = (steps(self.run, "binding_seen", label=label) or [{}])[0]
        self.figures["flood_binding" if phase == "flood" else "flood_forged_binding"] = {
            "renewals": len(renewed),
            "removed": len(expired),
            "mn_registration_expired": len(mn_expired),
            "fa_visitor_removed": len(fa_removed),
            "phase_s": round(end - start, 3),
            "renewal_margin_s": self.meta.get("flood_renewal_margin_s"),
        }
        self.check(
            f"{phase}: the binding never expires; the MN's renewals are accepted throughout "
            "(RFC 5944 §3.8.2.1)",
            math.isfinite(start)
            and all(traced.values())
            and not expired
            and not mn_expired
            and not fa_removed
            and len(renewed) >= wanted
            and bool(final.get("care_ofs")),
            f"{len(renewed)} renewals in {end - start:.2f} s (lifetime {lifetime:g} s, want ≥ {wanted}); "
            f"{len(expired)} removals at the HA, {len(mn_expired)} registration_expired at {mn}, "
            f"{len(fa_removed)} visitor removals at {fa}; traces {traced}; "
            f"binding after the floods {final.get('care_ofs') or 'none'}",
        )

    def loss(self) -> None:
        security_faults.loss(self)

    def nat_loss(self) -> None:
        security_nat.nat_loss(self)

    def ha_restart(self) -> None:
        security_faults.ha_restart(self)

    def fa_restart(self) -> None:
        security_faults.fa_restart(self)

    def exit_codes(self) -> None:
        codes = self.meta.get("exit_codes") or {}
        bad = {k: v for k, v in codes.items() if v != 0}
        self.check(
            "every agent and probe exits cleanly",
            bool(codes) and not bad,
            f"{len(codes)} processes" if not bad else ", ".join(f"{k} exited {v}" for k, v in bad.items()),
        )


def analyse_security(run: Run) -> RunResult:
    judge = Judge(run)
    judge.judge()
    passed = bool(judge.verdicts) and all(v.passed for v in judge.verdicts)
    flows = {
        name: {"sent": len(set(f.seq.tolist())), "received": int(np.count_nonzero(~np.isnan(f.recv_t)))}
        for name, f in run.flows.items()
    }
    metrics = {
        "scenario": "security",
        "run": run.path.name,
        "passed": passed,
        "figures": judge.figures,
        "verdicts": [v.to_dict() for v in judge.verdicts],
        "flows": flows,
        "notes": run.notes,
    }
    return RunResult(run.path, metrics, [], judge.verdicts, passed, list(run.flows), list(run.notes))


def render_security(run_dir: Path) -> RunResult:
    """Analyse a security run folder and (re)write metrics.json and report.md."""
    from reports.security_report import write_outputs

    run = load_run(Path(run_dir))
    result = analyse_security(run)
    write_outputs(run, result)
    return result


def flow_of(run: Run, name: str) -> FlowData | None:
    return run.flows.get(name)


def dumps(result: RunResult) -> str:
    return json.dumps(result.metrics, indent=2, default=str)
