"""The ebpf home agent's map entries, compiled from the core's answers (agents/datapath/ebpf.py): pure, no
root, no BPF object. Simultaneous bindings (RFC 5944 §3.6.1.3): the ``homes`` value lists the care-of
addresses the egress program copies each packet to, the newest first, at most ``MAX_COPIES``, all with the
newest one's encapsulation; the others are reported, never silently dropped from the accept rules."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Network

from agents.datapath.base import Encapsulation, TunnelTarget
from agents.datapath.ebpf import HOME_VALUE, MAX_COPIES, home_entries
from agents.datapath.projection import HomeBinding

HOME, AGENT = IPv4Address("192.0.2.10"), IPv4Address("192.0.2.1")
CARE_OFS = [IPv4Address(f"198.51.100.{n}") for n in range(1, 7)]


def decoded(binding: HomeBinding) -> tuple[int, list[IPv4Address]]:
    agent, protocol, copies, addresses = HOME_VALUE.unpack(home_entries(binding).home)
    assert agent == AGENT.packed
    return protocol, [IPv4Address(addresses[4 * i : 4 * i + 4]) for i in range(copies)]


def test_one_copy_per_care_of_newest_first_rfc5944_3_6_1_3() -> None:
    binding = HomeBinding(HOME, AGENT, {address: Encapsulation.IP_IN_IP for address in CARE_OFS[:3]})
    assert decoded(binding) == (4, CARE_OFS[2::-1])
    assert home_entries(binding).left_out == ()


def test_past_the_bound_the_oldest_get_no_copy_but_stay_accepted() -> None:
    binding = HomeBinding(HOME, AGENT, {address: Encapsulation.IP_IN_IP for address in CARE_OFS})
    protocol, copies = decoded(binding)
    assert protocol == 4 and len(copies) == MAX_COPIES == 4 and copies == CARE_OFS[:1:-1]
    entries = home_entries(binding)
    assert entries.left_out == (CARE_OFS[1], CARE_OFS[0])
    assert set(entries.care_ofs) == {address.packed for address in CARE_OFS}  # RFC 3024 §4.3.2 from all


def test_a_care_of_with_another_encapsulation_gets_no_copy() -> None:
    care_ofs = {CARE_OFS[0]: Encapsulation.IP_IN_IP, CARE_OFS[1]: Encapsulation.GRE}
    binding = HomeBinding(HOME, AGENT, care_ofs)
    assert decoded(binding) == (47, [CARE_OFS[1]])
    assert home_entries(binding).left_out == (CARE_OFS[0],)


def test_prefix_targets_come_from_the_core_rfc5454_3_7_1() -> None:
    """A link-local registered with code 1 still rides the home-address tunnel (target 0 in the map)."""
    code1, link_local = IPv6Network("2001:db8:2::/64"), IPv6Network("fe80::c000:20a/128")
    prefixes = {code1: TunnelTarget.CARE_OF, link_local: TunnelTarget.CARE_OF}
    entries = home_entries(HomeBinding(HOME, AGENT, {CARE_OFS[0]: Encapsulation.IP_IN_IP}, prefixes))
    assert entries.prefixes == {code1: HOME.packed + b"\1\0\0\0", link_local: HOME.packed + b"\0\0\0\0"}
