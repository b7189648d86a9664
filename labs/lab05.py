"""Lab 05, NAT traversal (RFC 3519): a co-located care-of address behind a NAT, the UDP Tunnel Request and
Reply, MIP Tunnel Data carrying IPv4 and IPv6 (RFC 5454 §3.9), keepalives and a NAT that forgets its
mapping. Scenario: nat_traversal, one loss of the mapping."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from labs import evidence as ev
from labs.errors import Missing
from labs.grading import Measured, Task
from labs.lab import Lab, Setting
from labs.runview import RunView, where_message

PUBLIC = "nat1-nat1-pub.pcap"
HA, NAT_PUBLIC = "192.0.2.1", "203.0.113.66"


def draw(rng: random.Random) -> dict[str, Any]:
    return {"keepalive": rng.choice((2, 3)), "rate": rng.choice((40, 50, 60))}


def argv(variant: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    return [
        "--losses",
        "1",
        "--dwell",
        "1.5",
        "--settle-timeout",
        "8",
        "--rate",
        str(variant["rate"]),
        "--keepalive",
        str(variant["keepalive"]),
        "--set",
        f"mn1.mobile_node.udp_tunnelling={settings['mn1_udp_tunnelling']}",
    ]


def nat_requests(run: RunView) -> list[dict[str, Any]]:
    found = [m for m in ev.requests(run, PUBLIC, source=NAT_PUBLIC) if m.get("lifetime", 0) > 0]
    if not found:
        raise Missing("no Registration Request crossed the NAT's public side")
    return found


def nat_reply(run: RunView) -> dict[str, Any]:
    found = ev.replies(run, PUBLIC, source=HA, destination=NAT_PUBLIC, code=0)
    return ev.first(found, "the home agent accepted no registration through the NAT")


def udp_tunnelled(run: RunView) -> Measured:
    request = nat_requests(run)[0]
    where = where_message(PUBLIC, request)
    if not any(extension.get("type") == 144 for extension in request.get("extensions", [])):
        return Measured(False, f"{where}: no UDP Tunnel Request extension (144)")
    data = run.find(PUBLIC, "Tunnel Data", destination=HA)
    if not data:
        return Measured(False, f"{where} asks for UDP tunnelling, but no Tunnel Data crossed the NAT")
    return Measured(True, where_message(PUBLIC, data[0]))


def request_value(index: int, field: str) -> Any:
    def measure(run: RunView) -> Measured:
        found = nat_requests(run)
        if len(found) <= index:
            raise Missing(f"only {len(found)} Registration Request(s) crossed the NAT's public side")
        return Measured(found[index][field], where_message(PUBLIC, found[index]))

    return measure


def udp_extension(field: str, reply: bool) -> Any:
    def measure(run: RunView) -> Measured:
        message = nat_reply(run) if reply else nat_requests(run)[0]
        value = ev.extension(message, 44 if reply else 144)[field]
        return Measured(value, where_message(PUBLIC, message) + f", extension {44 if reply else 144}")

    return measure


def prefix_code(run: RunView) -> Measured:
    reply = nat_reply(run)
    return Measured(ev.extension(reply, 152, 2)["code"], where_message(PUBLIC, reply) + ", extension 152")


def tunnel_next_header(version: int) -> Any:
    def measure(run: RunView) -> Measured:
        found = [
            m for m in run.find(PUBLIC, "Tunnel Data", destination=HA) if m["inner"]["version"] == version
        ]
        message = ev.first(found, f"no Tunnel Data carrying IPv{version} towards the home agent")
        return Measured(message["next_header"], where_message(PUBLIC, message))

    return measure


def keepalive_gap(run: RunView) -> Measured:
    due = [line for line in run.events("mn1", "keepalive_due") if line.event.get("attempt") == 1]
    if len(due) < 2:
        raise Missing("mn1 sent fewer than two keepalives")
    return Measured(round(due[1].event["t"] - due[0].event["t"], 2), f"{due[0].where} and {due[1].where}")


def keepalives_missed(run: RunView) -> Measured:
    line = ev.first(run.events("mn1", "keepalive_lost"), "mn1 never gave up on unanswered keepalives")
    return Measured(line.event["missed"], line.where)


def tasks(variant: Mapping[str, Any]) -> list[Task]:
    return [
        Task(
            "udp_tunnelling",
            "Behind the NAT nothing gets through, in either direction. Find out why from the NAT's public "
            "side, fix mn1's setting and run the lab again.",
            udp_tunnelled,
            "mn1 must ask for UDP tunnelling (RFC 3519) and its traffic must cross the NAT in "
            "MIP Tunnel Data",
            kind="config",
        ),
        Task(
            "care_of",
            "The Care-of Address in mn1's first request on the NAT's public side?",
            request_value(0, "care_of_address"),
            "mn1's first Registration Request on the public side",
            kind="address",
        ),
        Task(
            "request_source",
            "... the source address of the IP packet that carried it?",
            request_value(0, "source"),
            "the IP header of that request",
            kind="address",
        ),
        Task(
            "nat_port",
            "... and its UDP source port?",
            request_value(0, "source_port"),
            "the UDP header of that request",
        ),
        Task(
            "encapsulation",
            "The Encapsulation field of its UDP Tunnel Request?",
            udp_extension("encapsulation", False),
            "the UDP Tunnel Request extension (type 144)",
        ),
        Task(
            "keepalive",
            "The Keepalive Interval in the home agent's UDP Tunnel Reply (s)?",
            udp_extension("keepalive", True),
            "the UDP Tunnel Reply extension (type 44)",
        ),
        Task(
            "prefix_reply_code",
            "The code of the home agent's IPv6 Prefix Reply?",
            prefix_code,
            "the DSMIPv4 extension (type 152, subtype 2) of the home agent's reply",
        ),
        Task(
            "next_header_v4",
            "The Next Header of MIP Tunnel Data carrying IPv4?",
            tunnel_next_header(4),
            "a Tunnel Data message (type 4) carrying an IPv4 packet",
        ),
        Task(
            "next_header_v6",
            "... and carrying IPv6?",
            tunnel_next_header(6),
            "a Tunnel Data message (type 4) carrying an IPv6 packet",
        ),
        Task(
            "keepalive_gap",
            "The time between mn1's first two keepalives (s, ± 10 %)?",
            keepalive_gap,
            "mn1's keepalive_due events",
            kind="number",
            tolerance=0.10,
        ),
        Task(
            "keepalives_missed",
            "How many unanswered keepalives made mn1 register again after the NAT forgot the mapping?",
            keepalives_missed,
            "mn1's keepalive_lost event",
        ),
        Task(
            "new_port",
            "The NAT's new public UDP port for mn1's next registration?",
            request_value(1, "source_port"),
            "mn1's second Registration Request on the public side",
        ),
    ]


LAB = Lab(
    number="05",
    name="nat-traversal",
    title="NAT traversal (RFC 3519)",
    scenario="nat_traversal",
    minutes=60,
    settings={
        "mn1_udp_tunnelling": Setting(
            str, "mn1's UDP tunnelling: off, auto or force", choices=("off", "auto", "force")
        )
    },
    solution=lambda variant: {"mn1_udp_tunnelling": "auto"},
    draw=draw,
    argv=argv,
    tasks=tasks,
)
