"""r0's ingress filter (BCP 38 / RFC 2827, topologies/ingress.py): where the topology puts it, the rules it
adds and removes, and how their drop counters are read. The kernel's side is exercised by the security
scenario (tests/integration/test_security_scenario.py: every forged-FA datagram counted at r0)."""

from __future__ import annotations

from topologies import ingress
from topologies.dualstack import DualStackTopo

LISTING = """Chain PREROUTING (policy ACCEPT 9 packets, 900 bytes)
    pkts      bytes target     prot opt in     out     source               destination
   40000  2240000 DROP       0    --  r0-cn  *       0.0.0.0/0            0.0.0.0/0            rpfilter invert /* dsmip-bcp38 */
      12      960 DROP       0    --  r0-x   *       0.0.0.0/0            0.0.0.0/0            /* other */
Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination
       3      240 DROP       0    --  r0-cn  *       ::/0                 ::/0                 rpfilter invert /* dsmip-bcp38 */
"""  # noqa: E501


def test_the_topology_filters_only_the_correspondents_link_when_asked() -> None:
    assert DualStackTopo(foreign_agents=1, nat=False).nodeSpec("r0").ingress_filter == []
    filtered = DualStackTopo(foreign_agents=1, nat=False, ingress_filter=True)
    assert filtered.nodeSpec("r0").ingress_filter == ["r0-cn"]
    assert all(spec.ingress_filter == [] for name, spec in filtered.specs.items() if name != "r0")


def test_rules_for_both_families_added_and_deleted_alike() -> None:
    added, deleted = ingress.commands("-A", ["r0-cn"]), ingress.commands("-D", ["r0-cn"])
    assert [command.split()[0] for command in added] == ["iptables", "ip6tables"]
    for command in added:
        assert "-t raw -A PREROUTING -i r0-cn -m rpfilter --invert" in command and command.endswith("-j DROP")
    assert [command.replace(" -A ", " -D ") for command in added] == deleted


def test_drops_are_the_sum_of_our_rules_counters_only() -> None:
    assert ingress.dropped(LISTING) == 40_003
    assert ingress.dropped("Chain PREROUTING (policy ACCEPT)\n") is None
