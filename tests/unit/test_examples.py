"""The shipped example configurations stay valid (`--check` exits 0), and a bad key is named (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def agents(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("ha", "examples/ha.toml"),
        ("mn", "examples/mn.toml"),
        ("fa", "examples/fa.toml"),
        ("mn", "examples/mn-fa.toml"),
        ("mn", "examples/mn-dhcpv6-pd.toml"),
    ],
)
def test_example_config_checks(role: str, path: str) -> None:
    result = agents(role, "--config", path, "--check")
    assert result.returncode == 0, result.stderr


def test_unknown_runtime_key_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "ha.toml"
    bad.write_text((REPO / "examples/ha.toml").read_text() + "\nbogus = 1\n")
    result = agents("ha", "--config", str(bad), "--check")
    assert result.returncode == 2
    assert "runtime.bogus: unknown key" in result.stderr and "Traceback" not in result.stderr
