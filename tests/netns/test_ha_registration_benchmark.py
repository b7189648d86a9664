"""The end-to-end registration benchmark runs, prints its figures and leaves nothing behind (a tiny run:
it only checks that the benchmark cannot rot; its numbers mean nothing here)."""

from __future__ import annotations

import os
import pstats
import re
import shutil
import subprocess
from pathlib import Path

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
    assert re.search(r"fill: agent CPU per new binding \(µs\)\s+[\d,]+\s+[\d,]+\n", output)
    assert re.search(r"agent stop: seconds, exit code\s+[\d.]+, 0\s+[\d.]+, 0", output)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"dsm-r{os.getpid()}-" not in namespaces


def test_agent_tree_runs_that_checkout_and_a_wrong_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--agent-tree DIR``: the agent of another checkout under the same harness (here a copy of this
    one's ``agents`` package whose entry point first writes a marker to the agent's log); a directory
    without an ``agents`` package is a usage error (exit 2), no traceback."""
    require_root()
    tree = tmp_path / "tree"
    repository = Path(ha_registration.__file__).resolve().parents[1]
    shutil.copytree(repository / "agents", tree / "agents", ignore=shutil.ignore_patterns("__pycache__"))
    entry = tree / "agents" / "__main__.py"
    entry.write_text('import sys\nprint("agent of the copied tree", file=sys.stderr)\n' + entry.read_text())
    logs = tmp_path / "logs"
    arguments = ["--bindings", "5", "--runs", "1", "--seconds", "0.2", "--latency-runs", "1"]
    arguments += ["--latency-seconds", "0.2", "--rate", "100", "--trace-modes", "plain"]
    arguments += ["--agent-tree", str(tree), "--keep-logs", str(logs)]
    assert ha_registration.main(arguments) == 0
    assert "fill: new bindings/s (bindings)" in capsys.readouterr().out
    assert "agent of the copied tree" in (logs / "userspace-plain.stderr").read_text()
    with pytest.raises(SystemExit) as refused:
        ha_registration.main(["--agent-tree", str(tmp_path / "logs")])
    assert refused.value.code == 2
    assert "no agents package there" in capsys.readouterr().err


def test_profile_writes_one_cpu_profile_per_phase(tmp_path: Path) -> None:
    """``--profile DIR``: the agent's main-thread CPU profile of the 1-binding renewals, the fill and the
    full-table renewals, each in its own file (benchmarks/profile_agent.py), each holding the renewals'
    registration work and nothing of the others' phases."""
    require_root()
    directory = tmp_path
    arguments = ["--bindings", "20", "--runs", "1", "--seconds", "0.3", "--latency-runs", "1"]
    arguments += ["--latency-seconds", "0.3", "--rate", "200", "--trace-modes", "plain"]
    assert ha_registration.main([*arguments, "--datapath", "userspace", "--profile", str(directory)]) == 0
    assert sorted(path.name for path in directory.iterdir()) == [
        "userspace-plain-1.prof",
        "userspace-plain-2.prof",
        "userspace-plain-3.prof",
    ]
    for phase in (1, 2, 3):
        stats = pstats.Stats(str(directory / f"userspace-plain-{phase}.prof")).stats  # type: ignore[attr-defined]
        registrations = sum(
            calls for (path, _line, name), (calls, *_rest) in stats.items() if name == "_register"
        )
        assert registrations > 0, phase
        assert not any(name == "_freeze_start_up_objects" for _path, _line, name in stats), phase
