"""The handover scenario's steps (the command is :mod:`scenarios.handover`): build, probe, move, judge."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reports import RunResult, render, summary_table, verdict_lines
from scenarios.harness.options import home_netem
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import S_HANDOFFS, RunFolder, kernel_notes, start_meta
from scenarios.harness.testbed import Testbed, wait_until
from topologies.addressing import CN4, CN6
from topologies.dualstack import DualStackTopo, process_tag

MOBILE_NODE = "mn1"
FLOWS = ("v4-down", "v4-up", "v6-down", "v6-up")


class HandoverRun:
    """One run of the handover scenario into ``run``; :meth:`execute` returns the rendered result."""

    NAME = "handover"

    def __init__(
        self,
        args: argparse.Namespace,
        run: RunFolder,
        progress: Progress,
        seed: int,
        features: dict[str, Any],
        *,
        route: tuple[str, ...],
        settle_timeout: float,
    ) -> None:
        self.args, self.run, self.progress, self.seed = args, run, progress, seed
        self.features = features
        self.route = route
        self.settle_timeout = settle_timeout
        self.expectations: list[dict[str, object]] = []
        self.handoff: Any = None
        """:class:`scenarios.handoff.LowLatencyHandoff` with ``--handoff pre|post`` (RFC 4881),
        :class:`scenarios.handoff_mbb.MakeBeforeBreak` with ``--handoff make-before-break``, else None."""
        self.topo = DualStackTopo(
            foreign_agents=2,
            mobile_nodes=1,
            nat=False,
            adv_interval=args.adv_interval,
            detection="advert" if args.detection == "advert" else "link",
            datapath=args.datapath,
            agent_priority=args.agent_priority,
            tag=process_tag(),
            overrides=args.set,
            home_netem=home_netem(args),
            second_interfaces=getattr(args, "handoff", "standard") == "make-before-break",
            simultaneous_bindings=getattr(args, "handoff", "standard") in S_HANDOFFS,
        )

    def expect(self, name: str, passed: bool, detail: str = "") -> bool:
        self.expectations.append({"name": name, "passed": passed, "detail": detail})
        if not passed:
            self.progress.warn(f"{name}: {detail}")
        return passed

    def execute(self) -> RunResult:
        started = time.monotonic()
        self.write_meta_start()
        try:
            testbed = Testbed(
                self.topo, self.run, pcap=not self.args.no_pcap, start_timeout=self.args.start_timeout
            )
            with testbed as bed:
                self.progress.say(f"network up, {len(bed.agents)} agents ready; run folder {self.run.path}")
                self.drive(bed)
            self.check_exit_codes(bed.exit_codes)
            self.run.write_meta(moves=bed.handovers)  # the planned ones, and any made from --cli
        finally:
            self.run.write_meta(
                end_utc=datetime.now(UTC).isoformat(timespec="seconds"),
                wall_time_s=round(time.monotonic() - started, 3),
                expectations=self.expectations,
            )
        self.progress.say("analysing the run")
        result = self.analyse()
        self.report(result)
        return result

    def analyse(self) -> RunResult:
        """Render the run folder (metrics, plots, report) and return what was judged."""
        return render(self.run.path)

    def write_meta_start(self) -> None:
        args = self.args
        mobile = self.topo.mobileLinks()[MOBILE_NODE]
        self.run.write_meta(
            **start_meta("handover", args, self.seed, self.features),
            detection=args.detection,
            handoff=getattr(args, "handoff", "standard"),
            adv_interval=args.adv_interval,
            cycles=args.moves,
            moves=args.moves * len(self.route),
            dwell=args.dwell,
            pcap=not args.no_pcap,
            mobile_node=MOBILE_NODE,
            home_agent="ha",
            home_address=str(self.topo.mobile_plans[MOBILE_NODE].home_address),
            flows=list(FLOWS),
            attachments=sorted(mobile.attachments),
            topology_tag=self.topo.tag,
            bridges=sorted(self.topo.switches()),
            settle_timeout=self.settle_timeout,
        )
        for note in kernel_notes(self.features):
            self.progress.say(note)

    # -- the run itself ------------------------------------------------------------------------------------

    def drive(self, bed: Testbed) -> None:
        home = wait_until(lambda: self.status(bed).get("at_home") is True, self.settle_timeout)
        self.expect("mobile node starts at home", home, "" if home else str(self.status(bed)))
        bed.start_probes(self.flows(), self.args.rate)
        self.progress.say(f"probes running: {', '.join(FLOWS)} at {self.args.rate:g} packets/s each")
        mode = getattr(self.args, "handoff", "standard")
        if mode == "make-before-break":
            from scenarios.handoff_mbb import MakeBeforeBreak

            self.handoff = MakeBeforeBreak(bed, self.topo, MOBILE_NODE)
        elif mode != "standard":
            from scenarios.handoff import LowLatencyHandoff

            self.handoff = LowLatencyHandoff(bed, self.topo, MOBILE_NODE, mode)
        try:
            time.sleep(self.args.dwell)
            for cycle in range(self.args.moves):
                carrier = self.carrier_events(cycle)
                for to in self.route:
                    self.move(bed, to, carrier)
            if self.args.cli:
                from scenarios.harness.cli import run_cli

                run_cli(bed)
            bed.stop_probes()
        finally:
            close = getattr(self.handoff, "close", None)
            if close is not None:
                close()  # make-before-break: its second interface, if a move left one

    def carrier_events(self, cycle: int) -> bool:
        detection = self.args.detection
        return detection == "link" or (detection == "both" and cycle % 2 == 0)

    def move(
        self, bed: Testbed, to: str, carrier: bool, while_down: Callable[[], None] | None = None
    ) -> None:
        source = bed.attachment[MOBILE_NODE]
        if self.handoff is not None:
            self.handoff.before_move(bed.handovers + 1, source, to)
        number = bed.move(MOBILE_NODE, to, carrier_events=carrier, while_down=while_down)
        moved_at = time.monotonic()
        if self.handoff is not None:
            self.handoff.after_link_up(number, source, to)
        settled = wait_until(lambda: self.settled(bed, to), self.settle_timeout)
        took = (time.monotonic() - moved_at) * 1000
        bed.finish_move(number, settled)
        finish = getattr(self.handoff, "after_settled", None)
        if finish is not None:
            finish(number)
        how = "link event" if carrier else "advertisements only"
        detail = f"settled in {took:.0f} ms" if settled else f"not within {self.settle_timeout:g} s"
        if self.expect(f"handover {number} {source} → {to} settles", settled, detail):
            self.progress.say(f"handover {number}: {source} → {to} ({how}) settled in {took:.0f} ms")
        else:
            self.progress.say(f"handover {number}: {source} → {to} ({how}) did not settle ({detail})")
        time.sleep(self.args.dwell)

    def status(self, bed: Testbed) -> dict[str, Any]:
        try:
            return dict(bed.ask(MOBILE_NODE, "status"))
        except (OSError, RuntimeError) as error:
            return {"error": str(error)}

    def settled(self, bed: Testbed, to: str) -> bool:
        """Home: deregistered and at home; away: registered through that FA's care-of address."""
        status = self.status(bed)
        if to == "home":
            return status.get("at_home") is True and status.get("state") == "idle"
        care_ofs = self.topo.nodeSpec(to).agent_config["foreign_agent"]["care_of_addresses"]  # type: ignore[index]
        return status.get("state") == "registered" and status.get("care_of") in care_ofs

    def flows(self) -> list[Any]:
        from scenarios.harness.probes import Flow

        mobile = self.topo.mobile_plans[MOBILE_NODE]
        hoa, mn6 = str(mobile.home_address), str(mobile.address6)
        cn4, cn6 = str(CN4.ip), str(CN6.ip)
        return [
            Flow("v4-down", "cn", MOBILE_NODE, hoa, 4),
            Flow("v4-up", MOBILE_NODE, "cn", cn4, 4, source=hoa),
            Flow("v6-down", "cn", MOBILE_NODE, mn6, 6),
            Flow("v6-up", MOBILE_NODE, "cn", cn6, 6, source=mn6),
        ]

    def check_exit_codes(self, codes: dict[str, int]) -> None:
        bad = {name: code for name, code in codes.items() if code != 0}
        detail = (
            f"{len(codes)} processes" if not bad else ", ".join(f"{k} exited {v}" for k, v in bad.items())
        )
        self.expect("every agent and probe exits cleanly on SIGTERM", not bad, detail)

    def report(self, result: RunResult) -> None:
        progress = self.progress
        if not progress.quiet:
            progress.always("")
            progress.always(summary_table(result))
            progress.always("")
            progress.always(verdict_lines(result))
        verdict = "PASSED" if result.overall_passed else "FAILED"
        parts = "report.md, plots/" + ("" if self.args.no_pcap else ", pcaps/")
        progress.always(f"{self.NAME}: {verdict}; run folder: {self.run.path} ({parts})")
