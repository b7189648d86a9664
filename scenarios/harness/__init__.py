"""The scenario harness (design.md §2, §7): a :class:`Testbed` that always tears down, captures, probes,
moves and the run folder. Scenarios are thin scripts over it.

The names below are imported on first use (PEP 562), so ``scenarios.harness.preflight`` can check for
Mininet and pyroute2 before anything imports them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "Flow": "scenarios.harness.probes",
    "Timeline": "scenarios.harness.probes",
    "RunFolder": "scenarios.harness.runfolder",
    "Interrupted": "scenarios.harness.signals",
    "Testbed": "scenarios.harness.testbed",
    "wait_until": "scenarios.harness.testbed",
}
__all__ = ["Flow", "Interrupted", "RunFolder", "Testbed", "Timeline", "wait_until"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
