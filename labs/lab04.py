"""Lab 04, handover latency: where the interruption of a move goes (detection, registration, tunnel), link
events vs advertisements (RFC 5944 §2.4.2), and the advertisement interval (RFC 1256 §4.1). Scenario:
handover, two cycles, detection alternating (cycle 1 by carrier events, cycle 2 by advertisements only)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from labs import evidence as ev
from labs.grading import Measured, Task
from labs.lab import Lab, Setting
from labs.runview import RunView

FA1, FA1_ACC = "10.0.1.1", "fa1-fa1-acc.pcap"
RESIDUAL = 0.4405
"""Mean wait for the next advertisement after a random instant, in units of max_interval, when intervals are
uniform in [0.75, 1] × max_interval: E[X²] / (2 E[X]) = (0.578125 / 0.75) / 1.75."""


def draw(rng: random.Random) -> dict[str, Any]:
    return {
        "adv_target": rng.choice((0.5, 0.8, 1.0, 1.5)),
        "link_handover": rng.choice((1, 2, 3)),
        "advert_handover": rng.choice((4, 5)),
        "rate": rng.choice((100, 200)),
    }


def argv(variant: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    return [
        "--moves",
        "2",
        "--detection",
        "both",
        "--dwell",
        "1.5",
        "--rate",
        str(variant["rate"]),
        "--adv-interval",
        str(settings["adv_interval"]),
    ]


def interval_set(target: float) -> Any:
    def measure(run: RunView) -> Measured:
        gap = ev.advertisement_gap(run, FA1_ACC, FA1)
        return Measured(0.7 * target <= gap.value <= 1.05 * target, f"{gap.where}: median gap {gap.value} s")

    return measure


def column(handover: int, name: str) -> Any:
    return lambda run: ev.handover_value(run, handover, name)


def after_detection(handover: int) -> Any:
    def measure(run: RunView) -> Measured:
        detected = ev.handover_value(run, handover, "movement_detected_ms")
        up = ev.handover_value(run, handover, "tunnel_up_ms")
        return Measured(round(up.value - detected.value, 1), f"{up.where} minus movement_detected_ms")

    return measure


def mean_wait(target: float) -> Any:
    return lambda run: Measured(
        round(RESIDUAL * target * 1000, 1), "RFC 1256 §4.1: intervals jittered in [0.75, 1] ×"
    )


def tasks(variant: Mapping[str, Any]) -> list[Task]:
    target, k, j = (
        float(variant["adv_target"]),
        int(variant["link_handover"]),
        int(variant["advert_handover"]),
    )
    return [
        Task(
            "adv_interval",
            f"The agents advertise only every few seconds: handovers without a carrier event are slow. Set "
            f"their maximum advertisement interval to {target} s (adv_interval) and run the lab again.",
            interval_set(target),
            "FA1's unsolicited advertisements are not about that far apart",
            kind="config",
        ),
        Task(
            "adv_gap",
            "The median gap between FA1's unsolicited advertisements in your run (s, ± 10 %)?",
            lambda run: ev.advertisement_gap(run, FA1_ACC, FA1),
            "the times of FA1's advertisements to 224.0.0.1",
            kind="number",
            tolerance=0.10,
            floor=0.02,
        ),
        Task(
            "interruption_link",
            f"The v4-down interruption of handover {k} (ms, ± 10 %)?",
            column(k, "v4-down_interruption_ms"),
            f"v4-down in handover {k}",
            kind="number",
            tolerance=0.10,
            floor=5.0,
        ),
        Task(
            "lost_link",
            f"How many v4-down packets were lost in handover {k}?",
            column(k, "v4-down_lost"),
            f"v4-down in handover {k}",
        ),
        Task(
            "registration_rtt_link",
            f"The registration round trip of handover {k} (ms, ± 10 %)?",
            column(k, "registration_rtt_ms"),
            f"rrq_sent → rrp_received in handover {k}",
            kind="number",
            tolerance=0.10,
            floor=2.0,
        ),
        Task(
            "interruption_advert",
            f"The v4-down interruption of handover {j} (no carrier event; ms, ± 10 %)?",
            column(j, "v4-down_interruption_ms"),
            f"v4-down in handover {j}",
            kind="number",
            tolerance=0.10,
            floor=5.0,
        ),
        Task(
            "detection_advert",
            f"In handover {j}, how long after the move did mn1 detect it (ms, ± 10 %)?",
            column(j, "movement_detected_ms"),
            f"movement detection in handover {j}",
            kind="number",
            tolerance=0.10,
            floor=5.0,
        ),
        Task(
            "after_detection_advert",
            "... and from that detection to the tunnel being up (ms, ± 10 %)?",
            after_detection(j),
            f"movement_detected_ms and tunnel_up_ms of handover {j}",
            kind="number",
            tolerance=0.10,
            floor=5.0,
        ),
        Task(
            "mean_wait",
            f"With a maximum interval of {target} s (intervals uniform in [0.75, 1] × that), how long "
            f"does a node that just arrived wait for the next advertisement on average (ms, ± 10 %)?",
            mean_wait(target),
            "the mean residual time of a renewal process: E[X²] / (2 E[X])",
            kind="number",
            tolerance=0.10,
        ),
    ]


LAB = Lab(
    number="04",
    name="handover-latency",
    title="Handover latency: link events vs advertisements",
    scenario="handover",
    minutes=60,
    settings={
        "adv_interval": Setting(
            float, "every agent's maximum advertisement interval, seconds", low=0.1, high=60.0
        )
    },
    solution=lambda variant: {"adv_interval": float(variant["adv_target"])},
    draw=draw,
    argv=argv,
    tasks=tasks,
)
