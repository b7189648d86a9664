"""The wire-rate benchmark runs and prints one figure per case (so it cannot rot unnoticed)."""

from __future__ import annotations

import re

import pytest

from benchmarks.wire_rates import main


def test_wire_rates_prints_a_rate_per_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repeats", "1", "--seconds", "0.01"]) == 0
    rates = re.findall(r"([\d,]+) msg/s", capsys.readouterr().out)
    assert len(rates) == 5
    assert all(int(rate.replace(",", "")) > 0 for rate in rates)
