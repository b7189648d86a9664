"""The scenario harness (design.md §2, §7): a :class:`Testbed` that always tears down, captures, probes,
moves and the run folder. Scenarios are thin scripts over it."""

from scenarios.harness.probes import Flow, Timeline
from scenarios.harness.runfolder import RunFolder
from scenarios.harness.testbed import Interrupted, Testbed, wait_until

__all__ = ["Flow", "Interrupted", "RunFolder", "Testbed", "Timeline", "wait_until"]
