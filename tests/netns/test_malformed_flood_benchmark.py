"""The malformed-flood benchmark runs, prints its figures and leaves nothing behind (a tiny run: it only
checks that the benchmark cannot rot; its numbers mean nothing here)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from benchmarks import malformed_flood
from tests.netns.conftest import require_root

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_benchmark_prints_each_figure_and_cleans_up(capsys: pytest.CaptureFixture[str]) -> None:
    require_root()
    assert malformed_flood.main(["--datagrams", "2000", "--runs", "2"]) == 0
    output = capsys.readouterr().out
    sent = re.search(r"sent \(kernel took them\)\s+([\d,]+) at ([\d,]+) datagrams/s", output)
    assert sent and int(sent[1].replace(",", "")) > 0 and int(sent[2].replace(",", "")) > 0, output
    counted = re.search(r"counted malformed by the agent\s+([\d,]+) \(([\d.]+) % of sent\)", output)
    assert counted and int(counted[1].replace(",", "")) > 0, output
    assert re.search(r"registration sent into the flood\s+(\S+ ms to its reply|no reply within)", output)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"dsm-r{os.getpid()}-" not in namespaces
