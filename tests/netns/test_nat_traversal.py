"""RFC 3519 NAT traversal with a real iptables MASQUERADE between the mobile node and its home agent
(issue 10): registration in UDP, both families both ways through the NAT, keepalives, spoofed Tunnel
Data dropped, and recovery after the NAT forgets its mapping. Topology: tests/netns/nat_testbed.py."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest

from agents.mip.wire.auth import SecurityAssociation
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.dsmip import PrefixReply, PrefixRequest
from agents.mip.wire.identification import timestamp_identification
from agents.mip.wire.ip import IPV4_HEADER_LENGTH, PROTO_IPIP, PROTO_IPV6, IPv4Header, IPv6Header
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest, build_request, decode_message
from agents.mip.wire.tunnel import encapsulate_udp_tunnel_data
from tests.netns.agents_testbed import KEY2, AgentBed
from tests.netns.conftest import NamespaceFactory, capture, ping, wait_until
from tests.netns.nat_testbed import (
    HA_CONFIG,
    HOA,
    HOA2,
    MN_CONFIG,
    MN_PRIVATE,
    MN_V6,
    NAT_PUBLIC,
    PREFIX2,
    build,
)

pytestmark = [pytest.mark.root]

CN4, CN6, HA = "203.0.113.10", "2001:db8:ff::10", "192.0.2.1"


@pytest.fixture(scope="module")
def bed(namespaces: NamespaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentBed]:
    testbed = build(namespaces, tmp_path_factory.mktemp("nat"))
    try:
        testbed.start_agent("ha", "ha", "ha", HA_CONFIG)
        testbed.start_agent("mn", "mn", "mn", MN_CONFIG)
        assert wait_until(lambda: bool(testbed.agents["mn"].events("registration_accepted")), 10.0)
        yield testbed
    finally:
        for name in ("mn", "ha"):
            if name in testbed.agents:
                testbed.agents[name].stop()


def binding(bed: AgentBed) -> dict[str, object]:
    found = [b for b in bed.agents["ha"].ask("bindings") if b["home_address"] == HOA]
    assert found, "no binding"
    return found[0]["care_ofs"][0]  # type: ignore[no-any-return,index]


def drops(bed: AgentBed) -> dict[str, int]:
    return dict(bed.agents["ha"].ask("status")["datapath"]["drops"])


def test_registered_through_the_nat_in_udp(bed: AgentBed) -> None:
    """RFC 3519 §4.6: the HA saw source ≠ care-of, so the binding is the NAT's public address and the
    port the NAT gave the MN's requests; the MN runs its tunnel in UDP with K from the reply."""
    care_of = binding(bed)
    assert care_of["care_of"] == NAT_PUBLIC and isinstance(care_of["port"], int)
    (tunnel,) = bed.agents["mn"].events("tunnel_up")[-1:]
    assert tunnel["udp_keepalive"] == 1.0 and tunnel["care_of"] == MN_PRIVATE


def test_both_families_both_ways_through_the_nat(bed: AgentBed) -> None:
    """RFC 3519 §3.3 and RFC 5454 §3.9: IPv4 (Next Header 4) and IPv6 (Next Header 41) in UDP."""
    assert ping(bed["cn"], HOA)
    assert ping(bed["mn"], CN4, source=HOA)
    assert ping(bed["cn"], MN_V6)
    assert ping(bed["mn"], CN6, source=MN_V6)


def test_only_udp_tunnel_data_crosses_the_public_side(bed: AgentBed) -> None:
    """On the NAT's public link: UDP to/from port 434, Tunnel Data with Next Header 4 and 41, the NAT's
    address outside and never the private one; no protocol 4/41 packets at all."""
    with capture(bed["r"], "r-nat") as seen:
        assert ping(bed["cn"], HOA) and ping(bed["cn"], MN_V6)
    private = socket.inet_aton(MN_PRIVATE)
    raw_tunnels = [p for p in seen if p[0] >> 4 == 4 and p[9] in (4, 41)]
    assert raw_tunnels == []
    next_headers = set()
    for packet in seen:
        if packet[0] >> 4 != 4 or packet[9] != 17:
            continue
        assert private not in (packet[12:16], packet[16:20])
        ports = struct.unpack("!HH", packet[20:24])
        if 434 in ports and packet[28] == 4:  # MIP Tunnel Data (RFC 3519 §3.3)
            next_headers.add(packet[29])
            assert socket.inet_aton(NAT_PUBLIC) in (packet[12:16], packet[16:20])
    assert next_headers == {4, 41}


def test_keepalives_are_answered(bed: AgentBed) -> None:
    """RFC 3519 §4.9-§4.10: an ICMP Echo Request in UDP to the HA every K s, answered through the tunnel."""
    assert wait_until(lambda: len(bed.agents["mn"].events("keepalive_answered")) >= 2, 5.0)
    assert not bed.agents["mn"].events("keepalive_lost")


def _tunnel_data(source: str) -> bytes:
    echo = b"\x08\x00\x00\x00\x00\x01\x00\x01spoof"
    header = IPv4Header(IPv4Address(source), IPv4Address(CN4), 1, IPV4_HEADER_LENGTH + len(echo))
    return encapsulate_udp_tunnel_data(header.encode() + echo, PROTO_IPIP)


def _tunnel_data_v6(source: str) -> bytes:
    """Tunnel Data, Next Header 41 (RFC 5454 §3.9), an ICMPv6 Echo Request from ``source`` inside."""
    echo = b"\x80\x00\x00\x00\x00\x01\x00\x01spoof"
    header = IPv6Header(IPv6Address(source), IPv6Address(CN6), 58, len(echo))
    return encapsulate_udp_tunnel_data(header.encode() + echo, PROTO_IPV6)


def _register_by_hand(bed: AgentBed, lifetime: int) -> RegistrationReply:
    """The second mobile node (no agent) registers from the correspondent, co-located, no NAT, with its
    prefix: the HA then holds 2001:db8:20::/48 for another home address than the NATed node's."""
    cn = IPv4Address(CN4)
    identification = timestamp_identification(time.time(), 0)
    flags = RegistrationFlag.D | RegistrationFlag.T
    extensions = (PrefixRequest.for_network(IPv6Network(PREFIX2)),) if lifetime else ()
    request = RegistrationRequest(
        flags, lifetime, IPv4Address(HOA2), IPv4Address(HA), cn, identification, extensions
    )
    raw = build_request(request, SecurityAssociation(257, bytes.fromhex(KEY2)))
    with bed["cn"].entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((CN4, 0))
        sock.settimeout(3.0)
        sock.sendto(raw, (HA, 434))
        reply = decode_message(sock.recv(2048))
    assert isinstance(reply, RegistrationReply)
    return reply


def _send_udp(bed: AgentBed, namespace: str, payload: bytes, bind: tuple[str, int]) -> None:
    with bed[namespace].entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(bind)
        for _ in range(5):
            sock.sendto(payload, (HA, 434))


def _send_spoofed(bed: AgentBed, payload: bytes, source: str, port: int) -> None:
    """Five UDP datagrams to the HA from ``source``:``port`` whatever the sender's own address: a raw
    socket in the core router, past the NAT (whose conntrack would otherwise change the port)."""
    udp = struct.pack("!HHHH", port, 434, 8 + len(payload), 0) + payload
    header = IPv4Header(IPv4Address(source), IPv4Address(HA), 17, IPV4_HEADER_LENGTH + len(udp)).encode()
    with bed["r"].entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    with sock:
        for _ in range(5):
            sock.sendto(header + udp, (HA, 0))


def test_spoofed_udp_tunnel_data_is_dropped(bed: AgentBed) -> None:
    """RFC 3519 §4.8: outer address and port must match the binding, the inner source must be the MN's
    (RFC 5454 §3.9 for IPv6: one of its prefixes or its fe80:: address): from the correspondent, from the
    NAT's address with another port, and from the right address and port with a foreign inner source
    (IPv4; IPv6 outside the MN's prefix, in another mobile node's registered prefix, fe80::1): all dropped
    and counted; the security log names the wrong source port."""
    registered = _register_by_hand(bed, 60)  # another MN's prefix, registered at the HA
    granted = [e.code for e in registered.extensions if isinstance(e, PrefixReply)]
    assert registered.code == 0 and granted == [0], registered
    port = int(binding(bed)["port"])  # type: ignore[call-overload]
    wrong = port + 7 if port < 65000 else port - 7
    before = drops(bed)
    _send_spoofed(bed, _tunnel_data(HOA), NAT_PUBLIC, wrong)
    _send_udp(bed, "cn", _tunnel_data(HOA), ("0.0.0.0", 0))
    _send_spoofed(bed, _tunnel_data("10.9.9.9"), NAT_PUBLIC, port)
    for source in ("2001:db8:99::1", "2001:db8:20::1", "fe80::1"):
        _send_spoofed(bed, _tunnel_data_v6(source), NAT_PUBLIC, port)
    time.sleep(0.3)
    after = drops(bed)
    assert after.get("unknown_outer_source", 0) - before.get("unknown_outer_source", 0) == 10
    assert after.get("inner_source", 0) - before.get("inner_source", 0) == 20
    logged = [e for e in bed.agents["ha"].events("security_drop") if e.get("outer_source_port") == wrong]
    assert logged and logged[0]["outer_source"] == NAT_PUBLIC and logged[0]["outer_destination"] == HA
    assert logged[0]["outer_destination_port"] == 434
    assert ping(bed["cn"], HOA) and ping(bed["cn"], MN_V6)  # the real tunnel still works, both families
    assert _register_by_hand(bed, 0).code == 0  # the second node deregisters


def test_a_lost_nat_mapping_is_recovered_on_a_new_port(bed: AgentBed) -> None:
    """The NAT forgets the mapping (conntrack -F) and cannot reuse the port: keepalives go unanswered,
    the MN registers again from a new public port, the HA moves the binding there, traffic resumes."""
    old_port = int(binding(bed)["port"])  # type: ignore[call-overload]
    lost_before = len(bed.agents["mn"].events("keepalive_lost"))
    nat = bed["nat"]
    hold = f"FORWARD -s {MN_PRIVATE} -j DROP"
    with nat.entered():
        squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with squatter:
        squatter.bind((NAT_PUBLIC, old_port))
        nat.run(f"iptables -I {hold}")  # nothing of the MN's crosses while the mapping is replaced
        try:
            nat.run(f"conntrack -D -s {MN_PRIVATE} >/dev/null 2>&1", check=False)
            squatter.sendto(b"\xff", (HA, 434))  # takes the old public port: the NAT must pick another
        finally:
            nat.run(f"iptables -D {hold}")
        moved = wait_until(lambda: binding(bed)["port"] != old_port, 15.0)
        assert moved, binding(bed)
        assert len(bed.agents["mn"].events("keepalive_lost")) > lost_before
        assert wait_until(lambda: ping(bed["cn"], HOA, timeout=0.5, attempts=1), 5.0)
        assert ping(bed["cn"], MN_V6)
