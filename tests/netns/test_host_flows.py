"""topologies/host_flows.py against the real kernel: a run's teardown removes the root namespace's
conntrack entries of the testbed's address plan (the host tracks bridged traffic when br_netfilter is
on and something there uses conntrack, e.g. libvirt's or Docker's NAT) and leaves every other entry alone.

The entries are inserted with ``conntrack -I`` (UNREPLIED, 60 s) and every one this test made is deleted
at the end, whatever happened."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.netns.conftest import require_root
from topologies.host_flows import forget_testbed_flows

OURS_V4 = ("198.51.100.250", "203.0.113.250")
OURS_V6 = ("2001:db8:ffff::1", "2001:db8:ffff::2")
HOSTS = ("100.64.250.1", "100.64.250.2")  # RFC 6598 shared space: never in the testbed's plan
PORTS = ("40000", "40001")


def conntrack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["conntrack", *args], capture_output=True, text=True, timeout=30, check=False)


def insert(source: str, destination: str) -> None:
    result = conntrack(
        "-I", "-s", source, "-d", destination, "-r", destination, "-q", source, "-p", "udp",
        "--sport", PORTS[0], "--dport", PORTS[1], "--reply-port-src", PORTS[1], "--reply-port-dst", PORTS[0],
        "-t", "60",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def present(source: str) -> bool:
    family = "ipv6" if ":" in source else "ipv4"
    return f"src={source} " in conntrack("-L", "-f", family, "-s", source).stdout


@pytest.fixture
def entries() -> Iterator[None]:
    require_root()
    if shutil.which("conntrack") is None:
        pytest.fail("conntrack is not installed (tools/provision.sh installs it)")
    try:
        for pair in (OURS_V4, OURS_V6, HOSTS):
            insert(*pair)
        yield
    finally:
        for source in (OURS_V4[0], OURS_V6[0], HOSTS[0]):
            conntrack("-D", "-f", "ipv6" if ":" in source else "ipv4", "-s", source)


def test_teardown_forgets_the_plans_flows_and_only_those(entries: None) -> None:
    assert present(OURS_V4[0]) and present(OURS_V6[0]) and present(HOSTS[0])
    assert forget_testbed_flows() >= 2
    assert not present(OURS_V4[0]), "an IPv4 entry of the testbed's plan was left"
    assert not present(OURS_V6[0]), "an IPv6 entry of the testbed's plan was left"
    assert present(HOSTS[0]), "an entry outside the testbed's plan was deleted"
