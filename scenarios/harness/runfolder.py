"""A scenario's run folder (design.md §7): where pcaps, traces, probe logs, metrics, plots and the report go.

```
reports/runs/<scenario>-<UTC timestamp>/
  meta.json  configs/<node>.toml  logs/<node>.log  pcaps/<node>-<intf>.pcap  traces/<node>.jsonl
  probes/<flow>.csv  probes/raw/*.csv  metrics.json  handovers.csv  plots/*.png  report.md
```
Control sockets live in a short private directory instead (a Unix socket path has at most 107 bytes).
"""

from __future__ import annotations

import importlib
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.datapath.selection import Needs

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RUNS = REPO / "reports" / "runs"
SUBFOLDERS = ("configs", "logs", "pcaps", "traces", "probes", "probes/raw", "plots")


@dataclass
class RunFolder:
    """One run's folder; :meth:`create` makes it, :meth:`write_meta` records what ran."""

    path: Path
    sockets: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, scenario: str, out: Path | None = None) -> RunFolder:
        """``out`` or ``reports/runs/<scenario>-<UTC time>``; refuses a folder that already has a run."""
        run = cls.planned(scenario, out)
        run.make()
        return run

    @classmethod
    def planned(cls, scenario: str, out: Path | None = None) -> RunFolder:
        """The run folder :meth:`create` would make, not made yet (:meth:`make` does, once the run's
        options are known to be good: a refused option leaves no empty folder behind)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = (out or DEFAULT_RUNS / f"{scenario}-{stamp}").resolve()
        if (path / "meta.json").exists():
            raise FileExistsError(f"{path} already holds a run (meta.json); choose another --out")
        sockets = Path(tempfile.mkdtemp(prefix="dsmip-"))
        return cls(path, sockets)

    def make(self) -> None:
        """Create the folder and its subfolders (idempotent)."""
        self.path.mkdir(parents=True, exist_ok=True)
        for name in SUBFOLDERS:
            (self.path / name).mkdir(exist_ok=True)

    def config(self, node: str) -> Path:
        return self.path / "configs" / f"{node}.toml"

    def log(self, name: str) -> Path:
        return self.path / "logs" / f"{name}.log"

    def trace(self, node: str) -> Path:
        return self.path / "traces" / f"{node}.jsonl"

    def pcap(self, node: str, interface: str) -> Path:
        return self.path / "pcaps" / f"{node}-{interface}.pcap"

    def control(self, node: str) -> Path:
        return self.sockets / f"{node}.sock"

    def raw_probe(self, name: str) -> Path:
        return self.path / "probes" / "raw" / f"{name}.csv"

    def flow(self, name: str) -> Path:
        return self.path / "probes" / f"{name}.csv"

    def write_meta(self, **fields: Any) -> None:
        """Merge ``fields`` into meta.json (written whole each time, so a crash leaves the last good one)."""
        self.meta.update(fields)
        target = self.path / "meta.json"
        partial = target.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.meta, indent=2, sort_keys=True, default=str) + "\n")
        partial.replace(target)

    def remove_sockets(self) -> None:
        shutil.rmtree(self.sockets, ignore_errors=True)


def git_revision() -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def versions() -> dict[str, str | None]:
    """Versions a reader of the run needs to reproduce it."""
    found: dict[str, str | None] = {"python": sys.version.split()[0], "kernel": platform.release()}
    for module, where in (("mininet", "mininet.net"), ("pyroute2", "pyroute2"), ("matplotlib", "matplotlib")):
        try:
            imported = importlib.import_module(where)
        except ImportError:
            found[module] = None
            continue
        version = getattr(imported, "__version__", None) or getattr(imported, "VERSION", None)
        found[module] = None if version is None else str(version)
    for tool, flag in (("tcpdump", "--version"), ("tshark", "--version")):
        try:
            out = subprocess.run([tool, flag], capture_output=True, text=True, timeout=10)
            found[tool] = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else None
        except (OSError, subprocess.TimeoutExpired):
            found[tool] = None
    return found


def start_meta(scenario: str, args: Any, seed: int, features: dict[str, Any]) -> dict[str, Any]:
    """What every scenario records first: what ran (argv, seed, datapath, probe rate), where (git revision,
    versions, kernel features) and its clocks: ``t0`` on CLOCK_MONOTONIC (the traces' clock) and
    ``clock_offset``, which turns it into the wall time tcpdump writes in the pcaps."""
    from agents.runtime.trace import monotonic_now

    now, wall = monotonic_now(), time.time()  # together: the offset between the two clocks
    return {
        "scenario": scenario,
        "argv": ["python", "-m", f"scenarios.{scenario}", *getattr(args, "argv", [])],
        "seed": seed,
        "datapath": args.datapath,
        "datapath_choice": datapath_choice(args.datapath, run_needs(scenario, args)),
        "agent_priority": getattr(args, "agent_priority", 0),
        "rate": args.rate,
        "git_rev": git_revision(),
        "versions": versions(),
        "kernel_features": features,
        "start_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "t0": now,
        "clock_offset": wall - now,
    }


UDP_SCENARIOS = ("nat_traversal",)
"""Scenarios whose mobile nodes tunnel in UDP (RFC 3519), which the ebpf datapath does not carry."""


S_HANDOFFS = ("pre", "make-before-break")
"""``--handoff`` modes whose mobile node registers the new care-of address with S before it leaves the old
one (RFC 4881 §3 pre-registration, make-before-break; RFC 5944 §3.6.1.3). A home agent that cannot keep
simultaneous bindings answers code 1 and moves the binding at once, while the pre-registration's reply is
still routed to the home address, which the moved binding sends to the new FA, where the node is not yet (in
the VM with the kernel datapath the harness's wait for it timed out and the downlink was never counted as
restored after that move)."""


def run_needs(scenario: str, args: Any) -> Needs:
    """What the run asks of the home agent's datapath: RFC 3519 UDP tunnels (:data:`UDP_SCENARIOS`),
    simultaneous bindings (:data:`S_HANDOFFS`)."""
    from agents.datapath.selection import Needs

    with_s = getattr(args, "handoff", None) in S_HANDOFFS
    return Needs(udp_tunnels=scenario in UDP_SCENARIOS, simultaneous_bindings=with_s)


def datapath_choice(requested: str, needs: Needs | None = None) -> dict[str, str]:
    """What ``--datapath`` resolves to here for the run's ``needs`` (:func:`run_needs`) and why
    (:mod:`agents.datapath.selection`); each agent also traces its own ``datapath_selected`` (a mobile node
    that needs UDP tunnels takes userspace under auto)."""
    from agents.datapath.kernel import BackendUnavailableError
    from agents.datapath.selection import Needs, select_backend

    try:
        return select_backend(requested, needs or Needs()).to_dict()
    except (BackendUnavailableError, ValueError) as error:
        return {"backend": "none", "requested": requested, "reason": str(error)}


def kernel_notes(features: dict[str, Any]) -> list[str]:
    """What a scenario says once about this kernel: no netem (no added delay or loss), and whether the
    host's firewall sees bridged traffic (:mod:`topologies.bridges`)."""
    from topologies.bridges import bridge_netfilter_note

    no_netem = "this kernel has no sch_netem: links run without added delay or loss"
    notes = [] if features.get("netem") else [no_netem]
    bridged = str(features.get("bridge_netfilter", "off"))
    note = bridge_netfilter_note([] if bridged == "off" else bridged.split("+"))
    return notes + ([note] if note else [])
