"""netem on the home uplink (issue 15): where the kernel has sch_netem (the VM's full kernel) the qdiscs sit
on both ends of r0 ↔ home LAN and every round trip across it takes at least the added time; where it lacks
sch_netem (this host) the scenario refuses --ha-rtt with exit 2 and says why, before building anything."""

from __future__ import annotations

import re

import pytest

from scenarios.harness.preflight import netem_available
from tests.support.scenario import run_scenario
from topologies.addressing import CN4
from topologies.build import build_network, configure, run_checked
from topologies.dualstack import DualStackTopo, process_tag

pytestmark = [pytest.mark.mininet, pytest.mark.root]

ADDED_RTT_MS = 40


def ping_min_ms(node: object, address: str) -> float:
    out = run_checked(node, f"ping -n -q -c 5 -i 0.2 -W 2 {address}")
    found = re.search(r"= ([\d.]+)/", out)
    assert found, out
    return float(found.group(1))


def test_home_uplink_delay_where_netem_exists_else_refused() -> None:
    if not netem_available():
        finished = run_scenario(["--ha-rtt", str(ADDED_RTT_MS), "-q"], timeout=60)
        assert finished.returncode == 2, finished.explain()
        assert "sch_netem" in finished.stderr and "./testbed vm" in finished.stderr, finished.explain()
        assert "Traceback" not in finished.stderr
        return
    tag = process_tag()
    topo = DualStackTopo(tag=tag, home_netem=f"delay {ADDED_RTT_MS / 2:g}ms")
    net = build_network(topo)
    try:
        configure(net, topo)
        assert "netem" in run_checked(net["r0"], "tc qdisc show dev r0-home")
        home = f"ds{tag}home"
        assert "netem" in run_checked(net[home], f"tc qdisc show dev {home}-r0")
        # the HA's round trip to the correspondent crosses the uplink both ways: at least the added time
        assert ping_min_ms(net["ha"], str(CN4.ip)) >= ADDED_RTT_MS
    finally:
        net.stop()
