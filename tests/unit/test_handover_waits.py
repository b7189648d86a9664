"""The waits removed from the handover's critical path (issue 14), each checked where it is decided:

* the home agent's reply to a care-of address leaves before the binding's datapath update, a reply to a
  home address after it (RFC 5944 §3.8.3, §4.6), and its trace line carries the time it left;
* the mobile node's request to a foreign agent it has just heard goes out by frame, before its routes
  point at that agent (RFC 5944 §3.6.1.1 asks for the request, not the route);
* a carrier drop keeps the foreign-agent-mode tunnel (home address ↔ HA, RFC 5454 §3.3.2) until the next
  registration replaces it, and anything else takes it down as before;
* the new FA learns of an expected visitor's attachment from its first packet (RFC 4881 §1.3).

Real driver, trace writer and asyncio loop; fake sockets and datapaths record the order of things.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agents.mip.common import events as ev
from agents.mip.common.config import Encapsulation
from agents.mip.common.events import OutgoingDatagram
from agents.mip.common.trace_schema import TraceEvent
from agents.runtime.frame import AgentArgs, AgentContext
from agents.runtime.roles.driver import MachineDriver, event_time
from agents.runtime.roles.home_agent import reply_first
from agents.runtime.roles.mn_discovery_io import ForeignAgentLink
from agents.runtime.roles.mobile_node import MobileNodeEvents, MobileNodeRuntime
from agents.runtime.trace import TraceWriter
from tests.unit.test_low_latency import _events, _fa
from tests.unit.test_mobile_node import make_mn

HOA = IPv4Address("192.0.2.10")
COA = IPv4Address("198.51.100.18")
HA = IPv4Address("192.0.2.1")
FA1, FA2 = IPv4Address("10.0.1.1"), IPv4Address("10.0.2.1")


@dataclass(frozen=True)
class BindingChanged:
    name: ClassVar[str] = TraceEvent.BINDING_ADDED
    home_address: IPv4Address

    def to_dict(self) -> dict[str, object]:
        return {"event": self.name, "home_address": str(self.home_address)}


class OneReply:
    """A machine that has just decided: one binding event, one reply to ``destination``."""

    def __init__(self, destination: IPv4Address) -> None:
        self.destination = destination
        self.events: list[Any] = [BindingChanged(HOA), ev.ReplySent(destination, 434, HOA, 0, 60, 7)]

    def datagrams_to_send(self, now: float) -> list[OutgoingDatagram]:
        return [OutgoingDatagram(b"reply", self.destination, 434)]

    def next_event(self) -> Any:
        return self.events.pop(0) if self.events else None

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass

    def receive_datagram(self, *args: Any) -> None:
        pass


class Recorder:
    def __init__(self) -> None:
        self.order: list[str] = []

    def send(self, payload: bytes, destination: IPv4Address, port: int, **_: Any) -> None:
        self.order.append(f"send {destination}")

    def apply(self, event: Any) -> None:
        self.order.append(f"apply {event.name}")


async def flush_one_reply(tmp_path: Path, destination: IPv4Address) -> tuple[list[str], dict[str, float]]:
    trace = TraceWriter(tmp_path / "ha.jsonl", "ha")
    context = AgentContext(AgentArgs("ha", tmp_path / "ha.toml"), "ha", trace, tmp_path / "ha.sock")
    recorder = Recorder()
    driver = MachineDriver(OneReply(destination), recorder, context, recorder.apply)  # type: ignore[arg-type]
    driver.first = reply_first(frozenset({HOA}))
    driver.flush()
    driver.timer.cancel()
    trace.close()
    lines = [json.loads(line) for line in (tmp_path / "ha.jsonl").read_text().splitlines()]
    return recorder.order, {line["event"]: line["t"] for line in lines}


def test_home_agent_replies_to_a_care_of_address_before_the_datapath_update(tmp_path: Path) -> None:
    order, times = asyncio.run(flush_one_reply(tmp_path, COA))
    assert order == [f"send {COA}", "apply binding_added", "apply rrp_sent"]
    assert times["rrp_sent"] <= times["binding_added"]  # stamped when the reply left


def test_home_agent_replies_to_a_home_address_after_the_binding_rfc5944_4_6(tmp_path: Path) -> None:
    """Deregistration from the home link: the host route into the tunnel must be gone first."""
    order, _times = asyncio.run(flush_one_reply(tmp_path, HOA))
    assert order == ["apply binding_added", "apply rrp_sent", f"send {HOA}"]


def test_trace_lines_of_requests_and_replies_carry_when_they_left_or_came() -> None:
    """The stamp the driver hands :func:`apply_events`: a reply sent first carries its send time, a
    received request or reply the time its datagram was read, everything else the time it is written."""

    def stamp(event: Any) -> float | None:
        return event_time(event, sent_at=1.0, sent_to=frozenset({COA}), received_at=0.5)

    assert stamp(ev.ReplySent(COA, 434, HOA, 0, 60, 7)) == 1.0
    assert stamp(ev.ReplySent(HOA, 434, HOA, 0, 0, 7)) is None  # sent after the events: now
    assert stamp(ev.RequestSent(COA, 60, 7, 1)) == 1.0
    assert stamp(ev.RequestReceived(COA, 434, HOA, COA, 60, 0, 7)) == 0.5
    assert stamp(ev.ReplyReceived(0, 60, 7)) == 0.5
    assert stamp(BindingChanged(HOA)) is None
    assert event_time(ev.ReplyReceived(0, 60, 7), sent_at=None, sent_to=frozenset(), received_at=None) is None


def bare_link(agent: IPv4Address | None, at_home: bool = False) -> ForeignAgentLink:
    """A ForeignAgentLink without its netlink and ARP sockets (only the routing decision is tested)."""
    link = object.__new__(ForeignAgentLink)
    link.home_address, link.agent, link.at_home = HOA, agent, at_home
    link.link_addresses = {FA1: b"\x02" * 6, FA2: b"\x04" * 6, HA: b"\x03" * 6}
    link.heard_here = {FA1, FA2}
    return link


def test_request_to_a_new_agent_goes_by_frame_until_the_routes_point_at_it_rfc5944_3_6_1_1() -> None:
    assert bare_link(FA1).unrouted_agent(FA2) == b"\x04" * 6  # heard, not routed yet: by frame
    assert bare_link(FA2).unrouted_agent(FA2) is None  # routed: the socket, as any renewal
    assert bare_link(None).unrouted_agent(FA1) == b"\x02" * 6  # leaving home: by frame
    assert bare_link(None, at_home=True).unrouted_agent(HA) is None  # at home: the home link's routes
    assert bare_link(FA1).unrouted_agent(COA) is None  # an address never heard on the link (no MAC)


def test_an_agent_heard_on_another_link_never_gets_a_frame_here() -> None:
    """Home → behind a NAT (co-located care-of address, no FA): the HA's MAC was heard at home; after
    the carrier drop the request to the HA must take the routes, not a frame to that MAC (a 2026-12-05
    regression: every NAT move failed)."""
    link = bare_link(None)
    link.netlink, link.at_home = DatapathCalls(), False  # type: ignore[assignment]
    link.heard_here.add(HA)
    assert link.unrouted_agent(HA) == b"\x03" * 6  # heard on this link: it is here
    link.link_lost()
    assert link.unrouted_agent(HA) is None and link.unrouted_agent(FA1) is None
    link.learn(FA2, b"\x04" * 6)  # the new link's FA advertises
    assert link.unrouted_agent(FA2) == b"\x04" * 6


def test_an_agent_on_another_interface_is_reached_by_the_routes_make_before_break() -> None:
    """RFC 5944 §3.6.1.3 with a second interface: the request for the new FA's care-of address (S set)
    must leave through the interface on its link, so this link does not frame it to that FA's MAC."""
    link = bare_link(FA1)
    link.learn(FA2, b"\x06" * 6, by_frame=False)
    assert link.unrouted_agent(FA2) is None and link.link_addresses[FA2] == b"\x06" * 6
    link.learn(FA2, b"\x06" * 6)  # heard on this link afterwards (an advertisement): by frame again
    assert link.unrouted_agent(FA2) == b"\x06" * 6


class DatapathCalls:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self.calls.append(name)


class LinkStub:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls  # the datapath's: one order for both

    def apply(self, event: Any) -> bool:
        self.calls.append(type(event).__name__)
        return isinstance(event, ev.ArpModeChanged | ev.AtHome)


def mn_events() -> tuple[MobileNodeEvents, DatapathCalls]:
    datapath = DatapathCalls()
    config = make_mn().config
    link = LinkStub(datapath.calls)
    events = MobileNodeEvents(config, MobileNodeRuntime(), datapath, link)  # type: ignore[arg-type]
    return events, datapath


def test_carrier_drop_keeps_the_tunnel_until_the_next_registration_replaces_it() -> None:
    events, datapath = mn_events()
    events.apply(ev.TunnelDown(COA, "link-down"))
    events.apply(ev.MovementDetected(ev.MovementReason.LINK, FA1, None))
    events.apply(ev.ArpModeChanged(HOA, True, FA2))
    assert datapath.calls == ["ArpModeChanged"]  # the tunnel is left alone until the new request
    events.apply(ev.TunnelUp(COA, HA, HOA, Encapsulation.IP_IN_IP, True))
    assert datapath.calls == ["ArpModeChanged", "add_ipv4_tunnel"]


def test_carrier_drop_then_home_uses_the_link_before_the_kept_tunnel_goes_rfc5944_4_6() -> None:
    """Make before break: the home link's addresses (local once ``use_home`` returns) before the tunnel's
    copies go, so the home-prefix address is never without a local route (docs/architecture.md)."""
    events, datapath = mn_events()
    events.apply(ev.TunnelDown(COA, "link-down"))
    events.apply(ev.AtHome(HOA))
    assert datapath.calls == ["AtHome", "remove_ipv4_tunnel"]
    events.apply(ev.AtHome(HOA))
    assert datapath.calls == ["AtHome", "remove_ipv4_tunnel", "AtHome"]  # the tunnel went once


def test_a_failed_home_link_still_takes_the_kept_tunnel_down_rfc5944_4_6() -> None:
    """A home link that cannot be set up (netlink refused, link gone) must not leave the tunnel up at home:
    the error reaches the driver (which logs and traces it), the tunnel still goes."""

    class FailingLink(LinkStub):
        def apply(self, event: Any) -> bool:
            super().apply(event)
            raise OSError("netlink refused")

    datapath = DatapathCalls()
    events = MobileNodeEvents(
        make_mn().config, MobileNodeRuntime(), datapath, FailingLink(datapath.calls)  # type: ignore[arg-type]
    )
    events.apply(ev.TunnelDown(COA, "link-down"))
    with pytest.raises(OSError):
        events.apply(ev.AtHome(HOA))
    assert datapath.calls == ["AtHome", "remove_ipv4_tunnel"]


def test_other_tunnel_downs_still_remove_it_at_once() -> None:
    events, datapath = mn_events()
    events.apply(ev.TunnelDown(COA, "expired"))
    assert datapath.calls == ["remove_ipv4_tunnel"]


def test_expected_visitor_attaches_with_its_first_packet_rfc4881_1_3() -> None:
    from agents.mip.fa.events import VisitorAttached

    fa: Any = _fa()
    mac = b"\x02" * 6
    assert not fa.visitor_sent(HOA, 0.0)  # nobody expected
    fa.expect_visitor(HOA, mac, 0.0, timeout=1.0)
    _events(fa)
    entry = fa.expected.by_mac(mac, 0.05)  # what an early L2-LU report looks up: left open
    assert entry is not None and entry.home_address == HOA and fa.expected.by_mac(mac, 0.06) == entry
    assert fa.visitor_sent(HOA, 0.1)
    assert _events(fa) == [VisitorAttached(HOA, mac, "first-packet")]
    assert not fa.visitor_sent(HOA, 0.2)  # attached already: the next packets change nothing
    assert fa.visitor_attached(mac, 0.3) is None  # nor does the later L2-LU report
    fa.expect_visitor(HOA, mac, 1.0, timeout=1.0)
    assert not fa.visitor_sent(HOA, 2.5)  # the expectation ran out: its buffer was dropped
