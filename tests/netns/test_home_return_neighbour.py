"""The home-return IPv6 stall (docs/architecture.md, "home-return IPv6 stall") on real namespaces.

Back home the MN puts its home-prefix address on the link with ``nodad`` and routes via the home router
(``ForeignAgentLink.use_home``). The kernel makes the address local (its ``local`` route in table local)
from its DAD worker, after the ``add`` returned; a Neighbour Advertisement for the router that arrives
before is routed, not delivered (the MN does not forward), and the solicitation is only sent again a
second later (RFC 4861 §7.2.2, RetransTimer). The returns run here at SCHED_FIFO on one CPU, and during
each a SCHED_FIFO process spins on every other CPU for a few milliseconds, so the worker (of an unbound
workqueue, a fair-class task) can run only when ``use_home`` gives its CPU up, or once the spins end:
without the wait for the local route the default route came first in 20 returns of 20 on this machine
(idle or busy), with it never.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import subprocess
import sys
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
"""Home returns per run: with the wait, the worker runs sometimes during its first poll on this thread's
CPU, sometimes only after the other CPUs' spins; both are to be taken."""


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


REALTIME_PRIORITY = 10
"""SCHED_FIFO priority of the returns' thread and of the hogs beside it: any keeps fair-class tasks off."""
HOG_SPIN = 0.005
"""How long a hog keeps its CPU per return (s): well past a ``use_home`` without the wait (0.3–0.7 ms
here), well within its wait for the local route (20 ms) if the worker was queued on a hogged CPU."""
HOG = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(sys.argv[2])))
spin = float(sys.argv[3])
while sys.stdin.buffer.read(1):  # one byte a spin; end of input: done
    sys.stdout.buffer.write(b"."); sys.stdout.buffer.flush()  # spinning from here
    end = time.monotonic() + spin
    while time.monotonic() < end:
        pass
"""


class OtherCpusHogged:
    """One process per CPU other than ``cpu``, at SCHED_FIFO there, that on :meth:`hog` keeps its CPU for
    ``HOG_SPIN`` s: meanwhile no fair-class task, such as the kernel's (unbound) addrconf worker, runs
    anywhere but on ``cpu``. Processes, not threads, so that a spinning hog does not hold the GIL."""

    def __init__(self, cpu: int) -> None:
        self.hogs: dict[int, subprocess.Popen[bytes]] = {}
        try:
            for other in sorted(os.sched_getaffinity(0) - {cpu}):
                command = [sys.executable, "-c", HOG, str(other), str(REALTIME_PRIORITY), str(HOG_SPIN)]
                self.hogs[other] = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except BaseException:
            self.close()
            raise

    def hog(self) -> None:
        """Return once every other CPU is taken for ``HOG_SPIN`` s from now."""
        for other, hog in self.hogs.items():
            assert hog.stdin is not None and hog.stdout is not None
            hog.stdin.write(b"s")
            hog.stdin.flush()
            ready, _, _ = select.select([hog.stdout], [], [], 5)
            assert ready and hog.stdout.read(1) == b".", f"the hog on CPU {other} did not start"

    def close(self) -> None:
        """End the hogs: each after its current spin at most; killed if one has not within 5 s."""
        for hog in self.hogs.values():
            assert hog.stdin is not None
            with contextlib.suppress(BrokenPipeError):  # it ended already
                hog.stdin.close()  # the hog's loop ends after its current spin
        for hog in self.hogs.values():
            try:
                hog.wait(5)
            except subprocess.TimeoutExpired:
                hog.kill()
                hog.wait()
            assert hog.stdout is not None
            hog.stdout.close()


def as_realtime_on_one_cpu(cpu: int, work: Callable[[], object]) -> None:
    """Run ``work`` on a thread at SCHED_FIFO pinned to ``cpu`` (as an agent at real-time priority)."""

    def run() -> None:
        os.sched_setaffinity(0, {cpu})
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
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
    cpu = min(os.sched_getaffinity(0))
    hogs: OtherCpusHogged | None = None
    try:
        hogs = OtherCpusHogged(cpu)

        def return_home_and_send() -> None:
            assert hogs is not None
            hogs.hog()  # the worker can now run only when this thread gives its CPU up
            link.use_home()
            probe.sendto(b"x", (DESTINATION6, 9))  # from the home address: the MN solicits the router

        for attempt in range(RETURNS):
            as_realtime_on_one_cpu(cpu, return_home_and_send)
            time.sleep(0.1)  # well past the router's answer, well before a retransmission (1 s)
            # local before any route that makes the MN solicit the router
            assert routes_added(monitor, eth0) == ["local", "default"], f"return {attempt}"
            entry = mn.run(f"ip -6 neigh show {ROUTER6} dev eth0")
            assert "lladdr" in entry, f"return {attempt}: the router's advertisement was not taken: {entry!r}"
            link.link_lost()  # away again: the home addresses, routes and neighbours go
    finally:
        if hogs is not None:
            hogs.close()
        probe.close()
        monitor.close()
        link.close()
