"""Suite-wide rules: a test that needs root fails (never skips) when it cannot run as root."""

from __future__ import annotations

import os

import pytest

from topologies.nodes import start_scale


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Under DSMIP_START_SCALE (an emulated VM, tools/vm) every test gets that many times its timeout:
    the scenarios' own waits scale the same way (tests/support/scenario.py):
    pytest-timeout must not cut them."""
    scale = start_scale()
    if scale > 1 and config.getoption("timeout", None) is None:
        configured = config.getini("timeout")
        if configured:
            config.option.timeout = float(configured) * scale


def pytest_runtest_setup(item: pytest.Item) -> None:
    needs_root = item.get_closest_marker("root") or item.get_closest_marker("mininet")
    if needs_root and os.geteuid() != 0:
        pytest.fail(f"{item.nodeid} needs root (run the suite with: sudo ./testbed test)", pytrace=False)
