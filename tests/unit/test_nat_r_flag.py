"""R via an FA with U (RFC 3519 §3.1.2, §3.4, §4.4, §4.5, §4.6, §4.11, §6.1.2) on a fake clock: a mobile node
with a co-located address behind a NAT registers through a foreign agent (also behind that NAT) that
advertises R and U; the HA keeps the binding "half bound" until the MN's first keepalive tells it the NAT's
port. The MN, the FA and the HA are the real sans-I/O cores; the NAT is a function that rewrites the source.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Network

import pytest
from scapy.layers.inet import ICMP

from agents.mip.common.bindings import UNKNOWN_PORT, CareOf
from agents.mip.common.config import (
    CareOfMode,
    HomeAgentConfig,
    MobileNodeAccount,
    MobileNodeConfig,
    UdpTunnelling,
)
from agents.mip.common.events import (
    ArpModeChanged,
    BindingAdded,
    BindingRemoved,
    BindingUpdated,
    KeepaliveDue,
    TunnelUp,
    UdpTunnelBound,
)
from agents.mip.fa.config import AdvertisementConfig, ForeignAgentConfig
from agents.mip.fa.foreign_agent import ForeignAgent
from agents.mip.ha.home_agent import HomeAgent
from agents.mip.mn.keepalive import keepalive_request
from agents.mip.mn.mobile_node import MobileNode
from agents.mip.mn.requests import ForeignAgentRoute, build_request, colocated_through, new_registration
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.extensions import UdpTunnelReply, UdpTunnelRequest
from agents.mip.wire.icmp import AdvertisementFlag
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest, decode_message

KEY = bytes(range(16))
HA = IPv4Address("192.0.2.1")
HOA, HOA2 = IPv4Address("192.0.2.10"), IPv4Address("192.0.2.20")
PRIVATE = IPv4Address("192.168.1.10")  # the MN's co-located address (the private LAN's DHCP)
FA_ACCESS = IPv4Interface("192.168.1.2/24")  # the FA on the private LAN
FA_CARE_OF = IPv4Address("192.168.2.2")  # its own (private) care-of address
PUBLIC = IPv4Address("203.0.113.66")  # the NAT's public address
OTHER = IPv4Address("203.0.113.99")
PREFIX = IPv6Network("2001:db8:10::/48")
WALL = 1_800_000_000.0
MN_PORT, FA_NAT_PORT, MN_NAT_PORT = 50000, 61000, 62000
MAC = bytes.fromhex("020000000010")
K = 20


def home_agent(nat_traversal: bool = True, lifetime: int = 60) -> HomeAgent:
    accounts = tuple(
        MobileNodeAccount(
            home, 256 + i, KEY, allowed_prefixes=(PREFIX,) if i == 0 else (), nat_traversal=nat_traversal
        )
        for i, home in enumerate((HOA, HOA2))
    )
    config = HomeAgentConfig(
        HA,
        IPv4Network("192.0.2.0/24"),
        accounts,
        udp_tunnelling=True,
        keepalive_interval=K,
        max_lifetime=lifetime,
    )
    return HomeAgent(config, wall_clock_offset=WALL, rng=random.Random(1))


def fa_config(r: bool = True, u: bool = True) -> ForeignAgentConfig:
    advertisement = AdvertisementConfig(router_addresses=(FA_ACCESS,), prefix_lengths=True)
    return ForeignAgentConfig(
        (FA_CARE_OF,),
        advertisement,
        encapsulations=frozenset({"ipip"}),  # type: ignore[arg-type]
        registration_required=r,
        udp_tunnelling=u,
    )


def mobile_node(home: IPv4Address = HOA, mode: UdpTunnelling = UdpTunnelling.AUTO) -> MobileNode:
    config = MobileNodeConfig(
        home,
        HA,
        256 if home == HOA else 257,
        KEY,
        lifetime=60,
        prefixes=(PREFIX,) if home == HOA else (),
        care_of_mode=CareOfMode.AUTO,
        udp_tunnelling=mode,
        local_port=MN_PORT,
    )
    return MobileNode(config, wall_clock_offset=WALL, rng=random.Random(2))


def drain(machine: object) -> list[object]:
    found = []
    while (event := machine.next_event()) is not None:  # type: ignore[attr-defined]
        found.append(event)
    return found


def advertisement(config: ForeignAgentConfig) -> bytes:
    fa = ForeignAgent(config, rng=random.Random(3))
    fa.handle_timer(0.0)
    (first, *_) = fa.advertisements_to_send(0.0)
    return first.payload


class World:
    """MN and FA on the private LAN, the NAT in front of both, the HA outside."""

    def __init__(self, ha: HomeAgent | None = None, mn: MobileNode | None = None) -> None:
        self.ha = ha or home_agent()
        self.fa = ForeignAgent(fa_config(), rng=random.Random(4))
        self.mn = mn or mobile_node()
        self.mn_nat_port = MN_NAT_PORT

    def arrive(self, now: float) -> None:
        """The MN gets its private address, then hears the FA (R, U): its request goes through the FA."""
        self.mn.link_changed(True, PRIVATE, now)
        self.mn.datagrams_to_send(now)  # the first, direct request is lost: the FA's advertisement rules
        self.mn.receive_advertisement(advertisement(fa_config()), FA_ACCESS.ip, now)

    def register(self, now: float) -> RegistrationReply:
        """MN → FA → (NAT) → HA → (NAT) → FA → MN; the HA's reply as the MN got it."""
        self.mn.handle_timer(now)
        (request,) = self.mn.datagrams_to_send(now)
        assert (request.destination, request.source) == (FA_ACCESS.ip, PRIVATE)
        self.fa.receive_datagram(
            request.payload, (PRIVATE, MN_PORT), FA_ACCESS.ip, now, link_address=MAC, ttl=255
        )
        (relayed,) = self.fa.datagrams_to_send(now)
        assert (relayed.destination, relayed.source) == (HA, FA_CARE_OF)
        self.ha.receive_datagram(relayed.payload, (PUBLIC, FA_NAT_PORT), HA, now)  # the FA's NAT mapping
        (answer,) = self.ha.datagrams_to_send(now)
        assert (answer.destination, answer.port) == (PUBLIC, FA_NAT_PORT)  # back to the FA, through the NAT
        self.fa.receive_datagram(answer.payload, (HA, 434), FA_CARE_OF, now)
        (to_mn,) = self.fa.datagrams_to_send(now)
        assert (to_mn.destination, to_mn.link_address) == (PRIVATE, MAC)
        self.mn.receive_datagram(to_mn.payload, (FA_ACCESS.ip, 434), PRIVATE, now)
        reply = decode_message(answer.payload)
        assert isinstance(reply, RegistrationReply)
        return reply

    def keepalive(self, now: float) -> KeepaliveDue:
        self.mn.handle_timer(now)
        (due,) = [e for e in drain(self.mn) if isinstance(e, KeepaliveDue)]
        return due

    def deliver_keepalive(
        self, due: KeepaliveDue, now: float, source: tuple[IPv4Address, int] | None = None
    ) -> bool:
        payload = keepalive_request(due.home_address, due.home_agent, 7, due.sequence)
        return self.ha.receive_keepalive(payload, source or (PUBLIC, self.mn_nat_port), now)


# -- the foreign agent: U in its advertisement (RFC 3519 §3.4) ------------------------------------------


def test_u_needs_r_in_the_foreign_agents_configuration() -> None:
    """§3.4, §4.11: this FA only relays co-located registrations in UDP mode, so U without R is refused."""
    with pytest.raises(ValueError, match="udp_tunnelling \\(U\\) needs registration_required \\(R\\)"):
        fa_config(r=False, u=True)
    assert AdvertisementFlag.U not in fa_config(r=True, u=False).advertisement_flags


def test_the_advertisement_carries_r_and_u_as_scapy_and_the_rfc_layout_read_it() -> None:
    """RFC 3519 §3.4 figure: the flags octets of extension 16 are R B H F M G r T | U reserved. Scapy reads
    the ICMP type 9 message and its checksum; the extension is then read byte by byte from the figure."""
    data = advertisement(fa_config())
    icmp = ICMP(data)
    assert (icmp.type, icmp.code) == (9, 0)
    rebuilt = ICMP(data)
    del rebuilt.chksum
    assert bytes(rebuilt)[2:4] == data[2:4]  # scapy computes the same checksum
    addresses = data[4]
    extension = data[8 + 8 * addresses :]
    assert extension[0] == 16 and extension[1] == 6 + 4  # Mobility Agent Advertisement, one care-of address
    assert extension[6] == 0b1001_0001  # R . . F . . . T  (busy clear, no H, IP-in-IP only)
    assert extension[7] == 0b1000_0000  # U, reserved bits 0
    assert IPv4Address(extension[8:12]) == FA_CARE_OF


def test_the_foreign_agent_relays_d_and_the_r_flag_request_unchanged_and_adds_none_of_its_own() -> None:
    """§4.5: an FA requiring R MUST NOT add its own UDP Tunnel Request to a co-located registration; the
    MN's bytes up to MN-HA go to the HA unchanged (D set, 144 with R), from the FA's care-of address."""
    world = World()
    world.arrive(0.0)
    world.mn.handle_timer(1.0)
    (request,) = world.mn.datagrams_to_send(1.0)
    world.fa.receive_datagram(
        request.payload, (PRIVATE, MN_PORT), FA_ACCESS.ip, 1.0, link_address=MAC, ttl=255
    )
    (relayed,) = world.fa.datagrams_to_send(1.0)
    assert relayed.payload == request.payload  # no MN-FA, no 130 here: the whole request, byte for byte
    decoded = RegistrationRequest.decode(relayed.payload)
    assert RegistrationFlag.D in decoded.flags and decoded.care_of_address == PRIVATE
    assert [e for e in decoded.extensions if isinstance(e, UdpTunnelRequest)] == [
        UdpTunnelRequest(False, True, 0)
    ]


# -- the mobile node's choice (RFC 3519 §3.1.2, §4.4) ---------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "mode", "through"),
    [
        (AdvertisementFlag.R | AdvertisementFlag.U | AdvertisementFlag.F, UdpTunnelling.AUTO, True),
        (AdvertisementFlag.R | AdvertisementFlag.U | AdvertisementFlag.F, UdpTunnelling.FORCE, True),
        (AdvertisementFlag.R | AdvertisementFlag.F, UdpTunnelling.AUTO, False),  # no U: MUST NOT send 144
        (AdvertisementFlag.U | AdvertisementFlag.F, UdpTunnelling.AUTO, False),  # no R: co-located directly
        (AdvertisementFlag.R | AdvertisementFlag.U | AdvertisementFlag.F, UdpTunnelling.OFF, False),
    ],
)
def test_the_mobile_node_sets_r_only_when_the_fa_advertised_r_and_u(
    flags: AdvertisementFlag, mode: UdpTunnelling, through: bool
) -> None:
    """§4.4: co-located through an FA whose advertisement had U → R flag; without U no UDP Tunnel Request."""
    config = MobileNodeConfig(HOA, HA, 256, KEY, care_of_mode=CareOfMode.AUTO, udp_tunnelling=mode)
    assert colocated_through(config, flags) is through


def test_the_request_through_the_fa_names_the_colocated_address_with_d_t_and_r() -> None:
    """§3.1.2, §3.1.5: D MUST be set, T SHOULD; the Care-of Address field is the co-located address; the
    request leaves from it to the FA (RFC 5944 §3.6.1.1); F as configured; Encapsulation 0."""
    config = MobileNodeConfig(
        HOA,
        HA,
        256,
        KEY,
        care_of_mode=CareOfMode.AUTO,
        udp_tunnelling=UdpTunnelling.FORCE,
        prefixes=(PREFIX,),
    )
    route = ForeignAgentRoute(FA_ACCESS.ip, FA_CARE_OF, fa_config().advertisement_flags, 600, PRIVATE)
    pending = new_registration(config, PRIVATE, (), route)
    pending.identification = 1
    request = RegistrationRequest.decode(build_request(config, pending))
    assert (
        request.flags & (RegistrationFlag.D | RegistrationFlag.T) == RegistrationFlag.D | RegistrationFlag.T
    )
    assert request.care_of_address == PRIVATE
    assert pending.addresses(config) == (PRIVATE, FA_ACCESS.ip)
    assert pending.udp_request == UdpTunnelRequest(force=True, r_flag=True, encapsulation=0)


def test_without_u_the_fa_care_of_address_is_registered_and_no_udp_request_goes() -> None:
    """§4.4, §4.11: R without U: the MN MUST NOT include the UDP Tunnel Request (the FA's care-of then)."""
    mn = mobile_node()
    mn.link_changed(True, PRIVATE, 0.0)
    mn.datagrams_to_send(0.0)
    mn.receive_advertisement(advertisement(fa_config(r=True, u=False)), FA_ACCESS.ip, 0.0)
    mn.handle_timer(1.0)
    (request,) = mn.datagrams_to_send(1.0)
    decoded = RegistrationRequest.decode(request.payload)
    assert decoded.care_of_address == FA_CARE_OF and RegistrationFlag.D not in decoded.flags
    assert not [e for e in decoded.extensions if isinstance(e, UdpTunnelRequest)]


# -- the home agent: half bound until the first keepalive (RFC 3519 §4.6, §4.11, §6.1.2) -----------------


def test_r_via_an_fa_with_u_is_accepted_half_bound_and_completed_by_the_first_keepalive() -> None:
    """§4.6: the HA SHOULD assent (UDP Tunnel Reply code 0 with K); it MUST wait for the first keepalive
    before sending to the MN, and then uses that keepalive's outer address and port. §4.4: the MN sends
    that keepalive as soon as the registration is accepted."""
    world = World()
    world.arrive(0.0)
    reply = world.register(1.0)
    assert reply.code == 0 and reply.udp_tunnel_reply == UdpTunnelReply(0, force=False, keepalive=K)
    added = [e for e in drain(world.ha) if isinstance(e, BindingAdded)]
    assert [e.care_of for e in added] == [CareOf(PUBLIC, UNKNOWN_PORT)]  # nothing is sent to a guessed port
    (entry,) = world.ha.table.get(HOA).care_ofs.values()  # type: ignore[union-attr]
    assert entry.awaiting_keepalive and entry.request_source == (PUBLIC, FA_NAT_PORT)
    tunnel = [e for e in drain(world.mn) if isinstance(e, TunnelUp)]
    assert tunnel[0].colocated and tunnel[0].care_of == PRIVATE and tunnel[0].udp_keepalive == K
    due = world.keepalive(1.0)  # at once, not K seconds later (§4.4)
    assert world.deliver_keepalive(due, 1.002)
    bound = drain(world.ha)
    assert [type(e) for e in bound] == [BindingUpdated, UdpTunnelBound]
    assert bound[0].care_of == CareOf(PUBLIC, MN_NAT_PORT)  # type: ignore[attr-defined]
    assert bound[1] == UdpTunnelBound(HOA, CareOf(PUBLIC, MN_NAT_PORT), 0.002, None)
    (entry,) = world.ha.table.get(HOA).care_ofs.values()  # type: ignore[union-attr]
    assert (
        not entry.awaiting_keepalive and entry.expires_at == 61.0
    )  # the lifetime still runs from the request


def test_the_mobile_node_keeps_its_own_routes_through_the_fa() -> None:
    """Its tunnel ends at its co-located address: no default route via the FA (RFC 5944 §4.2.2 is for FA
    care-of addresses), so the MN is away without an agent to route through."""
    world = World()
    world.arrive(0.0)
    changes = [e for e in drain(world.mn) if isinstance(e, ArpModeChanged)]
    assert all(e.foreign_agent is None for e in changes)


def test_a_half_bound_binding_without_keepalive_expires_and_a_late_keepalive_completes_nothing() -> None:
    """§4.7: tunnelling only for the binding's lifetime; a later keepalive finds no binding to complete."""
    world = World(ha=home_agent(lifetime=30))
    world.arrive(0.0)
    world.register(1.0)
    due = world.keepalive(1.0)
    drain(world.ha)
    world.ha.handle_timer(31.0)
    removed = [e for e in drain(world.ha) if isinstance(e, BindingRemoved)]
    assert [(e.care_of, e.reason) for e in removed] == [(CareOf(PUBLIC, UNKNOWN_PORT), "expired")]
    assert world.ha.table.get(HOA) is None
    assert not world.deliver_keepalive(due, 31.5)
    assert drain(world.ha) == []


def test_a_keepalive_from_another_address_does_not_complete_the_binding() -> None:
    """§4.6, §6.1.2: the outer source address MUST be the request's (only the port may differ)."""
    world = World()
    world.arrive(0.0)
    world.register(1.0)
    due = world.keepalive(1.0)
    drain(world.ha)
    assert not world.deliver_keepalive(due, 1.01, source=(OTHER, MN_NAT_PORT))
    assert drain(world.ha) == []
    (entry,) = world.ha.table.get(HOA).care_ofs.values()  # type: ignore[union-attr]
    assert entry.awaiting_keepalive and entry.care_of == CareOf(PUBLIC, UNKNOWN_PORT)


def test_a_keepalive_must_be_an_echo_request_from_the_home_address_to_the_home_agent() -> None:
    """§4.6: inner source = home address, inner destination = the HA; other Tunnel Data completes nothing."""
    world = World()
    world.arrive(0.0)
    world.register(1.0)
    drain(world.ha)
    other_home = keepalive_request(HOA2, HA, 7, 1)  # another MN's home address: not this binding
    to_someone_else = keepalive_request(HOA, IPv4Address("198.51.100.7"), 7, 1)
    echo_reply = bytearray(keepalive_request(HOA, HA, 7, 1))
    echo_reply[4 + 20] = 0  # ICMP type 0: an Echo Reply is no keepalive
    data = bytes((4, 4, 0, 0)) + bytes(28)  # Tunnel Data, but not even IPv4 inside
    for payload in (other_home, to_someone_else, bytes(echo_reply), data):
        assert not world.ha.receive_keepalive(payload, (PUBLIC, MN_NAT_PORT), 1.1)
    assert drain(world.ha) == []


def test_a_keepalive_cannot_move_a_binding_onto_another_mobile_nodes_port() -> None:
    """Two mobile nodes behind the same NAT: MN 2's half-bound binding is not completed at MN 1's NAT port
    (two bindings cannot share one mapping, §4.3), and MN 1's completed binding is not moved by a keepalive
    from another port (only a half-bound binding learns its port, §4.6)."""
    world = World()
    world.arrive(0.0)
    world.register(1.0)
    assert world.deliver_keepalive(world.keepalive(1.0), 1.01)
    second = World(ha=world.ha, mn=mobile_node(HOA2))
    second.arrive(2.0)
    second.register(3.0)
    drain(world.ha)
    due2 = second.keepalive(3.0)
    assert not second.deliver_keepalive(due2, 3.01, source=(PUBLIC, MN_NAT_PORT))  # MN 1's mapping
    assert world.ha.counters["keepalive_port_taken"] == 1
    assert second.deliver_keepalive(due2, 3.02, source=(PUBLIC, MN_NAT_PORT + 1))
    due1 = world.keepalive(1.01 + K)
    assert not world.deliver_keepalive(due1, 21.5, source=(PUBLIC, MN_NAT_PORT + 7))
    keys = {home: list(world.ha.table.get(home).care_ofs) for home in (HOA, HOA2)}  # type: ignore[union-attr]
    assert keys == {HOA: [CareOf(PUBLIC, MN_NAT_PORT)], HOA2: [CareOf(PUBLIC, MN_NAT_PORT + 1)]}


def test_a_renewal_through_the_fa_is_half_bound_again_until_the_next_keepalive() -> None:
    """RFC 3519 §4.6: with R the HA "MUST wait for the first keepalive" on every registration, renewals
    included: the renewal takes the learnt port's path away (nothing is sent to a port the NAT may have
    forgotten) and the MN's keepalive, sent at once after the reply (§4.4), binds it again, here at the new
    port the NAT gave (§4.10)."""
    world = World()
    world.arrive(0.0)
    world.register(1.0)
    assert world.deliver_keepalive(world.keepalive(1.0), 1.01)
    drain(world.ha)
    world.mn.register(3.0)
    world.register(3.0)
    changes = drain(world.ha)
    assert [
        (type(e).__name__, e.care_of)
        for e in changes
        if isinstance(e, BindingAdded | BindingUpdated | BindingRemoved)
    ] == [
        ("BindingAdded", CareOf(PUBLIC, UNKNOWN_PORT)),
        ("BindingRemoved", CareOf(PUBLIC, MN_NAT_PORT)),
    ]
    (entry,) = world.ha.table.get(HOA).care_ofs.values()  # type: ignore[union-attr]
    assert entry.awaiting_keepalive and entry.care_of == CareOf(PUBLIC, UNKNOWN_PORT)
    world.mn_nat_port = MN_NAT_PORT + 5
    assert world.deliver_keepalive(world.keepalive(3.0), 3.01)
    bound = [e for e in drain(world.ha) if isinstance(e, UdpTunnelBound)]
    assert bound == [UdpTunnelBound(HOA, CareOf(PUBLIC, MN_NAT_PORT + 5), 0.01, MN_NAT_PORT)]
    assert list(world.ha.table.get(HOA).care_ofs) == [CareOf(PUBLIC, MN_NAT_PORT + 5)]  # type: ignore[union-attr]


def test_a_forged_keepalive_from_the_fas_own_mapping_does_not_complete_the_binding() -> None:
    """RFC 3519 §4.6, §6.1.2: the relayed request's source (the NAT's address and the FA's mapping port) is
    the FA's, never the MN's: a keepalive from exactly there (forged, ICMP Echo from the HoA to the HA) is
    refused, and the MN's real keepalive then completes the binding at its own port."""
    world = World()
    world.arrive(0.0)
    world.register(1.0)
    drain(world.ha)
    due = world.keepalive(1.0)
    assert not world.deliver_keepalive(due, 1.005, source=(PUBLIC, FA_NAT_PORT))
    assert world.ha.counters["keepalive_from_request_source"] == 1
    (entry,) = world.ha.table.get(HOA).care_ofs.values()  # type: ignore[union-attr]
    assert entry.awaiting_keepalive
    assert world.deliver_keepalive(due, 1.01)
    assert list(world.ha.table.get(HOA).care_ofs) == [CareOf(PUBLIC, MN_NAT_PORT)]  # type: ignore[union-attr]


def test_r_flag_when_nat_traversal_is_not_allowed_is_129() -> None:
    """§4.6.1: traversal not allowed for this MN → 129 (administratively prohibited)."""
    world = World(ha=home_agent(nat_traversal=False))
    world.arrive(0.0)
    assert world.register(1.0).code == 129


def test_deregistration_through_the_fa_removes_the_half_bound_binding() -> None:
    """RFC 5944 §3.6.1.2 through the FA and the NAT: the request names the co-located address; the HA
    removes the binding it holds at the NAT's address, with or without a learnt port."""
    world = World()
    world.arrive(0.0)
    world.register(1.0)
    drain(world.ha)
    world.mn.deregister(3.0)
    reply = world.register(3.0)
    assert reply.code == 0 and world.ha.table.get(HOA) is None
    removed = [e for e in drain(world.ha) if isinstance(e, BindingRemoved)]
    assert [e.care_of for e in removed] == [CareOf(PUBLIC, UNKNOWN_PORT)]


def test_with_agent_wait_the_first_request_goes_through_the_fa_that_answers_the_solicitation() -> None:
    """RFC 5944 §3.6: with R advertised a co-located MN MUST register through the FA. With ``agent_wait``
    the MN solicits at link-up and holds its co-located address back: the FA's answer makes the first
    request the R one; with no answer the address is registered directly when the wait is over."""
    config = MobileNodeConfig(
        HOA, HA, 256, KEY, care_of_mode=CareOfMode.AUTO, udp_tunnelling=UdpTunnelling.AUTO, agent_wait=1.0
    )
    mn = MobileNode(config, wall_clock_offset=WALL, rng=random.Random(2))
    mn.link_changed(True, PRIVATE, 0.0)
    assert mn.datagrams_to_send(0.0) == [] and mn.get_timer() is not None and mn.get_timer() <= 1.0  # type: ignore[operator]
    mn.receive_advertisement(advertisement(fa_config()), FA_ACCESS.ip, 0.1)
    (request,) = mn.datagrams_to_send(0.1)
    assert (request.source, request.destination) == (PRIVATE, FA_ACCESS.ip)
    alone = MobileNode(config, wall_clock_offset=WALL, rng=random.Random(2))
    alone.link_changed(True, PRIVATE, 0.0)
    alone.handle_timer(0.99)
    assert alone.datagrams_to_send(0.99) == []
    alone.handle_timer(1.0)
    (direct,) = alone.datagrams_to_send(1.0)
    assert (direct.source, direct.destination) == (PRIVATE, HA)
