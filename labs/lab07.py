"""Lab 07, deregistration and stale state (RFC 5944 §3.6.1.2, §4.6, §3.8.3; RFC 5454 §3.8): every way a
node leaves its home agent, what the home agent keeps each time, and how long stale state lives after a node
dies silently (the granted lifetime). Scenario: deregistration."""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Mapping
from typing import Any

from labs import evidence as ev
from labs.errors import Missing
from labs.grading import Measured, Task
from labs.lab import Lab, Setting
from labs.runview import RunView, where_message

HOME = "ha-ha-eth0.pcap"
FA1_COA, HOA, CN = "198.51.100.2", "192.0.2.10", "203.0.113.10"


def draw(rng: random.Random) -> dict[str, Any]:
    return {"lifetime_target": rng.choice((3, 4, 5)), "rate": rng.choice((40, 50))}


def argv(variant: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    return [
        "--lifetime",
        str(settings["ha_max_lifetime"]),
        "--rate",
        str(variant["rate"]),
        "--dwell",
        "1",
        "--no-pcap",
    ]


def accepted_via_fa(run: RunView) -> list[dict[str, Any]]:
    found = ev.replies(run, HOME, destination=FA1_COA, home_address=HOA, code=0)
    return [m for m in found if m.get("lifetime", 0) > 0]


def lifetime_set(target: int) -> Any:
    def measure(run: RunView) -> Measured:
        reply = ev.first(accepted_via_fa(run), "the home agent accepted no registration of mn1 through FA1")
        where = where_message(HOME, reply) + f": Lifetime {reply['lifetime']}"
        return Measured(reply["lifetime"] == target, where)

    return measure


def fa_deregistration(part: str) -> Any:
    def measure(run: RunView) -> Measured:
        found = ev.requests(run, HOME, source=FA1_COA, home_address=HOA, lifetime=0)
        request = ev.first(found, "mn1 sent no deregistration through FA1")
        if part == "lifetime":
            return Measured(request["lifetime"], where_message(HOME, request))
        replies = [
            m
            for m in ev.replies(run, HOME, destination=FA1_COA, home_address=HOA, lifetime=0)
            if m["identification"]["value"] == request["identification"]["value"]
        ]
        reply = ev.first(replies, f"no reply to the deregistration in {where_message(HOME, request)}")
        return Measured(reply["code"], where_message(HOME, reply))

    return measure


def home_deregistration(run: RunView) -> Measured:
    found = ev.requests(run, HOME, source=HOA, home_address=HOA, lifetime=0)
    request = ev.first(found[1:] or found, "mn1 sent no deregistration from the home link")
    return Measured(request["care_of_address"], where_message(HOME, request))


def omitted_prefix(run: RunView) -> Measured:
    lines = [
        line for line in run.events("ha", "prefix_deregistered") if "omitted" in str(line.event.get("reason"))
    ]
    line = ev.first(lines, "the home agent removed no prefix for being omitted")
    return Measured(line.event["prefix"]["prefix"], line.where)


def renewal_gap(run: RunView) -> Measured:
    started = ev.first(
        run.events("scenario", "step", what="renewals_started"), "no renewals phase in this run"
    )
    finished = ev.first(
        run.events("scenario", "step", what="renewals_finished"), "the renewals phase never ended"
    )
    offset = run.clock_offset()
    low, high = started.event["t"] + offset, finished.event["t"] + offset
    found = [
        m
        for m in ev.requests(run, HOME, source=FA1_COA, home_address=HOA)
        if m["lifetime"] > 0 and low <= m["time"] <= high
    ]
    if len(found) < 3:
        raise Missing("fewer than 3 renewals between renewals_started and renewals_finished")
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(found)]
    return Measured(
        round(statistics.median(gaps), 2), f"{where_message(HOME, found[0])} and the requests after it"
    )


def black_hole(run: RunView) -> Measured:
    killed = ev.first(run.events("scenario", "step", what="killed"), "mn1 was never killed in this run")
    gone = [
        line
        for line in run.events("ha", "binding_removed", home_address=HOA)
        if line.event["t"] > killed.event["t"]
    ]
    line = ev.first(gone, "the home agent never removed mn1's binding after mn1 was killed")
    return Measured(round(line.event["t"] - killed.event["t"], 2), f"{killed.where} and {line.where}")


def removal_reason(run: RunView) -> Measured:
    killed = ev.first(run.events("scenario", "step", what="killed"), "mn1 was never killed in this run")
    gone = [
        line
        for line in run.events("ha", "binding_removed", home_address=HOA)
        if line.event["t"] > killed.event["t"]
    ]
    line = ev.first(gone, "the home agent never removed mn1's binding after mn1 was killed")
    return Measured(line.event["reason"], line.where)


def replay_code(run: RunView) -> Measured:
    found = [m for m in ev.replies(run, HOME, destination=CN) if m["code"] == 133]
    reply = ev.first(found, "the home agent sent no code 133 reply to the correspondent")
    return Measured(reply["code"], where_message(HOME, reply))


def tasks(variant: Mapping[str, Any]) -> list[Task]:
    target = int(variant["lifetime_target"])
    return [
        Task(
            "ha_lifetime",
            f"When a node dies silently, the home agent keeps its binding, tunnel and proxy ARP (a black "
            f"hole) until the lifetime runs out. Cap the home agent's lifetimes at {target} s "
            f"(ha_max_lifetime) and run the lab again.",
            lifetime_set(target),
            "the Lifetime the home agent grants mn1 must be your cap",
            kind="config",
        ),
        Task(
            "fa_dereg_lifetime",
            "The Lifetime in mn1's deregistration through FA1?",
            fa_deregistration("lifetime"),
            "mn1's first deregistration through FA1 (RFC 5944 §3.6.1.2)",
        ),
        Task(
            "fa_dereg_code",
            "The code of the home agent's reply to it?",
            fa_deregistration("code"),
            "the home agent's reply to that deregistration",
        ),
        Task(
            "home_dereg_care_of",
            "The Care-of Address in the deregistration mn1 sends when it comes home?",
            home_deregistration,
            "mn1's deregistration from the home link (RFC 5944 §4.6)",
            kind="address",
        ),
        Task(
            "omitted_prefix",
            "Which prefix did the home agent remove because mn1 left it out of a request?",
            omitted_prefix,
            "the home agent's prefix_deregistered events (RFC 5454 §3.8)",
            kind="address",
        ),
        Task(
            "renewal_gap",
            "The median time between mn1's renewals in the lifetime phase (s, ± 15 %)?",
            renewal_gap,
            "mn1's requests through FA1 between renewals_started and renewals_finished",
            kind="number",
            tolerance=0.15,
        ),
        Task(
            "replay_code",
            "The code of the reply to the replayed deregistration?",
            replay_code,
            "the home agent's replies to the correspondent",
        ),
        Task(
            "black_hole_s",
            "After mn1 was killed, how long did the home agent keep its binding (s, ± 10 %)?",
            black_hole,
            "the scenario's killed step and the home agent's binding_removed after it",
            kind="number",
            tolerance=0.10,
            floor=0.1,
        ),
        Task(
            "removal_reason",
            "... and the reason the home agent gives for removing it?",
            removal_reason,
            "the home agent's binding_removed event after the kill",
            kind="text",
        ),
    ]


LAB = Lab(
    number="07",
    name="deregistration",
    title="Deregistration and stale state",
    scenario="deregistration",
    minutes=60,
    settings={
        "ha_max_lifetime": Setting(
            int, "the longest lifetime the home agent grants, seconds", low=1, high=600
        )
    },
    solution=lambda variant: {"ha_max_lifetime": int(variant["lifetime_target"])},
    draw=draw,
    argv=argv,
    tasks=tasks,
)
