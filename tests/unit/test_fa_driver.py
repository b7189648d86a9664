"""The foreign agent's driver is the one :class:`MachineDriver` (issue 9 item 4): its events take the
shared apply-and-trace path, a visitor's state is applied before its relayed reply leaves to the
visitor's link-layer address (RFC 3024 §5, RFC 5944 §3.7.3.2), a request's IP TTL and link-layer source
reach the machine only for what came in on the access link (RFC 3024 §4.2.1), and advertisements go out
on the access link (RFC 5944 §2.1).

Real ForeignAgent and HomeAgent machines, real driver, trace writer and asyncio loop; fake socket and
access link record what is sent.
"""

from __future__ import annotations

import asyncio
import json
import random
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from agents.mip.common.config import HomeAgentConfig, MobileNodeAccount
from agents.mip.fa import events as fe
from agents.mip.fa.config import AdvertisementConfig, ForeignAgentConfig
from agents.mip.fa.events import ForeignAgentEvent
from agents.mip.fa.foreign_agent import ForeignAgent
from agents.mip.ha.home_agent import HomeAgent
from agents.mip.wire.auth import SecurityAssociation
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.identification import next_timestamp_identification
from agents.mip.wire.registration import RegistrationRequest, build_request
from agents.runtime.frame import AgentArgs, AgentContext
from agents.runtime.roles.driver import MachineDriver
from agents.runtime.roles.foreign_agent import ForeignAgentDriver
from agents.runtime.trace import TraceWriter
from agents.runtime.udp import Received

HA = IPv4Address("192.0.2.1")
HOA = IPv4Address("192.0.2.10")
COA = IPv4Address("198.51.100.1")
MAC = bytes.fromhex("020000000010")
MN = (HOA, 50000)
ACCESS_INDEX, NETWORK_INDEX = 7, 3
KEY = bytes(range(16))


class FakeSocket:
    """UDP 434 as :class:`RelaySocket` shows it to the driver: per-source TTLs, sends recorded."""

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.ttls: dict[tuple[IPv4Address, int], int] = {}
        self.sent: list[tuple[bytes, IPv4Address]] = []
        self.started = False

    def start(self, loop: Any, on_datagram: Any, first: Any = None) -> None:
        self.started = True

    def send(self, payload: bytes, destination: IPv4Address, port: int, **_: Any) -> None:
        self.order.append(f"udp {destination}")
        self.sent.append((payload, destination))


class FakeLink:
    """The access link: one known visitor MAC; frames and ICMP recorded."""

    interface = "acc0"
    index = ACCESS_INDEX

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.asked: list[tuple[IPv4Address, int]] = []
        self.started = False
        self.frames: list[tuple[bytes, IPv4Address, bytes]] = []

    def start(self, loop: Any, on_solicitation: Any) -> None:
        self.started = True

    def mac_of(self, source: IPv4Address, port: int) -> bytes | None:
        self.asked.append((source, port))
        return MAC if (source, port) == MN else None

    def send_udp(self, payload: bytes, destination: IPv4Address, port: int, mac: bytes, source: Any) -> None:
        self.order.append(f"frame {destination} {mac.hex()}")
        self.frames.append((payload, destination, mac))

    def send_icmp(self, payload: bytes, destination: IPv4Address) -> None:
        self.order.append(f"icmp {destination}")

    def send_icmp_to(self, payload: bytes, destination: IPv4Address, mac: bytes, ttl: int) -> None:
        self.order.append(f"icmp {destination} {mac.hex()}")


def machines() -> tuple[ForeignAgent, HomeAgent]:
    advertisement = AdvertisementConfig(router_addresses=(IPv4Interface("198.51.100.1/24"),))
    fa = ForeignAgent(ForeignAgentConfig((COA,), advertisement), rng=random.Random(1))
    account = MobileNodeAccount(HOA, 256, KEY)
    ha = HomeAgent(HomeAgentConfig(HA, IPv4Network("192.0.2.0/24"), (account,)), rng=random.Random(2))
    return fa, ha


def request(now: float) -> bytes:
    """A reverse-tunnelled registration (T flag, RFC 3024 §3.1) via the FA's care-of address; the HA's
    wall clock is ``now`` (a timestamp Identification, RFC 5944 §5.7)."""
    ident = next_timestamp_identification(now, None, random.Random(3))
    fixed = RegistrationRequest(RegistrationFlag.T, 60, HOA, HA, COA, ident)
    return build_request(fixed, SecurityAssociation(256, KEY))


async def register(tmp_path: Path, ttl: int) -> dict[str, Any]:
    trace = TraceWriter(tmp_path / "fa.jsonl", "fa")
    context = AgentContext(AgentArgs("fa", tmp_path / "fa.toml"), "fa", trace, tmp_path / "fa.sock")
    fa, ha = machines()
    order: list[str] = []
    applied: list[ForeignAgentEvent] = []

    def apply(event: ForeignAgentEvent) -> None:
        applied.append(event)
        order.append(f"apply {event.name}")
        if isinstance(event, fe.RequestRelayed):
            raise RuntimeError("datapath refused")  # the shared path traces it, never raises

    sock, link = FakeSocket(order), FakeLink(order)
    driver = ForeignAgentDriver(fa, sock, link, context, apply)  # type: ignore[arg-type]
    driver.start()
    sock.ttls[MN] = ttl
    driver.datagram_received(Received(request(driver.now()), MN, COA, ACCESS_INDEX))
    relayed = [payload for payload, destination in sock.sent if destination == HA]
    if relayed:
        ha.receive_datagram(relayed[0], (COA, 434), HA, driver.now())
        for reply in ha.datagrams_to_send(driver.now()):
            order.append("reply from HA")
            driver.datagram_received(Received(reply.payload, (HA, 434), COA, NETWORK_INDEX))
    order.append("solicitation")
    driver.solicitation_received(HOA, MAC)
    driver.timer.cancel()
    trace.close()
    lines = [json.loads(line) for line in (tmp_path / "fa.jsonl").read_text().splitlines()]
    return {"driver": driver, "order": order, "link": link, "sock": sock, "lines": lines, "applied": applied}


def test_the_foreign_agent_driver_is_the_one_machine_driver() -> None:
    assert issubclass(ForeignAgentDriver, MachineDriver)
    own = {name for name in vars(ForeignAgentDriver) if not name.startswith("__")}
    # only the access link is its own: flush, the event path and the timer are the shared driver's
    assert own <= {
        "machine", "sock", "start", "deliver", "solicitation_received", "_send", "send_other",
        "_send_advertisements", "_trace_queued",
    }  # fmt: skip
    assert "flush" not in own and "_apply_events" not in own


def test_visitor_state_is_applied_before_its_reply_goes_to_its_mac_rfc3024_5(tmp_path: Path) -> None:
    result = asyncio.run(register(tmp_path, ttl=255))
    order, link = result["order"], result["link"]
    assert result["sock"].started and link.started
    after_reply = order[order.index("reply from HA") :]
    assert "apply visitor_added" in after_reply
    frame = f"frame {HOA} {MAC.hex()}"
    assert frame in after_reply  # RFC 5944 §3.7.3.2: to the visitor's link-layer address, not by ARP
    assert after_reply.index("apply visitor_added") < after_reply.index(frame)
    # the request's link-layer source was looked up (access link), the HA's reply's never (network)
    assert link.asked == [MN]
    added = [e for e in result["applied"] if isinstance(e, fe.VisitorAdded)]
    assert added and added[0].link_address == MAC and added[0].reverse_tunnel
    names = [line["event"] for line in result["lines"]]
    assert "visitor_added" in names  # traced on the shared path
    failed = [line for line in result["lines"] if line["event"] == "apply_failed"]
    assert [line["what"] for line in failed] == [str(fe.RequestRelayed.name)]


def test_solicited_advertisement_goes_to_the_soliciting_mac_rfc5944_2_1(tmp_path: Path) -> None:
    order = asyncio.run(register(tmp_path, ttl=255))["order"]
    after = order[order.index("solicitation") :]
    assert f"icmp {HOA} {MAC.hex()}" in after


def test_the_request_ttl_reaches_the_machine_rfc3024_4_2_1(tmp_path: Path) -> None:
    """A reverse-tunnel request whose TTL is not 255 came from beyond the link: denied, never relayed."""
    result = asyncio.run(register(tmp_path, ttl=64))
    assert not [destination for _payload, destination in result["sock"].sent if destination == HA]
    assert any(isinstance(e, fe.ForeignAgentDenied) for e in result["applied"])


def test_a_solicitation_is_answered_before_its_events_are_traced_issue14(tmp_path: Path) -> None:
    """The unicast answer (RFC 1256 §5.5) leaves before the queued events are applied and traced; the
    ``solicitation_received`` line carries the time the solicitation was read, and every advertisement
    sent has its ``advertisement_sent`` line at once (not at the agent's next input)."""
    result = asyncio.run(register(tmp_path, ttl=255))
    after = result["order"][result["order"].index("solicitation") :]
    answer = f"icmp {HOA} {MAC.hex()}"
    assert after.index(answer) < after.index("apply solicitation_received")
    lines = result["lines"]
    received = next(line for line in lines if line["event"] == "solicitation_received")
    sent = [line for line in lines if line["event"] == "advertisement_sent"]
    icmp = [item for item in result["order"] if item.startswith("icmp ")]
    assert len(sent) == len(icmp)
    assert sent[-1]["solicited"] and sent[-1]["destination"] == str(HOA)
    assert received["t"] <= sent[-1]["t"]
    assert lines.index(received) < lines.index(sent[-1])


def test_a_relayed_request_and_reply_leave_before_their_lines_are_written_issue14(tmp_path: Path) -> None:
    asyncio.run(relay_before_lines(tmp_path))


async def relay_before_lines(tmp_path: Path) -> None:
    """A step's trace lines are held until its datagrams have left (``TraceWriter.held``), each stamped
    when its event was applied: the relay to the HA (RFC 5944 §3.7.2) and the reply to the visitor's MAC
    (§3.7.3.2) no longer wait for the JSON and ``write`` of the lines before them."""
    path = tmp_path / "fa.jsonl"
    trace = TraceWriter(path, "fa")
    context = AgentContext(AgentArgs("fa", tmp_path / "fa.toml"), "fa", trace, tmp_path / "fa.sock")
    fa, ha = machines()
    seen_at_send: list[list[str]] = []

    def written() -> list[str]:
        return [json.loads(line)["event"] for line in path.read_text().splitlines()]

    class WatchingSocket(FakeSocket):
        def send(self, payload: bytes, destination: IPv4Address, port: int, **kw: Any) -> None:
            seen_at_send.append(written())
            super().send(payload, destination, port, **kw)

    class WatchingLink(FakeLink):
        def send_udp(self, payload: bytes, to: IPv4Address, port: int, mac: bytes, source: Any) -> None:
            seen_at_send.append(written())
            super().send_udp(payload, to, port, mac, source)

    order: list[str] = []
    sock, link = WatchingSocket(order), WatchingLink(order)
    driver = ForeignAgentDriver(fa, sock, link, context, lambda _event: None)  # type: ignore[arg-type]
    driver.start()
    sock.ttls[MN] = 255
    driver.datagram_received(Received(request(driver.now()), MN, COA, ACCESS_INDEX))
    after_request = written()
    ha.receive_datagram(sock.sent[0][0], (COA, 434), HA, driver.now())
    reply = ha.datagrams_to_send(driver.now())[0]
    driver.datagram_received(Received(reply.payload, (HA, 434), COA, NETWORK_INDEX))
    driver.timer.cancel()
    trace.close()
    assert [destination for _payload, destination in sock.sent] == [HA] and len(link.frames) == 1
    assert "fa_rrq_relayed" not in seen_at_send[0] and "fa_rrq_relayed" in after_request
    assert "fa_rrp_relayed" not in seen_at_send[1] and "visitor_added" not in seen_at_send[1]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    names = [line["event"] for line in lines]
    assert names.index("fa_rrq_relayed") < min(names.index("fa_rrp_relayed"), names.index("visitor_added"))
    assert [line["t"] for line in lines] == sorted(line["t"] for line in lines)  # stamped when applied
