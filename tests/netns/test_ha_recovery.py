"""Home agent crash recovery in real namespaces (issue 16): `kill -9`, restart, traffic flows again.

Topology: tests/netns/agents_testbed.py (HA, router, CN, co-located mn1 / mn2 with a 120 s lifetime, so
they renew only after 90 s). The tests run in file order against one testbed:

1. with `[runtime] journal`, the HA is killed with SIGKILL (by its PID) and restarted: IPv4 and IPv6 to
   both mobile nodes (Prefix Reply codes 0 and 1) flow again within seconds, and neither MN registers;
2. killed again and restarted with a damaged journal that holds no binding: one warning line, no
   traceback, and the stale proxy ARP entries of the crashed HA are removed;
3. SIGTERM then leaves the HA namespace exactly as before the first HA started, sysctls included,
   although two of the three HAs had no clean exit.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.agents_testbed import (
    HA_CONFIG,
    KEY1,
    KEY2,
    Agent,
    AgentBed,
    build,
    mn_config,
)
from tests.netns.conftest import NamespaceFactory, ping, wait_until
from tests.netns.test_agents import line_changes

pytestmark = pytest.mark.root

HOA1, HOA2 = "192.0.2.10", "192.0.2.20"
MN1_V6, MN2_V6 = "2001:db8:10::c000:20a", "2001:db8:20::c000:214"
RENEWAL_AFTER = 0.75 * 120  # the MNs' lifetime is 120 s (agents_testbed.mn_config)


def ha_config(journal: Path) -> str:
    return HA_CONFIG.replace("[runtime]\n", f'[runtime]\njournal = "{journal}"\n', 1)


@pytest.fixture(scope="module")
def bed(namespaces: NamespaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentBed]:
    testbed = build(namespaces, tmp_path_factory.mktemp("recovery"))
    try:  # values the HA changes, set apart from any default, so restoring them is visible
        testbed["ha"].run(
            "sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0 "
            "net.ipv4.neigh.ha-home.proxy_delay=40"
        )
        testbed.baseline["ha"] = testbed["ha"].snapshot()
        testbed.start_agent("ha", "ha", "ha", ha_config(journal_path(testbed)))
        testbed.start_agent("mn1", "mn", "mn1", mn_config("mn1", HOA1, 256, KEY1, "2001:db8:10::/48", False))
        testbed.start_agent("mn2", "mn", "mn2", mn_config("mn2", HOA2, 257, KEY2, "2001:db8:20::/48", True))
        assert wait_until(lambda: accepted(testbed, "mn1") == accepted(testbed, "mn2") == 1, 10.0)
        yield testbed
    finally:
        testbed.stop_all()


def journal_path(bed: AgentBed) -> Path:
    return bed.workdir / "ha.journal"


def accepted(bed: AgentBed, name: str) -> int:
    return len(bed.agents[name].events("registration_accepted"))


def requests_sent(bed: AgentBed) -> int:
    return sum(len(bed.agents[name].events("rrq_sent")) for name in ("mn1", "mn2"))


def kill_9(agent: Agent) -> None:
    """SIGKILL by the PID we started (`ip netns exec` execs the agent: same PID); no cleanup runs."""
    assert b"agents" in Path(f"/proc/{agent.process.pid}/cmdline").read_bytes()
    os.kill(agent.process.pid, signal.SIGKILL)
    assert agent.process.wait(10) == -signal.SIGKILL


def restart(bed: AgentBed, name: str, config: str) -> Agent:
    """Start a new HA in the same namespace; the predecessor's entry in ``bed.agents`` is replaced."""
    bed.agents.pop("ha", None)
    agent = bed.start_agent("ha", "ha", name, config)
    bed.agents["ha"] = agent  # stop_all stops it at the end
    return agent


def proxies(bed: AgentBed) -> str:
    return bed["ha"].run("ip neigh show proxy")


def all_flows(bed: AgentBed) -> bool:
    return all(ping(bed["cn"], address, timeout=0.5, attempts=1) for address in (HOA1, HOA2, MN1_V6, MN2_V6))


def test_kill_9_and_restart_with_the_journal_restores_both_families(bed: AgentBed) -> None:
    """RFC 5944 §3.8.1, §4.6; RFC 5454 §3.3.2: the restarted HA tunnels IPv4 and IPv6 (codes 0 and 1) to
    both MNs again from its journal, without a single new registration from them."""
    assert wait_until(lambda: all_flows(bed), 5.0)
    requests_before = requests_sent(bed)
    first = bed.agents["ha"]
    started = time.monotonic()
    kill_9(first)
    assert HOA1 in proxies(bed) and HOA2 in proxies(bed)  # what a SIGKILL leaves behind
    assert not ping(bed["cn"], HOA1, timeout=0.5, attempts=1)  # and traffic is down
    second = restart(bed, "ha2", ha_config(journal_path(bed)))
    assert wait_until(lambda: all_flows(bed), 5.0), second.stderr_path.read_text()[-2000:]
    assert time.monotonic() - started < RENEWAL_AFTER / 3  # well before any renewal
    assert requests_sent(bed) == requests_before, "a mobile node had to register again"
    assert ping(bed["mn1"], "203.0.113.10", source=HOA1)  # reverse tunnel (RFC 3024) too
    assert ping(bed["mn2"], "2001:db8:ff::10", source=MN2_V6)
    restored = {event["home_address"]: event for event in second.events("binding_restored")}
    assert set(restored) == {HOA1, HOA2}
    assert restored[HOA1]["prefixes"] == ["2001:db8:10::/48"]
    announced = {
        event["address"] for event in second.events("gratuitous_arp") if event["owner"] == "home-agent"
    }
    assert announced == {HOA1, HOA2}  # RFC 5944 §4.6: the home link learns the HA's MAC again
    bindings = {b["home_address"]: b for b in second.ask("bindings")}
    assert bindings[HOA2]["prefixes"][0]["target"] == "care-of"  # code 1 survived the restart
    # issue 16: the restored bindings' sources are known peers again, steered first by the kernel
    steered = second.events("priority_sources")
    assert steered and {"198.51.100.10", "198.51.100.20", HOA1, HOA2} <= set(steered[0]["sources"])
    assert second.ask("status")["steering"]["priority_sources"] >= 4
    assert "Traceback" not in second.stderr_path.read_text()


def test_restart_without_journal_entries_removes_the_stale_proxy_arp(bed: AgentBed) -> None:
    """A damaged journal with no binding in it (a sysctls record, a garbage line, a torn last record): one
    warning line, a normal start, and no proxy ARP for nodes the HA knows nothing about (RFC 5944 §4.6)."""
    kill_9(bed.agents["ha"])
    assert HOA1 in proxies(bed) and HOA2 in proxies(bed)
    path = journal_path(bed)
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    sysctls = [record for record in records if record["kind"] == "sysctls"][-1]
    assert sysctls["originals"]["net/ipv4/ip_forward"] == "0"  # the values before the first HA
    assert sysctls["originals"]["net/ipv4/neigh/ha-home/proxy_delay"] == "40"
    assert bed["ha"].run("sysctl -n net.ipv4.ip_forward net.ipv4.neigh.ha-home.proxy_delay").split() == [
        "1",
        "0",
    ]
    path.write_text(json.dumps(sysctls) + "\n\x00\x01garbage\n" + '{"kind":"binding","home":"192.0')
    third = restart(bed, "ha3", ha_config(path))
    stderr = third.stderr_path.read_text()
    warnings = [line for line in stderr.splitlines() if "unusable record" in line]
    assert len(warnings) == 1 and "line 2: not JSON" in warnings[0] and "truncated last record" in warnings[0]
    assert "Traceback" not in stderr
    assert HOA1 not in proxies(bed) and HOA2 not in proxies(bed)
    removed = third.events("stale_state_removed")[0]["removed"]
    assert f"proxy ARP {HOA1} on ha-home" in removed and f"proxy ARP {HOA2} on ha-home" in removed
    assert third.ask("bindings") == []


def test_clean_exit_after_crashes_leaves_the_namespace_as_found(bed: AgentBed) -> None:
    """The sysctls the first HA found are put back by the last one, and nothing else is left behind."""
    assert bed.agents["ha"].stop() == 0, bed.agents["ha"].stderr_path.read_text()[-2000:]
    after = bed["ha"].snapshot()
    before = bed.baseline["ha"]
    changed = {key: line_changes(before[key], after[key]) for key in after if after[key] != before[key]}
    assert not changed, changed
    records = [json.loads(line) for line in journal_path(bed).read_text().splitlines()]
    assert records[-1] == {"kind": "sysctls", "originals": {}}  # restored: the next HA reads them afresh
