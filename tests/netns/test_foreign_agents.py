"""A dual-stack mobile node registering through a foreign agent (issue 4), real processes in real namespaces.

Topology and configs: :mod:`tests.netns.fa_testbed` (the MN starts on FA1's link here).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from agents.mip.wire.auth import SecurityAssociation
from agents.mip.wire.codes import RegistrationFlag, ReplyCode
from agents.mip.wire.extensions import EncapsulatingDeliveryStyle
from agents.mip.wire.identification import timestamp_identification
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest, build_request
from agents.runtime.roles.fa_access import ipv4_packet, udp_datagram
from tests.netns.agents_testbed import AgentBed
from tests.netns.conftest import NamespaceFactory, capture, ping, wait_until
from tests.netns.fa_testbed import (
    AGENTS,
    CN4,
    CN6,
    COA,
    COA2,
    HA,
    HOA,
    HOA2,
    KEY3,
    MN_V6,
    agents_running,
    care_of,
    make_bed,
    move,
)
from tests.support.kernel import DATAPATH_BACKENDS

pytestmark = pytest.mark.root


@pytest.fixture(scope="module", params=DATAPATH_BACKENDS)
def bed(
    request: pytest.FixtureRequest, namespaces: NamespaceFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentBed]:
    """The whole module once per FA datapath backend (issue 9: one semantics)."""
    testbed = make_bed(namespaces, tmp_path_factory.mktemp("fa"), start="fa1")
    with agents_running(testbed, request.param):
        assert wait_until(lambda: bool(testbed.agents["mn"].events("registration_accepted")), 15.0), (
            testbed.agents["mn"].ask("status"),
            testbed.agents["fa1"].ask("status"),
        )
        selected = testbed.agents["fa1"].events("datapath_selected")
        assert selected and selected[-1]["backend"] == request.param, selected
        yield testbed


def test_registration_goes_through_the_foreign_agent(bed: AgentBed) -> None:
    """RFC 5944 §3.6.1.1, §3.7: the HA's binding holds FA1's care-of address; FA1 lists the visitor."""
    bindings = bed.agents["ha"].ask("bindings")
    assert any(b["home_address"] == HOA and COA in str(b) for b in bindings), bindings
    visitors = bed.agents["fa1"].ask("visitors")
    assert any(v["home_address"] == HOA for v in visitors), visitors
    relayed = bed.agents["fa1"].events("fa_rrq_relayed")
    assert relayed and relayed[-1]["link_address"] is not None
    assert f"from {HOA} iif fa1-acc lookup 110" in bed["fa1"].run("ip rule show")  # RFC 3024 §5.1


def test_ipv4_both_ways(bed: AgentBed) -> None:
    """HA → FA1 IP-in-IP, FA1 delivers to the MN's MAC (RFC 5944 §4.2.2); the reply is reverse tunnelled
    by FA1 (RFC 3024 §5.1)."""
    assert ping(bed["cn"], HOA)
    assert ping(bed["mn"], CN4, source=HOA)
    counters = bed.agents["fa1"].ask("status")["datapath"]
    assert counters["decapsulated_packets"] > 0 and counters["encapsulated_packets"] > 0, counters


def test_ipv6_both_ways(bed: AgentBed) -> None:
    """RFC 5454 §3.3.2 code 0: IPv6-in-IPv4 between HoA and HA, tunnelled again between HA and FA1."""
    assert ping(bed["cn"], MN_V6)
    assert ping(bed["mn"], CN6, source=MN_V6)


def test_wire_shows_ipv6_in_ipv4_in_ipv4_and_never_native_ipv6(bed: AgentBed) -> None:
    with capture(bed["fa1"], "fa1-net") as network, capture(bed["fa1"], "fa1-acc") as access:
        assert ping(bed["cn"], MN_V6)
        assert ping(bed["mn"], CN6, source=MN_V6)
    hoa, ha, coa = socket.inet_aton(HOA), socket.inet_aton(HA), socket.inet_aton(COA)
    forward = [p for p in network if p[0] >> 4 == 4 and p[9] == 4 and p[12:16] == ha and p[16:20] == coa]
    assert any(p[20 + 9] == 41 and p[36:40] == hoa and p[40] >> 4 == 6 for p in forward)
    reverse = [p for p in network if p[0] >> 4 == 4 and p[9] == 4 and p[12:16] == coa and p[16:20] == ha]
    assert any(p[20 + 9] == 41 and p[32:36] == hoa for p in reverse)
    to_mn = [p for p in access if p[0] >> 4 == 4 and p[9] == 41 and p[16:20] == hoa]
    assert to_mn and all(p[20] >> 4 == 6 for p in to_mn)
    native_global_ipv6 = [p for p in network + access if p[0] >> 4 == 6 and p[8] & 0xE0 == 0x20]
    assert not native_global_ipv6  # link-local neighbour discovery of the MN's own link may appear


def test_advertisements_and_solicitations(bed: AgentBed) -> None:
    """FA1 advertises with TTL 1 (RFC 5944 §2.1); the MN discovered it."""
    with capture(bed["mn"], "mn-eth") as seen:
        assert wait_until(lambda: any(p[9] == 1 and p[20] == 9 for p in seen), 3.0)
    advertisements = [p for p in seen if p[0] >> 4 == 4 and p[9] == 1 and p[20] == 9]
    assert all(p[8] == 1 for p in advertisements)
    assert bed.agents["mn"].events("agent_discovered")


def test_reverse_tunnel_request_with_ttl_below_255_is_denied_76(bed: AgentBed) -> None:
    """RFC 3024 §4.2.1: the FA reads each request's IP TTL; T with TTL ≠ 255 is denied with 76."""
    request = RegistrationRequest(
        RegistrationFlag.T, 60, IPv4Address("192.0.2.30"), IPv4Address(HA), IPv4Address(COA), 7
    )
    wire = build_request(request, SecurityAssociation(258, bytes(16)))
    with bed["mn"].entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((HOA, 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)
        sock.settimeout(3.0)
        sock.sendto(wire, ("10.0.1.1", 434))
        reply = RegistrationReply.decode(sock.recvfrom(65535)[0])
    assert reply.code == ReplyCode.FA_MOBILE_NODE_TOO_DISTANT


def test_encapsulating_delivery_style_rfc3024_5_2(bed: AgentBed) -> None:
    """A visitor that asked for the Encapsulating Delivery Style (extension 130, RFC 3024 §3.3) tunnels its
    packets to the FA; the FA decapsulates them (inner source = the home address, §5.2.2) and reverse
    tunnels them to the HA, which delivers them to the CN. A visitor registered with direct delivery gets
    no such service."""
    mn, cn = bed["mn"], bed["cn"]
    mn.run(f"ip addr add {HOA2}/32 dev mn-eth")
    try:
        request = RegistrationRequest(
            RegistrationFlag.T,
            60,
            IPv4Address(HOA2),
            IPv4Address(HA),
            IPv4Address(COA),
            timestamp_identification(time.time(), 99),
        )
        wire = build_request(
            request, SecurityAssociation(258, bytes.fromhex(KEY3)), [EncapsulatingDeliveryStyle()]
        )
        with mn.entered():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tunnel = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IPIP)
        with sock, tunnel:
            sock.bind((HOA2, 0))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)  # RFC 3024 §4.2.1
            sock.settimeout(3.0)
            sock.sendto(wire, ("10.0.1.1", 434))
            assert RegistrationReply.decode(sock.recvfrom(65535)[0]).code == ReplyCode.ACCEPTED
            visitor = next(v for v in bed.agents["fa1"].ask("visitors") if v["home_address"] == HOA2)
            assert visitor["delivery_style"] == "encapsulating"
            tunnel.bind((HOA2, 0))
            with capture(cn, "cn0") as seen:
                for source in (HOA2, HOA):  # HoA: a visitor with direct delivery, must be dropped
                    tunnel.sendto(udp_packet(source, CN4, b"encapsulated"), ("10.0.1.1", 0))
                assert wait_until(lambda: any(b"encapsulated" in p for p in seen), 3.0)
            arrived = [
                p for p in seen if p[9] == socket.IPPROTO_UDP and b"encapsulated" in p
            ]  # not ICMP errors
            assert {IPv4Address(p[12:16]) for p in arrived} == {IPv4Address(HOA2)}
        counters = bed.agents["fa1"].ask("status")["datapath"]
        assert counters["encapsulated_packets"] >= 1, counters
        assert counters["drops"].get("inner_source", 0) >= 1, counters  # HOA's packet in HOA2's tunnel
    finally:
        mn.run(f"ip addr del {HOA2}/32 dev mn-eth")


def test_a_home_address_that_is_not_a_visitor_is_not_forwarded_natively(bed: AgentBed) -> None:
    """Ingress filtering on the access link: packets from outside the visited network are routed only for
    registered visitors (into their reverse tunnel, RFC 3024 §5.1); an unregistered home address, e.g. a
    mobile node whose registration is still under way, gets nothing through the FA natively."""
    mn = bed["mn"]
    stranger = "192.0.2.31"
    mn.run(f"ip addr add {stranger}/32 dev mn-eth")
    try:
        with mn.entered():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock, capture(bed["fa1"], "fa1-net") as network, capture(bed["cn"], "cn0") as arrived:
            sock.bind((stranger, 0))
            for _ in range(5):
                sock.sendto(b"not a visitor", (CN4, 9))
            assert ping(mn, CN4, source=HOA)  # the visitor itself still gets through its reverse tunnel
            time.sleep(0.2)
        assert not [p for p in network + arrived if b"not a visitor" in p]
        rules = bed["fa1"].run("ip rule show")
        assert "from 10.0.1.0/24 iif fa1-acc lookup main" in rules and "iif fa1-acc blackhole" in rules
    finally:
        mn.run(f"ip addr del {stranger}/32 dev mn-eth")


def test_move_to_a_second_foreign_agent_restores_both_families(bed: AgentBed) -> None:
    """RFC 5944 §2.4.2: link B carries FA2's advertisements; the MN registers through FA2 and the HA's
    binding moves to FA2's care-of address; traffic flows again both ways for IPv4 and IPv6."""
    move(bed, "fa2")
    assert wait_until(lambda: COA2 in str(care_of(bed)), 15.0), (care_of(bed), bed.agents["mn"].ask("status"))
    assert any(v["home_address"] == HOA for v in bed.agents["fa2"].ask("visitors"))
    assert ping(bed["cn"], HOA) and ping(bed["mn"], CN4, source=HOA)
    assert ping(bed["cn"], MN_V6) and ping(bed["mn"], CN6, source=MN_V6)


def test_sigterm_leaves_nothing_behind(bed: AgentBed) -> None:
    codes = {name: bed.agents[name].stop() for name in AGENTS}
    assert codes == dict.fromkeys(AGENTS, 0), codes
    for name in AGENTS:
        assert bed[name].snapshot() == bed.baseline[name], name
    for name in ("fa1", "fa2"):  # ebpf: no filter, no clsact qdisc left
        assert "clsact" not in bed[name].run("tc qdisc show"), name
        for interface in (f"{name}-net", f"{name}-acc"):
            assert not bed[name].run(f"tc filter show dev {interface} ingress").strip(), (name, interface)


def udp_packet(source: str, destination: str, payload: bytes) -> bytes:
    """An IPv4/UDP packet (the inner packet a visitor tunnels to its FA)."""
    datagram = udp_datagram(40000, 9, payload)
    return ipv4_packet(IPv4Address(source), IPv4Address(destination), socket.IPPROTO_UDP, datagram, 64)
