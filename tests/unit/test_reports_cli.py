"""``python -m reports RUN_DIR``: exit status 0/1/2, output, and no traceback on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.unit.runfolder import MOVES, standard_run

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reports", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_passing_run_exits_0_and_prints_table_and_verdict(tmp_path: Path) -> None:
    root = standard_run(tmp_path).write()
    done = _cli(root)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("#  from→to")
    assert any(line.split()[:3] == ["1", "home→fa1", "link"] for line in lines)
    assert "PASS: 11 of 11 expectations met" in lines
    for name in ("metrics.json", "handovers.csv", "report.md", "plots/timeline.png", "plots/cdf.png"):
        assert (root / name).is_file(), name


def test_failing_run_exits_1(tmp_path: Path) -> None:
    builder = standard_run(tmp_path)
    builder.flows["v6-down"].losses.append((MOVES[0][1] - 0.0002, 1100.0))
    root = builder.write()
    done = _cli(root)
    assert done.returncode == 1
    assert "✘ v6-down restored after every move" in done.stdout
    quiet = _cli(root, "-q")
    assert quiet.returncode == 1
    assert quiet.stdout == "FAIL: 1 of 11 expectations failed (v6-down restored after every move)\n"


def test_json_output_is_the_metrics(tmp_path: Path) -> None:
    root = standard_run(tmp_path).write()
    done = _cli(root, "--json")
    assert done.returncode == 0
    printed = json.loads(done.stdout)
    assert printed == json.loads((root / "metrics.json").read_text(encoding="utf-8"))
    assert printed["handovers"][0]["v4-down_interruption_ms"] == 12.5


def _assert_usage_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr


def test_missing_folder_exits_2(tmp_path: Path) -> None:
    _assert_usage_error(_cli(tmp_path / "absent"), "reports: ", "absent", "no such directory")


def test_folder_without_meta_exits_2(tmp_path: Path) -> None:
    _assert_usage_error(_cli(tmp_path), "meta.json: missing")


def test_malformed_csv_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    root = standard_run(tmp_path).write()
    path = root / "probes" / "v6-down.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[4] = "4,1001.004,garbage,home,6"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _assert_usage_error(_cli(root), "probes/v6-down.csv line 5: recv_t 'garbage' is not a number")


def test_malformed_trace_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    root = standard_run(tmp_path).write()
    path = root / "traces" / "fa1.jsonl"
    path.write_text("[1, 2]\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    _assert_usage_error(_cli(root), "traces/fa1.jsonl line 1: not a JSON object")


def test_rendering_never_imports_mininet(tmp_path: Path) -> None:
    root = standard_run(tmp_path).write()
    code = (
        "import sys; from pathlib import Path; import reports; reports.render(Path(sys.argv[1])); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('mininet', 'scenarios', 'topologies')); "
        "print(bad)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(root)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
