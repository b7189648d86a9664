"""The fresh-machine paths: `sudo python -m …` on the system Python, and the Vagrantfile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.root
def test_sudo_python_finds_the_runtime_dependencies() -> None:
    """sudo resets PATH to the system Python: it must have `python` and our runtime imports."""
    imports = "import pyroute2, matplotlib, dpkt, mininet.net, mininet.nodelib"
    result = run("sudo", "-n", "python", "-c", imports)
    assert result.returncode == 0, result.stderr


@pytest.mark.root
def test_sudo_python_runs_a_scenario_entry_point() -> None:
    result = run("sudo", "-n", "python", "-m", "scenarios.handover", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: python -m scenarios.handover" in result.stdout


@pytest.mark.root
def test_sudo_python_runs_mipdump() -> None:
    result = run("sudo", "-n", "python", "-m", "agents.mip", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout


def test_vagrantfile_validates() -> None:
    vagrant = shutil.which("vagrant")
    assert vagrant, "vagrant is not installed (tools/provision.sh --test installs it)"
    result = run(vagrant, "validate", "--ignore-provider")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_and_vagrant_share_the_provisioning_script() -> None:
    assert "sudo ./testbed test" in (REPO / ".ci/run").read_text()
    assert "tools/provision.sh --test" in (REPO / "Vagrantfile").read_text()
    assert "bash tools/provision.sh --test" in (REPO / "testbed").read_text()
    assert "sudo ./testbed test" in (REPO / "README.md").read_text()
