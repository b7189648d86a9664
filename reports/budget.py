"""The handover latency budget (issue 14): each step of a link-event handover, its target and what the
run measured, from the handovers.csv decomposition (:mod:`reports.handovers`).

A step is the time between two decomposition columns of the same handover. The targets add up to the
2 ms the issue asks of a standard link-event handover after the link is back (the harness's own carrier
flap is not counted): they are what a Python agent on this machine can reach where the protocol needs
nothing more (a UDP request/response between two namespaces takes ~15 µs), not protocol constants.
Only standard link-event handovers to a foreign agent are counted (returns home have no FA hops;
announced handovers do their registration before the move).

Since the waits that are not protocol were removed, two steps may be ≤ 0: the mobile node sends its
request by frame before it writes the trace lines of the advertisement that caused it (and before its
route change), and the home agent sends its reply to a care-of address before it applies and traces the
binding (the ``rrq_sent`` / ``rrp_sent`` lines carry the time the message left, the ``rrq_received`` /
``rrp_received`` lines the time it was read).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    name: str
    start: str
    end: str
    target_ms: float


STEPS = (
    Step("carrier event → movement detected (MN)", "link_up_ms", "movement_detected_ms", 0.3),
    Step("solicitation → advertisement heard (MN)", "solicitation_sent_ms", "agent_discovered_ms", 0.3),
    Step("advertisement → request sent (MN: frame first)", "agent_discovered_ms", "rrq_sent_ms", 0.1),
    Step("request: MN → FA relay", "rrq_sent_ms", "fa_rrq_relayed_ms", 0.2),
    Step("request: FA → HA", "fa_rrq_relayed_ms", "ha_rrq_received_ms", 0.2),
    Step("HA: request → binding", "ha_rrq_received_ms", "ha_binding_ms", 0.1),
    Step("HA: binding → reply sent (reply first)", "ha_binding_ms", "ha_rrp_sent_ms", 0.1),
    Step("reply: HA → FA relay", "ha_rrp_sent_ms", "fa_rrp_relayed_ms", 0.2),
    Step("reply: FA → MN", "fa_rrp_relayed_ms", "rrp_received_ms", 0.2),
    Step("reply → first IPv4 packet down (MN)", "rrp_received_ms", "v4-down_first_rx_ms", 0.3),
)
"""The steps, in order, with their targets (ms); 2.0 ms in all."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def nearest_rank(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the ⌈fraction·n⌉-th smallest value (1-based), at least the first."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def counted(row: dict[str, Any]) -> bool:
    """A standard link-event handover to a foreign agent."""
    return (
        row.get("detection") == "link"
        and row.get("handoff", "standard") in ("standard", None)
        and row.get("to") != "home"
    )


def budget(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per step: target, median and nearest-rank p95 (ms), handovers measured, over target."""
    chosen = [row for row in rows if counted(row)]
    result = []
    for step in STEPS:
        spans = []
        for row in chosen:
            start, end = _number(row.get(step.start)), _number(row.get(step.end))
            if start is not None and end is not None:
                spans.append(end - start)
        median = round(statistics.median(spans), 3) if spans else None
        p95 = round(nearest_rank(spans, 0.95), 3) if spans else None
        result.append(
            {
                "step": step.name,
                "target_ms": step.target_ms,
                "median_ms": median,
                "p95_ms": p95,
                "measured": len(spans),
                "over_target": None if median is None else median > step.target_ms,
            }
        )
    return result
