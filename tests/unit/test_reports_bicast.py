"""Make-before-break verdicts (RFC 5944 §3.6.1.3, simultaneous bindings) from synthetic run folders: a
copy to each care-of address while the HA holds both bindings, none once the old one is gone, no loss.

Packets leave every 1 ms from t = 1001.000 (index k at 1001.000 + k ms); the L2 trigger is at 1001.990,
the move at 1002.0007 and the HA removes the old binding at 1002.500 (index 1500 is the first sent after)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.bicast import bicast_checks
from reports.metrics import RunResult, Verdict, analyse
from reports.rundir import load_run
from tests.unit.runfolder import FlowSpec, RunFolderBuilder

MODE = "make-before-break"


def mbb_run(
    root: Path, duplicates: set[int], *, removed: bool = True, losses: list[tuple[float, float]] | None = None
) -> RunResult:
    builder = RunFolderBuilder(root, moves=1, handoff=MODE)
    builder.flow(FlowSpec("v4-down", 4, 1001.0, 1003.0, duplicates=duplicates, losses=losses or []))
    builder.flow(FlowSpec("v4-up", 4, 1001.0, 1003.0))
    builder.event("scenario", 1001.990, "l2_trigger", handover=1, to="fa2", mode=MODE)
    builder.event(
        "scenario", 1002.0007, "move_started", handover=1, detection="link", **{"from": "fa1", "to": "fa2"}
    )
    builder.event("scenario", 1002.0009, "link_down", handover=1, mobile_node="mn1")
    if removed:
        builder.event(
            "ha",
            1002.500,
            "binding_removed",
            home_address="192.0.2.10",
            care_of="198.51.100.2",
            reason="replaced",
        )
    return analyse(load_run(builder.write()))


def verdicts(result: RunResult) -> dict[str, Verdict]:
    return {v.name.split(":")[1].strip(): v for v in result.verdicts if v.name.startswith(MODE)}


def test_bicast_then_one_copy_passes_every_verdict(tmp_path: Path) -> None:
    result = mbb_run(tmp_path, duplicates=set(range(990, 1000)))
    row = result.handovers[0]
    assert row["handoff"] == MODE and row["ha_old_binding_removed_ms"] == pytest.approx(499.3, abs=1e-6)
    assert row["v4-down_duplicates"] == 10 and row["v4-down_duplicates_after"] == 0
    assert all(v.passed for v in verdicts(result).values()) and len(verdicts(result)) == 3
    assert (
        "10 duplicates"
        in verdicts(result)["the home agent bicast during the overlap (RFC 5944 §3.6.1.3)"].detail
    )


def test_no_duplicate_means_no_bicast(tmp_path: Path) -> None:
    got = verdicts(mbb_run(tmp_path, duplicates=set()))
    assert not got["the home agent bicast during the overlap (RFC 5944 §3.6.1.3)"].passed
    assert got["no downlink packet lost"].passed


def test_a_copy_of_a_packet_sent_after_the_old_binding_went_fails(tmp_path: Path) -> None:
    result = mbb_run(tmp_path, duplicates={995, 1600})
    assert result.handovers[0]["v4-down_duplicates_after"] == 1
    got = verdicts(result)
    assert not got["no duplicate once the old binding is gone"].passed
    assert got["the home agent bicast during the overlap (RFC 5944 §3.6.1.3)"].passed


def test_an_old_binding_never_removed_fails(tmp_path: Path) -> None:
    result = mbb_run(tmp_path, duplicates={995}, removed=False)
    assert result.handovers[0]["v4-down_duplicates_after"] is None
    assert "never removed" in verdicts(result)["no duplicate once the old binding is gone"].detail


def test_a_lost_downlink_packet_fails(tmp_path: Path) -> None:
    got = verdicts(mbb_run(tmp_path, duplicates={995}, losses=[(1002.001, 1002.004)]))
    assert not got["no downlink packet lost"].passed and "3 lost" in got["no downlink packet lost"].detail


def test_a_packet_lost_after_the_old_binding_went_is_not_the_move_s(tmp_path: Path) -> None:
    """handovers.csv's ``lost`` runs to the next move (a packet in flight when the next link goes down);
    make-before-break is judged from the trigger to the removal of the old binding."""
    result = mbb_run(tmp_path, duplicates={995}, losses=[(1002.800, 1002.802)])
    row = result.handovers[0]
    assert row["v4-down_lost"] == 2 and row["v4-down_lost_to_removal"] == 0
    assert verdicts(result)["no downlink packet lost"].passed


def test_other_modes_get_no_bicast_verdict_and_an_mbb_run_without_such_move_fails() -> None:
    row = {"handover": 1, "from": "home", "to": "fa1", "handoff": "standard"}
    assert bicast_checks([row], ["v4-down"], "standard") == []
    (check,) = bicast_checks([row], ["v4-down"], MODE)
    assert check[1] is False and "no make-before-break handover" in check[2]
