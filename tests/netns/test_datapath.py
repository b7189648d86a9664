"""The userspace datapath on the real kernel: three namespaces, two datapaths, real packets.

```
 cn ─ cn0 ── home 192.0.2.0/24, 2001:db8:1::/64 ── ha0 ─ ha ─ ha1 ── 198.51.100.0/24 ── mn0 ─ mn
      .10 / ::10                                     .1 / ::1     .1                      .2 (co-located CoA)
```
The MN's home address is 192.0.2.100; prefix 2001:db8:100::/64 is registered with target home-address
(RFC 5454 code 0, double encapsulation) and 2001:db8:200::/64 with target care-of (code 1). The HA
proxies ARP for the home address the way the runtime will (netlink facade), and the CN routes both
prefixes via the HA.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE

from agents.datapath.base import DropEvent, DropReason, Encapsulation, TunnelTarget
from agents.datapath.tables import HomeAgentTable
from agents.datapath.userspace import UserspaceHomeAgent, UserspaceMobileNode
from agents.net.arp import GratuitousArpSender, send_gratuitous_arp
from agents.net.netlink import Netlink
from tests.netns.conftest import (
    Namespace,
    NamespaceFactory,
    capture,
    ping,
    veth,
    wait_settled,
    wait_until,
)

pytestmark = pytest.mark.root

HA_HOME, HA_FOREIGN, CARE_OF = "192.0.2.1", "198.51.100.1", "198.51.100.2"
CN, HOME_ADDRESS = "192.0.2.10", "192.0.2.100"
PREFIX_HOA, PREFIX_COA = IPv6Network("2001:db8:100::/64"), IPv6Network("2001:db8:200::/64")
MN6_HOA, MN6_COA, CN6 = "2001:db8:100::1", "2001:db8:200::1", "2001:db8:1::10"


@dataclass
class Testbed:
    __test__ = False

    cn: Namespace
    ha: Namespace
    mn: Namespace
    home_agent: UserspaceHomeAgent
    mobile_node: UserspaceMobileNode
    ha_netlink: Netlink
    drops: list[DropEvent] = field(default_factory=list)


def build_links(namespaces: NamespaceFactory) -> tuple[Namespace, Namespace, Namespace]:
    cn, ha, mn = namespaces(), namespaces(), namespaces()
    veth(cn, "cn0", ha, "ha0")
    veth(ha, "ha1", mn, "mn0")
    cn.run(
        f"ip addr add {CN}/24 dev cn0; ip route add default via {HA_HOME}; "
        f"ip -6 addr add {CN6}/64 dev cn0 nodad; ip -6 route add default via 2001:db8:1::1"
    )
    ha.run(
        f"ip addr add {HA_HOME}/24 dev ha0; ip -6 addr add 2001:db8:1::1/64 dev ha0 nodad; "
        f"ip addr add {HA_FOREIGN}/24 dev ha1"
    )
    mn.run(f"ip addr add {CARE_OF}/24 dev mn0")
    return cn, ha, mn


def links_settled(namespace: Namespace) -> bool:
    """The new veths have their link-local addresses (and routes): a snapshot taken earlier would see
    them appear later and blame the datapath."""
    addresses = namespace.run("ip -6 addr")
    return "fe80" in addresses and "tentative" not in addresses


def start_datapaths(
    ha: Namespace, mn: Namespace, drops: list[DropEvent], suffix: str = ""
) -> tuple[UserspaceHomeAgent, UserspaceMobileNode]:
    with ha.entered():
        home_agent = UserspaceHomeAgent(
            IPv4Address(HA_FOREIGN), interface_name=f"mip-ha{suffix}", on_drop=drops.append
        )
    with mn.entered():
        mobile_node = UserspaceMobileNode(interface_name=f"mip{suffix or 0}")
    return home_agent, mobile_node


def register(home_agent: UserspaceHomeAgent, mobile_node: UserspaceMobileNode) -> None:
    """What the runtime does on BindingAdded / TunnelUp / PrefixAccepted / Ipv6AddressAdded."""
    home, agent, care_of = IPv4Address(HOME_ADDRESS), IPv4Address(HA_FOREIGN), IPv4Address(CARE_OF)
    home_agent.add_ipv4_tunnel(home, care_of, Encapsulation.IP_IN_IP, home_agent=agent)
    home_agent.add_ipv6_prefix(PREFIX_HOA, home, TunnelTarget.HOME_ADDRESS)
    home_agent.add_ipv6_prefix(PREFIX_COA, home, TunnelTarget.CARE_OF)
    mobile_node.add_ipv4_tunnel(home, care_of, Encapsulation.IP_IN_IP, home_agent=agent)
    mobile_node.add_ipv6_prefix(PREFIX_HOA, home, TunnelTarget.HOME_ADDRESS)
    mobile_node.add_ipv6_prefix(PREFIX_COA, home, TunnelTarget.CARE_OF)
    mobile_node.add_ipv6_address(IPv6Interface(f"{MN6_HOA}/64"), TunnelTarget.HOME_ADDRESS)
    mobile_node.add_ipv6_address(IPv6Interface(f"{MN6_COA}/64"), TunnelTarget.CARE_OF)
    mobile_node.add_ipv6_route(IPv6Network("::/0"))


@pytest.fixture(scope="module")
def testbed(namespaces: NamespaceFactory) -> Iterator[Testbed]:
    cn, ha, mn = build_links(namespaces)
    drops: list[DropEvent] = []
    home_agent, mobile_node = start_datapaths(ha, mn, drops)
    with ha.entered():
        ha_netlink = Netlink()
    try:
        register(home_agent, mobile_node)
        ha_netlink.add_proxy_neighbour("ha0", IPv4Address(HOME_ADDRESS))
        yield Testbed(cn, ha, mn, home_agent, mobile_node, ha_netlink, drops)
    finally:
        ha_netlink.undo()
        ha_netlink.close()
        mobile_node.close()
        home_agent.close()


def outer_protocols(packets: list[bytes]) -> set[tuple[int, int | None]]:
    """(outer protocol, inner protocol if the inner is IPv4) of the IPv4 packets captured."""
    seen: set[tuple[int, int | None]] = set()
    for packet in packets:
        if packet[0] >> 4 == 4 and packet[9] in (4, 41, 47):
            inner = packet[(packet[0] & 0x0F) * 4 :]
            seen.add((packet[9], inner[9] if packet[9] == 4 and inner[0] >> 4 == 4 else None))
    return seen


def test_ipv4_both_ways_through_the_tunnel(testbed: Testbed) -> None:
    with capture(testbed.ha, "ha1") as packets:
        assert ping(testbed.cn, HOME_ADDRESS), "CN → home address (proxy ARP, HA → CoA tunnel)"
        assert ping(testbed.mn, CN, source=HOME_ADDRESS), "MN → CN reverse tunnelled from the HoA"
    assert (4, 1) in outer_protocols(packets), "ICMP carried as IP-in-IP on the foreign link"
    counters = testbed.home_agent.counters()
    assert counters.encapsulated_packets >= 2 and counters.decapsulated_packets >= 2


def test_ipv6_home_address_target_is_double_encapsulated(testbed: Testbed) -> None:
    with capture(testbed.ha, "ha1") as packets:
        assert ping(testbed.cn, MN6_HOA)
        assert ping(testbed.mn, CN6, source=MN6_HOA)
    assert (4, 41) in outer_protocols(packets), "IPv6-in-IPv4 to the HoA inside IP-in-IP to the CoA"
    assert (41, None) not in outer_protocols(packets)


def test_ipv6_care_of_target_is_single_ipv6_in_ipv4(testbed: Testbed) -> None:
    with capture(testbed.ha, "ha1") as packets:
        assert ping(testbed.cn, MN6_COA)
        assert ping(testbed.mn, CN6, source=MN6_COA)
    assert outer_protocols(packets) == {(41, None)}


def test_link_local_over_the_home_address_tunnel(testbed: Testbed) -> None:
    ha_link_local = "fe80::c633:6401"  # fe80::198.51.100.1, RFC 4213 §3.7
    assert ping(testbed.mn, ha_link_local, interface=testbed.mobile_node.interface_name)


def test_gratuitous_arp_updates_the_neighbours_cache(testbed: Testbed) -> None:
    testbed.cn.run(f"ip neigh replace {HOME_ADDRESS} lladdr 02:00:00:00:00:01 dev cn0 nud stale")
    with testbed.ha.entered():
        mac = testbed.ha_netlink.link_mac("ha0")
    with testbed.ha.entered():
        send_gratuitous_arp("ha0", IPv4Address(HOME_ADDRESS))
    assert wait_until(lambda: mac in testbed.cn.run(f"ip neigh show {HOME_ADDRESS} dev cn0"))


def test_one_gratuitous_arp_sender_sends_many(testbed: Testbed) -> None:
    """The home agent keeps one AF_PACKET socket for all its gratuitous ARPs (RFC 5944 §4.6)."""
    with testbed.ha.entered():
        mac = testbed.ha_netlink.link_mac("ha0")
        sender = GratuitousArpSender("ha0")
    with sender:
        for fake in ("02:00:00:00:00:01", "02:00:00:00:00:02"):
            testbed.cn.run(f"ip neigh replace {HOME_ADDRESS} lladdr {fake} dev cn0 nud stale")
            assert sender.send(IPv4Address(HOME_ADDRESS)) == 1
            assert wait_until(lambda: mac in testbed.cn.run(f"ip neigh show {HOME_ADDRESS} dev cn0"))
        socket_before = sender._sock
        sender.send(IPv4Address(HOME_ADDRESS))
        assert sender._sock is socket_before is not None
    assert sender._sock is None


def test_a_renewal_leaves_the_datapath_alone(testbed: Testbed) -> None:
    """A re-registration that only renews the lifetime (RFC 5944 §3.8.3) changes no table entry and
    no kernel state; the incrementally kept table equals one rebuilt from the bindings."""
    home, agent, care_of = IPv4Address(HOME_ADDRESS), IPv4Address(HA_FOREIGN), IPv4Address(CARE_OF)
    datapath, ipip = testbed.home_agent, Encapsulation.IP_IN_IP
    recorded, before = datapath._netlink.recorded, datapath.table.contents()
    for reverse in (True, False):  # the datapath holds no T flag: nothing to change either
        datapath.add_ipv4_tunnel(home, care_of, ipip, home_agent=agent, reverse_tunnel=reverse)
    assert datapath.table.contents() == before and datapath._netlink.recorded == recorded
    assert datapath.table.contents() == HomeAgentTable(datapath.bindings.values()).contents()
    assert ping(testbed.cn, HOME_ADDRESS)


def _send_raw(namespace: Namespace, packet: bytes, destination: str) -> None:
    with namespace.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    with sock:
        sock.sendto(packet, (destination, 0))


def _udp_listener(namespace: Namespace, family: int, address: str) -> socket.socket:
    with namespace.entered():
        sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((address, 9999))
    sock.settimeout(0.5)
    return sock


FROM_COA = IP(src=CARE_OF, dst=HA_FOREIGN)
SPOOFS = [
    (
        "unregistered outer source",
        IP(src="198.51.100.66", dst=HA_FOREIGN) / IP(src=HOME_ADDRESS, dst=CN),
        DropReason.UNKNOWN_OUTER_SOURCE,
    ),
    ("inner source not the home address", FROM_COA / IP(src="192.0.2.77", dst=CN), DropReason.INNER_SOURCE),
    (
        "GRE although IP-in-IP was negotiated",
        FROM_COA / GRE(proto=0x0800) / IP(src=HOME_ADDRESS, dst=CN),
        DropReason.ENCAPSULATION,
    ),
    (
        "IPv6 source outside the prefixes",
        FROM_COA / IPv6(src="2001:db8:999::1", dst=CN6),
        DropReason.INNER_SOURCE,
    ),
    (
        "code-0 prefix sent via the care-of address",
        FROM_COA / IPv6(src=MN6_HOA, dst=CN6),
        DropReason.TUNNEL_TARGET,
    ),
]


@pytest.mark.parametrize(("label", "outer", "reason"), SPOOFS, ids=[spoof[0] for spoof in SPOOFS])
def test_spoofed_reverse_tunnel_packets_are_dropped_and_counted(
    testbed: Testbed, label: str, outer: IP, reason: DropReason
) -> None:
    is_ipv6 = IPv6 in outer
    family, listen_on = (socket.AF_INET6, CN6) if is_ipv6 else (socket.AF_INET, CN)
    listener = _udp_listener(testbed.cn, family, listen_on)
    with listener:
        before = testbed.home_agent.counters().dropped(reason)
        events_before = len(testbed.drops)
        _send_raw(testbed.mn, bytes(outer / UDP(sport=4000, dport=9999) / b"spoofed"), HA_FOREIGN)
        assert wait_until(lambda: testbed.home_agent.counters().dropped(reason) == before + 1), label
        with pytest.raises(TimeoutError):
            listener.recv(100)
    event = testbed.drops[events_before]
    assert event.reason is reason and str(event.outer_destination) == HA_FOREIGN


def test_legitimate_reverse_tunnel_packet_is_forwarded(testbed: Testbed) -> None:
    """The positive control for the spoof tests: same construction, registered endpoints."""
    with _udp_listener(testbed.cn, socket.AF_INET, CN) as listener:
        packet = IP(src=CARE_OF, dst=HA_FOREIGN) / IP(src=HOME_ADDRESS, dst=CN) / UDP(sport=4000, dport=9999)
        _send_raw(testbed.mn, bytes(packet / b"legit"), HA_FOREIGN)
        assert listener.recv(100) == b"legit"


def test_mobile_node_accepts_only_its_home_agent(testbed: Testbed) -> None:
    before = testbed.mobile_node.counters().dropped(DropReason.UNKNOWN_OUTER_SOURCE)
    packet = IP(src="198.51.100.66", dst=CARE_OF) / IP(src=CN, dst=HOME_ADDRESS) / UDP(dport=9999) / b"x"
    _send_raw(testbed.ha, bytes(packet), CARE_OF)
    assert wait_until(
        lambda: testbed.mobile_node.counters().dropped(DropReason.UNKNOWN_OUTER_SOURCE) == before + 1
    )


def test_close_leaves_nothing_behind(namespaces: NamespaceFactory) -> None:
    _cn, ha, mn = build_links(namespaces)
    wait_settled(ha, mn)  # else the kernel's own late link-locals and carrier would count as our leftovers
    before = {namespace.name: namespace.snapshot() for namespace in (ha, mn)}
    home_agent, mobile_node = start_datapaths(ha, mn, [], suffix="9")
    register(home_agent, mobile_node)
    ping(mn, CN, source=HOME_ADDRESS, attempts=1, timeout=0.3)  # no proxy ARP: no reply expected
    assert mobile_node.counters().encapsulated_packets >= 1
    assert home_agent.counters().decapsulated_packets >= 1
    assert mn.snapshot() != before[mn.name]
    mobile_node.close()
    home_agent.close()
    mobile_node.close()  # idempotent
    time.sleep(0.1)
    for namespace in (ha, mn):
        assert namespace.snapshot() == before[namespace.name], namespace.name
    with pytest.raises(RuntimeError):
        home_agent.add_ipv4_tunnel(
            IPv4Address(HOME_ADDRESS), IPv4Address(CARE_OF), home_agent=IPv4Address(HA_FOREIGN)
        )


def test_kernel_probe_matches_the_kernel_and_touches_nothing(namespaces: NamespaceFactory) -> None:
    from agents.datapath.kernel import probe_kernel_tunnels

    witness = namespaces()
    before = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    support = probe_kernel_tunnels(("ipip", "sit", "gre", "bridge"))
    assert "bridge" in support.available, "a kind every kernel here has must be found"
    for kind in ("ipip", "sit", "gre"):
        # endpoints of its own: a wildcard one collides (EEXIST) with the fallback device (tunl0, sit0,
        # gre0) that a full kernel's module puts in every namespace
        endpoints = ["local", "192.0.2.1", "remote", "192.0.2.2"]
        command = ["ip", "-n", witness.name, "link", "add", f"w-{kind}", "type", kind, *endpoints]
        created = subprocess.run(command, capture_output=True).returncode == 0
        assert (kind in support.available) == created, kind
    assert subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout == before


@pytest.mark.parametrize("encapsulation", [Encapsulation.GRE, Encapsulation.MINIMAL])
def test_other_encapsulations_after_a_re_registration(testbed: Testbed, encapsulation: Encapsulation) -> None:
    """BindingUpdated / TunnelUp with GRE (RFC 2784) or minimal encapsulation (RFC 2004)."""
    home, agent, care_of = IPv4Address(HOME_ADDRESS), IPv4Address(HA_FOREIGN), IPv4Address(CARE_OF)
    minimal = encapsulation is Encapsulation.MINIMAL
    if minimal:  # minimal encapsulation cannot carry IPv6 to the care-of address (RFC 5454 §3.3.2)
        testbed.home_agent.remove_ipv6_prefix(PREFIX_COA)
    try:
        testbed.home_agent.add_ipv4_tunnel(home, care_of, encapsulation, home_agent=agent)
        testbed.mobile_node.add_ipv4_tunnel(home, care_of, encapsulation, home_agent=agent)
        with capture(testbed.ha, "ha1") as packets:
            assert ping(testbed.cn, HOME_ADDRESS)
            assert ping(testbed.mn, CN, source=HOME_ADDRESS)
            if not minimal:
                assert ping(testbed.cn, MN6_COA), "IPv6 in GRE, protocol type 0x86DD"
        protocol = 55 if minimal else 47
        assert {packet[9] for packet in packets if packet[0] >> 4 == 4} >= {protocol}
    finally:
        testbed.home_agent.add_ipv4_tunnel(home, care_of, Encapsulation.IP_IN_IP, home_agent=agent)
        testbed.mobile_node.add_ipv4_tunnel(home, care_of, Encapsulation.IP_IN_IP, home_agent=agent)
        if minimal:
            testbed.home_agent.add_ipv6_prefix(PREFIX_COA, home, TunnelTarget.CARE_OF)
    assert ping(testbed.cn, MN6_COA)


def test_netlink_undo_removes_exactly_what_it_added(namespaces: NamespaceFactory) -> None:
    """Pre-existing objects survive undo; everything added (from outside the namespace, and from
    inside a running asyncio loop) goes; changed settings come back."""
    import asyncio

    namespace = namespaces()
    namespace.run("ip link add n0 type veth peer name n1 && ip addr add 192.0.2.1/24 dev n0")
    before = namespace.snapshot()
    with namespace.entered():
        netlink = Netlink()
    try:
        assert not netlink.add_address("n0", IPv4Interface("192.0.2.1/24"), exist_ok=True)
        assert netlink.add_address("n0", IPv4Interface("198.51.100.5/24"))
        netlink.set_mtu("n0", 1400)
        netlink.set_link_up("n0")
        netlink.add_route(IPv4Network("0.0.0.0/0"), interface="n0", table=100, mtu=1300)
        netlink.add_rule(IPv4Network("192.0.2.100/32"), 100, 1000)
        netlink.add_proxy_neighbour("n0", IPv4Address("192.0.2.100"))
        netlink.enable_forwarding()

        async def from_a_running_loop() -> int:
            return netlink.link_index("n0")

        assert asyncio.run(from_a_running_loop()) == netlink.link_index("n0")
        assert "192.0.2.100 dev n0 proxy" in namespace.run("ip neigh show proxy")
        assert "mtu 1300" in namespace.run("ip route show table 100")
        assert namespace.snapshot() != before
        netlink.undo()
        assert namespace.snapshot() == before
        assert "192.0.2.1/24" in namespace.run("ip -o addr show n0")
    finally:
        netlink.close()


def test_nested_prefix_of_the_same_node_gets_its_own_route(namespaces: NamespaceFactory) -> None:
    """A mobile node may register a prefix inside its own wider one (only overlaps with *other* nodes are
    refused, RFC 5454 §3.3): it gets its own route, which outlives the wider prefix's."""
    ha = namespaces()
    ha.run(
        f"ip link add ha1 type veth peer name ha1p; ip link set ha1 up; ip addr add {HA_FOREIGN}/24 dev ha1"
    )
    with ha.entered():
        home_agent = UserspaceHomeAgent(IPv4Address(HA_FOREIGN), interface_name="mip-nest")
    try:
        home = IPv4Address(HOME_ADDRESS)
        home_agent.add_ipv4_tunnel(home, IPv4Address(CARE_OF), home_agent=IPv4Address(HA_FOREIGN))
        wide, narrow = IPv6Network("2001:db8:10::/48"), IPv6Network("2001:db8:10:1::/64")
        home_agent.add_ipv6_prefix(wide, home)
        home_agent.add_ipv6_prefix(narrow, home)
        routes = ha.run("ip -6 route show dev mip-nest")
        assert str(wide) in routes and str(narrow) in routes
        home_agent.remove_ipv6_prefix(wide)
        routes = ha.run("ip -6 route show dev mip-nest")
        assert str(wide) not in routes and str(narrow) in routes
    finally:
        home_agent.close()
