"""RFC 3519 NAT traversal in the sans-I/O cores (issue 10): the home agent's NAT detection and every
negotiation outcome, the mobile node's request and its keepalives, on a fake clock with an in-memory NAT
that rewrites the source address and port (RFC 3519 §3, §4; RFC 5454 §3.9)."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network, IPv6Network

import pytest

from agents.mip.common.bindings import CareOf, TunnelTarget
from agents.mip.common.config import (
    CareOfMode,
    HomeAgentConfig,
    MobileNodeAccount,
    MobileNodeConfig,
    UdpTunnelling,
)
from agents.mip.common.events import (
    BindingAdded,
    BindingRemoved,
    KeepaliveAnswered,
    KeepaliveDue,
    KeepaliveLost,
    RequestSent,
    TunnelUp,
)
from agents.mip.ha.home_agent import HomeAgent
from agents.mip.mn.mobile_node import MobileNode
from agents.mip.wire.auth import SecurityAssociation, append_authentication
from agents.mip.wire.codes import ExtensionType, RegistrationFlag
from agents.mip.wire.dsmip import PrefixRequest
from agents.mip.wire.extensions import AuthenticationExtension, UdpTunnelReply, UdpTunnelRequest
from agents.mip.wire.identification import timestamp_identification
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest, build_request, decode_message

KEY = bytes(range(16))
HA = IPv4Address("192.0.2.1")
HOA = IPv4Address("192.0.2.10")
PRIVATE = IPv4Address("192.168.1.10")
PUBLIC = IPv4Address("203.0.113.66")
PREFIX = IPv6Network("2001:db8:10::/48")
WALL = 1_800_000_000.0
MN_PORT, NAT_PORT = 50000, 61000


def home_agent(nat_traversal: bool = True, udp: bool = True, keepalive: int = 20) -> HomeAgent:
    account = MobileNodeAccount(HOA, 256, KEY, allowed_prefixes=(PREFIX,), nat_traversal=nat_traversal)
    config = HomeAgentConfig(
        HA, IPv4Network("192.0.2.0/24"), (account,), udp_tunnelling=udp, keepalive_interval=keepalive
    )
    return HomeAgent(config, wall_clock_offset=WALL, rng=random.Random(1))


def mobile_node(mode: UdpTunnelling = UdpTunnelling.AUTO, **changes: object) -> MobileNode:
    config = MobileNodeConfig(
        HOA, HA, 256, KEY, lifetime=60, prefixes=(PREFIX,), udp_tunnelling=mode, local_port=MN_PORT, **changes
    )  # type: ignore[arg-type]
    return MobileNode(config, wall_clock_offset=WALL, rng=random.Random(2))


def events(machine: HomeAgent | MobileNode) -> list[object]:
    found = []
    while (event := machine.next_event()) is not None:
        found.append(event)
    return found


def exchange(mn: MobileNode, ha: HomeAgent, now: float, source: tuple[IPv4Address, int]) -> RegistrationReply:
    """The MN's queued request reaches the HA from ``source`` (a NAT rewrites it, or not); the HA's reply
    comes back to the MN. Returns the reply."""
    (request,) = mn.datagrams_to_send(now)
    ha.receive_datagram(request.payload, source, HA, now)
    (answer,) = ha.datagrams_to_send(now)
    assert (answer.destination, answer.port) == source  # replies go to the request's source (RFC 3519 §4.6)
    mn.receive_datagram(answer.payload, (HA, 434), PRIVATE, now)
    reply = decode_message(answer.payload)
    assert isinstance(reply, RegistrationReply)
    return reply


def raw_signed(*extensions: object, flags: RegistrationFlag) -> bytes:
    """A request our builder would refuse (it enforces the RFC rules), signed the same way."""
    request = RegistrationRequest(
        flags,
        60,
        HOA,
        HA,
        PRIVATE,
        timestamp_identification(WALL + 1, 0),
        tuple(extensions),  # type: ignore[arg-type]
    )
    return append_authentication(
        request.encode(), ExtensionType.MOBILE_HOME_AUTH, SecurityAssociation(256, KEY)
    )


def signed_request(
    *extensions: object, flags: RegistrationFlag = RegistrationFlag.D | RegistrationFlag.T
) -> bytes:
    request = RegistrationRequest(
        flags,
        60,
        HOA,
        HA,
        PRIVATE,
        timestamp_identification(WALL + 1, 0),
        tuple(extensions),  # type: ignore[arg-type]
    )
    return build_request(request, SecurityAssociation(256, KEY))


def reply_to(
    ha: HomeAgent, raw: bytes, source: tuple[IPv4Address, int] = (PUBLIC, NAT_PORT)
) -> RegistrationReply:
    ha.receive_datagram(raw, source, HA, 1.0)
    (answer,) = ha.datagrams_to_send(1.0)
    reply = decode_message(answer.payload)
    assert isinstance(reply, RegistrationReply)
    return reply


# -- the home agent's decisions (RFC 3519 §4.6) --------------------------------------------------------


def test_a_nat_makes_the_request_source_the_care_of_address() -> None:
    """§4.6: source ≠ Care-of Address is a NAT; the binding is the NAT's address and port, code 0, a
    UDP Tunnel Reply with K, and IPv6 goes straight to that care-of (RFC 5454 §3.9: code 1)."""
    mn, ha = mobile_node(), home_agent(keepalive=20)
    mn.link_changed(True, PRIVATE, 0.0)
    reply = exchange(mn, ha, 0.0, (PUBLIC, NAT_PORT))
    assert reply.code == 0
    assert reply.udp_tunnel_reply == UdpTunnelReply(0, force=False, keepalive=20)
    assert [(r.code, r.prefix_length) for r in reply.prefix_replies] == [(1, 48)]
    added = [e for e in events(ha) if isinstance(e, BindingAdded)]
    assert added[0].care_of == CareOf(PUBLIC, NAT_PORT)
    binding = ha.table.get(HOA)
    assert binding is not None and binding.prefixes[PREFIX].target is TunnelTarget.CARE_OF
    tunnel = [e for e in events(mn) if isinstance(e, TunnelUp)]
    assert tunnel[0].udp_keepalive == 20.0 and tunnel[0].care_of == PRIVATE


def test_the_mobile_node_asks_with_d_t_and_encapsulation_0() -> None:
    """§3.1, §3.1.5: D MUST be set, T SHOULD; Encapsulation 0 with IPv6 prefixes (RFC 5454 §3.9);
    the extension comes before the MN-HA authentication."""
    mn = mobile_node()
    mn.link_changed(True, PRIVATE, 0.0)
    (request,) = mn.datagrams_to_send(0.0)
    message = decode_message(request.payload)
    assert isinstance(message, RegistrationRequest)
    assert RegistrationFlag.D in message.flags and RegistrationFlag.T in message.flags
    (ask,) = message.udp_tunnel_requests
    assert (ask.force, ask.r_flag, ask.encapsulation) == (False, False, 0)
    kinds = [type(e) for e in message.extensions]
    assert kinds.index(UdpTunnelRequest) < kinds.index(AuthenticationExtension)


def test_without_a_nat_the_home_agent_declines_and_tunnels_as_usual() -> None:
    """§4.6: no mismatch and no F: a declining UDP Tunnel Reply (code ≥ 64); plain IP-in-IP binding."""
    mn, ha = mobile_node(), home_agent()
    mn.link_changed(True, PRIVATE, 0.0)
    reply = exchange(mn, ha, 0.0, (PRIVATE, MN_PORT))
    assert reply.code == 0 and reply.udp_tunnel_reply is not None
    assert not reply.udp_tunnel_reply.accepted
    added = [e for e in events(ha) if isinstance(e, BindingAdded)]
    assert added[0].care_of == CareOf(PRIVATE, None)
    tunnel = [e for e in events(mn) if isinstance(e, TunnelUp)]
    assert tunnel[0].udp_keepalive is None


def test_f_forces_udp_tunnelling_without_a_nat() -> None:
    """§3.1.1: F set, no NAT: the HA tunnels in UDP anyway and says so with F in its reply (§3.2)."""
    mn, ha = mobile_node(UdpTunnelling.FORCE), home_agent()
    mn.link_changed(True, PRIVATE, 0.0)
    reply = exchange(mn, ha, 0.0, (PRIVATE, MN_PORT))
    assert reply.udp_tunnel_reply == UdpTunnelReply(0, force=True, keepalive=20)
    added = [e for e in events(ha) if isinstance(e, BindingAdded)]
    assert added[0].care_of == CareOf(PRIVATE, MN_PORT)


def test_nat_traversal_not_allowed_is_129() -> None:
    """§4.6: a NAT seen but traversal not allowed for this MN: 129, no binding."""
    mn, ha = mobile_node(), home_agent(nat_traversal=False)
    mn.link_changed(True, PRIVATE, 0.0)
    reply = exchange(mn, ha, 0.0, (PUBLIC, NAT_PORT))
    assert reply.code == 129 and ha.table.get(HOA) is None


@pytest.mark.parametrize(
    ("extensions", "flags", "code"),
    [
        ((UdpTunnelRequest(False, False, 0),), RegistrationFlag.T, 134),  # no D (§3.1.5, §4.6.1)
        ((UdpTunnelRequest(False, False, 0, reserved3=1),), RegistrationFlag.D, 134),  # Reserved3 (§4.6.1)
        ((UdpTunnelRequest(False, False, 47),), RegistrationFlag.D, 142),  # GRE in UDP: not offered (§3.5)
        ((UdpTunnelRequest(False, False, 0), UdpTunnelRequest(False, False, 0)), RegistrationFlag.D, 134),
    ],
)
def test_malformed_or_unsupported_requests_are_refused(
    extensions: tuple[UdpTunnelRequest, ...], flags: RegistrationFlag, code: int
) -> None:
    reply = reply_to(home_agent(), raw_signed(*extensions, flags=flags))
    assert reply.code == code


def test_a_foreign_agents_request_with_d_set_is_134() -> None:
    """§4.6.1: a UDP Tunnel Request after the MN-HA authentication (added by an FA) with D set."""
    raw = signed_request(flags=RegistrationFlag.D) + UdpTunnelRequest(False, False, 0).encode()
    assert reply_to(home_agent(), raw).code == 134


def test_r_flag_is_accepted_and_waits_for_the_keepalive() -> None:
    """§4.6: R (co-located CoA registered via an FA that advertised U): assent, port unknown until the MN's
    first keepalive (the whole exchange: tests/unit/test_nat_r_flag.py)."""
    ha = home_agent()
    reply = reply_to(ha, signed_request(UdpTunnelRequest(False, True, 0), flags=RegistrationFlag.D))
    assert reply.code == 0 and reply.udp_tunnel_reply == UdpTunnelReply(0, force=False, keepalive=20)
    binding = ha.table.get(HOA)
    assert binding is not None and list(binding.care_ofs) == [CareOf(PUBLIC, 0)]


def test_a_home_agent_without_udp_support_ignores_the_skippable_request() -> None:
    """RFC 5944 §1.8: 144 is skippable; an HA that does not do RFC 3519 registers as usual, no 44."""
    reply = reply_to(home_agent(udp=False), signed_request(UdpTunnelRequest(False, False, 0)))
    assert reply.code == 0 and reply.udp_tunnel_reply is None
    assert reply.find(ExtensionType.UDP_TUNNEL_REPLY) == ()


def test_no_udp_reply_means_no_udp_tunnel_at_the_mobile_node() -> None:
    """§4.4: if the reply has no UDP Tunnel Reply the MN MUST NOT use UDP tunnelling."""
    mn = mobile_node()
    mn.link_changed(True, PRIVATE, 0.0)
    exchange(mn, home_agent(udp=False), 0.0, (PUBLIC, NAT_PORT))
    tunnel = [e for e in events(mn) if isinstance(e, TunnelUp)]
    assert tunnel[0].udp_keepalive is None


def test_deregistration_from_behind_the_nat_removes_the_nat_binding() -> None:
    """RFC 5944 §3.6.1.2 through a NAT: the request names the private care-of address, the HA removes
    the binding it holds for the NAT's address and port."""
    mn, ha = mobile_node(), home_agent()
    mn.link_changed(True, PRIVATE, 0.0)
    exchange(mn, ha, 0.0, (PUBLIC, NAT_PORT))
    events(ha)
    mn.deregister(2.0)
    reply = exchange(mn, ha, 2.0, (PUBLIC, NAT_PORT))
    assert reply.code == 0 and ha.table.get(HOA) is None
    assert any(isinstance(e, BindingRemoved) and e.care_of == CareOf(PUBLIC, NAT_PORT) for e in events(ha))


def test_a_new_nat_port_moves_the_binding() -> None:
    """The NAT forgot the mapping and gave a new port: the re-registration moves the binding there and
    the old port's entry goes (after the new one is in place)."""
    mn, ha = mobile_node(), home_agent()
    mn.link_changed(True, PRIVATE, 0.0)
    exchange(mn, ha, 0.0, (PUBLIC, NAT_PORT))
    events(ha)
    mn.register(2.0)
    exchange(mn, ha, 2.0, (PUBLIC, NAT_PORT + 1))
    changes = [e for e in events(ha) if isinstance(e, BindingAdded | BindingRemoved)]
    assert [(type(e).__name__, e.care_of) for e in changes] == [
        ("BindingAdded", CareOf(PUBLIC, NAT_PORT + 1)),
        ("BindingRemoved", CareOf(PUBLIC, NAT_PORT)),
    ]


def test_udp_tunnelling_needs_a_colocated_care_of_address() -> None:
    """§3.1: the MN uses the UDP Tunnel Request only with a co-located care-of address."""
    with pytest.raises(ValueError, match="co-located"):
        MobileNodeConfig(
            HOA, HA, 256, KEY, udp_tunnelling=UdpTunnelling.AUTO, care_of_mode=CareOfMode.FOREIGN_AGENT
        )


# -- keepalives (RFC 3519 §4.9, §4.10) ------------------------------------------------------------------


def registered_behind_nat(keepalive: int = 20) -> tuple[MobileNode, HomeAgent]:
    mn, ha = mobile_node(), home_agent(keepalive=keepalive)
    mn.link_changed(True, PRIVATE, 0.0)
    exchange(mn, ha, 0.0, (PUBLIC, NAT_PORT))
    events(mn)
    return mn, ha


def test_the_first_keepalive_goes_k_seconds_after_the_request_and_then_every_k() -> None:
    mn, _ = registered_behind_nat(keepalive=20)
    assert mn.get_timer() == pytest.approx(20.0)
    mn.handle_timer(19.9)
    assert not [e for e in events(mn) if isinstance(e, KeepaliveDue)]
    mn.handle_timer(20.0)
    (due,) = [e for e in events(mn) if isinstance(e, KeepaliveDue)]
    assert (due.home_agent, due.home_address, due.attempt) == (HA, HOA, 1)
    assert mn.keepalive_answered(due.sequence, 20.01)
    assert [type(e) for e in events(mn)] == [KeepaliveAnswered]
    assert mn.get_timer() == pytest.approx(40.0)


def test_a_reply_to_another_keepalive_is_ignored() -> None:
    mn, _ = registered_behind_nat()
    mn.handle_timer(20.0)
    (due,) = [e for e in events(mn) if isinstance(e, KeepaliveDue)]
    assert not mn.keepalive_answered(due.sequence + 1, 20.1)


def test_unanswered_keepalives_make_the_mobile_node_register_again() -> None:
    """§4.9: no answer after the retries: re-register (a new request makes a new NAT mapping)."""
    mn, _ = registered_behind_nat()
    times = [20.0, 21.0, 22.0]
    for now in times:
        mn.handle_timer(now)
    sent = [e for e in events(mn) if isinstance(e, KeepaliveDue)]
    assert [e.attempt for e in sent] == [1, 2, 3]
    mn.handle_timer(23.0)
    after = events(mn)
    assert any(isinstance(e, KeepaliveLost) and e.missed == 3 for e in after)
    assert any(isinstance(e, RequestSent) for e in after)
    (request,) = mn.datagrams_to_send(23.0)
    message = decode_message(request.payload)
    assert isinstance(message, RegistrationRequest) and message.udp_tunnel_requests


def test_no_keepalives_without_a_udp_tunnel() -> None:
    mn = mobile_node()
    mn.link_changed(True, PRIVATE, 0.0)
    exchange(mn, home_agent(), 0.0, (PRIVATE, MN_PORT))
    events(mn)
    for now in (20.0, 30.0, 45.0):
        mn.handle_timer(now)
    assert not [e for e in events(mn) if isinstance(e, KeepaliveDue)]


def test_prefix_request_survives_in_the_udp_reply() -> None:
    """RFC 5454 §3.9: with a private care-of address the IPv6 prefix is still registered."""
    reply = reply_to(
        home_agent(), signed_request(PrefixRequest.for_network(PREFIX), UdpTunnelRequest(False, False, 0))
    )
    assert [r.code for r in reply.prefix_replies] == [1]


def test_encapsulation_0_with_gre_or_minimal_flags_is_142() -> None:
    """RFC 3519 §3.1: Encapsulation 0 means "as the M/G flags say"; only IP-in-IP goes in UDP here."""
    for flag in (RegistrationFlag.G, RegistrationFlag.M):
        raw = raw_signed(UdpTunnelRequest(False, False, 0), flags=RegistrationFlag.D | flag)
        assert reply_to(home_agent(), raw).code == 142


def test_a_deregistration_from_a_new_nat_port_removes_the_old_ports_binding() -> None:
    """The NAT changed the port before the MN deregistered: the request still comes from the NAT's
    address, which is what the HA binds by (RFC 3519 §4.6); the binding goes."""
    mn, ha = mobile_node(), home_agent()
    mn.link_changed(True, PRIVATE, 0.0)
    exchange(mn, ha, 0.0, (PUBLIC, NAT_PORT))
    mn.deregister(2.0)
    reply = exchange(mn, ha, 2.0, (PUBLIC, NAT_PORT + 5))
    assert reply.code == 0 and ha.table.get(HOA) is None


def test_traffic_both_ways_postpones_the_keepalive() -> None:
    """RFC 3519 §4.9: keepalives keep a quiet mapping alive; packets flowing both ways do that already."""
    mn, _ = registered_behind_nat(keepalive=20)
    mn.tunnel_traffic(15.0)
    mn.handle_timer(20.0)
    assert not [e for e in events(mn) if isinstance(e, KeepaliveDue)]
    assert mn.get_timer() == pytest.approx(35.0)
    mn.handle_timer(35.0)
    assert [e for e in events(mn) if isinstance(e, KeepaliveDue)]


@pytest.mark.parametrize("stale_first", [True, False], ids=["lower-home-address-stale", "higher-stale"])
def test_a_nat_port_reused_for_another_mobile_node_takes_the_stale_bindings_path_away(
    stale_first: bool,
) -> None:
    """RFC 3519 §4.3, §4.8, §4.10: the NAT forgot one MN's mapping and gave its public port to another MN;
    that MN's registration from the port binds it, and the first MN's binding there goes (its traffic must
    not be tunnelled to the other node); it registers again when its keepalives go unanswered. Either
    home address may be the stale one (the table is ordered by home address)."""
    hoa2 = IPv4Address("192.0.2.20")
    accounts = (
        MobileNodeAccount(HOA, 256, KEY, allowed_prefixes=(PREFIX,), nat_traversal=True),
        MobileNodeAccount(hoa2, 257, KEY, nat_traversal=True),
    )
    config = HomeAgentConfig(
        HA, IPv4Network("192.0.2.0/24"), accounts, udp_tunnelling=True, keepalive_interval=20
    )
    ha = HomeAgent(config, wall_clock_offset=WALL, rng=random.Random(1))
    first = mobile_node()
    second = MobileNode(
        MobileNodeConfig(
            hoa2, HA, 257, KEY, lifetime=60, udp_tunnelling=UdpTunnelling.AUTO, local_port=MN_PORT
        ),
        wall_clock_offset=WALL,
        rng=random.Random(3),
    )
    (stale, stale_home), (fresh, fresh_home) = ((first, HOA), (second, hoa2))[:: 1 if stale_first else -1]
    stale.link_changed(True, PRIVATE, 0.0)
    exchange(stale, ha, 0.0, (PUBLIC, NAT_PORT))
    events(ha)
    fresh.link_changed(True, IPv4Address("192.168.1.11"), 5.0)
    assert exchange(fresh, ha, 5.0, (PUBLIC, NAT_PORT)).code == 0  # the same public port, now the other's
    changes = [(type(e).__name__, e.home_address, e.care_of) for e in events(ha) if hasattr(e, "care_of")]
    assert ("BindingAdded", fresh_home, CareOf(PUBLIC, NAT_PORT)) in changes
    assert ("BindingRemoved", stale_home, CareOf(PUBLIC, NAT_PORT)) in changes
    assert (
        ha.table.get(stale_home) is None or CareOf(PUBLIC, NAT_PORT) not in ha.table.get(stale_home).care_ofs
    )  # type: ignore[union-attr]
    assert list(ha.table.get(fresh_home).care_ofs) == [CareOf(PUBLIC, NAT_PORT)]  # type: ignore[union-attr]
    assert ha.counters["nat_port_reused"] == 1
