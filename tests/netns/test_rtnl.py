"""The netlink facade's raw requests (agents/net/rtnl.py, issues 14 and 9) against the real kernel: routes,
neighbour entries (permanent and proxy) and source rules land in the facade's namespace whichever thread
asks, errors keep their meaning (exist_ok, already gone), and the batched raw undo removes exactly them."""

from __future__ import annotations

import errno
import logging
import socket
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

import pytest

from agents.net.netlink import Netlink, NetlinkFacadeError
from agents.net.rtnl import BATCH, RtnlSocket, route_message
from tests.netns.conftest import NamespaceFactory
from tests.support.threads import in_another_thread

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

        def from_a_thread_outside() -> None:  # neither the creating thread nor in the namespace
            netlink.set_neighbour("r0", gateway, mac)
            netlink.add_route(IPv4Network("0.0.0.0/0"), gateway=gateway, interface="r0", onlink=True)

        in_another_thread(from_a_thread_outside)
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


def test_proxy_neighbours_raw_and_exactly_undone_in_batches(namespaces: NamespaceFactory) -> None:
    """The home agent's proxy ARP / proxy NDP entries (RFC 5944 §4.6) and tunnel routes, as many as take
    several undo batches: added from a thread outside the namespace, and undone to the namespace as found.
    The kernel adds an existing proxy entry again without an error, so one that was there before is found
    by a lookup, not recorded, and left in place by the undo."""
    namespace = namespaces()
    namespace.run("ip link add p0 type veth peer name p1 && ip link set p0 up && ip link set p1 up")
    namespace.run("ip neigh add proxy 10.20.0.1 dev p0 && sysctl -qw net.ipv4.neigh.p0.proxy_delay=40")
    before = namespace.snapshot()
    with namespace.entered():
        netlink = Netlink()
    count = 3 * BATCH + 5
    homes = [IPv4Address("10.20.0.1") + n for n in range(1, count + 1)]
    try:

        def bind_all() -> None:
            for home in homes:
                assert netlink.add_proxy_neighbour("p0", home, exist_ok=True)
                netlink.add_route(IPv4Network((home, 32)), interface="p0", mtu=1400)
            assert netlink.add_proxy_neighbour("p0", IPv6Address("2001:db8:20::7"))

        in_another_thread(bind_all)
        proxies = namespace.run("ip neigh show proxy")
        assert all(f"{home} dev p0 proxy" in proxies for home in homes)
        assert "2001:db8:20::7 dev p0 proxy" in namespace.run("ip -6 neigh show proxy")
        assert namespace.run(
            "sysctl -n net.ipv4.neigh.p0.proxy_delay net.ipv6.conf.p0.proxy_ndp"
        ).split() == [
            "0",
            "1",
        ]
        assert len(namespace.run("ip route show dev p0").splitlines()) == count
        # the entry found before: not ours (False with exist_ok, "File exists" without)
        assert not netlink.add_proxy_neighbour("p0", IPv4Address("10.20.0.1"), exist_ok=True)
        with pytest.raises(NetlinkFacadeError, match=r"add proxy neighbour 10\.20\.0\.1 on p0: File exists"):
            netlink.add_proxy_neighbour("p0", IPv4Address("10.20.0.1"))
        # one binding deregistered: its entry goes at once, a second removal finds nothing
        assert netlink.remove_proxy_neighbour("p0", homes[0])
        assert not netlink.remove_proxy_neighbour("p0", homes[0])
        assert f"{homes[0]} dev p0 proxy" not in namespace.run("ip neigh show proxy")
        # one the kernel lost meanwhile (already gone at undo: skipped, not reported)
        namespace.run(f"ip neigh del proxy {homes[1]} dev p0")
        with pytest.raises(LookupError):
            netlink.add_proxy_neighbour("nonesuch", homes[0], immediate=False)
        assert netlink.recorded == 2 * count - 1 + 3  # two sysctls and the IPv6 entry
        netlink.undo()
        assert netlink.recorded == 0
        assert namespace.snapshot() == before
        assert "10.20.0.1 dev p0 proxy" in namespace.run("ip neigh show proxy")
    finally:
        netlink.close()


def test_undo_reports_each_refusal_and_goes_on(
    namespaces: NamespaceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A deletion the kernel refuses (not "already gone") is one warning naming the object, no traceback,
    and the deletions after it in the same batch are still made."""
    namespace = namespaces()
    namespace.run("ip link add q0 type veth peer name q1 && ip link set q0 up && ip link set q1 up")
    before = namespace.snapshot()
    with namespace.entered():
        netlink = Netlink()
    try:
        netlink.add_route(IPv4Network("10.30.0.1/32"), interface="q0")
        # recorded deletions refused: by the kernel (a /33 source rule, EINVAL), and one the raw encoder
        # cannot encode (a /64 as an IPv4 route: pyroute2 then refuses it too)
        refused = {"src": "10.30.0.9", "src_len": 33, "table": 100, "priority": 5, "family": socket.AF_INET}
        netlink._remember(("rule", "refused"), ("rule", "del", refused))
        unencodable = {"dst": "2001:db8:30::/64", "family": socket.AF_INET}
        netlink._remember(("route", "unencodable"), ("route", "del", unencodable))
        netlink.add_route(IPv4Network("10.30.0.2/32"), interface="q0")
        with caplog.at_level(logging.WARNING, logger="agents.net.netlink"):
            netlink.undo()
        warnings = [record.getMessage() for record in caplog.records]
        assert len(warnings) == 2, warnings
        # not raw-encodable: handed to pyroute2, whose refusal is the warning (its own wording)
        assert warnings[0].startswith("undo route 2001:db8:30::/64 failed: ")
        assert warnings[1] == "undo rule 10.30.0.9 failed: Invalid argument"
        assert netlink.recorded == 0
        assert namespace.snapshot() == before
    finally:
        netlink.close()


def test_batched_requests_are_answered_one_by_one(namespaces: NamespaceFactory) -> None:
    """Several requests in one ``send``: the kernel carries out and acknowledges each in order, a refusal
    in the middle neither stops the rest nor shifts their answers."""
    namespace = namespaces()
    namespace.run("ip link add s0 type veth peer name s1 && ip link set s0 up")
    index = int(namespace.run("cat /sys/class/net/s0/ifindex"))
    with namespace.entered():
        rtnl = RtnlSocket()
    try:
        routes = [
            {"dst": f"10.40.{n // 256}.{n % 256}/32", "family": socket.AF_INET, "oif": index}
            for n in range(150)
        ]
        adds = [lambda seq, spec=spec: route_message("add", spec, seq) for spec in routes]
        adds[70] = lambda seq: route_message("add", routes[3], seq)  # again: EEXIST
        codes = rtnl.request_all(adds)
        assert codes == [0] * 70 + [errno.EEXIST] + [0] * 79
        assert len(namespace.run("ip route show dev s0").splitlines()) == 149
        deletes = [lambda seq, spec=spec: route_message("del", spec, seq) for spec in routes]
        assert rtnl.request_all(deletes) == [0] * 70 + [errno.ESRCH] + [0] * 79
        assert namespace.run("ip route show dev s0") == ""
    finally:
        rtnl.close()


def test_wait_until_local_sees_that_links_local_route_only_rfc4862_5_4(namespaces: NamespaceFactory) -> None:
    """A home-prefix /128 on two links (the tunnel's copy and the home link's, make before break): only
    the ``local`` route of the asked link counts, and a missing one is a timeout, not an error."""
    namespace = namespaces()
    namespace.run("ip link add r0 type veth peer name r1 && ip link set r0 up && ip link set r1 up")
    address = IPv6Address("2001:db8:9::7")
    with namespace.entered():
        netlink = Netlink()
    try:
        netlink.add_address("r1", IPv6Interface((address, 128)), nodad=True)
        assert netlink.wait_until_local("r1", address, 1.0)  # the DAD worker adds it, even with nodad
        assert "local 2001:db8:9::7 dev r1" in namespace.run("ip -6 route show table local")
        assert not netlink.wait_until_local("r0", address, 0.01)
        netlink.add_address("r0", IPv6Interface((address, 128)), nodad=True)
        assert netlink.wait_until_local("r0", address, 1.0)
    finally:
        netlink.undo()
        netlink.close()
