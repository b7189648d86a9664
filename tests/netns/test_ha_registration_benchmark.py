"""The end-to-end registration benchmark runs, prints its figures and leaves nothing behind (a tiny run:
it only checks that the benchmark cannot rot; its numbers mean nothing here)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from benchmarks import ha_registration
from tests.netns.conftest import require_root

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_benchmark_measures_both_table_sizes_and_cleans_up(capsys: pytest.CaptureFixture[str]) -> None:
    require_root()
    arguments = ["--bindings", "30", "--runs", "1", "--seconds", "0.3", "--latency-runs", "1"]
    arguments += ["--latency-seconds", "0.3", "--rate", "200", "--trace-modes", "plain,trace"]
    assert ha_registration.main(arguments) == 0
    output = capsys.readouterr().out
    for row in ("throughput, 1 binding", "throughput, 30 bindings", "p50 / p99 at 200/s, 30 bindings"):
        line = next(line for line in output.splitlines() if line.startswith(row))
        assert "n/a" not in line, line
    assert re.search(r"fill: new bindings/s \(bindings\)\s+[\d,]+ \(30\)\s+[\d,]+ \(30\)", output)
    assert re.search(r"agent stop: seconds, exit code\s+[\d.]+, 0\s+[\d.]+, 0", output)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"dsm-r{os.getpid()}-" not in namespaces
