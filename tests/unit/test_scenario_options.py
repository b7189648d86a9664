"""Every scenario option error is one clear line (``--OPTION must be ... got 'X'``) and exit 2, never a
traceback (issue 16 review: "want 0.01..0.9 a probability", "is not a number ((a share))")."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios.harness.options import choices, number, whole

REPO = Path(__file__).resolve().parents[2]

BAD = [
    ("--forged-share", "x", "must be a number between 0 and 1 (share of datagrams forging FA1), got 'x'"),
    ("--forged-share", "1.5", "must be a number between 0 and 1 (share of datagrams forging FA1), got '1.5'"),
    ("--loss", "0.95", "must be a number between 0.01 and 0.9 (a probability of loss), got '0.95'"),
    ("--flood-rate", "nan", "must be a number between 100 and 200000 (datagrams per second), got 'nan'"),
    ("--mixed-rate", "inf", "must be a number between 100 and 200000 (datagrams per second), got 'inf'"),
    ("--flood-count", "5", "must be a whole number between 100 and 1000000 (datagrams per flood), got '5'"),
    ("--keepalive", "2.5", "must be a whole number between 1 and 110 (seconds), got '2.5'"),
    ("--lifetime", "1", "must be a whole number between 2 and 600 (seconds), got '1'"),
    ("--spoof-count", "0", "must be a whole number between 1 and 1000, got '0'"),
    ("--phases", "flood,bogus", "must be a comma-separated list of spoof, forged, flood, flood-forged, "
     "loss, nat-loss, ha-restart, fa-restart; unknown 'bogus'"),
    ("--loss-legs", ",", "must be a comma-separated list of mn-fa, fa-ha; got ','"),
    ("--seed", "-1", "must be a whole number between 0 and 4294967295 (random seed), got '-1'"),
    ("--seed", "4294967296",
     "must be a whole number between 0 and 4294967295 (random seed), got '4294967296'"),
]  # fmt: skip


@pytest.mark.parametrize(("option", "value", "message"), BAD, ids=[f"{o}={v}" for o, v, _ in BAD])
def test_a_bad_security_option_is_one_line_and_exit_2(option: str, value: str, message: str) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "scenarios.security", option, value],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert finished.returncode == 2, finished
    assert "Traceback" not in finished.stderr
    assert finished.stderr.strip().splitlines()[-1] == (
        f"python -m scenarios.security: error: argument {option}: {message}"
    )


def test_the_parsers_accept_their_whole_range() -> None:
    assert number("0", 0, 1, "share") == 0.0 and number("1", 0, 1, "share") == 1.0
    assert whole("100", 100, 200) == 100 and whole("200", 100, 200) == 200
    assert choices("b, a", ("a", "b", "c")) == ["a", "b"]
    for bad in ("-0.1", "1.01", "", "1e400"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be a number between 0 and 1"):
            number(bad, 0, 1, "share")
    for bad in ("-1", "99", "201", "1e2", " "):
        with pytest.raises(argparse.ArgumentTypeError, match="must be a whole number between 100 and 200"):
            whole(bad, 100, 200)


@pytest.mark.parametrize("scenario", ["handover", "deregistration", "nat_traversal", "dhcpv6_pd"])
def test_a_negative_seed_is_refused_by_every_scenario(scenario: str) -> None:
    """Review F7: seeds are 0..2**32-1 (numpy's generators); -1 is one error line and exit 2."""
    finished = subprocess.run(
        [sys.executable, "-m", f"scenarios.{scenario}", "--seed", "-1"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert finished.returncode == 2, finished
    assert "Traceback" not in finished.stderr
    last = finished.stderr.strip().splitlines()[-1]
    assert last == (
        f"python -m scenarios.{scenario}: error: argument --seed: must be a whole number between 0 and "
        "4294967295 (random seed), got '-1'"
    ), finished.stderr


def test_a_forged_share_without_the_flood_phase_is_refused() -> None:
    """Review F7: ``--forged-share`` shapes the flood phase only; asked for without it, it would be
    silently ignored: one error line and exit 2 instead. With ``flood`` among the phases it is taken."""
    finished = subprocess.run(
        [sys.executable, "-m", "scenarios.security", "--phases", "spoof,flood-forged",
         "--forged-share", "0.5"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert finished.returncode == 2, finished
    assert "Traceback" not in finished.stderr
    assert finished.stderr.strip().splitlines()[-1] == (
        "python -m scenarios.security: error: --forged-share applies to the flood phase, which --phases "
        "leaves out"
    )
    from scenarios.security import parse_args

    assert parse_args(["--phases", "flood", "--forged-share", "0.5"]).forged_share == 0.5
    assert parse_args(["--phases", "spoof"]).forged_share == 0.0


@pytest.mark.parametrize("handoff", ["make-before-break", "pre"])
def test_a_handoff_with_s_on_the_kernel_datapath_is_refused_in_one_line(handoff: str) -> None:
    """RFC 5944 §3.6.1.3: the kernel backend cannot send a copy to each care-of address; RFC 4881 §3
    pre-registration registers with S too (its reply comes back through the old binding)."""
    command = ["-m", "scenarios.handover", "--handoff", handoff, "--datapath", "kernel"]
    finished = subprocess.run(
        [sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 2 and "Traceback" not in finished.stderr, finished
    assert f"{handoff} needs simultaneous bindings" in finished.stderr.strip().splitlines()[-1]
