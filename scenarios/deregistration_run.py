"""The deregistration scenario's steps (the command is :mod:`scenarios.deregistration`).

The scenario only acts and records: phase marks and attack results go to ``traces/scenario.jsonl``,
state snapshots to ``observations.jsonl`` (:mod:`scenarios.harness.observe`); every verdict is computed
afterwards from the run folder by :mod:`reports.deregistration`, so a re-render judges the same way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from ipaddress import IPv4Address
from typing import Any

from agents.mip.common.trace_schema import TraceEvent
from reports.deregistration import DeregistrationResult, render_deregistration
from reports.table import verdict_lines
from scenarios.forgery import last_deregistration, wrong_key_deregistration
from scenarios.harness.observe import HomeLinkView, Observer, mac_of
from scenarios.harness.phased import PhasedRun
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import RunFolder, kernel_notes, start_meta
from scenarios.harness.testbed import SNAPLEN, Testbed, wait_until
from topologies.addressing import CN4, CN6, HA4
from topologies.agent_configs import HA_TUNNEL
from topologies.dualstack import DualStackTopo, process_tag

MOBILE, COLOCATED = "mn1", "mn2"
REQUESTED_LIFETIME = 60
"""What the mobile nodes ask for: above the HA's maximum, so the reply must shorten it (RFC 5944 §3.8.3.1)."""
RENEWALS = 3
PHASES = (
    "omission",
    "visited-fa",
    "visited-colocated",
    "return-home",
    "lifetime",
    "forged",
    "silent-death",
)


class DeregistrationRun(PhasedRun):
    """One run of the deregistration scenario into ``run``."""

    NAME = "deregistration"

    def __init__(
        self,
        args: argparse.Namespace,
        run: RunFolder,
        progress: Progress,
        seed: int,
        features: dict[str, Any],
    ) -> None:
        super().__init__(args, run, progress, seed, features)
        self.topo = DualStackTopo(
            foreign_agents=1,
            mobile_nodes=1,
            colocated_nodes=1,
            nat=False,
            prefixes_per_node=2,
            ha_max_lifetime=args.lifetime,
            mn_lifetime=REQUESTED_LIFETIME,
            datapath=args.datapath,
            agent_priority=args.agent_priority,
            tag=process_tag(),
            overrides=args.set,
        )
        mobile, colocated = self.topo.mobile_plans[MOBILE], self.topo.mobile_plans[COLOCATED]
        self.hoa, self.hoa2 = str(mobile.home_address), str(colocated.home_address)
        self.prefixes = [str(prefix) for prefix in mobile.prefixes]
        self.addresses6 = [str(address) for address in mobile.addresses6]
        self.fa_care_of = str(self.topo.nodeSpec("fa1").agent_config["foreign_agent"]["care_of_addresses"][0])  # type: ignore[index]
        self.observer: Observer | None = None

    # -- frame ---------------------------------------------------------------------------------------------

    def run_phases(self, bed: Testbed) -> None:
        if self.args.no_pcap:
            self.capture_home_link(bed)
        self.drive(bed)

    def render(self) -> DeregistrationResult:
        return render_deregistration(self.run.path)

    def summary(self, result: DeregistrationResult) -> list[str]:
        return [verdict_lines(result)]

    def write_meta_start(self) -> None:
        args, topo = self.args, self.topo
        self.run.write_meta(
            **start_meta("deregistration", args, self.seed, self.features),
            dwell=args.dwell,
            pcap=True,  # the HA's home link at least (--no-pcap: only that one)
            pcap_all=not args.no_pcap,
            mobile_node=MOBILE,
            colocated_node=COLOCATED,
            home_agent="ha",
            foreign_agent="fa1",
            home_address=self.hoa,
            colocated_home_address=self.hoa2,
            prefixes=self.prefixes,
            addresses6=self.addresses6,
            fa_care_of=self.fa_care_of,
            home_agent_address=str(HA4.ip),
            ha_max_lifetime=args.lifetime,
            requested_lifetime=REQUESTED_LIFETIME,
            phases=list(PHASES),
            flows=[flow.name for flow in self.flows()],
            topology_tag=topo.tag,
            bridges=sorted(topo.switches()),
            settle_timeout=args.settle_timeout,
        )
        for note in kernel_notes(self.features):
            self.progress.say(note)

    def capture_home_link(self, bed: Testbed) -> None:
        """With --no-pcap the HA's home link is still captured: the verdicts read what the HA sent into
        tunnels from it, and the replay phase takes a real deregistration from it."""
        path = self.run.pcap("ha", "ha-eth0")
        argv = ["tcpdump", "-i", "ha-eth0", "-w", str(path), "-U", "-n", "-s", str(SNAPLEN)]
        process = bed.node("ha").start_process(
            argv, self.run.log("tcpdump-ha-ha-eth0"), ready=b"tcpdump: listening", ready_on="stderr"
        )
        bed.captures.append(process)  # the testbed stops it with the others

    # -- the run -------------------------------------------------------------------------------------------

    def drive(self, bed: Testbed) -> None:
        self.observer = Observer(
            bed,
            HomeLinkView("ha", "ha-eth0", HA_TUNNEL, "r0", "r0-home", ("fa1",)),
            [self.hoa, self.hoa2],
        )
        bed.trace.emit(
            TraceEvent.MACS,
            ha=mac_of(bed.node("ha"), "ha-eth0"),
            mn1=mac_of(bed.node(MOBILE), f"{MOBILE}-eth0"),
        )
        self.expect(
            "co-located mn2 registers", self.wait(lambda: self.registered(COLOCATED), "mn2 registered")
        )
        self.move("fa1")
        bed.start_probes(self.flows(), self.args.rate)
        self.progress.say(f"probes running: {', '.join(flow.name for flow in self.flows())}")
        time.sleep(self.args.dwell)
        for phase in PHASES:
            bed.trace.emit(TraceEvent.PHASE_STARTED, phase=phase)
            self.progress.say(f"phase {phase}")
            getattr(self, "phase_" + phase.replace("-", "_"))(bed)
            bed.trace.emit(TraceEvent.PHASE_FINISHED, phase=phase)
        bed.stop_probes()

    def phase_omission(self, bed: Testbed) -> None:
        """RFC 5454 §3.8: re-register without prefix B; then with it again."""
        kept, omitted = self.prefixes
        self.mark("omit_sent", prefix=omitted)
        bed.ask(MOBILE, "set-prefixes", prefixes=[kept])
        self.wait(lambda: self.prefixes_at_ha() == [kept], f"HA keeps only {kept}")
        time.sleep(self.args.dwell)
        self.snapshot("omission", "omitted")
        self.mark("readd_sent", prefix=omitted)
        bed.ask(MOBILE, "set-prefixes", prefixes=[kept, omitted])
        self.wait(lambda: self.prefixes_at_ha() == sorted([kept, omitted]), "HA has both prefixes again")
        time.sleep(self.args.dwell)
        self.snapshot("omission", "restored")

    def phase_visited_fa(self, bed: Testbed) -> None:
        """RFC 5944 §3.6.1.2: lifetime 0 from FA1's care-of address, then register again."""
        self.mark("deregister_sent", mobile=MOBILE)
        bed.ask(MOBILE, "deregister")
        self.wait(lambda: self.binding(self.hoa) is None, "HA drops mn1's binding")
        self.observe_gone("visited-fa")
        self.mark("register_sent", mobile=MOBILE)
        bed.ask(MOBILE, "register")
        self.wait(lambda: self.registered(MOBILE), "mn1 registered again")
        time.sleep(self.args.dwell)

    def phase_visited_colocated(self, bed: Testbed) -> None:
        """RFC 5944 §3.6.1.2 from a co-located care-of address (mn2 stays deregistered)."""
        self.mark("deregister_sent", mobile=COLOCATED)
        bed.ask(COLOCATED, "deregister")
        self.wait(lambda: self.binding(self.hoa2) is None, "HA drops mn2's binding")
        self.observe_gone("visited-colocated")

    def phase_return_home(self, bed: Testbed) -> None:
        """RFC 5944 §3.6.1.2, §4.6: home, CoA = HoA, lifetime 0, gratuitous ARP; caches not flushed."""
        self.move("home")
        self.wait(lambda: self.binding(self.hoa) is None, "HA drops mn1's binding at home")
        time.sleep(0.5)
        self.snapshot("return-home", "home", mn1_mac=mac_of(bed.node(MOBILE), f"{MOBILE}-eth0"))
        time.sleep(self.args.dwell)

    def phase_lifetime(self, bed: Testbed) -> None:
        """RFC 5944 §3.8.3.1: the granted lifetime is the HA's maximum; the MN renews before expiry."""
        self.move("fa1")
        self.snapshot("lifetime", "registered")
        self.mark("renewals_started")
        renewals = self.count_renewals(RENEWALS, timeout=(RENEWALS + 1) * self.args.lifetime + 2)
        self.mark("renewals_finished", renewals=renewals)
        self.snapshot("lifetime", "renewed", renewals_seen=renewals)

    def phase_forged(self, bed: Testbed) -> None:
        """RFC 5944 §3.8.2.1 and §5.7: a wrong key gets 131, a replayed deregistration 133."""
        seen_until = time.time()  # the capture the attacker replays from ends here
        self.snapshot("forged", "before")
        binding = self.binding(self.hoa) or {}
        care_of = IPv4Address(str(binding.get("care_ofs", [{}])[0].get("care_of", self.fa_care_of)))
        spi = self.topo.mobile_plans[MOBILE].spi
        forged = wrong_key_deregistration(IPv4Address(self.hoa), HA4.ip, care_of, spi)
        self.mark("forged_reply", kind="wrong-key", **self.send_from_correspondent(forged))
        self.snapshot("forged", "after-wrong-key")
        captured = last_deregistration(self.run.pcap("ha", "ha-eth0"), IPv4Address(self.hoa), seen_until)
        if self.expect("a deregistration of mn1 was captured on the home link", captured is not None):
            assert captured is not None
            self.mark("forged_reply", kind="replay", **self.send_from_correspondent(captured))
        self.snapshot("forged", "after-replay")
        time.sleep(self.args.dwell)

    def phase_silent_death(self, bed: Testbed) -> None:
        """The MN dies without a word (SIGKILL); the HA keeps its binding until the lifetime runs out."""
        self.count_renewals(1, timeout=self.args.lifetime + 1, settle=0.0)  # die with a fresh binding
        binding = self.binding(self.hoa) or {}
        process = bed.agents[MOBILE]
        process.popen.kill()  # our own handle: SIGKILL, no deregistration
        self.mark(
            "killed",
            mobile=MOBILE,
            pid=process.pid,
            remaining=binding.get("care_ofs", [{}])[0].get("remaining"),
        )
        self.progress.say(f"mn1 killed; the HA should keep its binding for up to {self.args.lifetime} s")
        timeout = self.args.lifetime + self.args.settle_timeout
        expired = wait_until(lambda: self.binding(self.hoa) is None, timeout, interval=0.01)
        self.expect("the dead node's binding expires", expired, "" if expired else f"bound {timeout:g} s on")
        self.mark("binding_gone_seen")
        self.observe_gone("silent-death")

    # -- helpers -------------------------------------------------------------------------------------------

    def flows(self) -> list[Any]:
        from scenarios.harness.probes import Flow

        cn4, cn6 = str(CN4.ip), str(CN6.ip)
        return [
            Flow("v4-down", "cn", MOBILE, self.hoa, 4),
            Flow("v4-up", MOBILE, "cn", cn4, 4, source=self.hoa),
            Flow("v6-down", "cn", MOBILE, self.addresses6[0], 6),
            Flow("v6b-down", "cn", MOBILE, self.addresses6[1], 6),
            Flow("c4-down", "cn", COLOCATED, self.hoa2, 4),
            Flow("v6-up", MOBILE, "cn", cn6, 6, source=self.addresses6[0]),
        ]

    def mark(self, what: str, **fields: Any) -> None:
        assert self.bed is not None
        self.bed.trace.emit(TraceEvent.STEP, what=what, **fields)

    def snapshot(self, phase: str, label: str, **extra: Any) -> None:
        assert self.observer is not None
        self.observer.snapshot(phase, label, **extra)

    def observe_gone(self, phase: str) -> None:
        """After a binding went: make the home router ask again who has the home addresses, then look."""
        assert self.observer is not None
        self.observer.forget_router_entries()
        time.sleep(1.0)  # the probe flows make the router resolve again; nobody must answer
        self.snapshot(phase, "gone")
        time.sleep(self.args.dwell)

    def move(self, to: str) -> None:
        assert self.bed is not None
        number = self.bed.move(MOBILE, to)
        if to == "home":
            settled = self.wait(lambda: self.status(MOBILE).get("at_home") is True, "mn1 at home")
        else:
            settled = self.wait(lambda: self.registered(MOBILE, self.fa_care_of), f"mn1 registered via {to}")
        self.bed.finish_move(number, settled)

    def binding(self, home_address: str) -> dict[str, Any] | None:
        assert self.bed is not None
        for binding in self.bed.ask("ha", "bindings"):
            if binding.get("home_address") == home_address:
                return dict(binding)
        return None

    def prefixes_at_ha(self) -> list[str]:
        binding = self.binding(self.hoa) or {}
        return sorted(str(entry["prefix"]) for entry in binding.get("prefixes", []))

    def count_renewals(self, wanted: int, timeout: float, settle: float = 0.5) -> int:
        """Watch the binding's remaining lifetime; each jump upwards is a renewal the HA accepted."""
        renewals, last = 0, None
        deadline = time.monotonic() + timeout
        while renewals < wanted and time.monotonic() < deadline:
            care_ofs = (self.binding(self.hoa) or {}).get("care_ofs") or [{}]
            remaining = care_ofs[0].get("remaining")
            if isinstance(remaining, int | float):
                if last is not None and remaining > last + 0.5:
                    renewals += 1
                last = remaining
            time.sleep(0.02)
        time.sleep(settle)
        return renewals

    def send_from_correspondent(self, payload: bytes) -> dict[str, Any]:
        """Run :mod:`scenarios.forge` in the correspondent's node; its JSON answer."""
        assert self.bed is not None
        argv = [sys.executable, "-m", "scenarios.forge", "--to", str(HA4.ip), "--hex", payload.hex()]
        popen = self.bed.node("cn").popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            out, err = popen.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.communicate()
            return {"error": "forge did not finish in 10 s"}
        try:
            return dict(json.loads(out.decode().strip().splitlines()[-1]))
        except (ValueError, IndexError):
            return {"error": f"forge exited {popen.returncode}: {err.decode(errors='replace').strip()[:200]}"}
