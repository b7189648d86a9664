"""Lab 01, agent discovery (RFC 5944 §2): advertisements, solicitations, H/F/T flags, lifetimes, movement
detection by link event vs by advertisement. Scenario: handover, two cycles, detection alternating."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from labs import evidence as ev
from labs.grading import Measured, Task
from labs.lab import Lab, Setting
from labs.runview import RunView

FA1, FA2, HA = "10.0.1.1", "10.0.2.1", "192.0.2.1"
FA1_ACC, FA2_ACC, HOME, MN = "fa1-fa1-acc.pcap", "fa2-fa2-acc.pcap", "ha-ha-eth0.pcap", "mn1-mn1-eth0.pcap"


def draw(rng: random.Random) -> dict[str, Any]:
    return {
        "adv_interval": rng.choice((0.6, 0.8, 1.0, 1.2)),
        "fa2_target": rng.choice((0.5, 0.6, 0.7, 0.8)),
        "advert_handover": rng.choice((4, 5)),
        "fa1_max_lifetime": rng.choice((120, 180, 240, 300, 450, 600)),
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
        "50",
        "--adv-interval",
        str(variant["adv_interval"]),
        "--set",
        f"fa2.foreign_agent.advertisement.max_interval={settings['fa2_adv_interval']}",
        "--set",  # the Registration Lifetime FA1 advertises (RFC 5944 §2.1.1): above mn1's 60 s request
        f"fa1.foreign_agent.max_lifetime={variant['fa1_max_lifetime']}",
    ]


def fa2_interval(target: float) -> Any:
    def measure(run: RunView) -> Measured:
        gap = ev.advertisement_gap(run, FA2_ACC, FA2)
        # jittered uniformly in [0.75, 1] × max_interval (RFC 1256 §4.1): the median sits near 0.875 ×
        return Measured(0.7 * target <= gap.value <= 1.05 * target, f"{gap.where}: median gap {gap.value} s")

    return measure


def solicitations(run: RunView) -> Measured:
    found = run.find(MN, "Agent Solicitation")
    first = ev.first(found, "mn1 sent no Agent Solicitation")
    return Measured(len(found), f"pcaps/{MN} from frame {first['frame']} (Agent Solicitation)")


def reason(handover: int) -> Any:
    def measure(run: RunView) -> Measured:
        line = ev.detection_line(run, handover)
        return Measured(line.event["reason"], line.where)

    return measure


def tasks(variant: Mapping[str, Any]) -> list[Task]:
    k, target = int(variant["advert_handover"]), float(variant["fa2_target"])
    return [
        Task(
            "fa2_interval",
            f"FA2 advertises far too rarely. Give FA2 a maximum advertisement interval of {target} s "
            f"(fa2_adv_interval in your settings file) and run the lab again.",
            fa2_interval(target),
            "FA2's unsolicited advertisements (to 224.0.0.1) are not about that far apart",
            kind="config",
        ),
        Task(
            "fa1_lifetime",
            "The Lifetime (ICMP header, seconds) of FA1's advertisements?",
            lambda run: ev.advertisement_field(run, FA1_ACC, FA1, "lifetime"),
            "FA1's Agent Advertisement, ICMP Lifetime field",
        ),
        Task(
            "fa1_care_of",
            "The care-of address FA1 advertises?",
            lambda run: ev.advertisement_field(run, FA1_ACC, FA1, "care_of_addresses"),
            "the Mobility Agent Advertisement extension of FA1's advertisement",
            kind="address",
        ),
        Task(
            "fa1_flags",
            "Which flags (letters) does FA1 set in its Mobility Agent Advertisement extension?",
            lambda run: ev.advertisement_field(run, FA1_ACC, FA1, "flags"),
            "the flags of FA1's Mobility Agent Advertisement extension (R B H F M G r T U X I)",
            kind="letters",
        ),
        Task(
            "ha_flags",
            "Which flags (letters) does the home agent set in its advertisements on the home link?",
            lambda run: ev.advertisement_field(run, HOME, HA, "flags"),
            "the home agent's advertisement (source 192.0.2.1) on the home link",
            kind="letters",
        ),
        Task(
            "registration_lifetime",
            "The Registration Lifetime FA1 advertises (seconds)?",
            lambda run: ev.advertisement_field(run, FA1_ACC, FA1, "registration_lifetime"),
            "the Registration Lifetime of FA1's Mobility Agent Advertisement extension",
        ),
        Task(
            "advertisement_ttl",
            "The IP TTL of the agent advertisements?",
            lambda run: ev.advertisement_field(run, FA1_ACC, FA1, "ttl"),
            "the IP header of an advertisement (RFC 5944 §2.1)",
        ),
        Task(
            "solicitations",
            "How many Agent Solicitations did mn1 send in the whole run (mn1's capture)?",
            solicitations,
            "count ICMP type 10 in mn1's capture",
        ),
        Task(
            "reason_1",
            "Why did mn1 decide it had moved in handover 1 (the reason in its trace)?",
            reason(1),
            "mn1's movement_detected event right after handover 1's move_started",
            kind="text",
        ),
        Task(
            "reason_advert",
            f"... and in handover {k} (carrier kept up)?",
            reason(k),
            f"mn1's movement_detected event after handover {k}'s move_started",
            kind="text",
        ),
        Task(
            "detect_ms_1",
            "How long after the move did mn1 detect handover 1 (ms, ± 10 %)?",
            lambda run: ev.handover_value(run, 1, "movement_detected_ms"),
            "movement_detected_ms of handover 1",
            kind="number",
            tolerance=0.10,
            floor=5.0,
        ),
        Task(
            "detect_ms_advert",
            f"How long after the move did mn1 detect handover {k} (ms, ± 10 %)?",
            lambda run: ev.handover_value(run, k, "movement_detected_ms"),
            f"movement_detected_ms of handover {k}",
            kind="number",
            tolerance=0.10,
            floor=5.0,
        ),
    ]


LAB = Lab(
    number="01",
    name="agent-discovery",
    title="Agent discovery and movement detection",
    scenario="handover",
    minutes=45,
    settings={
        "fa2_adv_interval": Setting(
            float, "FA2's maximum advertisement interval, seconds", low=0.1, high=60.0
        )
    },
    solution=lambda variant: {"fa2_adv_interval": float(variant["fa2_target"])},
    draw=draw,
    argv=argv,
    tasks=tasks,
)
