"""Real-time scheduling end to end (issue 14): real agents started with ``[runtime] realtime_priority``.

What the unit tests cannot show: the running agent's event-loop thread holds ``SCHED_FIFO`` at the
configured priority in the kernel, every other thread of it runs normally (``SCHED_RESET_ON_FORK``),
the ``scheduling`` control command and ``mipctl scheduling`` report the same, the trace says so, and a
mobile node at real-time priority registers with a home agent at real-time priority.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.agents_testbed import HA_CONFIG, KEY1, REPO, AgentBed, build, mn_config
from tests.netns.conftest import NamespaceFactory, wait_until

HA_PRIORITY, MN_PRIORITY = 7, 5


def with_priority(config: str, priority: int) -> str:
    """``config`` with ``realtime_priority`` set in its ``[runtime]`` table."""
    assert config.count("[runtime]\n") == 1
    return config.replace("[runtime]\n", f"[runtime]\nrealtime_priority = {priority}\n")


@pytest.fixture(scope="module")
def bed(namespaces: NamespaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentBed]:
    testbed = build(namespaces, tmp_path_factory.mktemp("scheduling"))
    try:
        testbed.start_agent("ha", "ha", "ha", with_priority(HA_CONFIG, HA_PRIORITY))
        mn1 = mn_config("mn1", "192.0.2.10", 256, KEY1, "2001:db8:10::/48", False)
        testbed.start_agent("mn1", "mn", "mn1", with_priority(mn1, MN_PRIORITY))
        yield testbed
    finally:
        testbed.stop_all()


def policy(tid: int) -> tuple[int, int]:
    """(scheduling policy without the reset-on-fork flag, real-time priority) of one thread."""
    return os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK, os.sched_getparam(tid).sched_priority


def threads(pid: int) -> list[int]:
    return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]


@pytest.mark.parametrize(("name", "priority"), [("ha", HA_PRIORITY), ("mn1", MN_PRIORITY)])
def test_the_event_loop_thread_holds_sched_fifo_at_the_configured_priority(
    bed: AgentBed, name: str, priority: int
) -> None:
    pid = bed.agents[name].process.pid  # `ip netns exec` execs the interpreter: same PID
    assert policy(pid) == (os.SCHED_FIFO, priority)
    assert os.sched_getscheduler(pid) & os.SCHED_RESET_ON_FORK  # what it starts runs normally


@pytest.mark.parametrize("name", ["ha", "mn1"])
def test_every_other_thread_of_the_agent_runs_normally(bed: AgentBed, name: str) -> None:
    pid = bed.agents[name].process.pid
    others = [tid for tid in threads(pid) if tid != pid]
    assert others, "no datapath thread to check"  # each agent's datapath polls or forwards on its own
    assert all(policy(tid) == (os.SCHED_OTHER, 0) for tid in others), {tid: policy(tid) for tid in others}


@pytest.mark.parametrize(("name", "priority"), [("ha", HA_PRIORITY), ("mn1", MN_PRIORITY)])
def test_control_command_mipctl_and_trace_agree_with_the_kernel(
    bed: AgentBed, name: str, priority: int
) -> None:
    agent = bed.agents[name]
    assert agent.ask("scheduling") == {"realtime_priority": priority, "state": "on", "error": ""}
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "agents.runtime.mipctl",
            "--socket",
            str(agent.control),
            "--json",
            "scheduling",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {"realtime_priority": priority, "state": "on", "error": ""}
    lines = agent.events("scheduling")
    assert lines and lines[-1]["state"] == "on" and lines[-1]["priority"] == priority


def test_a_real_time_mobile_node_registers_with_a_real_time_home_agent(bed: AgentBed) -> None:
    assert wait_until(lambda: bool(bed.agents["mn1"].events("registration_accepted")), 10.0)
    assert policy(bed.agents["ha"].process.pid)[0] == os.SCHED_FIFO  # serving did not drop it


def test_priority_zero_leaves_the_agent_at_normal_scheduling(
    namespaces: NamespaceFactory, tmp_path: Path
) -> None:
    quiet = build(namespaces, tmp_path)
    try:
        agent = quiet.start_agent("ha", "ha", "ha", with_priority(HA_CONFIG, 0))
        assert policy(agent.process.pid) == (os.SCHED_OTHER, 0)
        assert agent.ask("scheduling")["state"] == "off"
    finally:
        quiet.stop_all()
