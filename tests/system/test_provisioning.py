"""The fresh-machine paths: `sudo python -m …` on the system Python, `./testbed` and the provisioning with
another `python3` first on PATH (pyenv, conda: root without sudo keeps its PATH), and the Vagrantfile."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


SYSTEM_PYTHON = Path("/usr/bin/python3")
DECOY_MARK = "decoy interpreter from PATH was run"


def run(*argv: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def decoy_path(tmp_path: Path) -> dict[str, str]:
    """The environment with a ``python3`` and a ``python`` first on PATH that fail loudly when run: what a
    pyenv or conda interpreter is to us (it cannot see Debian's python3-* packages)."""
    decoys = tmp_path / "decoy-bin"
    decoys.mkdir()
    for name in ("python3", "python"):
        decoy = decoys / name
        decoy.write_text(f'#!/bin/sh\necho "{DECOY_MARK}: {name} $*" >&2\nexit 97\n')
        decoy.chmod(0o755)
    return {**os.environ, "PATH": f"{decoys}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


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
    result = run("sudo", "-n", "python", "-m", "agents.mipdump", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout


@pytest.mark.root
def test_testbed_runs_scenarios_with_the_system_python(tmp_path: Path) -> None:
    """`./testbed handover` runs the scenario on /usr/bin/python3 even when another python3 comes first on
    PATH (--help: proves the interpreter without building a network)."""
    result = run("./testbed", "handover", "--help", env=decoy_path(tmp_path))
    assert DECOY_MARK not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage: python -m scenarios.handover" in result.stdout


def test_testbed_marks_labs_with_the_system_python_and_without_root(tmp_path: Path) -> None:
    """`./testbed labs list` and `check` (what students run as themselves) use /usr/bin/python3, not a
    python3 first on PATH, and neither provisions nor asks for root; `start` still needs root."""
    env = decoy_path(tmp_path)
    listed = run("./testbed", "labs", "list", env=env)
    assert DECOY_MARK not in listed.stderr, listed.stderr
    assert listed.returncode == 0 and "01  Agent discovery" in listed.stdout, listed.stdout + listed.stderr
    checked = run(
        "./testbed", "labs", "check", "01", str(tmp_path / "no-run"), str(tmp_path / "a.toml"), env=env
    )
    assert checked.returncode == 2 and "no such run folder" in checked.stderr, checked.stderr
    assert "provision" not in checked.stdout + checked.stderr


def provisioning_copy(tmp_path: Path) -> Path:
    """A throwaway repository with only tools/provision.sh and pyproject.toml: its .venv is the test's."""
    repo = tmp_path / "repo"
    (repo / "tools").mkdir(parents=True)
    shutil.copy2(REPO / "tools" / "provision.sh", repo / "tools" / "provision.sh")
    shutil.copy2(REPO / "pyproject.toml", repo / "pyproject.toml")
    return repo


@pytest.mark.root
def test_provisioning_makes_the_venv_with_the_system_python(tmp_path: Path) -> None:
    """tools/provision.sh --test creates .venv from /usr/bin/python3 with the system site-packages, even with
    another python3 first on PATH. Run on a copy whose .venv already holds an up-to-date install stamp, so
    only the venv is made (no pip install, no network)."""
    repo = provisioning_copy(tmp_path)
    venv = repo / ".venv"
    venv.mkdir()
    stamp = hashlib.sha256((repo / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".provisioned").write_text(stamp + "\n")
    result = run("bash", "tools/provision.sh", "--test", cwd=repo, env=decoy_path(tmp_path))
    assert DECOY_MARK not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    config = (venv / "pyvenv.cfg").read_text()
    assert f"home = {SYSTEM_PYTHON.parent}" in config and "include-system-site-packages = true" in config
    seen = run(str(venv / "bin" / "python"), "-c", "import mininet.net, pyroute2, matplotlib, dpkt")
    assert seen.returncode == 0, seen.stderr


@pytest.mark.root
@pytest.mark.parametrize(
    ("made_by", "system_site", "said"),
    [
        ("pyenv", "true", f"not by {SYSTEM_PYTHON}"),
        ("system", "false", "without --system-site-packages"),
    ],
)
def test_provisioning_refuses_a_venv_that_cannot_see_debian_packages(
    tmp_path: Path, made_by: str, system_site: str, said: str
) -> None:
    """A .venv left by an earlier provisioning with another interpreter (or without the system
    site-packages) cannot see Debian's packages: the provisioning says so and how to fix it (exit 2) instead
    of installing into it."""
    repo = provisioning_copy(tmp_path)
    other = tmp_path / "pyenv" / "bin"
    other.mkdir(parents=True)
    (other / "python3").write_text(f'#!/bin/sh\necho "{DECOY_MARK}: venv python $*" >&2\nexit 97\n')
    (other / "python3").chmod(0o755)
    home = other if made_by == "pyenv" else SYSTEM_PYTHON.parent
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").symlink_to(other / "python3")
    config = f"home = {home}\ninclude-system-site-packages = {system_site}\n"
    (repo / ".venv" / "pyvenv.cfg").write_text(config)
    result = run("bash", "tools/provision.sh", "--test", cwd=repo)
    assert DECOY_MARK not in result.stderr, result.stderr
    assert result.returncode == 2, result.stdout + result.stderr
    assert said in result.stderr and "rm -rf" in result.stderr, result.stderr


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


@pytest.mark.root
@pytest.mark.parametrize("has_clang", [True, False], ids=["with clang", "without clang"])
def test_provisioning_builds_the_ebpf_object_or_says_why_not(tmp_path: Path, has_clang: bool) -> None:
    """Issue 9: provisioning compiles agents/datapath/bpf/tunnel.bpf.c into the git-ignored build/bpf/; on a
    machine without clang it still succeeds, says so in one line, and `auto` then selects userspace (kernel,
    before both, where the kernel has ipip, sit and gre: the VM)."""
    repo = provisioning_copy(tmp_path)
    shutil.copy2(REPO / "tools" / "build-bpf.sh", repo / "tools" / "build-bpf.sh")
    source = repo / "agents" / "datapath" / "bpf"
    source.mkdir(parents=True)
    for path in (REPO / "agents" / "datapath" / "bpf").iterdir():  # the programs and the headers they share
        if path.suffix in (".c", ".h"):
            shutil.copy2(path, source / path.name)
    env = dict(os.environ) if has_clang else {**os.environ, "CLANG": str(tmp_path / "no-clang")}
    result = run("bash", "tools/provision.sh", cwd=repo, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    notes = [line for line in result.stdout.splitlines() if "eBPF datapath was not built" in line]
    built = repo / "build" / "bpf" / "tunnel.bpf.o"
    assert built.exists() is has_clang and len(notes) == (0 if has_clang else 1), result.stdout
    assert (repo / "build" / "bpf" / "fa.bpf.o").exists() is has_clang  # the foreign agent's programs
    probe = "from agents.datapath.selection import select_backend; print(select_backend('auto').backend)"
    chosen = run(str(SYSTEM_PYTHON), "-c", probe, env={**os.environ, "DSMIP_BPF_OBJECT": str(built)})
    assert chosen.returncode == 0, chosen.stderr
    from agents.datapath.kernel import probe_kernel_tunnels

    fallback = "ebpf" if has_clang else "userspace"
    assert chosen.stdout.strip() == ("kernel" if probe_kernel_tunnels().complete else fallback)
    ignored = run("git", "check-ignore", "-q", "build/bpf/tunnel.bpf.o")
    assert ignored.returncode == 0, "the built object must never be committed"
