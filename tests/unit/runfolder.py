"""Synthetic scenario run folders (design.md §7) for the reports tests.

:class:`RunFolderBuilder` writes exactly what the scenario harness writes: ``meta.json``,
``traces/<node>.jsonl``, ``probes/<flow>.csv`` and (empty) ``pcaps/*.pcap``. Probe flows are constant bit
rate with losses given as send-time intervals, so every interruption and loss count is known exactly.
:func:`standard_run` builds the three-handover run most tests use; its expected numbers are documented
beside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

T0 = 1000.0


@dataclass
class FlowSpec:
    """A CBR probe flow. Times are absolute (CLOCK_MONOTONIC-like) seconds.

    ``losses``: send-time intervals [a, b) whose packets never arrive. ``delays``: (from send time, one-way
    delay) steps, the first applying from ``start``. ``paths``: (from time, attachment label) steps, applied
    to the receive time (send time when lost). ``duplicates``: packet indexes received twice (+0.1 ms).
    ``late``: packet index → extra delay (to reorder it after its successors). ``stalls``: send-time
    intervals [a, b) the sender was held (no CPU): their packets go out at b, 1 µs apart, in seq order.
    """

    name: str
    family: int
    start: float
    end: float
    rate: float = 1000.0
    delays: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 0.0005)])
    losses: list[tuple[float, float]] = field(default_factory=list)
    paths: list[tuple[float, str]] = field(default_factory=lambda: [(0.0, "home")])
    duplicates: set[int] = field(default_factory=set)
    late: dict[int, float] = field(default_factory=dict)
    stalls: list[tuple[float, float]] = field(default_factory=list)

    def _step(self, steps: list[tuple[float, Any]], t: float) -> Any:
        value = steps[0][1]
        for start, item in steps:
            if t >= start:
                value = item
        return value

    def rows(self) -> list[tuple[int, float, float | None, str]]:
        count = round((self.end - self.start) * self.rate)
        sends = [self._sent_at(self.start + k / self.rate) for k in range(count)]
        for k in range(1, count):  # a held sender catches up in order
            if sends[k] <= sends[k - 1]:
                sends[k] = sends[k - 1] + 1e-6
        recvs: list[float | None] = []
        for k, send in enumerate(sends):
            if any(a <= send < b for a, b in self.losses):
                recvs.append(None)
            else:
                recvs.append(send + self._step(self.delays, send) + self.late.get(k, 0.0))
        rows: list[tuple[int, float, float | None, str]] = []
        for k, (send, recv) in enumerate(zip(sends, recvs, strict=True)):
            rows.append((k, send, recv, self._step(self.paths, send if recv is None else recv)))
            if k in self.duplicates and recv is not None:
                rows.append((k, send, recv + 0.0001, self._step(self.paths, recv)))
        return rows

    def _sent_at(self, due: float) -> float:
        return next((b for a, b in self.stalls if a <= due < b), due)

    def csv_text(self) -> str:
        lines = ["seq,send_t,recv_t,path,family"]
        for seq, send, recv, path in self.rows():
            lines.append(f"{seq},{send!r},{'' if recv is None else repr(recv)},{path},{self.family}")
        return "\n".join(lines) + "\n"


class RunFolderBuilder:
    """Collects meta, trace events and flows, then :meth:`write` lays them out as a run folder."""

    def __init__(self, root: Path, **meta: Any) -> None:
        self.root = root
        self.meta: dict[str, Any] = {
            "scenario": "handover",
            "argv": ["python", "-m", "scenarios.handover"],
            "seed": 1,
            "datapath": "userspace",
            "detection": "link",
            "adv_interval": 1.0,
            "rate": 1000,
            "moves": 0,
            "dwell": 3.0,
            "git_rev": "0123abc",
            "versions": {"python": "3.11", "kernel": "6.1"},
            "kernel_features": {"netem": False, "ipip": False},
            "start_utc": "2024-01-01T00:00:00Z",
            "end_utc": "2024-01-01T00:00:20Z",
            "wall_time_s": 20.0,
            "t0": T0,
            "mobile_node": "mn1",
            "home_agent": "ha",
            "flows": [],
        }
        self.meta.update(meta)
        self.traces: dict[str, list[dict[str, Any]]] = {}
        self.flows: dict[str, FlowSpec] = {}
        self.pcaps = ["ha-ha-eth0.pcap", "mn1-mn1-eth0.pcap"]

    def event(self, node: str, t: float, event: str, **fields: Any) -> None:
        self.traces.setdefault(node, []).append({"t": t, "node": node, "event": event, **fields})

    def flow(self, spec: FlowSpec) -> FlowSpec:
        self.flows[spec.name] = spec
        if spec.name not in self.meta["flows"]:
            self.meta["flows"].append(spec.name)
        return spec

    def write(self) -> Path:
        for sub in ("traces", "probes", "pcaps"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "meta.json").write_text(json.dumps(self.meta, indent=2), encoding="utf-8")
        for node, events in self.traces.items():
            lines = [json.dumps(event) for event in sorted(events, key=lambda e: e["t"])]
            (self.root / "traces" / f"{node}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for name, spec in self.flows.items():
            (self.root / "probes" / f"{name}.csv").write_text(spec.csv_text(), encoding="utf-8")
        for name in self.pcaps:
            (self.root / "pcaps" / name).write_bytes(b"")
        return self.root


# -- the standard run ---------------------------------------------------------------------------------------

FLOWS = (("v4-down", 4), ("v4-up", 4), ("v6-down", 6), ("v6-up", 6))
MOVES = (  # handover, absolute t_move, from, to, detection
    (1, 1005.0007, "home", "fa1", "link"),
    (2, 1010.0007, "fa1", "fa2", "advert"),
    (3, 1013.0007, "fa2", "home", "link"),
)
HOME_ADDRESS = "192.0.2.10"
CARE_OF = {"fa1": "198.51.100.1", "fa2": "203.0.113.1", "home": HOME_ADDRESS}

# Packets leave every 1 ms and take 0.5 ms, so none is in flight at a move (0.7 ms after a send): the
# last packet before the move arrived 0.5 ms after it was sent, the first lost one is sent after the move.
#   handover 1: v4-down loses 11 packets and its delay rises to 1.0 ms → interruption 12.5 ms;
#               v4-up 21 lost → 22.0 ms; v6-down 31 → 32.0 ms; v6-up 41 → 42.0 ms.
#   handover 2: every flow loses 100 packets → 101.0 ms.   handover 3: 20 lost → 21.0 ms.
LOSSES = {
    "v4-down": [(1005.0005, 1005.0115)],
    "v4-up": [(1005.0005, 1005.0215)],
    "v6-down": [(1005.0005, 1005.0315)],
    "v6-up": [(1005.0005, 1005.0415)],
}
FIRST_RX_1 = {"v4-down": 12.3, "v4-up": 21.8, "v6-down": 31.8, "v6-up": 41.8}  # ms after move 1
EXPECTED = {
    1: {"v4-down": (12.5, 11), "v4-up": (22.0, 21), "v6-down": (32.0, 31), "v6-up": (42.0, 41)},
    2: {name: (101.0, 100) for name, _ in FLOWS},
    3: {name: (21.0, 20) for name, _ in FLOWS},
}
# Handover 1's trace steps, ms after t_move (link detection, via fa1).
STEPS_1 = {
    "link_down": 0.2,
    "link_up": 1.0,
    "movement_detected": 1.5,
    "solicitation_sent": 1.6,
    "advertisement_sent": 2.4,
    "agent_discovered": 2.5,
    "rrq_sent": 3.0,
    "fa_rrq_relayed": 3.4,
    "rrq_received": 3.7,
    "binding_added": 3.9,
    "rrp_sent": 4.0,
    "fa_rrp_relayed": 4.4,
    "rrp_received": 4.8,
    "registration_accepted": 4.9,
    "tunnel_up": 5.0,
    "move_finished": 60.0,
}


def _paths() -> list[tuple[float, str]]:
    return [(0.0, "home")] + [(t, to) for _, t, _, to, _ in MOVES]


def standard_flows(
    builder: RunFolderBuilder, start: float = 1001.0, end: float = 1016.0, rate: float = 1000.0
) -> None:
    """The four probe flows of the standard run (15,000 packets each by default)."""
    for name, family in FLOWS:
        spec = FlowSpec(name, family, start, end, rate=rate, paths=_paths())
        spec.losses = [*LOSSES[name], (1010.0005, 1010.1005), (1013.0005, 1013.0205)]
        if name == "v4-down":
            spec.delays = [(0.0, 0.0005), (1005.0115, 0.001), (1006.0, 0.0005)]
        if name == "v6-up":  # one duplicate, one packet overtaken by the next (2 ms delay)
            spec.duplicates = {100}
            spec.late = {200: 0.0015}
        builder.flow(spec)


def _at(t_move: float, ms: float) -> float:
    return t_move + ms / 1000.0


def _move(b: RunFolderBuilder, index: int, link: tuple[float, float] | None, finished: float | None) -> float:
    """The harness's events for ``MOVES[index]``; returns t_move."""
    number, t, frm, to, detection = MOVES[index]
    b.event("scenario", t, "move_started", handover=number, detection=detection, **{"from": frm, "to": to})
    if link is not None:
        b.event("scenario", _at(t, link[0]), "link_down", handover=number)
        b.event("scenario", _at(t, link[1]), "link_up", handover=number)
    if finished is not None:
        b.event("scenario", _at(t, finished), "move_finished", handover=number, restored=True)
    return t


def _exchange(
    b: RunFolderBuilder, t: float, at: dict[str, float], fa: str | None, care_of: str, ident: int
) -> None:
    """One registration, relayed by ``fa`` (None: straight with the HA); ``at``: ms after ``t`` per step."""
    lifetime = 0 if care_of == HOME_ADDRESS else 60
    common = {"home_address": HOME_ADDRESS, "lifetime": lifetime, "identification": ident}
    b.event(
        "mn1",
        _at(t, at["rrq_sent"]),
        "rrq_sent",
        care_of=care_of,
        lifetime=lifetime,
        identification=ident,
        attempt=1,
    )
    if fa is not None:
        b.event(
            fa,
            _at(t, at["fa_rrq_relayed"]),
            "fa_rrq_relayed",
            home_agent="192.0.2.1",
            care_of=care_of,
            flags=0,
            link_address="02:00:00:00:00:01",
            source_port=434,
            **common,
        )
        b.event(fa, _at(t, at["fa_rrp_relayed"]), "fa_rrp_relayed", home_agent="192.0.2.1", code=0, **common)
    b.event(
        "ha",
        _at(t, at["rrq_received"]),
        "rrq_received",
        source=care_of,
        port=434,
        care_of=care_of,
        flags=0,
        **common,
    )
    if lifetime:
        b.event(
            "ha",
            _at(t, at["binding"]),
            "binding_added",
            home_address=HOME_ADDRESS,
            care_of=care_of,
            encapsulation="ipip",
            reverse_tunnel=False,
            lifetime=lifetime,
        )
    else:
        b.event(
            "ha",
            _at(t, at["binding"]),
            "binding_removed",
            home_address=HOME_ADDRESS,
            care_of=CARE_OF["fa2"],
            reason="deregistered",
        )
    b.event("ha", _at(t, at["rrp_sent"]), "rrp_sent", destination=care_of, port=434, code=0, **common)
    b.event(
        "mn1", _at(t, at["rrp_received"]), "rrp_received", code=0, lifetime=lifetime, identification=ident
    )
    if lifetime:
        b.event("mn1", _at(t, at["accepted"]), "registration_accepted", care_of=care_of, lifetime=60, code=0)
    else:
        b.event("mn1", _at(t, at["accepted"]), "deregistered", care_of=care_of, confirmed=True)


def standard_traces(builder: RunFolderBuilder) -> None:
    """Harness and agent events for the three moves, with distractors the analysis must ignore."""
    b = builder
    b.event("scenario", 1000.9, "probes_started")
    b.event("scenario", 1016.1, "probes_stopped")
    b.event("mn1", 1002.0, "rrq_sent", care_of=HOME_ADDRESS, lifetime=0, identification=1, attempt=1)
    b.event("mn1", 1002.001, "rrp_received", code=0, lifetime=0, identification=1)
    for second in range(1001, 1016):  # periodic advertisements from both FAs
        for fa, phase in (("fa1", 0.25), ("fa2", 0.75)):
            b.event(
                fa,
                second + phase,
                "advertisement_sent",
                destination="224.0.0.1",
                sequence=second,
                solicited=False,
            )

    # handover 1: home → fa1, link detection
    s = STEPS_1
    t = _move(b, 0, (s["link_down"], s["link_up"]), s["move_finished"])
    b.event(
        "mn1",
        _at(t, s["movement_detected"]),
        "movement_detected",
        reason="link",
        from_agent="192.0.2.1",
        to_agent=None,
    )
    b.event("mn1", _at(t, s["solicitation_sent"]), "solicitation_sent", destination="224.0.0.2", attempt=1)
    b.event(
        "fa1",
        _at(t, s["advertisement_sent"]),
        "advertisement_sent",
        destination="224.0.0.1",
        sequence=7,
        solicited=True,
    )
    b.event(
        "mn1",
        _at(t, s["agent_discovered"]),
        "agent_discovered",
        agent=CARE_OF["fa1"],
        flags=0,
        lifetime=9,
        care_of_addresses=[CARE_OF["fa1"]],
        sequence=7,
    )
    steps = {"binding": s["binding_added"], "accepted": s["registration_accepted"], **s}
    _exchange(b, t, steps, "fa1", CARE_OF["fa1"], 101)
    # another mobile node's binding at the same HA, earlier in the window: must be ignored
    b.event(
        "ha",
        _at(t, 3.5),
        "binding_added",
        home_address="192.0.2.99",
        care_of=CARE_OF["fa1"],
        encapsulation="ipip",
        reverse_tunnel=False,
        lifetime=60,
    )
    b.event(
        "mn1",
        _at(t, s["tunnel_up"]),
        "tunnel_up",
        care_of=CARE_OF["fa1"],
        home_agent="192.0.2.1",
        home_address=HOME_ADDRESS,
        encapsulation="ipip",
        reverse_tunnel=False,
        colocated=False,
    )

    # handover 2: fa1 → fa2, advertisement detection; the first request is lost, the retransmission answered
    t = _move(b, 1, None, None)
    b.event(
        "mn1",
        _at(t, 240.0),
        "agent_discovered",
        agent=CARE_OF["fa2"],
        flags=0,
        lifetime=3,
        care_of_addresses=[CARE_OF["fa2"]],
        sequence=3,
    )
    b.event(
        "mn1",
        _at(t, 240.1),
        "movement_detected",
        reason="prefix",
        from_agent=CARE_OF["fa1"],
        to_agent=CARE_OF["fa2"],
    )
    b.event(
        "mn1", _at(t, 240.3), "rrq_sent", care_of=CARE_OF["fa2"], lifetime=60, identification=201, attempt=1
    )
    steps = {
        "rrq_sent": 1240.3,
        "fa_rrq_relayed": 1240.6,
        "rrq_received": 1240.9,
        "binding": 1241.0,
        "rrp_sent": 1241.1,
        "fa_rrp_relayed": 1241.5,
        "rrp_received": 1242.0,
        "accepted": 1242.1,
    }
    _exchange(b, t, steps, "fa2", CARE_OF["fa2"], 202)
    b.event(
        "ha",
        _at(t, 1241.05),
        "binding_removed",
        home_address=HOME_ADDRESS,
        care_of=CARE_OF["fa1"],
        reason="replaced",
    )

    # handover 3: fa2 → home, link detection, deregistration straight with the HA (no FA relay)
    t = _move(b, 2, (0.3, 1.1), 50.0)
    b.event("mn1", _at(t, 1.2), "movement_detected", reason="link", from_agent=None, to_agent=None)
    b.event(
        "mn1",
        _at(t, 1.4),
        "movement_detected",
        reason="home",
        from_agent=CARE_OF["fa2"],
        to_agent="192.0.2.1",
    )
    steps = {
        "rrq_sent": 2.0,
        "rrq_received": 2.3,
        "binding": 2.4,
        "rrp_sent": 2.5,
        "rrp_received": 2.9,
        "accepted": 3.0,
    }
    _exchange(b, t, steps, None, HOME_ADDRESS, 301)


def standard_run(root: Path, **meta: Any) -> RunFolderBuilder:
    """A builder holding the standard three-move run (call :meth:`RunFolderBuilder.write`)."""
    builder = RunFolderBuilder(root, moves=len(MOVES), **meta)
    standard_flows(builder)
    standard_traces(builder)
    return builder


def write_lines(path: Path, lines: Iterable[str], newline_at_end: bool = True) -> None:
    text = "\n".join(lines)
    path.write_text(text + ("\n" if newline_at_end else ""), encoding="utf-8")
