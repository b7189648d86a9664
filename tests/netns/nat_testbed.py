"""A real-namespace testbed for RFC 3519 NAT traversal (no Mininet): a mobile node behind a real iptables
MASQUERADE, its home agent and a correspondent.

```
   cn (203.0.113.10, 2001:db8:ff::10)
    │
   r ──── r-home (192.0.2.254, 2001:db8:0:1::fe) ──── ha (192.0.2.1, 2001:db8:0:1::1)
    │ r-nat (198.51.100.1)
    │
   nat-pub (198.51.100.66)  nat: MASQUERADE out of nat-pub
   nat-priv (192.168.1.1)
    │
   mn-eth (192.168.1.10): mn, HoA 192.0.2.10, prefix 2001:db8:10::/48, udp_tunnelling = auto
```
The HA also knows a second mobile node (HoA 192.0.2.20, prefix 2001:db8:20::/48) that has no agent.
The keepalive interval K is 1 s (test setting; the RFC's default is 110 s).
"""

from __future__ import annotations

from pathlib import Path

from tests.netns.agents_testbed import KEY1, KEY2, AgentBed
from tests.netns.conftest import NamespaceFactory, veth

NAT_PUBLIC, MN_PRIVATE = "198.51.100.66", "192.168.1.10"
HOA, MN_V6 = "192.0.2.10", "2001:db8:10::c000:20a"
HOA2, PREFIX2 = "192.0.2.20", "2001:db8:20::/48"
"""A second mobile node's account (no agent: a test registers it by hand from the correspondent)."""

HA_CONFIG = f"""
[home_agent]
address = "192.0.2.1"
home_network = "192.0.2.0/24"
max_lifetime = 60
keepalive_interval = 1

[[home_agent.mobile_nodes]]
home_address = "{HOA}"
spi = 256
key = "{KEY1}"
allowed_prefixes = ["2001:db8:10::/48"]

[[home_agent.mobile_nodes]]
home_address = "{HOA2}"
spi = 257
key = "{KEY2}"
allowed_prefixes = ["{PREFIX2}"]

[runtime]
name = "ha"
home_interface = "ha-home"
tunnel_interface = "mip-ha"
"""

MN_CONFIG = f"""
[mobile_node]
home_address = "{HOA}"
home_agent = "192.0.2.1"
spi = 256
key = "{KEY1}"
lifetime = 60
prefixes = ["2001:db8:10::/48"]
udp_tunnelling = "auto"
keepalive_attempts = 2

[runtime]
name = "mn"
interface = "mn-eth"
tunnel_interface = "mip0"
"""


def build(factory: NamespaceFactory, workdir: Path) -> AgentBed:
    bed = AgentBed({name: factory() for name in ("r", "ha", "cn", "nat", "mn")}, workdir)
    for namespace in bed.namespaces.values():
        namespace.run("sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0")
    r, nat = bed["r"], bed["nat"]
    r.run("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
    veth(r, "r-home", bed["ha"], "ha-home")
    veth(r, "r-cn", bed["cn"], "cn0")
    veth(r, "r-nat", nat, "nat-pub")
    veth(nat, "nat-priv", bed["mn"], "mn-eth")
    r.run(
        "ip addr add 192.0.2.254/24 dev r-home && ip addr add 2001:db8:0:1::fe/64 dev r-home nodad && "
        "ip addr add 203.0.113.1/24 dev r-cn && ip addr add 2001:db8:ff::1/64 dev r-cn nodad && "
        "ip addr add 198.51.100.1/24 dev r-nat && ip -6 route add 2001:db8:10::/48 via 2001:db8:0:1::1"
    )
    bed["ha"].run(
        "ip addr add 192.0.2.1/24 dev ha-home && ip addr add 2001:db8:0:1::1/64 dev ha-home nodad && "
        "ip route add default via 192.0.2.254 && ip -6 route add default via 2001:db8:0:1::fe"
    )
    bed["cn"].run(
        "ip addr add 203.0.113.10/24 dev cn0 && ip addr add 2001:db8:ff::10/64 dev cn0 nodad && "
        "ip route add default via 203.0.113.1 && ip -6 route add default via 2001:db8:ff::1"
    )
    nat.run(
        f"sysctl -qw net.ipv4.ip_forward=1 && ip addr add {NAT_PUBLIC}/24 dev nat-pub && "
        "ip addr add 192.168.1.1/24 dev nat-priv && ip route add default via 198.51.100.1 && "
        "iptables -t nat -A POSTROUTING -o nat-pub -j MASQUERADE"
    )
    bed["mn"].run(f"ip addr add {MN_PRIVATE}/24 dev mn-eth && ip route add default via 192.168.1.1")
    return bed
