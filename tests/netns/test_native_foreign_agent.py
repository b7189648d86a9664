"""The ``kernel`` datapath (agents/datapath/native.py) on the HA and the MN, with the MN behind a foreign
agent (issue 15): real agents in the namespaces of :mod:`tests.netns.fa_testbed`, the MN on FA1's link.

Where the kernel has ipip, sit and gre (the VM's full kernel) the correspondent reaches the home address
through HA → FA1 IP-in-IP and FA1's delivery to the MN's link-layer address (RFC 5944 §4.2.2), and the MN
reaches the correspondent from its home address (reverse tunnelled by FA1, RFC 3024 §5.1); IPv6 both ways
nested in that tunnel (RFC 5454 §3.3.2). Where the kernel lacks them (this development host) the backend is
refused with a message naming what is missing; nothing runs.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

from agents.datapath.kernel import BackendUnavailableError, probe_kernel_tunnels
from agents.datapath.selection import Needs, select_backend
from tests.netns.agents_testbed import AgentBed
from tests.netns.conftest import Namespace, NamespaceFactory, ping, wait_until
from tests.netns.fa_testbed import CN4, CN6, COA, COA2, HA_CONFIG, HOA, MN_CONFIG, MN_V6, fa_config, make_bed

pytestmark = pytest.mark.root
HOME_AGENT = "[home_agent]\n"
NO_UDP = 'udp_tunnelling = false\nencapsulations = ["ipip", "gre"]\n'
"""What native devices cannot carry is not offered (RFC 3519 UDP tunnels, minimal encapsulation)."""


def kernel_datapath(config: str) -> str:
    """``config`` with ``datapath = "kernel"`` in its [runtime] table."""
    assert "[runtime]\n" in config
    return config.replace("[runtime]\n", '[runtime]\ndatapath = "kernel"\n', 1)


def modules_present() -> bool:
    """What modprobe says, independently of the probe (so a failing probe cannot hide a full kernel)."""
    found = [
        subprocess.run(["modprobe", "-n", "-q", name], check=False) for name in ("ipip", "sit", "ip_gre")
    ]
    return all(result.returncode == 0 for result in found)


@pytest.fixture(scope="module")
def kernel_bed(
    namespaces: NamespaceFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentBed | None]:
    support = probe_kernel_tunnels()
    assert support.complete == modules_present(), support.describe()
    if not support.complete:
        yield None
        return
    bed = make_bed(namespaces, tmp_path_factory.mktemp("kfa"), start="fa1")
    try:
        bed.start_agent("ha", "ha", "ha", kernel_datapath(HA_CONFIG.replace(HOME_AGENT, HOME_AGENT + NO_UDP)))
        bed.start_agent("fa1", "fa", "fa1", fa_config("fa1", COA))
        bed.start_agent("fa2", "fa", "fa2", fa_config("fa2", COA2))
        bed.start_agent("mn", "mn", "mn", kernel_datapath(MN_CONFIG))
        assert wait_until(lambda: bool(bed.agents["mn"].events("registration_accepted")), 30.0), (
            bed.agents["mn"].ask("status"),
            bed.agents["fa1"].ask("status"),
        )
        yield bed
    finally:
        for agent in reversed(list(bed.agents.values())):
            agent.stop()


def test_kernel_datapath_runs_on_both_ends_or_is_refused(kernel_bed: AgentBed | None) -> None:
    if kernel_bed is None:
        with pytest.raises(BackendUnavailableError, match=r"ipip, sit and gre.*\./testbed vm"):
            select_backend("kernel", Needs())
        return
    for name in ("ha", "mn"):
        chosen = kernel_bed.agents[name].events("datapath_selected")
        assert chosen and chosen[-1]["backend"] == "kernel", (name, chosen)


def test_correspondent_reaches_the_home_address_via_the_foreign_agent(kernel_bed: AgentBed | None) -> None:
    """RFC 5944 §4.2.2 / §5: HA → FA1 IP-in-IP, FA1 delivers the inner packet on the access link, the MN's
    kernel takes it although the route back to the correspondent is no tunnel device of its own."""
    if kernel_bed is None:
        return
    assert ping(kernel_bed["cn"], HOA), kernel_bed["mn"].run("nstat -az; ip rule; ip route; ip addr")
    assert ping(kernel_bed["mn"], CN4, source=HOA)


def udp_arrives(sender: Namespace, receiver: Namespace, destination: str, port: int = 9904) -> bool:
    """One UDP datagram from ``sender`` to ``destination``:``port``, received in ``receiver`` (3 tries)."""
    with receiver.entered():
        inbox = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sender.entered():
        outbox = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        inbox.bind(("0.0.0.0", port))
        inbox.settimeout(2.0)
        for attempt in range(3):
            outbox.sendto(b"probe %d" % attempt, (destination, port))
            try:
                return inbox.recv(100).startswith(b"probe")
            except TimeoutError:
                continue
        return False
    finally:
        inbox.close()
        outbox.close()


def test_correspondent_udp_reaches_the_home_address_via_the_foreign_agent(
    kernel_bed: AgentBed | None,
) -> None:
    """RFC 2003 §3: the inner datagram crosses the tunnel unchanged, so its UDP checksum must be complete
    when the HA's kernel encapsulates it: the correspondent's veth leaves it to "hardware" (checksum
    offload), and FA1 decapsulates from the bytes (raw socket) and delivers them on its access link
    (RFC 5944 §4.2.2), where the MN's kernel checks the checksum (issue 15: all dropped before)."""
    if kernel_bed is None:
        return
    mn = kernel_bed["mn"]
    assert udp_arrives(kernel_bed["cn"], mn, HOA), mn.run("nstat -az UdpInCsumErrors UdpInDatagrams")
    assert udp_arrives(mn, kernel_bed["cn"], CN4)


def test_ipv6_both_ways_nested_via_the_foreign_agent(kernel_bed: AgentBed | None) -> None:
    """RFC 5454 §3.3.2 code 0: IPv6-in-IPv4 between HoA and HA (sit), inside HA → FA1 IP-in-IP."""
    if kernel_bed is None:
        return
    assert ping(kernel_bed["cn"], MN_V6)
    assert ping(kernel_bed["mn"], CN6, source=MN_V6)
