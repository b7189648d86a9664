"""DHCPv6-PD bootstrap over the link-local tunnel with a real Kea (RFC 5454 §3.7.1), in real namespaces.

The testbed of agents_testbed.py (HA, router, co-located mn1, correspondent); Kea dhcp6 runs in the HA's
namespace on ``mip-ha``. mn1 has no IPv6 prefix configured: it registers fe80::<HoA>, gets a /56 by
rapid commit, registers it, and the correspondent reaches its address in it both ways. Short lease times
exercise Renew; SIGTERM sends Release; the HA refuses a prefix Kea did not delegate to mn1 (code 9).
Teardown leaves no Kea process, lease file or socket outside the test's folder.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from scenarios.harness.kea import KeaPlan, KeaServer
from tests.netns.agents_testbed import HA_CONFIG, KEY1, AgentBed, build
from tests.netns.conftest import NamespaceFactory, ping, wait_until

pytestmark = pytest.mark.root

POOL = IPv6Network("2001:db8:d000::/48")
HOA1 = "192.0.2.10"
IID = int(IPv6Address("::c000:20a"))


def mn_config() -> str:
    return f"""
[mobile_node]
home_address = "{HOA1}"
home_agent = "192.0.2.1"
spi = 256
key = "{KEY1}"
lifetime = 120

[runtime]
name = "mn1"
interface = "mn1-eth"
tunnel_interface = "mip0"

[dhcpv6_pd]
sol_max_delay = 0.0
ren_timeout = 1.0
reb_timeout = 1.0
"""


def ha_config(socket_path: Path) -> str:
    return HA_CONFIG + f'\n[runtime.dhcpv6_pd]\nkea_control_socket = "{socket_path}"\n'


@pytest.fixture(scope="module")
def bed(namespaces: NamespaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentBed]:
    folder = tmp_path_factory.mktemp("pd")
    testbed = build(namespaces, folder)
    testbed["r"].run(f"ip -6 route add {POOL} via 2001:db8:0:1::1")
    plan = KeaPlan(folder / "kea", pool=POOL, preferred=6, valid=10, renew=3, rebind=5)
    kea = KeaServer(plan)
    ha_ns = testbed["ha"].name

    def popen(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", ha_ns, *command], env=env, stderr=subprocess.PIPE)

    testbed.kea_files_before = kea_system_files()  # type: ignore[attr-defined]
    try:
        testbed.start_agent("ha", "ha", "ha", ha_config(plan.control_socket))
        kea.start(popen)
        testbed.kea = kea  # type: ignore[attr-defined]
        testbed.start_agent("mn1", "mn", "mn1", mn_config())
        yield testbed
    finally:
        testbed.stop_all()
        kea.stop()


def kea_system_files() -> set[Path]:
    """What exists in Kea's default run/state folders (nothing of ours may appear there)."""
    folders = (Path("/run/kea"), Path("/var/lib/kea"), Path("/var/log/kea"))
    return {item for folder in folders if folder.exists() for item in folder.iterdir()}


def delegated(bed: AgentBed) -> IPv6Network | None:
    """The prefix mn1 holds now (the last one delegated)."""
    events = bed.agents["mn1"].events("prefix_delegated")
    return IPv6Network(events[-1]["prefix"]) if events else None


def test_link_local_then_rapid_commit_then_prefix_registration(bed: AgentBed) -> None:
    mn = bed.agents["mn1"]
    assert wait_until(lambda: delegated(bed) is not None, 15.0), mn.events()[-20:]
    prefix = delegated(bed)
    assert prefix is not None and prefix.subnet_of(POOL) and prefix.prefixlen == 56
    names = [e["event"] for e in mn.events()]
    first_accept = names.index("registration_accepted")
    link_local = next(
        i for i, e in enumerate(mn.events()) if e["event"] == "prefix_accepted" and e["link_local"]
    )
    solicit = next(i for i, e in enumerate(mn.events()) if e["event"] == "dhcpv6_sent")
    assert first_accept < link_local < solicit
    sent = mn.events("dhcpv6_sent")
    assert sent[0]["message"] == "SOLICIT" and sent[0]["rapid_commit"]
    assert mn.events("prefix_delegated")[0]["how"] == "rapid-commit"
    assert wait_until(
        lambda: any(e["prefix"] == str(prefix) and not e["link_local"] for e in mn.events("prefix_accepted")),
        5.0,
    )
    assert any(e["prefix"]["prefix"] == str(prefix) for e in bed.agents["ha"].events("prefix_registered"))


def test_correspondent_reaches_the_new_address_both_ways(bed: AgentBed) -> None:
    prefix = delegated(bed)
    assert prefix is not None
    address = IPv6Address(int(prefix.network_address) | IID)
    assert wait_until(lambda: ping(bed["cn"], str(address)), 5.0)
    assert ping(bed["mn1"], "2001:db8:ff::10", source=str(address))


def test_kea_holds_the_lease_and_the_ha_sees_it_as_mn1s(bed: AgentBed) -> None:
    prefix = delegated(bed)
    listing = bed.agents["ha"].ask("delegations")
    assert [(d["prefix"], d["owner"]) for d in listing] == [(str(prefix), HOA1)]
    plan: KeaPlan = bed.kea.plan  # type: ignore[attr-defined]
    assert str(prefix.network_address) in plan.lease_file.read_text()


def test_renew_at_t1_keeps_the_prefix(bed: AgentBed) -> None:
    mn = bed.agents["mn1"]
    assert wait_until(lambda: any(e["how"] == "renew" for e in mn.events("prefix_delegated")), 12.0)
    assert any(e["message"] == "RENEW" for e in mn.events("dhcpv6_sent"))
    assert not mn.events("delegation_lost")


def test_ha_refuses_a_prefix_kea_did_not_delegate(bed: AgentBed) -> None:
    mn = bed.agents["mn1"]
    prefix = delegated(bed)
    assert prefix is not None
    stranger = IPv6Network("2001:db8:d000:ff00::/56")
    mn.ask("set-prefixes", prefixes=[str(prefix), str(stranger)], link_local=True)
    assert wait_until(lambda: any(e["prefix"] == str(stranger) for e in mn.events("prefix_rejected")), 5.0)
    (refused,) = [e for e in mn.events("prefix_rejected") if e["prefix"] == str(stranger)]
    assert refused["code"] == 9
    mn.ask("set-prefixes", prefixes=[str(prefix)], link_local=True)


def test_lease_expiry_withdraws_the_prefix_by_omission_then_solicits_again(bed: AgentBed) -> None:
    """Kea stopped (SIGSTOP, our own handle) for longer than the valid lifetime: Renew and Rebind go
    unanswered, the prefix expires and is deregistered by omission (RFC 5454 §3.8); once Kea answers again
    the node solicits and registers a prefix anew."""
    mn, ha = bed.agents["mn1"], bed.agents["ha"]
    prefix = str(delegated(bed))
    kea: KeaServer = bed.kea  # type: ignore[attr-defined]
    assert kea.process is not None
    kea.process.send_signal(signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        time.sleep(1.2)  # the HA's last answer from Kea is now older than 1 s: it will ask again
        mn.ask("register")  # the HA cannot ask Kea now: its last answer stands, the prefix stays accepted
        renewed = lambda: [e for e in mn.events("registration_accepted") if e["t"] > stopped_at]  # noqa: E731
        assert wait_until(lambda: bool(renewed()), 5.0)
        assert not [e for e in mn.events("prefix_rejected") if e["prefix"] == prefix]
        assert wait_until(lambda: bool(ha.events("delegations_unavailable")), 5.0)
        expired = lambda: any(e["reason"] == "expired" for e in mn.events("delegation_lost"))  # noqa: E731
        assert wait_until(expired, 15.0), mn.events()[-10:]
        assert any(e["message"] == "REBIND" for e in mn.events("dhcpv6_sent"))
        gone = lambda: any(e["prefix"]["prefix"] == prefix for e in ha.events("prefix_deregistered"))  # noqa: E731
        assert wait_until(gone, 5.0)
    finally:
        kea.process.send_signal(signal.SIGCONT)

    def again() -> bool:
        fresh = [e for e in mn.events("prefix_delegated") if e["how"] not in ("renew", "rebind")]
        return len(fresh) > 1

    assert wait_until(again, 15.0), mn.events()[-10:]


def test_deregister_releases_first_and_a_new_registration_solicits_again(bed: AgentBed) -> None:
    mn, ha = bed.agents["mn1"], bed.agents["ha"]
    releases = len(mn.events("dhcpv6_release_finished"))
    delegations = len(mn.events("prefix_delegated"))
    mn.ask("deregister")
    assert wait_until(lambda: bool(mn.events("deregistered")), 8.0)
    released = mn.events("dhcpv6_release_finished")[releases:]
    assert released and released[0]["confirmed"] is True
    assert released[0]["t"] < mn.events("deregistered")[-1]["t"]
    assert ha.ask("delegations") == []
    mn.ask("register")
    assert wait_until(lambda: len(mn.events("prefix_delegated")) > delegations, 8.0), mn.events()[-10:]
    prefix = str(delegated(bed))
    since = mn.events("prefix_delegated")[-1]["t"]
    registered = lambda: any(  # noqa: E731
        e["prefix"] == prefix and not e["link_local"] for e in mn.events("prefix_accepted") if e["t"] > since
    )
    assert wait_until(registered, 5.0)


def test_release_alone_stops_using_the_prefix(bed: AgentBed) -> None:
    """`mipctl dhcpv6-release`: Release (RFC 8415 §18.2.7), and the prefix is withdrawn by omission."""
    mn, ha = bed.agents["mn1"], bed.agents["ha"]
    prefix = str(delegated(bed))
    since = mn.events("prefix_delegated")[-1]["t"]  # registered again after the latest delegation
    registered = lambda: any(  # noqa: E731
        e["prefix"] == prefix and not e["link_local"] for e in mn.events("prefix_accepted") if e["t"] > since
    )
    assert wait_until(registered, 5.0)
    before = len(ha.events("prefix_deregistered"))
    mn.ask("dhcpv6-release")
    assert wait_until(lambda: bool(mn.events("dhcpv6_release_finished")), 5.0)
    assert mn.events("dhcpv6_release_finished")[-1]["confirmed"] is True
    gone = lambda: any(e["prefix"]["prefix"] == prefix for e in ha.events("prefix_deregistered")[before:])  # noqa: E731
    assert wait_until(gone, 5.0)
    assert mn.ask("dhcpv6")["state"] == "stopped"
    assert ha.ask("delegations") == []


def test_sigterm_deregisters_and_kea_leaves_nothing_outside(bed: AgentBed) -> None:
    mn = bed.agents["mn1"]
    assert mn.stop() == 0
    assert any(e["message"] == "RELEASE" for e in mn.events("dhcpv6_sent"))
    assert mn.events("dhcpv6_release_finished")[-1]["confirmed"] is True
    assert mn.events("deregistered")
    listing = bed.agents["ha"].ask("delegations")
    assert listing == []
    kea: KeaServer = bed.kea  # type: ignore[attr-defined]
    pid = kea.process.pid if kea.process else -1
    assert kea.stop() == 0
    assert not Path(f"/proc/{pid}").exists()
    assert not kea.plan.control_socket.exists()
    assert kea_system_files() == bed.kea_files_before  # type: ignore[attr-defined]
    assert json.loads(kea.plan.config_file.read_text())["Dhcp6"]["interfaces-config"]["interfaces"] == [
        "mip-ha"
    ]
