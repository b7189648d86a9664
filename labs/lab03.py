"""Lab 03, DSMIPv4 (RFC 5454): the IPv6 Prefix Request and Reply (extension 152, reply codes), IPv6 carried
in IPv4 to the home address, double encapsulation through an IPv4-only foreign agent, reverse tunnelling
(RFC 3024), read in Wireshark with our dissector. Scenario: handover, one cycle."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labs import evidence as ev
from labs.errors import Missing
from labs.grading import Measured, Task
from labs.lab import Lab, Setting
from labs.runview import RunView, where_message

HA, HOA, CN6, MN6 = "192.0.2.1", "192.0.2.10", "2001:db8:ff::10", "2001:db8:10::c000:20a"
CARE_OF = {1: "198.51.100.2", 2: "198.51.100.18"}
"""Each foreign agent's care-of address, its network end (topologies/dualstack.py)."""


@dataclass(frozen=True)
class Agent:
    """The foreign agent the questions ask about (the variant's): its captures and care-of address."""

    number: int

    @property
    def access(self) -> str:
        return f"fa{self.number}-fa{self.number}-acc.pcap"

    @property
    def net(self) -> str:
        return f"fa{self.number}-fa{self.number}-net.pcap"

    @property
    def care_of(self) -> str:
        return CARE_OF[self.number]


def draw(rng: random.Random) -> dict[str, Any]:
    return {
        "rate": rng.choice((40, 50, 60, 80)),
        "dwell": rng.choice((2.0, 2.5, 3.0)),
        "fa": rng.choice((1, 2)),
    }


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


def mn_request(run: RunView, fa: Agent) -> dict[str, Any]:
    found = [m for m in ev.requests(run, fa.access, source=HOA) if m.get("lifetime", 0) > 0]
    return ev.first(found, f"mn1 sent no Registration Request on FA{fa.number}'s access link")


def ha_reply(run: RunView, fa: Agent) -> dict[str, Any]:
    found = ev.replies(run, fa.net, source=HA, destination=fa.care_of)
    return ev.first(found, f"no Registration Reply from the home agent on FA{fa.number}'s network link")


def reverse_tunnelled(fa: Agent) -> Any:
    def measure(run: RunView) -> Measured:
        request = mn_request(run, fa)
        where = where_message(fa.access, request)
        if "T" not in request["flags"]["names"]:
            return Measured(False, f"{where}: the T flag is clear")
        try:
            frame, _ = ev.first_layered(run, fa.net, MN6, CN6, depth=3)
        except Missing:
            return Measured(
                False,
                f"{where} asks for T, but no mn1 → correspondent IPv6 packet left FA{fa.number} tunnelled",
            )
        return Measured(True, frame.where)

    return measure


def prefix_request(fa: Agent) -> Any:
    def measure(run: RunView) -> Measured:
        request = mn_request(run, fa)
        return Measured(
            ev.extension(request, 152, 1)["prefix"], where_message(fa.access, request) + ", extension 152"
        )

    return measure


def prefix_reply_code(fa: Agent) -> Any:
    def measure(run: RunView) -> Measured:
        # the reply's frame number is itself an answer (reply_frame): name the file and packet, not the frame
        reply = ha_reply(run, fa)
        return Measured(
            ev.extension(reply, 152, 2)["code"],
            f"pcaps/{fa.net}, the home agent's first Registration Reply, extension 152",
        )

    return measure


def reply_frame(fa: Agent) -> Any:
    def measure(run: RunView) -> Measured:
        reply = ha_reply(run, fa)
        return Measured(reply["frame"], f"pcaps/{fa.net} (filter dsmipv4)")

    return measure


def down_layer(pcap: str, index: int, part: int) -> Any:
    """Header ``index`` (0 = outermost) of the first correspondent → mn1 IPv6 packet in ``pcap``: its
    source (part 1), destination (2), next protocol (3); ``part`` 0: how many headers."""

    def measure(run: RunView) -> Measured:
        frame, found = ev.first_layered(run, pcap, CN6, MN6)
        value: Any = len(found) if part == 0 else found[index][part]
        return Measured(value, frame.where)

    return measure


def tasks(variant: Mapping[str, Any]) -> list[Task]:
    fa = Agent(int(variant["fa"]))
    n = fa.number
    return [
        Task(
            "reverse_tunnel",
            "The IPv6 probe from mn1 to the correspondent (v6-up) never arrives while mn1 is away. Find out "
            "why from the captures, fix it in your settings file and run the lab again.",
            reverse_tunnelled(fa),
            f"mn1 must ask for reverse tunnelling (T) and its IPv6 must leave FA{n} inside the tunnel",
            kind="config",
        ),
        Task(
            "prefix_requested",
            f"Which IPv6 prefix does mn1 request in its IPv6 Prefix Request through FA{n}?",
            prefix_request(fa),
            "the DSMIPv4 extension (type 152, subtype 1) of mn1's request",
            kind="address",
        ),
        Task(
            "prefix_reply_code",
            "The code of the home agent's IPv6 Prefix Reply?",
            prefix_reply_code(fa),
            "the DSMIPv4 extension (type 152, subtype 2) of the home agent's reply",
        ),
        Task(
            "reply_frame",
            f"Open {fa.net} in Wireshark with our dissector: the frame number of the home agent's "
            "first Registration Reply?",
            reply_frame(fa),
            "filter `dsmipv4` in Wireshark (docs/wireshark.md)",
        ),
        Task(
            "net_headers",
            f"On FA{n}'s network link, a correspondent → mn1 IPv6 probe travels in how many IP headers "
            "in all?",
            down_layer(fa.net, 0, 0),
            f"a v6-down probe on FA{n}'s network link: count every IP header",
        ),
        Task(
            "net_outer_src",
            "... the source of its outermost header?",
            down_layer(fa.net, 0, 1),
            f"the outer IPv4 header of a v6-down probe on FA{n}'s network link",
            kind="address",
        ),
        Task(
            "net_outer_dst",
            "... the destination of its outermost header?",
            down_layer(fa.net, 0, 2),
            f"the outer IPv4 header of a v6-down probe on FA{n}'s network link",
            kind="address",
        ),
        Task(
            "net_middle_dst",
            "... the destination of the header in the middle?",
            down_layer(fa.net, 1, 2),
            f"the second IPv4 header of a v6-down probe on FA{n}'s network link",
            kind="address",
        ),
        Task(
            "access_proto",
            f"On FA{n}'s access link ({fa.access}), the Protocol field of the outer header of that probe?",
            down_layer(fa.access, 0, 3),
            f"the outer IPv4 header of a v6-down probe on FA{n}'s access link",
        ),
        Task(
            "access_headers",
            "... and how many IP headers does it have there?",
            down_layer(fa.access, 0, 0),
            f"a v6-down probe on FA{n}'s access link: count every IP header",
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
