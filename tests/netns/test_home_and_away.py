"""Issue 4 end to end: a dual-stack MN moves home → FA1 → FA2 → home while a CN talks to it (real
processes, real namespaces; topology in :mod:`tests.netns.fa_testbed`).

After each move both families work both ways; away, the HA–FA link carries IPv6 only inside protocol 41
inside protocol 4 and the FA–MN link carries it only as protocol 41 to the home address (RFC 5454 §3.3.2),
so the FAs never carry native IPv6; back home the HA's binding and proxy ARP are gone and the MN's traffic
is native (RFC 5944 §2.4.3, §3.6.1.2, §4.6).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.netns.agents_testbed import AgentBed
from tests.netns.conftest import NamespaceFactory, capture, ping, wait_until
from tests.netns.fa_testbed import (
    CN4,
    CN6,
    COA,
    COA2,
    HA,
    HOA,
    MN_V6,
    agents_running,
    care_of,
    make_bed,
    move,
)

pytestmark = pytest.mark.root

V4_HOA, V4_HA = socket.inet_aton(HOA), socket.inet_aton(HA)
MN_V6_BYTES = socket.inet_pton(socket.AF_INET6, MN_V6)


@pytest.fixture(scope="module")
def bed(namespaces: NamespaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentBed]:
    testbed = make_bed(namespaces, tmp_path_factory.mktemp("home"), start="home")
    with agents_running(testbed):
        yield testbed


def at_home(bed: AgentBed) -> bool:
    return bool(bed.agents["mn"].ask("status")["at_home"])


def both_families_both_ways(bed: AgentBed) -> None:
    assert ping(bed["cn"], HOA) and ping(bed["mn"], CN4, source=HOA)
    assert ping(bed["cn"], MN_V6) and ping(bed["mn"], CN6, source=MN_V6)


def native_at_home(bed: AgentBed) -> None:
    """RFC 5944 §4.6: no binding, no proxy ARP; the MN's link sees plain IPv4 and IPv6, no tunnels."""
    assert wait_until(lambda: care_of(bed) is None, 10.0), bed.agents["ha"].ask("bindings")
    assert HOA not in bed["ha"].run("ip neigh show proxy")
    with capture(bed["mn"], "mn-eth") as seen:
        both_families_both_ways(bed)
    ipv4 = [p for p in seen if p[0] >> 4 == 4]
    assert not [p for p in ipv4 if p[9] in (4, 41)]  # nothing tunnelled
    assert any(p[9] == 1 and p[16:20] == V4_HOA for p in ipv4)  # echo to the HoA, native
    assert any(p[0] >> 4 == 6 and p[24:40] == MN_V6_BYTES for p in seen)  # IPv6 to the MN, native


def tunnelled_via(bed: AgentBed, fa: str, coa: str) -> None:
    """RFC 5454 §3.3.2 code 0 via an FA: 41 in 4 between HA and FA, 41 to the HoA between FA and MN."""
    assert wait_until(lambda: care_of(bed) == coa, 15.0), (care_of(bed), bed.agents["mn"].ask("status"))
    assert HOA in bed["ha"].run("ip neigh show proxy")
    with capture(bed[fa], f"{fa}-net") as network, capture(bed[fa], f"{fa}-acc") as access:
        both_families_both_ways(bed)
    coa_bytes = socket.inet_aton(coa)
    outer = [p for p in network if p[0] >> 4 == 4 and p[9] == 4]
    assert any(p[12:16] == V4_HA and p[16:20] == coa_bytes and p[29] == 41 and p[40] >> 4 == 6 for p in outer)
    assert any(p[12:16] == coa_bytes and p[16:20] == V4_HA and p[29] == 41 for p in outer)
    assert any(p[0] >> 4 == 4 and p[9] == 41 and p[16:20] == V4_HOA for p in access)
    assert not [p for p in network + access if p[0] >> 4 == 6 and p[8] & 0xE0 == 0x20]  # no native global v6


def test_starts_at_home_without_a_binding_and_talks_natively(bed: AgentBed) -> None:
    """RFC 5944 §2.4.3: the HA's advertisement (H bit) tells the MN it is home."""
    assert wait_until(lambda: at_home(bed), 10.0), bed.agents["mn"].ask("status")
    native_at_home(bed)


def test_home_to_fa1_to_fa2_and_back_home(bed: AgentBed) -> None:
    """Each move is a real carrier drop and re-attachment; traffic is restored after each."""
    assert wait_until(lambda: at_home(bed), 10.0)
    move(bed, "fa1")
    tunnelled_via(bed, "fa1", COA)
    move(bed, "fa2")
    tunnelled_via(bed, "fa2", COA2)
    move(bed, "home")
    assert wait_until(lambda: at_home(bed), 10.0), bed.agents["mn"].ask("status")
    native_at_home(bed)
    deregistrations = [e for e in bed.agents["ha"].events("rrq_received") if e["lifetime"] == 0]
    assert deregistrations and deregistrations[-1]["care_of"] == HOA  # all bindings (RFC 5944 §3.6.1.2)
    assert answered_at_first_attempt(bed)


def answered_at_first_attempt(bed: AgentBed) -> bool:
    """The HA's reply to a deregistration from the home link reaches the MN there, not the tunnel it is
    tearing down (RFC 5944 §3.8.3, §4.6): one request, confirmed."""
    events = bed.agents["mn"].events()
    back = max(index for index, event in enumerate(events) if event["event"] == "at_home")
    done = [e for e in events[:back] if e["event"] == "deregistered"]
    assert wait_until(lambda: bool(bed.agents["mn"].events("deregistered")[len(done) :]), 5.0)
    since = bed.agents["mn"].events()[back:]
    attempts = [e["attempt"] for e in since if e["event"] == "rrq_sent" and e["lifetime"] == 0]
    confirmed = [e["confirmed"] for e in since if e["event"] == "deregistered"]
    return attempts == [1] and confirmed == [True]


def test_moves_by_advertisements_alone(bed: AgentBed) -> None:
    """Without a link event the MN still moves, by hearing the new agent (RFC 5944 §2.4.2, algorithm 2)."""
    assert wait_until(lambda: at_home(bed), 10.0)
    move(bed, "fa2", link_event=False)
    tunnelled_via(bed, "fa2", COA2)
    move(bed, "home", link_event=False)
    assert wait_until(lambda: at_home(bed), 10.0), bed.agents["mn"].ask("status")
    native_at_home(bed)
