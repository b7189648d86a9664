"""The foreign agent's datapath, the same packet cases against its userspace and ebpf backends (issue 9).

```
   ha ── ha0 (198.51.100.1/26; CN 203.0.113.10 on lo) ── fa-net (198.51.100.2 = care-of): fa
   fa ── fa-acc (10.0.1.1/24) ── mn0: mn (home address 192.0.2.10/32, default via the FA)
```
The test plays the home agent with raw packets; the datapath (built in-process, its asyncio loop on a
thread) decapsulates toward the visitor's link-layer address and reverse tunnels the visitor's packets
(RFC 5944 §4.2.2, RFC 3024 §5.1). What crossed the wire is decoded with Scapy, an independent decoder;
every case asserts the same bytes, counters and drop reports for both backends. The ebpf backend is
required here: a missing BPF object fails, it is not skipped.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

import pytest
from scapy.layers.inet import IP, UDP

from agents.datapath.base import DropEvent, DropReason
from agents.datapath.fa_tables import VisitorRoute
from agents.datapath.foreign_agent import UserspaceForeignAgent
from agents.datapath.selection import Choice, make_foreign_agent
from agents.mip.wire.ip import internet_checksum
from agents.runtime.roles.fa_access import AccessLink, ipv4_packet, udp_datagram
from tests.netns.conftest import Namespace, NamespaceFactory, wait_until
from tests.support.kernel import DATAPATH_BACKENDS

pytestmark = pytest.mark.root

BACKENDS = DATAPATH_BACKENDS
PACKET_OUTGOING = 4
HA, SPOOF, COA, ACCESS = "198.51.100.1", "198.51.100.3", "198.51.100.2", "10.0.1.1"
CN, HOA, STRANGER = "203.0.113.10", "192.0.2.10", "192.0.2.99"


@dataclass
class Bed:
    __test__ = False

    backend: str
    ha: Namespace
    fa: Namespace
    mn: Namespace
    datapath: UserspaceForeignAgent
    mn_mac: bytes
    drops: list[DropEvent] = field(default_factory=list)


def build(namespaces: NamespaceFactory) -> tuple[Namespace, Namespace, Namespace]:
    ha, fa, mn = namespaces(), namespaces(), namespaces()
    for space in (ha, fa, mn):
        space.run("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
    _veth(ha, "ha0", fa, "fa-net")
    _veth(fa, "fa-acc", mn, "mn0")
    ha.run(f"ip addr add {HA}/26 dev ha0 && ip addr add {SPOOF}/26 dev ha0 && ip addr add {CN}/32 dev lo")
    fa.run(
        f"ip addr add {COA}/26 dev fa-net && ip addr add {ACCESS}/24 dev fa-acc && "
        f"ip route add default via {HA}"
    )
    mn.run(f"ip addr add {HOA}/32 dev mn0 && ip route add default via {ACCESS} dev mn0 onlink")
    mn.run(f"ip addr add {STRANGER}/32 dev mn0")
    return ha, fa, mn


def _veth(left: Namespace, left_name: str, right: Namespace, right_name: str) -> None:
    left.run(f"ip link add {left_name} type veth peer name {right_name} netns {right.name}")
    left.run(f"ip link set {left_name} up && ethtool -K {left_name} tx off >/dev/null 2>&1 || true")
    right.run(f"ip link set {right_name} up && ethtool -K {right_name} tx off >/dev/null 2>&1 || true")


def mac_of(space: Namespace, interface: str) -> bytes:
    return bytes.fromhex(space.run(f"cat /sys/class/net/{interface}/address").strip().replace(":", ""))


def tc_state(space: Namespace) -> str:
    """Every qdisc and ingress/egress filter of the namespace (teardown leaves none of ours)."""
    out = space.run("tc qdisc show")
    for interface in ("fa-net", "fa-acc"):
        out += space.run(f"tc filter show dev {interface} ingress; tc filter show dev {interface} egress")
    return out


@pytest.fixture(scope="module", params=BACKENDS)
def bed(request: pytest.FixtureRequest, namespaces: NamespaceFactory) -> Iterator[Bed]:
    backend: str = request.param
    ha, fa, mn = build(namespaces)
    before_tc, before = tc_state(fa), fa.snapshot()
    drops: list[DropEvent] = []
    loop = asyncio.new_event_loop()
    with fa.entered():
        link = AccessLink("fa-acc", IPv4Address(ACCESS))
        datapath = make_foreign_agent(
            Choice(backend, backend, "test"), (IPv4Address(COA),), link.send_frame, "fa-acc",
            tunnel_interface="mip-fa", on_drop=drops.append,
        )  # fmt: skip
        datapath.filter_foreign_sources(IPv4Network("10.0.1.0/24"))
    assert (
        type(datapath).__name__ == {"userspace": "UserspaceForeignAgent", "ebpf": "EbpfForeignAgent"}[backend]
    )
    datapath.start(loop)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    testbed = Bed(backend, ha, fa, mn, datapath, mac_of(mn, "mn0"), drops)
    route = VisitorRoute(IPv4Address(HOA), IPv4Address(HA), IPv4Address(COA), testbed.mn_mac, True)
    loop.call_soon_threadsafe(datapath.set_visitor, route)
    assert wait_until(lambda: f"from {HOA} iif fa-acc lookup 110" in fa.run("ip rule show"), 3.0)
    try:
        yield testbed
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        datapath.close()
        datapath.close()  # idempotent
        link.close()
        loop.close()
        after = fa.snapshot()
        assert tc_state(fa) == before_tc, f"{backend}: tc state left behind"
        assert after == before, f"{backend}: namespace not restored"


def send_raw(space: Namespace, packet: bytes, destination: str) -> None:
    """A complete IPv4 packet (our own outer header) from ``space``."""
    with space.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    with sock:
        sock.sendto(packet, (destination, 0))


def tunnel_packet(outer_source: str, inner_destination: str, payload: bytes, ttl: int = 64) -> bytes:
    inner = ipv4_packet(IPv4Address(CN), IPv4Address(inner_destination), socket.IPPROTO_UDP,
                        udp_datagram(5000, 9, payload), ttl)  # fmt: skip
    return ipv4_packet(IPv4Address(outer_source), IPv4Address(COA), 4, inner, 64)


def counters(bed: Bed) -> dict[str, object]:
    return bed.datapath.counters().to_dict()


def frames(space: Namespace, interface: str, marker: bytes, action: object) -> list[bytes]:
    """Full Ethernet frames carrying ``marker`` that ``interface`` received while ``action()`` runs (not the
    ones it sent, e.g. an ICMP error quoting the packet)."""
    with space.entered():
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((interface, 0))
    sock.settimeout(0.1)
    seen: list[bytes] = []
    with sock:
        assert callable(action)
        action()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                frame, address = sock.recvfrom(65535)
            except TimeoutError:
                continue
            if marker in frame and address[2] != PACKET_OUTGOING:
                seen.append(frame)
    return seen


def test_decapsulation_to_the_visitors_link_address_rfc5944_4_2_2(bed: Bed) -> None:
    """RFC 2003 §3.1: the HA's IP-in-IP to the care-of address arrives on the access link as the inner
    packet, TTL - 1, to the visitor's MAC from the FA's access MAC (RFC 5944 §4.2.2: no ARP for the HoA)."""
    before, in_userspace = counters(bed), bed.datapath.tally.decapsulated_packets
    marker = f"down-{bed.backend}".encode()
    seen = frames(bed.mn, "mn0", marker, lambda: send_raw(bed.ha, tunnel_packet(HA, HOA, marker), COA))
    assert len(seen) == 1, seen
    frame = seen[0]
    assert frame[:6] == bed.mn_mac and frame[6:12] == mac_of(bed.fa, "fa-acc")
    packet = IP(frame[14:])
    assert (packet.src, packet.dst, packet.proto, packet.ttl) == (CN, HOA, 17, 63)
    assert IP(bytes(packet)).chksum == packet.chksum  # Scapy recomputes: the checksum is right
    del packet.chksum
    assert packet[UDP].dport == 9 and bytes(packet[UDP].payload) == marker
    after = counters(bed)
    assert after["decapsulated_packets"] == before["decapsulated_packets"] + 1
    assert after["decapsulated_bytes"] == before["decapsulated_bytes"] + 20 + 8 + len(marker)
    # ebpf: the tc program delivered it, the userspace path never saw it
    assert bed.datapath.tally.decapsulated_packets == in_userspace + (bed.backend == "userspace")


def test_spoofed_outer_source_is_dropped_and_reported_rfc3024_4_3_2(bed: Bed) -> None:
    """A tunnel packet for the visitor from anything but its home agent: dropped, counted
    ``unknown_outer_source`` and reported with both headers."""
    before, reports = counters(bed), len(bed.drops)
    marker = f"spoof-{bed.backend}".encode()
    seen = frames(bed.mn, "mn0", marker, lambda: send_raw(bed.ha, tunnel_packet(SPOOF, HOA, marker), COA))
    assert not seen
    assert wait_until(lambda: len(bed.drops) > reports, 2.0)
    event = bed.drops[-1]
    assert event.reason is DropReason.UNKNOWN_OUTER_SOURCE
    assert (str(event.outer_source), str(event.outer_destination)) == (SPOOF, COA)
    assert (event.inner_source, event.inner_destination) == (CN, HOA)
    drops = counters(bed)["drops"]
    assert isinstance(drops, dict)
    assert drops.get("unknown_outer_source", 0) == before["drops"].get("unknown_outer_source", 0) + 1  # type: ignore[union-attr]


def test_inner_destination_not_a_visitor_is_dropped(bed: Bed) -> None:
    """The HA's address is right, but the inner destination is no registered visitor: dropped, counted."""
    before = counters(bed)["drops"]
    marker = f"stranger-{bed.backend}".encode()
    seen = frames(bed.mn, "mn0", marker, lambda: send_raw(bed.ha, tunnel_packet(HA, STRANGER, marker), COA))
    assert not seen
    assert wait_until(lambda: counters(bed)["drops"].get("unknown_outer_source", 0)  # type: ignore[union-attr]
                      == before.get("unknown_outer_source", 0) + 1, 2.0)  # type: ignore[union-attr]  # fmt: skip


def test_ttl_one_is_not_delivered_rfc2003_3_1(bed: Bed) -> None:
    before = counters(bed)["drops"]
    marker = f"ttl-{bed.backend}".encode()
    packet = tunnel_packet(HA, HOA, marker, ttl=1)
    assert not frames(bed.mn, "mn0", marker, lambda: send_raw(bed.ha, packet, COA))
    assert wait_until(lambda: counters(bed)["drops"].get("hop_limit", 0)  # type: ignore[union-attr]
                      == before.get("hop_limit", 0) + 1, 2.0)  # type: ignore[union-attr]  # fmt: skip


def visitor_send(bed: Bed, source: str, marker: bytes) -> None:
    with bed.mn.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((source, 0))
        sock.sendto(marker, (CN, 9))


def test_reverse_tunnel_from_the_care_of_address_to_the_home_agent_rfc3024_5_1(bed: Bed) -> None:
    """RFC 3024 §4.3, §5.1: the visitor's packet from its home address leaves the network side IP-in-IP
    from the care-of address to its home agent, the inner packet forwarded (TTL - 1)."""
    before, in_userspace = counters(bed), bed.datapath.tally.encapsulated_packets
    marker = f"up-{bed.backend}".encode()
    seen = frames(bed.ha, "ha0", marker, lambda: visitor_send(bed, HOA, marker))
    assert len(seen) == 1, seen
    outer = IP(seen[0][14:])
    assert (outer.src, outer.dst, outer.proto, outer.ihl, outer.flags.MF, outer.frag) == (COA, HA, 4, 5, 0, 0)
    assert IP(bytes(outer)).chksum == outer.chksum
    inner = outer.payload
    assert isinstance(inner, IP)
    assert (inner.src, inner.dst, inner.proto, inner.ttl) == (HOA, CN, 17, 63)
    assert bytes(inner[UDP].payload) == marker
    assert outer.len == 20 + inner.len
    after = counters(bed)
    assert after["encapsulated_packets"] == before["encapsulated_packets"] + 1
    assert after["encapsulated_bytes"] == before["encapsulated_bytes"] + inner.len
    assert bed.datapath.tally.encapsulated_packets == in_userspace + (bed.backend == "userspace")


def test_packets_to_the_foreign_agent_itself_are_not_tunnelled(bed: Bed) -> None:
    """A visitor's packet to the FA's own address (e.g. a registration request, RFC 5944 §3.3) is the FA's:
    it never enters the reverse tunnel."""
    marker = f"local-{bed.backend}".encode()
    with bed.fa.entered():
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with receiver:
        receiver.bind((ACCESS, 9))
        receiver.settimeout(2.0)

        def send() -> None:
            with bed.mn.entered():
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with sock:
                sock.bind((HOA, 0))
                sock.sendto(marker, (ACCESS, 9))

        assert not frames(bed.ha, "ha0", marker, send)
        assert receiver.recv(100) == marker


def test_a_non_visitor_source_is_not_forwarded(bed: Bed) -> None:
    """An address from outside the access network that is no visitor: nothing leaves the FA (ingress
    filtering, the blackhole rule), in either backend."""
    marker = f"nonvisitor-{bed.backend}".encode()
    assert not frames(bed.ha, "ha0", marker, lambda: visitor_send(bed, STRANGER, marker))


def test_removed_visitor_gets_neither_direction(bed: Bed) -> None:
    """VisitorRemoved: no more delivery, no more reverse tunnelling (the map entry and the rule go)."""
    loop = bed.datapath._loop
    assert loop is not None
    loop.call_soon_threadsafe(bed.datapath.remove_visitor, IPv4Address(HOA))
    assert wait_until(lambda: f"from {HOA} iif" not in bed.fa.run("ip rule show"), 3.0)
    try:
        down, up = f"gone-down-{bed.backend}".encode(), f"gone-up-{bed.backend}".encode()
        assert not frames(bed.mn, "mn0", down, lambda: send_raw(bed.ha, tunnel_packet(HA, HOA, down), COA))
        assert not frames(bed.ha, "ha0", up, lambda: visitor_send(bed, HOA, up))
    finally:
        route = VisitorRoute(IPv4Address(HOA), IPv4Address(HA), IPv4Address(COA), bed.mn_mac, True)
        loop.call_soon_threadsafe(bed.datapath.set_visitor, route)
        assert wait_until(lambda: f"from {HOA} iif fa-acc lookup 110" in bed.fa.run("ip rule show"), 3.0)


def test_expected_visitor_is_buffered_then_delivered_rfc4881_3(bed: Bed) -> None:
    """Pre-registration buffering: packets for an expected visitor are held (in userspace, also with ebpf,
    whose programs pass them up) and delivered in order on attach."""
    loop = bed.datapath._loop
    assert loop is not None
    loop.call_soon_threadsafe(bed.datapath.expect, IPv4Address(HOA), 5.0)
    time.sleep(0.2)
    markers = [f"held{i}-{bed.backend}".encode() for i in range(3)]

    def send_all() -> None:
        for marker in markers:
            send_raw(bed.ha, tunnel_packet(HA, HOA, marker), COA)

    assert not frames(bed.mn, "mn0", b"-" + bed.backend.encode(), send_all)
    released = frames(
        bed.mn,
        "mn0",
        bed.backend.encode(),
        lambda: loop.call_soon_threadsafe(bed.datapath.attach, IPv4Address(HOA)),
    )
    held = [m for frame in released for m in markers if m in frame]
    assert held == markers, released


def _send_frame(bed: Bed, packet: bytes) -> None:
    """``packet`` from the HA's interface to the FA's, exactly as built (AF_PACKET: no checksum filled in)."""
    destination, source = mac_of(bed.fa, "fa-net"), mac_of(bed.ha, "ha0")
    with bed.ha.entered():
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    with sock:
        sock.bind(("ha0", 0))
        sock.send(destination + source + b"\x08\x00" + packet)


def _with_checksum(header: bytearray) -> bytearray:
    header[10:12] = bytes(2)
    header[10:12] = internet_checksum(bytes(header[: (header[0] & 0x0F) * 4])).to_bytes(2, "big")
    return header


DAMAGE = ["inner checksum", "inner length too big", "inner IHL beyond the length", "outer checksum"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_header_never_reaches_the_visitors_link_rfc1812_5_2_2(bed: Bed, damage: str) -> None:
    """RFC 1812 §5.2.2: the FA forwards the inner packet onto the access link without the kernel's IP input
    checks, so it makes them: an inner header that does not verify is dropped as malformed (counted and
    reported), and a damaged outer header is dropped as the kernel drops it for any packet."""
    marker = f"damaged-{damage}-{bed.backend}".encode()
    inner = bytearray(ipv4_packet(IPv4Address(CN), IPv4Address(HOA), socket.IPPROTO_UDP,
                                  udp_datagram(5000, 9, marker), 64))  # fmt: skip
    if damage == "inner checksum":
        inner[10] ^= 0xFF
    elif damage == "inner length too big":
        inner[2:4] = (len(inner) + 8).to_bytes(2, "big")
        _with_checksum(inner)
    elif damage == "inner IHL beyond the length":
        inner[0] = 0x4F
        inner[10:12] = bytes(2)
        inner[10:12] = internet_checksum(bytes(inner[:20])).to_bytes(2, "big")
    outer = bytearray(ipv4_packet(IPv4Address(HA), IPv4Address(COA), 4, bytes(inner), 64))
    if damage == "outer checksum":
        outer[10] ^= 0xFF
    before, reports = counters(bed)["drops"], len(bed.drops)
    assert isinstance(before, dict)
    seen = frames(bed.mn, "mn0", marker, lambda: _send_frame(bed, bytes(outer)))
    assert not seen, f"{bed.backend}: {damage}: delivered onto the visitor's link"
    after = counters(bed)["drops"]
    assert isinstance(after, dict)
    if damage.startswith("inner"):
        assert after.get("malformed", 0) == before.get("malformed", 0) + 1, after
        assert wait_until(lambda: len(bed.drops) > reports, 2.0)
        assert bed.drops[-1].reason is DropReason.MALFORMED
    else:
        assert after == before and len(bed.drops) == reports  # the kernel's drop, as without our datapath


def test_an_intact_frame_sent_the_same_way_is_delivered(bed: Bed) -> None:
    """The control for the test above: the same frame, undamaged, reaches the visitor's link."""
    marker = f"intact-frame-{bed.backend}".encode()
    seen = frames(bed.mn, "mn0", marker, lambda: _send_frame(bed, tunnel_packet(HA, HOA, marker)))
    assert len(seen) == 1


def test_a_frame_to_another_link_address_is_not_tunnelled(bed: Bed) -> None:
    """A visitor's frame addressed to another router's MAC (right after a move the MN still sends to its
    previous FA's until its route changes, and the bridge floods it to every port, issue 14): the stack
    drops it (PACKET_OTHERHOST), so neither backend may reverse-tunnel it under a visitor entry."""
    marker = f"otherhost-{bed.backend}".encode()
    packet = ipv4_packet(
        IPv4Address(HOA), IPv4Address(CN), socket.IPPROTO_UDP, udp_datagram(5000, 9, marker), 64
    )

    def send() -> None:
        with bed.mn.entered():
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
        with sock:
            sock.sendto(packet, ("mn0", 0x0800, 0, 0, bytes.fromhex("020000000099")))

    assert not frames(bed.ha, "ha0", marker, send)
    # the same payload to the FA's own link-layer address is tunnelled: the check is the address
    seen = frames(bed.ha, "ha0", marker, lambda: visitor_send(bed, HOA, marker))
    assert len(seen) == 1
