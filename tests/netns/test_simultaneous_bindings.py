"""Simultaneous bindings end to end (RFC 5944 §3.6.1.3, §3.8.3; RFC 5454 §3.3): the real home agent,
a mobile node with two interfaces on two visited networks, co-located care-of addresses A and B.

The mobile node registers A, then B with S set (make-before-break): the HA keeps both and sends a copy
of every IPv4 packet for the home address and every IPv6 packet for the registered prefix to each
care-of address, so the node sees each probe twice during the overlap (exactly once on each link: the
captures count every copy). Deregistering A (Lifetime 0, Care-of Address A) removes that binding only;
afterwards each probe arrives once, at B. The same test runs against every datapath backend available
here (userspace, ebpf); the kernel backend refuses simultaneous bindings
(tests/unit/test_datapath_selection.py).

```
   cn ── r ── ha (home link 192.0.2.0/24)
         ├── mn-a 198.51.100.10/24  (visited network A)
         └── mn-b 198.51.101.10/24  (visited network B)     one mobile node namespace, two links
```
The test is the mobile node's signalling (our codec and authenticator, sent from inside its namespace);
the captures read what the kernel put on each of its interfaces.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from agents.mip.wire.auth import SecurityAssociation
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.dsmip import PrefixRequest
from agents.mip.wire.identification import timestamp_identification
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest, build_request
from tests.netns.agents_testbed import HA_CONFIG, KEY1, AgentBed
from tests.netns.conftest import Namespace, NamespaceFactory, capture, veth
from tests.support.kernel import DATAPATH_BACKENDS

pytestmark = pytest.mark.root

HOA = IPv4Address("192.0.2.10")
HA = IPv4Address("192.0.2.1")
COA_A, COA_B = IPv4Address("198.51.100.10"), IPv4Address("198.51.101.10")
PREFIX = IPv6Network("2001:db8:10::/48")
MN6 = IPv6Address("2001:db8:10::10")
PROBE_PORT = 9999
MAGIC = b"SBIC"


BACKENDS = DATAPATH_BACKENDS


@pytest.fixture(params=BACKENDS)
def bed(request: pytest.FixtureRequest, namespaces: NamespaceFactory, tmp_path: Path) -> Iterator[AgentBed]:
    names = ["r", "ha", "mn", "cn"]
    bed = AgentBed({name: namespaces() for name in names}, tmp_path)
    for namespace in bed.namespaces.values():
        namespace.run("sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0")
    r, mn = bed["r"], bed["mn"]
    r.run("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
    veth(r, "r-home", bed["ha"], "ha-home")
    veth(r, "r-cn", bed["cn"], "cn0")
    veth(r, "r-a", mn, "mn-a")
    veth(r, "r-b", mn, "mn-b")
    r.run(
        "ip addr add 192.0.2.254/24 dev r-home && ip addr add 2001:db8:0:1::fe/64 dev r-home nodad && "
        "ip addr add 203.0.113.1/24 dev r-cn && ip addr add 2001:db8:ff::1/64 dev r-cn nodad && "
        "ip addr add 198.51.100.1/24 dev r-a && ip addr add 198.51.101.1/24 dev r-b && "
        "ip -6 route add 2001:db8:10::/48 via 2001:db8:0:1::1"
    )
    bed["ha"].run(
        "ip addr add 192.0.2.1/24 dev ha-home && ip addr add 2001:db8:0:1::1/64 dev ha-home nodad && "
        "ip route add default via 192.0.2.254 && ip -6 route add default via 2001:db8:0:1::fe"
    )
    bed["cn"].run(
        "ip addr add 203.0.113.10/24 dev cn0 && ip addr add 2001:db8:ff::10/64 dev cn0 nodad && "
        "ip route add default via 203.0.113.1 && ip -6 route add default via 2001:db8:ff::1"
    )
    # each care-of address leaves through its own link (source routing, as a multi-homed host does)
    mn.run(
        "ip addr add 198.51.100.10/24 dev mn-a && ip addr add 198.51.101.10/24 dev mn-b && "
        "ip route add default via 198.51.100.1 dev mn-a && "
        "ip route add default via 198.51.101.1 dev mn-b table 102 && "
        "ip rule add from 198.51.101.10 lookup 102 priority 1000"
    )
    config = HA_CONFIG.replace('datapath = "auto"', f'datapath = "{request.param}"')
    # no RFC 3519 UDP tunnels, no minimal encapsulation (the ebpf datapath carries neither; none is used)
    plain = 'max_lifetime = 600\nudp_tunnelling = false\nencapsulations = ["ipip", "gre"]\n'
    config = config.replace("max_lifetime = 600\n", plain)
    assert f'datapath = "{request.param}"' in config and "udp_tunnelling = false" in config
    bed.start_agent("ha", "ha", "ha", config)
    try:
        yield bed
    finally:
        bed.stop_all()


class Signalling:
    """The mobile node's registration messages, sent from its namespace (RFC 5944 §3.6.1)."""

    def __init__(self, mn: Namespace) -> None:
        self.association = SecurityAssociation(256, bytes.fromhex(KEY1))
        self.rng = random.Random(7)
        self.mn = mn
        self.last = 0

    def register(self, care_of: IPv4Address, lifetime: int, flags: RegistrationFlag) -> RegistrationReply:
        identification = timestamp_identification(time.time(), self.rng.getrandbits(32))
        identification = max(identification, self.last + 1)
        self.last = identification
        extensions = (PrefixRequest.for_network(PREFIX),) if lifetime else ()
        request = RegistrationRequest(flags, lifetime, HOA, HA, care_of, identification, extensions)
        with self.mn.entered():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((str(care_of), 0))
            sock.settimeout(3.0)
            sock.sendto(build_request(request, self.association), (str(HA), 434))
            data, _ = sock.recvfrom(4096)
        finally:
            sock.close()
        return RegistrationReply.decode(data)


def send_probes(cn: Namespace, first: int, count: int) -> None:
    """``count`` UDP probes to the home address and as many to the MN's address in its prefix."""
    with cn.entered():
        v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        for seq in range(first, first + count):
            payload = MAGIC + struct.pack("!I", seq)
            v4.sendto(payload, (str(HOA), PROBE_PORT))
            v6.sendto(payload, (str(MN6), PROBE_PORT))
            time.sleep(0.002)
    finally:
        v4.close()
        v6.close()


def tunnelled_probes(frames: list[bytes], care_of: IPv4Address) -> dict[int, Counter[int]]:
    """Family → how often each probe seq was found in IP-in-IP packets from the HA to ``care_of`` (IPv6 for
    the prefix rides IPv6-in-IPv4 to the home address inside that tunnel: RFC 5454 §3.3.2, code 0)."""
    seen: dict[int, Counter[int]] = {4: Counter(), 6: Counter()}
    for packet in frames:
        outer = (packet[12:16], packet[16:20])
        if len(packet) < 40 or packet[9] != 4 or outer != (HA.packed, care_of.packed):
            continue
        inner = packet[(packet[0] & 0x0F) * 4 :]
        header = (inner[0] & 0x0F) * 4
        if inner[9] == 17 and inner[16:20] == HOA.packed:
            body = inner[header + 8 :]
            family = 4
        elif inner[9] == 41 and len(inner) >= header + 48:
            ipv6 = inner[header:]
            body = ipv6[48:] if ipv6[6] == 17 else b""
            family = 6
        else:
            continue
        if body[:4] == MAGIC and len(body) >= 8:
            seen[family][struct.unpack("!I", body[4:8])[0]] += 1
    return seen


def test_s_bicasts_to_both_care_of_addresses_until_the_old_one_is_removed_rfc5944_3_6_1_3(
    bed: AgentBed,
) -> None:
    mn, cn, ha = bed["mn"], bed["cn"], bed.agents["ha"]
    signalling = Signalling(mn)
    colocated = RegistrationFlag.D | RegistrationFlag.S
    assert signalling.register(COA_A, 60, colocated).code == 0
    assert signalling.register(COA_B, 60, colocated).code == 0  # make-before-break: A kept
    [binding] = ha.ask("bindings")
    assert sorted(entry["care_of"] for entry in binding["care_ofs"]) == [str(COA_A), str(COA_B)]

    with capture(mn, "mn-a") as on_a, capture(mn, "mn-b") as on_b:
        send_probes(cn, 0, 50)
    overlap_a, overlap_b = tunnelled_probes(on_a, COA_A), tunnelled_probes(on_b, COA_B)
    once = Counter(range(50))
    for family in (4, 6):  # a copy to each care-of address: every probe exactly twice at the mobile node
        assert overlap_a[family] == overlap_b[family] == once, family

    assert signalling.register(COA_A, 0, colocated).code == 0  # Lifetime 0 for A only (§3.8.3)
    [binding] = ha.ask("bindings")
    assert [entry["care_of"] for entry in binding["care_ofs"]] == [str(COA_B)]

    with capture(mn, "mn-a") as on_a, capture(mn, "mn-b") as on_b:
        send_probes(cn, 100, 50)
    after_a, after_b = tunnelled_probes(on_a, COA_A), tunnelled_probes(on_b, COA_B)
    for family in (4, 6):  # no duplicates once the old binding is gone
        assert after_a[family] == Counter(), family
        assert after_b[family] == Counter(range(100, 150)), family
