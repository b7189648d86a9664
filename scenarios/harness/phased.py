"""The frame every phased scenario run shares (deregistration, DHCPv6-PD, security): build the testbed, drive
it, always tear it down, record the end in meta.json, render the run folder and print the verdicts.

A subclass sets :attr:`PhasedRun.NAME` and ``self.topo``, and implements :meth:`write_meta_start`,
:meth:`drive` and :meth:`render`; it may extend :meth:`run_phases` (e.g. to start and stop a server around the
phases) and :meth:`summary`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from reports.metrics import RunResult
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import RunFolder
from scenarios.harness.testbed import Testbed, wait_until
from topologies.dualstack import DualStackTopo


class PhasedRun:
    """One run of a scenario into ``run``: :meth:`execute` returns what :meth:`render` judged."""

    NAME: ClassVar[str] = "scenario"
    OUTPUTS: ClassVar[str] = "report.md, plots/, pcaps/"
    topo: DualStackTopo

    def __init__(
        self,
        args: argparse.Namespace,
        run: RunFolder,
        progress: Progress,
        seed: int,
        features: dict[str, Any],
    ) -> None:
        self.args, self.run, self.progress, self.seed, self.features = args, run, progress, seed, features
        self.expectations: list[dict[str, object]] = []
        self.bed: Testbed | None = None

    def expect(self, name: str, passed: bool, detail: str = "") -> bool:
        """Record a harness expectation (judged with the others in the report); warn when it failed."""
        self.expectations.append({"name": name, "passed": passed, "detail": detail})
        if not passed:
            self.progress.warn(f"{name}: {detail}")
        return passed

    def wait(self, predicate: Callable[[], bool], what: str) -> bool:
        """Wait up to ``--settle-timeout`` for ``predicate``; the outcome is an expectation named ``what``."""
        ok = wait_until(predicate, self.args.settle_timeout)
        return self.expect(what, ok, "" if ok else f"not within {self.args.settle_timeout:g} s")

    def status(self, node: str) -> dict[str, Any]:
        """The agent's ``status`` over its control socket; ``{"error": ...}`` when it does not answer."""
        assert self.bed is not None
        try:
            return dict(self.bed.ask(node, "status"))
        except (OSError, RuntimeError) as error:
            return {"error": str(error)}

    def registered(self, node: str, care_of: str | None = None) -> bool:
        """The mobile node ``node`` is registered (through ``care_of`` when given)."""
        status = self.status(node)
        return status.get("state") == "registered" and (care_of is None or status.get("care_of") == care_of)

    def capture_all(self) -> bool:
        """Whether the testbed captures every agent interface (``--no-pcap`` says no)."""
        return not getattr(self.args, "no_pcap", False)

    def execute(self) -> RunResult:
        started = time.monotonic()
        self.write_meta_start()
        try:
            testbed = Testbed(
                self.topo, self.run, pcap=self.capture_all(), start_timeout=self.args.start_timeout
            )
            with testbed as bed:
                self.bed = bed
                self.progress.say(f"network up, {len(bed.agents)} agents ready; run folder {self.run.path}")
                self.run_phases(bed)
            self.run.write_meta(exit_codes=bed.exit_codes)
        finally:
            self.run.write_meta(
                end_utc=datetime.now(UTC).isoformat(timespec="seconds"),
                wall_time_s=round(time.monotonic() - started, 3),
                expectations=self.expectations,
            )
        self.progress.say("analysing the run")
        result = self.render()
        if not self.progress.quiet:
            self.progress.always("")
            for line in self.summary(result):
                self.progress.always(line)
        verdict = "PASSED" if result.overall_passed else "FAILED"
        self.progress.always(f"{self.NAME}: {verdict}; run folder: {self.run.path} ({self.OUTPUTS})")
        return result

    def run_phases(self, bed: Testbed) -> None:
        """Everything between building and tearing down: :meth:`drive`, by default."""
        self.drive(bed)

    def summary(self, result: RunResult) -> list[str]:
        """What is printed before the verdict line (the report module's verdict lines)."""
        raise NotImplementedError

    def write_meta_start(self) -> None:
        raise NotImplementedError

    def drive(self, bed: Testbed) -> None:
        raise NotImplementedError

    def render(self) -> RunResult:
        raise NotImplementedError
