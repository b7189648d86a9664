"""Lab 03, DSMIPv4 (RFC 5454): the IPv6 Prefix Request and Reply (extension 152, reply codes), IPv6 carried
in IPv4 to the home address, double encapsulation through an IPv4-only foreign agent, reverse tunnelling
(RFC 3024), read in Wireshark with our dissector. Scenario: handover, one cycle."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from labs import evidence as ev
from labs.errors import Missing
from labs.grading import Measured, Task
from labs.lab import Lab, Setting
from labs.runview import RunView, where_message

FA1_ACC, FA1_NET = "fa1-fa1-acc.pcap", "fa1-fa1-net.pcap"
HA, HOA, COA, CN6, MN6 = "192.0.2.1", "192.0.2.10", "198.51.100.2", "2001:db8:ff::10", "2001:db8:10::c000:20a"


def draw(rng: random.Random) -> dict[str, Any]:
    return {"rate": rng.choice((40, 50, 60, 80)), "dwell": rng.choice((2.0, 2.5, 3.0))}


def argv(variant: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    reverse = "true" if settings["mn1_reverse_tunnel"] else "false"
    return [
        "--moves",
        "1",
        "--rate",
        str(variant["rate"]),
        "--dwell",
        str(variant["dwell"]),
        "--set",
        f"mn1.mobile_node.reverse_tunnel={reverse}",
    ]


def mn_request(run: RunView) -> dict[str, Any]:
    found = [m for m in ev.requests(run, FA1_ACC, source=HOA) if m.get("lifetime", 0) > 0]
    return ev.first(found, "mn1 sent no Registration Request on FA1's access link")


def ha_reply(run: RunView) -> dict[str, Any]:
    found = ev.replies(run, FA1_NET, source=HA, destination=COA)
    return ev.first(found, "no Registration Reply from the home agent on FA1's network link")


def reverse_tunnelled(run: RunView) -> Measured:
    request = mn_request(run)
    where = where_message(FA1_ACC, request)
    if "T" not in request["flags"]["names"]:
        return Measured(False, f"{where}: the T flag is clear")
    try:
        frame, _ = ev.first_layered(run, FA1_NET, MN6, CN6, depth=3)
    except Missing:
        return Measured(
            False, f"{where} asks for T, but no mn1 → correspondent IPv6 packet left FA1 tunnelled"
        )
    return Measured(True, frame.where)


def prefix_request(run: RunView) -> Measured:
    request = mn_request(run)
    return Measured(
        ev.extension(request, 152, 1)["prefix"], where_message(FA1_ACC, request) + ", extension 152"
    )


def prefix_reply_code(run: RunView) -> Measured:
    # the reply's frame number is itself an answer (reply_frame): name the file and the packet, not the frame
    reply = ha_reply(run)
    return Measured(
        ev.extension(reply, 152, 2)["code"],
        f"pcaps/{FA1_NET}, the home agent's first Registration Reply, extension 152",
    )


def reply_frame(run: RunView) -> Measured:
    reply = ha_reply(run)
    return Measured(reply["frame"], f"pcaps/{FA1_NET} (filter dsmipv4)")


def down_layer(pcap: str, index: int, part: int) -> Any:
    """Header ``index`` (0 = outermost) of the first correspondent → mn1 IPv6 packet in ``pcap``: its
    source (part 1), destination (2), next protocol (3); ``part`` 0: how many headers."""

    def measure(run: RunView) -> Measured:
        frame, found = ev.first_layered(run, pcap, CN6, MN6)
        value: Any = len(found) if part == 0 else found[index][part]
        return Measured(value, frame.where)

    return measure


def tasks(variant: Mapping[str, Any]) -> list[Task]:
    return [
        Task(
            "reverse_tunnel",
            "The IPv6 probe from mn1 to the correspondent (v6-up) never arrives while mn1 is away. Find out "
            "why from the captures, fix it in your settings file and run the lab again.",
            reverse_tunnelled,
            "mn1 must ask for reverse tunnelling (T) and its IPv6 must leave FA1 inside the tunnel",
            kind="config",
        ),
        Task(
            "prefix_requested",
            "Which IPv6 prefix does mn1 request in its IPv6 Prefix Request?",
            prefix_request,
            "the DSMIPv4 extension (type 152, subtype 1) of mn1's request",
            kind="address",
        ),
        Task(
            "prefix_reply_code",
            "The code of the home agent's IPv6 Prefix Reply?",
            prefix_reply_code,
            "the DSMIPv4 extension (type 152, subtype 2) of the home agent's reply",
        ),
        Task(
            "reply_frame",
            "Open fa1-fa1-net.pcap in Wireshark with our dissector: the frame number of the home agent's "
            "first Registration Reply?",
            reply_frame,
            "filter `dsmipv4` in Wireshark (docs/wireshark.md)",
        ),
        Task(
            "net_headers",
            "On FA1's network link, a correspondent → mn1 IPv6 probe travels in how many IP headers in all?",
            down_layer(FA1_NET, 0, 0),
            "a v6-down probe on FA1's network link: count every IP header",
        ),
        Task(
            "net_outer_src",
            "... the source of its outermost header?",
            down_layer(FA1_NET, 0, 1),
            "the outer IPv4 header of a v6-down probe on FA1's network link",
            kind="address",
        ),
        Task(
            "net_outer_dst",
            "... the destination of its outermost header?",
            down_layer(FA1_NET, 0, 2),
            "the outer IPv4 header of a v6-down probe on FA1's network link",
            kind="address",
        ),
        Task(
            "net_middle_dst",
            "... the destination of the header in the middle?",
            down_layer(FA1_NET, 1, 2),
            "the second IPv4 header of a v6-down probe on FA1's network link",
            kind="address",
        ),
        Task(
            "access_proto",
            "On FA1's access link (fa1-fa1-acc.pcap), the Protocol field of the outer header of that probe?",
            down_layer(FA1_ACC, 0, 3),
            "the outer IPv4 header of a v6-down probe on FA1's access link",
        ),
        Task(
            "access_headers",
            "... and how many IP headers does it have there?",
            down_layer(FA1_ACC, 0, 0),
            "a v6-down probe on FA1's access link: count every IP header",
        ),
    ]


LAB = Lab(
    number="03",
    name="dsmipv4",
    title="DSMIPv4: IPv6 prefixes and tunnels through an IPv4-only FA",
    scenario="handover",
    minutes=60,
    settings={"mn1_reverse_tunnel": Setting(bool, "mn1 asks for reverse tunnelling (the T flag)")},
    solution=lambda variant: {"mn1_reverse_tunnel": True},
    draw=draw,
    argv=argv,
    tasks=tasks,
)
