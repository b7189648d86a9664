"""The benchmarks that need no root run and print one figure per case (so they cannot rot unnoticed)."""

from __future__ import annotations

import re

import pytest

from benchmarks import render_time
from benchmarks.wire_rates import main


def test_wire_rates_prints_a_rate_per_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repeats", "1", "--seconds", "0.01"]) == 0
    rates = re.findall(r"([\d,]+) msg/s", capsys.readouterr().out)
    assert len(rates) == 5
    assert all(int(rate.replace(",", "")) > 0 for rate in rates)


def test_render_time_prints_both_runs_and_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    assert render_time.main(["--seconds", "15", "--repeats", "1"]) == 0
    output = capsys.readouterr().out
    medians = re.findall(r"4 flows × ([\d,]+) packets\s+median\s+([\d.]+) s", output)
    assert [packets for packets, _ in medians] == ["15,000", "15,000"], output
    assert all(float(seconds) > 0 for _, seconds in medians), output
    assert re.search(r"^ratio\s+[\d.]+$", output, re.MULTILINE), output


def test_render_time_refuses_a_run_shorter_than_the_moves() -> None:
    with pytest.raises(SystemExit) as refused:
        render_time.main(["--seconds", "5"])
    assert refused.value.code == 2


def test_forged_peer_prints_both_rates_and_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import forged_peer

    assert forged_peer.main(["--requests", "200", "--repeats", "1"]) == 0
    output = capsys.readouterr().out
    rates = re.findall(r"([\d,]+) requests/s", output)
    assert len(rates) == 2 and all(int(rate.replace(",", "")) > 0 for rate in rates), output
    assert re.search(r"^ratio quick/full: [\d.]+", output, re.MULTILINE), output
