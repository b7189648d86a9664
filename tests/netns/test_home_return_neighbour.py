"""The home-return IPv6 stall (docs/architecture.md, "home-return IPv6 stall") on real namespaces.

Back home the MN puts its home-prefix address on the link with ``nodad`` and routes via the home router
(``ForeignAgentLink.use_home``). The kernel makes the address local (its ``local`` route in table local)
from its DAD worker, after the ``add`` returned; a Neighbour Advertisement for the router that arrives
before is routed, not delivered (the MN does not forward), and the solicitation is only sent again a
second later (RFC 4861 §7.2.2, RetransTimer). The returns run here at SCHED_FIFO on one CPU, so the worker,
queued on that CPU, mostly cannot run until ``use_home`` gives the CPU up: without the wait for the local
route the default route came first in about half of the returns on this machine.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from ipaddress import IPv4Interface, IPv6Address

import pytest

from agents.net.rtnl import RTM_NEWROUTE, local_route
from agents.runtime.roles.mn_discovery_io import ForeignAgentLink, HomeLinkPlan
from tests.netns.conftest import NamespaceFactory, veth, wait_settled
from tests.support.threads import in_another_thread

pytestmark = pytest.mark.root

HOME4 = IPv4Interface("10.61.0.5/24")
HOME6 = IPv6Address("2001:db8:61::5")
ROUTER6 = IPv6Address("2001:db8:61::1")
DESTINATION6 = "2001:db8:62::9"  # behind the router: the packet goes via the default route
RTNLGRP_IPV6_ROUTE = 11
RETURNS = 20
"""Home returns per run: the kernel's fair server sometimes lets the worker run between the ``add`` and
the routes even at SCHED_FIFO, so one return without the wait is caught only every second to third time."""


def routes_added(monitor: socket.socket, link: int) -> list[str]:
    """The IPv6 routes announced on ``monitor`` so far, in order: "local" (the home address's, on the
    link with index ``link``) or "default"; others left out."""
    added: list[str] = []
    while True:
        try:
            data = monitor.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return added
        offset = 0
        while offset < len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            body = data[offset + 16 : offset + length]
            offset += (length + 3) & ~3
            if kind != RTM_NEWROUTE:
                continue
            if local_route(body) == (HOME6.packed, link):
                added.append("local")
            elif body[1] == 0:  # rtm_dst_len 0
                added.append("default")


def as_realtime_on_one_cpu(work: Callable[[], object]) -> None:
    """Run ``work`` on a thread at SCHED_FIFO pinned to one CPU (as an agent at real-time priority)."""

    def run() -> None:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        work()

    in_another_thread(run)


def test_home_router_answers_the_first_solicitation_rfc4861_7_2_5(namespaces: NamespaceFactory) -> None:
    mn, router = namespaces(), namespaces()
    veth(mn, "eth0", router, "r0")
    router.run(f"ip -6 addr add {ROUTER6}/64 dev r0 nodad")
    wait_settled(mn, router)
    with mn.entered():
        link = ForeignAgentLink("eth0", HOME4.ip, HomeLinkPlan(HOME4, None, (HOME6,), ROUTER6))
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        monitor = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        monitor.bind((0, 1 << (RTNLGRP_IPV6_ROUTE - 1)))
        eth0 = socket.if_nametoindex("eth0")
    try:

        def return_home_and_send() -> None:
            link.use_home()
            probe.sendto(b"x", (DESTINATION6, 9))  # from the home address: the MN solicits the router

        for attempt in range(RETURNS):
            as_realtime_on_one_cpu(return_home_and_send)
            time.sleep(0.1)  # well past the router's answer, well before a retransmission (1 s)
            # local before any route that makes the MN solicit the router
            assert routes_added(monitor, eth0) == ["local", "default"], f"return {attempt}"
            entry = mn.run(f"ip -6 neigh show {ROUTER6} dev eth0")
            assert "lladdr" in entry, f"return {attempt}: the router's advertisement was not taken: {entry!r}"
            link.link_lost()  # away again: the home addresses, routes and neighbours go
    finally:
        probe.close()
        monitor.close()
        link.close()
