"""Suite-wide rules: a test that needs root fails (never skips) when it cannot run as root."""

from __future__ import annotations

import os

import pytest


def pytest_runtest_setup(item: pytest.Item) -> None:
    needs_root = item.get_closest_marker("root") or item.get_closest_marker("mininet")
    if needs_root and os.geteuid() != 0:
        pytest.fail(f"{item.nodeid} needs root (run the suite with: sudo ./testbed test)", pytrace=False)
