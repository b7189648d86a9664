"""Namespaces for a mobile node that moves between its home link and two foreign agents (issue 4).

```
   cn (203.0.113.10, 2001:db8:ff::10)
    │ cn0 / r-cn (203.0.113.1, 2001:db8:ff::1)
   r ── r-home (192.0.2.254, 2001:db8:0:1::fe) ─┐        home link 192.0.2.0/24, 2001:db8:0:1::/64
    │                                  ha-home: ha (192.0.2.1, 2001:db8:0:1::1) ─┤  = bridge br-h in acc
    ├── r-fa1 (198.51.100.1/26) ── fa1-net (198.51.100.2 = CoA 1): fa1 ── fa1-acc (10.0.1.1/24) ─ br-a
    └── r-fa2 (198.51.100.65/26) ── fa2-net (198.51.100.66 = CoA 2): fa2 ── fa2-acc (10.0.2.1/24) ─ br-b
   mn: mn-eth (peer a-mn in acc, on br-h, br-a or br-b), HoA 192.0.2.10, prefix 2001:db8:10::/48
```
The MN owns no address of its own on a visited link: it hears the FA's advertisements, registers through
it (RFC 5944 §3.6.1.1), and uses the FA as its default router. IPv6 stays IPv6-in-IPv4 between HoA and HA
(RFC 5454 §3.3.2), so the FAs only ever carry IPv4. At home it hears the HA's advertisements (H bit) and
uses its home address and its prefix natively. A move re-attaches a-mn to another bridge.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.netns.agents_testbed import KEY1, KEY3, AgentBed
from tests.netns.conftest import NamespaceFactory, veth, wait_until

AGENTS = ("mn", "fa1", "fa2", "ha")
NAMESPACES = ("r", "ha", "fa1", "fa2", "acc", "cn", "mn")
BRIDGES = {"home": "br-h", "fa1": "br-a", "fa2": "br-b"}

HOA, MN_V6 = "192.0.2.10", "2001:db8:10::c000:20a"
HOA2 = "192.0.2.30"
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

[[home_agent.mobile_nodes]]  # registered by hand in tests (encapsulating delivery style)
home_address = "{HOA2}"
spi = 258
key = "{KEY3}"

[runtime]
name = "ha"
home_interface = "ha-home"
tunnel_interface = "mip-ha"

[runtime.advertisement]
advertise_home = true
max_interval = 0.5
router_addresses = ["192.0.2.1/24"]
prefix_lengths = true
"""


def fa_config(name: str, care_of: str, datapath: str = "userspace") -> str:
    access = f"10.0.{name[-1]}.1/24"
    return f"""
[foreign_agent]
care_of_addresses = ["{care_of}"]
max_lifetime = 600
encapsulations = ["ipip"]

[foreign_agent.advertisement]
max_interval = 0.5
router_addresses = ["{access}"]
prefix_lengths = true

[runtime]
name = "{name}"
access_interface = "{name}-acc"
network_interface = "{name}-net"
datapath = "{datapath}"
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
home_prefix_length = 24
home_gateway = "192.0.2.254"
home_ipv6_gateway = "2001:db8:0:1::fe"
"""


def build(bed: AgentBed, start: str = "fa1") -> None:
    """Wire the namespaces; the MN's link starts on the bridge of ``start`` (home, fa1 or fa2)."""
    for namespace in bed.namespaces.values():
        namespace.run("sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0")
    r, ha, cn, acc = bed["r"], bed["ha"], bed["cn"], bed["acc"]
    r.run("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
    veth(r, "r-home", acc, "a-rh")
    veth(ha, "ha-home", acc, "a-ha")
    veth(r, "r-cn", cn, "cn0")
    veth(acc, "a-mn", bed["mn"], "mn-eth")
    for bridge in BRIDGES.values():
        acc.run(f"ip link add {bridge} type bridge && ip link set {bridge} up")
    acc.run("ip link set a-rh master br-h && ip link set a-ha master br-h")
    acc.run(f"ip link set a-mn master {BRIDGES[start]}")
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


def make_bed(namespaces: NamespaceFactory, workdir: Path, start: str) -> AgentBed:
    testbed = AgentBed({name: namespaces() for name in NAMESPACES}, workdir)
    build(testbed, start)
    return testbed


def start_agents(bed: AgentBed, fa_datapath: str = "userspace") -> None:
    bed.start_agent("ha", "ha", "ha", HA_CONFIG)
    bed.start_agent("fa1", "fa", "fa1", fa_config("fa1", COA, fa_datapath))
    bed.start_agent("fa2", "fa", "fa2", fa_config("fa2", COA2, fa_datapath))
    # with the ebpf FA, the MN's own tc program builds its tunnel packets: the FA then meets packets that
    # already carry the kernel's encapsulation marks (its reverse tunnel must still add a header)
    mn_config = MN_CONFIG if fa_datapath == "userspace" else MN_CONFIG + f'datapath = "{fa_datapath}"\n'
    bed.start_agent("mn", "mn", "mn", mn_config)


def stop_agents(bed: AgentBed) -> dict[str, int]:
    return {name: bed.agents[name].stop() for name in AGENTS if name in bed.agents}


def move(bed: AgentBed, to: str, *, link_event: bool = True) -> None:
    """Re-attach the MN's link to the bridge of ``to``; with ``link_event`` the carrier drops meanwhile."""
    acc, bridge = bed["acc"], BRIDGES[to]
    if link_event:
        acc.run(f"ip link set a-mn down && ip link set a-mn nomaster && ip link set a-mn master {bridge}")
        acc.run("ip link set a-mn up")
    else:
        acc.run(f"ip link set a-mn nomaster && ip link set a-mn master {bridge}")


def care_of(bed: AgentBed) -> str | None:
    """The care-of address of the HA's binding for the MN, or None without a binding."""
    binding = next((b for b in bed.agents["ha"].ask("bindings") if b["home_address"] == HOA), None)
    if binding is None:
        return None
    care_ofs = [str(entry["care_of"]) for entry in binding["care_ofs"]]
    assert len(care_ofs) == 1, binding  # no simultaneous bindings requested
    return care_ofs[0]


@contextmanager
def agents_running(bed: AgentBed, fa_datapath: str = "userspace") -> Iterator[AgentBed]:
    """Start the agents (the FAs with ``fa_datapath``); stop them by their own handles on the way out."""
    try:
        start_agents(bed, fa_datapath)
        yield bed
    finally:
        stop_agents(bed)
