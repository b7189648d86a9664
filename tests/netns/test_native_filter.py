"""The kernel datapath's guard against un-nested IPv6-in-IPv4 from a home address (issue 16, defect 1;
RFC 5454 §3.3.2, §4, RFC 3024 §4.3.2), on its own: it needs nftables, not the tunnel modules, so it runs
on every host. Two links into one receiving namespace, one of them named like a care-of tunnel device of
the datapath (``kgd4-1``): protocol 41 from a guarded home address is dropped and counted on the other
link, and passes on the tunnel-named one; from an unguarded source it passes; the table goes with the
last guarded address and at close.

```
 visited ─ vis0 ── 198.51.100.0/24 ── rcv0 ─ receiver ─ kgd4-1 ── 203.0.113.0/24 ── tun0 ─ tunnel
```
"""

from __future__ import annotations

import socket
import time
from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import IP
from scapy.packet import Raw

from agents.datapath.native import remove_stale_home_agent_state
from agents.datapath.native_filter import UnnestedGuard, guard_table_name, remove_stale_table
from agents.net.netlink import Netlink
from tests.netns.conftest import Namespace, NamespaceFactory, veth, wait_until

pytestmark = pytest.mark.root

HOME, OTHER = IPv4Address("192.0.2.100"), IPv4Address("192.0.2.101")
RECEIVER, VIA_TUNNEL = "198.51.100.1", "203.0.113.1"


def protocol_41(source: IPv4Address, destination: str, marker: bytes) -> bytes:
    """IPv4 protocol 41 around ``marker`` (not IPv6: nothing decapsulates it here)."""
    return bytes(IP(src=str(source), dst=destination, proto=41) / Raw(marker))


def send(namespace: Namespace, packet: bytes, destination: str) -> None:
    with namespace.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    with sock:
        sock.sendto(packet, (destination, 0))


def arrived(sink: socket.socket, marker: bytes) -> bool:
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        try:
            if sink.recv(2000).endswith(marker):
                return True
        except TimeoutError:
            return False
    return False


def test_guard_drops_unnested_protocol_41_from_guarded_home_addresses(namespaces: NamespaceFactory) -> None:
    visited, receiver, tunnel = namespaces(), namespaces(), namespaces()
    veth(visited, "vis0", receiver, "rcv0")
    veth(tunnel, "tun0", receiver, "kgd4-1")
    visited.run("ip addr add 198.51.100.2/24 dev vis0")
    tunnel.run("ip addr add 203.0.113.2/24 dev tun0")
    receiver.run(
        f"ip addr add {RECEIVER}/24 dev rcv0; ip addr add {VIA_TUNNEL}/24 dev kgd4-1; "
        "for c in all default rcv0 kgd4-1; do sysctl -qw net.ipv4.conf.$c.rp_filter=0; done"
    )
    before = receiver.run("nft list ruleset")
    with receiver.entered():
        netlink = Netlink()
        sink = socket.socket(socket.AF_INET, socket.SOCK_RAW, 41)
    sink.settimeout(0.5)
    guard = UnnestedGuard(netlink, "kgd")
    try:
        guard.add(HOME)
        guard.add(HOME)  # idempotent
        guard.add(OTHER)
        assert guard.addresses == {HOME, OTHER}
        send(visited, protocol_41(HOME, RECEIVER, b"unnested"), RECEIVER)
        assert not arrived(sink, b"unnested"), "un-nested protocol 41 from a guarded home address"
        assert wait_until(lambda: guard.dropped() == 1)
        send(tunnel, protocol_41(HOME, VIA_TUNNEL, b"from-tunnel"), VIA_TUNNEL)
        assert arrived(sink, b"from-tunnel"), "protocol 41 out of a care-of tunnel device passes"
        send(visited, protocol_41(IPv4Address("198.51.100.2"), RECEIVER, b"care-of"), RECEIVER)
        assert arrived(sink, b"care-of"), "code 1: protocol 41 from a care-of address is not guarded"
        guard.remove(HOME)
        send(visited, protocol_41(HOME, RECEIVER, b"unguarded"), RECEIVER)
        assert arrived(sink, b"unguarded"), "no longer guarded"
        send(visited, protocol_41(OTHER, RECEIVER, b"other"), RECEIVER)
        assert not arrived(sink, b"other")
        assert guard.dropped() == 2
        guard.remove(OTHER)
        assert receiver.run("nft list ruleset") == before, "the table goes with the last address"
        assert guard.dropped() == 0
        guard.add(HOME)
        assert guard_table_name("kgd") in receiver.run("nft list tables")
        guard.close()
        guard.close()  # idempotent
        assert receiver.run("nft list ruleset") == before
        guard.add(HOME)  # as a killed home agent leaves it
        assert remove_stale_table(netlink, guard_table_name("kgd"))
        assert not remove_stale_table(netlink, guard_table_name("kgd"))
        assert receiver.run("nft list ruleset") == before
    finally:
        sink.close()
        netlink.close()


def test_crash_recovery_removes_a_killed_home_agents_devices_and_guard(namespaces: NamespaceFactory) -> None:
    """What a SIGKILLed kernel-datapath home agent leaves: ``<name>4-<n>`` / ``<name>6-<n>`` devices and the
    guard's table (agents/runtime/roles/ha_recovery.py removes them before the restart installs anything);
    other links stay."""
    namespace = namespaces()
    namespace.run(
        "n=0; for name in mip-ha4-1 mip-ha6-2 mip-ha4-x mip-hb4-1 other; do "
        "n=$((n + 1)); ip link add $name type veth peer name peer$n; done"  # no dummy module everywhere
    )
    with namespace.entered():
        netlink = Netlink()
    guard = UnnestedGuard(netlink, "mip-ha")
    try:
        guard.add(HOME)  # left behind, as by a killed home agent
        removed = remove_stale_home_agent_state(netlink, "mip-ha")
        assert sorted(removed) == ["link mip-ha4-1", "link mip-ha6-2", "nftables table ip dsmip_mip_ha"]
        links = namespace.run("ip -o link show")
        assert all(name in links for name in ("mip-ha4-x", "mip-hb4-1", "other"))
        assert "mip-ha4-1" not in links and "mip-ha6-2" not in links
        assert namespace.run("nft list ruleset") == ""
        assert remove_stale_home_agent_state(netlink, "mip-ha") == []
    finally:
        netlink.close()
