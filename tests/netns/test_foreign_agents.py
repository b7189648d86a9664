"""A dual-stack mobile node registering through a foreign agent (issue 4), real processes in real namespaces.

```
   cn (203.0.113.10, 2001:db8:ff::10)
    │ cn0 / r-cn (203.0.113.1, 2001:db8:ff::1)
   r ──── r-home (192.0.2.254, 2001:db8:0:1::fe) ──── ha-home: ha (192.0.2.1), home link 192.0.2.0/24
    ├── r-fa1 (198.51.100.1/26) ── fa1-net (198.51.100.2 = CoA 1): fa1 ── fa1-acc (10.0.1.1/24) ─┐
    └── r-fa2 (198.51.100.65/26) ── fa2-net (198.51.100.66 = CoA 2): fa2 ── fa2-acc (10.0.2.1/24) ─┤
   acc: bridges br-a (a-fa1, a-mn) and br-b (a-fa2): visited links A and B ────────────────────────┘
   mn: mn-eth (peer a-mn), HoA 192.0.2.10, prefix 2001:db8:10::/48
```
The MN has no address of its own on a visited link: it hears the FA's advertisements, registers through
it (RFC 5944 §3.6.1.1), and uses the FA as its default router. IPv6 stays IPv6-in-IPv4 between HoA and HA
(RFC 5454 §3.3.2), so the FAs only ever carry IPv4. The move re-attaches a-mn from br-a to br-b.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from agents.mip.auth import SecurityAssociation
from agents.mip.codes import RegistrationFlag, ReplyCode
from agents.mip.registration import RegistrationReply, RegistrationRequest, build_request
from tests.netns.agents_testbed import KEY1, AgentBed
from tests.netns.conftest import NamespaceFactory, capture, ping, veth, wait_until

pytestmark = pytest.mark.root
AGENTS = ("mn", "fa1", "fa2", "ha")

HOA, MN_V6 = "192.0.2.10", "2001:db8:10::c000:20a"
CN4, CN6 = "203.0.113.10", "2001:db8:ff::10"
HA, COA, COA2 = "192.0.2.1", "198.51.100.2", "198.51.100.66"

HA_CONFIG = f"""
[home_agent]
address = "{HA}"
home_network = "192.0.2.0/24"
max_lifetime = 600

[[home_agent.mobile_nodes]]
home_address = "{HOA}"
spi = 256
key = "{KEY1}"
allowed_prefixes = ["2001:db8:10::/48"]

[runtime]
name = "ha"
home_interface = "ha-home"
tunnel_interface = "mip-ha"
"""


def fa_config(name: str, care_of: str) -> str:
    return f"""
[foreign_agent]
care_of_addresses = ["{care_of}"]
max_lifetime = 600
encapsulations = ["ipip"]

[foreign_agent.advertisement]
max_interval = 0.5

[runtime]
name = "{name}"
access_interface = "{name}-acc"
network_interface = "{name}-net"
"""


MN_CONFIG = f"""
[mobile_node]
home_address = "{HOA}"
home_agent = "{HA}"
spi = 256
key = "{KEY1}"
lifetime = 120
prefixes = ["2001:db8:10::/48"]
care_of_mode = "foreign-agent"

[runtime]
name = "mn"
interface = "mn-eth"
tunnel_interface = "mip0"
"""


def build(bed: AgentBed) -> None:
    for namespace in bed.namespaces.values():
        namespace.run("sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0")
    r, ha, cn, acc = bed["r"], bed["ha"], bed["cn"], bed["acc"]
    r.run("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
    veth(r, "r-home", ha, "ha-home")
    veth(r, "r-cn", cn, "cn0")
    veth(acc, "a-mn", bed["mn"], "mn-eth")
    acc.run("ip link add br-a type bridge && ip link add br-b type bridge")
    acc.run("ip link set br-a up && ip link set br-b up && ip link set a-mn master br-a")
    for index, name in ((1, "fa1"), (2, "fa2")):
        veth(r, f"r-{name}", bed[name], f"{name}-net")
        veth(acc, f"a-{name}", bed[name], f"{name}-acc")
        acc.run(f"ip link set a-{name} master br-{'ab'[index - 1]}")
        base = 64 * (index - 1)
        r.run(f"ip addr add 198.51.100.{base + 1}/26 dev r-{name}")
        bed[name].run(
            f"sysctl -qw net.ipv6.conf.all.disable_ipv6=1 && ip addr add 198.51.100.{base + 2}/26 dev "
            f"{name}-net && ip route add default via 198.51.100.{base + 1} && "
            f"ip addr add 10.0.{index}.1/24 dev {name}-acc"
        )
    r.run(
        "ip addr add 192.0.2.254/24 dev r-home && ip addr add 2001:db8:0:1::fe/64 dev r-home nodad && "
        "ip addr add 203.0.113.1/24 dev r-cn && ip addr add 2001:db8:ff::1/64 dev r-cn nodad && "
        "ip -6 route add 2001:db8:10::/48 via 2001:db8:0:1::1"
    )
    ha.run(
        "ip addr add 192.0.2.1/24 dev ha-home && ip addr add 2001:db8:0:1::1/64 dev ha-home nodad && "
        "ip route add default via 192.0.2.254 && ip -6 route add default via 2001:db8:0:1::fe"
    )
    cn.run(
        "ip addr add 203.0.113.10/24 dev cn0 && ip addr add 2001:db8:ff::10/64 dev cn0 nodad && "
        "ip route add default via 203.0.113.1 && ip -6 route add default via 2001:db8:ff::1"
    )
    assert wait_until(lambda: _has_carrier(bed), 5.0)
    time.sleep(0.5)  # the kernel's own link-local addresses settle
    bed.baseline = {name: bed[name].snapshot() for name in AGENTS}


def _has_carrier(bed: AgentBed) -> bool:
    return "NO-CARRIER" not in bed["mn"].run("ip -o link show mn-eth")


@pytest.fixture(scope="module")
def bed(namespaces: NamespaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentBed]:
    names = ("r", "ha", "fa1", "fa2", "acc", "cn", "mn")
    testbed = AgentBed({name: namespaces() for name in names}, tmp_path_factory.mktemp("fa"))
    build(testbed)
    try:
        testbed.start_agent("ha", "ha", "ha", HA_CONFIG)
        testbed.start_agent("fa1", "fa", "fa1", fa_config("fa1", COA))
        testbed.start_agent("fa2", "fa", "fa2", fa_config("fa2", COA2))
        testbed.start_agent("mn", "mn", "mn", MN_CONFIG)
        assert wait_until(lambda: bool(testbed.agents["mn"].events("registration_accepted")), 15.0), (
            testbed.agents["mn"].ask("status"),
            testbed.agents["fa1"].ask("status"),
        )
        yield testbed
    finally:
        for name in AGENTS:
            if name in testbed.agents:
                testbed.agents[name].stop()


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
    assert counters["delivered"] > 0 and counters["reverse_tunnelled"] > 0, counters


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


def care_of(bed: AgentBed) -> str | None:
    binding = next((b for b in bed.agents["ha"].ask("bindings") if b["home_address"] == HOA), None)
    return None if binding is None else str(binding.get("care_of", binding))


def test_move_to_a_second_foreign_agent_restores_both_families(bed: AgentBed) -> None:
    """RFC 5944 §2.4.2: link B carries FA2's advertisements; the MN registers through FA2 and the HA's
    binding moves to FA2's care-of address; traffic flows again both ways for IPv4 and IPv6."""
    acc = bed["acc"]
    acc.run("ip link set a-mn down && ip link set a-mn nomaster && ip link set a-mn master br-b")
    time.sleep(0.6)  # carrier down long enough for the MN's watcher to see it
    acc.run("ip link set a-mn up")
    assert wait_until(lambda: COA2 in str(care_of(bed)), 15.0), (care_of(bed), bed.agents["mn"].ask("status"))
    assert any(v["home_address"] == HOA for v in bed.agents["fa2"].ask("visitors"))
    assert ping(bed["cn"], HOA) and ping(bed["mn"], CN4, source=HOA)
    assert ping(bed["cn"], MN_V6) and ping(bed["mn"], CN6, source=MN_V6)


def test_sigterm_leaves_nothing_behind(bed: AgentBed) -> None:
    codes = {name: bed.agents[name].stop() for name in AGENTS}
    assert codes == dict.fromkeys(AGENTS, 0), codes
    for name in AGENTS:
        assert bed[name].snapshot() == bed.baseline[name], name
