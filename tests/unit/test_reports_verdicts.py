"""Expectations: which runs pass, which fail and why; the summary; the text table."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports import RunResult, summary_table, verdict_lines
from reports.metrics import analyse
from reports.rundir import load_run
from tests.unit.runfolder import MOVES, RunFolderBuilder, standard_run


def _analyse(builder: RunFolderBuilder) -> RunResult:
    return analyse(load_run(builder.write()))


def _failed(result: RunResult) -> dict[str, str]:
    return {v.name: v.detail for v in result.verdicts if not v.passed}


def test_standard_run_passes_every_expectation(tmp_path: Path) -> None:
    result = _analyse(standard_run(tmp_path))
    assert result.overall_passed is True
    assert _failed(result) == {}
    names = [v.name for v in result.verdicts]
    assert "v6-up restored after every move" in names
    assert "v4-down received packets" in names
    assert "every registration accepted" in names
    assert "every move recorded" in names
    assert result.metrics["overall_passed"] is True


def test_flow_that_never_restores_fails_its_verdict(tmp_path: Path) -> None:
    builder = standard_run(tmp_path)
    builder.flows["v6-up"].losses.append((MOVES[1][1] - 0.0002, 1100.0))  # dead from handover 2 on
    result = _analyse(builder)
    assert result.overall_passed is False
    assert _failed(result) == {
        "v6-up restored after every move": "never restored after handover 2 (fa1→fa2), handover 3 (fa2→home)"
    }
    assert result.metrics["overall_passed"] is False


def test_flow_with_no_received_packet_fails(tmp_path: Path) -> None:
    builder = standard_run(tmp_path)
    builder.flows["v4-up"].losses = [(0.0, 2000.0)]
    failed = _failed(_analyse(builder))
    assert failed["v4-up received packets"] == "0 of 15000 packets received"
    assert "v4-up restored after every move" in failed


def test_denied_registration_fails(tmp_path: Path) -> None:
    builder = standard_run(tmp_path)
    for event in builder.traces["mn1"]:
        if event["event"] == "rrp_received" and event["identification"] == 202:
            event["code"] = 129
    failed = _failed(_analyse(builder))
    assert failed == {"every registration accepted": "handover 2 (fa1→fa2): reply codes [129]"}


def test_handover_without_a_registration_reply_fails(tmp_path: Path) -> None:
    builder = standard_run(tmp_path)
    builder.traces["mn1"] = [e for e in builder.traces["mn1"] if e.get("identification") != 301]
    failed = _failed(_analyse(builder))
    assert failed == {"every registration accepted": "handover 3 (fa2→home): no registration reply"}


def test_meta_expectations_are_merged_and_move_count_checked(tmp_path: Path) -> None:
    builder = standard_run(tmp_path)
    builder.meta["moves"] = 4
    builder.meta["expectations"] = [
        {"name": "agents exited cleanly", "passed": True, "detail": "3 of 3"},
        {"name": "no kernel warnings", "passed": False, "detail": "dmesg: 1 warning"},
    ]
    result = _analyse(builder)
    assert _failed(result) == {
        "every move recorded": "3 move_started events for 4 moves",
        "no kernel warnings": "dmesg: 1 warning",
    }
    assert [v.name for v in result.verdicts][-2:] == ["agents exited cleanly", "no kernel warnings"]


def test_summary_per_flow_detection_and_family(tmp_path: Path) -> None:
    summary = _analyse(standard_run(tmp_path)).metrics["summary"]
    v4_down = summary["by_flow"]["v4-down"]
    assert v4_down["interruption_ms_median"] == pytest.approx(21.0)  # of 12.5, 101, 21
    assert v4_down["interruption_ms_p95"] == pytest.approx(93.0)  # numpy linear: 21 + 0.9 × 80
    assert v4_down["lost_median"] == pytest.approx(20.0)
    assert v4_down["restored"] == 3
    advert = summary["by_detection"]["advert"]["v6-up"]
    assert (advert["handovers"], advert["interruption_ms_median"]) == (1, pytest.approx(101.0))
    link = summary["by_detection"]["link"]["v6-up"]
    assert link["interruption_ms_median"] == pytest.approx(31.5)  # of 42, 21
    assert summary["by_family"]["6"]["flows"] == ["v6-down", "v6-up"]
    assert summary["by_family"]["4"]["interruption_ms_median"] == pytest.approx(21.5)


def test_summary_table_lines(tmp_path: Path) -> None:
    builder = standard_run(tmp_path)
    builder.flows["v6-up"].losses.append((MOVES[2][1] - 0.0002, 1100.0))
    result = _analyse(builder)
    lines = summary_table(result).splitlines()
    assert lines[0].split() == [
        "#",
        "from→to",
        "detection",
        "v4-down",
        "ms",
        "(lost)",
        "v4-up",
        "ms",
        "(lost)",
        "v6-down",
        "ms",
        "(lost)",
        "v6-up",
        "ms",
        "(lost)",
        "reg",
        "RTT",
        "ms",
    ]
    assert lines[2].split() == [
        "1",
        "home→fa1",
        "link",
        "12.5",
        "(11)",
        "22.0",
        "(21)",
        "32.0",
        "(31)",
        "42.0",
        "(41)",
        "1.8",
    ]
    assert lines[4].split()[-3:] == ["never", "(2999)", "0.9"]  # sent 1013.001 … 1015.999
    assert len({len(line) for line in lines[:2]}) == 1  # fixed width
    text = verdict_lines(result)
    assert "✘ v6-up restored after every move: never restored after handover 3 (fa2→home)" in text
    assert text.splitlines()[-1] == "FAIL: 1 of 11 expectations failed (v6-up restored after every move)"
