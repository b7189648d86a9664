"""render(): the files written into the run folder (metrics.json, handovers.csv, plots, report.md)."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from reports import RunResult, render
from tests.unit.runfolder import FLOWS, MOVES, RunFolderBuilder, standard_flows, standard_run, standard_traces

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("timeline.png", "interruption.png", "registration_rtt.png", "cdf.png")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunResult]:
    root = standard_run(tmp_path_factory.mktemp("run")).write()
    return root, render(root)


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 300 and height > 200
    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    assert float(np.std(pixels)) > 0.01, f"{path.name} is blank"


def test_plots_are_valid_pngs(rendered: tuple[Path, RunResult]) -> None:
    root, _ = rendered
    for name in PLOTS:
        _check_png(root / "plots" / name)


def test_metrics_json_matches_the_result(rendered: tuple[Path, RunResult]) -> None:
    root, result = rendered
    metrics = json.loads((root / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics) >= {"flows", "handovers", "summary", "verdicts", "overall_passed"}
    assert metrics["overall_passed"] is True
    assert metrics["flows"]["v6-up"]["duplicates"] == 1
    assert metrics["handovers"][0]["v4-down_interruption_ms"] == 12.5
    assert metrics["handovers"][1]["link_down_ms"] is None
    assert metrics["run"]["scenario"] == "handover"
    assert len(metrics["verdicts"]) == len(result.verdicts)


def test_handovers_csv_has_one_row_per_move_and_empty_missing_steps(rendered: tuple[Path, RunResult]) -> None:
    root, _ = rendered
    with open(root / "handovers.csv", encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["handover"] for row in rows] == ["1", "2", "3"]
    assert [(row["from"], row["to"]) for row in rows] == [(m[2], m[3]) for m in MOVES]
    assert rows[0]["v4-down_interruption_ms"] == "12.5"
    assert rows[0]["v4-down_lost"] == "11"
    assert rows[0]["fa_rrq_relayed_ms"] == "3.4"
    assert rows[0]["v4-down_restored"] == "true"
    assert rows[1]["link_down_ms"] == "" and rows[2]["fa_rrq_relayed_ms"] == ""
    assert float(rows[0]["t_move"]) == MOVES[0][1]


def test_report_md(rendered: tuple[Path, RunResult]) -> None:
    root, _ = rendered
    text = (root / "report.md").read_text(encoding="utf-8")
    assert text.startswith("# handover run: ")
    assert "**PASS: 11 of 11 expectations met**" in text
    assert "| 1 | home→fa1 | link | 12.5 | 11 | 22 | 21 | 32 | 31 | 42 | 41 | 1.8 |" in text
    assert "- ✔ **v6-up restored after every move**" in text
    for name in PLOTS:
        assert f"![{name}](plots/{name})" in text
    assert "- [pcaps/ha-ha-eth0.pcap](pcaps/ha-ha-eth0.pcap)" in text
    assert f"python -m reports {root}" in text
    assert "| request relayed (FA) | 3.4 |" in text
    assert "| datapath | userspace |" in text


def test_failing_run_report_shows_the_cross(tmp_path: Path) -> None:
    builder = standard_run(tmp_path)
    builder.flows["v4-down"].losses.append((MOVES[0][1] - 0.0002, 1100.0))
    result = render(builder.write())
    assert result.overall_passed is False
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "- ✘ **v4-down restored after every move**" in text
    assert "✘ never restored" in text
    _check_png(tmp_path / "plots" / "interruption.png")


def test_rendering_twice_gives_the_same_files(tmp_path: Path) -> None:
    root = standard_run(tmp_path).write()
    render(root)
    first = {
        name: (root / name).read_text(encoding="utf-8")
        for name in ("metrics.json", "handovers.csv", "report.md")
    }
    render(root)
    assert first == {name: (root / name).read_text(encoding="utf-8") for name in first}
    assert not list(root.glob(".*.tmp*"))


def test_a_run_without_moves_or_traces_still_renders(tmp_path: Path) -> None:
    builder = RunFolderBuilder(tmp_path, moves=0)
    standard_flows(builder, start=1001.0, end=1001.5)
    result = render(builder.write())
    assert result.handovers == [] and result.overall_passed is True
    for name in PLOTS:
        assert (tmp_path / "plots" / name).read_bytes()[:8] == PNG_SIGNATURE
    assert "no handover to report" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_four_flows_of_60000_packets_render_completely(tmp_path: Path) -> None:
    """A long run (60 s at 1000 packets/s a flow) renders every output with every packet counted; how long
    that takes is a figure, not a test: benchmarks/render_time.py."""
    builder = RunFolderBuilder(tmp_path, moves=len(MOVES))
    standard_flows(builder, start=1000.5, end=1060.5)  # 60 s at 1000 packets/s
    standard_traces(builder)
    root = builder.write()
    assert (root / "probes" / "v4-down.csv").read_text(encoding="utf-8").count("\n") == 60_001
    result = render(root)
    for name, _ in FLOWS:
        assert result.metrics["flows"][name]["sent"] == 60_000, name
    assert [handover["handover"] for handover in result.metrics["handovers"]] == [1, 2, 3]
    metrics = json.loads((root / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["flows"]["v6-up"]["sent"] == 60_000 and metrics["overall_passed"] is result.overall_passed
    with open(root / "handovers.csv", encoding="utf-8", newline="") as file:
        assert len(list(csv.DictReader(file))) == len(MOVES)
    assert "## What ran" in (root / "report.md").read_text(encoding="utf-8")
    for name in PLOTS:
        _check_png(root / "plots" / name)
