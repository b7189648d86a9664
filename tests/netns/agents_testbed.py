"""A real-namespace testbed for the home agent and mobile nodes (no Mininet): built and torn down by tests.

```
   cn (203.0.113.10, 2001:db8:ff::10)
    │ cn0
    │ r-cn (203.0.113.1, 2001:db8:ff::1)
   r ──── r-home (192.0.2.254, 2001:db8:0:1::fe) ──── ha-home: ha (192.0.2.1, 2001:db8:0:1::1)
    │ r-visit (198.51.100.1)                              home link 192.0.2.0/24
    ├── mn1-eth (198.51.100.10): mn1, HoA 192.0.2.10, prefix 2001:db8:10::/48 (code 0: to the HoA)
    └── mn2-eth (198.51.100.20): mn2, HoA 192.0.2.20, prefix 2001:db8:20::/48,
                                 Tunneling Mode (code 1: to the CoA)
```
The visited link is IPv4-only. The router sends the mobile nodes' IPv6 prefixes to the home agent.
The visited side uses a bridge in the router namespace so both mobile nodes share one link.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.runtime.mipctl import send_request
from tests.netns.conftest import Namespace, NamespaceFactory, veth
from topologies.nodes import start_scale

REPO = Path(__file__).resolve().parents[2]
KEY1 = "00112233445566778899aabbccddeeff"
KEY2 = "ffeeddccbbaa99887766554433221100"
KEY3 = "0f0e0d0c0b0a09080706050403020100"


@dataclass
class Agent:
    """A running `python -m agents` process in one of our namespaces, and its control socket/trace."""

    name: str
    process: subprocess.Popen[str]
    control: Path
    trace: Path
    stderr_path: Path

    def ask(self, command: str, **args: Any) -> Any:
        answer = send_request(
            self.control, json.dumps({"command": command, "args": args}).encode() + b"\n", 5.0
        )
        assert answer.get("ok"), answer
        return answer["result"]

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = self.trace.read_text().splitlines() if self.trace.exists() else []
        records = [json.loads(line) for line in lines if line.strip()]
        return [r for r in records if name is None or r["event"] == name]

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM by our own handle; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return int(self.process.returncode)


@dataclass
class AgentBed:
    namespaces: dict[str, Namespace]
    workdir: Path
    agents: dict[str, Agent] = field(default_factory=dict)
    baseline: dict[str, dict[str, str]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Namespace:
        return self.namespaces[name]

    def start_agent(self, namespace: str, role: str, name: str, config: str) -> Agent:
        path = self.workdir / f"{name}.toml"
        path.write_text(config)
        control, trace = self.workdir / f"{name}.sock", self.workdir / f"{name}.jsonl"
        stderr_path = self.workdir / f"{name}.stderr"
        command = [
            "ip",
            "netns",
            "exec",
            self[namespace].name,
            sys.executable,
            "-m",
            "agents",
            role,
            "--config",
            str(path),
            "--trace",
            str(trace),
            "--control",
            str(control),
        ]
        with stderr_path.open("w") as stderr:
            process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True)
        agent = Agent(name, process, control, trace, stderr_path)
        self.agents[name] = agent
        wait_for_ready(agent)
        return agent

    def stop_all(self) -> dict[str, int]:
        codes = {}
        for name in ("mn1", "mn2", "ha"):
            if name in self.agents:
                codes[name] = self.agents[name].stop()
        return codes


def wait_for_ready(agent: Agent, timeout: float = 15.0) -> None:
    """Wait for the agent's READY line; ``timeout`` scaled by DSMIP_START_SCALE (an emulated VM, tools/vm)."""
    assert agent.process.stdout is not None
    deadline = time.monotonic() + timeout * start_scale()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([agent.process.stdout], [], [], 0.2)
        if ready:
            line = agent.process.stdout.readline()
            if line.strip() == "READY":
                return
        if agent.process.poll() is not None:
            break
    agent.stop()
    raise AssertionError(f"{agent.name} not READY: {agent.stderr_path.read_text()[-2000:]}")


def build(factory: NamespaceFactory, workdir: Path) -> AgentBed:
    names = ["r", "ha", "mn1", "mn2", "cn"]
    bed = AgentBed({name: factory() for name in names}, workdir)
    for namespace in bed.namespaces.values():  # no DAD: addresses are usable (and stable) at once
        namespace.run("sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0")
    r = bed["r"]
    r.run("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
    veth(r, "r-home", bed["ha"], "ha-home")
    veth(r, "r-cn", bed["cn"], "cn0")
    veth(r, "r-v1", bed["mn1"], "mn1-eth")
    veth(r, "r-v2", bed["mn2"], "mn2-eth")
    r.run(
        "ip link add r-visit type bridge && ip link set r-visit up && "
        "ip link set r-v1 master r-visit && ip link set r-v2 master r-visit"
    )
    r.run(
        "ip addr add 192.0.2.254/24 dev r-home && ip addr add 2001:db8:0:1::fe/64 dev r-home nodad && "
        "ip addr add 203.0.113.1/24 dev r-cn && ip addr add 2001:db8:ff::1/64 dev r-cn nodad && "
        "ip addr add 198.51.100.1/24 dev r-visit"
    )
    r.run(
        "ip -6 route add 2001:db8:10::/48 via 2001:db8:0:1::1 && "
        "ip -6 route add 2001:db8:20::/48 via 2001:db8:0:1::1"
    )
    bed["ha"].run(
        "ip addr add 192.0.2.1/24 dev ha-home && ip addr add 2001:db8:0:1::1/64 dev ha-home nodad && "
        "ip route add default via 192.0.2.254 && ip -6 route add default via 2001:db8:0:1::fe"
    )
    bed["cn"].run(
        "ip addr add 203.0.113.10/24 dev cn0 && ip addr add 2001:db8:ff::10/64 dev cn0 nodad && "
        "ip route add default via 203.0.113.1 && ip -6 route add default via 2001:db8:ff::1"
    )
    for mn, address in (("mn1", "198.51.100.10"), ("mn2", "198.51.100.20")):
        bed[mn].run(f"ip addr add {address}/24 dev {mn}-eth && ip route add default via 198.51.100.1")
    bed.baseline = {name: bed[name].snapshot() for name in ("ha", "mn1", "mn2")}
    return bed


HA_CONFIG = f"""
[home_agent]
address = "192.0.2.1"
home_network = "192.0.2.0/24"
max_lifetime = 600

[[home_agent.mobile_nodes]]
home_address = "192.0.2.10"
spi = 256
key = "{KEY1}"
allowed_prefixes = ["2001:db8:10::/48"]

[[home_agent.mobile_nodes]]
home_address = "192.0.2.20"
spi = 257
key = "{KEY2}"
allowed_prefixes = ["2001:db8:20::/48"]

[[home_agent.mobile_nodes]]
home_address = "192.0.2.30"
spi = 258
key = "{KEY3}"
allowed_prefixes = ["2001:db8:30::/48"]

[runtime]
name = "ha"
home_interface = "ha-home"
tunnel_interface = "mip-ha"
datapath = "auto"

[runtime.advertisement]
advertise_home = true
max_interval = 0.2
"""


def mn_config(name: str, home: str, spi: int, key: str, prefix: str, tunneling_mode: bool) -> str:
    return f"""
[mobile_node]
home_address = "{home}"
home_agent = "192.0.2.1"
spi = {spi}
key = "{key}"
lifetime = 120
prefixes = ["{prefix}"]
request_tunneling_mode = {str(tunneling_mode).lower()}

[runtime]
name = "{name}"
interface = "{name}-eth"
tunnel_interface = "mip0"
"""


def start_agents(bed: AgentBed) -> None:
    bed.start_agent("ha", "ha", "ha", HA_CONFIG)
    bed.start_agent("mn1", "mn", "mn1", mn_config("mn1", "192.0.2.10", 256, KEY1, "2001:db8:10::/48", False))
    bed.start_agent("mn2", "mn", "mn2", mn_config("mn2", "192.0.2.20", 257, KEY2, "2001:db8:20::/48", True))


def environment_ok() -> None:
    if os.geteuid() != 0:
        raise AssertionError("needs root")
