"""RFC 4881 low-latency handoff machines on a fake clock: the nFA's buffer (§3.1, §4), the MN's
pre-registration (§3), the BET between the FAs (§4)."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

import pytest

from agents.mip.fa.llh_buffer import Offered, VisitorBuffers
from agents.mip.fa.llh_post import BetState, Downlink, EdgeTunnel, Side
from agents.mip.mn.llh_pre import PreRegistration, PreState, Target

HOA = IPv4Address("192.0.2.10")
OTHER = IPv4Address("192.0.2.11")
FA1 = IPv4Address("198.51.100.1")
FA2 = IPv4Address("203.0.113.1")
TARGET = Target(FA2, IPv4Address("203.0.113.1"), b"\x02" * 6)


# -- the new FA's buffer (RFC 4881 §3.1, §4) --------------------------------------------------------


def test_buffer_holds_until_attachment_and_flushes_in_order() -> None:
    buffers = VisitorBuffers(limit=4, timeout=1.0)
    buffers.expect(HOA, now=0.0)
    assert [buffers.offer(HOA, bytes([n]), 0.1 + n / 100) for n in range(3)] == [Offered.BUFFERED] * 3
    assert buffers.offer(OTHER, b"x", 0.2) is Offered.DELIVER  # not expected: delivered as usual
    assert buffers.attach(HOA, 0.5) == [b"\x00", b"\x01", b"\x02"]
    assert buffers.offer(HOA, b"late", 0.6) is Offered.DELIVER  # attached: no more buffering
    assert buffers.counters["flushed"] == 3


def test_buffer_overflow_drops_the_oldest() -> None:
    """With S the old path delivers the older copies until the move: the newest are the ones to keep."""
    buffers = VisitorBuffers(limit=2, timeout=1.0)
    buffers.expect(HOA, 0.0)
    outcomes = [buffers.offer(HOA, bytes([n]), 0.1) for n in range(4)]
    assert outcomes == [Offered.BUFFERED, Offered.BUFFERED, Offered.OVERFLOW, Offered.OVERFLOW]
    assert buffers.attach(HOA, 0.2) == [b"\x02", b"\x03"]  # the newest kept, in order
    assert buffers.counters["overflow_dropped"] == 2


def test_trigger_that_never_becomes_a_move_drops_the_buffer_on_timeout() -> None:
    buffers = VisitorBuffers(limit=8, timeout=1.0)
    buffers.expect(HOA, 0.0)
    buffers.offer(HOA, b"a", 0.5)
    assert buffers.get_timer() == 1.0
    assert buffers.handle_timer(0.99) == []
    expired = buffers.handle_timer(1.0)
    assert [(item.home_address, item.dropped) for item in expired] == [(HOA, 1)]
    assert not buffers.is_expected(HOA) and buffers.get_timer() is None
    assert buffers.attach(HOA, 1.5) == []  # a late L2-LU finds nothing


def test_attach_after_the_timeout_but_before_the_timer_ran_flushes_nothing() -> None:
    buffers = VisitorBuffers(limit=8, timeout=1.0)
    buffers.expect(HOA, 0.0)
    buffers.offer(HOA, b"a", 0.5)
    assert buffers.offer(HOA, b"b", 1.2) is Offered.DELIVER
    assert buffers.attach(HOA, 1.2) == []
    assert buffers.counters["timeout_dropped"] == 1


def test_buffer_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        VisitorBuffers(limit=0)
    with pytest.raises(ValueError):
        VisitorBuffers(timeout=0)


# -- pre-registration at the mobile node (RFC 4881 §3) --------------------------------------------------


def test_pre_registration_ready_before_the_move_is_adopted_at_link_up() -> None:
    pre = PreRegistration()
    assert pre.trigger(TARGET, now=1.0, handoff_at=1.1, current_agent=FA1) is None
    assert pre.state is PreState.REQUESTED
    assert pre.accepted()
    assert pre.state is PreState.READY
    pre.link_down()
    assert pre.link_up(1.2) == TARGET
    attached = pre.attached()
    assert attached.ready and pre.state is PreState.ATTACHED


def test_pre_registration_reply_still_outstanding_at_the_move_is_adopted_unready() -> None:
    pre = PreRegistration()
    pre.trigger(TARGET, 1.0, 1.1, FA1)
    pre.link_down()
    assert pre.link_up(1.15) == TARGET
    assert not pre.attached().ready


def test_stale_trigger_is_ignored() -> None:
    """RFC 4881 §1.3: a trigger is a prediction; one arriving after its handoff time changes nothing."""
    pre = PreRegistration()
    refused = pre.trigger(TARGET, now=2.0, handoff_at=1.5, current_agent=FA1)
    assert refused is not None and "stale" in refused.reason
    assert pre.state is PreState.IDLE and pre.get_timer() is None


def test_trigger_naming_the_current_agent_is_ignored() -> None:
    pre = PreRegistration()
    refused = pre.trigger(TARGET, 1.0, 1.1, current_agent=FA2)
    assert refused is not None and pre.state is PreState.IDLE


def test_trigger_that_never_becomes_a_move_is_abandoned() -> None:
    """RFC 4881 §3: without the move the MN must not stay half-registered."""
    pre = PreRegistration()
    pre.trigger(TARGET, 1.0, 1.1, FA1)
    pre.accepted()
    deadline = pre.get_timer()
    assert deadline is not None and deadline > 1.1
    assert pre.handle_timer(deadline - 0.01) is None
    abandoned = pre.handle_timer(deadline)
    assert abandoned is not None and "never became a move" in abandoned.reason
    assert pre.state is PreState.ABANDONED
    assert pre.link_up(deadline + 0.1) is None  # a later link-up is a standard handoff


def test_link_up_long_after_the_trigger_is_a_standard_handoff() -> None:
    pre = PreRegistration()
    pre.trigger(TARGET, 1.0, 1.1, FA1)
    pre.link_down()
    assert pre.handle_timer(10.0) is None  # detached: wait for the link
    assert pre.link_up(10.0) is None


def test_denied_pre_registration_falls_back() -> None:
    pre = PreRegistration()
    pre.trigger(TARGET, 1.0, 1.1, FA1)
    abandoned = pre.denied(129)
    assert abandoned is not None and pre.state is PreState.ABANDONED
    assert pre.link_up(1.2) is None


def test_moving_elsewhere_abandons() -> None:
    pre = PreRegistration()
    pre.trigger(TARGET, 1.0, 1.1, FA1)
    assert pre.heard_other_agent(FA2) is None
    assert pre.heard_other_agent(FA1) is not None


def test_repeated_trigger_for_the_same_move_extends_it() -> None:
    pre = PreRegistration()
    pre.trigger(TARGET, 1.0, 1.1, FA1)
    first = pre.get_timer()
    assert pre.trigger(TARGET, 1.05, 1.5, FA1) is None
    assert pre.state is PreState.REQUESTED and (pre.get_timer() or 0) > (first or 0)


# -- the bidirectional edge tunnel (RFC 4881 §4) --------------------------------------------------------


def test_bet_set_up_by_the_old_fa_forwards_after_link_down() -> None:
    old, new = EdgeTunnel(Side.OLD, lifetime=5.0), EdgeTunnel(Side.NEW, lifetime=5.0)
    assert old.l2_trigger(0.0)  # L2-ST: HRqst
    assert new.request_received(0.001)  # HRply accepted
    old.reply(True, 0.002)
    assert old.state is BetState.ESTABLISHED and old.downlink() is Downlink.LOCAL
    assert new.downlink() is Downlink.BUFFER
    old.link_down(0.1)  # L2-LD
    assert old.downlink() is Downlink.TUNNEL
    new.link_up(0.102)  # L2-LU
    assert new.state is BetState.DELIVERING and new.downlink() is Downlink.LOCAL
    assert new.uplink_via_bet()
    new.registered_at_new(0.2)
    old.registered_at_new(0.2)
    assert new.state is old.state is BetState.CLOSED and old.downlink() is Downlink.LOCAL


def test_bet_request_unanswered_is_resent_then_given_up() -> None:
    old = EdgeTunnel(Side.OLD)
    assert old.l2_trigger(0.0)
    assert old.handle_timer(1.0)  # resent once
    assert not old.handle_timer(2.0)
    assert old.state is BetState.CLOSED and old.closed_reason == "no Handoff Reply"


def test_bet_refused_closes() -> None:
    new = EdgeTunnel(Side.NEW)
    new.l2_trigger(0.0)  # L2-TT at the nFA
    new.reply(False, 0.01)
    assert new.state is BetState.CLOSED


def test_bet_expires_without_registration() -> None:
    """A trigger that never becomes a move: the BET lifetime ends it (RFC 4881 §4)."""
    old, new = EdgeTunnel(Side.OLD, lifetime=1.0), EdgeTunnel(Side.NEW, lifetime=1.0)
    old.l2_trigger(0.0)
    new.request_received(0.0)
    old.reply(True, 0.0)
    assert old.get_timer() == 1.0
    old.handle_timer(1.0)
    assert old.state is BetState.CLOSED and old.closed_reason == "BET lifetime expired"
    assert old.downlink() is Downlink.LOCAL


def test_second_trigger_does_not_restart_the_exchange() -> None:
    old = EdgeTunnel(Side.OLD)
    assert old.l2_trigger(0.0)
    assert not old.l2_trigger(0.1)


# -- the foreign agent's BET ends (RFC 4881 §4) through its L2 triggers -----------------------------------


def _fa() -> object:
    import random
    from ipaddress import IPv4Interface

    from agents.mip.fa.config import AdvertisementConfig, ForeignAgentConfig
    from agents.mip.fa.foreign_agent import ForeignAgent

    advertisement = AdvertisementConfig(router_addresses=(IPv4Interface("10.0.1.1/24"),))
    return ForeignAgent(ForeignAgentConfig((FA1,), advertisement), rng=random.Random(1))


def _events(fa: object) -> list[object]:
    found = []
    while (event := fa.next_event()) is not None:  # type: ignore[attr-defined]
        found.append(event)
    return found


def test_old_fa_forwards_through_the_bet_only_after_l2_ld_rfc4881_4() -> None:
    from agents.mip.fa.events import EdgeTunnelClosed, EdgeTunnelForwarding, EdgeTunnelUp

    fa: Any = _fa()
    assert not fa.visitor_detached(HOA, 0.0)  # no BET: nothing to forward
    fa.edge_tunnel_source(HOA, FA2, 0.0, lifetime=2.0)
    assert [type(e) for e in _events(fa)] == [EdgeTunnelUp]
    assert fa.visitor_detached(HOA, 0.1)
    assert _events(fa) == [EdgeTunnelForwarding(HOA, FA2)]
    assert fa.get_timer() is not None
    fa.handle_timer(2.0)  # lifetime over: the BET goes
    closed = [e for e in _events(fa) if isinstance(e, EdgeTunnelClosed)]
    assert len(closed) == 1 and closed[0].reason == "BET lifetime expired"


def test_new_fa_expects_the_visitor_and_buffers_until_l2_lu_rfc4881_4() -> None:
    from agents.mip.fa.events import EdgeTunnelUp, VisitorAttached, VisitorExpected

    fa: Any = _fa()
    mac = b"\x02" * 6
    fa.edge_tunnel_target(HOA, FA1, mac, 0.0, lifetime=2.0)
    kinds = [type(e) for e in _events(fa)]
    assert kinds == [VisitorExpected, EdgeTunnelUp]
    assert fa.visitor_attached(mac, 0.05) == HOA
    assert [type(e) for e in _events(fa)] == [VisitorAttached]


def test_old_fa_stops_forwarding_when_the_mobile_node_registers_through_it_again_rfc4881_4() -> None:
    """Back before the BET lifetime ran out, the MN must get its packets here, not at the FA it left."""
    from agents.mip.fa.events import EdgeTunnelClosed
    from agents.mip.fa.handoff import EdgeTunnels

    tunnels = EdgeTunnels()
    tunnels.source(HOA, FA2, 0.0, lifetime=5.0)
    assert tunnels.link_down(HOA, 0.1) is not None
    closed = tunnels.registered(HOA, 2.0)
    assert isinstance(closed, EdgeTunnelClosed) and closed.side == "old" and "again" in closed.reason
    assert len(tunnels) == 0 and tunnels.get_timer() is None
