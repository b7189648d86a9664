"""The same packet cases against every datapath backend available here (issue 9): userspace and ebpf.

Topology and bindings as in :mod:`tests.netns.test_datapath` (CN ─ HA ─ MN, co-located care-of address,
prefix 2001:db8:100::/64 with target home address = RFC 5454 code 0, 2001:db8:200::/64 with target
care-of = code 1). Packets are built and decoded with Scapy, an independent decoder; each case asserts the
same expected bytes and counters for every backend, so the backends are compared with each other through
one specification. The ebpf backend is required here: a missing BPF object fails, it is not skipped.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import GRE

from agents.datapath.base import DropEvent, DropReason
from agents.datapath.selection import Choice, ebpf_problem, make_home_agent, make_mobile_node
from agents.mip.wire.ip import internet_checksum
from agents.net.netlink import Netlink
from tests.netns.conftest import Namespace, NamespaceFactory, capture, ping, wait_until
from tests.netns.test_datapath import (
    CARE_OF,
    CN,
    CN6,
    HA_FOREIGN,
    HOME_ADDRESS,
    MN6_COA,
    MN6_HOA,
    build_links,
    links_settled,
    register,
)
from tests.support.kernel import DATAPATH_BACKENDS

pytestmark = pytest.mark.root

BACKENDS = DATAPATH_BACKENDS


@dataclass
class Bed:
    __test__ = False

    backend: str
    cn: Namespace
    ha: Namespace
    mn: Namespace
    home_agent: object
    mobile_node: object
    drops: list[DropEvent] = field(default_factory=list)


def start(backend: str, ha: Namespace, mn: Namespace, drops: list[DropEvent], suffix: str = "") -> tuple:
    if backend == "ebpf":
        problem = ebpf_problem()
        assert problem is None, f"the ebpf backend cannot run here: {problem}"
    choice = Choice(backend, backend, "test")
    with ha.entered():
        home_agent = make_home_agent(
            choice, IPv4Address(HA_FOREIGN), interface_name=f"mip-ha{suffix}", on_drop=drops.append
        )
    with mn.entered():
        try:
            mobile_node = make_mobile_node(choice, interface_name=f"mip{suffix or 0}")
        except BaseException:
            home_agent.close()
            raise
    return home_agent, mobile_node


@pytest.fixture(scope="module", params=BACKENDS)
def bed(request: pytest.FixtureRequest, namespaces: NamespaceFactory) -> Iterator[Bed]:
    cn, ha, mn = build_links(namespaces)
    drops: list[DropEvent] = []
    home_agent, mobile_node = start(request.param, ha, mn, drops)
    with ha.entered():
        netlink = Netlink()
    try:
        register(home_agent, mobile_node)  # type: ignore[arg-type]
        netlink.add_proxy_neighbour("ha0", IPv4Address(HOME_ADDRESS))
        assert ping(cn, HOME_ADDRESS), "warm-up: neighbours resolved"
        yield Bed(request.param, cn, ha, mn, home_agent, mobile_node, drops)
    finally:
        netlink.undo()
        netlink.close()
        mobile_node.close()
        home_agent.close()


def send_raw(namespace: Namespace, packet: bytes, destination: str) -> None:
    with namespace.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    with sock:
        sock.sendto(packet, (destination, 0))


def send_raw6(namespace: Namespace, packet: IPv6) -> None:
    """An IPv6 packet with the header as built (hop limit, traffic class) via AF_PACKET-free raw IPv6."""
    with namespace.entered():
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    with sock:
        sock.sendto(bytes(packet), (packet.dst, 0))


def send_frame(
    namespace: Namespace, interface: str, peer: Namespace, peer_interface: str, packet: bytes
) -> None:
    """``packet`` in an Ethernet frame to the peer interface's MAC, exactly as built (AF_PACKET): unlike a
    raw IP socket, the kernel neither checks nor fills in the IPv4 header checksum on the way out."""
    destination, source = (
        bytes.fromhex(space.run(f"cat /sys/class/net/{name}/address").strip().replace(":", ""))
        for space, name in ((peer, peer_interface), (namespace, interface))
    )
    with namespace.entered():
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    with sock:
        sock.bind((interface, 0))
        sock.send(destination + source + b"\x08\x00" + packet)


def listener(namespace: Namespace, family: int, address: str, port: int = 9999) -> socket.socket:
    with namespace.entered():
        sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((address, port))
    sock.settimeout(0.5)
    return sock


def tunnelled(packets: list[bytes]) -> list[IP]:
    return [IP(p) for p in packets if p[0] >> 4 == 4 and p[9] in (4, 41)]


def counters(datapath: object) -> object:
    return datapath.counters()  # type: ignore[attr-defined]


# -- encapsulation bytes ---------------------------------------------------------------------------


def test_ipv4_in_ipv4_bytes(bed: Bed) -> None:
    """RFC 2003 §3.1: outer HA → CoA protocol 4, TTL 64, TOS from the inner (RFC 6040 normal mode); the inner
    packet as the HA forwarded it (TTL decremented once)."""
    probe = IP(src=CN, dst=HOME_ADDRESS, ttl=20, tos=0x2A) / UDP(sport=4000, dport=9999) / b"ipip-bytes"
    with listener(bed.mn, socket.AF_INET, HOME_ADDRESS) as sink, capture(bed.ha, "ha1") as seen:
        send_raw(bed.cn, bytes(probe), HOME_ADDRESS)
        assert sink.recv(100) == b"ipip-bytes"
    outer = next(p for p in tunnelled(seen) if p.proto == 4 and p[IP].payload.dst == HOME_ADDRESS)
    inner = outer.payload
    assert (outer.src, outer.dst, outer.ttl, outer.tos, outer.ihl) == (HA_FOREIGN, CARE_OF, 64, 0x2A, 5)
    assert outer.len == 20 + inner.len
    assert (inner.src, inner.ttl, inner.tos, bytes(inner[UDP].payload)) == (CN, 19, 0x2A, b"ipip-bytes")
    assert IP(bytes(outer)).chksum == outer.chksum  # the outer header checksum is right


def test_reverse_tunnel_bytes(bed: Bed) -> None:
    """RFC 3024 §5.1: from the home address, IPv4-in-IPv4 CoA → HA; the CN gets the inner packet with its
    TTL decremented by the HA's forwarding only."""
    with (
        listener(bed.cn, socket.AF_INET, CN) as sink,
        capture(bed.ha, "ha1") as wire,
        capture(bed.cn, "cn0") as delivered,
    ):
        with bed.mn.entered():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            sock.bind((HOME_ADDRESS, 4001))  # the source rule sends it into the tunnel (RFC 3024 §5.1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 30)
            sock.sendto(b"reverse", (CN, 9999))
        assert sink.recv(100) == b"reverse"
    outer = next(p for p in tunnelled(wire) if p.src == CARE_OF)
    assert (outer.dst, outer.proto, outer.ttl, outer.payload.src) == (HA_FOREIGN, 4, 64, HOME_ADDRESS)
    inner = next(IP(p) for p in delivered if p[0] >> 4 == 4 and IP(p).src == HOME_ADDRESS and UDP in IP(p))
    assert inner.ttl == 29


def test_ipv6_code_0_is_nested(bed: Bed) -> None:
    """RFC 5454 §3.3.2 code 0: IPv6-in-IPv4 HA → HoA (protocol 41) inside IPv4-in-IPv4 HA → CoA."""
    with capture(bed.ha, "ha1") as seen:
        assert ping(bed.cn, MN6_HOA)
    outer = next(p for p in tunnelled(seen) if p.proto == 4 and p.src == HA_FOREIGN)
    middle = outer.payload
    assert (outer.dst, middle.src, middle.dst, middle.proto) == (CARE_OF, HA_FOREIGN, HOME_ADDRESS, 41)
    assert middle.len == outer.len - 20 and IP(bytes(middle)).chksum == middle.chksum
    inner = IPv6(bytes(middle.payload))
    assert (inner.src, inner.dst, inner.hlim) == (CN6, MN6_HOA, 63)
    assert ICMPv6EchoRequest in inner


def test_ipv6_code_1_goes_to_the_care_of_address(bed: Bed) -> None:
    with capture(bed.ha, "ha1") as seen:
        assert ping(bed.cn, MN6_COA)
        assert ping(bed.mn, CN6, source=MN6_COA)
    down = next(p for p in tunnelled(seen) if p.src == HA_FOREIGN)
    up = next(p for p in tunnelled(seen) if p.src == CARE_OF)
    assert (down.proto, down.dst, IPv6(bytes(down.payload)).dst) == (41, CARE_OF, MN6_COA)
    assert (up.proto, up.dst, IPv6(bytes(up.payload)).src) == (41, HA_FOREIGN, MN6_COA)


# -- ECN (RFC 6040) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outer_tos", "inner_tos", "delivered_tos"),
    [(0x03, 0x02, 0x03), (0x01, 0x02, 0x01), (0xB8, 0x00, 0xB8), (0x03, 0x00, None)],
    ids=["CE over ECT0", "ECT1 over ECT0", "DSCP copied (uniform)", "CE over Not-ECT dropped"],
)
def test_decapsulation_follows_rfc_6040(
    bed: Bed, outer_tos: int, inner_tos: int, delivered_tos: int | None
) -> None:
    """RFC 6040 §4.2 egress table, RFC 2983 §3.1 uniform DSCP: what reaches the CN."""
    payload = f"ecn-{outer_tos}-{inner_tos}".encode()
    packet = (
        IP(src=CARE_OF, dst=HA_FOREIGN, tos=outer_tos)
        / IP(src=HOME_ADDRESS, dst=CN, tos=inner_tos)
        / UDP(sport=4002, dport=9999)
        / payload
    )
    before = counters(bed.home_agent).dropped(DropReason.ECN)
    with listener(bed.cn, socket.AF_INET, CN) as sink, capture(bed.cn, "cn0") as seen:
        send_raw(bed.mn, bytes(packet), HA_FOREIGN)
        if delivered_tos is None:
            with pytest.raises(TimeoutError):
                sink.recv(100)
        else:
            assert sink.recv(100) == payload
    if delivered_tos is None:
        assert wait_until(lambda: counters(bed.home_agent).dropped(DropReason.ECN) == before + 1)
        return
    arrived = next(IP(p) for p in seen if p[0] >> 4 == 4 and payload in p)
    assert arrived.tos == delivered_tos


# -- source checks: spoofed and malformed packets never reach the inner network ----------------------

FROM_COA = IP(src=CARE_OF, dst=HA_FOREIGN)
REFUSED = [
    (
        "unregistered outer source (RFC 3024 §4.3.2)",
        IP(src="198.51.100.66", dst=HA_FOREIGN) / IP(src=HOME_ADDRESS, dst=CN),
        DropReason.UNKNOWN_OUTER_SOURCE,
    ),
    (
        "inner source not the home address (RFC 3024 §4.3.2)",
        FROM_COA / IP(src="192.0.2.77", dst=CN),
        DropReason.INNER_SOURCE,
    ),
    (
        "GRE although IP-in-IP was negotiated",
        FROM_COA / GRE(proto=0x0800) / IP(src=HOME_ADDRESS, dst=CN),
        DropReason.ENCAPSULATION,
    ),
    (
        "IPv6 source outside the prefixes (RFC 5454 §4)",
        FROM_COA / IPv6(src="2001:db8:999::1", dst=CN6),
        DropReason.INNER_SOURCE,
    ),
    (
        "code-0 prefix sent via the care-of address (RFC 5454 §3.3.2)",
        FROM_COA / IPv6(src=MN6_HOA, dst=CN6),
        DropReason.TUNNEL_TARGET,
    ),
    (
        "un-nested IPv6-in-IPv4 from the home address (RFC 5454 §4)",
        IP(src=HOME_ADDRESS, dst=HA_FOREIGN) / IPv6(src=MN6_HOA, dst=CN6),
        DropReason.UNNESTED_HOME_ADDRESS,
    ),
    (
        "nested: innermost IPv6 source outside the prefix (RFC 5454 §4)",
        FROM_COA / IP(src=HOME_ADDRESS, dst=HA_FOREIGN) / IPv6(src="2001:db8:999::1", dst=CN6),
        DropReason.INNER_SOURCE,
    ),
    (
        "nested: middle header not from the home address (RFC 3024 §4.3.2)",
        FROM_COA / IP(src="192.0.2.77", dst=HA_FOREIGN) / IPv6(src=MN6_HOA, dst=CN6),
        DropReason.INNER_SOURCE,
    ),
]


@pytest.mark.parametrize(("label", "outer", "reason"), REFUSED, ids=[case[0] for case in REFUSED])
def test_spoofed_packets_never_reach_the_inner_network(
    bed: Bed, label: str, outer: IP, reason: DropReason
) -> None:
    family, address = (socket.AF_INET6, CN6) if IPv6 in outer else (socket.AF_INET, CN)
    with listener(bed.cn, family, address) as sink:
        before, events = counters(bed.home_agent).dropped(reason), len(bed.drops)
        send_raw(bed.mn, bytes(outer / UDP(sport=4000, dport=9999) / b"spoofed"), HA_FOREIGN)
        assert wait_until(lambda: counters(bed.home_agent).dropped(reason) == before + 1), label
        with pytest.raises(TimeoutError):
            sink.recv(100)
    assert wait_until(lambda: len(bed.drops) > events)
    event = bed.drops[events]
    assert event.reason is reason and str(event.outer_destination) == HA_FOREIGN


def test_malformed_tunnel_packets_never_reach_the_inner_network(bed: Bed) -> None:
    """An inner header whose length disagrees with the outer one, and a truncated inner IPv6 header."""
    good = FROM_COA / IP(src=HOME_ADDRESS, dst=CN) / UDP(sport=4003, dport=9999) / b"malformed"
    wrong_length = bytearray(bytes(good))
    wrong_length[22:24] = (len(wrong_length) - 20 + 8).to_bytes(2, "big")  # inner total length too big
    truncated = bytes(IP(src=CARE_OF, dst=HA_FOREIGN, proto=41) / bytes(IPv6(src=MN6_COA, dst=CN6))[:30])
    with listener(bed.cn, socket.AF_INET, CN) as sink:
        before = counters(bed.home_agent).dropped(DropReason.MALFORMED)
        for packet in (bytes(wrong_length), truncated):
            send_raw(bed.mn, packet, HA_FOREIGN)
        assert wait_until(lambda: counters(bed.home_agent).dropped(DropReason.MALFORMED) == before + 2)
        with pytest.raises(TimeoutError):
            sink.recv(100)


def test_mobile_node_accepts_only_its_home_agent(bed: Bed) -> None:
    before = counters(bed.mobile_node).dropped(DropReason.UNKNOWN_OUTER_SOURCE)
    packet = IP(src="198.51.100.66", dst=CARE_OF) / IP(src=CN, dst=HOME_ADDRESS) / UDP(dport=9999) / b"x"
    with listener(bed.mn, socket.AF_INET, HOME_ADDRESS) as sink:
        send_raw(bed.ha, bytes(packet), CARE_OF)
        assert wait_until(
            lambda: counters(bed.mobile_node).dropped(DropReason.UNKNOWN_OUTER_SOURCE) == before + 1
        )
        with pytest.raises(TimeoutError):
            sink.recv(100)


def test_counters_count_both_directions(bed: Bed) -> None:
    ha_before, mn_before = counters(bed.home_agent), counters(bed.mobile_node)
    assert ping(bed.cn, HOME_ADDRESS)

    def moved() -> bool:
        ha, mn = counters(bed.home_agent), counters(bed.mobile_node)
        return (
            ha.encapsulated_packets >= ha_before.encapsulated_packets + 1
            and ha.decapsulated_packets >= ha_before.decapsulated_packets + 1
            and mn.encapsulated_packets >= mn_before.encapsulated_packets + 1
            and mn.decapsulated_packets >= mn_before.decapsulated_packets + 1
            and mn.encapsulated_bytes >= mn_before.encapsulated_bytes + 28
        )

    assert wait_until(moved), (counters(bed.home_agent), counters(bed.mobile_node))


# -- TTL and MTU ---------------------------------------------------------------------------------------


def test_ttl_one_is_not_tunnelled(bed: Bed) -> None:
    """RFC 2003 §3.1 / RFC 792: a packet whose TTL runs out at the HA gets ICMP time exceeded, no tunnel."""
    probe = IP(src=CN, dst=HOME_ADDRESS, ttl=1) / UDP(sport=4004, dport=9999) / b"ttl1"
    with capture(bed.ha, "ha1") as wire, capture(bed.cn, "cn0") as back:
        send_raw(bed.cn, bytes(probe), HOME_ADDRESS)
        time.sleep(0.3)
    assert not [p for p in tunnelled(wire) if b"ttl1" in p]
    assert any(IP(p).haslayer(ICMP) and IP(p)[ICMP].type == 11 for p in back if p[0] >> 4 == 4)


def test_ipv4_mtu_and_dont_fragment(bed: Bed) -> None:
    """The tunnel's IPv4 MTU is 1476 (RFC 2003 §4, RFC 4213 §3.2 style static MTU): a 1476-byte DF packet
    passes, a 1477-byte one is refused with ICMP "fragmentation needed", MTU 1476 (RFC 1191)."""
    fits = IP(src=CN, dst=HOME_ADDRESS, flags="DF") / UDP(sport=4005, dport=9999) / (b"f" * (1476 - 28))
    too_big = IP(src=CN, dst=HOME_ADDRESS, flags="DF") / UDP(sport=4005, dport=9999) / (b"b" * (1477 - 28))
    with listener(bed.mn, socket.AF_INET, HOME_ADDRESS) as sink, capture(bed.cn, "cn0") as back:
        send_raw(bed.cn, bytes(fits), HOME_ADDRESS)
        assert len(sink.recv(2000)) == 1476 - 28
        send_raw(bed.cn, bytes(too_big), HOME_ADDRESS)
        with pytest.raises(TimeoutError):
            sink.recv(2000)
    icmp = [IP(p)[ICMP] for p in back if p[0] >> 4 == 4 and IP(p).haslayer(ICMP) and IP(p)[ICMP].type == 3]
    assert icmp and icmp[0].code == 4 and icmp[0].nexthopmtu == 1476


def test_ipv6_static_tunnel_mtu(bed: Bed) -> None:
    """RFC 4213 §3.2: static IPv6 MTU 1280 on the tunnel: a larger packet gets Packet Too Big (1280)."""
    big = IPv6(src=CN6, dst=MN6_COA) / UDP(sport=4006, dport=9999) / (b"p" * 1300)
    with capture(bed.cn, "cn0") as back:
        send_raw6(bed.cn, big)
        time.sleep(0.3)
    too_big = [
        IPv6(p)[ICMPv6PacketTooBig] for p in back if p[0] >> 4 == 6 and IPv6(p).haslayer(ICMPv6PacketTooBig)
    ]
    assert too_big and too_big[0].mtu == 1280


# -- a handover is one update ---------------------------------------------------------------------------


def test_a_move_redirects_the_tunnel(bed: Bed) -> None:
    """A new care-of address replaces the old one: packets follow at once (here to an address nobody has, so
    the tunnel's outer destination is what shows), and moving back restores delivery."""
    from agents.datapath.base import Encapsulation

    home, agent = IPv4Address(HOME_ADDRESS), IPv4Address(HA_FOREIGN)
    elsewhere = IPv4Address("198.51.100.77")
    ha = bed.home_agent
    try:
        ha.add_ipv4_tunnel(home, elsewhere, Encapsulation.IP_IN_IP, home_agent=agent)  # type: ignore[attr-defined]
        ha.remove_ipv4_tunnel(home, IPv4Address(CARE_OF))  # type: ignore[attr-defined]
        with capture(bed.ha, "ha1") as seen:
            ping(bed.cn, HOME_ADDRESS, attempts=1, timeout=0.5)
        # an address on the link with no neighbour: ARP requests for it, no tunnel packet to the old CoA
        assert not [p for p in tunnelled(seen) if p.dst == CARE_OF]
    finally:
        ha.add_ipv4_tunnel(home, IPv4Address(CARE_OF), Encapsulation.IP_IN_IP, home_agent=agent)  # type: ignore[attr-defined]
        ha.remove_ipv4_tunnel(home, elsewhere)  # type: ignore[attr-defined]
    assert ping(bed.cn, HOME_ADDRESS)


# -- simultaneous bindings: a copy to each care-of address (RFC 5944 §3.6.1.3) ---------------------------

SECOND_CARE_OF = "198.51.100.3"
BICAST = b"BICAST"


def bicast_copies(frames: list[bytes]) -> Counter[tuple[str, str, int]]:
    """(kind, outer destination, probe seq) → copies the HA sent, IP-in-IP or GRE: kind ``ipv4``,
    ``code0`` (IPv6-in-IPv4 to the home address nested in the care-of tunnel) or ``code1`` (IPv6 straight to
    the care-of address)."""
    seen: Counter[tuple[str, str, int]] = Counter()
    for frame in frames:
        if frame[0] >> 4 != 4 or frame[9] not in (4, 41, 47) or IP(frame).src != HA_FOREIGN:
            continue
        outer = IP(frame)
        carried = bytes(outer.payload)[4:] if outer.proto == 47 else bytes(outer.payload)
        if carried[0] >> 4 == 6:
            kind, data = "code1", bytes(IPv6(carried)[UDP].payload)
        elif IP(carried).proto == 41:
            kind, data = "code0", bytes(IPv6(bytes(IP(carried).payload))[UDP].payload)
        elif IP(carried).proto == 17:
            kind, data = "ipv4", bytes(IP(carried)[UDP].payload)
        else:
            continue
        if data.startswith(BICAST):
            seen[(kind, outer.dst, int(data[len(BICAST) :]))] += 1
    return seen


def send_bicast_probes(cn: Namespace, count: int) -> None:
    with cn.entered():
        v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with v4, v6:
        for seq in range(count):
            payload = BICAST + str(seq).encode()
            v4.sendto(payload, (HOME_ADDRESS, 9998))
            v6.sendto(payload, (MN6_HOA, 9998))
            v6.sendto(payload, (MN6_COA, 9998))
            time.sleep(0.002)


@pytest.mark.parametrize("encapsulation", ["ipip", "gre"])
def test_simultaneous_bindings_copy_each_packet_to_each_care_of_rfc5944_3_6_1_3(
    bed: Bed, encapsulation: str
) -> None:
    """Two care-of addresses (S): every IPv4 packet, every code-0 and every code-1 IPv6 packet leaves the HA
    exactly once towards each, in IP-in-IP or GRE (RFC 2784); the counters count packets, not copies. After
    the second care-of goes, one copy each again."""
    from agents.datapath.base import Encapsulation

    home, agent = IPv4Address(HOME_ADDRESS), IPv4Address(HA_FOREIGN)
    ha, mode = bed.home_agent, Encapsulation(encapsulation)
    bed.mn.run(f"ip addr add {SECOND_CARE_OF}/24 dev mn0")
    try:
        assert ping(bed.ha, SECOND_CARE_OF), "the second care-of's neighbour entry (a clone needs one)"
        ha.add_ipv4_tunnel(home, IPv4Address(CARE_OF), mode, home_agent=agent)  # type: ignore[attr-defined]
        ha.add_ipv4_tunnel(home, IPv4Address(SECOND_CARE_OF), mode, home_agent=agent)  # type: ignore[attr-defined]
        before = counters(ha).encapsulated_packets  # type: ignore[attr-defined]
        with capture(bed.ha, "ha1") as seen:
            send_bicast_probes(bed.cn, 40)
        copies = bicast_copies(seen)
        sent = counters(ha).encapsulated_packets - before  # type: ignore[attr-defined]
        want = Counter(
            (kind, care_of, seq)
            for kind in ("ipv4", "code0", "code1")
            for care_of in (CARE_OF, SECOND_CARE_OF)
            for seq in range(40)
        )
        assert copies == want, sorted((want - copies).items())[:5] + sorted((copies - want).items())[:5]
        assert sent == 3 * 40
    finally:
        ha.remove_ipv4_tunnel(home, IPv4Address(SECOND_CARE_OF))  # type: ignore[attr-defined]
        ha.add_ipv4_tunnel(home, IPv4Address(CARE_OF), Encapsulation.IP_IN_IP, home_agent=agent)  # type: ignore[attr-defined]
        bed.mn.run(f"ip addr del {SECOND_CARE_OF}/24 dev mn0")
    with capture(bed.ha, "ha1") as seen:
        send_bicast_probes(bed.cn, 10)
    assert bicast_copies(seen) == Counter(
        (kind, CARE_OF, seq) for kind in ("ipv4", "code0", "code1") for seq in range(10)
    )


# -- exact teardown ------------------------------------------------------------------------------------


def bpf_state(namespace: Namespace) -> dict[str, str]:
    """tc qdiscs and filters on every link of the namespace, and what is pinned in /sys/fs/bpf."""
    links = namespace.run("ls /sys/class/net").split()
    state = {"qdiscs": namespace.run("tc qdisc show")}
    for link in links:
        for where in ("ingress", "egress"):
            state[f"{link} {where}"] = namespace.run(f"tc filter show dev {link} {where}", check=False)
    return state


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_leaves_nothing_behind(namespaces: NamespaceFactory, backend: str) -> None:
    _cn, ha, mn = build_links(namespaces)
    pins = sorted(p for p in os.listdir("/sys/fs/bpf")) if os.path.isdir("/sys/fs/bpf") else []
    assert wait_until(lambda: links_settled(ha) and links_settled(mn), timeout=5), "veth link-local addresses"
    before = {ns.name: (ns.snapshot(), bpf_state(ns)) for ns in (ha, mn)}
    home_agent, mobile_node = start(backend, ha, mn, [], suffix="9")
    register(home_agent, mobile_node)  # type: ignore[arg-type]
    ping(mn, CN, source=HOME_ADDRESS, attempts=1, timeout=0.3)
    assert counters(mobile_node).encapsulated_packets >= 1
    if backend == "ebpf":
        assert "clsact" in ha.run("tc qdisc show"), "the ebpf backend attaches to clsact"
    mobile_node.close()
    home_agent.close()
    mobile_node.close()  # idempotent
    time.sleep(0.1)
    for ns in (ha, mn):
        now = {**ns.snapshot(), **bpf_state(ns)}
        then = {**before[ns.name][0], **before[ns.name][1]}
        changed = {
            key: (then.get(key), now.get(key))
            for key in then.keys() | now.keys()
            if then.get(key) != now.get(key)
        }
        assert not changed, (ns.name, changed)
    after_pins = sorted(os.listdir("/sys/fs/bpf")) if os.path.isdir("/sys/fs/bpf") else []
    assert after_pins == pins, "nothing pinned"


KILLED_HOME_AGENT = """
import os, sys
from ipaddress import IPv4Address
from agents.datapath.ebpf import EbpfHomeAgent
EbpfHomeAgent(IPv4Address("198.51.100.1"), interface_name="mip-dead")
os.kill(os.getpid(), 9)  # no close(): what SIGKILL leaves
"""


def test_a_killed_ebpf_datapath_leaves_nothing_after_the_next_close(namespaces: NamespaceFactory) -> None:
    """A home agent killed with SIGKILL leaves its tc filters (they hold its programs); the next datapath
    started in the namespace removes them, and its close() restores the links as they were before both."""
    import subprocess
    import sys

    _cn, ha, _mn = build_links(namespaces)
    assert wait_until(lambda: links_settled(ha), timeout=5)
    before = bpf_state(ha)
    killed = subprocess.run(
        ["ip", "netns", "exec", ha.name, sys.executable, "-c", KILLED_HOME_AGENT],
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr
    assert "wire_ingress" in ha.run("tc filter show dev ha0 ingress"), "the killed one left its filter"
    home_agent, mobile_node = start("ebpf", ha, namespaces(), [], suffix="8")
    mobile_node.close()
    filters = ha.run("tc filter show dev ha0 ingress")
    assert filters.count("wire_ingress") == 2, filters  # ours alone: "wire_ingress:[id]", "name wire_ingress"
    home_agent.close()
    assert bpf_state(ha) == before


# -- GRE (RFC 2784) -----------------------------------------------------------------------------------


@pytest.fixture
def gre(bed: Bed) -> Iterator[Bed]:
    """The binding re-registered with GRE on both sides (RFC 5944 §3.8.2.1 G bit), IP-in-IP afterwards."""
    from agents.datapath.base import Encapsulation

    home, agent, care_of = IPv4Address(HOME_ADDRESS), IPv4Address(HA_FOREIGN), IPv4Address(CARE_OF)
    for encapsulation in (Encapsulation.GRE, Encapsulation.IP_IN_IP):
        for datapath in (bed.home_agent, bed.mobile_node):
            datapath.add_ipv4_tunnel(home, care_of, encapsulation, home_agent=agent)  # type: ignore[attr-defined]
        if encapsulation is Encapsulation.GRE:
            yield bed
    assert ping(bed.cn, HOME_ADDRESS)


def test_gre_carries_ipv4_and_both_ipv6_codes(gre: Bed) -> None:
    """RFC 2784 §2: a 4-byte GRE header (no checksum, version 0) with protocol type 0x0800 for IPv4 and for
    the nested code-0 header (IPv6-in-IPv4 inside, RFC 5454 §3.3.2), 0x86DD for code 1."""
    with capture(gre.ha, "ha1") as seen:
        assert ping(gre.cn, HOME_ADDRESS) and ping(gre.mn, CN, source=HOME_ADDRESS)
        assert ping(gre.cn, MN6_COA) and ping(gre.mn, CN6, source=MN6_COA)
        assert ping(gre.cn, MN6_HOA) and ping(gre.mn, CN6, source=MN6_HOA)
    carried = {
        (IP(p).src, IP(p)[GRE].proto, IP(p)[GRE].payload.name) for p in seen if p[0] >> 4 == 4 and p[9] == 47
    }
    assert {(HA_FOREIGN, 0x0800, "IP"), (CARE_OF, 0x0800, "IP")} <= carried, carried
    assert {(HA_FOREIGN, 0x86DD, "IPv6"), (CARE_OF, 0x86DD, "IPv6")} <= carried, carried
    assert not [p for p in seen if p[0] >> 4 == 4 and p[9] in (4, 41)], "everything in GRE"
    headers = [bytes(IP(p).payload)[:4] for p in seen if p[0] >> 4 == 4 and p[9] == 47]
    assert all(header[:2] == b"\0\0" for header in headers)


def test_ip_in_ip_after_gre_was_negotiated_is_refused(gre: Bed) -> None:
    """RFC 3024 §4.3.2: right endpoints, wrong encapsulation."""
    packet = FROM_COA / IP(src=HOME_ADDRESS, dst=CN) / UDP(sport=4007, dport=9999) / b"wrong-encap"
    with listener(gre.cn, socket.AF_INET, CN) as sink:
        before = counters(gre.home_agent).dropped(DropReason.ENCAPSULATION)
        send_raw(gre.mn, bytes(packet), HA_FOREIGN)
        assert wait_until(lambda: counters(gre.home_agent).dropped(DropReason.ENCAPSULATION) == before + 1)
        with pytest.raises(TimeoutError):
            sink.recv(100)


def _damaged_outer(packet: bytes, damage: str) -> bytes:
    outer = bytearray(packet)
    if damage == "checksum":
        outer[10] ^= 0xFF
    else:  # the total length claims 8 bytes more than the frame carries; the checksum made to match
        outer[2:4] = (len(packet) + 8).to_bytes(2, "big")
        outer[10:12] = bytes(2)
        outer[10:12] = internet_checksum(bytes(outer[:20])).to_bytes(2, "big")
    return bytes(outer)


@pytest.mark.parametrize("damage", ["checksum", "total-length"])
@pytest.mark.parametrize("role", ["home agent", "mobile node"])
def test_a_damaged_outer_header_is_never_decapsulated_rfc1812_5_2_2(bed: Bed, role: str, damage: str) -> None:
    """RFC 1812 §5.2.2: a header whose checksum fails, or whose total length exceeds what the link carried,
    is dropped before anything else is done with the packet. The ebpf programs run before the kernel's
    IP input checks, so they must not decapsulate it either; the intact frame (sent first) is delivered."""
    marker = f"outer-{damage}-{bed.backend}".encode()
    if role == "home agent":
        packet = bytes(FROM_COA / IP(src=HOME_ADDRESS, dst=CN) / UDP(sport=4012, dport=9999) / marker)
        sender, wire, receiver, inner_end = bed.mn, ("mn0", "ha1"), bed.ha, (bed.cn, CN)
    else:
        inner = IP(src=CN, dst=HOME_ADDRESS) / UDP(sport=4013, dport=9999) / marker
        packet = bytes(IP(src=HA_FOREIGN, dst=CARE_OF) / inner)
        sender, wire, receiver, inner_end = bed.ha, ("ha1", "mn0"), bed.mn, (bed.mn, HOME_ADDRESS)
    with listener(inner_end[0], socket.AF_INET, inner_end[1]) as sink:
        send_frame(sender, wire[0], receiver, wire[1], packet)
        assert sink.recv(100) == marker, "the intact frame must arrive, or this test proves nothing"
        send_frame(sender, wire[0], receiver, wire[1], _damaged_outer(packet, damage))
        with pytest.raises(TimeoutError):
            sink.recv(100)
