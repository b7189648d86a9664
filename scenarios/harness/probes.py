"""Probe flows for a scenario (design.md §7): our own UDP CBR (:mod:`scenarios.probe`) in both directions
for IPv4 and IPv6, one receiver per node and family, merged into ``probes/<flow>.csv`` at the end."""

from __future__ import annotations

import sys
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scenarios.harness.runfolder import RunFolder
from scenarios.probe_format import merge, write_flow_csv

PORTS = {4: 9004, 6: 9006}
DRAIN_SECONDS = 0.3
"""After the senders stop, how long packets in flight get to arrive before the receivers stop."""


@dataclass(frozen=True)
class Flow:
    """One probe flow: ``sender`` sends to ``destination`` (which ``receiver`` owns) from ``source``."""

    name: str
    sender: str
    receiver: str
    destination: str
    family: int
    source: str | None = None


class Timeline:
    """Which attachment the mobile node had at a given time (moves are recorded as they start)."""

    def __init__(self, initial: str) -> None:
        self.times: list[float] = [float("-inf")]
        self.labels: list[str] = [initial]

    def moved(self, t: float, label: str) -> None:
        self.times.append(t)
        self.labels.append(label)

    def at(self, t: float) -> str:
        return self.labels[bisect_right(self.times, t) - 1]


class ProbeSet:
    """Receivers first, then senders; stop senders, let packets drain, stop receivers, merge."""

    def __init__(self, nodes: Callable[[str], Any], run: RunFolder, flows: list[Flow], rate: float) -> None:
        self.nodes = nodes
        self.run = run
        self.flows = flows
        self.rate = rate
        self.receivers: dict[tuple[str, int], Any] = {}
        self.senders: dict[str, Any] = {}

    def start(self) -> None:
        for flow in self.flows:
            key = (flow.receiver, flow.family)
            if key not in self.receivers:
                bind = "0.0.0.0" if flow.family == 4 else "::"
                argv = self._argv("recv", "--bind", bind, "--port", str(PORTS[flow.family]))
                argv += ["--log", str(self.run.raw_probe(f"{flow.receiver}-v{flow.family}.recv"))]
                self.receivers[key] = self._start(
                    flow.receiver, argv, f"probe-recv-{flow.receiver}-v{flow.family}"
                )
        for flow in self.flows:
            argv = self._argv("send", "--to", flow.destination, "--port", str(PORTS[flow.family]))
            argv += ["--flow", flow.name, "--rate", str(self.rate)]
            argv += ["--log", str(self.run.raw_probe(f"{flow.name}.send"))]
            if flow.source is not None:
                argv += ["--source", flow.source]
            self.senders[flow.name] = self._start(flow.sender, argv, f"probe-send-{flow.name}")

    def _argv(self, *words: str) -> list[str]:
        return [sys.executable, "-m", "scenarios.probe", *words]

    def _start(self, node: str, argv: list[str], name: str) -> Any:
        return self.nodes(node).start_process(argv, self.run.log(name), ready=b"READY", timeout=10.0)

    def stop(self) -> dict[str, int]:
        """Stop every probe process by its handle; exit codes by process name."""
        codes = {f"send-{name}": process.stop() for name, process in self.senders.items()}
        if self.senders:
            time.sleep(DRAIN_SECONDS)
        codes |= {f"recv-{node}-v{family}": p.stop() for (node, family), p in self.receivers.items()}
        self.senders, self.receivers = {}, {}
        return codes

    def merge(self, timeline: Timeline) -> None:
        """Write ``probes/<flow>.csv`` for every flow (design.md §7)."""
        for flow in self.flows:
            receiver_log = self.run.raw_probe(f"{flow.receiver}-v{flow.family}.recv")
            logs = [receiver_log] if receiver_log.exists() else []
            rows = merge(self.run.raw_probe(f"{flow.name}.send"), logs, flow.name, timeline.at, flow.family)
            write_flow_csv(rows, self.run.flow(flow.name))
