"""What the scenario says before it builds anything when its Python dependencies do not import (no root)."""

from __future__ import annotations

import sys

from scenarios.harness.preflight import PROVISION_HINT, SYSTEM_PYTHON, missing_modules_message


def test_the_system_python_without_the_packages_is_told_to_provision() -> None:
    said = missing_modules_message(["mininet", "dpkt"], "/usr/bin/python3", "/usr")
    assert said == f"mininet, dpkt not importable from /usr/bin/python3; {PROVISION_HINT}"


def test_a_venv_of_the_system_python_is_told_to_provision_too() -> None:
    said = missing_modules_message(["pyroute2"], "/work/repo/.venv/bin/python", "/usr")
    assert said.endswith(PROVISION_HINT)


def test_another_python_is_told_to_run_the_system_one() -> None:
    """pyenv or conda first on PATH: provisioning again would not help, the system Python would."""
    pyenv = "/root/.pyenv/versions/3.11.7/bin/python3"
    said = missing_modules_message(["mininet"], pyenv, "/root/.pyenv/versions/3.11.7")
    assert said.startswith(f"mininet not importable from {pyenv}, which is not the system Python")
    assert f"sudo {SYSTEM_PYTHON} -m scenarios.handover" in said and "./testbed handover" in said
    assert PROVISION_HINT not in said


def test_this_interpreter_is_the_default() -> None:
    assert sys.executable in missing_modules_message(["mininet"])
