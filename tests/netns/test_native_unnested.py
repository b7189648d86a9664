"""The kernel datapath's home agent refuses un-nested IPv6-in-IPv4 from a code 0 home address (issue 16,
defect 1), in the namespaces of tests/netns/test_datapath.py: CN — HA — visited link.

For a prefix registered with code 0 the HA's ``sit`` device has the home address as remote (RFC 5454
§3.3.2). A protocol 41 packet with outer source = home address sent straight from the visited link is a
spoof: that layer is legitimate only nested inside the care-of tunnel (RFC 5454 §3.3.2, §4; RFC 3024
§4.3.2). Sent from the visited link, it must not reach the CN and is counted as ``unnested_home_address``;
the same packet nested in IP-in-IP from the care-of address is delivered. Removing the prefix and closing
leave nothing behind (no sit device, no nftables table).

Where the kernel lacks ipip, sit and gre (this development host) the backend is refused (as in
tests/netns/test_native_datapath.py) and the test checks that refusal: it never skips.
"""

from __future__ import annotations

import socket
import subprocess
import time
from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from agents.datapath.base import DropReason, Encapsulation, TunnelTarget
from agents.datapath.kernel import BackendUnavailableError, probe_kernel_tunnels
from agents.datapath.native import NativeHomeAgent
from agents.datapath.native_filter import guard_table_name
from agents.datapath.selection import Needs, select_backend
from agents.net.netlink import Netlink
from tests.netns.conftest import NamespaceFactory, wait_settled, wait_until
from tests.netns.test_datapath import (
    CARE_OF,
    CN6,
    HA_FOREIGN,
    HOME_ADDRESS,
    MN6_HOA,
    PREFIX_HOA,
    build_links,
)
from tests.netns.test_datapath_backends import listener, send_raw

pytestmark = pytest.mark.root

UNNESTED = IP(src=HOME_ADDRESS, dst=HA_FOREIGN) / IPv6(src=MN6_HOA, dst=CN6)
NESTED = IP(src=CARE_OF, dst=HA_FOREIGN) / UNNESTED


def received(sink: socket.socket) -> bytes | None:
    try:
        return sink.recv(100)
    except TimeoutError:
        return None


def test_unnested_home_address_ipv6_in_ipv4_is_dropped_nested_is_delivered(
    namespaces: NamespaceFactory,
) -> None:
    """RFC 5454 §3.3.2, §4 and RFC 3024 §4.3.2 on the kernel datapath (issue 16, defect 1)."""
    support = probe_kernel_tunnels()
    modules = [
        subprocess.run(["modprobe", "-n", "-q", name], check=False) for name in ("ipip", "sit", "ip_gre")
    ]
    assert support.complete == all(result.returncode == 0 for result in modules), support.describe()
    if not support.complete:
        with pytest.raises(BackendUnavailableError, match=r"ipip, sit and gre.*\./testbed vm"):
            select_backend("kernel", Needs(), kernel_probe=lambda: support)
        return
    # the visited link's namespace (``mn``) runs no mobile node: it only sends the crafted packets
    cn, ha, visited = build_links(namespaces)
    wait_settled(ha, visited)
    before = ha.snapshot()
    home, agent, care_of = IPv4Address(HOME_ADDRESS), IPv4Address(HA_FOREIGN), IPv4Address(CARE_OF)
    with ha.entered():
        home_agent = NativeHomeAgent(agent, interface_name="kha")
        proxy = Netlink()
    try:
        home_agent.add_ipv4_tunnel(home, care_of, Encapsulation.IP_IN_IP, home_agent=agent)
        home_agent.add_ipv6_prefix(PREFIX_HOA, home, TunnelTarget.HOME_ADDRESS)
        proxy.add_proxy_neighbour("ha0", home)
        with listener(cn, socket.AF_INET6, CN6) as sink:
            send_raw(visited, bytes(NESTED / UDP(sport=4000, dport=9999) / b"nested"), HA_FOREIGN)
            assert received(sink) == b"nested", "code 0 IPv6 nested in the care-of tunnel is delivered"
            send_raw(visited, bytes(UNNESTED / UDP(sport=4000, dport=9999) / b"unnested"), HA_FOREIGN)
            assert received(sink) is None, "un-nested IPv6-in-IPv4 from the home address reached the CN"
            assert wait_until(lambda: home_agent.counters().dropped(DropReason.UNNESTED_HOME_ADDRESS) == 1), (
                home_agent.counters()
            )
            send_raw(visited, bytes(NESTED / UDP(sport=4000, dport=9999) / b"again"), HA_FOREIGN)
            assert received(sink) == b"again", "the guard does not touch the nested packet"
        assert home_agent.counters().dropped(DropReason.UNNESTED_HOME_ADDRESS) == 1
        assert guard_table_name("kha") in ha.run("nft list tables")
        home_agent.remove_ipv6_prefix(PREFIX_HOA)
        assert "kha6-" not in ha.run("ip -o link show"), "the code 0 sit device goes with its prefix"
        assert guard_table_name("kha") not in ha.run("nft list tables"), "the guard goes with it"
        home_agent.add_ipv6_prefix(PREFIX_HOA, home, TunnelTarget.HOME_ADDRESS)
        assert guard_table_name("kha") in ha.run("nft list tables"), "guarded again"
    finally:
        proxy.undo()
        proxy.close()
        home_agent.close()
    time.sleep(0.1)
    assert ha.snapshot() == before
