"""The foreign agent core takes back saved visitor entries after a restart, on a fake clock (crash recovery;
RFC 5944 §3.7.1 visitor list and lifetimes, RFC 3024 §3 reverse tunnelling still offered)."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address

from agents.mip.common.config import Encapsulation
from agents.mip.fa.config import DeliveryStyle
from agents.mip.fa.events import VisitorAdded, VisitorRemoved, VisitorUpdated
from agents.mip.fa.visitors import Visitor
from tests.unit.test_foreign_agent import (
    COA,
    HA,
    HOA,
    IDENT,
    MAC,
    MN_PORT,
    T0,
    drain,
    make_fa,
    of_type,
    register,
)


def visitor(**changes: object) -> Visitor:
    base = Visitor(
        home_address=HOA,
        home_agent=HA,
        care_of=COA,
        link_address=MAC,
        source_address=HOA,
        source_port=MN_PORT,
        interface="acc0",
        reverse_tunnel=True,
        delivery_style=DeliveryStyle.DIRECT,
        encapsulation=Encapsulation.IP_IN_IP,
        colocated=False,
        lifetime=300,
        registered_at=T0 - 100.0,
        expires_at=T0 + 200.0,
        identification=IDENT,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_restored_visitor_is_delivered_again_and_expires_on_time_rfc5944_3_7_1() -> None:
    fa = make_fa()
    assert fa.restore_visitor(visitor(), T0) is None
    run = drain(fa, T0)
    [added] = of_type(run, VisitorAdded)
    assert (added.home_address, added.link_address, added.reverse_tunnel) == (HOA, MAC, True)
    assert fa.visitor(HOA) == visitor()
    fa.handle_timer(T0 + 199.0)
    assert not of_type(drain(fa, T0 + 199.0), VisitorRemoved)
    fa.handle_timer(T0 + 200.0)
    assert of_type(drain(fa, T0 + 200.0), VisitorRemoved)[0].reason == "expired"
    assert fa.visitor(HOA) is None


def test_expired_or_foreign_entries_are_refused() -> None:
    fa = make_fa()
    assert fa.restore_visitor(visitor(expires_at=T0), T0) == "expired"
    other = IPv4Address("203.0.113.99")
    assert "no longer ours" in (fa.restore_visitor(visitor(care_of=other), T0) or "")
    assert not drain(fa, T0).events and fa.visitor(HOA) is None


def test_policy_withdrawn_since_the_crash_is_respected_rfc3024_3() -> None:
    no_reverse = make_fa(reverse_tunnel_supported=False, encapsulating_delivery_supported=False)
    assert "reverse tunnelling" in (no_reverse.restore_visitor(visitor(), T0) or "")
    no_encapsulating = make_fa(encapsulating_delivery_supported=False)
    style = visitor(delivery_style=DeliveryStyle.ENCAPSULATING)
    assert "encapsulating" in (no_encapsulating.restore_visitor(style, T0) or "")
    full = make_fa(max_visitors=1)
    assert full.restore_visitor(visitor(), T0) is None
    second = visitor(home_address=IPv4Address("192.0.2.11"))
    assert "max_visitors" in (full.restore_visitor(second, T0) or "")
    assert full.status(T0)["busy"] is True  # B set once the restored entries fill the list


def test_a_known_visitor_is_not_restored_over() -> None:
    fa = make_fa()
    register(fa)
    assert fa.restore_visitor(visitor(), T0 + 1.0) == "already pending or visiting"


def test_renewal_after_restore_is_an_update() -> None:
    fa = make_fa()
    fa.restore_visitor(visitor(), T0)
    drain(fa, T0)
    run = register(fa, T0 + 10.0, ident=IDENT + 1)
    assert of_type(run, VisitorUpdated) and not of_type(run, VisitorAdded)
