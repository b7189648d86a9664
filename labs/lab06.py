"""Lab 06, DHCPv6 prefix delegation bootstrap (RFC 5454 §3.7.1, RFC 8415): mn1 starts with no IPv6 prefix,
registers its IPv4-embedded link-local address (Prefix Length 255), runs DHCPv6-PD through the tunnel to a
Kea server at the home agent, then registers the delegated prefix. Scenario: dhcpv6_pd."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labs import evidence as ev
from labs.errors import Missing
from labs.grading import Measured, Task
from labs.lab import Lab, Setting
from labs.runview import Frame, RunView, where_message

HOME = "ha-ha-eth0.pcap"
FA1_COA, HOA = "198.51.100.2", "192.0.2.10"
CLIENT_PORT, SERVER_PORT = 546, 547


@dataclass(frozen=True)
class Dhcp:
    """One DHCPv6 message found inside the tunnels of a capture."""

    frame: Frame
    layers: list[tuple[int, str, str, int]]
    message: Any  # agents.mip.wire.dhcpv6.Message


def draw(rng: random.Random) -> dict[str, Any]:
    return {"lease": rng.choice((8, 10, 12)), "rate": rng.choice((40, 50, 60))}


def argv(variant: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    four = ["--four-message"] if settings["four_message"] else []
    return ["--lease", str(variant["lease"]), "--rate", str(variant["rate"]), *four]


def dhcp_messages(run: RunView) -> list[Dhcp]:
    """DHCPv6 messages (UDP 546 ↔ 547 in IPv6) tunnelled across the home link, in capture order."""
    import dpkt

    from agents.mip.wire.dhcpv6 import Message
    from agents.mip.wire.errors import DecodeError

    found: list[Dhcp] = []
    for frame in run.frames(HOME):
        try:
            headers = ev.layers(frame.ip)
        except Exception:  # a truncated inner header
            continue
        if len(headers) < 2 or headers[-1][0] != 6 or headers[-1][3] != 17:
            continue
        inner: Any = frame.ip
        for _ in headers[:-1]:
            inner = inner.data if not isinstance(inner.data, bytes) else _parse(inner)
        udp = inner.data
        if not isinstance(udp, dpkt.udp.UDP) or {udp.sport, udp.dport} != {CLIENT_PORT, SERVER_PORT}:
            continue
        try:
            found.append(Dhcp(frame, headers, Message.decode(bytes(udp.data))))
        except DecodeError:
            continue
    return found


def _parse(ip: Any) -> Any:
    import dpkt

    return dpkt.ip.IP(ip.data) if ip.p == 4 else dpkt.ip6.IP6(ip.data)


def type_name(message: Any) -> str:
    from agents.mip.wire.dhcpv6 import MessageType

    try:
        return MessageType(message.msg_type).name
    except ValueError:
        return str(message.msg_type)


def four_message(run: RunView) -> Measured:
    found = dhcp_messages(run)
    if not found:
        return Measured(False, f"pcaps/{HOME}: no DHCPv6 message inside the tunnels")
    names = [type_name(item.message) for item in found]
    frames = ", ".join(str(item.frame.number) for item in found[:4])
    where = f"pcaps/{HOME} frames {frames}: {', '.join(names[:4])}"
    return Measured("ADVERTISE" in names and "REQUEST" in names, where)


def dhcp_field(kind: str, what: str) -> Any:
    def measure(run: RunView) -> Measured:
        found = [item for item in dhcp_messages(run) if type_name(item.message) == kind]
        item = ev.first(found, f"no DHCPv6 {kind} inside the tunnels of pcaps/{HOME}")
        where = f"{item.frame.where} (DHCPv6 {kind})"
        if what == "headers":
            return Measured(len(item.layers), where)
        if what == "destination":
            return Measured(item.layers[-1][2], where)
        ia_pd = ev.first(list(item.message.ia_pds), f"{where} has no IA_PD")
        if what == "t1":
            return Measured(ia_pd.t1, where + ", IA_PD")
        prefix = ev.first(list(ia_pd.prefixes), f"{where} delegates no prefix")
        return Measured({"prefix": str(prefix.prefix), "valid": prefix.valid}[what], where + ", IAPREFIX")

    return measure


def count(kind: str) -> Any:
    def measure(run: RunView) -> Measured:
        found = [item for item in dhcp_messages(run) if type_name(item.message) == kind]
        where = f"pcaps/{HOME} (DHCPv6 {kind} inside the tunnels)"
        return Measured(len(found), f"{where}, first at frame {found[0].frame.number}" if found else where)

    return measure


def link_local_request(field: str) -> Any:
    def measure(run: RunView) -> Measured:
        for message in ev.requests(run, HOME, source=FA1_COA, home_address=HOA):
            for extension in message.get("extensions", []):
                if extension.get("type") == 152 and extension.get("link_local"):
                    value = extension["prefix"].split("/")[0] if field == "address" else extension[field]
                    return Measured(value, where_message(HOME, message) + ", extension 152")
        raise Missing("mn1 registered no link-local address through FA1")

    return measure


def link_local_code(run: RunView) -> Measured:
    for message in ev.replies(run, HOME, destination=FA1_COA, home_address=HOA):
        for extension in message.get("extensions", []):
            if extension.get("type") == 152 and extension.get("subtype") == 2 and extension.get("link_local"):
                return Measured(extension["code"], where_message(HOME, message) + ", extension 152")
    raise Missing("the home agent answered no link-local Prefix Request")


def tasks(variant: Mapping[str, Any]) -> list[Task]:
    return [
        Task(
            "four_message",
            "mn1's client uses Rapid Commit (Solicit, Reply). Make it use the four-message exchange "
            "(Solicit, Advertise, Request, Reply) and run the lab again.",
            four_message,
            "the DHCPv6 messages inside the tunnels must include an Advertise and a Request",
            kind="config",
        ),
        Task(
            "link_local",
            "The link-local address mn1 registers before it has a prefix?",
            link_local_request("address"),
            "the DSMIPv4 extension of mn1's request (link-local)",
            kind="address",
        ),
        Task(
            "link_local_length",
            "The Prefix Length field that marks it as a link-local address?",
            link_local_request("prefix_length"),
            "the DSMIPv4 Prefix Request carrying the link-local address",
        ),
        Task(
            "link_local_code",
            "The code the home agent answers for it?",
            link_local_code,
            "the DSMIPv4 Prefix Reply for the link-local address",
        ),
        Task(
            "solicit_headers",
            "On the home link, how many IP headers does mn1's Solicit travel in?",
            dhcp_field("SOLICIT", "headers"),
            "mn1's Solicit on the home link: count every IP header",
        ),
        Task(
            "solicit_destination",
            "The IPv6 destination of the Solicit?",
            dhcp_field("SOLICIT", "destination"),
            "the innermost (IPv6) header of the Solicit",
            kind="address",
        ),
        Task(
            "delegated_prefix",
            "The prefix Kea delegates (IAPREFIX in the first Reply)?",
            dhcp_field("REPLY", "prefix"),
            "the IA_PD / IAPREFIX option of the first Reply",
            kind="address",
        ),
        Task(
            "valid_lifetime",
            "Its valid lifetime (s)?",
            dhcp_field("REPLY", "valid"),
            "the IAPREFIX option of the first Reply",
        ),
        Task(
            "t1",
            "The T1 of the IA_PD in that Reply (s)?",
            dhcp_field("REPLY", "t1"),
            "the IA_PD option of the first Reply",
        ),
        Task(
            "renews",
            "How many Renew messages crossed the home link?",
            count("RENEW"),
            "count DHCPv6 Renew (type 5) inside the tunnels",
        ),
        Task(
            "releases",
            "How many Release messages?",
            count("RELEASE"),
            "count DHCPv6 Release (type 8) inside the tunnels",
        ),
    ]


LAB = Lab(
    number="06",
    name="dhcpv6-pd",
    title="DHCPv6 prefix delegation bootstrap",
    scenario="dhcpv6_pd",
    minutes=60,
    settings={"four_message": Setting(bool, "mn1's DHCPv6 client uses Solicit/Advertise/Request/Reply")},
    solution=lambda variant: {"four_message": True},
    draw=draw,
    argv=argv,
    tasks=tasks,
)
