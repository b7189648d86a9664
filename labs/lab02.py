"""Lab 02, registration and authentication (RFC 5944 §3, §5): Registration Request and Reply fields, the
Mobile-Home Authentication extension (HMAC-MD5, §5.1), replay protection by timestamps (§5.7: 133 and the
resynchronising Identification) and a wrong key (131). Scenario: security, phase ``forged``."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from labs import evidence as ev
from labs.errors import Missing
from labs.grading import Measured, Task
from labs.lab import Lab, Setting, draw_key, key_options
from labs.runview import RunView, where_message

HOME = "ha-ha-eth0.pcap"
HOA, FA1_COA, CN = "192.0.2.10", "198.51.100.2", "203.0.113.10"
SPI = 256
STARTING_KEY = "00112233445566778899aabbccddeeff"


def draw(rng: random.Random) -> dict[str, Any]:
    return {
        "keys": {str(SPI): draw_key(rng)},
        "ha_lifetime": rng.choice((3, 4, 5, 6)),
        "mn_lifetime": rng.choice((20, 30, 45, 60, 90, 120)),
    }


def argv(variant: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    key = variant["keys"][str(SPI)]
    return [
        "--phases",
        "forged",
        "--settle-timeout",
        "5",
        "--rate",
        "50",
        "--lifetime",
        str(variant["ha_lifetime"]),
        *key_options("mn1", SPI, key, mn_key=str(settings["mn1_key"])),
        "--set",  # the Lifetime mn1 requests (RFC 5944 §3.3); the home agent grants at most ha_lifetime
        f"mn1.mobile_node.lifetime={variant['mn_lifetime']}",
    ]


def first_request(run: RunView) -> dict[str, Any]:
    found = [m for m in ev.requests(run, HOME, source=FA1_COA, home_address=HOA) if m.get("lifetime", 0) > 0]
    return ev.first(found, "no Registration Request from mn1 relayed by FA1 reached the home agent")


def request_field(field: str) -> Any:
    def measure(run: RunView) -> Measured:
        message = first_request(run)
        value = message[field]
        if field == "flags":
            value = "".join(value["names"])
        return Measured(value, where_message(HOME, message))

    return measure


def auth_field(field: str) -> Any:
    def measure(run: RunView) -> Measured:
        message = first_request(run)
        return Measured(ev.extension(message, 32)[field], where_message(HOME, message) + ", extension 32")

    return measure


def accepted(run: RunView) -> Measured:
    found = ev.replies(run, HOME, destination=FA1_COA, home_address=HOA)
    if not found:
        raise Missing("the home agent sent no Registration Reply for mn1 through FA1")
    good = [m for m in found if m.get("code") == 0 and m.get("lifetime", 0) > 0]
    message = good[0] if good else found[0]
    return Measured(bool(good), where_message(HOME, message) + f", code {message.get('code')}")


def granted(run: RunView) -> Measured:
    found = [m for m in ev.replies(run, HOME, destination=FA1_COA, home_address=HOA, code=0) if m["lifetime"]]
    message = ev.first(found, "the home agent accepted no registration of mn1")
    return Measured(message["lifetime"], where_message(HOME, message))


def forged_reply(code: int, part: str = "code") -> Any:
    def measure(run: RunView) -> Measured:
        found = ev.replies(run, HOME, destination=CN, code=code)
        message = ev.first(found, f"the home agent sent no reply with code {code} to the correspondent")
        identification = int(message["identification"]["value"], 16)
        value = {"code": code, "high": identification >> 32, "low": identification & 0xFFFFFFFF}[part]
        return Measured(value, where_message(HOME, message))

    return measure


def tasks(variant: Mapping[str, Any]) -> list[Task]:
    key = variant.get("keys", {}).get(str(SPI), "?")
    return [
        Task(
            "mn_key",
            f"mn1 does not get registered. Find out why from the captures (mipdump --key {SPI}={key} "
            f"verifies authenticators), fix mn1_key in your settings file and run the lab again.",
            accepted,
            "the home agent's replies to mn1's requests through FA1 were not code 0 (accepted)",
            kind="config",
        ),
        Task(
            "rrq_care_of",
            "The first Registration Request of mn1 that FA1 relayed to the home agent (source 198.51.100.2, "
            "Lifetime > 0; not the deregistration mn1 sent from home): its Care-of Address?",
            request_field("care_of_address"),
            "the first Registration Request on the home link from 198.51.100.2 with Lifetime > 0",
            kind="address",
        ),
        Task(
            "rrq_flags",
            "Which flags (letters) are set in that request?",
            request_field("flags"),
            "the flags byte (S B D M G r T x) of the first request FA1 relayed "
            "(source 198.51.100.2, Lifetime > 0)",
            kind="letters",
        ),
        Task(
            "rrq_lifetime",
            "The Lifetime mn1 asks for in that request (s)?",
            request_field("lifetime"),
            "the Lifetime field of the first request FA1 relayed (source 198.51.100.2, Lifetime > 0)",
        ),
        Task(
            "rrp_lifetime",
            "The Lifetime the home agent grants in its reply (s)?",
            granted,
            "the Lifetime of the home agent's accepting Registration Reply",
        ),
        Task(
            "auth_spi",
            "The SPI of the Mobile-Home Authentication extension of that request?",
            auth_field("spi"),
            "the Mobile-Home Authentication extension (type 32)",
        ),
        Task(
            "authenticator",
            "Its Authenticator (32 hex digits)?",
            auth_field("authenticator"),
            "the Authenticator of the first request FA1 relayed (source 198.51.100.2, Lifetime > 0; "
            "HMAC-MD5, RFC 5944 §5.1)",
            kind="text",
        ),
        Task(
            "wrong_key_code",
            "The code the home agent answered the deregistration signed with a wrong key?",
            forged_reply(131),
            "the home agent's replies to the correspondent (203.0.113.10)",
        ),
        Task(
            "replay_code",
            "The code it answered the replayed deregistration?",
            forged_reply(133),
            "the last reply to the correspondent (203.0.113.10)",
        ),
        Task(
            "replay_id_high",
            "The high 32 bits of the Identification in that reply (decimal or 0x hex)?",
            forged_reply(133, "high"),
            "the Identification of the code 133 reply (RFC 5944 §5.7)",
        ),
        Task(
            "replay_id_low",
            "... and its low 32 bits: copied from which message? Give their value.",
            forged_reply(133, "low"),
            "the low 32 bits of the code 133 reply's Identification (RFC 5944 §5.7)",
        ),
    ]


LAB = Lab(
    number="02",
    name="registration",
    title="Registration and authentication",
    scenario="security",
    minutes=45,
    settings={
        "mn1_key": Setting(str, "mn1's MN-HA key for SPI 256, 32 hex digits", pattern="[0-9a-fA-F]{32}")
    },
    solution=lambda variant: {"mn1_key": str(variant["keys"][str(SPI)])},
    draw=draw,
    argv=argv,
    tasks=tasks,
)
