"""The home agent accepts a prefix outside a node's configured ones only if the DHCPv6 server delegated it
to that node (RFC 5454 §3.7.1), and answers code 9 otherwise (§2.2)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Network

from agents.mip.common.events import PrefixRegistered
from agents.mip.ha.delegation import Delegation, DelegationBook, mobile_node_duid
from agents.mip.wire.codes import PrefixReplyCode
from agents.mip.wire.dhcpv6 import duid_en
from agents.mip.wire.dsmip import PrefixRequest
from tests.unit.test_home_agent import (
    COA,
    HOA,
    HOA2,
    LINK_LOCAL,
    Clock,
    drain,
    make_ha,
    of_type,
    one_reply,
    prefixes,
    rrq,
)

DELEGATED = IPv6Network("2001:db8:d000:100::/56")
OTHER = IPv6Network("2001:db8:d000:200::/56")


def book(*delegations: Delegation) -> DelegationBook:
    result = DelegationBook.for_home_addresses((HOA, HOA2))
    result.update(delegations, 0.0)
    return result


def code_for(network: IPv6Network, delegations: DelegationBook | None, clock: Clock) -> int:
    ha = make_ha()
    ha.delegations = delegations
    reply = one_reply(ha, rrq(clock, extensions=prefixes(network)), clock, COA)
    (prefix_reply,) = reply.prefix_replies
    return prefix_reply.code


def test_default_duid_is_duid_en_with_the_home_address() -> None:
    assert mobile_node_duid(IPv4Address("192.0.2.10")) == duid_en(32473, b"dsmip4\xc0\x00\x02\x0a")
    assert mobile_node_duid(HOA) != mobile_node_duid(HOA2)


def test_prefix_delegated_to_this_node_is_accepted_and_registered() -> None:
    clock = Clock()
    ha = make_ha()
    ha.delegations = book(Delegation(DELEGATED, mobile_node_duid(HOA), 1, clock.now + 60))
    reply = one_reply(ha, rrq(clock, extensions=prefixes(DELEGATED)), clock, COA)
    assert [r.code for r in reply.prefix_replies] == [PrefixReplyCode.ACCEPTED_TO_HOA]
    registered = of_type(drain(ha), PrefixRegistered)
    assert [event.prefix.prefix for event in registered] == [DELEGATED]


def test_without_a_delegation_book_an_unconfigured_prefix_gets_9() -> None:
    assert code_for(DELEGATED, None, Clock()) == PrefixReplyCode.REJECTED_ADMIN


def test_prefix_delegated_to_another_node_gets_9() -> None:
    clock = Clock()
    delegations = book(Delegation(DELEGATED, mobile_node_duid(HOA2), 1, clock.now + 60))
    assert code_for(DELEGATED, delegations, clock) == PrefixReplyCode.REJECTED_ADMIN


def test_prefix_never_delegated_gets_9() -> None:
    clock = Clock()
    delegations = book(Delegation(OTHER, mobile_node_duid(HOA), 1, clock.now + 60))
    assert code_for(DELEGATED, delegations, clock) == PrefixReplyCode.REJECTED_ADMIN


def test_expired_delegation_gets_9() -> None:
    clock = Clock()
    delegations = book(Delegation(DELEGATED, mobile_node_duid(HOA), 1, clock.now - 0.5))
    assert code_for(DELEGATED, delegations, clock) == PrefixReplyCode.REJECTED_ADMIN


def test_lease_from_an_unknown_client_gets_9() -> None:
    clock = Clock()
    delegations = book(Delegation(DELEGATED, duid_en(9, b"stranger"), 1, None))
    assert code_for(DELEGATED, delegations, clock) == PrefixReplyCode.REJECTED_ADMIN


def test_a_longer_prefix_inside_the_delegation_is_accepted_a_wider_one_is_not() -> None:
    clock = Clock()
    delegations = book(Delegation(DELEGATED, mobile_node_duid(HOA), 1, None))
    assert code_for(IPv6Network("2001:db8:d000:140::/64"), delegations, clock) == 0
    assert code_for(IPv6Network("2001:db8:d000::/48"), delegations, clock) == PrefixReplyCode.REJECTED_ADMIN


def test_configured_prefixes_still_need_no_delegation() -> None:
    clock = Clock()
    assert code_for(IPv6Network("2001:db8:10:1::/64"), book(), clock) == PrefixReplyCode.ACCEPTED_TO_HOA


def test_book_reports_owners_and_remaining_lifetime() -> None:
    delegations = book(Delegation(DELEGATED, mobile_node_duid(HOA), 3, 30.0))
    (entry,) = delegations.to_dicts(10.0)
    assert entry["owner"] == str(HOA) and entry["expires_in"] == 20.0 and entry["prefix"] == str(DELEGATED)


def test_only_requests_for_unknown_or_stale_prefixes_need_kea() -> None:
    clock = Clock()
    delegations = book(Delegation(DELEGATED, mobile_node_duid(HOA), 1, clock.now + 60))
    delegations.updated_at = clock.now
    known = rrq(clock, extensions=prefixes(DELEGATED))
    unknown = rrq(clock, extensions=prefixes(OTHER))
    link_local_only = rrq(clock, extensions=(PrefixRequest.for_link_local(LINK_LOCAL),))
    stranger = rrq(clock, home=IPv4Address("192.0.2.99"), extensions=prefixes(OTHER))
    assert not delegations.needs_refresh(known, clock.now + 0.5, max_age=1.0)
    assert delegations.needs_refresh(known, clock.now + 1.5, max_age=1.0)  # the answer is too old
    assert delegations.needs_refresh(unknown, clock.now + 0.5, max_age=1.0)
    assert not delegations.needs_refresh(link_local_only, clock.now, max_age=1.0)
    assert not delegations.needs_refresh(stranger, clock.now, max_age=1.0)  # not a configured node
    assert not delegations.needs_refresh(b"\x04\x29\x00\x00garbage", clock.now, max_age=1.0)
    assert not delegations.needs_refresh(b"", clock.now, max_age=1.0)
