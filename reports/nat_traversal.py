"""Verdicts and figures of a NAT traversal run (``scenarios.nat_traversal``), from its folder only.

The moves (home → NAT → FA1 → home) are judged and decomposed like the handover scenario's
(:func:`reports.render.render`: interruption per move and flow, handovers.csv, plots, report.md); this adds
what RFC 3519 asks for, read from the traces, the probes and the captures on both sides of the NAT: the
UDP binding, both families through the NAT, what crosses its public side, keepalives, the recovery after
the NAT forgot the mapping, and the return to plain IP-in-IP.
"""

from __future__ import annotations

import itertools
import math
import socket
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from agents.mip.common.config import MOBILE_IP_PORT
from agents.mip.common.trace_schema import TraceEvent
from reports.metrics import RunResult, Verdict
from reports.nat_via_fa import ViaForeignAgent
from reports.pcapread import ipv4_packets
from reports.probes import max_gap_ms, received_between
from reports.render import _write, metrics_json, render
from reports.rundir import Run, load_run

FLOWS = ("v4-down", "v4-up", "v6-down", "v6-up")
TUNNEL_DATA = 4
TUNNEL_APPLIED = 0.05
"""Seconds after the MN's ``tunnel_up`` trace line (written just before the datapath applies it) from
which nothing of the MN's may leave the NAT except UDP to or from port 434."""


def render_nat_traversal(run_dir: Path) -> RunResult:
    """Render the handover outputs, then judge the NAT part and add it to metrics.json and report.md."""
    handover = render(Path(run_dir))
    run = load_run(Path(run_dir))
    judge = NatJudge(run)
    judge.judge()
    verdicts = [*handover.verdicts, *judge.verdicts]
    overall = all(verdict.passed for verdict in verdicts)
    metrics = dict(handover.metrics)
    metrics |= {
        "scenario": "nat_traversal",
        "nat_traversal": judge.figures,
        "verdicts": [verdict.to_dict() for verdict in verdicts],
        "overall_passed": overall,
    }
    result = RunResult(
        run.path, metrics, handover.handovers, verdicts, overall, handover.flows, handover.notes
    )
    _write(run.path / "metrics.json", metrics_json(result))
    keepalive_timeline(run, run.path / "plots" / "keepalives.png")
    report = (run.path / "report.md").read_text(encoding="utf-8")
    _write(run.path / "report.md", report + nat_section(judge))
    return result


class NatJudge:
    """The RFC 3519 verdicts of one run."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.meta = run.meta
        self.mn = run.mobile_node
        self.verdicts: list[Verdict] = []
        self.figures: dict[str, Any] = {}
        self.public = str(self.meta.get("nat_public", ""))
        self.private = str(self.meta.get("private_address", ""))
        self.keepalive = float(self.meta.get("keepalive", math.nan))

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.verdicts.append(Verdict(name, bool(passed), detail))

    def step(self, what: str) -> dict[str, Any] | None:
        return next((e for e in self.run.events("scenario", TraceEvent.STEP) if e.get("what") == what), None)

    def judge(self) -> None:
        bound, lost = self.step("dhcp_bound"), self.step("nat_mapping_lost")
        if bound is None or lost is None:
            self.check("nat: the scenario reached the NAT and lost its mapping", False, "steps missing")
            return
        tunnel = self.udp_tunnel(bound["t"])
        self.through_nat(bound["t"], lost["t"], tunnel)
        self.public_side(tunnel["t"] + TUNNEL_APPLIED if tunnel else bound["t"])
        self.keepalives(tunnel)
        losses = [
            e for e in self.run.events("scenario", TraceEvent.STEP) if e.get("what") == "nat_mapping_lost"
        ]
        rebounds = [e for e in self.run.events("scenario", TraceEvent.STEP) if e.get("what") == "nat_rebound"]
        self.recoveries(losses, rebounds)
        self.back_to_ip_in_ip()
        if self.meta.get("via_fa"):
            ViaForeignAgent(self.run, self.check, self.figures).judge(bound["t"])

    # -- into the NAT (RFC 3519 §4.6, RFC 5454 §3.9) ------------------------------------------------------

    def udp_tunnel(self, bound: float) -> dict[str, Any] | None:
        bindings = [
            e
            for e in self.run.events(
                self.run.home_agent, TraceEvent.BINDING_ADDED, TraceEvent.BINDING_UPDATED
            )
            if e["t"] >= bound and _at_known_port(e.get("care_of"), self.public)
        ]  # a half-bound binding (R flag, "address:?") has no port yet: the keepalive's comes later (§4.6)
        tunnel = next((e for e in self.run.events(self.mn, TraceEvent.TUNNEL_UP) if e["t"] >= bound), None)
        udp = tunnel is not None and tunnel.get("udp_keepalive") == self.keepalive
        self.check(
            "nat: registered through the NAT in UDP, bound to its public address and port (RFC 3519 §4.6)",
            bool(bindings) and udp,
            f"HA binding {bindings[0]['care_of'] if bindings else 'none at the NAT address'}; MN tunnel "
            f"{'in UDP, K = ' + str(tunnel.get('udp_keepalive')) + ' s' if tunnel and udp else 'not in UDP'}",
        )
        return tunnel if udp else None

    def through_nat(self, bound: float, lost: float, tunnel: dict[str, Any] | None) -> None:
        start = tunnel["t"] + 0.5 if tunnel else bound
        received = {name: received_between(self.run.flows.get(name), start, lost) for name in FLOWS}
        self.check(
            "nat: IPv4 and IPv6 both ways through the NAT (RFC 3519 §3.3, RFC 5454 §3.9)",
            all(count > 0 for count in received.values()) and lost > start,
            f"packets received behind the NAT: {received}",
        )

    def public_side(self, registered: float) -> None:
        """What the captures on both sides of the NAT show. Once the MN is registered through the NAT,
        everything of its crosses the public side as UDP to or from port 434; before that its first
        packets (from its home address, natively) are counted and reported, not hidden."""
        public = self.run.path / "pcaps" / "nat1-nat1-pub.pcap"
        private = self.run.path / "pcaps" / "nat1-nat1-priv.pcap"
        offset = self.meta.get("clock_offset")
        if not public.is_file() or not private.is_file() or not isinstance(offset, int | float):
            self.check(
                "nat: only UDP Tunnel Data crosses the NAT's public side", False, "NAT captures missing"
            )
            return
        next_headers: dict[int, int] = {}
        leaks = raw_tunnels = native_after = native_before = 0
        prefix = self.private.rsplit(".", 1)[0] + "."
        for when, ip in ipv4_packets(public):
            source, destination = socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst)
            leaks += source.startswith(prefix) or destination.startswith(prefix)
            raw_tunnels += ip.p in (4, 41)
            data = _tunnel_data(ip)
            if data is not None:
                next_headers[data[1]] = next_headers.get(data[1], 0) + 1
            elif not _mobile_ip(ip) and not _icmp_error(ip) and source == self.public:
                if when - offset < registered:
                    native_before += 1
                else:
                    native_after += 1
        seen_private = sum(socket.inet_ntoa(ip.src) == self.private for _, ip in ipv4_packets(private))
        self.figures["public_side"] = {
            "tunnel_data_by_next_header": next_headers,
            "private_address_leaks": leaks,
            "native_from_nat_before_registration": native_before,
            "native_from_nat_after_registration": native_after,
        }
        self.check(
            "nat: only UDP Tunnel Data (Next Header 4, 41) on the public side; private address only inside",
            {4, 41} <= next_headers.keys()
            and leaks == 0
            and raw_tunnels == 0
            and native_after == 0
            and seen_private > 0,
            f"public side: Tunnel Data by next header {next_headers}, {leaks} packets with a private "
            f"address, {raw_tunnels} IP-in-IP, {native_after} other packets from the NAT once registered "
            f"({native_before} before the registration completed); private side: {seen_private} packets "
            f"from {self.private}",
        )

    # -- keepalives (RFC 3519 §4.9, §4.10) ------------------------------------------------------------

    def keepalives(self, tunnel: dict[str, Any] | None) -> None:
        """RFC 3519 §4.9-§4.10: none while traffic flows both ways; every K s while the tunnel is quiet,
        the first no earlier than K after the registration; each one answered by the HA."""
        quiet, loud = self.step("quiet_started"), self.step("quiet_finished")
        name = (
            "nat: keepalives only when the tunnel is quiet, every K s, each answered (RFC 3519 §4.9, §4.10)"
        )
        if tunnel is None or quiet is None or loud is None:
            self.check(name, False, "no UDP tunnel or no quiet period recorded")
            return
        k = self.keepalive
        due_all = [e for e in self.run.events(self.mn, TraceEvent.KEEPALIVE_DUE) if not self._at_once(e)]
        due = [e for e in due_all if quiet["t"] <= e["t"] <= loud["t"]]
        answered = _answers(
            due,
            self.run.events(self.mn, TraceEvent.KEEPALIVE_DUE),
            self.run.events(self.mn, TraceEvent.KEEPALIVE_ANSWERED),
        )
        busy = [e for e in due_all if tunnel["t"] + k + 1.5 <= e["t"] < quiet["t"]]
        early = [e for e in due_all if e["t"] < tunnel["t"] + k - 0.05]
        gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(due)]
        first = due[0]["t"] - quiet["t"] if due else None
        median_gap = statistics.median(gaps) if gaps else None
        rtts = _keepalive_rtts(due, answered)
        self.figures["keepalives"] = {
            "while_traffic_flows": len(busy),
            "before_k": len(early),
            "quiet_sent": len(due),
            "quiet_answered": len(answered),
            "first_after_quiet_s": None if first is None else round(first, 3),
            "median_interval_s": None if median_gap is None else round(median_gap, 3),
            "median_rtt_ms": round(statistics.median(rtts) * 1000, 3) if rtts else None,
        }
        self.check(
            name,
            not busy
            and not early
            and len(due) >= 2
            and len(answered) == len(due)
            and median_gap is not None
            and abs(median_gap - k) <= 0.2 * k
            and first is not None
            and first <= k + 1.5,
            f"K = {k:g} s: {len(busy)} sent while traffic flowed, {len(early)} before K; quiet period: "
            f"first after {first} s, {len(due)} sent, {len(answered)} answered, "
            f"median interval {median_gap} s",
        )

    def _at_once(self, due: dict[str, Any]) -> bool:
        """A keepalive sent right after a registration through the FA (R flag): RFC 3519 §4.4 requires it
        at once, the HA learns the NAT's port from it (§4.6); it is not one of the every-K ones."""
        if not self.meta.get("via_fa"):
            return False
        accepted = self.run.events(self.mn, TraceEvent.REGISTRATION_ACCEPTED)
        return any(0 <= due["t"] - e["t"] <= 1.5 for e in accepted) and due.get("attempt", 1) <= 2

    # -- the NAT forgets (RFC 3519 §4.9, §4.6) ---------------------------------------------------------

    def recoveries(self, losses: list[dict[str, Any]], rebounds: list[dict[str, Any]]) -> None:
        """Each time the NAT lost the mapping: noticed, re-registered, moved, every flow back."""
        problems: list[str] = []
        outages: dict[str, list[float | None]] = {name: [] for name in FLOWS}
        for index, lost in enumerate(losses):
            rebound = rebounds[index] if index < len(rebounds) else None
            problem = self._recovered(lost, rebound)
            if problem:
                problems.append(f"loss {index + 1}: {problem}")
            back = rebound["t"] if rebound else lost["t"]
            end = self._next_change(back)  # the next loss or move: what came through before it counts
            for name in FLOWS:
                gap = max_gap_ms(self.run.flows.get(name), lost["t"] - 0.5, end)
                outages[name].append(None if gap is None else round(gap / 1000, 3))
                if not received_between(self.run.flows.get(name), back, end):
                    problems.append(f"loss {index + 1}: {name} not restored")
        self.figures["recovery_s"] = outages
        medians = {
            name: round(statistics.median(v for v in values if v is not None), 3)
            for name, values in outages.items()
            if any(v is not None for v in values)
        }
        self.figures["recovery_median_s"] = medians
        self.check(
            "nat: a lost mapping is noticed by keepalives, the MN registers again, the HA moves the binding "
            "and every flow comes back",
            bool(losses) and not problems,
            "; ".join(problems) if problems else f"{len(losses)} losses; median delivery gap (s) {medians}",
        )

    def _next_change(self, after: float) -> float:
        """When the next NAT loss or move started after ``after`` (at most 3 s later)."""
        steps = [
            e["t"]
            for e in self.run.events("scenario", TraceEvent.STEP)
            if e.get("what") == "nat_mapping_lost"
        ]
        moves = [e["t"] for e in self.run.events("scenario", TraceEvent.MOVE_STARTED)]
        return float(min([t for t in steps + moves if t > after] + [after + 3.0]))

    def _recovered(self, lost: dict[str, Any], rebound: dict[str, Any] | None) -> str | None:
        """Why the recovery from ``lost`` is incomplete (None: keepalive lost, new request, binding moved)."""
        noticed = next(
            (e for e in self.run.events(self.mn, TraceEvent.KEEPALIVE_LOST) if e["t"] >= lost["t"]), None
        )
        request = next(
            (e for e in self.run.events(self.mn, TraceEvent.RRQ_SENT) if noticed and e["t"] >= noticed["t"]),
            None,
        )
        old = f"{self.public}:{lost.get('port')}"
        moved = next(
            (
                e
                for e in self.run.events(
                    self.run.home_agent, TraceEvent.BINDING_ADDED, TraceEvent.BINDING_UPDATED
                )
                if e["t"] >= lost["t"]
                and _at_known_port(e.get("care_of"), self.public)  # not a half-bound "address:?" (R flag)
                and str(e.get("care_of")) != old
            ),
            None,
        )
        if noticed is None or request is None or moved is None:
            return (
                f"keepalive_lost {_after(noticed, lost)}, new request {_after(request, lost)}, binding moved "
                f"{_after(moved, lost)} (from {old}, scenario saw {rebound.get('port') if rebound else None})"
            )
        return None

    def back_to_ip_in_ip(self) -> None:
        move = next(
            (e for e in self.run.events("scenario", TraceEvent.MOVE_STARTED) if e.get("to") == "fa1"), None
        )
        fa = str(self.meta.get("fa_care_of", ""))
        binding = next(
            (
                e
                for e in self.run.events(
                    self.run.home_agent, TraceEvent.BINDING_ADDED, TraceEvent.BINDING_UPDATED
                )
                if move and e["t"] >= move["t"] and e.get("care_of") == fa
            ),
            None,
        )
        after = binding["t"] + 0.5 if binding else math.inf
        offset = self.meta.get("clock_offset")
        public = self.run.path / "pcaps" / "nat1-nat1-pub.pcap"
        late = None
        if isinstance(offset, int | float) and public.is_file():
            late = sum(
                1
                for when, ip in ipv4_packets(public)
                if when - offset >= after and _tunnel_data(ip) is not None
            )
        self.check(
            "fa1: back to plain IP-in-IP via FA1, no more UDP tunnel through the NAT",
            binding is not None and late == 0,
            f"HA binding {'to ' + fa if binding else 'not to ' + fa}; {late} Tunnel Data packets on the "
            "NAT's public side afterwards",
        )


def _tunnel_data(ip: Any) -> bytes | None:
    """The UDP payload if ``ip`` carries MIP Tunnel Data to or from port 434 (RFC 3519 §3.3)."""
    udp = ip.data
    if ip.p != 17 or not hasattr(udp, "sport"):
        return None
    payload = bytes(udp.data)
    if MOBILE_IP_PORT in (udp.sport, udp.dport) and len(payload) >= 4 and payload[0] == TUNNEL_DATA:
        return payload
    return None


def _icmp_error(ip: Any) -> bool:
    """The NAT's own ICMP errors (e.g. port unreachable for a forgotten mapping, RFC 792)."""
    return bool(ip.p == 1 and len(bytes(ip.data)) > 0 and bytes(ip.data)[0] in (3, 11))


def _mobile_ip(ip: Any) -> bool:
    """UDP to or from port 434: registration or Tunnel Data."""
    udp = ip.data
    return bool(ip.p == 17 and hasattr(udp, "sport") and MOBILE_IP_PORT in (udp.sport, udp.dport))


def _at_known_port(care_of: object, public: str) -> bool:
    """``care_of`` is the NAT's public address with a port ("address:port", not a half-bound "address:?")."""
    address, _, port = str(care_of).rpartition(":")
    return address == public and port.isdigit()


def _answers(
    due: list[dict[str, Any]], every_due: list[dict[str, Any]], answered: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The answer to each keepalive of ``due``, paired by ICMP sequence number (RFC 3519 §4.9): an answer
    with its sequence after it was sent and before the MN's next keepalive (sequences restart with each
    registration); the list is shorter than ``due`` when one went unanswered."""
    times = sorted(e["t"] for e in every_due)
    found: list[dict[str, Any]] = []
    for sent in due:
        later = [t for t in times if t > sent["t"]]
        until = later[0] if later else math.inf
        match = next(
            (
                e
                for e in answered
                if e.get("sequence") == sent.get("sequence") and sent["t"] <= e["t"] < until
            ),
            None,
        )
        if match is not None:
            found.append(match)
    return found


def _keepalive_rtts(due: list[dict[str, Any]], answered: list[dict[str, Any]]) -> list[float]:
    sent = {e.get("sequence"): e["t"] for e in due}
    return [e["t"] - sent[e["sequence"]] for e in answered if e.get("sequence") in sent]


def _after(event: dict[str, Any] | None, since: dict[str, Any]) -> str:
    return "never" if event is None else f"+{event['t'] - since['t']:.3f} s"


# -- outputs ----------------------------------------------------------------------------------------------


def keepalive_timeline(run: Run, path: Path) -> None:
    """Keepalives sent / answered / lost, the binding's NAT port, and downstream delivery, over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(12, 3.6))
    rows: tuple[tuple[str, str, str, int], ...] = (
        (TraceEvent.KEEPALIVE_DUE, "sent", "tab:blue", 3),
        (TraceEvent.KEEPALIVE_ANSWERED, "answered", "tab:green", 2),
        (TraceEvent.KEEPALIVE_LOST, "lost → register again", "tab:red", 1),
    )
    for event, label, colour, y in rows:
        times = [e["t"] - run.t0 for e in run.events(run.mobile_node, event)]
        axis.plot(times, [y] * len(times), "o", color=colour, label=label)
    flow = run.flows.get("v4-down")
    if flow is not None:
        received = flow.recv_t[~np.isnan(flow.recv_t)] - run.t0
        axis.plot(received, np.zeros(received.shape), "|", color="grey", alpha=0.3, label="v4-down delivered")
    for step in run.events("scenario", TraceEvent.STEP):
        if step.get("what") in ("dhcp_bound", "nat_mapping_lost", "nat_rebound", "dhcp_released"):
            axis.axvline(step["t"] - run.t0, color="black", linestyle=":", linewidth=0.8)
            axis.text(step["t"] - run.t0, 3.4, str(step["what"]), rotation=20, fontsize=7)
    axis.set_yticks([0, 1, 2, 3], ["delivered", "lost", "answered", "sent"])
    axis.set_ylim(-0.5, 4.2)
    axis.set_xlabel("seconds since the run started")
    axis.set_title("Keepalives through the NAT (RFC 3519 §4.9) and downstream delivery")
    axis.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def nat_section(judge: NatJudge) -> str:
    figures = judge.figures
    lines = ["", "## NAT traversal (RFC 3519)", "", "![keepalives](plots/keepalives.png)", ""]
    for key in ("keepalives", "recovery_s", "public_side", "via_fa"):
        if key in figures:
            lines.append(f"- {key.replace('_', ' ')}: {figures[key]}")
    lines += ["", "| | expectation | detail |", "|---|---|---|"]
    for verdict in judge.verdicts:
        lines.append(
            f"| {'✔' if verdict.passed else '✘'} | {verdict.name} | {verdict.detail.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"
