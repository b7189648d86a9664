"""The NAT traversal scenario's steps (the command is :mod:`scenarios.nat_traversal`).

It reuses the handover scenario's frame (build, probes, moves, exit codes, handover report) and adds what a
NAT needs: the visited network's DHCP (the harness gives the mobile node a private address after it arrives
and takes it away before it leaves, as a DHCP client would), captures on both sides of the NAT, and the NAT
forgetting its mapping. What happened is recorded as ``step`` events in the scenario trace; the NAT
verdicts are computed from the run folder by :mod:`reports.nat_traversal`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from agents.mip.common.trace_schema import TraceEvent
from reports import RunResult
from reports.nat_traversal import render_nat_traversal
from scenarios.handover_run import MOBILE_NODE, HandoverRun
from scenarios.harness.probes import PORTS
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import RunFolder
from scenarios.harness.testbed import SNAPLEN, Testbed, wait_until
from topologies.addressing import NAT_FA, NAT_FA_ACCESS4, NAT_FA_CARE_OF4, NAT_PRIVATE4, NAT_PUBLIC4
from topologies.dualstack import DualStackTopo, process_tag

ROUTE = ("nat", "fa1", "home")
PRIVATE_ADDRESS = f"{NAT_PRIVATE4.network.network_address + 10}/{NAT_PRIVATE4.network.prefixlen}"
"""What the private LAN's DHCP would hand the mobile node (192.168.1.10/24)."""
NAT_NODE = "nat1"


class NatTraversalRun(HandoverRun):
    """home → NAT (UDP tunnel, keepalives, a lost mapping) → FA1 (IP-in-IP) → home."""

    NAME = "nat_traversal"

    def __init__(
        self,
        args: argparse.Namespace,
        run: RunFolder,
        progress: Progress,
        seed: int,
        features: dict[str, Any],
    ) -> None:
        super().__init__(args, run, progress, seed, features, route=ROUTE, settle_timeout=args.settle_timeout)
        self.topo = DualStackTopo(
            foreign_agents=1,
            mobile_nodes=1,
            nat=True,
            datapath=args.datapath,
            agent_priority=args.agent_priority,
            tag=process_tag(),
            overrides=args.set,
            udp_keepalive=args.keepalive,
            nat_fa=args.via_fa,
        )
        self.via_fa = bool(args.via_fa)
        """RFC 3519 §4.11: the co-located address is registered through the FA behind the NAT (R flag)."""
        interface = self.topo.mobileLinks()[MOBILE_NODE].interface
        self.interface = interface

    def analyse(self) -> RunResult:
        return render_nat_traversal(self.run.path)

    def write_meta_start(self) -> None:
        super().write_meta_start()
        self.run.write_meta(
            scenario=self.NAME,
            argv=["python", "-m", "scenarios.nat_traversal", *getattr(self.args, "argv", [])],
            moves=len(ROUTE),
            keepalive=self.args.keepalive,
            nat_losses=self.args.losses,
            nat_public=str(NAT_PUBLIC4.ip),
            private_address=PRIVATE_ADDRESS.split("/")[0],
            pcap=True,
            pcap_all=not self.args.no_pcap,
            fa_care_of=self.topo.nodeSpec("fa1").agent_config["foreign_agent"]["care_of_addresses"][0],  # type: ignore[index]
            via_fa=self.via_fa,
        )
        if self.via_fa:
            self.run.write_meta(
                nat_fa={"name": NAT_FA, "access": str(NAT_FA_ACCESS4.ip), "care_of": str(NAT_FA_CARE_OF4.ip)}
            )

    # -- the run -------------------------------------------------------------------------------------------

    def drive(self, bed: Testbed) -> None:
        self.capture_nat(bed)
        home = wait_until(lambda: self.status(bed).get("at_home") is True, self.settle_timeout)
        self.expect("mobile node starts at home", home, "" if home else str(self.status(bed)))
        bed.start_probes(self.flows(), self.args.rate)
        self.progress.say(f"probes running at {self.args.rate:g} packets/s each")
        time.sleep(self.args.dwell)
        self.move(bed, "nat", True)
        self.quiet(bed, 2.5 * self.args.keepalive + 1.0)
        for _ in range(self.args.losses):
            self.lose_nat_mapping(bed)
            time.sleep(self.args.dwell)
        self.move(bed, "fa1", True)
        self.move(bed, "home", True)
        bed.stop_probes()

    def move(
        self, bed: Testbed, to: str, carrier: bool, while_down: Callable[[], None] | None = None
    ) -> None:
        """The handover scenario's move, with the private LAN's DHCP client: it drops the lease when the
        carrier goes (as dhcpcd does), and gets an address and a default route after arriving."""
        if bed.attachment[MOBILE_NODE] == "nat":
            while_down = lambda: self.dhcp(bed, bind=False)  # noqa: E731
        if to != "nat":
            super().move(bed, to, carrier, while_down)
            return
        if self.via_fa:
            # the lease's address is in place when the carrier returns (a renewed lease): the MN solicits
            # with its co-located address in hand and waits for the FA's answer (R, U) before registering
            # (§4.11). The default route follows the carrier (a route used while the carrier is down leaves
            # a neighbour entry that only resolves a second later).
            number = bed.move(
                MOBILE_NODE,
                to,
                carrier_events=carrier,
                while_down=lambda: self.dhcp(bed, bind=True, route=False),
            )
            moved_at = time.monotonic()
            self.dhcp(bed, bind=True, address=False)
        else:
            number = bed.move(MOBILE_NODE, to, carrier_events=carrier)
            moved_at = time.monotonic()
            self.dhcp(bed, bind=True)
        settled = wait_until(lambda: self.settled(bed, to), self.settle_timeout)
        took = (time.monotonic() - moved_at) * 1000
        bed.finish_move(number, settled)
        detail = f"settled in {took:.0f} ms" if settled else f"not within {self.settle_timeout:g} s"
        self.expect(f"handover {number} → nat settles", settled, detail)
        self.progress.say(f"handover {number}: → nat (private address, UDP tunnel): {detail}")
        time.sleep(self.args.dwell)

    def settled(self, bed: Testbed, to: str) -> bool:
        if to != "nat":
            return super().settled(bed, to)
        status = self.status(bed)
        registered = (
            status.get("state") == "registered" and status.get("care_of") == PRIVATE_ADDRESS.split("/")[0]
        )
        if not self.via_fa:
            return registered
        # through the FA (R flag), and the HA has learnt the NAT's port from the first keepalive (§4.6)
        via = status.get("foreign_agent") == str(NAT_FA_ACCESS4.ip)
        return registered and via and self.nat_port(bed) is not None

    def dhcp(self, bed: Testbed, *, bind: bool, address: bool = True, route: bool = True) -> None:
        """What the private LAN's DHCP client would do: the address and default route, or their release
        (``address`` / ``route`` False: that part is left out, done by another call)."""
        node, gateway = bed.node(MOBILE_NODE), NAT_PRIVATE4.ip
        if bind and not address:
            wait_until(lambda: "default" not in node.cmd("ip -4 route show default"), self.settle_timeout)
            commands = [f"ip route add default via {gateway} dev {self.interface} onlink"]
        elif bind and not route:
            commands = [f"ip addr add {PRIVATE_ADDRESS} dev {self.interface}"]
        elif bind:
            # a DHCP exchange takes a moment: by then the node has dropped the previous link's default route
            # (its own reaction to the carrier loss), which would otherwise stand in the way of this one
            wait_until(lambda: "default" not in node.cmd("ip -4 route show default"), self.settle_timeout)
            commands = [  # the route first (on-link): the address's arrival then finds the way out there
                f"ip route add default via {gateway} dev {self.interface} onlink",
                f"ip addr add {PRIVATE_ADDRESS} dev {self.interface}",
            ]
        else:
            commands = [
                f"ip route del default via {gateway} dev {self.interface}",
                f"ip addr del {PRIVATE_ADDRESS} dev {self.interface}",
            ]
        for command in commands:
            output = node.cmd(command).strip()
            if output:
                self.expect(f"DHCP on the private LAN: {command}", False, output)
        if address:
            bed.trace.emit(
                TraceEvent.STEP, what="dhcp_bound" if bind else "dhcp_released", address=PRIVATE_ADDRESS
            )

    def quiet(self, bed: Testbed, seconds: float) -> None:
        """No traffic through the tunnel for ``seconds``: the probes' packets are dropped where they are
        sent (in the correspondent and the mobile node), so the keepalives must keep the mapping alive
        (RFC 3519 §4.9: sent when nothing went to the HA for K seconds)."""
        rules = [f"OUTPUT -p udp --dport {port} -j DROP" for port in PORTS.values()]
        nodes = [bed.node("cn"), bed.node(MOBILE_NODE)]
        bed.trace.emit(TraceEvent.STEP, what="quiet_started")
        self.progress.say(f"behind the NAT, no traffic for {seconds:g} s: only keepalives")
        try:
            for node in nodes:
                for tool in ("iptables", "ip6tables"):
                    for rule in rules:
                        node.cmd(f"{tool} -I {rule}")
            time.sleep(seconds)
        finally:
            for node in nodes:
                for tool in ("iptables", "ip6tables"):
                    for rule in rules:
                        node.cmd(f"{tool} -D {rule}")
            bed.trace.emit(TraceEvent.STEP, what="quiet_finished")
        time.sleep(self.args.dwell)

    def lose_nat_mapping(self, bed: Testbed) -> None:
        """The NAT forgets the mobile node's mapping (as after a NAT reboot or an idle timeout); its next
        packet gets a new, random public port (MASQUERADE --random)."""
        before = self.nat_port(bed)
        bed.node(NAT_NODE).cmd(f"conntrack -D -s {PRIVATE_ADDRESS.split('/')[0]} >/dev/null 2>&1")
        bed.trace.emit(TraceEvent.STEP, what="nat_mapping_lost", port=before)  # gone from here on
        self.progress.say(f"NAT mapping lost (public port {before}); waiting for the MN to notice")
        moved = wait_until(lambda: self.nat_port(bed) not in (None, before), self.settle_timeout)
        after = self.nat_port(bed)
        bed.trace.emit(TraceEvent.STEP, what="nat_rebound", port=after)
        detail = (
            f"public port {before} → {after}" if moved else f"still {after} after {self.settle_timeout:g} s"
        )
        self.expect("the HA moves the binding to the NAT's new port", moved, detail)
        self.progress.say(f"binding moved: {detail}")

    def nat_port(self, bed: Testbed) -> int | None:
        """The UDP port of the mobile node's binding at the HA (None: no UDP binding)."""
        home = str(self.topo.mobile_plans[MOBILE_NODE].home_address)
        try:
            bindings = bed.ask("ha", "bindings")
        except (OSError, RuntimeError):
            return None
        for binding in bindings:
            if binding.get("home_address") == home:
                ports = [entry.get("port") for entry in binding.get("care_ofs", [])]
                return next((int(port) for port in ports if port), None)  # 0: half bound, no port yet
        return None

    def capture_nat(self, bed: Testbed) -> None:
        """Both sides of the NAT: the verdicts read what crosses its public and its private link; with
        ``--via-fa`` also the FA's access link (the MN's requests to it, its advertisements)."""
        captures = [(NAT_NODE, f"{NAT_NODE}-pub"), (NAT_NODE, f"{NAT_NODE}-priv")]
        if self.via_fa and self.args.no_pcap:  # otherwise every agent interface is captured already
            captures.append((NAT_FA, f"{NAT_FA}-acc"))
        for node, interface in captures:
            path = self.run.pcap(node, interface)
            argv = ["tcpdump", "-i", interface, "-w", str(path), "-U", "-n", "-s", str(SNAPLEN)]
            process = bed.node(node).start_process(
                argv,
                self.run.log(f"tcpdump-{node}-{interface}"),
                ready=b"tcpdump: listening",
                ready_on="stderr",
            )
            bed.captures.append(process)
