"""The DHCPv6-PD scenario's steps (the command is :mod:`scenarios.dhcpv6_pd`).

The scenario acts and records only: phase marks go to ``traces/scenario.jsonl``, Kea's files (config, lease
CSV, log) to ``kea/``; every verdict is computed afterwards from the run folder by :mod:`reports.dhcpv6_pd`.
Kea runs in the home agent's node, started after the home agent (its TUN must exist) and stopped before
the testbed goes (by its own handle).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from agents.mip.common.trace_schema import TraceEvent
from reports.dhcpv6_pd import render_dhcpv6_pd
from reports.metrics import RunResult
from reports.table import verdict_lines
from scenarios.harness.kea import KeaPlan, KeaServer, KeaUnavailable
from scenarios.harness.phased import PhasedRun
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import RunFolder, start_meta
from scenarios.harness.testbed import Testbed, wait_until
from topologies.addressing import CN4, CN6, HA6
from topologies.dualstack import DualStackTopo, process_tag
from topologies.spec import Route

MOBILE = "mn1"
POOL = IPv6Network("2001:db8:d000::/48")
PHASES = (
    "home",
    "visit-fa1",
    "link-local",
    "dhcpv6",
    "prefix",
    "traffic",
    "renew",
    "move-fa2",
    "deregistration",
)
EXHAUSTED_PHASES = ("home", "visit-fa1", "link-local", "dhcpv6", "ipv4-only", "deregistration")


def pd_topology(args: argparse.Namespace, run: RunFolder, kea: KeaPlan) -> DualStackTopo:
    """The dual-stack topology with mn1 configured for DHCPv6-PD (no prefixes of its own), the HA reading
    Kea's leases, and r0 routing the pool to the HA; the topology module stays untouched."""
    topo = DualStackTopo(
        foreign_agents=2,
        mobile_nodes=1,
        nat=False,
        datapath=args.datapath,
        agent_priority=args.agent_priority,
        tag=process_tag(),
        overrides=args.set,
    )
    topo.specs["r0"].routes.append(Route(str(POOL), str(HA6.ip), family=6))
    ha: Any = topo.specs["ha"].agent_config
    mn: Any = topo.specs[MOBILE].agent_config
    ha["runtime"]["dhcpv6_pd"] = {"kea_control_socket": str(kea.control_socket)}
    mn["mobile_node"]["prefixes"] = []
    mn["mobile_node"]["link_local_bootstrap"] = args.link_local_first
    mn["dhcpv6_pd"] = {
        "rapid_commit": not args.four_message,
        "sol_max_delay": args.sol_max_delay,
        "ren_timeout": 1.0,
        "reb_timeout": 1.0,
    }
    return topo


def phase_line(milestones: dict[str, float]) -> str:
    """`bootstrap (ms after the first request): IPv4 registration 12, link-local +990, ...`."""
    from reports.dhcpv6_pd_report import phases

    spans = phases(milestones)
    parts = [f"{label} {'+' if start else ''}{duration * 1000:.0f}" for label, start, duration in spans]
    return "bootstrap, ms from the first Registration Request via FA1: " + (", ".join(parts) or "-")


class PdRun(PhasedRun):
    """One run of the DHCPv6-PD scenario into ``run``."""

    NAME = "dhcpv6_pd"
    OUTPUTS = "report.md, plots/, pcaps/, kea/"

    def __init__(
        self,
        args: argparse.Namespace,
        run: RunFolder,
        progress: Progress,
        seed: int,
        features: dict[str, Any],
    ) -> None:
        super().__init__(args, run, progress, seed, features)
        self.exhausted = args.pool_size == 0
        valid = args.lease
        try:
            self.kea_plan = KeaPlan(
                run.path / "kea",
                pool=POOL,
                pool_size=args.pool_size,
                preferred=valid,
                valid=valid,
                renew=max(1, valid // 2),
                rebind=max(1, valid * 4 // 5),
                rapid_commit=True,
                debug=args.kea_debug,
            )
        except ValueError as error:
            raise KeaUnavailable(str(error)) from None
        self.kea = KeaServer(self.kea_plan)
        self.topo = pd_topology(args, run, self.kea_plan)
        plan = self.topo.mobile_plans[MOBILE]
        self.hoa = str(plan.home_address)
        self.iid = int(plan.home_address)
        self.care_ofs = {
            name: str(self.topo.nodeSpec(name).agent_config["foreign_agent"]["care_of_addresses"][0])  # type: ignore[index]
            for name in ("fa1", "fa2")
        }
        self.prefix: IPv6Network | None = None

    @property
    def phases(self) -> tuple[str, ...]:
        return EXHAUSTED_PHASES if self.exhausted else PHASES

    # -- frame ---------------------------------------------------------------------------------------

    def run_phases(self, bed: Testbed) -> None:
        try:
            self.start_kea(bed)
            self.drive(bed)
        finally:
            self.stop_kea(bed)

    def render(self) -> RunResult:
        return render_dhcpv6_pd(self.run.path)

    def summary(self, result: RunResult) -> list[str]:
        return [phase_line(result.metrics.get("milestones_s", {})), verdict_lines(result)]

    def write_meta_start(self) -> None:
        args, plan = self.args, self.kea_plan
        self.run.write_meta(
            **start_meta("dhcpv6_pd", args, self.seed, self.features),
            dwell=args.dwell,
            pcap=not args.no_pcap,
            mobile_node=MOBILE,
            home_agent="ha",
            home_address=self.hoa,
            care_ofs=self.care_ofs,
            pool=str(POOL),
            pool_size=args.pool_size,
            delegated_length=plan.delegated_length,
            lease={"preferred": plan.preferred, "valid": plan.valid, "t1": plan.renew, "t2": plan.rebind},
            rapid_commit=not args.four_message,
            link_local_first=args.link_local_first,
            exhausted=self.exhausted,
            phases=list(self.phases),
            flows=[],
            topology_tag=self.topo.tag,
            bridges=sorted(self.topo.switches()),
            settle_timeout=args.settle_timeout,
        )

    def start_kea(self, bed: Testbed) -> None:
        node = bed.node("ha")

        def popen(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
            log = self.run.log("kea-dhcp6").open("ab")
            return node.popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)  # type: ignore[no-any-return]

        self.kea.start(popen)
        bed.trace.emit(TraceEvent.KEA_STARTED, pid=self.kea.process.pid if self.kea.process else None)
        self.progress.say(f"Kea dhcp6 serving on the HA's {self.kea_plan.interface}, pool {POOL}")

    def stop_kea(self, bed: Testbed) -> None:
        code = self.kea.stop()
        bed.trace.emit(TraceEvent.KEA_STOPPED, code=code)

    # -- the run -------------------------------------------------------------------------------------

    def drive(self, bed: Testbed) -> None:
        for phase in self.phases:
            bed.trace.emit(TraceEvent.PHASE_STARTED, phase=phase)
            self.progress.say(f"phase {phase}")
            ok = getattr(self, "phase_" + phase.replace("-", "_"))(bed)
            bed.trace.emit(TraceEvent.PHASE_FINISHED, phase=phase)
            if ok is False:
                self.progress.warn(f"phase {phase} did not complete; skipping to deregistration")
                if phase != "deregistration":
                    self.phase_deregistration(bed)
                break
        bed.stop_probes()

    def phase_home(self, bed: Testbed) -> bool:
        time.sleep(self.args.dwell)
        return True

    def phase_visit_fa1(self, bed: Testbed) -> bool:
        return self.move("fa1")

    def phase_link_local(self, bed: Testbed) -> bool:
        return self.wait(
            lambda: bool(self.mn_events("prefix_accepted", link_local=True)), "link-local accepted"
        )

    def phase_dhcpv6(self, bed: Testbed) -> bool:
        if self.exhausted:
            return self.wait(lambda: bool(self.mn_events("dhcpv6_no_prefix")), "mn1 hears NoPrefixAvail")
        if not self.wait(lambda: bool(self.mn_events("prefix_delegated")), "a prefix is delegated"):
            return False
        self.prefix = IPv6Network(self.mn_events("prefix_delegated")[0]["prefix"])
        self.progress.say(f"delegated {self.prefix}")
        return True

    def phase_prefix(self, bed: Testbed) -> bool:
        prefix = str(self.prefix)
        accepted = lambda: any(e["prefix"] == prefix for e in self.mn_events("prefix_accepted"))  # noqa: E731
        if not self.wait(accepted, f"{prefix} registered"):
            return False
        address = str(IPv6Address(int(self.prefix.network_address) | self.iid)) if self.prefix else ""
        flows = self.flows(address)
        self.run.write_meta(flows=[flow.name for flow in flows], mn_address6=address)
        bed.start_probes(flows, self.args.rate)
        self.progress.say(f"probes running to and from {address} and {self.hoa}")
        return True

    def phase_ipv4_only(self, bed: Testbed) -> bool:
        flows = self.flows(None)
        self.run.write_meta(flows=[flow.name for flow in flows])
        bed.start_probes(flows, self.args.rate)
        self.progress.always(f"{MOBILE} stays IPv4-only: Kea has no prefix for it (pool exhausted)")
        time.sleep(2 * self.args.dwell)
        return True

    def phase_traffic(self, bed: Testbed) -> bool:
        time.sleep(self.args.dwell)
        return True

    def phase_renew(self, bed: Testbed) -> bool:
        renewed = lambda: any(e.get("how") == "renew" for e in self.mn_events("prefix_delegated"))  # noqa: E731
        ok = wait_until(renewed, self.args.lease + self.args.settle_timeout)
        self.expect("the lease is renewed", ok, "" if ok else "no Renew answered")
        time.sleep(self.args.dwell)
        return ok

    def phase_move_fa2(self, bed: Testbed) -> bool:
        ok = self.move("fa2")
        time.sleep(self.args.dwell)
        return ok

    def phase_deregistration(self, bed: Testbed) -> bool:
        self.mark("deregister_sent")
        bed.ask(MOBILE, "deregister")  # with a prefix delegated, the MN releases it first
        released = True
        if self.prefix is not None:
            released = self.wait(lambda: bool(self.mn_events("dhcpv6_release_finished")), "Release answered")
        gone = self.wait(lambda: self.binding() is None, "HA drops mn1's binding")
        self.mark("delegations_after", delegations=bed.ask("ha", "delegations"))
        time.sleep(0.5)
        return released and gone

    # -- helpers -------------------------------------------------------------------------------------

    def flows(self, address6: str | None) -> list[Any]:
        from scenarios.harness.probes import Flow

        flows = [
            Flow("v4-down", "cn", MOBILE, self.hoa, 4),
            Flow("v4-up", MOBILE, "cn", str(CN4.ip), 4, source=self.hoa),
        ]
        if address6:
            flows += [
                Flow("v6-down", "cn", MOBILE, address6, 6),
                Flow("v6-up", MOBILE, "cn", str(CN6.ip), 6, source=address6),
            ]
        return flows

    def mark(self, what: str, **fields: Any) -> None:
        assert self.bed is not None
        self.bed.trace.emit(TraceEvent.STEP, what=what, **fields)

    def mn_events(self, name: str, **match: Any) -> list[dict[str, Any]]:
        path = self.run.trace(MOBILE)
        found = []
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("event") == name and all(event.get(k) == v for k, v in match.items()):
                found.append(event)
        return found

    def move(self, to: str) -> bool:
        assert self.bed is not None
        number = self.bed.move(MOBILE, to)
        care_of = self.care_ofs[to]
        settled = self.wait(lambda: self.registered(MOBILE, care_of), f"mn1 registered via {to}")
        self.bed.finish_move(number, settled)
        return settled

    def binding(self) -> dict[str, Any] | None:
        assert self.bed is not None
        for binding in self.bed.ask("ha", "bindings"):
            if binding.get("home_address") == self.hoa:
                return dict(binding)
        return None
