"""Agents at a real-time priority (issue 14, :mod:`agents.runtime.scheduling`): the policy is really set,
a runaway agent drops it (RLIMIT_RTTIME, SIGXCPU), a refusal leaves the agent running normally, and the
configs, topology and scenario options carry the priority. These run as root on the real kernel."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agents.runtime.configfile import ConfigError
from agents.runtime.roles import foreign_agent, home_agent, mobile_node
from agents.runtime.scheduling import RealtimeScheduling, check_priority, realtime_thread
from agents.runtime.trace import TraceWriter
from scenarios.harness.options import DEFAULT_AGENT_PRIORITY, add_common_options
from topologies.agent_configs import render_toml
from topologies.dualstack import DualStackTopo

REPO = Path(__file__).resolve().parents[2]
ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")

PROGRAM = textwrap.dedent(
    """
    import asyncio, json, os, subprocess, sys, threading, time
    from pathlib import Path
    from agents.runtime.scheduling import RealtimeScheduling
    from agents.runtime.trace import TraceWriter

    def policy(thread=0):
        return os.sched_getscheduler(thread) & ~os.SCHED_RESET_ON_FORK

    async def main(priority, load, user):
        trace = TraceWriter(Path(sys.argv[4]), "t")
        if user:  # after everything is open and imported: nobody may not read them
            os.setgid(65534)
            os.setuid(65534)
        stop = threading.Event()
        worker = threading.Thread(target=stop.wait)  # a datapath thread, started before
        worker.start()
        scheduling = RealtimeScheduling(priority, trace, limit=0.05, window=0.1)
        scheduling.start(asyncio.get_running_loop())
        seen = {"after_start": policy(), "state_after_start": scheduling.state}
        seen["worker"] = policy(worker.native_id)
        stop.set()
        child = "import os; print(os.sched_getscheduler(0))"  # what a started `tc` or `ip` would run at
        seen["child"] = int(subprocess.run([sys.executable, "-c", child], capture_output=True).stdout)
        if load == "busy":  # never blocks, never yields: the runaway RLIMIT_RTTIME is for
            end = time.monotonic() + 0.4
            while time.monotonic() < end:
                pass
            seen["before_yield"] = policy()  # the signal handler ran between two bytecodes
        elif load == "flood":  # 10 ms of work, 0.5 ms asleep, for 1 s: blocks often, a CPU all the same
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                burst = time.monotonic() + 0.01
                while time.monotonic() < burst:
                    pass
                await asyncio.sleep(0.0005)
        await asyncio.sleep(0.05)  # the loop writes the trace line
        seen |= {"after_load": policy(), "state": scheduling.state}
        trace.close()
        print(json.dumps(seen))

    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3] == "user"))
    """
)


def run_program(
    tmp_path: Path, priority: int, load: str = "none", user: bool = False
) -> tuple[dict[str, object], list[dict[str, object]]]:
    trace = tmp_path / "trace.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(priority), load, "user" if user else "root", str(trace)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    return json.loads(result.stdout), [line for line in lines if line["event"] == "scheduling"]


@ROOT
def test_the_agent_runs_at_sched_fifo_and_says_so(tmp_path: Path) -> None:
    seen, lines = run_program(tmp_path, 10)
    assert seen["after_start"] == os.SCHED_FIFO and seen["state_after_start"] == "on"
    assert seen["after_load"] == os.SCHED_FIFO  # idle: it keeps it
    assert seen["worker"] == os.SCHED_OTHER  # only the event loop's thread: the signalling
    assert seen["child"] == os.SCHED_OTHER  # commands it starts run normally (SCHED_RESET_ON_FORK)
    assert [(line["priority"], line["state"]) for line in lines] == [(10, "on")]


@ROOT
def test_a_runaway_agent_drops_at_once_even_before_it_yields(tmp_path: Path) -> None:
    """RLIMIT_RTTIME (setrlimit(2)): 50 ms without blocking → SIGXCPU → SCHED_OTHER for good, traced; the
    handler runs between two bytecodes, so a coroutine that never yields does not keep the CPU."""
    seen, lines = run_program(tmp_path, 10, "busy")
    assert seen["after_start"] == os.SCHED_FIFO
    assert seen["before_yield"] == os.SCHED_OTHER
    assert seen["after_load"] == os.SCHED_OTHER and seen["state"] == "dropped"
    assert [line["state"] for line in lines] == ["on", "dropped"]
    assert "without sleeping" in lines[-1]["error"]


@ROOT
def test_a_flooded_agent_that_still_blocks_now_and_then_drops_too(tmp_path: Path) -> None:
    """A flood keeps the loop busy but lets it block for an instant between bursts, which resets
    RLIMIT_RTTIME's count: the share of a CPU over two windows is what drops it."""
    seen, lines = run_program(tmp_path, 10, "flood")
    assert seen["after_load"] == os.SCHED_OTHER and seen["state"] == "dropped"
    assert [line["state"] for line in lines] == ["on", "dropped"]
    assert "of a CPU" in lines[-1]["error"]


@ROOT
def test_a_refused_policy_leaves_the_agent_running_normally(tmp_path: Path) -> None:
    """Without CAP_SYS_NICE (RLIMIT_RTPRIO 0) the kernel refuses SCHED_FIFO (sched(7)): said, not fatal."""
    seen, lines = run_program(tmp_path, 10, user=True)
    assert seen["after_start"] == os.SCHED_OTHER and seen["state"] == "unavailable"
    assert lines[0]["state"] == "unavailable" and "PermissionError" in lines[0]["error"]


@ROOT
def test_the_harness_link_move_runs_real_time_only_inside_its_block() -> None:
    before = os.sched_getscheduler(0)
    child = [sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"]
    with realtime_thread(10) as raised:
        inside = os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK
        started = int(subprocess.run(child, capture_output=True, check=True).stdout)
    assert raised and inside == os.SCHED_FIFO and started == os.SCHED_OTHER
    assert os.sched_getscheduler(0) == before
    with realtime_thread(0) as raised:
        assert not raised and os.sched_getscheduler(0) == before


def test_priority_zero_changes_nothing(tmp_path: Path) -> None:
    trace = TraceWriter(tmp_path / "t.jsonl", "t")
    scheduling = RealtimeScheduling(0, trace)
    policy = os.sched_getscheduler(0)
    scheduling.start(None)  # type: ignore[arg-type]  # never reaches the loop
    trace.close()
    assert scheduling.state == "off" and os.sched_getscheduler(0) == policy
    assert (tmp_path / "t.jsonl").read_text() == ""


@pytest.mark.parametrize("bad", [-1, 100, True])
def test_priorities_outside_0_to_99_are_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="must be 0"):
        check_priority("realtime_priority", bad)
    check_priority("realtime_priority", 99)


@pytest.mark.parametrize("role", ["ha", "fa1", "mn1"])
def test_every_role_reads_its_priority_and_refuses_a_bad_one(tmp_path: Path, role: str) -> None:
    loaders = {"ha": home_agent.load_settings, "fa1": foreign_agent.load_settings}
    load = loaders.get(role, mobile_node.load_settings)
    config = DualStackTopo(foreign_agents=2, mobile_nodes=1, nat=False, agent_priority=20).specs[role]
    assert isinstance(config.agent_config, dict)
    path = tmp_path / "agent.toml"
    path.write_text(render_toml(config.agent_config))
    assert load(path).runtime.realtime_priority == 20
    runtime = config.agent_config["runtime"]
    assert isinstance(runtime, dict)
    runtime["realtime_priority"] = 100
    path.write_text(render_toml(config.agent_config))
    with pytest.raises(ConfigError, match="realtime_priority 100 must be 0"):
        load(path)


def test_without_a_priority_the_topology_writes_none() -> None:
    topo = DualStackTopo(foreign_agents=1, mobile_nodes=1, nat=False)
    for spec in topo.specs.values():
        if isinstance(spec.agent_config, dict):
            assert "realtime_priority" not in spec.agent_config["runtime"]  # type: ignore[operator]


def test_scenarios_default_to_a_priority_and_check_the_option() -> None:
    parser = argparse.ArgumentParser()
    add_common_options(parser, "handover", 1000.0)
    assert parser.parse_args([]).agent_priority == DEFAULT_AGENT_PRIORITY > 0
    assert parser.parse_args(["--agent-priority", "0"]).agent_priority == 0
    for bad in ("100", "-1", "x"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--agent-priority", bad])
