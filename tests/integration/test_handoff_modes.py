"""``python -m scenarios.handover --handoff pre`` end to end (RFC 4881 §3 pre-registration, the new FA's
buffer, S-bit make-before-break): every verdict of the scenario still holds, and the downlink loses no
probe packet at 1000 packets/s on a pre-registered FA1 → FA2 move, with carrier events and without.

The zero-loss check counts the packets sent from the L2 trigger to 0.5 s after the move: a packet sent
just before the *next* move (in flight when that link goes down) belongs to that move, whatever window
handovers.csv files it under.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.scenario import FLOWS, run_scenario

pytestmark = [pytest.mark.mininet, pytest.mark.root, pytest.mark.slow]
DOWNLINK = ("v4-down", "v6-down")


@pytest.fixture(scope="module")
def pre_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("handoff-pre") / "run"
    args = ["--handoff", "pre", "--detection", "both", "--moves", "2", "--dwell", "2", "--rate", "1000"]
    finished = run_scenario([*args, "--no-pcap", "--out", str(out)], timeout=180)
    assert finished.returncode == 0 and not finished.timed_out, finished.explain()
    assert "PASSED" in finished.stdout and "Traceback" not in finished.stderr, finished.explain()
    return out


def events(run: Path, node: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "traces" / f"{node}.jsonl").read_text().splitlines()]


def lost_between(run: Path, flow: str, start: float, end: float) -> list[int]:
    """Probe seqs sent in [start, end) that never arrived."""
    with (run / "probes" / f"{flow}.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    received = {row["seq"] for row in rows if row["recv_t"]}
    return [
        int(row["seq"])
        for row in rows
        if start <= float(row["send_t"]) < end and not row["recv_t"] and row["seq"] not in received
    ]


def test_every_verdict_holds_with_pre_registration(pre_run: Path) -> None:
    metrics = json.loads((pre_run / "metrics.json").read_text())
    assert metrics["overall_passed"] is True
    meta = json.loads((pre_run / "meta.json").read_text())
    assert meta["handoff"] == "pre" and all(item["passed"] for item in meta["expectations"])


def test_fa_to_fa_moves_are_pre_registered_and_others_standard(pre_run: Path) -> None:
    handovers = json.loads((pre_run / "metrics.json").read_text())["handovers"]
    modes = [(h["from"], h["to"], h["handoff"]) for h in handovers]
    expected = [("home", "fa1", "standard"), ("fa1", "fa2", "pre"), ("fa2", "home", "standard")]
    assert modes == expected * 2
    for handover in handovers:
        if handover["handoff"] != "pre":
            continue
        # the request, the HA's binding and the L2 trigger come before the move; nothing after it
        assert handover["l2_trigger_ms"] < handover["rrq_sent_ms"] < handover["ha_binding_ms"] < 0, handover
        assert handover["pre_attached_ms"] is not None and handover["fa_attached_ms"] is not None
        for flow in FLOWS:
            assert handover[f"{flow}_restored"] is True, (handover, flow)


def test_no_downlink_packet_is_lost_on_a_pre_registered_move_at_1000_per_second(pre_run: Path) -> None:
    scenario = events(pre_run, "scenario")
    triggers = {e["handover"]: e["t"] for e in scenario if e["event"] == "l2_trigger"}
    moves = {e["handover"]: e["t"] for e in scenario if e["event"] == "move_started"}
    assert len(triggers) == 2, triggers
    for number, triggered_at in triggers.items():
        for flow in DOWNLINK:
            assert lost_between(pre_run, flow, triggered_at, moves[number] + 0.5) == [], (number, flow)


def test_the_new_fa_flushed_its_buffer_and_the_ha_dropped_the_old_binding(pre_run: Path) -> None:
    fa2 = events(pre_run, "fa2")
    assert [e["how"] for e in fa2 if e["event"] == "llh_visitor_attached"], "no attachment seen by FA2"
    ha = events(pre_run, "ha")
    replaced = [e for e in ha if e["event"] == "binding_removed" and e.get("reason") == "replaced"]
    assert any(e["care_of"].startswith("198.51.100.2") for e in replaced), "FA1's binding never dropped"
