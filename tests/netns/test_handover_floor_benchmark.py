"""The handover-floor benchmark (issue 14) runs, prints every figure and leaves nothing behind (a tiny run:
it only checks that the benchmark cannot rot; its numbers mean nothing here)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

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


@pytest.mark.parametrize("gap", ["nan", "inf", "-1"])
def test_benchmark_refuses_a_gap_that_is_not_a_finite_number(gap: str) -> None:
    require_root()
    with pytest.raises(SystemExit) as refused:
        handover_floor.main(["--gap", gap])
    assert refused.value.code == 2


def test_sigterm_leaves_no_namespace_and_no_forwarder(tmp_path: Path) -> None:
    """Stopped by SIGTERM mid-run, the benchmark removes its namespace and its forwarders die with it."""
    require_root()
    run = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.handover_floor", "--moves", "2", "--samples", "50",
         "--gap", "0.2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    namespace = f"dsm-f{run.pid}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(forwarders_of(run.pid)) < 5:
            time.sleep(0.05)  # the chain is up once its 5 forwarders exist (one `ip` at a time before)
        children = forwarders_of(run.pid)
        assert len(children) == 5, "the benchmark never started its forwarders"
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=20) == 143
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    time.sleep(0.2)
    assert namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]


def forwarders_of(parent: int) -> list[int]:
    """PIDs of ``parent``'s children (the benchmark's forwarders)."""
    path = Path(f"/proc/{parent}/task/{parent}/children")
    try:
        return [int(pid) for pid in path.read_text().split()]
    except OSError:
        return []
