"""The crash-recovery benchmark runs, prints its figures and leaves nothing behind (a tiny run: it only checks
that the benchmark cannot rot; its numbers mean nothing here)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from benchmarks import ha_recovery
from tests.netns.conftest import require_root

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_benchmark_prints_both_modes_and_cleans_up(capsys: pytest.CaptureFixture[str]) -> None:
    require_root()
    assert ha_recovery.main(["--runs", "1", "--lifetime", "4", "--interval", "0.02"]) == 0
    output = capsys.readouterr().out
    figures = {}
    for label in ("with journal", "without journal"):
        line = next(line for line in output.splitlines() if line.startswith(label))
        figures[label] = [float(value) for value in re.findall(r"(\d+\.\d+) s \(", line)]
        assert len(figures[label]) == 3, line
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"dsm-k{os.getpid()}-" not in namespaces
