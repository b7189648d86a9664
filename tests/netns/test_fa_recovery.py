"""Foreign agent crash recovery in real namespaces (issue 16): `kill -9`, restart, visitors served again.

Topology: tests/netns/fa_testbed.py (the MN starts on FA1's link; FA2 is not started). The tests run in
file order against one testbed:

1. FA1 (with `[runtime] journal`) is killed with SIGKILL by its PID; its policy rules stay behind. The
   restarted FA1 clears them (before, its ingress filter rules collided with them), restores the visitor
   from the journal, and IPv4 and IPv6 reach the MN again (RFC 5944 §3.7.1, §4.2.2; RFC 3024 §5.1);
2. killed again and restarted with a damaged journal without visitors: one warning line, no traceback, the
   stale rules removed (the MN registers again only if it notices the reboot from the advertisement
   sequence numbers, RFC 5944 §2.4.4, which a restart within the first advertisements hides);
3. SIGTERM leaves FA1's namespace exactly as before the first FA1 started, the forwarding sysctl included.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.agents_testbed import Agent, AgentBed
from tests.netns.conftest import NamespaceFactory, ping, wait_until
from tests.netns.fa_testbed import COA, HA_CONFIG, HOA, MN_CONFIG, MN_V6, fa_config, make_bed
from tests.netns.test_agents import line_changes
from tests.support.kernel import DATAPATH_BACKENDS

pytestmark = pytest.mark.root

RULE = f"from {HOA} iif fa1-acc lookup 110"
DATAPATHS: dict[Path, str] = {}
"""The FA backend of each bed (by its work folder): the module runs once per backend."""


def config(bed: AgentBed, journal: Path | None = None) -> str:
    path = bed.workdir / "fa1.journal" if journal is None else journal
    text = fa_config("fa1", COA, DATAPATHS[bed.workdir])
    return text.replace("[runtime]\n", f'[runtime]\njournal = "{path}"\n', 1)


@pytest.fixture(scope="module", params=DATAPATH_BACKENDS)
def bed(
    request: pytest.FixtureRequest, namespaces: NamespaceFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentBed]:
    testbed = make_bed(namespaces, tmp_path_factory.mktemp("fa-recovery"), start="fa1")
    DATAPATHS[testbed.workdir] = request.param
    try:  # a new namespace inherits IPv4 forwarding from the host: set it apart from what FA1 sets
        testbed["fa1"].run("sysctl -qw net.ipv4.ip_forward=0")
        testbed.baseline["fa1"] = testbed["fa1"].snapshot()
        testbed.start_agent("ha", "ha", "ha", HA_CONFIG)
        testbed.start_agent("fa1", "fa", "fa1", config(testbed))
        testbed.start_agent("mn", "mn", "mn", MN_CONFIG)
        assert wait_until(lambda: bool(testbed.agents["mn"].events("registration_accepted")), 15.0)
        yield testbed
    finally:
        for name in ("mn", "fa1", "ha"):
            if name in testbed.agents:
                testbed.agents[name].stop()


def kill_9(agent: Agent) -> None:
    """SIGKILL by the PID we started (`ip netns exec` execs the agent: same PID); no cleanup runs."""
    assert b"agents" in Path(f"/proc/{agent.process.pid}/cmdline").read_bytes()
    os.kill(agent.process.pid, signal.SIGKILL)
    assert agent.process.wait(10) == -signal.SIGKILL


def restart(bed: AgentBed, name: str, text: str) -> Agent:
    bed.agents.pop("fa1", None)
    agent = bed.start_agent("fa1", "fa", name, text)
    bed.agents["fa1"] = agent
    return agent


def rules(bed: AgentBed) -> list[str]:
    return bed["fa1"].run("ip rule show").splitlines()


def flows(bed: AgentBed) -> bool:
    return all(ping(bed["cn"], address, timeout=0.5, attempts=1) for address in (HOA, MN_V6))


def test_kill_9_and_restart_restores_the_visitor(bed: AgentBed) -> None:
    assert wait_until(lambda: flows(bed), 5.0)
    kill_9(bed.agents["fa1"])
    left = rules(bed)
    assert any(RULE in line for line in left) and any("blackhole" in line for line in left)
    second = restart(bed, "fa1-2", config(bed))
    restored = second.events("visitor_restored")
    assert [event["home_address"] for event in restored] == [HOA]
    assert wait_until(lambda: flows(bed), 5.0), second.stderr_path.read_text()[-2000:]
    assert ping(bed["mn"], "203.0.113.10", source=HOA)  # reverse tunnelled by FA1 (RFC 3024 §5.1)
    now = rules(bed)
    assert sum(RULE in line for line in now) == 1 and sum("blackhole" in line for line in now) == 1, now
    assert "Traceback" not in second.stderr_path.read_text()
    if DATAPATHS[bed.workdir] == "ebpf":  # the killed FA's filters were replaced, not doubled
        assert tc_filters(bed, "fa1-net").count("name fa_wire_in") == 1
        assert tc_filters(bed, "fa1-acc").count("name fa_access_in") == 1


def tc_filters(bed: AgentBed, interface: str) -> str:
    return bed["fa1"].run(f"tc filter show dev {interface} ingress")


def test_restart_with_a_damaged_journal_removes_the_stale_rules(bed: AgentBed) -> None:
    kill_9(bed.agents["fa1"])
    path = bed.workdir / "fa1.journal"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    sysctls = [record for record in records if record["kind"] == "sysctls"][-1]
    assert sysctls["originals"] == {"net/ipv4/ip_forward": "0"}  # what the first FA1 found
    path.write_text(json.dumps(sysctls) + "\n\x00garbage\n" + '{"kind":"visitor","ho')
    third = restart(bed, "fa1-3", config(bed))
    stderr = third.stderr_path.read_text()
    warnings = [line for line in stderr.splitlines() if "unusable record" in line]
    assert len(warnings) == 1 and "truncated last record" in warnings[0] and "Traceback" not in stderr
    assert not third.events("visitor_restored")
    removed = third.events("stale_state_removed")[0]["removed"]
    assert "1 rule(s) at priority 1100 iif fa1-acc" in removed, removed
    assert "1 rule(s) at priority 1102 iif fa1-acc" in removed, removed
    assert sum(RULE in line for line in rules(bed)) <= 1  # 1 only if the MN has registered again


def test_clean_exit_after_crashes_leaves_the_namespace_as_found(bed: AgentBed) -> None:
    bed.agents["mn"].stop()
    assert bed.agents["fa1"].stop() == 0, bed.agents["fa1"].stderr_path.read_text()[-2000:]
    after, before = bed["fa1"].snapshot(), bed.baseline["fa1"]
    changed = {key: line_changes(before[key], after[key]) for key in after if after[key] != before[key]}
    assert not changed, changed
    assert "clsact" not in bed["fa1"].run("tc qdisc show")
    assert not (tc_filters(bed, "fa1-net") + tc_filters(bed, "fa1-acc")).strip()
