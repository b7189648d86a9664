"""RFC 4881 §3 pre-registration end to end in memory: the real MobileNode, both ForeignAgents and the
HomeAgent on a fake clock (the World of test_mn_fa_ha_wired, with routing between the visited links).

The L2 trigger names FA2 while the MN is on FA1: the MN registers FA2's care-of address through FA1
with S set (RFC 5944 §3.6.1.3: the HA keeps both bindings), FA2 relays it without the TTL check because
it expects the visitor (L2-TT), and at the move the MN routes via FA2 without a request on the critical
path; a later request without S leaves the HA with FA2's binding only (make-before-break)."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address

from agents.mip.common.events import (
    ArpModeChanged,
    PreRegistrationAbandoned,
    PreRegistrationAttached,
    PreRegistrationReady,
    RequestSent,
)
from agents.mip.fa.events import VisitorAttached, VisitorExpected
from agents.mip.mn.llh_pre import PreState, Target
from agents.mip.mn.mobile_node import MnState
from agents.mip.wire.icmp import AdvertisementFlag
from tests.unit.test_mn_fa_ha_wired import ACCESS, CARE_OF, HA, HOA, MAC, MN_PORT, World, assert_via

FA2_MAC = bytes.fromhex("0200000000f2")


class RoutedWorld(World):
    """World plus IP routing between the visited networks: a datagram from the MN to the other FA goes
    through its current FA and a router (TTL 255 → 254, no link-layer address at the far FA), and an FA's
    reply to the home address with no link-layer address reaches the MN wherever it is (through the HA's
    tunnel in the real network)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fa_events: list[tuple[float, object]] = []

    def _from_mn(self) -> None:
        where = self.where
        for datagram in self.mn.datagrams_to_send(self.now):
            payload, source = datagram.payload, datagram.source or HOA
            if datagram.destination == HA:
                self.net.send(
                    self.now,
                    lambda now, p=payload, s=source: self.ha.receive_datagram(p, (s, MN_PORT), HA, now),
                )
                continue
            for name, access in ACCESS.items():
                addresses = (access.ip, CARE_OF[name])
                if datagram.destination in addresses and name == where:
                    self.net.send(self.now, self._to_fa(name, datagram))
                elif datagram.destination in addresses and where is not None:
                    self.net.send(self.now, self._routed_to_fa(name, payload, datagram.ttl))
        for _ in self.mn.solicitations_to_send(self.now):
            if where in self.fas:
                self.net.send(
                    self.now,
                    lambda now, w=where: self.fas[w].receive_solicitation(HOA, now, link_address=MAC),
                )

    def _routed_to_fa(self, name: str, payload: bytes, ttl: int | None) -> Callable[[float], None]:
        def deliver(now: float) -> None:
            hops = None if ttl is None else ttl - 1
            self.fas[name].receive_datagram(payload, (HOA, MN_PORT), CARE_OF[name], now, ttl=hops)

        return deliver

    def _from_fa(self, name: str, fa: object) -> None:
        from agents.mip.fa.foreign_agent import ForeignAgent

        assert isinstance(fa, ForeignAgent)
        for datagram in fa.datagrams_to_send(self.now):
            if datagram.destination == HA:
                source = datagram.source or CARE_OF[name]
                self.net.send(
                    self.now,
                    lambda now, p=datagram.payload, s=source: self.ha.receive_datagram(p, (s, 434), HA, now),
                )
            elif datagram.link_address is None:  # routed to the home address
                self.net.send(self.now, self._to_mn(datagram.payload, ACCESS[name].ip))
            else:
                self.net.send(self.now, self._on(name)(self._to_mn(datagram.payload, ACCESS[name].ip)))
        for advert in fa.advertisements_to_send(self.now):
            self.net.send(
                self.now,
                self._on(name)(
                    lambda now, p=advert.payload, s=ACCESS[name].ip: self.mn.receive_advertisement(p, s, now)
                ),
            )
        while (event := fa.next_event()) is not None:
            self.fa_events.append((self.now, event))

    def trigger_fa2(self, handoff_in: float = 0.05) -> str | None:
        self.fas["fa2"].expect_visitor(HOA, MAC, self.now, timeout=5.0)
        target = Target(ACCESS["fa2"].ip, CARE_OF["fa2"], FA2_MAC, AdvertisementFlag.F | AdvertisementFlag.T)
        reason = self.mn.handoff_trigger(target, self.now + handoff_in, self.now)
        self._collect()
        return reason


def ha_care_ofs(world: World) -> set[IPv4Address]:
    binding = world.ha.table.get(HOA)
    return set() if binding is None else {key.address for key in binding.care_ofs}


def test_pre_registration_then_move_needs_no_request_on_the_critical_path_rfc4881_3() -> None:
    world = RoutedWorld(1, loss=0.0, jitter=0.0)
    world.attach("fa1")
    world.run_until(5.0)
    assert_via(world, "fa1")
    assert world.trigger_fa2() is None
    world.run_until(world.now + 0.05)
    ready = world.events(PreRegistrationReady)
    assert ready and ready[0].agent == ACCESS["fa2"].ip
    assert ha_care_ofs(world) == {CARE_OF["fa1"], CARE_OF["fa2"]}  # S: both kept (RFC 5944 §3.6.1.3)
    assert world.fas["fa2"].visitor(HOA) is not None and world.fas["fa2"].visitor(HOA).link_address == MAC
    assert any(isinstance(e, VisitorExpected) for _, e in world.fa_events)
    requests_before = len(world.events(RequestSent))
    moved_at = world.now
    world.attach("fa2")
    world.run_until(moved_at + 0.02)
    assert world.events(PreRegistrationAttached, since=moved_at)[0].ready
    assert ArpModeChanged(HOA, True, ACCESS["fa2"].ip) in world.events(ArpModeChanged, since=moved_at)
    assert len(world.events(RequestSent)) == requests_before  # nothing on the critical path
    assert world.mn.state is MnState.REGISTERED
    assert any(isinstance(e, VisitorAttached) and e.how == "solicitation" for _, e in world.fa_events)
    world.run_until(moved_at + 3.0)  # the request without S, at least 1 s after the last one
    assert ha_care_ofs(world) == {CARE_OF["fa2"]}
    assert_via(world, "fa2")


def test_trigger_that_never_becomes_a_move_registers_the_old_path_again_rfc4881_3() -> None:
    world = RoutedWorld(2, loss=0.0, jitter=0.0)
    world.attach("fa1")
    world.run_until(5.0)
    assert world.trigger_fa2() is None
    world.run_until(world.now + 0.1)
    assert ha_care_ofs(world) == {CARE_OF["fa1"], CARE_OF["fa2"]}
    world.run_until(world.now + 6.0)
    abandoned = world.events(PreRegistrationAbandoned)
    assert abandoned and "never became a move" in abandoned[0].reason
    assert ha_care_ofs(world) == {CARE_OF["fa1"]}
    assert_via(world, "fa1")


def test_stale_trigger_changes_nothing_rfc4881_1_3() -> None:
    world = RoutedWorld(3, loss=0.0, jitter=0.0)
    world.attach("fa1")
    world.run_until(5.0)
    requests = len(world.events(RequestSent))
    reason = world.trigger_fa2(handoff_in=-0.5)
    assert reason is not None and "stale" in reason
    world.run_until(world.now + 0.5)
    assert len(world.events(RequestSent)) == requests and ha_care_ofs(world) == {CARE_OF["fa1"]}
    assert world.mn.status(world.now)["pre_registration"] == PreState.IDLE.value


def test_move_before_the_reply_still_completes_through_the_new_fa() -> None:
    """The link changes while the pre-registration reply is on its way: the MN routes via FA2 at once and
    the reply (or a retransmission through FA2) completes the registration."""
    world = RoutedWorld(4, loss=0.0, jitter=0.0)
    world.attach("fa1")
    world.run_until(5.0)
    world.trigger_fa2()
    world.attach("fa2")  # before any reply
    world.run_until(world.now + 3.0)
    attached = world.events(PreRegistrationAttached)
    assert attached and not attached[0].ready
    assert_via(world, "fa2")


def test_co_located_mode_refuses_the_trigger() -> None:
    from agents.mip.common.config import CareOfMode

    world = RoutedWorld(5, loss=0.0, jitter=0.0)
    world.mn = type(world.mn)(
        type(world.mn.config)(**{**world.mn.config.__dict__, "care_of_mode": CareOfMode.COLOCATED})
    )
    target = Target(ACCESS["fa2"].ip, CARE_OF["fa2"])
    assert world.mn.handoff_trigger(target, 1.0, 0.0) is not None


def test_no_pre_registration_from_home_rfc4881_3() -> None:
    """§3 sends the request through the old FA: at home there is none, so the move stays standard."""
    world = RoutedWorld(6, loss=0.0, jitter=0.0)
    world.attach("home")
    world.run_until(5.0)
    reason = world.trigger_fa2()
    assert reason is not None and "old FA" in reason
    assert world.mn.status(world.now)["pre_registration"] == PreState.IDLE.value


def test_post_registration_keeps_the_tunnel_and_registers_at_link_up_rfc4881_4() -> None:
    """With the edge tunnel carrying its packets (§4), the MN keeps its tunnel over the link change and
    registers through the new FA as the link comes up, not after the new FA's advertisement."""
    from agents.mip.common.events import TunnelDown

    world = RoutedWorld(7, loss=0.0, jitter=0.0)
    world.attach("fa1")
    world.run_until(5.0)
    target = Target(ACCESS["fa2"].ip, CARE_OF["fa2"], FA2_MAC, AdvertisementFlag.F | AdvertisementFlag.T)
    assert world.mn.handoff_trigger(target, world.now + 0.05, world.now, pre_register=False) is None
    world._collect()
    requests = len(world.events(RequestSent))
    world.run_until(world.now + 0.02)
    assert len(world.events(RequestSent)) == requests  # nothing registered before the move
    moved_at = world.now
    world.attach("fa2")
    sent = world.events(RequestSent, since=moved_at)
    assert sent and sent[0].care_of == CARE_OF["fa2"]  # at link up, before any advertisement
    assert not world.events(TunnelDown, since=moved_at)
    world.run_until(moved_at + 0.9)
    assert len(world.events(RequestSent, since=moved_at)) == 1  # FA2's advertisement adds none
    assert_via(world, "fa2")
