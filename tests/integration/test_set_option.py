"""A ``--set`` the topology refuses (``ha.x.y=1``: the HA's config has no table ``x``) is one error line and
exit 2 in every scenario that takes ``--set``, and leaves no run folder behind (issue 16 review F6): the
topology is built, with every override applied, before the run folder is made."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.mininet]

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("handover", "deregistration", "security", "nat_traversal", "dhcpv6_pd")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_refused_set_leaves_no_run_folder(scenario: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    finished = subprocess.run(
        ["/usr/bin/python3", "-m", f"scenarios.{scenario}", "--set", "ha.x.y=1", "--out", str(out), "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert finished.returncode == 2, finished
    assert "Traceback" not in finished.stderr, finished.stderr
    assert finished.stderr.strip().splitlines() == [
        f"{scenario}: ha.x.y: the config has no table 'x' there"
    ], finished.stderr
    assert not out.exists(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))


BAD_VALUES = (
    (
        "mn1.mobile_node.renewal_fraction=abc",
        "mobile_node.renewal_fraction: expected a number, got str 'abc'",
    ),
    ("ha.home_agent.max_lifetime=abc", "home_agent.max_lifetime: expected an integer, got str 'abc'"),
    ("mn1.mobile_node.bogus_key=1", "mobile_node.bogus_key: unknown key"),
)


@pytest.mark.parametrize(("setting", "message"), BAD_VALUES)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_value_the_agent_refuses_is_refused_before_the_run(
    scenario: str, setting: str, message: str, tmp_path: Path
) -> None:
    """The agent's own loader judges each overridden config before the run folder exists (issue 16 review:
    ``security --set mn1.mobile_node.renewal_fraction=abc`` was a traceback, other bad values exit 1 after a
    half-started run)."""
    out = tmp_path / "run"
    finished = subprocess.run(
        ["/usr/bin/python3", "-m", f"scenarios.{scenario}", "--set", setting, "--out", str(out), "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert finished.returncode == 2, finished
    assert "Traceback" not in finished.stderr, finished.stderr
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{scenario}: --set for "), finished.stderr
    assert message in lines[0] and "dsmip-set-" not in lines[0], lines[0]
    assert not out.exists()
