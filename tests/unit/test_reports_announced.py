"""The ``pre`` verdict (RFC 4881 §3: a pre-registered move loses no downlink packet) from synthetic run
folders. Packets leave every 1 ms from t = 1001.000; the L2 trigger is at 1001.990, the move at
1002.0007, so the window is [1001.990, 1002.5007)."""

from __future__ import annotations

from pathlib import Path

from reports.metrics import RunResult, Verdict, analyse
from reports.rundir import load_run
from tests.unit.runfolder import FlowSpec, RunFolderBuilder

NAME = "pre: no downlink packet lost (RFC 4881 §3)"


def pre_run(
    root: Path,
    losses: list[tuple[float, float]],
    *,
    mode: str = "pre",
    uplink_losses: list[tuple[float, float]] | None = None,
) -> RunResult:
    builder = RunFolderBuilder(root, moves=1, handoff=mode)
    builder.flow(FlowSpec("v4-down", 4, 1001.0, 1003.0, losses=losses))
    builder.flow(FlowSpec("v4-up", 4, 1001.0, 1003.0, losses=uplink_losses or []))
    builder.event("scenario", 1001.990, "l2_trigger", handover=1, to="fa2", mode=mode)
    builder.event(
        "scenario", 1002.0007, "move_started", handover=1, detection="link", **{"from": "fa1", "to": "fa2"}
    )
    builder.event("scenario", 1002.0009, "link_down", handover=1, mobile_node="mn1")
    return analyse(load_run(builder.write()))


def verdict(result: RunResult) -> Verdict | None:
    return next((v for v in result.verdicts if v.name == NAME), None)


def test_a_lossless_pre_registered_move_passes(tmp_path: Path) -> None:
    found = verdict(pre_run(tmp_path, []))
    assert found is not None and found.passed
    assert found.detail == "1 pre-registered move, v4-down, trigger to 0.5 s after each move"


def test_a_downlink_packet_lost_between_trigger_and_move_fails(tmp_path: Path) -> None:
    found = verdict(pre_run(tmp_path, [(1001.9955, 1001.9975)]))  # sent 1001.996, 1001.997
    assert found is not None and not found.passed
    assert found.detail == "handover 1 (fa1→fa2) v4-down: 2 lost"


def test_a_loss_just_before_the_window_closes_fails(tmp_path: Path) -> None:
    found = verdict(pre_run(tmp_path, [(1002.4995, 1002.5005)]))  # sent 1002.500
    assert found is not None and not found.passed


def test_losses_outside_the_window_and_uplink_losses_do_not_count(tmp_path: Path) -> None:
    # sent before the trigger (1001.980) and after the window (1002.600)
    found = verdict(pre_run(tmp_path, [(1001.9795, 1001.9805), (1002.5995, 1002.6005)]))
    assert found is not None and found.passed
    # the uplink's own loss inside the window (the MN's kernel sending into a link that is down)
    uplink_only = verdict(pre_run(tmp_path / "up", [], uplink_losses=[(1002.0005, 1002.0025)]))
    assert uplink_only is not None and uplink_only.passed


def test_no_pre_registered_move_no_verdict(tmp_path: Path) -> None:
    assert verdict(pre_run(tmp_path, [(1001.9955, 1001.9975)], mode="post")) is None


def test_asked_for_pre_with_no_pre_registered_move_fails(tmp_path: Path) -> None:
    builder = RunFolderBuilder(tmp_path, moves=1, handoff="pre")
    builder.flow(FlowSpec("v4-down", 4, 1001.0, 1003.0))
    builder.event(
        "scenario", 1002.0007, "move_started", handover=1, detection="link", **{"from": "home", "to": "fa1"}
    )
    found = verdict(analyse(load_run(builder.write())))
    assert found is not None and not found.passed and found.detail == "no pre-registered handover"


def test_the_window_ends_where_the_next_handover_starts(tmp_path: Path) -> None:
    """A next move within 0.5 s (short --dwell): its own losses are not this move's."""
    builder = RunFolderBuilder(tmp_path, moves=2, handoff="pre")
    builder.flow(FlowSpec("v4-down", 4, 1001.0, 1003.0, losses=[(1002.2005, 1002.2105)]))
    builder.event("scenario", 1001.990, "l2_trigger", handover=1, to="fa2", mode="pre")
    builder.event(
        "scenario", 1002.0007, "move_started", handover=1, detection="link", **{"from": "fa1", "to": "fa2"}
    )
    builder.event(
        "scenario", 1002.2000, "move_started", handover=2, detection="link", **{"from": "fa2", "to": "home"}
    )
    found = verdict(analyse(load_run(builder.write())))
    assert found is not None and found.passed, found
