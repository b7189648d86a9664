"""Load and validate a scenario run folder (design.md §7): meta, traces, probe CSVs, pcap names.

Everything here reads files only; nothing needs root or Mininet. Problems that make a folder unusable
(no meta.json, a malformed line in the middle of a file) raise :class:`RunFolderError` with a message
naming the file and line. Two tolerated imperfections are recorded in :attr:`Run.notes` instead:

* a last line without its newline that does not parse (a writer killed mid-line loses at most that
  line, see ``agents/runtime/trace.py``) is skipped;
* a flow listed in ``meta.json`` without a probe file becomes an empty flow, so the verdicts (not a
  crash) say that it received nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.mip.common.trace_schema import TraceEvent
from reports.errors import RunFolderError
from reports.probes import FlowData, empty_flow, parse_probe_csv

SCENARIO_NODE = "scenario"
DEFAULT_FLOWS = ("v4-down", "v4-up", "v6-down", "v6-up")


@dataclass(frozen=True)
class Run:
    """A loaded run folder. Trace events are plain dicts sorted by ``t``; times are CLOCK_MONOTONIC."""

    path: Path
    meta: dict[str, Any]
    t0: float
    flows: dict[str, FlowData]
    traces: dict[str, list[dict[str, Any]]]
    pcaps: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def mobile_node(self) -> str:
        """The MN's node name: meta's ``mobile_node``, else the node that sent Registration Requests."""
        name = self.meta.get("mobile_node")
        if isinstance(name, str):
            return name
        for node, events in self.traces.items():
            if any(event["event"] == TraceEvent.RRQ_SENT for event in events):
                return node
        return "mn1"

    @property
    def home_agent(self) -> str:
        name = self.meta.get("home_agent")
        return name if isinstance(name, str) else "ha"

    def events(self, node: str, *names: str) -> list[dict[str, Any]]:
        """Events of ``node`` (all of them when no ``names``), in time order."""
        events = self.traces.get(node, [])
        return [event for event in events if event["event"] in names] if names else list(events)

    def foreign_agent_events(self, *names: str) -> list[dict[str, Any]]:
        """Events named ``names`` from every node except the MN, the HA and the harness, in time order."""
        skip = {self.mobile_node, self.home_agent, SCENARIO_NODE}
        found = [
            event
            for node, events in self.traces.items()
            if node not in skip
            for event in events
            if event["event"] in names
        ]
        return sorted(found, key=lambda event: event["t"])


def load_run(path: Path) -> Run:
    """Read and validate the run folder at ``path``."""
    path = Path(path)
    if not path.is_dir():
        raise RunFolderError(f"{path}: not a run folder (no such directory)")
    notes: list[str] = []
    meta = _load_meta(path / "meta.json")
    flow_names = _flow_names(meta, path / "probes")
    flows: dict[str, FlowData] = {}
    for name in flow_names:
        csv_path = path / "probes" / f"{name}.csv"
        if csv_path.is_file():
            flows[name] = parse_probe_csv(csv_path, name, notes)
        else:
            notes.append(f"probes/{name}.csv is missing: flow {name} counted as empty")
            flows[name] = empty_flow(name)
    traces: dict[str, list[dict[str, Any]]] = {}
    trace_dir = path / "traces"
    if trace_dir.is_dir():
        for trace_path in sorted(trace_dir.glob("*.jsonl")):
            traces[trace_path.stem] = _load_trace(trace_path, notes)
    pcap_dir = path / "pcaps"
    pcaps = sorted(p.name for p in pcap_dir.iterdir() if p.is_file()) if pcap_dir.is_dir() else []
    t0 = _t0(meta, flows, traces)
    return Run(path=path, meta=meta, t0=t0, flows=flows, traces=traces, pcaps=pcaps, notes=notes)


def _load_meta(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunFolderError(f"{path}: missing (not a run folder?)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path} line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(meta, dict):
        raise RunFolderError(f"{path}: must hold a JSON object")
    checks: dict[str, tuple[type, ...]] = {
        "t0": (int, float),
        "adv_interval": (int, float),
        "rate": (int, float),
        "moves": (int,),
        "dwell": (int, float),
        "wall_time_s": (int, float),
        "scenario": (str,),
        "detection": (str,),
        "mobile_node": (str,),
        "home_agent": (str,),
        "flows": (list,),
        "expectations": (list,),
    }
    for key, types in checks.items():
        value = meta.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            wanted = " or ".join(t.__name__ for t in types)
            raise RunFolderError(f"{path}: {key!r} must be {wanted}, not {value!r}")
    if "flows" in meta and not all(isinstance(item, str) and item for item in meta["flows"]):
        raise RunFolderError(f"{path}: 'flows' must be a list of flow names")
    for index, item in enumerate(meta.get("expectations") or []):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("passed"), bool)
        ):
            raise RunFolderError(
                f"{path}: expectations[{index}] must be an object with a 'name' string and a 'passed' bool"
            )
    return meta


def _flow_names(meta: dict[str, Any], probe_dir: Path) -> list[str]:
    if "flows" in meta:
        return list(meta["flows"])
    if probe_dir.is_dir():
        found = sorted(p.stem for p in probe_dir.glob("*.csv"))
        if found:
            return found
    return list(DEFAULT_FLOWS)


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, is-unterminated-last-line) for each line of ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{path}: cannot read: {exc}") from None
    lines = text.split("\n")
    last = len(lines) - 1
    for number, line in enumerate(lines, start=1):
        if number - 1 == last and line == "":
            break
        yield number, line, number - 1 == last


def _load_trace(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    label = f"traces/{path.name}"
    for number, line, unterminated in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            problem = _trace_problem(record)
        except json.JSONDecodeError as exc:
            problem = f"invalid JSON: {exc.msg}"
        if problem is None:
            events.append(record)
        elif unterminated:
            notes.append(f"{label} line {number}: unterminated last line skipped ({problem})")
        else:
            raise RunFolderError(f"{label} line {number}: {problem}")
    events.sort(key=lambda event: event["t"])
    return events


def _trace_problem(record: object) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    t = record.get("t")
    if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
        return f"'t' must be a finite number, not {t!r}"
    if not isinstance(record.get("event"), str):
        return f"'event' must be a string, not {record.get('event')!r}"
    return None


def _t0(meta: dict[str, Any], flows: dict[str, FlowData], traces: dict[str, list[dict[str, Any]]]) -> float:
    if isinstance(meta.get("t0"), int | float):
        return float(meta["t0"])
    starts = [float(flow.send_t.min()) for flow in flows.values() if flow.send_t.size]
    starts += [float(events[0]["t"]) for events in traces.values() if events]
    return min(starts) if starts else 0.0


def scenario_of(run_dir: Path) -> str | None:
    """The scenario named in ``run_dir``'s meta.json (None if unreadable: :func:`load_run` then says why)."""
    try:
        meta = json.loads((Path(run_dir) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    scenario = meta.get("scenario") if isinstance(meta, dict) else None
    return scenario if isinstance(scenario, str) else None
