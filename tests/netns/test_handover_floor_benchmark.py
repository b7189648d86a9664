"""The handover-floor benchmark (issue 14) runs, prints every figure and leaves nothing behind (a tiny run:
it only checks that the benchmark cannot rot; its numbers mean nothing here)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from benchmarks import handover_floor
from tests.netns.conftest import require_root

pytestmark = pytest.mark.root


def test_benchmark_prints_the_outage_the_chains_and_the_floor(capsys: pytest.CaptureFixture[str]) -> None:
    require_root()
    assert handover_floor.main(["--moves", "3", "--samples", "3", "--gap", "0.05"]) == 0
    output = capsys.readouterr().out
    medians = [float(value) for value in re.findall(r"median\s+([\d.]+) ms", output)]
    assert len(medians) == 4 and all(value > 0 for value in medians), output
    floor = float(re.search(r"floor of a standard handoff .*?([\d.]+) ms", output).group(1))  # type: ignore[union-attr]
    assert floor == pytest.approx(medians[0] + medians[2], abs=0.002)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"dsm-f{os.getpid()}" not in namespaces


def test_benchmark_refuses_bad_options() -> None:
    require_root()
    with pytest.raises(SystemExit) as refused:
        handover_floor.main(["--wakeups", "1"])
    assert refused.value.code == 2
