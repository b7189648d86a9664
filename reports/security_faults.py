"""Verdicts and figures of the security scenario's fault phases (``loss``, ``ha-restart``, ``fa-restart``),
from the run folder only: the scenario's ``step`` marks, the agents' traces and the probes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from agents.mip.common.trace_schema import TraceEvent
from reports.probes import FlowData

if TYPE_CHECKING:
    from reports.security import Judge

FLOWS = ("v4-down", "v4-up", "v6-down", "v6-up")


def outage_ms(flow: FlowData | None, fault: float, end: float) -> float | None:
    """The longest time between two packets of ``flow`` received around ``fault`` (from the last one
    before it to the end of the phase), in ms; None without packets on both sides."""
    if flow is None:
        return None
    received = np.sort(flow.recv_t[~np.isnan(flow.recv_t)])
    before, after = received[received < fault], received[(received >= fault) & (received <= end)]
    if before.size == 0 or after.size == 0:
        return None
    times = np.concatenate(([before[-1]], after))
    return round(float(np.max(np.diff(times))) * 1000, 1)


def first_received(flow: FlowData | None, after: float) -> float | None:
    if flow is None:
        return None
    received = flow.recv_t[~np.isnan(flow.recv_t)]
    later = received[received > after]
    return float(np.min(later)) if later.size else None


def _outages(judge: Judge, fault: float, end: float) -> dict[str, float | None]:
    return {name: outage_ms(judge.run.flows.get(name), fault, end) for name in FLOWS}


def leg_of(mark: dict[str, object]) -> str:
    """The leg a loss mark belongs to (runs before the FA↔HA leg existed dropped at the MN only)."""
    return str(mark.get("leg") or "mn-fa")


def loss(judge: Judge) -> None:
    """RFC 5944 §3.6.3: retransmission gets a registration through the loss, on each leg it was put on
    (only the MN retransmits: a request or reply lost between FA and HA is recovered by the MN's next)."""
    from reports.security import phase_window, steps

    start, end = phase_window(judge.run, "loss")
    installs = steps(judge.run, "loss_installed")
    legs = list(dict.fromkeys(leg_of(mark) for mark in installs)) or ["mn-fa"]
    judge.figures["loss"] = {}
    for leg in legs:
        loss_leg(judge, leg, start, end)


def loss_leg(judge: Judge, leg: str, start: float, end: float) -> None:
    from reports.security import steps

    mn = str(judge.meta.get("mobile_node", "mn1"))
    trials = []
    sends = [e for e in steps(judge.run, "register_sent") if start <= e["t"] <= end and leg_of(e) == leg]
    for index, sent in enumerate(sends):
        until = sends[index + 1]["t"] if index + 1 < len(sends) else end  # a trial ends at the next one
        accepted = next(
            (
                e
                for e in judge.run.events(mn, TraceEvent.REGISTRATION_ACCEPTED)
                if sent["t"] <= e["t"] <= until
            ),
            None,
        )
        requests = [
            e for e in judge.run.events(mn, TraceEvent.RRQ_SENT)
            if sent["t"] <= e["t"] <= (accepted["t"] if accepted else until)
        ]  # fmt: skip
        trials.append(
            {
                "completion_s": None if accepted is None else round(accepted["t"] - sent["t"], 3),
                "requests": len(requests),
            }
        )
    installed = next((m for m in steps(judge.run, "loss_installed") if leg_of(m) == leg), {})
    removed = next((m for m in steps(judge.run, "loss_removed") if leg_of(m) == leg), {})
    counted = next((m for m in steps(judge.run, "loss_counters") if leg_of(m) == leg), {})
    dropped = counted.get("dropped", {})
    matched = counted.get("matched")
    times = [t["completion_s"] for t in trials if t["completion_s"] is not None]
    judge.figures["loss"][leg] = {
        "node": installed.get("at", judge.meta.get("mobile_node", "mn1")),
        "probability": installed.get("probability"),
        "trials": trials,
        "dropped_by_rules": dropped,
        "matched_by_rules": matched,
        "completion_s_max": max(times) if times else None,
        "completion_s_median": float(np.median(times)) if times else None,
    }
    wanted = int(judge.meta.get("loss_trials", 0))
    judge.check(
        f"loss {leg}: the MN registers through the lost signalling, by retransmission (RFC 5944 §3.6.3)",
        wanted > 0 and len(trials) >= wanted and len(times) == len(trials),
        f"{len(times)} of {len(trials)} registrations completed (want ≥ {wanted}): "
        + ", ".join(f"{t['completion_s']} s after {t['requests']} requests" for t in trials)
        + f"; the rules dropped {dropped or 'nothing'}",
    )
    rules_in = [rule for rule in installed.get("rules", []) if "statistic" in rule and "434" in rule]
    rules_left = [
        rule for rule in removed.get("rules", []) if "statistic" in rule or "dsmip-loss-count" in rule
    ]
    drops = sum(int(count) for count in (dropped or {}).values())
    judge.check(
        f"loss {leg}: the rules caught the leg's signalling both ways and dropped some of it",
        isinstance(matched, dict)
        and len(matched) == 2
        and all(int(count) > 0 for count in matched.values())
        and drops > 0,
        f"matched {matched if matched is not None else '? (not counted)'}; dropped {dropped or 'nothing'}",
    )
    judge.check(
        f"loss {leg}: {installed.get('probability')} loss on UDP 434 both ways while registering, "
        "removed after",
        len(rules_in) == 2 and removed.get("rules") is not None and not rules_left,
        f"{len(rules_in)} rules installed in {installed.get('at', '?')}, {len(rules_left)} left after",
    )


def ha_restart(judge: Judge) -> None:
    """A restarted HA restores its journalled binding: traffic resumes without the MN registering."""
    from reports.security import phase_window, steps

    _, end = phase_window(judge.run, "ha-restart")
    killed = (steps(judge.run, "ha_killed") or [{}])[0]
    restarted = (steps(judge.run, "ha_restarted") or [{}])[0]
    after = (steps(judge.run, "binding_seen", label="after-ha-restart") or [{}])[0]
    kill, up = float(killed.get("t", math.nan)), float(restarted.get("t", math.nan))
    hoa = judge.hoa
    accepted = [
        e["t"] for e in judge.run.events("ha", TraceEvent.RRP_SENT)
        if e["t"] > kill and e.get("home_address") == hoa and e.get("code") in (0, 1)
    ]  # fmt: skip
    first_accept = min(accepted) if accepted else math.inf
    back = {name: first_received(judge.run.flows.get(name), kill) for name in FLOWS}
    outages = _outages(judge, kill, end)
    restored = len(
        [
            e
            for e in judge.run.events("ha", TraceEvent.BINDING_RESTORED)
            if e["t"] > kill and e.get("home_address") == hoa
        ]
    )
    judge.figures["ha_restart"] = {
        "outage_ms": outages,
        "restart_s": None if math.isnan(up - kill) else round(up - kill, 3),
        "bindings_restored": restored,
        "first_registration_accepted_after_kill_s": None if not accepted else round(first_accept - kill, 3),
    }
    judge.check(
        "ha-restart: killed (SIGKILL) and started again, the HA restores the binding from its journal",
        killed.get("exit_code") == -9 and restored >= 1 and bool(after.get("care_ofs")),
        f"exit code {killed.get('exit_code')}; restarted after {judge.figures['ha_restart']['restart_s']} s; "
        f"bindings restored {restored}; binding after {after.get('care_ofs') or 'none'}",
    )
    down = [back[name] for name in ("v4-down", "v6-down")]
    judge.check(
        "ha-restart: traffic is back before the new HA accepted any registration (no MN action needed)",
        all(t is not None and t < end for t in back.values())
        and all(t is not None and t < first_accept for t in down),
        f"outage ms {outages}; first registration accepted "
        f"{'never' if not accepted else f'{first_accept - kill:.3f} s'} after the kill",
    )


def fa_restart(judge: Judge) -> None:
    """RFC 5944 §2.4.4: a sequence number below 256 after a higher one means the FA rebooted."""
    from reports.security import phase_window, steps

    _, end = phase_window(judge.run, "fa-restart")
    mn = str(judge.meta.get("mobile_node", "mn1"))
    stopping = (steps(judge.run, "fa_stopping") or [{}])[0]
    stopped = (steps(judge.run, "fa_stopped") or [{}])[0]
    restarted = (steps(judge.run, "fa_restarted") or [{}])[0]
    fault, up = float(stopping.get("t", math.nan)), float(restarted.get("t", math.nan))
    noticed = next(
        (
            e
            for e in judge.run.events(mn, TraceEvent.MOVEMENT_DETECTED)
            if e["t"] > fault and e.get("reason") == "reboot"
        ),
        None,
    )  # the first advertisement goes out before the restarted FA says it is ready: after the kill
    accepted = None
    if noticed is not None:
        accepted = next(
            (e for e in judge.run.events(mn, TraceEvent.REGISTRATION_ACCEPTED) if e["t"] > noticed["t"]), None
        )
    outages = _outages(judge, fault, end)
    judge.figures["fa_restart"] = {
        "outage_ms": outages,
        "restart_s": None if math.isnan(up - fault) else round(up - fault, 3),
        "noticed_s": None if noticed is None else round(noticed["t"] - fault, 3),
        "registered_s": None if accepted is None else round(accepted["t"] - fault, 3),
    }
    figures = judge.figures["fa_restart"]
    judge.check(
        "fa-restart: the MN notices the FA reboot by its sequence number, registers again (RFC 5944 §2.4.4)",
        stopped.get("exit_code") == -9
        and noticed is not None
        and accepted is not None
        and accepted["t"] < end,
        f"FA exit code {stopped.get('exit_code')}; reboot noticed "
        f"{figures['noticed_s']} s and registered {figures['registered_s']} s "
        "after the kill",
    )
    since = accepted["t"] if accepted is not None else math.inf
    back = {name: first_received(judge.run.flows.get(name), since) for name in FLOWS}
    judge.check(
        "fa-restart: traffic comes back after the re-registration",
        accepted is not None and all(t is not None and t < end for t in back.values()),
        f"outage ms {outages}",
    )
