"""``python -m scenarios.handover --handoff make-before-break`` end to end (RFC 5944 §3.6.1.3 simultaneous
bindings; make-before-break with a second interface): at 1000 packets/s per flow, every verdict of the
scenario still holds; on each FA1 → FA2 move the MN's second interface comes up on FA2's link, the MN
registers FA2's care-of address with S through it, the home agent holds both bindings and sends a copy
to each (duplicates counted by the probes, both families), the first interface then leaves FA1's link,
no downlink packet is lost, and once the HA has dropped the old binding no packet arrives twice.

A doctored copy of the run folder without the duplicate probe receptions fails the bicast verdict: the
verdict rests on what the probes received, not on the handoff mode's name.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from reports.metrics import analyse
from reports.rundir import load_run
from tests.support.scenario import FLOWS, run_scenario

pytestmark = [pytest.mark.mininet, pytest.mark.root, pytest.mark.slow]
MODE = "make-before-break"
DOWNLINK = ("v4-down", "v6-down")
FA1_COA, FA2_COA = "198.51.100.2", "198.51.100.18"
BICAST = f"{MODE}: the home agent bicast during the overlap (RFC 5944 §3.6.1.3)"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mbb") / "run"
    args = ["--handoff", MODE, "--detection", "both", "--moves", "2", "--dwell", "2", "--rate", "1000"]
    finished = run_scenario([*args, "--no-pcap", "--out", str(out)], timeout=180)
    assert finished.returncode == 0 and not finished.timed_out, finished.explain()
    assert "PASSED" in finished.stdout and "Traceback" not in finished.stderr, finished.explain()
    return out


def events(run: Path, node: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "traces" / f"{node}.jsonl").read_text().splitlines()]


def mbb_rows(run: Path) -> list[dict[str, Any]]:
    rows = json.loads((run / "metrics.json").read_text())["handovers"]
    return [row for row in rows if row["handoff"] == MODE]


def test_every_verdict_holds_with_make_before_break(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["overall_passed"] is True
    names = {v["name"] for v in metrics["verdicts"] if v["passed"]}
    assert {
        f"{MODE}: no downlink packet lost",
        BICAST,
        f"{MODE}: no duplicate once the old binding is gone",
    } <= names
    meta = json.loads((run / "meta.json").read_text())
    assert meta["handoff"] == MODE and all(item["passed"] for item in meta["expectations"])
    modes = [(h["from"], h["to"], h["handoff"]) for h in metrics["handovers"]]
    assert modes == [("home", "fa1", "standard"), ("fa1", "fa2", MODE), ("fa2", "home", "standard")] * 2
    for handover in metrics["handovers"]:
        for flow in FLOWS:
            assert handover[f"{flow}_restored"] is True, (handover, flow)


def test_both_families_arrive_twice_during_the_overlap_and_once_after(run: Path) -> None:
    rows = mbb_rows(run)
    assert len(rows) == 2
    for row in rows:
        for flow in DOWNLINK:
            assert row[f"{flow}_lost_to_removal"] == 0, (row["handover"], flow)  # trigger → old binding gone
            assert row[f"{flow}_duplicates"] > 0, (row["handover"], flow)
            assert row[f"{flow}_duplicates_after"] == 0, (row["handover"], flow)
        assert row["ha_old_binding_removed_ms"] > 0  # the request without S, after the move


def test_the_s_registration_goes_through_the_second_interface_before_the_move(run: Path) -> None:
    """RFC 5944 §3.6.1.3: FA2's binding is added while FA1's is kept; FA1's goes only after the move."""
    scenario, ha = events(run, "scenario"), events(run, "ha")
    for number in (2, 5):
        tagged = {e["event"]: e for e in scenario if e.get("handover") == number}
        up, moved = tagged["second_link_up"]["t"], tagged["move_started"]["t"]
        assert tagged["second_link_up"]["interface"] == "mn1-eth1"
        assert (
            tagged["l2_trigger"]["t"]
            <= up
            < tagged["pre_registered"]["t"]
            < moved
            < tagged["second_link_down"]["t"]
        )
        added = [
            e for e in ha if e["event"] == "binding_added" and e["care_of"] == FA2_COA and up < e["t"] < moved
        ]
        assert len(added) == 1, added
        removed = [
            e for e in ha if e["event"] == "binding_removed" and e["care_of"] == FA1_COA and e["t"] > up
        ]
        assert removed and removed[0]["t"] > moved and removed[0]["reason"] == "replaced", removed
    relayed = [e for e in events(run, "fa2") if e["event"] == "fa_rrq_relayed"]
    assert relayed, "FA2 relayed no request"


def drop_duplicates(source: Path, target: Path) -> None:
    """A copy of ``source`` whose downlink probe CSVs keep the first reception of each packet only."""
    shutil.copytree(source, target)
    for flow in DOWNLINK:
        path = target / "probes" / f"{flow}.csv"
        with path.open() as handle:
            reader = csv.DictReader(handle)
            fields, rows = reader.fieldnames, list(reader)
        seen: set[str] = set()
        kept = []
        for row in rows:
            if row["recv_t"] and row["seq"] in seen:
                continue
            seen.add(row["seq"])
            kept.append(row)
        assert len(kept) < len(rows), f"{flow}: no duplicate to remove"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(fields or []))
            writer.writeheader()
            writer.writerows(kept)


def test_a_run_without_its_duplicates_fails_the_bicast_verdict(run: Path, tmp_path: Path) -> None:
    doctored = tmp_path / "doctored"
    drop_duplicates(run, doctored)
    result = analyse(load_run(doctored))
    verdicts = {v.name: v for v in result.verdicts}
    assert result.overall_passed is False
    assert not verdicts[BICAST].passed and "no duplicate" in verdicts[BICAST].detail
    failed = {v.name for v in result.verdicts if not v.passed}
    assert failed == {BICAST}, failed
