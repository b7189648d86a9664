"""The home agent datapath's table is a compiled projection of the core's events (issue 9).

Hypothesis generates sequences of signed Registration Requests for three mobile nodes (S on and off,
several care-of addresses, IP-in-IP / GRE / minimal, IPv6 prefixes with code 0 and code 1 and a link-local,
overlapping prefixes the core must refuse, deregistrations of one care-of or all, renewals, handovers,
expiries). Each goes through the real :class:`~agents.mip.ha.home_agent.HomeAgent`; its events are applied as
the runtime applies them (``add_ipv4_tunnel`` … on the datapath) to the userspace backend's pure half, a
:class:`~agents.datapath.projection.HomeProjection` feeding a :class:`~agents.datapath.tables.HomeAgentTable`.
After every step the table must agree with the core's own view
(:class:`~agents.mip.common.bindings.BindingTable`): who owns which home address and prefix, which
care-of addresses get a copy of a packet (RFC 5944 §3.6.1.3), and which outer / inner sources reverse
tunnelling accepts (RFC 3024 §4.3.2, RFC 5454 §3.3.2).
UDP tunnelling (RFC 3519) is not generated here (its NAT detection needs the request's source to differ).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.datapath.projection import Change, HomeProjection
from agents.datapath.tables import PROTO_UDP, HomeAgentTable, Hop
from agents.mip.common import events as ev
from agents.mip.common.config import HomeAgentConfig, MobileNodeAccount
from agents.mip.ha.home_agent import HomeAgent
from agents.mip.wire import identification
from agents.mip.wire.auth import SecurityAssociation, append_authentication
from agents.mip.wire.codes import ExtensionType, RegistrationFlag
from agents.mip.wire.dsmip import PrefixRequest, TunnelingMode
from agents.mip.wire.extensions import Extension
from agents.mip.wire.registration import RegistrationRequest
from agents.mip.wire.tunnel import ipv4_embedded_link_local

F = RegistrationFlag
KEY = bytes(range(16))
SPI = 0x100
WALL = 1_700_000_000.0
HA = IPv4Address("192.0.2.1")
HOAS = (IPv4Address("192.0.2.10"), IPv4Address("192.0.2.11"), IPv4Address("192.0.2.12"))
COAS = tuple(IPv4Address(f"198.51.100.{n}") for n in (5, 6, 7, 8))
STRANGER = IPv4Address("203.0.113.99")
PREFIXES = tuple(
    IPv6Network(text)
    for text in (
        "2001:db8:1::/48",
        "2001:db8:1:1::/64",
        "2001:db8:2::/48",
        "2001:db8:2:5::/64",
        "2001:db8:3::/64",
    )
)
ALLOWED = IPv6Network("2001:db8::/32")
INNER6 = (
    *(prefix.network_address + 1 for prefix in PREFIXES),
    IPv6Address("2001:db8:1:2::1"),  # in the /48 only
    IPv6Address("2001:db8:9::1"),  # in no prefix
    *(ipv4_embedded_link_local(home) for home in HOAS),
    IPv6Address("fe80::1"),
)
OUTERS = (*COAS, *HOAS, STRANGER, HA)


@dataclass(frozen=True)
class Register:
    node: int
    care_of: int
    simultaneous: bool
    encapsulation: F
    prefixes: tuple[int, ...]
    link_local: bool
    code_1: bool
    lifetime: int


@dataclass(frozen=True)
class Deregister:
    node: int
    care_of: int | None  # None: every care-of (Care-of Address = home address, RFC 5944 §3.6.1.2)


@dataclass(frozen=True)
class Wait:
    seconds: float


registers = st.builds(
    Register,
    node=st.integers(0, len(HOAS) - 1),
    care_of=st.integers(0, len(COAS) - 1),
    simultaneous=st.booleans(),
    encapsulation=st.sampled_from([F(0), F(0), F.G, F.M]),
    prefixes=st.lists(st.integers(0, len(PREFIXES) - 1), max_size=3, unique=True).map(tuple),
    link_local=st.booleans(),
    code_1=st.booleans(),
    lifetime=st.sampled_from([20, 60, 300]),
)
deregisters = st.builds(
    Deregister, node=st.integers(0, len(HOAS) - 1), care_of=st.none() | st.integers(0, len(COAS) - 1)
)
waits = st.builds(Wait, seconds=st.sampled_from([5.0, 25.0, 70.0]))
steps = st.lists(st.one_of(registers, registers, deregisters, waits), min_size=1, max_size=25)


class TableBuilder:
    """The userspace home agent backend without its TUN, routes and threads: the projection and the
    packet table, changed exactly as :class:`~agents.datapath.userspace.UserspaceHomeAgent` changes them."""

    def __init__(self) -> None:
        self.projection = HomeProjection()
        self.table = HomeAgentTable()

    def _install(self, change: Change | None) -> None:
        if change is None:
            return
        if change.new is None:
            self.table.remove(change.home_address)
        else:
            self.table.put(change.new)

    def apply(self, event: ev.Event) -> None:
        """What the runtime's ``HomeAgentEvents`` calls on the datapath for each core event."""
        projection = self.projection
        if isinstance(event, ev.BindingAdded | ev.BindingUpdated):
            home, care_of, encapsulation = event.home_address, event.care_of, event.encapsulation
            self._install(projection.add_care_of(home, care_of.address, encapsulation, HA, care_of.port))
        elif isinstance(event, ev.BindingRemoved):
            home, care_of = event.home_address, event.care_of
            self._install(projection.remove_care_of(home, care_of.address, care_of.port))
        elif isinstance(event, ev.PrefixRegistered):
            prefix = event.prefix
            self._install(projection.add_prefix(prefix.prefix, event.home_address, prefix.target))
        elif isinstance(event, ev.PrefixDeregistered):
            self._install(projection.remove_prefix(event.prefix.prefix))


class Run:
    """One home agent core on a fake clock, its events applied to a :class:`TableBuilder`."""

    def __init__(self) -> None:
        accounts = tuple(MobileNodeAccount(home, SPI, KEY, allowed_prefixes=(ALLOWED,)) for home in HOAS)
        config = HomeAgentConfig(HA, IPv4Network("192.0.2.0/24"), accounts, max_bindings_per_node=8)
        self.core = HomeAgent(config, wall_clock_offset=WALL, rng=random.Random(7))
        self.builder = TableBuilder()
        self.now = 100.0
        self.sequence = 0

    def request(self, flags: F, lifetime: int, home: IPv4Address, care_of: IPv4Address, ext: tuple) -> None:
        self.sequence += 1
        ident = identification.unix_to_ntp(WALL + self.now) + self.sequence
        request = RegistrationRequest(flags, lifetime, home, HA, care_of, ident, ext)
        raw = append_authentication(
            request.encode(), ExtensionType.MOBILE_HOME_AUTH, SecurityAssociation(SPI, KEY)
        )
        self.core.receive_datagram(raw, (care_of, 49152), HA, self.now)
        self.core.datagrams_to_send(self.now)

    def step(self, step: Register | Deregister | Wait) -> None:
        if isinstance(step, Register):
            flags = F.D | F.T | step.encapsulation | (F.S if step.simultaneous else F(0))
            ext: list[Extension] = [PrefixRequest.for_network(PREFIXES[i]) for i in step.prefixes]
            home = HOAS[step.node]
            if step.link_local:
                ext.append(PrefixRequest.for_link_local(ipv4_embedded_link_local(home)))
            if step.code_1:
                ext.append(TunnelingMode())
            self.request(flags, step.lifetime, home, COAS[step.care_of], tuple(ext))
        elif isinstance(step, Deregister):
            home = HOAS[step.node]
            care_of = home if step.care_of is None else COAS[step.care_of]
            self.request(F.D | F.T, 0, home, care_of, ())
        else:
            self.now += step.seconds
            self.core.handle_timer(self.now)
        while (event := self.core.next_event()) is not None:
            self.builder.apply(event)


def expected_path(home: IPv4Address, copy: object) -> tuple[Hop, ...]:
    hop = Hop(HA.packed, copy.care_of.address.packed, copy.protocol)  # type: ignore[attr-defined]
    return (Hop(HA.packed, home.packed, 41), hop) if copy.via_home else (hop,)  # type: ignore[attr-defined]


def assert_agrees(run: Run) -> None:
    """The table built from the events answers every question as the core does."""
    core, table, projection = run.core.table, run.builder.table, run.builder.projection
    # ownership: the same home addresses, care-of addresses (with encapsulation) and prefixes (with target)
    bound = {home for home in HOAS if core.get(home) is not None}
    assert set(projection.bindings) == bound
    for home in bound:
        binding, held = core.get(home), projection.bindings[home]
        assert binding is not None
        assert dict(held.care_ofs) == {c.address: e.encapsulation for c, e in binding.care_ofs.items()}
        assert dict(held.prefixes) == {p: item.target for p, item in binding.prefixes.items()}
    # a copy to each care-of address (RFC 5944 §3.6.1.3), the right encapsulation
    for home in HOAS:
        want = Counter(expected_path(home, copy) for copy in core.copies(home))
        assert Counter(table.ipv4_paths(b"", home.packed)) == want, home
    for address in INNER6:
        route = core.ipv6_route(address)
        copies = core.ipv6_copies(address)
        want = Counter() if route is None else Counter(expected_path(route[0], copy) for copy in copies)
        got = Counter(table.ipv6_paths(b"", address.packed))
        assert all(hop.protocol != PROTO_UDP for path in got for hop in path)
        assert got == want, address
    # reverse tunnelling: the same outer / inner / protocol triples accepted (RFC 3024 §4.3.2, RFC 5454)
    for outer in OUTERS:
        for inner in HOAS:
            for protocol in (4, 47, 55):
                accepted = table.check_ipv4(outer.packed, protocol, inner.packed) is None
                assert accepted == (core.reverse_ipv4(outer, inner) == protocol), (outer, inner, protocol)
        for inner6 in INNER6:
            for protocol in (41, 47):
                nested = outer in HOAS  # the home-address tunnel only ever arrives nested (RFC 3024 §4.3.2)
                accepted = table.check_ipv6(outer.packed, protocol, inner6.packed, nested) is None
                assert accepted == (core.reverse_ipv6(outer, inner6) == protocol), (outer, inner6, protocol)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_a_table_built_from_any_core_events_agrees_with_the_core(sequence: list) -> None:
    run = Run()
    for step in sequence:
        run.step(step)
        assert_agrees(run)


def test_the_generated_events_cover_what_the_property_claims() -> None:
    """A fixed sequence: simultaneous bindings with three copies, code 0 and 1, a refused overlap, a
    handover, an expiry; the property above would be empty without these reaching the table."""
    run = Run()
    script = [
        Register(0, 0, True, F(0), (0,), True, False, 300),
        Register(0, 1, True, F(0), (0, 4), False, True, 300),
        Register(0, 2, True, F(0), (0, 4), False, True, 20),
        Register(1, 3, False, F.G, (1,), False, False, 300),  # inside MN 0's /48: refused (RFC 5454 §3.3)
    ]
    for step in script:
        run.step(step)
        assert_agrees(run)
    table = run.builder.table
    assert len(table.ipv4_paths(b"", HOAS[0].packed)) == 3
    assert {len(path) for path in table.ipv6_paths(b"", PREFIXES[4][1].packed)} == {1}  # code 1
    assert table.ipv6_paths(b"", PREFIXES[1][1].packed) == table.ipv6_paths(b"", PREFIXES[0][1].packed)
    run.step(Wait(25.0))  # the 20 s care-of expires
    assert_agrees(run)
    assert len(table.ipv4_paths(b"", HOAS[0].packed)) == 2
    run.step(Register(0, 3, False, F.G, (0,), False, False, 300))  # a handover: one GRE copy
    assert_agrees(run)
    assert [path[0].protocol for path in table.ipv4_paths(b"", HOAS[0].packed)] == [47]
    run.step(Deregister(0, None))
    assert_agrees(run)
    assert table.ipv4_paths(b"", HOAS[0].packed) == ()
