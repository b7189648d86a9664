"""The default testbed topology: a home network, visited networks with foreign agents, a NAT, one core router.

```
                       cn  cn-eth0: 203.0.113.10/26, 2001:db8:ff::10/64   (dual-stack correspondent)
                        │
                        │  r0-cn: 203.0.113.1/26, 2001:db8:ff::1/64
   ┌─────────────────── r0 (core router, IPv4 + IPv6) ───┬────────────────────────┐
   │ r0-home             │ r0-fa1                        │ r0-fa2                 │ r0-nat1
 dshome (home LAN)     fa1-net 198.51.100.2/28         fa2-net 198.51.100.18/28  nat1-pub 203.0.113.66/26
   ├─ ha  ha-eth0        fa1 (IPv4 only, IPv6 off)       fa2 (+ 2001:db8:0:f2::2)  nat1 (MASQUERADE)
   └─ mn1 mn1-eth0       fa1-acc 10.0.1.1/24             fa2-acc 10.0.2.1/24       nat1-priv 192.168.1.1/24
                         │                               │                         │
                       dsa1 (visited A)                dsa2 (visited B)          dspriv (private LAN)

   mn1 has one interface; a move re-attaches its switch-side port dshome-mn1 (root namespace) from one
   bridge to another: dshome ("home"), dsa1 ("fa1"), dsa2 ("fa2"), dspriv ("nat").

   With nat_fa: a foreign agent behind the NAT, fan, with its access side on the private LAN (fan-acc
   192.168.1.2/24) and its network side on a link of its own to nat1 (nat1-fan 192.168.2.1/30, fan-net
   192.168.2.2/30 = its care-of address, default route via nat1). It advertises R and U (RFC 3519 §3.4), so
   the mobile node registers the co-located address the private LAN's DHCP gave it through fan, with the
   R flag (§4.4, §4.11); fan's requests and the mobile node's tunnel leave through the same MASQUERADE,
   as §4.11 requires (one public address for both).

   With colocated_nodes > 0: r0-col 203.0.113.129/26 on bridge dscol, a visited network without a foreign
   agent; each co-located mobile node sits there for the whole run (203.0.113.(129 + i)/26, default route
   via r0) and registers that address as its care-of address.
```

Bridges and switch-side ports are the only names in the root namespace, so they carry the topology's
``tag`` (≤ 3 characters of ``[a-z0-9]``): ``ds<tag>home``, ``ds<tag>a<k>``, ``ds<tag>priv``, ports
``<bridge>-<node>`` (at most 14 characters). Two networks with different tags never touch each other's
links (Mininet's LinuxBridge.start() deletes a bridge of its own name first); the scenarios use
:func:`process_tag`, the default ``""`` gives the names above.

Address plan (documentation ranges, RFC 5737 / RFC 3849, and private ones, RFC 1918):

| link                 | IPv4                                      | IPv6                                 |
|----------------------|-------------------------------------------|--------------------------------------|
| CN LAN r0–cn         | 203.0.113.0/26: r0 .1, cn .10             | 2001:db8:ff::/64: r0 ::1, cn ::10    |
| home LAN (dshome)    | 192.0.2.0/24: r0 .254, ha .1              | 2001:db8:0:1::/64: r0 ::fe, ha ::1   |
| network link r0–fa k | 198.51.100.16(k-1)/28: r0 +1, fa k +2=CoA | even k: 2001:db8:0:f<k:x>::/64 ::1/2 |
| access LAN (dsa k)   | 10.0.k.0/24: fa k .1                      | none (the FAs carry IPv4 only)       |
| NAT link r0–nat1     | 203.0.113.64/26: r0 .65, nat1 .66         | none                                 |
| private LAN (dspriv) | 192.168.1.0/24: nat1 .1 (fan .2, nat_fa)  | none                                 |
| link nat1–fan        | 192.168.2.0/30: nat1 .1, fan .2 = CoA     | none                                 |

Mobile node i (1..25): HoA 192.0.2.(10·i), IPv6 prefix 2001:db8:(10·i)::/48 (with ``prefixes_per_node`` k,
also 2001:db8:(10·i + 1)::/48 ... 2001:db8:(10·i + k - 1)::/48; r0 routes each via the HA,
2001:db8:0:1::1), address ``prefix + ::a.b.c.d`` of the HoA (mn1: 2001:db8:10::c000:20a), SPI 256+i-1, its
own key. Foreign agents k = 1..16; odd k are IPv4-only visited networks with IPv6 disabled, even k dual-stack.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from mininet.topo import Topo

from agents.runtime.scheduling import check_priority
from topologies import addressing as plan
from topologies.agent_configs import (
    AGENT_MAX_LIFETIME,
    DATAPATHS,
    DETECTIONS,
    MOBILE_NODE_LIFETIME,
    foreign_agent_config,
    home_agent_config,
    mobile_node_config,
    nat_foreign_agent_config,
)
from topologies.nodes import AgentHost, RouterHost
from topologies.overrides import Override, apply_overrides
from topologies.spec import InterfaceSpec, MobileLink, NodeSpec, Route

FORWARDING = {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
NO_DAD = {"net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0"}
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
HOME_SWITCH, PRIVATE_SWITCH, COLOCATED_SWITCH = "dshome", "dspriv", "dscol"
"""The untagged bridge names (``tag=""``); see :func:`home_switch` and :func:`private_switch`."""
TAG = re.compile(r"[a-z0-9]{0,3}")
"""What a topology tag may be: it goes into every root-namespace name (15 characters at most)."""
TAG_BASE = 36**3


def check_tag(tag: str) -> str:
    """``tag`` if it is valid (0..3 characters of ``[a-z0-9]``), else :class:`ValueError`."""
    if not isinstance(tag, str) or TAG.fullmatch(tag) is None:
        raise ValueError(f"tag {tag!r} must be 0..3 characters of a-z and 0-9")
    return tag


def process_tag(pid: int | None = None) -> str:
    """A tag for this process (or ``pid``): its pid in base 36, modulo 36³, as 3 characters."""
    value = (os.getpid() if pid is None else pid) % TAG_BASE
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    return "".join(digits[value // 36**power % 36] for power in (2, 1, 0))


def home_switch(tag: str = "") -> str:
    """The home LAN's bridge (``dshome``, or ``ds<tag>home``)."""
    return f"ds{check_tag(tag)}home"


def private_switch(tag: str = "") -> str:
    """The private LAN's bridge behind the NAT (``dspriv``, or ``ds<tag>priv``)."""
    return f"ds{check_tag(tag)}priv"


def colocated_switch(tag: str = "") -> str:
    """The co-located visited network's bridge (``dscol``, or ``ds<tag>col``)."""
    return f"ds{check_tag(tag)}col"


def access_switch(index: int, tag: str = "") -> str:
    """The bridge of visited network ``index`` (``dsa1``, ``dsa2``, ..., or ``ds<tag>a1``, ...)."""
    return f"ds{check_tag(tag)}a{index}"


class DualStackTopo(Topo):  # type: ignore[misc]  # mininet has no type information
    """HA, foreign agents, mobile nodes, a correspondent and a NAT around one core router ``r0``.

    Pure data: building it needs no root. Per node, :meth:`nodeSpec` gives addresses, routes, sysctls and the
    agent role and configuration; :meth:`mobileLinks` says how each mobile node is moved. ``tag`` goes into
    every root-namespace name (bridges, switch-side ports), so differently tagged networks can run at once.
    """

    def __init__(
        self,
        foreign_agents: int = 2,
        mobile_nodes: int = 1,
        nat: bool = True,
        adv_interval: float = 1.0,
        detection: str = "link",
        datapath: str = "userspace",
        tag: str = "",
        prefixes_per_node: int = 1,
        colocated_nodes: int = 0,
        ha_max_lifetime: int = AGENT_MAX_LIFETIME,
        mn_lifetime: int = MOBILE_NODE_LIFETIME,
        udp_keepalive: int | None = None,
        ha_journal: str | None = None,
        nat_fa: bool = False,
        overrides: Sequence[Override] = (),
        home_netem: str | None = None,
        ingress_filter: bool = False,
        second_interfaces: bool = False,
        simultaneous_bindings: bool = False,
        agent_priority: int = 0,
        **params: Any,
    ) -> None:
        self.tag = check_tag(tag)
        check_priority("agent_priority", agent_priority)
        self.agent_priority = agent_priority
        """1-99: every agent runs at this ``SCHED_FIFO`` priority (``realtime_priority``,
        :mod:`agents.runtime.scheduling`), so the probes sharing the host's CPUs do not delay its wake-ups;
        0: normal scheduling."""
        self.prefixes_per_node, self.colocated_nodes = prefixes_per_node, colocated_nodes
        self.ha_max_lifetime, self.mn_lifetime = ha_max_lifetime, mn_lifetime
        self.udp_keepalive = udp_keepalive
        """Set: the moving MNs may use a co-located address behind the NAT, tunnelled in UDP (RFC 3519)
        with this keepalive interval K from the HA."""
        self.home_netem = home_netem
        """Set: netem arguments (``delay 25ms loss 1%``) for each direction of the home uplink (r0 ↔ home
        LAN)."""
        self.ingress_filter = ingress_filter
        """Set: r0 drops what arrives on the correspondent's link ``r0-cn`` with a source address it would
        not route back there (BCP 38 / RFC 2827, :mod:`topologies.ingress`): the correspondent cannot
        forge an agent's or a mobile node's address."""
        self.second_interfaces = second_interfaces
        """Each moving MN gets a second interface ``<mn>-eth1`` (no address, IPv6 off), its switch-side
        port on the last visited network's bridge: the harness brings it up for a make-before-break move
        (RFC 5944 §3.6.1.3, :mod:`scenarios.handoff_mbb`). It exists from the start, so a datapath that
        attaches to the node's interfaces when it starts (ebpf) covers it too."""
        self.simultaneous_bindings = simultaneous_bindings or second_interfaces
        """The run's mobile nodes register with S (``--handoff pre`` and ``make-before-break``): the HA's
        config says it needs simultaneous bindings (``need_simultaneous_bindings``), so its datapath is one
        that sends a copy to each care-of address (RFC 5944 §3.6.1.3)."""
        self.netem_links: list[tuple[str, str, str]] = []
        """(node, interface, netem arguments): the qdiscs :func:`topologies.build.configure` adds (a switch's
        ports are in the root namespace)."""
        self.ha_journal = ha_journal
        """Set: the HA journals its bindings in this file and a restarted HA restores them from it."""
        self.nat_fa = nat_fa
        """A foreign agent behind the NAT advertising R and U (RFC 3519 §4.11); needs ``nat`` and
        ``udp_keepalive``."""
        if nat_fa and (not nat or udp_keepalive is None):
            raise ValueError(
                "nat_fa needs nat and udp_keepalive (RFC 3519 §4.11: UDP tunnelling through the NAT)"
            )
        if not 0 <= foreign_agents <= plan.MAX_FOREIGN_AGENTS:
            raise ValueError(f"foreign_agents {foreign_agents} must be 0..{plan.MAX_FOREIGN_AGENTS}")
        if not 0 <= mobile_nodes <= plan.MAX_MOBILE_NODES:
            raise ValueError(f"mobile_nodes {mobile_nodes} must be 0..{plan.MAX_MOBILE_NODES}")
        if detection not in DETECTIONS:
            raise ValueError(f"detection {detection!r}: use one of {', '.join(DETECTIONS)}")
        if datapath not in DATAPATHS:
            raise ValueError(f"datapath {datapath!r}: use one of {', '.join(DATAPATHS)}")
        if not 0 <= colocated_nodes <= plan.MAX_MOBILE_NODES - mobile_nodes:
            room = plan.MAX_MOBILE_NODES - mobile_nodes
            raise ValueError(f"colocated_nodes {colocated_nodes} must be 0..{room}")
        if not 1 <= prefixes_per_node <= plan.MAX_PREFIXES:
            raise ValueError(f"prefixes_per_node {prefixes_per_node} must be 1..{plan.MAX_PREFIXES}")
        for name, value in (("ha_max_lifetime", ha_max_lifetime), ("mn_lifetime", mn_lifetime)):
            if not 1 <= value <= 0xFFFF:
                raise ValueError(f"{name} {value} must be 1..65535 seconds")
        self.foreign_agents, self.mobile_nodes, self.nat = foreign_agents, mobile_nodes, nat
        self.adv_interval, self.detection, self.datapath = adv_interval, detection, datapath
        self.specs: dict[str, NodeSpec] = {}
        self.attachments: dict[str, str] = {}
        """Attachment label → bridge, in the order they were added."""
        self.mobile_plans: dict[str, plan.MobileNodePlan] = {}
        self._mobile_ports: dict[str, tuple[str, str]] = {}
        self._second_ports: dict[str, tuple[str, str, str]] = {}
        self._root_interfaces: set[str] = set()
        super().__init__(**params)
        if agent_priority:
            for spec in self.specs.values():
                runtime = None if spec.agent_config is None else spec.agent_config.get("runtime")
                if isinstance(runtime, dict):
                    runtime["realtime_priority"] = agent_priority
        apply_overrides({name: spec.agent_config for name, spec in self.specs.items()}, overrides)

    def build(self, **_params: Any) -> None:
        self.addRouter("r0")
        self.addCorrespondent("cn")
        self.addHomeAgent("ha")
        for index in range(1, self.foreign_agents + 1):
            self.addForeignAgent(index)
        if self.nat:
            self.addNat("nat1")
        if self.nat_fa:
            self.addNatForeignAgent(plan.NAT_FA, "nat1")
        for index in range(1, self.mobile_nodes + 1):
            self.addMobileNode(index)
        if self.colocated_nodes:
            self.addColocatedNetwork()
        for index in range(self.mobile_nodes + 1, self.mobile_nodes + self.colocated_nodes + 1):
            self.addColocatedMobileNode(index)

    # -- queries ------------------------------------------------------------------------------------------

    def nodeSpec(self, name: str) -> NodeSpec:
        """What :func:`topologies.build.configure` applies to node ``name``."""
        return self.specs[name]

    def agentNodes(self) -> list[tuple[str, str]]:
        """(node, role) of every agent in start order: home agent, foreign agents, mobile nodes."""
        order = {"ha": 0, "fa": 1, "mn": 2}
        agents = [(name, spec.role) for name, spec in self.specs.items() if spec.role is not None]
        return sorted(agents, key=lambda item: order[item[1]])

    def mobileLinks(self) -> dict[str, MobileLink]:
        """Per mobile node: its interface, its switch-side port and the bridge of each attachment label."""
        return {
            name: MobileLink(
                node=name,
                interface=interface,
                port=port,
                attachments=dict(self.attachments),
                carrier_events=self.detection == "link",
            )
            for name, (interface, port) in self._mobile_ports.items()
        }

    def secondLinks(self) -> dict[str, MobileLink]:
        """Per mobile node with a second interface (``second_interfaces``): that interface and its port,
        ``initial`` naming the attachment whose bridge holds the port at start."""
        return {
            name: MobileLink(name, interface, port, dict(self.attachments), initial=label)
            for name, (interface, port, label) in self._second_ports.items()
        }

    def rootInterfaces(self) -> set[str]:
        """Every interface this topology creates in the root namespace: bridges and switch-side ports."""
        return set(self._root_interfaces)

    # -- helpers (Mininet's add* family) -------------------------------------------------------------------

    def addRouter(self, name: str = "r0") -> str:
        """A router: IPv4 and IPv6 forwarding on, no agent."""
        self._spec(NodeSpec(name, kind="router", sysctls=NO_DAD | FORWARDING))
        return str(self.addHost(name, cls=RouterHost, ip=None))

    def addCorrespondent(self, name: str = "cn", router: str = "r0") -> str:
        """A dual-stack correspondent on its own LAN behind ``router``."""
        spec = self._spec(NodeSpec(name, sysctls=dict(NO_DAD)))
        self.addHost(name, cls=AgentHost, ip=None)
        self._link(router, f"{router}-{name}", [plan.CN_ROUTER4], [plan.CN_ROUTER6], name, f"{name}-eth0")
        if self.ingress_filter:
            self.specs[router].ingress_filter.append(f"{router}-{name}")
        self._address(name, f"{name}-eth0", [plan.CN4], [plan.CN6])
        spec.routes += [
            Route("default", str(plan.CN_ROUTER4.ip)),
            Route("default", str(plan.CN_ROUTER6.ip), family=6),
        ]
        return name

    def addHomeAgent(self, name: str = "ha", router: str = "r0") -> str:
        """The home LAN (switch ``ds<tag>home``, v4 + v6) with ``router`` and the home agent on it."""
        switch = home_switch(self.tag)
        self.addSwitch(switch, dpid=f"{0xD5000001:016x}")
        self.attachments["home"] = switch
        self._root_interfaces.add(switch)
        port = self._switch_link(router, f"{router}-home", switch)
        self._address(router, f"{router}-home", [plan.HOME_ROUTER4], [plan.HOME_ROUTER6])
        if self.home_netem:
            # Both directions of the uplink: r0's side delays what enters the home LAN, the bridge port on
            # r0's link what leaves it; the home LAN itself (MN at home ↔ HA) is left as it is.
            self.netem_links += [(router, f"{router}-home", self.home_netem), (switch, port, self.home_netem)]
        spec = self._spec(NodeSpec(name, sysctls=NO_DAD | FORWARDING, role="ha"))
        self.addHost(name, cls=AgentHost, ip=None)
        self._switch_link(name, f"{name}-eth0", switch)
        self._address(name, f"{name}-eth0", [plan.HA4], [plan.HA6])
        spec.routes += [
            Route("default", str(plan.HOME_ROUTER4.ip)),
            Route("default", str(plan.HOME_ROUTER6.ip), family=6),
        ]
        self._refresh_home_agent()
        return name

    def addForeignAgent(self, index: int, router: str = "r0") -> str:
        """Visited network ``index``: network link to ``router``, access LAN ``ds<tag>a<index>``,
        ``fa<index>``."""
        fa = plan.ForeignAgentPlan(index)
        name, switch = fa.name, access_switch(index, self.tag)
        sysctls = {"net.ipv4.ip_forward": "1"} | (NO_DAD if fa.dual_stack else NO_IPV6)
        spec = self._spec(NodeSpec(name, sysctls=sysctls, role="fa"))
        self.addHost(name, cls=AgentHost, ip=None)
        router6 = [fa.router6] if fa.router6 is not None else []
        self._link(router, f"{router}-{name}", [fa.router4], router6, name, f"{name}-net")
        address6 = [fa.address6] if fa.address6 is not None else []
        self._address(name, f"{name}-net", [fa.care_of4], address6)
        self.addSwitch(switch, dpid=f"{0xD5000100 + index:016x}")
        self.attachments[name] = switch
        self._root_interfaces.add(switch)
        self._switch_link(name, f"{name}-acc", switch)
        self._address(name, f"{name}-acc", [fa.access4], [])
        for interface in spec.interfaces.values():
            interface.ipv6_enabled = fa.dual_stack
        spec.routes.append(Route("default", str(fa.router4.ip)))
        if fa.router6 is not None:
            spec.routes.append(Route("default", str(fa.router6.ip), family=6))
        spec.agent_config = foreign_agent_config(
            fa,
            access_interface=f"{name}-acc",
            network_interface=f"{name}-net",
            adv_interval=self.adv_interval,
            detection=self.detection,
            datapath=self.datapath,
        )
        return name

    def addNat(self, name: str = "nat1", router: str = "r0") -> str:
        """A NAT router (MASQUERADE on its public side) in front of the private LAN ``ds<tag>priv``."""
        spec = self._spec(
            NodeSpec(name, kind="router", sysctls=NO_DAD | FORWARDING, nat_interface=f"{name}-pub")
        )
        self.addHost(name, cls=RouterHost, ip=None)
        self._link(router, f"{router}-{name}", [plan.NAT_ROUTER4], [], name, f"{name}-pub")
        self._address(name, f"{name}-pub", [plan.NAT_PUBLIC4], [])
        switch = private_switch(self.tag)
        self.addSwitch(switch, dpid=f"{0xD5000200:016x}")
        self.attachments["nat"] = switch
        self._root_interfaces.add(switch)
        self._switch_link(name, f"{name}-priv", switch)
        self._address(name, f"{name}-priv", [plan.NAT_PRIVATE4], [])
        spec.routes.append(Route("default", str(plan.NAT_ROUTER4.ip)))
        return name

    def addNatForeignAgent(self, name: str = plan.NAT_FA, nat: str = "nat1") -> str:
        """A foreign agent behind ``nat``: access side on the private LAN, network side on a link of its own
        to ``nat`` (its care-of address is private); it advertises R and U (RFC 3519 §3.4, §4.11)."""
        spec = self._spec(NodeSpec(name, sysctls={"net.ipv4.ip_forward": "1"} | NO_IPV6, role="fa"))
        self.addHost(name, cls=AgentHost, ip=None)
        self._link(nat, f"{nat}-{name}", [plan.NAT_FA_ROUTER4], [], name, f"{name}-net")
        self._address(name, f"{name}-net", [plan.NAT_FA_CARE_OF4], [])
        self._switch_link(name, f"{name}-acc", private_switch(self.tag))
        self._address(name, f"{name}-acc", [plan.NAT_FA_ACCESS4], [])
        for interface in spec.interfaces.values():
            interface.ipv6_enabled = False
        spec.routes.append(Route("default", str(plan.NAT_FA_ROUTER4.ip)))
        spec.agent_config = nat_foreign_agent_config(
            access_interface=f"{name}-acc",
            network_interface=f"{name}-net",
            adv_interval=self.adv_interval,
            detection=self.detection,
            datapath=self.datapath,
        )
        return name

    def addMobileNode(self, index: int, router: str = "r0") -> str:
        """Mobile node ``index``: one interface, on the home LAN at first; ``router`` routes its prefixes."""
        mn = plan.MobileNodePlan(index, prefix_count=self.prefixes_per_node)
        port = self._mobile_node(mn, home_switch(self.tag), router)
        self._mobile_ports[mn.name] = (f"{mn.name}-eth0", port)
        if self.second_interfaces:
            label = f"fa{self.foreign_agents}" if self.foreign_agents else "home"
            switch, interface = self.attachments[label], f"{mn.name}-eth1"
            self._second_ports[mn.name] = (interface, self._switch_link(mn.name, interface, switch), label)
            self.specs[mn.name].interfaces[interface].ipv6_enabled = False
        return mn.name

    def addColocatedNetwork(self, router: str = "r0") -> str:
        """A visited network without a foreign agent (bridge ``ds<tag>col``): r0 at 203.0.113.129/26."""
        switch = colocated_switch(self.tag)
        self.addSwitch(switch, dpid=f"{0xD5000300:016x}")
        self._root_interfaces.add(switch)
        self._switch_link(router, f"{router}-col", switch)
        self._address(router, f"{router}-col", [plan.COLOCATED_ROUTER4], [])
        return switch

    def addColocatedMobileNode(self, index: int, router: str = "r0") -> str:
        """Mobile node ``index`` on the co-located network for the whole run, registering its own address
        there as a co-located care-of address (RFC 5944 §3.6); it is never moved."""
        mn = plan.MobileNodePlan(index, prefix_count=self.prefixes_per_node, colocated=True)
        assert mn.care_of4 is not None
        self._mobile_node(mn, colocated_switch(self.tag), router)
        self._address(mn.name, f"{mn.name}-eth0", [mn.care_of4], [])
        self.specs[mn.name].routes.append(Route("default", str(plan.COLOCATED_ROUTER4.ip)))
        return mn.name

    def _mobile_node(self, mn: plan.MobileNodePlan, switch: str, router: str) -> str:
        """Node, link to ``switch``, routes of its prefixes at ``router`` and agent configs; the port."""
        name, interface = mn.name, f"{mn.name}-eth0"
        spec = self._spec(NodeSpec(name, sysctls=dict(NO_DAD), role="mn"))
        self.addHost(name, cls=AgentHost, ip=None)
        port = self._switch_link(name, interface, switch)
        self.mobile_plans[name] = mn
        for prefix in mn.prefixes:
            self.specs[router].routes.append(Route(str(prefix), str(plan.HA6.ip), family=6))
        spec.agent_config = mobile_node_config(
            mn,
            interface=interface,
            detection=self.detection,
            datapath=self.datapath,
            lifetime=self.mn_lifetime,
            nat_traversal=self.udp_keepalive is not None and not mn.colocated,
            agent_wait=2.0 * self.adv_interval if self.nat_fa else 0.0,  # the FA's answer first (§3.6)
        )
        self._refresh_home_agent()
        return port

    # -- internals ----------------------------------------------------------------------------------------

    def _spec(self, spec: NodeSpec) -> NodeSpec:
        if spec.name in self.specs:
            raise ValueError(f"node {spec.name} added twice")
        self.specs[spec.name] = spec
        return spec

    def _link(self, node1: str, intf1: str, v4: list[Any], v6: list[Any], node2: str, intf2: str) -> None:
        """A point-to-point veth link; ``v4``/``v6`` are node1's addresses on it."""
        self.addLink(node1, node2, intfName1=intf1, intfName2=intf2)
        self._address(node1, intf1, v4, v6)
        self.specs[node2].add_interface(InterfaceSpec(intf2))

    def _switch_link(self, node: str, interface: str, switch: str) -> str:
        """Link ``node`` to ``switch``; the switch-side port is named ``<switch>-<node>`` (LinuxBridge adds
        only ports whose name contains the bridge's)."""
        port = f"{switch}-{node}"
        self.addLink(node, switch, intfName1=interface, intfName2=port)
        self._root_interfaces.add(port)
        if interface not in self.specs[node].interfaces:
            self.specs[node].add_interface(InterfaceSpec(interface))
        return port

    def _address(self, node: str, interface: str, v4: list[Any], v6: list[Any]) -> None:
        spec = self.specs[node]
        if interface not in spec.interfaces:
            spec.add_interface(InterfaceSpec(interface))
        target = spec.interfaces[interface]
        target.ipv4 += [str(address) for address in v4]
        target.ipv6 += [str(address) for address in v6]
        InterfaceSpec(target.name, target.ipv4, target.ipv6, target.ipv6_enabled)  # validate

    def _refresh_home_agent(self) -> None:
        home = next((spec for spec in self.specs.values() if spec.role == "ha"), None)
        if home is None:
            return
        home.agent_config = home_agent_config(
            list(self.mobile_plans.values()),
            home_interface=f"{home.name}-eth0",
            adv_interval=self.adv_interval,
            detection=self.detection,
            datapath=self.datapath,
            name=home.name,
            max_lifetime=self.ha_max_lifetime,
            keepalive_interval=self.udp_keepalive,
            journal=self.ha_journal,
            # ebpf carries neither minimal encapsulation nor UDP tunnels: offered with userspace only
            udp_tunnelling=self.datapath == "userspace" or self.udp_keepalive is not None,
            simultaneous_bindings=self.simultaneous_bindings,
        )
