"""Pure decisions of the userspace datapath: which tunnel a packet takes, which packets are accepted,
and that the engine's inlined fast path gives the same bytes as :mod:`agents.mip.wire.tunnel`. No root."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.datapath.base import DropEvent, DropReason, Encapsulation, TunnelTarget, ipv6_protocol
from agents.datapath.engine import PacketEngine, TunnelOptions, fragment_ipv4
from agents.datapath.tables import PROTO_UDP, HomeAgentTable, HomeBinding, Hop, MobileNodeTable, PrefixMap
from agents.mip.common.bindings import UNKNOWN_PORT
from agents.mip.wire.ecn import DscpModel, EcnMode
from agents.mip.wire.ip import IPv4Header, IPv6Header, internet_checksum
from agents.mip.wire.tunnel import decapsulate, encapsulate, encapsulate_udp_tunnel_data

HA, HOA, COA = IPv4Address("198.51.100.1"), IPv4Address("192.0.2.100"), IPv4Address("203.0.113.7")
HOA2, FA_COA = IPv4Address("192.0.2.101"), IPv4Address("203.0.113.1")
P_HOA, P_COA = IPv6Network("2001:db8:100::/64"), IPv6Network("2001:db8:200::/64")
P_OTHER = IPv6Network("2001:db8:300::/64")


def packed(address: str | IPv4Address | IPv6Address) -> bytes:
    return (IPv6Address(address) if isinstance(address, str) else address).packed


def home_table(encapsulation: Encapsulation = Encapsulation.IP_IN_IP) -> HomeAgentTable:
    return HomeAgentTable(
        [
            HomeBinding(
                HOA, HA, {COA: encapsulation}, {P_HOA: TunnelTarget.HOME_ADDRESS, P_COA: TunnelTarget.CARE_OF}
            ),
            HomeBinding(HOA2, HA, {FA_COA: Encapsulation.IP_IN_IP}, {P_OTHER: TunnelTarget.HOME_ADDRESS}),
        ]
    )


# -- forwarding ------------------------------------------------------------------------------


def test_prefix_map_prefers_the_longest_match() -> None:
    table = PrefixMap([(IPv6Network("2001:db8::/32"), "short"), (IPv6Network("2001:db8:1::/48"), "long")])
    assert table.lookup(packed("2001:db8:1::5")) == "long"
    assert table.lookup(packed("2001:db8:2::5")) == "short"
    assert table.lookup(packed("2001:db9::1")) is None
    assert PrefixMap().lookup(packed("::1")) is None


@pytest.mark.parametrize(
    ("encapsulation", "protocol"),
    [(Encapsulation.IP_IN_IP, 4), (Encapsulation.GRE, 47), (Encapsulation.MINIMAL, 55)],
)
def test_home_address_maps_to_the_care_of_tunnel(encapsulation: Encapsulation, protocol: int) -> None:
    paths = home_table(encapsulation).ipv4_paths(packed(IPv4Address("192.0.2.10")), HOA.packed)
    assert paths == ((Hop(HA.packed, COA.packed, protocol),),)
    assert home_table().ipv4_paths(HOA.packed, IPv4Address("192.0.2.55").packed) == ()


def test_simultaneous_bindings_get_one_copy_each() -> None:
    table = HomeAgentTable([HomeBinding(HOA, HA, {COA: Encapsulation.IP_IN_IP, FA_COA: Encapsulation.GRE})])
    assert set(table.ipv4_paths(b"", HOA.packed)) == {
        (Hop(HA.packed, COA.packed, 4),),
        (Hop(HA.packed, FA_COA.packed, 47),),
    }


def test_ipv6_home_address_target_is_double_encapsulation() -> None:
    paths = home_table().ipv6_paths(b"", packed("2001:db8:100::1"))
    assert paths == ((Hop(HA.packed, HOA.packed, 41), Hop(HA.packed, COA.packed, 4)),)


@pytest.mark.parametrize(
    ("encapsulation", "expected"),
    [
        (Encapsulation.IP_IN_IP, ((Hop(HA.packed, COA.packed, 41),),)),
        (Encapsulation.GRE, ((Hop(HA.packed, COA.packed, 47),),)),
        (Encapsulation.MINIMAL, ((Hop(HA.packed, HOA.packed, 41), Hop(HA.packed, COA.packed, 55)),)),
    ],
)
def test_ipv6_care_of_target_uses_the_negotiated_mechanism(
    encapsulation: Encapsulation, expected: tuple[tuple[Hop, ...], ...]
) -> None:
    """RFC 5454 §3.3.2: IP-in-IP → protocol 41, GRE → 0x86DD, minimal cannot carry IPv6."""
    assert home_table(encapsulation).ipv6_paths(b"", packed("2001:db8:200::9")) == expected


def test_link_local_goes_over_the_home_address_tunnel() -> None:
    link_local = packed("fe80::c000:264")  # fe80::192.0.2.100
    assert home_table().ipv6_paths(b"", link_local) == home_table().ipv6_paths(b"", packed("2001:db8:100::1"))
    assert home_table().ipv6_paths(b"", packed("fe80::c000:299")) == ()
    assert home_table().ipv6_paths(b"", packed("2001:db8:999::1")) == ()


# -- acceptance (RFC 3024 §4.3.2, RFC 5454 §3.3.2 and §4) ------------------------------------------

IPV4_MATRIX = [
    ("registered CoA and HoA", COA, 4, HOA, None),
    ("unregistered outer source", IPv4Address("203.0.113.66"), 4, HOA, DropReason.UNKNOWN_OUTER_SOURCE),
    ("inner source not the HoA", COA, 4, IPv4Address("192.0.2.77"), DropReason.INNER_SOURCE),
    ("another MN's HoA via my CoA", COA, 4, HOA2, DropReason.INNER_SOURCE),
    ("GRE instead of IP-in-IP", COA, 47, HOA, DropReason.ENCAPSULATION),
    ("the other MN on its FA CoA", FA_COA, 4, HOA2, None),
]


@pytest.mark.parametrize(
    ("label", "outer", "protocol", "inner", "expected"), IPV4_MATRIX, ids=[row[0] for row in IPV4_MATRIX]
)
def test_reverse_tunnel_ipv4_acceptance(
    label: str, outer: IPv4Address, protocol: int, inner: IPv4Address, expected: DropReason | None
) -> None:
    assert home_table().check_ipv4(outer.packed, protocol, inner.packed) == expected


IPV6_MATRIX = [
    ("code-0 prefix from the HoA, not nested", HOA, 41, "2001:db8:100::1", DropReason.UNNESTED_HOME_ADDRESS),
    ("code-0 prefix from the CoA", COA, 41, "2001:db8:100::1", DropReason.TUNNEL_TARGET),
    ("code-1 prefix from the CoA", COA, 41, "2001:db8:200::1", None),
    ("code-1 prefix from the HoA, not nested", HOA, 41, "2001:db8:200::1", DropReason.UNNESTED_HOME_ADDRESS),
    ("source outside every prefix", COA, 41, "2001:db8:999::1", DropReason.INNER_SOURCE),
    ("another MN's prefix", COA, 41, "2001:db8:300::1", DropReason.INNER_SOURCE),
    (
        "unregistered outer source",
        IPv4Address("203.0.113.66"),
        41,
        "2001:db8:200::1",
        DropReason.UNKNOWN_OUTER_SOURCE,
    ),
    ("link-local from the HoA, not nested", HOA, 41, "fe80::c000:264", DropReason.UNNESTED_HOME_ADDRESS),
    ("link-local from the CoA", COA, 41, "fe80::c000:264", DropReason.INNER_SOURCE),
    ("multicast source from the HoA, not nested", HOA, 41, "ff02::1", DropReason.UNNESTED_HOME_ADDRESS),
    ("GRE for a code-1 prefix negotiated as IP-in-IP", COA, 47, "2001:db8:200::1", DropReason.ENCAPSULATION),
]


@pytest.mark.parametrize(
    ("label", "outer", "protocol", "inner", "expected"), IPV6_MATRIX, ids=[row[0] for row in IPV6_MATRIX]
)
def test_reverse_tunnel_ipv6_acceptance(
    label: str, outer: IPv4Address, protocol: int, inner: str, expected: DropReason | None
) -> None:
    assert home_table().check_ipv6(outer.packed, protocol, packed(inner)) == expected


NESTED_IPV6_MATRIX = [
    ("code-0 prefix from the HoA", HOA, "2001:db8:100::1", None),
    ("link-local from the HoA", HOA, "fe80::c000:264", None),
    ("code-1 prefix from the HoA", HOA, "2001:db8:200::1", DropReason.TUNNEL_TARGET),
    ("multicast source from the HoA", HOA, "ff02::1", DropReason.INNER_SOURCE),
    ("another MN's prefix from my HoA", HOA, "2001:db8:300::1", DropReason.INNER_SOURCE),
]


@pytest.mark.parametrize(
    ("label", "home", "inner", "expected"), NESTED_IPV6_MATRIX, ids=[row[0] for row in NESTED_IPV6_MATRIX]
)
def test_home_address_tunnel_accepted_only_nested(
    label: str, home: IPv4Address, inner: str, expected: DropReason | None
) -> None:
    """RFC 5454 §3.3.2, §4 and RFC 3024 §4.3.2: for code 0 the HoA-sourced protocol-41 layer is legitimate
    only inside the care-of tunnel (whose outer source the IPv4 check has verified)."""
    assert home_table().check_ipv6(home.packed, 41, packed(inner), nested=True) == expected


def test_gre_carries_ipv6_for_a_gre_binding() -> None:
    assert home_table(Encapsulation.GRE).check_ipv6(COA.packed, 47, packed("2001:db8:200::1")) is None


def test_nested_ipv6_in_ipv4_is_stripped_only_towards_the_home_agent() -> None:
    table = home_table()
    assert table.decapsulate_again(HOA.packed, HA.packed)
    assert not table.decapsulate_again(HOA.packed, IPv4Address("192.0.2.10").packed)
    assert not table.decapsulate_again(IPv4Address("192.0.2.77").packed, HA.packed)


def test_empty_table_drops_everything() -> None:
    table = HomeAgentTable()
    assert table.ipv4_paths(b"", HOA.packed) == ()
    assert table.check_ipv4(COA.packed, 4, HOA.packed) is DropReason.UNKNOWN_OUTER_SOURCE
    assert table.check_ipv6(COA.packed, 41, packed("2001:db8:100::1")) is DropReason.UNKNOWN_OUTER_SOURCE


# -- mobile node ----------------------------------------------------------------------------------


def mobile_table(
    care_of: IPv4Address | None = COA,
    reverse_tunnel: bool = True,
    encapsulation: Encapsulation = Encapsulation.IP_IN_IP,
) -> MobileNodeTable:
    return MobileNodeTable(
        HOA,
        HA,
        care_of,
        encapsulation,
        reverse_tunnel=reverse_tunnel,
        sources={P_HOA: TunnelTarget.HOME_ADDRESS, P_COA: TunnelTarget.CARE_OF},
    )


def test_mobile_node_reverse_tunnels_only_its_home_address() -> None:
    assert mobile_table().ipv4_paths(HOA.packed, b"") == ((Hop(COA.packed, HA.packed, 4),),)
    assert mobile_table().ipv4_paths(COA.packed, b"") == ()
    assert mobile_table(reverse_tunnel=False).ipv4_paths(HOA.packed, b"") == ()
    assert mobile_table(care_of=None).ipv4_paths(HOA.packed, b"") == ()  # the FA tunnels IPv4


def test_mobile_node_ipv6_paths_follow_the_source_prefix() -> None:
    double = ((Hop(HOA.packed, HA.packed, 41), Hop(COA.packed, HA.packed, 4)),)
    table = mobile_table()
    assert table.ipv6_paths(packed("2001:db8:100::1"), packed("2001:db8:1::10")) == double
    assert table.ipv6_paths(packed("2001:db8:200::1"), packed("2001:db8:1::10")) == (
        (Hop(COA.packed, HA.packed, 41),),
    )
    assert table.ipv6_paths(packed("fe80::c000:264"), packed("fe80::c633:6401")) == double
    assert table.ipv6_paths(packed("2001:db8:200::1"), packed("ff02::16")) == double  # MLD: HoA tunnel
    assert table.ipv6_paths(packed("2001:db8:999::1"), packed("2001:db8:1::10")) == ()


def test_mobile_node_behind_a_foreign_agent_sends_ipv6_in_ipv4_from_the_home_address() -> None:
    table = mobile_table(care_of=None)
    assert table.ipv6_paths(packed("2001:db8:200::1"), packed("2001:db8:1::10")) == (
        (Hop(HOA.packed, HA.packed, 41),),
    )


def test_mobile_node_accepts_only_its_home_agent() -> None:
    table = mobile_table()
    assert table.check_ipv4(HA.packed, 4, b"\0" * 4) is None
    assert table.check_ipv4(IPv4Address("198.51.100.66").packed, 4, b"") is DropReason.UNKNOWN_OUTER_SOURCE
    assert table.check_ipv4(HA.packed, 47, b"") is DropReason.ENCAPSULATION
    assert table.check_ipv6(HA.packed, 41, b"") is None
    assert table.check_ipv6(COA.packed, 41, b"") is DropReason.UNKNOWN_OUTER_SOURCE
    assert table.decapsulate_again(HA.packed, HOA.packed)
    assert MobileNodeTable().check_ipv4(HA.packed, 4, b"") is DropReason.UNKNOWN_OUTER_SOURCE


def test_minimal_encapsulation_cannot_carry_ipv6() -> None:
    with pytest.raises(ValueError, match="5454"):
        ipv6_protocol(Encapsulation.MINIMAL)
    table = mobile_table(encapsulation=Encapsulation.MINIMAL)
    assert table.ipv6_paths(packed("2001:db8:200::1"), b"\x20" * 16)[0][0].protocol == 41


def test_static_ipv6_mtu_is_checked() -> None:
    """RFC 4213 §3.2: 1280–1480 inclusive."""
    assert TunnelOptions(ipv6_mtu=1480).ipv6_mtu == 1480
    with pytest.raises(ValueError):
        TunnelOptions(ipv6_mtu=1500)


# -- fast path = tunnel.py ------------------------------------------------------------------------


class FakeEngine(PacketEngine):
    """The engine with its sockets and TUN replaced by recorders."""

    def _open_io(self, interface_name: str, underlay_interface: str | None) -> None:
        self.sent: list[tuple[bytes, str]] = []
        self.delivered: list[bytes] = []
        self.tun = SimpleNamespace(name=interface_name, fd=-1)  # type: ignore[assignment]
        engine = self

        class Sender:
            def sendmsg(
                self, buffers: list[bytes], ancillary: object, flags: int, address: tuple[str, int]
            ) -> None:
                engine.sent.append((kernel_fills(b"".join(bytes(b) for b in buffers)), address[0]))

            def sendto(self, packet: bytes, address: tuple[str, int]) -> None:
                engine.sent.append((bytes(packet), address[0]))

        self._sender = Sender()  # type: ignore[assignment]
        self._receivers = {}

    def _deliver(self, inner: bytes | memoryview, stats: object) -> None:
        self.delivered.append(bytes(inner))

    def outbound(self, packet: bytes) -> None:
        buffer = bytearray(packet) + bytearray(100)
        self._outbound(buffer, memoryview(buffer), len(packet), bytearray(20), {}, self._new_stats(True))

    def inbound(self, packet: bytes) -> bool:
        buffer = bytearray(packet) + bytearray(100)
        stats = self._new_stats(False)
        fast = self._inbound_fast(buffer, memoryview(buffer), len(packet), stats)
        if not fast:
            self._inbound_slow(packet, stats)
        return fast


def kernel_fills(packet: bytes) -> bytes:
    """What Linux does to an IP_HDRINCL header: total length and checksum always (raw(7))."""
    header = bytearray(packet[:20])
    header[2:4] = len(packet).to_bytes(2, "big")
    header[10:12] = internet_checksum(header[:10] + b"\0\0" + header[12:]).to_bytes(2, "big")
    return bytes(header) + packet[20:]


def ipv4_inner(tos: int, flags: int, ttl: int) -> bytes:
    payload = bytes(range(37))
    header = IPv4Header(IPv4Address("192.0.2.10"), HOA, 17, 20 + len(payload), tos, 7, flags, 0, ttl)
    return header.encode() + payload


def ipv6_inner(
    traffic_class: int,
    source: str = "2001:db8:1::10",
    destination: str = "2001:db8:200::1",
    hop_limit: int = 64,
) -> bytes:
    payload = bytes(range(29))
    return (
        IPv6Header(
            IPv6Address(source), IPv6Address(destination), 17, len(payload), traffic_class, 0x12345, hop_limit
        ).encode()
        + payload
    )


modes = st.sampled_from(list(EcnMode))
models = st.sampled_from(list(DscpModel))


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 255), st.sampled_from([0, 2]), st.integers(0, 255), st.booleans(), modes, models)
def test_outbound_fast_path_equals_tunnel_py(
    tos: int, flags: int, ttl: int, ipv6: bool, ecn_mode: EcnMode, dscp_model: DscpModel
) -> None:
    options = TunnelOptions(ecn_mode=ecn_mode, dscp_model=dscp_model)
    engine = FakeEngine("fake0", home_table(), options)
    inner = ipv6_inner(tos, hop_limit=ttl) if ipv6 else ipv4_inner(tos, flags, ttl)
    engine.outbound(inner)
    if ttl == 0:
        assert engine.sent == [] and engine.counters().dropped(DropReason.HOP_LIMIT) == 1
        return
    protocol = 41 if ipv6 else 4
    expected = encapsulate(inner, HA, COA, protocol, ecn_mode=ecn_mode, dscp_model=dscp_model)
    assert engine.sent == [(expected, str(COA))]


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), st.booleans(), models)
def test_inbound_fast_path_equals_tunnel_py(
    inner_tos: int, outer_tos: int, ipv6: bool, dscp_model: DscpModel
) -> None:
    engine = FakeEngine("fake0", mobile_table(), TunnelOptions(dscp_model=dscp_model))
    inner = ipv6_inner(inner_tos) if ipv6 else ipv4_inner(inner_tos, 0, 64)
    outer = bytearray(encapsulate(inner, HA, COA, 41 if ipv6 else 4))
    outer[1] = outer_tos
    outer[10:12] = b"\0\0"
    outer[10:12] = internet_checksum(outer[:20]).to_bytes(2, "big")
    fast = engine.inbound(bytes(outer))
    result = decapsulate(bytes(outer), dscp_model=dscp_model)
    assert engine.delivered == ([] if result is None else [result.inner])
    assert fast == (inner_tos == outer_tos)


@pytest.mark.parametrize("fast_path", [True, False])
def test_nested_home_address_tunnel_is_stripped_twice(fast_path: bool) -> None:
    engine = FakeEngine("fake0", home_table(), TunnelOptions(fast_path=fast_path))
    inner = ipv6_inner(0, source="2001:db8:100::1", destination="2001:db8:1::10")
    outer = encapsulate(encapsulate(inner, HOA, HA, 41), COA, HA, 4)
    engine.inbound(outer)
    assert engine.delivered == [inner]
    spoofed = encapsulate(encapsulate(ipv6_inner(0, source="2001:db8:999::1"), HOA, HA, 41), COA, HA, 4)
    engine.inbound(spoofed)
    assert engine.delivered == [inner] and engine.counters().dropped(DropReason.INNER_SOURCE) == 1


@pytest.mark.parametrize("fast_path", [True, False])
def test_unnested_home_address_tunnel_is_dropped(fast_path: bool) -> None:
    """RFC 5454 §3.3.2, §4; RFC 3024 §4.3.2: IPv6-in-IPv4 sent straight from a visited link with the outer
    source forged to a home address (not inside the care-of tunnel) is dropped and counted."""
    engine = FakeEngine("fake0", home_table(), TunnelOptions(fast_path=fast_path))
    spoofed = encapsulate(ipv6_inner(0, source="2001:db8:100::1", destination="2001:db8:1::10"), HOA, HA, 41)
    engine.inbound(spoofed)
    assert engine.delivered == []
    assert engine.counters().drops == {"unnested_home_address": 1}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 255), st.booleans(), modes)
def test_outbound_double_encapsulation_equals_tunnel_py(tos: int, fast_path: bool, ecn_mode: EcnMode) -> None:
    engine = FakeEngine("fake0", home_table(), TunnelOptions(fast_path=fast_path, ecn_mode=ecn_mode))
    inner = ipv6_inner(tos, destination="2001:db8:100::7")
    engine.outbound(inner)
    middle = encapsulate(inner, HA, HOA, 41, ecn_mode=ecn_mode)
    assert engine.sent == [(encapsulate(middle, HA, COA, 4, ecn_mode=ecn_mode), str(COA))]


def test_outbound_drops() -> None:
    engine = FakeEngine("fake0", home_table(), TunnelOptions())
    engine.outbound(ipv6_inner(0, destination="2001:db8:100::7"))
    engine.outbound(ipv6_inner(0, destination="2001:db8:999::7"))
    engine.outbound(b"\x00" * 30)
    assert engine.counters().drops == {"no_tunnel": 1, "malformed": 1}
    assert engine.counters().encapsulated_packets == 1


def test_inbound_ecn_drop_and_malformed() -> None:
    engine = FakeEngine("fake0", mobile_table(), TunnelOptions())
    outer = bytearray(encapsulate(ipv4_inner(0, 0, 64), HA, COA, 4))  # inner Not-ECT
    outer[1] = 3  # outer CE: RFC 6040 §4.2 drop
    outer[10:12] = b"\0\0"
    outer[10:12] = internet_checksum(outer[:20]).to_bytes(2, "big")
    engine.inbound(bytes(outer))
    engine.inbound(bytes(outer[:20]) + b"\x45" + bytes(5))
    assert engine.delivered == []
    assert engine.counters().drops == {"ecn": 1, "malformed": 1}


def test_fragmentation_of_oversized_outer_packets() -> None:
    packet = encapsulate(ipv6_inner(0) + b"", HA, COA, 41)
    big = encapsulate(
        IPv6Header(IPv6Address("::1"), IPv6Address("::2"), 59, 1460).encode() + bytes(1460), HA, COA, 41
    )
    assert fragment_ipv4(packet, 1500) == [packet]
    pieces = fragment_ipv4(big, 1500)
    assert len(pieces) == 2 and all(len(piece) <= 1500 for piece in pieces)
    assert all(internet_checksum(piece[:20]) == 0 for piece in pieces)
    assert pieces[0][4:6] == pieces[1][4:6] != b"\0\0"
    offsets = [int.from_bytes(piece[6:8], "big") for piece in pieces]
    assert offsets[0] == 0x2000 and offsets[1] == (len(pieces[0]) - 20) // 8
    assert b"".join(piece[20:] for piece in pieces) == big[20:]
    with pytest.raises(ValueError):
        fragment_ipv4(encapsulate(ipv4_inner(0, 2, 64) + b"", HA, COA, 4)[:20] + bytes(2000), 1500)


# -- incremental changes (a home agent with thousands of bindings changes one at a time) -----------

HOMES = [IPv4Address("192.0.2.100") + index for index in range(4)]
CARE_OFS = [IPv4Address("203.0.113.1") + index for index in range(3)]
ENCAPSULATIONS = list(Encapsulation)


def prefix_pool(home_index: int) -> list[IPv6Network]:
    """Each home address draws from its own prefixes (the datapath refuses overlaps, RFC 5454 §3.3),
    nested ones included, plus its link-local /128."""
    return [
        IPv6Network(f"2001:db8:{home_index}::/48"),
        IPv6Network(f"2001:db8:{home_index}:1::/64"),
        IPv6Network(f"2001:db8:{home_index}:2::/64"),
        IPv6Network(f"fe80::{home_index + 1}/128"),
    ]


@st.composite
def bindings(draw: st.DrawFn) -> HomeBinding:
    index = draw(st.integers(0, len(HOMES) - 1))
    care_ofs = draw(st.dictionaries(st.sampled_from(CARE_OFS), st.sampled_from(ENCAPSULATIONS), max_size=3))
    prefixes = draw(st.dictionaries(st.sampled_from(prefix_pool(index)), st.sampled_from(list(TunnelTarget))))
    return HomeBinding(HOMES[index], HA, care_ofs, prefixes)


changes = st.lists(st.one_of(bindings(), st.sampled_from(HOMES)), max_size=25)


@settings(max_examples=300, deadline=None)
@given(changes)
def test_incremental_changes_equal_a_rebuilt_table(steps: list[HomeBinding | IPv4Address]) -> None:
    """After every put/remove the live table holds exactly what a table built from scratch from the
    current bindings holds: same paths, acceptance rules, care-of counts and prefix search order."""
    table, current = HomeAgentTable(), {}
    for step in steps:
        if isinstance(step, HomeBinding):
            table.put(step)
            current[step.home_address] = step
        else:
            table.remove(step)
            current.pop(step, None)
        assert table.contents() == HomeAgentTable(current.values()).contents()
        assert len(table) == len(current)


def test_a_renewal_changes_nothing_and_a_move_only_its_own_entries() -> None:
    table = home_table()
    before = table.contents()
    prefixes = {P_HOA: TunnelTarget.HOME_ADDRESS, P_COA: TunnelTarget.CARE_OF}
    table.put(HomeBinding(HOA, HA, {COA: Encapsulation.IP_IN_IP}, prefixes))
    assert table.contents() == before
    table.put(HomeBinding(HOA, HA, {FA_COA: Encapsulation.GRE}, {P_HOA: TunnelTarget.HOME_ADDRESS}))
    assert table.check_ipv4(COA.packed, 4, HOA.packed) is DropReason.UNKNOWN_OUTER_SOURCE
    assert table.check_ipv4(FA_COA.packed, 47, HOA.packed) is None
    assert table.check_ipv4(FA_COA.packed, 4, HOA2.packed) is None, "the other binding's shared care-of stays"
    assert table.ipv6_paths(b"", packed("2001:db8:200::1")) == ()
    table.remove(HOA)
    other = HomeBinding(HOA2, HA, {FA_COA: Encapsulation.IP_IN_IP}, {P_OTHER: TunnelTarget.HOME_ADDRESS})
    assert table.contents() == HomeAgentTable([other]).contents()
    assert table.ipv4_paths(b"", HOA.packed) == () and table.check_ipv4(FA_COA.packed, 4, HOA2.packed) is None


def test_ipv4_routes_stays_the_dict_the_engine_indexes() -> None:
    table = HomeAgentTable()
    routes = table.ipv4_routes
    table.put(HomeBinding(HOA, HA, {COA: Encapsulation.IP_IN_IP}))
    assert table.ipv4_routes is routes and routes[HOA.packed] == ((Hop(HA.packed, COA.packed, 4),),)
    table.remove(HOA)
    assert table.ipv4_routes is routes and HOA.packed not in routes


def test_prefix_map_set_and_discard() -> None:
    short, long = IPv6Network("2001:db8::/32"), IPv6Network("2001:db8:1::/48")
    prefixes: PrefixMap[str] = PrefixMap()
    prefixes.set(short, "short")
    prefixes.set(long, "long")
    assert prefixes.lookup(packed("2001:db8:1::5")) == "long"
    prefixes.discard(long, "someone else's")  # not the value stored: kept
    assert prefixes.lookup(packed("2001:db8:1::5")) == "long"
    prefixes.discard(long, "long")
    assert prefixes.lookup(packed("2001:db8:1::5")) == "short"
    assert prefixes.contents() == PrefixMap([(short, "short")]).contents()
    prefixes.discard(short, "short")
    assert prefixes.lookup(packed("2001:db8:1::5")) is None and prefixes.contents()[0] == ()


def test_a_half_bound_udp_binding_has_no_path_until_its_port_is_known() -> None:
    """RFC 3519 §4.6: with the R flag the HA MUST wait for the first keepalive before it sends to the mobile
    node: port 0 (:data:`UNKNOWN_PORT`) gives no path for IPv4 or IPv6 and accepts no Tunnel Data; the port
    the keepalive showed gives both (MIP Tunnel Data to that address and port, Next Header 4 or 41)."""
    pending = HomeBinding(
        HOA, HA, {COA: Encapsulation.IP_IN_IP}, {P_COA: TunnelTarget.CARE_OF}, {COA: UNKNOWN_PORT}
    )
    table = HomeAgentTable([pending])
    inner6 = packed("2001:db8:200::1")
    assert table.ipv4_routes[HOA.packed] == ()
    assert table.ipv6_paths(packed("2001:db8:ff::10"), inner6) == ()
    outer = COA.packed + (40000).to_bytes(2, "big")
    assert table.check_udp(outer, 4, HOA.packed) is DropReason.UNKNOWN_OUTER_SOURCE
    table.put(HomeBinding(HOA, HA, pending.care_ofs, pending.prefixes, {COA: 40000}))
    hop = Hop(HA.packed, COA.packed, PROTO_UDP, 40000)
    assert table.ipv4_routes[HOA.packed] == ((hop,),)
    assert table.ipv6_paths(packed("2001:db8:ff::10"), inner6) == ((hop,),)
    assert table.check_udp(outer, 4, HOA.packed) is None
    assert table.check_udp(COA.packed + (40001).to_bytes(2, "big"), 4, HOA.packed) is not None


def test_a_udp_tunnel_drop_reports_the_outer_addresses_and_ports() -> None:
    """RFC 3519 §4.8: Tunnel Data from the NAT's address but the wrong port is dropped; the security log's
    record names the offending source port (and where it was sent: the agent's address and port 434), so
    the log tells a wrong port from a wrong address. Keys of the other drop records stay as they were."""
    drops: list[DropEvent] = []
    table = HomeAgentTable([HomeBinding(HOA, HA, {COA: Encapsulation.IP_IN_IP}, {}, {COA: 40000})])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    with sock:
        engine = FakeEngine("fake0", table, TunnelOptions(), on_drop=drops.append, udp_socket=sock)
        inner = IPv4Header(HOA, IPv4Address("203.0.113.10"), 1, 28).encode() + bytes(8)
        payload = encapsulate_udp_tunnel_data(inner, 4)
        engine.receive_udp(payload, COA.packed, 40007, HA.packed)
        engine.receive_udp(payload, COA.packed, 40000, HA.packed)  # the binding's port: delivered
        engine.receive_udp(payload, COA.packed, 40008)  # no destination given: the socket's own
        local_port = sock.getsockname()[1]
    assert len(engine.delivered) == 1
    first, second = (drop.to_dict() for drop in drops)
    assert first == {
        "reason": DropReason.UNKNOWN_OUTER_SOURCE.value,
        "protocol": 17,
        "outer_source": str(COA),
        "outer_destination": str(HA),
        "inner_source": str(HOA),
        "inner_destination": "203.0.113.10",
        "outer_source_port": 40007,
        "outer_destination_port": local_port,
    }
    assert (second["outer_destination"], second["outer_source_port"]) == ("127.0.0.1", 40008)
    plain = DropEvent(DropReason.INNER_SOURCE, 4, COA, HA, "10.0.0.1", "10.0.0.2").to_dict()
    assert list(plain) == [
        "reason",
        "protocol",
        "outer_source",
        "outer_destination",
        "inner_source",
        "inner_destination",
    ]
