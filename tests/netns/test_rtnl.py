"""The netlink facade's raw requests (agents/net/rtnl.py, issue 14) against the real kernel: routes,
permanent neighbour entries and source rules land in the facade's namespace whichever thread asks,
errors keep their meaning (exist_ok, already gone), and pyroute2's undo removes them."""

from __future__ import annotations

import threading
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

import pytest

from agents.net.netlink import Netlink, NetlinkFacadeError
from tests.netns.conftest import NamespaceFactory

pytestmark = pytest.mark.root


def test_raw_routes_neighbours_and_rules_from_another_thread(namespaces: NamespaceFactory) -> None:
    namespace = namespaces()
    namespace.run("ip link add r0 type veth peer name r1 && ip link set r0 up && ip link set r1 up")
    namespace.run("ip addr add 10.9.0.1/24 dev r0 && ip -6 addr add 2001:db8:9::1/64 dev r0 nodad")
    before = namespace.snapshot()
    neighbours_before = namespace.run("ip neigh show dev r0")
    with namespace.entered():
        netlink = Netlink()
    gateway, mac = IPv4Address("10.0.2.1"), bytes.fromhex("020000000021")
    try:
        done: list[BaseException | None] = []

        def from_a_thread_outside() -> None:  # neither the creating thread nor in the namespace
            try:
                netlink.set_neighbour("r0", gateway, mac)
                netlink.add_route(IPv4Network("0.0.0.0/0"), gateway=gateway, interface="r0", onlink=True)
                done.append(None)
            except BaseException as error:  # handed to the test thread
                done.append(error)

        thread = threading.Thread(target=from_a_thread_outside)
        thread.start()
        thread.join()
        assert done == [None]
        assert "default via 10.0.2.1 dev r0 proto static onlink" in namespace.run("ip route show")
        assert "10.0.2.1 lladdr 02:00:00:00:00:21 PERMANENT" in namespace.run("ip neigh show dev r0")
        # an existing route: False with exist_ok, an error naming the request without
        assert not netlink.add_route(
            IPv4Network("0.0.0.0/0"), gateway=gateway, interface="r0", onlink=True, exist_ok=True
        )
        with pytest.raises(NetlinkFacadeError, match=r"add route 0\.0\.0\.0/0: File exists"):
            netlink.add_route(IPv4Network("0.0.0.0/0"), gateway=gateway, interface="r0", onlink=True)
        netlink.add_route(IPv6Network("2001:db8:77::/48"), interface="r0", metric=512, mtu=1280)
        assert "2001:db8:77::/48 dev r0 proto static metric 512 mtu 1280" in namespace.run("ip -6 route show")
        assert netlink.add_rule(IPv4Network("192.0.2.10/32"), 110, 1100, interface="r0")
        assert not netlink.add_rule(IPv4Network("192.0.2.10/32"), 110, 1100, interface="r0", exist_ok=True)
        assert "1100:\tfrom 192.0.2.10 iif r0 lookup 110" in namespace.run("ip rule show")
        # moving on (the mobile node's route change): the old default goes, a new one comes
        assert netlink.remove_route(IPv4Network("0.0.0.0/0"), gateway=gateway, interface="r0")
        assert not netlink.remove_route(IPv4Network("0.0.0.0/0"), gateway=gateway, interface="r0")
        netlink.add_route(
            IPv4Network("0.0.0.0/0"), gateway=IPv4Address("10.0.3.1"), interface="r0", onlink=True
        )
        netlink.remove_rule(IPv4Network("192.0.2.10/32"), 110, 1100, interface="r0")
        assert "192.0.2.10" not in namespace.run("ip rule show")
        with pytest.raises(LookupError):
            netlink.set_neighbour("nonesuch", gateway, mac)
        # a home address and an IPv6 address: undone with raw requests from this thread (issue 14)
        netlink.add_address("r0", IPv4Interface("192.0.2.10/24"))
        netlink.add_address("r0", IPv6Interface("2001:db8:10::a/128"), nodad=True)
        assert "192.0.2.10/24" in namespace.run("ip addr show dev r0")
        assert namespace.snapshot() != before
        netlink.undo()
        assert namespace.snapshot() == before
        assert namespace.run("ip neigh show dev r0") == neighbours_before
    finally:
        netlink.close()
