"""Verdicts and figures of the security scenario's ``nat-loss`` phase (scenarios/security_nat.py), from the
run folder only: the scenario's marks (``nat_mapping_lost``, ``nat_rebound``, ``nat_left``), the HA's and
the MN's traces, the probes. RFC 3519 §4.9–§4.10: keepalives find the lost mapping, the MN registers again
and the HA's binding follows the NAT's new public port."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from agents.mip.common.trace_schema import TraceEvent
from reports.security_faults import FLOWS, first_received, outage_ms

if TYPE_CHECKING:
    from reports.security import Judge


def nat_loss(judge: Judge) -> None:
    from reports.security import phase_window, steps

    _, end = phase_window(judge.run, "nat-loss")
    lost = (steps(judge.run, "nat_mapping_lost") or [{}])[0]
    rebound = (steps(judge.run, "nat_rebound") or [{}])[0]
    left = (steps(judge.run, "nat_left") or [{}])[0]
    fault = float(lost.get("t", math.nan))
    until = float(left.get("t", end))
    mn = str(judge.meta.get("mobile_node", "mn1"))
    accepted = next(
        (
            e
            for e in judge.run.events(mn, TraceEvent.REGISTRATION_ACCEPTED)
            if e["t"] > fault and e["t"] <= until
        ),
        None,
    )
    moved = [
        e
        for e in judge.run.events("ha", TraceEvent.BINDING_UPDATED, TraceEvent.BINDING_ADDED)
        if e.get("home_address") == judge.hoa and fault < e["t"] <= until
    ]
    outages = {name: outage_ms(judge.run.flows.get(name), fault, until) for name in FLOWS}
    since = accepted["t"] if accepted else math.inf
    back = {name: first_received(judge.run.flows.get(name), since) for name in FLOWS}
    lost_keepalives = [
        e
        for e in judge.run.events(mn, TraceEvent.KEEPALIVE_LOST)
        if fault < e["t"] <= (since if accepted else until)
    ]
    judge.figures["nat_loss"] = {
        "noticed_by": "keepalives" if lost_keepalives else "renewal",
        "keepalive_s": judge.meta.get("keepalive"),
        "port_before": lost.get("port"),
        "port_after": rebound.get("port"),
        "registered_again_s": None if accepted is None else round(since - fault, 3),
        "outage_ms": outages,
    }
    before, after = lost.get("port"), rebound.get("port")
    judge.check(
        "nat-loss: the MN registers again from the NAT's new public port, the HA's binding follows "
        "(RFC 3519 §4.9–§4.10)",
        before is not None and after is not None and before != after and accepted is not None and bool(moved),
        f"binding port {before} → {after}; registered again "
        f"{judge.figures['nat_loss']['registered_again_s']} s after the loss; "
        f"{len(moved)} binding updates at the HA",
    )
    judge.check(
        "nat-loss: traffic comes back after the new registration (outage = longest probe gap)",
        accepted is not None and all(t is not None and t <= until for t in back.values()),
        f"outage ms {outages}",
    )
