"""The security scenario's steps (the command is :mod:`scenarios.security`).

The scenario only acts and records: phase marks, what each attack sent and the HA's counters before and
after it (``mipctl status``) go to ``traces/scenario.jsonl`` as ``step`` events; every verdict is computed
afterwards from the run folder by :mod:`reports.security`.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from agents.mip.common.trace_schema import TraceEvent
from agents.mip.wire.identification import timestamp_identification
from reports.metrics import RunResult
from reports.security import render_security
from reports.table import verdict_lines
from scenarios.attack import MAX_COUNT as ATTACK_MAX_COUNT
from scenarios.forgery import last_deregistration, wrong_key_deregistration
from scenarios.harness.phased import PhasedRun
from scenarios.harness.probes import Flow
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import RunFolder, start_meta
from scenarios.harness.testbed import Testbed
from scenarios.security import PHASES
from scenarios.security_faults import phase_fa_restart, phase_ha_restart, phase_loss
from scenarios.security_nat import phase_nat_loss
from scenarios.spoofing import Target, bad_auth_datagram, garbage_datagram, spoofs, wrong_key_registration
from topologies import ingress
from topologies.addressing import CN4, CN6, HA4
from topologies.dualstack import DualStackTopo, process_tag
from topologies.overrides import parse_override

MOBILE, VISITED = "mn1", "mn2"
REQUESTED_LIFETIME = 60
MAX_FLOOD = 4_000_000
RATE_PER_SENDER = 50_000.0
"""Datagrams per second one attacker process is asked for (see :meth:`SecurityRun.attack`)."""
FLOODS = ("garbage", "bad-auth", "mixed")
HA_INTERFACE = "ha-eth0"
REGISTRATION_PORT = 434
DRAIN_WAIT = 10.0
"""Seconds at most to wait, after a flood, for the HA to read what its sockets still queue."""
DRAIN_POLL = 0.25
RENEWAL_FRACTION = 0.5
"""The MN renews at half its granted lifetime (RFC 5944 §3.6.1: it may re-register before the lifetime
runs out), not the default 0.75: with the HA's 3 s the renewal margin is 1.5 s, room for a reply the
flood delays by up to 1.5 s or for one retransmission (1 s later), where 0.75 left 0.75 s and no
retransmission in time (the MN counts its lifetime from when it sent the request). ``--set
mn1.mobile_node.renewal_fraction=...`` changes it; the margin is recorded in meta.json."""


def udp_counters(snmp: str) -> dict[str, int] | None:
    """The ``Udp:`` header and value rows of ``/proc/net/snmp`` as a dict; None when they are not there."""
    rows = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2 or len(rows[0]) != len(rows[1]):
        return None
    try:
        return {name: int(value) for name, value in zip(rows[0], rows[1], strict=True)}
    except ValueError:
        return None


def udp_queued(tables: str, port: int) -> int | None:
    """Bytes waiting in the receive queues of the UDP sockets bound to local ``port`` (rows of
    ``/proc/net/udp`` and ``/proc/net/udp6``: ``sl local rem st tx_queue:rx_queue ...``, hex); None
    when no such socket is listed."""
    total, found = 0, False
    for line in tables.splitlines():
        fields = line.split()
        if len(fields) < 5 or ":" not in fields[1] or ":" not in fields[4]:
            continue
        try:
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            rx_queue = int(fields[4].split(":", 1)[1], 16)
        except ValueError:
            continue  # the header row
        if local_port == port:
            total, found = total + rx_queue, True
    return total if found else None


RENEWAL_OVERRIDE = parse_override(f"{MOBILE}.mobile_node.renewal_fraction={RENEWAL_FRACTION}")


class SecurityRun(PhasedRun):
    """One run of the security scenario into ``run``."""

    NAME = "security"
    OUTPUTS = "report.md, pcaps/"

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
            nat="nat-loss" in args.phases,
            udp_keepalive=args.keepalive if "nat-loss" in args.phases else None,
            ha_max_lifetime=args.lifetime,
            mn_lifetime=REQUESTED_LIFETIME,
            datapath=args.datapath,
            agent_priority=args.agent_priority,
            tag=process_tag(),
            overrides=[RENEWAL_OVERRIDE, *args.set],
            ha_journal=str(run.path / "ha-journal.jsonl"),
            ingress_filter=not args.no_ingress_filter,
        )
        if args.no_kernel_steering:  # the baseline: one UDP 434 socket, as before issue 16's steering
            self.topo.nodeSpec("ha").agent_config["runtime"]["kernel_steering"] = False  # type: ignore[index]
        self.phases = [phase for phase in PHASES if phase in args.phases]
        mobile = self.topo.mobile_plans[MOBILE]
        self.hoa, self.spi = str(mobile.home_address), mobile.spi
        self.address6 = str(mobile.addresses6[0])
        self.fa_care_of = str(self.topo.nodeSpec("fa1").agent_config["foreign_agent"]["care_of_addresses"][0])  # type: ignore[index]

    def capture_all(self) -> bool:
        return True  # the verdicts read the captures

    def render(self) -> RunResult:
        return render_security(self.run.path)

    def summary(self, result: RunResult) -> list[str]:
        return [verdict_lines(result)]

    def write_meta_start(self) -> None:
        args = self.args
        self.run.write_meta(
            **start_meta("security", args, self.seed, self.features),
            dwell=args.dwell,
            pcap=True,
            mobile_node=MOBILE,
            home_agent="ha",
            foreign_agent="fa1",
            home_address=self.hoa,
            address6=self.address6,
            fa_care_of=self.fa_care_of,
            home_agent_address=str(HA4.ip),
            correspondent4=str(CN4.ip),
            ha_max_lifetime=args.lifetime,
            spoof_count=args.spoof_count,
            flood_count=args.flood_count,
            flood_rate=args.flood_rate,
            flood_renewal_margin_s=self.renewal_margin(),
            mixed_rate=args.mixed_rate,
            loss_legs=args.loss_legs,
            keepalive=args.keepalive,
            kernel_steering=not args.no_kernel_steering,
            ingress_filter=not args.no_ingress_filter,
            ingress_filter_interfaces=list(self.topo.nodeSpec("r0").ingress_filter),
            ingress_filter_lifted_for=[],  # the phases it was lifted for, added as it is (edge_lifted)
            forged_share=args.forged_share,
            phases=self.phases,
            loss=args.loss,
            loss_trials=args.loss_trials,
            flows=[flow.name for flow in self.flows()],
            topology_tag=self.topo.tag,
        )

    def renewal_margin(self) -> float:
        """Seconds between the MN's renewal and the end of its granted lifetime (RFC 5944 §3.6.1)."""
        config: dict[str, Any] = self.topo.nodeSpec(MOBILE).agent_config["mobile_node"]  # type: ignore[index,assignment]
        granted = min(float(self.args.lifetime), float(config.get("lifetime", REQUESTED_LIFETIME)))
        return round(granted * (1.0 - float(config.get("renewal_fraction", 0.75))), 3)

    def drive(self, bed: Testbed) -> None:
        self.wait(lambda: self.registered(VISITED), "mn2 registered (co-located, the visited network)")
        number = bed.move(MOBILE, "fa1")
        bed.finish_move(number, self.wait(lambda: self.registered(MOBILE, self.fa_care_of), "mn1 via fa1"))
        bed.start_probes(self.flows(), self.args.rate)
        time.sleep(self.args.dwell)
        faults = {
            "loss": phase_loss,
            "nat-loss": phase_nat_loss,
            "ha-restart": phase_ha_restart,
            "fa-restart": phase_fa_restart,
        }
        for phase in self.phases:
            bed.trace.emit(TraceEvent.PHASE_STARTED, phase=phase)
            self.progress.say(f"phase {phase}")
            if phase in faults:
                faults[phase](self, bed)
            elif phase == "spoof":
                with self.edge_lifted("spoof"):
                    self.phase_spoof(bed)
            else:
                getattr(self, "phase_" + phase.replace("-", "_"))(bed)
            bed.trace.emit(TraceEvent.PHASE_FINISHED, phase=phase)
        bed.stop_probes()

    # -- phases -----------------------------------------------------------------------------------------

    def phase_spoof(self, bed: Testbed) -> None:
        """RFC 3024 §4.3.2, RFC 5454 §4: spoofed reverse-tunnel packets, each kind in its own second (the
        security log admits 21 lines/s: each kind gets its own trace lines)."""
        target = Target(
            HA4.ip,
            IPv4Address(self.hoa),
            IPv6Address(self.address6),
            IPv4Address(self.fa_care_of),
            CN4.ip,
            CN6.ip,
            CN4.ip,
        )
        for spoof in spoofs(target, "cn", VISITED):
            before = self.datapath_drops()
            result = self.attack(
                spoof.vantage, f"spoof-{spoof.name}", [spoof.packet], self.args.spoof_count, 200
            )
            time.sleep(max(1.1, self.args.dwell))
            after = self.datapath_drops()
            self.mark(
                "spoof",
                kind=spoof.name,
                vantage=spoof.vantage,
                description=spoof.what,
                drops_before=before,
                drops_after=after,
                **result,
            )

    def phase_forged(self, bed: Testbed) -> None:
        """RFC 5944 §3.8.2.1 and §5.7: wrong keys get 131, a replayed deregistration 133; binding kept."""
        self.mark("deregister_sent", mobile=MOBILE)
        bed.ask(MOBILE, "deregister")
        self.wait(lambda: self.binding() is None, "mn1 deregistered (for a deregistration to replay)")
        bed.ask(MOBILE, "register")
        self.wait(lambda: self.registered(MOBILE, self.fa_care_of), "mn1 registered again")
        time.sleep(0.5)
        seen_until = time.time()
        self.mark("binding_seen", label="before", care_ofs=self.care_ofs(), counters=self.counters())
        hoa, ha = IPv4Address(self.hoa), HA4.ip
        care_of = IPv4Address(self.fa_care_of)
        attacks: list[tuple[str, bytes | None]] = [
            ("wrong-key-deregistration", wrong_key_deregistration(hoa, ha, care_of, self.spi)),
            (
                "wrong-key-registration",
                wrong_key_registration(hoa, ha, CN4.ip, self.spi, timestamp_identification(time.time(), 5)),
            ),
            ("replay", last_deregistration(self.run.pcap("ha", "ha-eth0"), hoa, seen_until)),
        ]
        for kind, payload in attacks:
            if payload is None:
                self.mark("forged_reply", kind=kind, error="no deregistration captured on the home link")
                continue
            self.mark("forged_reply", kind=kind, **self.forge(payload))
        time.sleep(self.args.dwell)
        self.mark("binding_seen", label="after", care_ofs=self.care_ofs(), counters=self.counters())

    def phase_flood(self, bed: Testbed) -> None:
        """RFC 5944 §3.8.2.1: floods of garbage, of bad-authenticator requests and of both mixed (a share
        of each, ``--forged-share``, forging the FA's address, the source the MN's renewals come from)
        while the MN renews its short binding."""
        self.floods(self.args.forged_share, "")

    def phase_flood_forged(self, bed: Testbed) -> None:
        """The same floods with every datagram forging FA1's address (issue 16 review): without the
        ingress filter they all go to the HA's priority socket, with the real renewals FA1 relays."""
        self.floods(1.0, "forged-")

    def floods(self, share: float, prefix: str) -> None:
        """Each flood lasts ``--flood-count / --flood-rate`` seconds; what reached the HA is counted at its
        interface (rx packets) as well as by its counters, what r0's ingress filter dropped by its rules."""
        ha, hoa, care_of = HA4.ip, IPv4Address(self.hoa), IPv4Address(self.fa_care_of)
        forged = round(100 * share)  # of every 100 datagrams, these forge FA1's address
        sources = [care_of if (n * 37) % 100 < forged else CN4.ip for n in range(100)]
        garbage = [garbage_datagram(sources[n], ha, n) for n in range(100)]
        bad_auth = [
            bad_auth_datagram(
                sources[n], ha, hoa, care_of, self.spi, timestamp_identification(time.time(), n)
            )
            for n in range(100)
        ]
        packets = {
            "garbage": garbage,
            "bad-auth": bad_auth,
            "mixed": [packet for pair in zip(garbage, bad_auth, strict=True) for packet in pair],
        }
        args = self.args
        seconds = args.flood_count / args.flood_rate
        for base in FLOODS:
            kind = prefix + base
            rate = args.mixed_rate if base == "mixed" else args.flood_rate
            count = max(100, min(MAX_FLOOD, round(rate * seconds)))
            before, rx_before = self.status("ha"), self.interface_rx("ha", HA_INTERFACE)
            udp_before = self.udp_stats("ha")
            self.mark(
                "flood_started",
                kind=kind,
                rate=rate,
                count=count,
                forged_share=share,
                ha_rx_packets=rx_before,
                udp=udp_before,
                edge_dropped=self.edge_dropped(),
            )
            result = self.attack("cn", f"flood-{kind}", packets[base], count, rate)
            self.mark(
                "flood_finished",
                kind=kind,
                ha_rx_packets=self.interface_rx("ha", HA_INTERFACE),
                edge_dropped=self.edge_dropped(),
                **result,
            )
            time.sleep(max(1.0, args.dwell))
            drained, waited = self.drained("ha")
            after = self.status("ha")
            self.mark(
                "flood_counters",
                kind=kind,
                drained=drained,
                drain_wait_s=waited,
                before=before.get("counters", {}),
                after=after.get("counters", {}),
                steering_before=before.get("steering"),
                steering_after=after.get("steering"),
                udp_before=udp_before,
                udp_after=self.udp_stats("ha"),
            )
        time.sleep(args.lifetime)  # a renewal lost in the flood shows: expiry, then a gap in traffic
        label = f"after-{prefix}flood"
        self.mark("binding_seen", label=label, care_ofs=self.care_ofs(), counters=self.counters())

    def drained(self, node: str) -> tuple[bool, float]:
        """Wait (at most :data:`DRAIN_WAIT`) until ``node`` has read what its UDP 434 sockets queued
        during a flood: their receive queues empty and its steering read counters still between two
        looks :data:`DRAIN_POLL` apart, so that the "after" counters hold every datagram the HA will read.
        Returns whether it drained and how long the wait took (seconds)."""
        assert self.bed is not None
        started = time.monotonic()
        previous: Any = None
        while True:
            steering = self.status(node).get("steering") or {}
            reads = tuple(steering.get(key) for key in ("priority_received", "general_received"))
            tables = self.bed.node(node).cmd("cat /proc/net/udp /proc/net/udp6")
            queued = udp_queued(tables, REGISTRATION_PORT)
            waited = time.monotonic() - started
            if not queued and reads == previous:
                return True, round(waited, 3)
            if waited >= DRAIN_WAIT:
                return False, round(waited, 3)
            previous = reads
            time.sleep(DRAIN_POLL)

    def edge_dropped(self) -> int | None:
        """Packets r0's ingress filter dropped so far (None without the filter)."""
        assert self.bed is not None
        if self.args.no_ingress_filter:
            return None
        router = self.bed.node("r0")
        return ingress.dropped("\n".join(router.cmd(command) for command in ingress.listing_commands()))

    @contextmanager
    def edge_lifted(self, phase: str) -> Iterator[None]:
        """r0's ingress filter off meanwhile (the spoof phase tests the HA's own source checks), back on
        after; both marked in the scenario trace, ``phase`` added to meta.json's
        ``ingress_filter_lifted_for`` once lifted (nothing when there is no filter)."""
        assert self.bed is not None
        interfaces = self.topo.nodeSpec("r0").ingress_filter
        router = self.bed.node("r0")
        if not interfaces:
            yield
            return
        for command in ingress.commands("-D", interfaces):
            router.cmd(command)
        self.mark("ingress_filter", state="lifted", dropped=self.edge_dropped())
        lifted = list(self.run.meta.get("ingress_filter_lifted_for") or [])
        self.run.write_meta(ingress_filter_lifted_for=[*lifted, phase])
        try:
            yield
        finally:
            for command in ingress.commands("-A", interfaces):
                router.cmd(command)
            self.mark("ingress_filter", state="restored", dropped=self.edge_dropped())

    def interface_rx(self, node: str, interface: str) -> int | None:
        """Packets ``interface`` of ``node`` received so far (sysfs, counted by the kernel as they arrive:
        the rate that reached the HA, whatever its socket then dropped)."""
        assert self.bed is not None
        text = self.bed.node(node).cmd(f"cat /sys/class/net/{interface}/statistics/rx_packets").strip()
        return int(text) if text.isdigit() else None

    def udp_stats(self, node: str) -> dict[str, int] | None:
        """The kernel's UDP counters in ``node``'s namespace (``/proc/net/snmp``, ``Udp:`` rows): its
        ``RcvbufErrors`` are the datagrams dropped because a socket's queue was full."""
        assert self.bed is not None
        return udp_counters(self.bed.node(node).cmd("cat /proc/net/snmp"))

    # -- helpers ----------------------------------------------------------------------------------------

    def flows(self) -> list[Flow]:
        cn4, cn6 = str(CN4.ip), str(CN6.ip)
        return [
            Flow("v4-down", "cn", MOBILE, self.hoa, 4),
            Flow("v4-up", MOBILE, "cn", cn4, 4, source=self.hoa),
            Flow("v6-down", "cn", MOBILE, self.address6, 6),
            Flow("v6-up", MOBILE, "cn", cn6, 6, source=self.address6),
        ]

    def mark(self, what: str, **fields: Any) -> None:
        assert self.bed is not None
        self.bed.trace.emit(TraceEvent.STEP, what=what, **fields)

    def datapath_drops(self) -> dict[str, int]:
        return dict(self.status("ha").get("datapath", {}).get("drops", {}))

    def counters(self) -> dict[str, int]:
        return dict(self.status("ha").get("counters", {}))

    def binding(self) -> dict[str, Any] | None:
        assert self.bed is not None
        for binding in self.bed.ask("ha", "bindings"):
            if binding.get("home_address") == self.hoa:
                return dict(binding)
        return None

    def care_ofs(self) -> list[list[Any]]:
        return sorted(
            [str(c.get("care_of")), c.get("port")] for c in (self.binding() or {}).get("care_ofs", [])
        )

    def attack(self, node: str, name: str, packets: list[bytes], count: int, rate: float) -> dict[str, Any]:
        """Run :mod:`scenarios.attack` inside ``node``: ``count`` packets at ``rate``; what was sent.
        One attacker process sends up to :data:`RATE_PER_SENDER`/s and :data:`ATTACK_MAX_COUNT` packets;
        faster or longer floods are split over several processes at once (this machine's Python raw
        socket tops out around 75,000/s)."""
        path = self.run.path / "attacks" / f"{name}.hex"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(packet.hex() + "\n" for packet in packets))
        senders = max(1, math.ceil(rate / RATE_PER_SENDER), math.ceil(count / ATTACK_MAX_COUNT))
        limit = count / rate + 10
        argvs = [self.attacker(path, count // senders + (index < count % senders), rate / senders, limit)
                 for index in range(senders)]  # fmt: skip
        results = self.run_all(node, argvs, limit + 5)
        errors = [result["error"] for result in results if "error" in result]
        if errors:
            return {"error": "; ".join(errors)}
        return {
            "sent": sum(int(result["sent"]) for result in results),
            "seconds": max(float(result["seconds"]) for result in results),
            "errors": sum(int(result.get("errors", 0)) for result in results),
            "senders": senders,
        }

    def forge(self, payload: bytes) -> dict[str, Any]:
        argv = [sys.executable, "-m", "scenarios.forge", "--to", str(HA4.ip), "--hex", payload.hex()]
        return self.run_in("cn", argv, 10)

    @staticmethod
    def attacker(path: Any, count: int, rate: float, limit: float) -> list[str]:
        return [
            sys.executable, "-m", "scenarios.attack", "--packets", str(path), "--count", str(count),
            "--rate", f"{rate:g}", "--max-seconds", f"{limit:g}",
        ]  # fmt: skip

    def run_in(self, node: str, argv: list[str], timeout: float) -> dict[str, Any]:
        return self.run_all(node, [argv], timeout)[0]

    def run_all(self, node: str, argvs: list[list[str]], timeout: float) -> list[dict[str, Any]]:
        """Run every ``argv`` in ``node`` at once; each one's JSON answer (or an error)."""
        assert self.bed is not None
        popens = []
        try:
            for argv in argvs:
                popens.append(
                    self.bed.node(node).popen(
                        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                    )
                )
            deadline = time.monotonic() + timeout
            return [self._answer(popen, argv, deadline) for popen, argv in zip(popens, argvs, strict=False)]
        except BaseException:  # Ctrl-C or SIGTERM: the attackers stop with the run, not after it
            for popen in popens:
                if popen.poll() is None:
                    popen.kill()  # our own handles
                popen.wait()
            raise

    @staticmethod
    def _answer(popen: Any, argv: list[str], deadline: float) -> dict[str, Any]:
        try:
            out, err = popen.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            popen.kill()  # our own handle
            popen.communicate()
            return {"error": f"{argv[2]} did not finish in time"}
        try:
            return dict(json.loads(out.decode().strip().splitlines()[-1]))
        except (ValueError, IndexError):
            return {
                "error": f"{argv[2]} exited {popen.returncode}: {err.decode(errors='replace').strip()[:200]}"
            }
