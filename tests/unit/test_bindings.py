"""The binding table on its own (RFC 5944 §3.8.1, §3.6.1.2-§3.6.1.3; RFC 5454 §3.3, §3.8; RFC 3024 §4.3.2)."""

from __future__ import annotations

import json
import math
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.mip.common.bindings import (
    BindingTable,
    CareOf,
    CareOfEntry,
    PrefixBinding,
    PrefixChanges,
    PrefixOwners,
    TunnelTarget,
)
from agents.mip.common.config import Encapsulation

HOA = IPv4Address("192.0.2.10")
HOA2 = IPv4Address("192.0.2.11")
COA = CareOf(IPv4Address("198.51.100.5"))
COA2 = CareOf(IPv4Address("203.0.113.7"))
NATTED = CareOf(IPv4Address("203.0.113.7"), 4500)
P1 = IPv6Network("2001:db8:10:1::/64")
P2 = IPv6Network("2001:db8:10:2::/64")
WIDE = IPv6Network("2001:db8:10::/48")


def entry(care_of: CareOf = COA, expires_at: float = 100.0, lifetime: int = 100) -> CareOfEntry:
    return CareOfEntry(
        care_of=care_of,
        encapsulation=Encapsulation.IP_IN_IP,
        reverse_tunnel=True,
        colocated=True,
        lifetime=lifetime,
        registered_at=0.0,
        expires_at=expires_at,
        identification=1,
        request_source=(care_of.address, 434),
    )


def home(prefix: IPv6Network) -> PrefixBinding:
    return PrefixBinding(prefix, TunnelTarget.HOME_ADDRESS)


def test_put_without_keep_replaces_other_care_ofs_rfc5944_3_6_1_3() -> None:
    table = BindingTable()
    table.put(HOA, entry(COA), keep_others=False)
    dropped = table.put(HOA, entry(COA2), keep_others=False)
    assert [item.care_of for item in dropped] == [COA]
    assert table.care_of_count(HOA) == 1


def test_put_with_keep_holds_several_and_refreshes_same_key_rfc5944_3_6_1_3() -> None:
    table = BindingTable()
    table.put(HOA, entry(COA), keep_others=True)
    table.put(HOA, entry(COA2), keep_others=True)
    assert table.put(HOA, entry(COA, expires_at=500.0), keep_others=True) == []
    binding = table.get(HOA)
    assert binding is not None and binding.care_ofs[COA].expires_at == 500.0 and len(binding.care_ofs) == 2


def test_care_of_with_udp_port_is_a_distinct_key_rfc3519() -> None:
    table = BindingTable()
    table.put(HOA, entry(COA2), keep_others=True)
    table.put(HOA, entry(NATTED), keep_others=True)
    assert table.care_of_count(HOA) == 2
    assert str(NATTED) == "203.0.113.7:4500"
    removed = table.remove_care_of_address(HOA, COA2.address)  # deregistration by address
    assert {item.care_of for item in removed} == {COA2, NATTED}


def test_expired_and_next_expiry_rfc5944_3_8_1() -> None:
    table = BindingTable()
    table.put(HOA, entry(COA, expires_at=50.0), keep_others=True)
    table.put(HOA, entry(COA2, expires_at=80.0), keep_others=True)
    table.put(HOA2, entry(COA, expires_at=math.inf, lifetime=0xFFFF), keep_others=True)
    assert table.next_expiry() == 50.0
    assert table.expired(49.9) == []
    assert [(home_address, item.care_of) for home_address, item in table.expired(80.0)] == [
        (HOA, COA),
        (HOA, COA2),
    ]


def test_prefix_ownership_refuses_overlap_across_mobile_nodes_rfc5454_3_3() -> None:
    table = BindingTable()
    table.put(HOA, entry(), keep_others=False)
    table.replace_prefixes(HOA, [home(P1)])
    assert table.overlaps_other(HOA2, WIDE)  # /48 covers P1
    assert table.overlaps_other(HOA2, P1)
    assert not table.overlaps_other(HOA2, P2)
    assert not table.overlaps_other(HOA, WIDE)  # its own prefixes never conflict
    assert table.prefix_owner(WIDE) == HOA
    link_local = IPv6Network("fe80::c000:20b/128")
    assert not table.overlaps_other(HOA2, link_local)


def test_replace_prefixes_reports_added_removed_changed_rfc5454_3_8() -> None:
    table = BindingTable()
    table.put(HOA, entry(), keep_others=False)
    table.replace_prefixes(HOA, [home(P1), home(P2)])
    changes = table.replace_prefixes(HOA, [PrefixBinding(P1, TunnelTarget.CARE_OF), home(WIDE)])
    assert [item.prefix for item in changes.removed] == [P2]
    assert [item.prefix for item in changes.added] == [WIDE]
    assert [item.prefix for item in changes.changed] == [P1]
    binding = table.get(HOA)
    assert binding is not None and set(binding.prefixes) == {P1, WIDE}
    table.replace_prefixes(HOA, [])
    assert table.prefix_owner(P2) is None and table.prefix_owner(WIDE) is None


def test_remove_all_releases_prefixes_rfc5944_3_6_1_2() -> None:
    table = BindingTable()
    table.put(HOA, entry(), keep_others=False)
    table.replace_prefixes(HOA, [home(P1)])
    care_ofs, prefixes = table.remove_all(HOA)
    assert len(care_ofs) == 1 and [item.prefix for item in prefixes] == [P1]
    assert table.get(HOA) is None and table.prefix_owner(P1) is None and len(table) == 0


def test_drop_if_empty_only_when_no_care_of_is_left() -> None:
    table = BindingTable()
    table.put(HOA, entry(), keep_others=False)
    table.replace_prefixes(HOA, [home(P1)])
    assert table.drop_if_empty(HOA) == []
    table.remove_care_of(HOA, COA)
    assert [item.prefix for item in table.drop_if_empty(HOA)] == [P1]
    assert HOA not in table


def test_reverse_tunnel_checks_rfc3024_4_3_2_rfc5454_3_3_2() -> None:
    table = BindingTable()
    table.put(HOA, entry(COA), keep_others=False)
    table.replace_prefixes(HOA, [home(P1), PrefixBinding(P2, TunnelTarget.CARE_OF)])
    inside_p1, inside_p2 = IPv6Address("2001:db8:10:1::1"), IPv6Address("2001:db8:10:2::1")
    assert table.reverse_ipv4(COA.address, HOA) == 4  # IP-in-IP from the care-of address (§4.3.2)
    assert table.reverse_ipv4(COA2.address, HOA) is None
    assert table.reverse_ipv4(COA.address, HOA2) is None
    # RFC 5454 §3.3.2: code 0 from the home address (IPv6-in-IPv4), code 1 straight from the care-of
    assert table.reverse_ipv6(HOA, inside_p1) == 41
    assert table.reverse_ipv6(COA.address, inside_p1) is None
    assert table.reverse_ipv6(COA.address, inside_p2) == 41
    assert table.reverse_ipv6(HOA, inside_p2) is None
    assert table.reverse_ipv6(COA2.address, inside_p1) is None
    assert table.reverse_ipv6(HOA, IPv6Address("2001:db8:10:3::1")) is None
    assert table.accepts_reverse_ipv4(COA.address, HOA) and table.accepts_reverse_ipv6(HOA, inside_p1)


def test_copies_one_per_care_of_and_ipv6_routes_rfc5944_3_6_1_3_rfc5454_3_3_2() -> None:
    table = BindingTable()
    table.put(HOA, entry(COA), keep_others=True)
    table.put(HOA, entry(COA2), keep_others=True)
    table.replace_prefixes(HOA, [home(WIDE), PrefixBinding(P2, TunnelTarget.CARE_OF)])
    assert [(copy.care_of, copy.protocol) for copy in table.copies(HOA)] == [(COA, 4), (COA2, 4)]
    assert table.ipv6_route(IPv6Address("2001:db8:10:2::1")) == (HOA, TunnelTarget.CARE_OF)  # longest
    assert table.ipv6_route(IPv6Address("2001:db8:10:5::1")) == (HOA, TunnelTarget.HOME_ADDRESS)
    assert all(copy.via_home for copy in table.ipv6_copies(IPv6Address("2001:db8:10:5::1")))
    link_local = IPv6Address("fe80::c000:20a")  # fe80::<home address> (RFC 4213 §3.7)
    assert table.ipv6_route(link_local) == (HOA, TunnelTarget.HOME_ADDRESS)
    assert table.ipv6_route(IPv6Address("2001:db8:11::1")) is None
    assert table.copies(HOA2) == ()


def test_snapshot_is_json() -> None:
    table = BindingTable()
    table.put(HOA2, entry(COA, expires_at=math.inf), keep_others=False)
    table.put(HOA, entry(COA2, expires_at=60.0), keep_others=False)
    table.replace_prefixes(HOA, [home(P1)])
    snapshot = table.snapshot(10.0)
    json.dumps(snapshot)
    assert [item["home_address"] for item in snapshot] == [str(HOA), str(HOA2)]
    assert snapshot[0]["care_ofs"][0]["remaining"] == 50.0  # type: ignore[index]
    assert snapshot[1]["care_ofs"][0]["remaining"] is None  # type: ignore[index]


def test_overlap_index_both_directions_and_after_release_rfc5454_3_3() -> None:
    """The O(log n) overlap index: a registered /48 contains a requested /64 and vice versa; released
    prefixes stop conflicting; a refreshed binding's old expiry no longer counts."""
    table = BindingTable()
    table.put(HOA, entry(), keep_others=False)
    table.replace_prefixes(HOA, [home(WIDE)])
    assert table.overlaps_other(HOA2, P1)  # inside the registered /48
    assert table.overlaps_other(HOA2, IPv6Network("2001:db8::/32"))  # contains it
    assert not table.overlaps_other(HOA2, IPv6Network("2001:db8:11::/48"))
    table.replace_prefixes(HOA, [home(P2)])
    assert not table.overlaps_other(HOA2, P1) and table.overlaps_other(HOA2, P2)
    table.remove_all(HOA)
    assert not table.overlaps_other(HOA2, P2)
    table.put(HOA2, entry(expires_at=10.0), keep_others=False)
    table.put(HOA2, entry(expires_at=30.0), keep_others=False)  # renewal
    assert table.next_expiry() == 30.0
    assert table.expired(20.0) == []


PREFIX_UNIVERSE = [
    IPv6Network(text)
    for text in (
        "2001:db8::/32",
        "2001:db8:10::/48",
        "2001:db8:10:1::/64",
        "2001:db8:10:2::/64",
        "2001:db8:11::/48",
        "2001:db8:10:1::5/128",
        "2001:db9::/32",
    )
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.sampled_from(PREFIX_UNIVERSE), st.sampled_from([HOA, HOA2]))),
    st.sampled_from(PREFIX_UNIVERSE),
)
def test_prefix_owners_answer_like_a_scan_rfc5454_3_3(
    steps: list[tuple[bool, IPv6Network, IPv4Address]], query: IPv6Network
) -> None:
    """The index (used by the binding table and the datapath) finds exactly the owners a scan of
    every registered prefix with ``overlaps`` finds, after any sequence of adds and removes."""
    owners, registered = PrefixOwners(), {}
    for add, prefix, owner in steps:
        if add:
            owners.add(prefix, owner)
            registered[prefix] = owner
        else:
            owners.remove(prefix)
            registered.pop(prefix, None)
    expected = sorted(owner for prefix, owner in registered.items() if prefix.overlaps(query))
    assert sorted(owners.overlapping(query)) == expected
    assert owners.owner(query) == registered.get(query) and len(owners) == len(registered)


def test_renewals_do_not_grow_the_expiry_heap_rfc5944_3_8_1() -> None:
    """Every renewal pushes a new expiry; the superseded ones are dropped once the heap has doubled,
    so it stays proportional to the bindings, and expiry answers are unchanged."""
    table = BindingTable()
    homes = [IPv4Address("10.0.0.1") + index for index in range(100)]
    for step in range(5000):
        table.put(homes[step % 100], entry(expires_at=100.0 + step), keep_others=False)
    assert len(table._expiries) <= 2 * 100 + 64
    assert table.next_expiry() == 100.0 + 4900
    due = table.expired(100.0 + 4950)
    assert [home_address for home_address, _ in due] == sorted(homes[:51])


def test_a_renewal_keeps_the_registered_prefix_objects() -> None:
    table = BindingTable()
    table.put(HOA, entry(), keep_others=False)
    table.replace_prefixes(HOA, [home(P1), home(P2)])
    registered = table.get(HOA).prefixes
    assert table.replace_prefixes(HOA, [home(P1), home(P2)]) == PrefixChanges()
    assert table.get(HOA).prefixes is registered
    table.replace_prefixes(HOA, [home(P2), home(P1)])  # same prefixes, new order: taken as given
    assert list(table.get(HOA).prefixes) == [P2, P1]
