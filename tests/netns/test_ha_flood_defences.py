"""The home agent's flood defences that the issue 16 review found without a kernel-level test, against the
real HA process in real namespaces (tests/netns/agents_testbed.py; only the HA runs, the mobile node's
requests are built here). Forged datagrams are whole IPv4 packets sent from a raw socket in the router's
namespace (:mod:`scenarios.attack`), so they reach the HA's link as a forger's would.

1. Lockout (RFC 5944 §3.8.2.1: a request is rejected for failing authentication, not for its source): a
   flood of bad-authenticator requests forging a care-of address the HA has never seen spends that
   source's failure budget; the real mobile node's request from that address must still be verified and
   accepted (§3.6.1.1 registering a co-located care-of address; §3.8.3 the reply). Before the fix, a
   source over its budget was dropped before the authenticator was computed.
2. Steering (agents/runtime/steering.py): a home address is a priority source only while its mobile node
   has a binding (it may then deregister from home, RFC 5944 §3.6.1.2). A flood forging the home address
   of a mobile node without a binding must land in the general queue, not the priority socket the known
   peers' renewals wait in.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from agents.mip.wire.auth import SecurityAssociation
from agents.mip.wire.codes import RegistrationFlag, ReplyCode
from agents.mip.wire.identification import timestamp_identification
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest, build_request
from scenarios.spoofing import bad_auth_datagram
from tests.netns.agents_testbed import HA_CONFIG, KEY1, REPO, AgentBed, build
from tests.netns.conftest import NamespaceFactory, wait_until

pytestmark = pytest.mark.root

HA = IPv4Address("192.0.2.1")
HOA1, HOA2 = IPv4Address("192.0.2.10"), IPv4Address("192.0.2.20")
COA1 = IPv4Address("198.51.100.10")  # mn1's co-located care-of address (its namespace's own)
SPI1, SPI2 = 256, 257


@pytest.fixture
def bed(namespaces: NamespaceFactory, tmp_path: Path) -> Iterator[AgentBed]:
    testbed = build(namespaces, tmp_path)
    try:
        testbed.start_agent("ha", "ha", "ha", HA_CONFIG)
        yield testbed
    finally:
        testbed.stop_all()


def forge(bed: AgentBed, packets: list[bytes], count: int, rate: float) -> subprocess.Popen[str]:
    """Start sending ``count`` forged packets at ``rate``/s from a raw socket in the router's namespace."""
    path = bed.workdir / f"forged-{time.monotonic_ns()}.hex"
    path.write_text("".join(packet.hex() + "\n" for packet in packets))
    argv = [
        "ip", "netns", "exec", bed["r"].name, sys.executable, "-m", "scenarios.attack",
        "--packets", str(path), "--count", str(count), "--rate", f"{rate:g}", "--max-seconds", "30",
    ]  # fmt: skip
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(attacker: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = attacker.communicate(timeout=40)
    assert attacker.returncode == 0, err
    import json

    return dict(json.loads(out.strip().splitlines()[-1]))


def bad_auth(source: IPv4Address, home: IPv4Address, spi: int, care_of: IPv4Address, n: int) -> list[bytes]:
    return [
        bad_auth_datagram(source, HA, home, care_of, spi, timestamp_identification(time.time(), index))
        for index in range(n)
    ]


def status(bed: AgentBed) -> dict[str, Any]:
    return dict(bed.agents["ha"].ask("status"))


def test_a_flood_forging_a_new_care_of_address_cannot_lock_its_mobile_node_out(bed: AgentBed) -> None:
    """RFC 5944 §3.8.2.1, §3.6.1.1: while bad-authenticator requests forging mn1's care-of address keep
    its failure budget spent (5 at once, 1/s), mn1's own request from that address is verified and
    accepted (reply code 0) and the HA binds it. Fails when an over-budget source is dropped unverified."""
    before = status(bed)["counters"]
    attacker = forge(bed, bad_auth(COA1, HOA1, SPI1, COA1, 50), count=3_000, rate=1_000)
    assert wait_until(
        lambda: (
            status(bed)["counters"].get("failures_over_budget", 0)
            > before.get("failures_over_budget", 0) + 20
        ),
        5.0,
    ), status(bed)["counters"]  # the source's budget is spent: the flood is under way
    request = RegistrationRequest(
        RegistrationFlag.D | RegistrationFlag.T, 60, HOA1, HA, COA1, timestamp_identification(time.time(), 7)
    )
    wire = build_request(request, SecurityAssociation(SPI1, bytes.fromhex(KEY1)))
    with bed["mn1"].entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((str(COA1), 0))
        sock.settimeout(1.0)
        reply = None
        for _ in range(3):  # the mobile node retransmits (RFC 5944 §3.6.3); each one is verified
            sock.sendto(wire, (str(HA), 434))
            try:
                reply = RegistrationReply.decode(sock.recv(65535))
                break
            except TimeoutError:
                continue
    result = finished(attacker)
    after = status(bed)["counters"]
    assert result["sent"] == 3_000
    assert reply is not None, f"no reply to the real request while the flood ran: {after}"
    assert reply.code == ReplyCode.ACCEPTED and reply.home_address == HOA1
    binding = next(b for b in bed.agents["ha"].ask("bindings") if b["home_address"] == str(HOA1))
    assert [c["care_of"] for c in binding["care_ofs"]] == [str(COA1)]
    assert after.get("dropped_over_failure_budget", 0) == 0  # nothing was dropped unverified
    assert after["authentication_failures"] - before.get("authentication_failures", 0) >= 1_000


def test_a_forged_home_address_without_a_binding_is_not_steered_to_the_priority_socket(
    bed: AgentBed,
) -> None:
    """agents/runtime/steering.py, RFC 5944 §3.6.1.2: mn2 has no binding, so a bad-auth flood forging its
    home address goes to the general queue: the priority socket reads none of it. Fails when every
    configured home address is a priority source."""
    assert not [b for b in bed.agents["ha"].ask("bindings") if b["home_address"] == str(HOA2)]
    before = status(bed)["steering"]
    result = finished(forge(bed, bad_auth(HOA2, HOA2, SPI2, HOA2, 50), count=2_000, rate=1_000))
    assert result["sent"] == 2_000
    assert wait_until(
        lambda: status(bed)["steering"]["general_received"] - before["general_received"] >= 1_000, 5.0
    ), status(bed)["steering"]
    after = status(bed)["steering"]
    assert after["priority_received"] == before["priority_received"], (before, after)
