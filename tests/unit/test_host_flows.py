"""topologies/host_flows.py: the root namespace's conntrack entries of the testbed's bridged traffic are
removed at teardown, and only those (the address ranges of the plan, both families)."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address

import pytest

from topologies import addressing
from topologies.addressing import TESTBED_RANGES, ForeignAgentPlan
from topologies.host_flows import conntrack_delete_commands


def test_each_range_is_deleted_by_source_and_by_destination_in_its_family() -> None:
    commands = conntrack_delete_commands([IPv4Network("192.0.2.0/24"), IPv6Network("2001:db8::/32")])
    assert commands == [
        ["conntrack", "-D", "-f", "ipv4", "--orig-src", "192.0.2.0/24"],
        ["conntrack", "-D", "-f", "ipv4", "--orig-dst", "192.0.2.0/24"],
        ["conntrack", "-D", "-f", "ipv6", "--orig-src", "2001:db8::/32"],
        ["conntrack", "-D", "-f", "ipv6", "--orig-dst", "2001:db8::/32"],
    ]


def plan_addresses() -> list[str]:
    """Every interface address the plan's constants and its first and last foreign agent name."""
    found = [
        str(value.ip)
        for name, value in vars(addressing).items()
        if name.isupper() and hasattr(value, "ip") and hasattr(value, "network")
    ]
    for index in (1, addressing.MAX_FOREIGN_AGENTS):
        plan = ForeignAgentPlan(index)
        found += [str(plan.access4.ip), str(plan.network.network_address)]
    return found


@pytest.mark.parametrize("address", plan_addresses())
def test_the_ranges_cover_the_address_plan(address: str) -> None:
    """An address outside TESTBED_RANGES would leave its host conntrack entries behind."""
    assert any(ip_address(address) in network for network in TESTBED_RANGES), address


def test_the_ranges_leave_the_hosts_own_networks_alone() -> None:
    """libvirt's 192.168.121/122 and Docker's 172.17 are the host's, not ours."""
    for foreign in ("192.168.121.1", "192.168.122.1", "172.17.0.1", "10.1.0.1"):
        assert not any(ip_address(foreign) in network for network in TESTBED_RANGES), foreign
