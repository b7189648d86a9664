"""r0's ingress filter at the kernel level (BCP 38 / RFC 2827; RFC 3704 §2.2 strict reverse-path check;
:mod:`topologies.ingress`): three namespaces of our own — an attacker, a router with the module's rules on
its attacker-side interface, a home host behind it. Datagrams from the attacker's own addresses are
forwarded; datagrams forging a home-side source (IPv4 and IPv6) are dropped at the router and counted by
the rules, and reach the home host again once the rules are deleted (so the rules did the dropping)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.netns.conftest import Namespace, NamespaceFactory, veth, wait_settled
from topologies import ingress

pytestmark = pytest.mark.root

PORT = 43434
EACH = 5
GENUINE = {4: "10.77.1.2", 6: "fd77:1::2"}
FORGED = {4: "10.77.2.50", 6: "fd77:2::50"}  # home-side addresses: r0 routes them out of r0-ha
HOME = {4: "10.77.2.2", 6: "fd77:2::2"}


@pytest.fixture(scope="module")
def edge(namespaces: NamespaceFactory) -> Iterator[tuple[Namespace, Namespace, Namespace]]:
    attacker, router, home = namespaces(), namespaces(), namespaces()
    veth(attacker, "cn-eth0", router, "r0-cn")
    veth(router, "r0-ha", home, "ha-eth0")
    router.run(
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 "
        "net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.r0-cn.rp_filter=0"
    )
    router.run("ip addr add 10.77.1.1/24 dev r0-cn && ip addr add fd77:1::1/64 dev r0-cn nodad")
    router.run("ip addr add 10.77.2.1/24 dev r0-ha && ip addr add fd77:2::1/64 dev r0-ha nodad")
    attacker.run("ip addr add 10.77.1.2/24 dev cn-eth0 && ip addr add fd77:1::2/64 dev cn-eth0 nodad")
    # the forged sources, local to the attacker so that it can bind them
    attacker.run("ip addr add 10.77.2.50/32 dev cn-eth0 && ip addr add fd77:2::50/128 dev cn-eth0 nodad")
    attacker.run("ip route add default via 10.77.1.1 && ip -6 route add default via fd77:1::1")
    home.run("ip addr add 10.77.2.2/24 dev ha-eth0 && ip addr add fd77:2::2/64 dev ha-eth0 nodad")
    home.run("ip route add default via 10.77.2.1 && ip -6 route add default via fd77:2::1")
    wait_settled(attacker, router, home)  # link-locals past DAD: neighbour discovery can answer
    yield attacker, router, home


def exchange(attacker: Namespace, home: Namespace) -> dict[str, set[str]]:
    """Send EACH datagrams from every genuine and forged source to the home host; the sources of what
    arrived, per family."""
    receivers = {}
    with home.entered():
        for family, address in HOME.items():
            receiver = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6, socket.SOCK_DGRAM)
            receiver.bind((address, PORT))
            receiver.settimeout(0.5)
            receivers[family] = receiver
    with attacker.entered():
        for family in (4, 6):
            for source in (GENUINE[family], FORGED[family]):
                kind = socket.AF_INET if family == 4 else socket.AF_INET6
                with socket.socket(kind, socket.SOCK_DGRAM) as sender:
                    sender.bind((source, 0))
                    for n in range(EACH):
                        sender.sendto(f"{source} {n}".encode(), (HOME[family], PORT))
    arrived: dict[str, set[str]] = {"4": set(), "6": set()}
    deadline = time.monotonic() + 3.0
    for family, receiver in receivers.items():
        with receiver:
            while time.monotonic() < deadline:
                try:
                    data, _ = receiver.recvfrom(100)
                except TimeoutError:
                    break
                arrived[str(family)].add(data.decode())
    return arrived


def sent_from(source: str) -> set[str]:
    return {f"{source} {n}" for n in range(EACH)}


def dropped(router: Namespace) -> int | None:
    return ingress.dropped("\n".join(router.run(command) for command in ingress.listing_commands()))


def test_forged_sources_are_dropped_and_counted_genuine_ones_forwarded(
    edge: tuple[Namespace, Namespace, Namespace],
) -> None:
    attacker, router, home = edge
    assert dropped(router) is None  # no rule of ours yet
    for command in ingress.commands("-A", ["r0-cn"]):
        router.run(command)
    assert dropped(router) == 0
    arrived = exchange(attacker, home)
    for family in (4, 6):
        assert arrived[str(family)] == sent_from(GENUINE[family]), (family, arrived)
    assert dropped(router) == 2 * EACH  # the forged IPv4 and IPv6 datagrams, by the rules
    v4, v6 = (router.run(command) for command in ingress.listing_commands())
    assert [line.split()[0] for line in v4.splitlines() if ingress.MARK in line] == [str(EACH)]
    assert [line.split()[0] for line in v6.splitlines() if ingress.MARK in line] == [str(EACH)]

    for command in ingress.commands("-D", ["r0-cn"]):
        router.run(command)
    assert dropped(router) is None
    arrived = exchange(attacker, home)  # without the rules the forged datagrams get through
    for family in (4, 6):
        assert arrived[str(family)] == sent_from(GENUINE[family]) | sent_from(FORGED[family]), family
