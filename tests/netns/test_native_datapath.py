"""The ``kernel`` datapath backend (agents/datapath/native.py, issue 9/15) on the real kernel, in the
namespaces of tests/netns/test_datapath.py: CN — HA — MN with a co-located care-of address.

Where the kernel has ipip, sit and gre (the VM's full kernel) the same packets as the userspace backend's
tests cross: IPv4 both ways in IP-in-IP (RFC 2003), IPv6 of a code 0 prefix nested in it (RFC 5454 §3.3.2),
a spoofed outer source is not delivered (RFC 3024 §4.3.2), and close() leaves the namespaces as they were.
Where it lacks them (this development host) the backend is refused with a message naming what is missing
and where to run it; nothing is created.
"""

from __future__ import annotations

import subprocess
import time
from ipaddress import IPv4Address, IPv6Interface, IPv6Network

import pytest

from agents.datapath.base import Encapsulation, TunnelTarget
from agents.datapath.kernel import BackendUnavailableError, probe_kernel_tunnels
from agents.datapath.native import NativeHomeAgent, NativeMobileNode
from agents.datapath.selection import Needs, select_backend
from agents.net.netlink import Netlink
from tests.netns.conftest import NamespaceFactory, capture, ping, wait_settled
from tests.netns.test_datapath import (
    CARE_OF,
    CN,
    CN6,
    HA_FOREIGN,
    HOME_ADDRESS,
    MN6_HOA,
    PREFIX_HOA,
    build_links,
    outer_protocols,
)

pytestmark = pytest.mark.root


def test_kernel_backend_carries_ipv4_and_nested_ipv6_or_is_refused(namespaces: NamespaceFactory) -> None:
    support = probe_kernel_tunnels()
    # the modules are there (or built in) exactly when modprobe finds them: the probe must agree, so the
    # refusal branch below cannot hide a full kernel whose probe fails
    modules = [
        subprocess.run(["modprobe", "-n", "-q", name], check=False) for name in ("ipip", "sit", "ip_gre")
    ]
    assert support.complete == all(result.returncode == 0 for result in modules), support.describe()
    if not support.complete:
        with pytest.raises(BackendUnavailableError, match=r"ipip, sit and gre.*\./testbed vm"):
            select_backend("kernel", Needs(), kernel_probe=lambda: support)
        return
    assert select_backend("kernel", Needs(), kernel_probe=lambda: support).backend == "kernel"
    cn, ha, mn = build_links(namespaces)
    wait_settled(ha, mn)
    before = {namespace.name: namespace.snapshot() for namespace in (ha, mn)}
    home, agent, care_of = IPv4Address(HOME_ADDRESS), IPv4Address(HA_FOREIGN), IPv4Address(CARE_OF)
    with ha.entered():
        home_agent = NativeHomeAgent(agent, interface_name="kha")
        proxy = Netlink()
    with mn.entered():
        mobile_node = NativeMobileNode(interface_name="kmn")
    try:
        home_agent.add_ipv4_tunnel(home, care_of, Encapsulation.IP_IN_IP, home_agent=agent)
        home_agent.add_ipv6_prefix(PREFIX_HOA, home, TunnelTarget.HOME_ADDRESS)
        mobile_node.add_ipv4_tunnel(home, care_of, Encapsulation.IP_IN_IP, home_agent=agent)
        mobile_node.add_ipv6_prefix(PREFIX_HOA, home, TunnelTarget.HOME_ADDRESS)
        mobile_node.add_ipv6_address(IPv6Interface(f"{MN6_HOA}/64"), TunnelTarget.HOME_ADDRESS)
        mobile_node.add_ipv6_route(IPv6Network("::/0"))
        proxy.add_proxy_neighbour("ha0", home)
        with capture(ha, "ha1") as packets:
            assert ping(cn, HOME_ADDRESS), "CN → home address (proxy ARP, HA → CoA in ipip)"
            assert ping(mn, CN, source=HOME_ADDRESS), "MN → CN reverse tunnelled from the HoA"
            assert ping(cn, MN6_HOA), "CN → MN IPv6, code 0: sit to the HoA inside ipip to the CoA"
            assert ping(mn, CN6, source=MN6_HOA)
        assert {(4, 1), (4, 41)} <= outer_protocols(packets)
        assert (41, None) not in outer_protocols(packets), "code 0 IPv6 never travels unnested"
        counters = home_agent.counters()
        assert counters.encapsulated_packets >= 2 and counters.decapsulated_packets >= 2
        with pytest.raises(ValueError, match="minimal"):
            home_agent.add_ipv4_tunnel(home, care_of, Encapsulation.MINIMAL, home_agent=agent)
    finally:
        proxy.undo()
        proxy.close()
        mobile_node.close()
        home_agent.close()
        mobile_node.close()  # idempotent
    time.sleep(0.1)
    for namespace in (ha, mn):
        assert namespace.snapshot() == before[namespace.name], namespace.name
