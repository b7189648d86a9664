"""Two namespaces and a real home agent process for :mod:`benchmarks.ha_registration` (needs root).

```
 dsm-r<pid>-mn: mn0 198.18.0.2/24 ──veth── ha-home: dsm-r<pid>-ha, 10.0.0.1/16 (home link) + 198.18.0.1/24
   the load generator (route to 10.0.0.0/16 via 198.18.0.1)    `python -m agents ha`, home addresses
                                                                10.0.1.0 onwards, one account each
```
Everything made here is recorded on the :class:`Testbed` and removed by :meth:`Testbed.close`: the agent
is stopped by its own PID with SIGTERM (SIGKILL only if it does not exit), then exactly the two
namespaces named with this process's PID are deleted, then the temporary directory.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from agents.runtime.mipctl import send_request
from benchmarks.proc_cpu import stat_cpu_seconds
from benchmarks.registration_load import FIRST_SPI, KEY, MobileNodes

REPO = Path(__file__).resolve().parents[1]
HA_ADDRESS = IPv4Address("10.0.0.1")
FIRST_HOME = IPv4Address("10.0.1.0")
CLIENT_ADDRESS = IPv4Address("198.18.0.2")
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 120.0


def run(namespace: str, command: str) -> str:
    """A shell command inside ``namespace``; RuntimeError with its stderr if it fails."""
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, "sh", "-c", command], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"[{namespace}] {command}: {result.stderr.strip()}")
    return result.stdout


def ha_config(count: int, datapath: str = "userspace") -> str:
    """The home agent's TOML: ``count`` accounts, each allowed its own /48 (see :class:`MobileNodes`);
    ``datapath`` ebpf offers IP-in-IP only and no UDP tunnels (what that backend carries)."""
    nodes = MobileNodes(count, HA_ADDRESS, FIRST_HOME)
    lines = [
        "[home_agent]",
        f'address = "{HA_ADDRESS}"',
        'home_network = "10.0.0.0/16"',
        "max_lifetime = 3600",
        *(['encapsulations = ["ipip", "gre"]', "udp_tunnelling = false"] if datapath != "userspace" else []),
        "",
    ]
    for index in range(count):
        lines += [
            "[[home_agent.mobile_nodes]]",
            f'home_address = "{nodes.home(index)}"',
            f"spi = {FIRST_SPI + index}",
            f'key = "{KEY.hex()}"',
            f'allowed_prefixes = ["{nodes.prefix(index)}"]',
            "",
        ]
    lines += ["[runtime]", 'name = "ha"', 'home_interface = "ha-home"', 'tunnel_interface = "mip-ha"']
    lines += [f'datapath = "{datapath}"', ""]
    return "\n".join(lines)


@dataclass
class Agent:
    """A running `python -m agents ha` (its PID is the Popen's: `ip netns exec` execs in place)."""

    process: subprocess.Popen[str]
    control: Path
    stderr: Path

    def profile_phase(self, prefix: Path, phase: int, start: bool) -> None:
        """Start (SIGUSR1) or end (SIGUSR2) profiled phase ``phase`` of an agent run under
        :mod:`benchmarks.profile_agent` (``prefix``: its first argument), and wait until the agent has."""
        done = Path(f"{prefix}-{phase}.running" if start else f"{prefix}-{phase}.prof")
        self.process.send_signal(signal.SIGUSR1 if start else signal.SIGUSR2)
        deadline = time.monotonic() + 30.0
        while not done.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the agent did not {'start' if start else 'end'} profile phase {phase}")
            time.sleep(0.01)

    def ask(self, command: str) -> Any:
        line = json.dumps({"command": command, "args": {}}).encode() + b"\n"
        answer = send_request(self.control, line, 30.0)
        if not answer.get("ok"):
            raise RuntimeError(f"control {command}: {answer}")
        return answer["result"]

    def stop(self) -> int | None:
        """SIGTERM to our own child, then wait (SIGKILL after :data:`STOP_TIMEOUT`); the exit code."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def cpu_seconds(self) -> float:
        """User + system CPU time of the agent so far, all its threads (``/proc/PID/stat``)."""
        return stat_cpu_seconds(Path(f"/proc/{self.process.pid}/stat"))

    def stderr_tail(self, characters: int = 2000) -> str:
        return self.stderr.read_text(errors="replace")[-characters:] if self.stderr.exists() else ""


@dataclass
class Testbed:
    """The namespaces, files and agent processes of one benchmark run."""

    prefix: str = field(default_factory=lambda: f"dsm-r{os.getpid()}")
    namespaces: list[str] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ha-registration-")))
    keep_logs: Path | None = None
    """If set, the agents' stderr logs are copied here before the temporary directory goes."""
    agent_tree: Path = REPO
    """The checkout whose ``agents`` package the home agent runs (another one: an A/B against a baseline
    tree with this harness)."""

    @property
    def ha(self) -> str:
        return f"{self.prefix}-ha"

    @property
    def mn(self) -> str:
        return f"{self.prefix}-mn"

    def build(self) -> None:
        for name in (self.ha, self.mn):
            subprocess.run(["ip", "netns", "add", name], check=True)
            self.namespaces.append(name)
            run(name, "ip link set lo up")
        subprocess.run(
            [
                "ip",
                "link",
                "add",
                "ha-home",
                "netns",
                self.ha,
                "type",
                "veth",
                "peer",
                "name",
                "mn0",
                "netns",
                self.mn,
            ],
            check=True,
        )
        run(
            self.ha,
            f"ip addr add {HA_ADDRESS}/16 dev ha-home && ip addr add 198.18.0.1/24 dev ha-home && "
            "ip link set ha-home up",
        )
        run(
            self.mn,
            f"ip addr add {CLIENT_ADDRESS}/24 dev mn0 && ip link set mn0 up && "
            "ip route add 10.0.0.0/16 via 198.18.0.1",
        )

    def start_agent(self, config: Path, label: str, trace: bool, profile: Path | None = None) -> Agent:
        """Start the home agent in the HA namespace and wait for its READY line; with ``profile``, under
        :mod:`benchmarks.profile_agent` (main thread's CPU time), which writes
        ``profile/<label>-<n>.prof`` for each phase marked with :meth:`Agent.profile_phase`."""
        control, stderr_path = self.workdir / f"{label}.sock", self.workdir / f"{label}.stderr"
        python = [sys.executable, "-m", "agents"]
        if profile is not None:
            python = [sys.executable, "-m", "benchmarks.profile_agent", str(profile / label), "--"]
        agent_args = ["ha", "--config", str(config), "--control", str(control)]
        command = ["ip", "netns", "exec", self.ha, *python, *agent_args]
        if trace:
            command += ["--trace", str(self.workdir / f"{label}.jsonl")]
        with stderr_path.open("w") as stderr:
            environment = os.environ | {"PYTHONPATH": str(self.agent_tree)}
            process = subprocess.Popen(
                command,
                cwd=self.agent_tree,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        agent = Agent(process, control, stderr_path)
        self.agents.append(agent)
        _wait_for_ready(agent)
        return agent

    def trace_size(self, label: str) -> int:
        path = self.workdir / f"{label}.jsonl"
        return path.stat().st_size if path.exists() else 0

    def close(self) -> None:
        """Stop our agents, delete our namespaces and our temporary directory (each step tried)."""
        for agent in self.agents:
            try:
                agent.stop()
            except OSError as error:
                print(f"stopping agent {agent.process.pid}: {error}", file=sys.stderr)
        self.agents.clear()
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], check=False)
        self.namespaces.clear()
        if self.keep_logs is not None:
            self.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in self.workdir.glob("*.stderr"):
                shutil.copy(log, self.keep_logs / log.name)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _wait_for_ready(agent: Agent) -> None:
    assert agent.process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and agent.process.poll() is None:
        readable = select.select([agent.process.stdout], [], [], 0.2)[0]
        if readable and agent.process.stdout.readline().strip() == "READY":
            return
    agent.stop()
    raise RuntimeError(f"home agent not READY: {agent.stderr_tail()}")
