"""Verdicts, figures and report of a deregistration run (``scenarios.deregistration``), from its folder only.

Inputs: ``meta.json``; ``traces/scenario.jsonl`` (phase marks and ``step`` events: what the scenario did
and when); the agents' traces (what the HA, FA and MNs did); ``observations.jsonl`` (the HA node's state
as the kernel and the control socket showed it, :mod:`scenarios.harness.observe`); ``probes/*.csv``; and,
when captured, the HA's home-link pcap (what it really sent into tunnels). Every verdict is a pure function
of those files, so a doctored file makes its verdict fail (tests/integration/test_deregistration_scenario.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reports.errors import RunFolderError
from reports.metrics import RunResult, Verdict
from reports.pcapread import ipv4_packets
from reports.probes import FlowData, lost_between, max_gap_ms, received_between, sent_between
from reports.rundir import Run, load_run

DeregistrationResult = RunResult
MARGIN = 0.05
"""Seconds after a state change before packets are judged: what was already in flight may still arrive."""
EXPIRY_TOLERANCE = 0.5
"""How far the measured black-hole window may be from the remaining lifetime (timer granularity, polling)."""


def load_observations(path: Path) -> list[dict[str, Any]]:
    """``observations.jsonl``: one JSON object per line with ``t``, ``phase`` and ``label``."""
    if not path.is_file():
        raise RunFolderError(f"{path}: missing (the scenario records the HA's state there)")
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                break  # a writer stopped mid-line loses only that line
            raise RunFolderError(f"{path} line {number}: invalid JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not {"t", "phase", "label"} <= record.keys():
            raise RunFolderError(f"{path} line {number}: needs an object with t, phase and label")
        records.append(record)
    return records


@dataclass
class Evidence:
    """A run folder's facts, with the lookups the verdicts need."""

    run: Run
    observations: list[dict[str, Any]]

    @property
    def meta(self) -> dict[str, Any]:
        return self.run.meta

    def phase_window(self, phase: str) -> tuple[float, float]:
        starts = [e["t"] for e in self.run.events("scenario", "phase_started") if e.get("phase") == phase]
        ends = [e["t"] for e in self.run.events("scenario", "phase_finished") if e.get("phase") == phase]
        if not starts or not ends:
            return math.nan, math.nan
        return float(starts[0]), float(ends[0])

    def step(self, what: str, after: float = -math.inf, **match: Any) -> dict[str, Any] | None:
        for event in self.run.events("scenario", "step"):
            if event.get("what") == what and event["t"] >= after and _matches(event, match):
                return event
        return None

    def steps(self, what: str) -> list[dict[str, Any]]:
        return [event for event in self.run.events("scenario", "step") if event.get("what") == what]

    def event(self, node: str, name: str, after: float = -math.inf, **match: Any) -> dict[str, Any] | None:
        for event in self.run.events(node, name):
            if event["t"] >= after and _matches(event, match):
                return event
        return None

    def observation(self, phase: str, label: str) -> dict[str, Any] | None:
        for record in self.observations:
            if record["phase"] == phase and record["label"] == label:
                return record
        return None

    def flow(self, name: str) -> FlowData | None:
        return self.run.flows.get(name)


def _matches(event: dict[str, Any], match: dict[str, Any]) -> bool:
    return all(event.get(key) == value for key, value in match.items())


# -- state arithmetic ------------------------------------------------------------------------------------


def binding_for(record: dict[str, Any] | None, home_address: str) -> dict[str, Any] | None:
    for binding in (record or {}).get("bindings", []):
        if binding.get("home_address") == home_address:
            return dict(binding)
    return None


def state_left(
    record: dict[str, Any] | None, home_address: str, prefixes: list[str], visitors: bool = True
) -> list[str]:
    """What the HA (and with ``visitors`` the FAs) still hold for ``home_address`` in ``record``."""
    if record is None:
        return ["no observation was recorded"]
    left = []
    if binding_for(record, home_address) is not None:
        left.append("binding")
    if home_address in record.get("proxy_arp", []):
        left.append("proxy ARP entry")
    if home_address in record.get("tunnel_routes4", []):
        left.append("IPv4 tunnel route")
    left += [f"tunnel route {p}" for p in prefixes if p in record.get("tunnel_routes6", [])]
    for fa, entries in record.get("visitors", {}).items() if visitors else ():
        if any(entry.get("home_address") == home_address for entry in entries):
            left.append(f"{fa} visitor entry")
    return left


def nobody_answers(record: dict[str, Any] | None, home_address: str, ha_mac: str | None) -> tuple[bool, str]:
    """Whether the home router asked for ``home_address`` and got no answer (an entry without a link
    address): the proof that neither the HA (proxy ARP) nor anyone else claims it. The reason as text."""
    entry = (record or {}).get("router_neighbours", {}).get(home_address)
    if ha_mac is None:
        return False, "the HA's MAC was not recorded"
    if not entry:
        return False, f"the home router has no neighbour entry for {home_address}: it never asked"
    mac = entry.get("lladdr")
    state = "/".join(entry.get("state") or [])
    if mac:
        who = "the HA" if mac == ha_mac else mac
        return False, f"the home router resolves {home_address} to {who} ({state})"
    return True, f"the home router asked for {home_address} and nobody answered ({state})"


def answered_by(record: dict[str, Any] | None, home_address: str) -> str | None:
    """The MAC the home router resolved ``home_address`` to at the time of ``record`` (None: nobody)."""
    entry = (record or {}).get("router_neighbours", {}).get(home_address)
    if not entry:
        return None
    lladdr = entry.get("lladdr")
    return str(lladdr) if lladdr else None


# -- pcap: what the HA sent into tunnels -----------------------------------------------------------------


def tunnelled_times(run: Run, inner_destinations: set[str], start: float, end: float) -> list[float] | None:
    """When (monotonic) the HA sent a packet encapsulated (protocol 4 or 41) whose innermost destination
    is one of ``inner_destinations``, as captured on its home link between ``start`` and ``end``; None
    without that capture (then nothing can be said)."""
    pcap = run.path / "pcaps" / "ha-ha-eth0.pcap"
    offset = run.meta.get("clock_offset")
    if not pcap.is_file() or not isinstance(offset, int | float):
        return None
    home_agent = run.meta.get("home_agent_address", "192.0.2.1")
    return [
        when - offset
        for when, outer_source, inner in _encapsulated(pcap)
        if start <= when - offset <= end and outer_source == home_agent and inner in inner_destinations
    ]


def tunnelled_to(run: Run, inner_destinations: set[str], start: float, end: float) -> int | None:
    """How many packets :func:`tunnelled_times` finds (None without the capture)."""
    times = tunnelled_times(run, inner_destinations, start, end)
    return None if times is None else len(times)


def _encapsulated(pcap: Path) -> list[tuple[float, str, str]]:
    """(wall time, outer source, innermost destination) of every IP-in-IP / IPv6-in-IPv4 packet."""
    import socket

    import dpkt

    found = []
    for timestamp, ip in ipv4_packets(pcap):
        if ip.p not in (4, 41):
            continue
        source, inner = socket.inet_ntoa(ip.src), ip.data
        while isinstance(inner, dpkt.ip.IP) and inner.p in (4, 41):
            inner = inner.data  # nested (code 0 through an FA): the innermost packet counts
        if isinstance(inner, dpkt.ip.IP):
            found.append((timestamp, source, socket.inet_ntoa(inner.dst)))
        elif isinstance(inner, dpkt.ip6.IP6):
            found.append((timestamp, source, socket.inet_ntop(socket.AF_INET6, inner.dst)))
    return found


# -- verdicts per phase ----------------------------------------------------------------------------------


class Judge:
    """Computes every verdict and figure of a deregistration run from its :class:`Evidence`."""

    def __init__(self, evidence: Evidence) -> None:
        self.e = evidence
        meta = evidence.meta
        self.hoa = str(meta.get("home_address", ""))
        self.hoa2 = str(meta.get("colocated_home_address", ""))
        self.prefixes = [str(p) for p in meta.get("prefixes", [])]
        self.addresses6 = [str(a) for a in meta.get("addresses6", [])]
        self.mn, self.mn2 = str(meta.get("mobile_node", "mn1")), str(meta.get("colocated_node", "mn2"))
        self.verdicts: list[Verdict] = []
        self.figures: dict[str, Any] = {}

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.verdicts.append(Verdict(name, bool(passed), detail))

    def judge(self) -> None:
        for item in self.e.meta.get("expectations") or []:
            self.check(str(item["name"]), bool(item["passed"]), str(item.get("detail", "")))
        self.omission()
        self.visited_fa()
        self.visited_colocated()
        self.return_home()
        self.lifetime()
        self.forged()
        self.silent_death()
        self.exit_codes()

    # 1. RFC 5454 §3.8 ------------------------------------------------------------------------------------

    def omission(self) -> None:
        if len(self.prefixes) < 2:
            self.check("omission: two prefixes registered", False, f"meta lists {self.prefixes}")
            return
        kept, omitted = self.prefixes[:2]
        record = self.e.observation("omission", "omitted")
        binding = binding_for(record, self.hoa) or {}
        held = sorted(str(p["prefix"]) for p in binding.get("prefixes", []))
        routes = (record or {}).get("tunnel_routes6", [])
        self.check(
            "omission: the omitted prefix is withdrawn at the HA, the kept one stays (RFC 5454 §3.8)",
            held == [kept] and omitted not in routes and kept in routes,
            f"binding prefixes {held}, tunnel routes {routes}",
        )
        gone = self.e.event("ha", "prefix_deregistered", home_address=self.hoa)
        readd = self.e.step("readd_sent")
        if gone is None or readd is None:
            self.check(
                "omission: the omitted prefix's traffic stops at the HA", False, "no withdrawal traced"
            )
            return
        start, end = gone["t"] + MARGIN, readd["t"]
        flow_b = self.e.flow("v6b-down")
        received = received_between(flow_b, start, end)
        sent = sent_between(flow_b, start, end)
        tunnelled = (
            tunnelled_to(self.e.run, {self.addresses6[1]}, start, end) if len(self.addresses6) > 1 else None
        )
        self.check(
            "omission: the omitted prefix's traffic stops at the HA (not sent into the tunnel)",
            sent > 0 and received == 0 and tunnelled == 0,
            f"{sent} sent, {received} received, {_maybe(tunnelled)} tunnelled by the HA "
            f"in {end - start:.2f} s",
        )
        phase_start, phase_end = self.e.phase_window("omission")
        lost = lost_between(self.e.flow("v6-down"), phase_start, phase_end - 0.5)
        self.check(
            "omission: the kept prefix's traffic continues",
            lost == 0 and sent_between(self.e.flow("v6-down"), phase_start, phase_end) > 0,
            f"{lost} packets lost during the phase",
        )
        restored = self.e.observation("omission", "restored")
        back = sorted(str(p["prefix"]) for p in (binding_for(restored, self.hoa) or {}).get("prefixes", []))
        after = received_between(flow_b, readd["t"] + 0.5, phase_end)
        self.check(
            "omission: the prefix registered again carries traffic again",
            back == sorted([kept, omitted]) and after > 0,
            f"binding prefixes {back}; {after} packets received after it was added back",
        )

    # 2-3. RFC 5944 §3.6.1.2 ---------------------------------------------------------------------------

    def visited_fa(self) -> None:
        self._deregistered_away("visited-fa", self.mn, self.hoa, self.prefixes, "v4-down", "via FA1")

    def visited_colocated(self) -> None:
        self._deregistered_away("visited-colocated", self.mn2, self.hoa2, [], "c4-down", "co-located")

    def _deregistered_away(
        self, phase: str, node: str, hoa: str, prefixes: list[str], flow: str, how: str
    ) -> None:
        sent = self.e.step("deregister_sent", mobile=node)
        removed = self.e.event(
            "ha", "binding_removed", after=sent["t"] if sent else math.inf, home_address=hoa
        )
        record = self.e.observation(phase, "gone")
        left = state_left(record, hoa, prefixes)
        ha_mac = self._mac("ha")
        self.check(
            f"{phase}: deregistration {how} removes binding, tunnel routes, proxy ARP (RFC 5944 §3.6.1.2)",
            removed is not None and not left,
            "removed" if not left and removed else f"left: {', '.join(left) or 'no binding_removed traced'}",
        )
        quiet, why = nobody_answers(record, hoa, ha_mac)
        self.check(f"{phase}: nobody answers ARP for {hoa} on the home link any more", quiet, why)
        if sent is None or removed is None:
            return
        self.figures.setdefault("deregistration_ms", {})[phase] = self._removal_ms(node, sent["t"], hoa)
        start = removed["t"] + MARGIN
        _, end = self.e.phase_window(phase)
        again = self.e.step("register_sent", after=sent["t"], mobile=node)
        end = again["t"] if again is not None else end
        received = received_between(self.e.flow(flow), start, end)
        sent_count = sent_between(self.e.flow(flow), start, end)
        tunnelled = tunnelled_to(self.e.run, {hoa, *self._addresses_of(hoa)}, start, end)
        self.check(
            f"{phase}: nothing for {hoa} is tunnelled after the deregistration",
            sent_count > 0 and received == 0 and tunnelled == 0,
            f"{sent_count} probe packets sent, {received} delivered, {_maybe(tunnelled)} tunnelled by the HA",
        )

    def _removal_ms(self, node: str, after: float, hoa: str) -> float | None:
        """From the MN's deregistration request (its own trace) to the last HA event that removed its
        state: binding, proxy ARP, prefixes (the HA traces each just before applying it)."""
        request = self.e.event(node, "rrq_sent", after=after, lifetime=0)
        if request is None:
            return None
        names = ("binding_removed", "proxy_arp_stopped", "prefix_deregistered")
        times = [
            event["t"]
            for name in names
            for event in self.e.run.events("ha", name)
            if event.get("home_address") == hoa and request["t"] <= event["t"] <= request["t"] + 5
        ]
        return round((max(times) - request["t"]) * 1000, 3) if times else None

    # 4. RFC 5944 §4.6 ------------------------------------------------------------------------------------

    def return_home(self) -> None:
        record = self.e.observation("return-home", "home")
        # the FA is not told when the MN goes home: its visitor entry runs out with its lifetime (§3.7.2)
        left = state_left(record, self.hoa, self.prefixes, visitors=False)
        self.check(
            "return-home: the HA's binding, tunnel routes and proxy ARP are gone (RFC 5944 §3.6.1.2)",
            record is not None and not left,
            "removed" if record and not left else f"left: {', '.join(left)}",
        )
        mn_mac = (record or {}).get("mn1_mac")
        mac = answered_by(record, self.hoa)
        ha_entry = (record or {}).get("ha_neighbours", {}).get(self.hoa) or {}
        ha_sees = ha_entry.get("lladdr")
        self.check(
            "return-home: the home link's ARP caches point at the MN (gratuitous ARP, RFC 5944 §4.6)",
            mac is not None and mac == mn_mac and ha_sees in (None, mn_mac),
            f"home router resolves {self.hoa} to {mac or 'nothing'}, the HA to {ha_sees or 'nothing'} "
            f"(MN is {mn_mac})",
        )
        start, end = self.e.phase_window("return-home")
        removal = self._removal_ms(self.mn, start, self.hoa)
        self.figures.setdefault("deregistration_ms", {})["return-home"] = removal
        since = (record or {}).get("t", math.nan)
        delivered = {f: received_between(self.e.flow(f), since, end) for f in ("v4-down", "v6-down")}
        tunnelled = tunnelled_to(self.e.run, {self.hoa, *self.addresses6}, since, end)
        self.check(
            "return-home: traffic for the MN is delivered natively on the home link",
            all(delivered.values()) and tunnelled == 0,
            f"received {delivered}; {_maybe(tunnelled)} tunnelled by the HA",
        )

    # 5. RFC 5944 §3.8.3.1, §3.6.1.3 -------------------------------------------------------------------

    def lifetime(self) -> None:
        maximum, requested = self.e.meta.get("ha_max_lifetime"), self.e.meta.get("requested_lifetime")
        record = self.e.observation("lifetime", "registered")
        care_ofs = (binding_for(record, self.hoa) or {}).get("care_ofs") or [{}]
        start, _ = self.e.phase_window("lifetime")
        accepted = self.e.event(self.mn, "registration_accepted", after=start)
        granted = accepted.get("lifetime") if accepted else None
        self.check(
            "lifetime: a lifetime above the HA's maximum is shortened to it in the reply (RFC 5944 §3.8.3.1)",
            isinstance(requested, int)
            and isinstance(maximum, int)
            and requested > maximum
            and granted == maximum
            and care_ofs[0].get("lifetime") == maximum,
            f"asked {requested} s, reply granted {granted} s, binding holds {care_ofs[0].get('lifetime')} s "
            f"(HA maximum {maximum} s)",
        )
        first, last = self.e.step("renewals_started"), self.e.step("renewals_finished")
        if first is None or last is None:
            self.check("lifetime: ≥ 3 renewals without a gap in traffic", False, "no renewal window recorded")
            return
        renewals = [
            e
            for e in self.e.run.events("ha", "binding_updated")
            if first["t"] <= e["t"] <= last["t"] and e.get("home_address") == self.hoa
        ]
        flows = ("v4-down", "v4-up", "v6-down", "v6-up")
        lost = {f: lost_between(self.e.flow(f), first["t"], last["t"] - 0.5) for f in flows}
        gaps = {f: max_gap_ms(self.e.flow(f), first["t"], last["t"]) for f in flows}
        self.figures["renewals"] = {"count": len(renewals), "lost": lost, "max_gap_ms": gaps}
        self.check(
            "lifetime: ≥ 3 renewals before expiry, no packet lost across them",
            len(renewals) >= 3 and not any(lost.values()) and all(g is not None for g in gaps.values()),
            f"{len(renewals)} renewals; lost {lost}; longest gap ms {gaps}",
        )

    # 6. RFC 5944 §3.8.2.1, §5.7 ---------------------------------------------------------------------

    def forged(self) -> None:
        replies = {e.get("kind"): e for e in self.e.steps("forged_reply")}
        before = _care_ofs(binding_for(self.e.observation("forged", "before"), self.hoa))
        for kind, code, rule in (("wrong-key", 131, "§3.8.2.1"), ("replay", 133, "§5.7")):
            reply = replies.get(kind, {})
            label = "after-wrong-key" if kind == "wrong-key" else "after-replay"
            after = _care_ofs(binding_for(self.e.observation("forged", label), self.hoa))
            self.check(
                f"forged: {kind} deregistration refused with {code}, binding kept (RFC 5944 {rule})",
                reply.get("reply_code") == code and bool(before) and after == before,
                f"reply code {reply.get('reply_code', reply.get('error', 'none'))}; care-of before "
                f"{before or 'none'}, after {after or 'none'}",
            )
        start, end = self.e.phase_window("forged")
        lost = {f: lost_between(self.e.flow(f), start, end - 0.5) for f in ("v4-down", "v6-down")}
        self.check(
            "forged: traffic to the MN is untouched",
            not any(lost.values()) and sent_between(self.e.flow("v4-down"), start, end) > 0,
            f"lost {lost}",
        )

    # 7. silent death ---------------------------------------------------------------------------------

    def silent_death(self) -> None:
        """RFC 5944 §3.8.3.1: an unrenewed binding lives exactly the lifetime granted in the last reply."""
        killed = self.e.step("killed")
        if killed is None:
            self.check("silent-death: the MN was killed", False, "no kill recorded")
            return
        kill = killed["t"]
        replies = [
            e
            for e in self.e.run.events("ha", "rrp_sent")
            if e["t"] <= kill
            and e.get("home_address") == self.hoa
            and e.get("code") in (0, 1)
            and e.get("lifetime", 0) > 0
        ]
        removed = self.e.event("ha", "binding_removed", after=kill, home_address=self.hoa)
        if removed is None or not replies:
            self.check("silent-death: the binding expires at the granted lifetime", False, "no expiry traced")
            return
        reply = replies[-1]
        expiry = reply["t"] + float(reply["lifetime"])  # what the MN was told it has
        maximum = self.e.meta.get("ha_max_lifetime")
        self.check(
            "silent-death: the binding expires at the lifetime granted in the last reply (RFC 5944 §3.8.3.1)",
            reply["lifetime"] == maximum
            and removed.get("reason") == "expired"
            and abs(removed["t"] - expiry) <= EXPIRY_TOLERANCE,
            f"granted {reply['lifetime']} s (HA maximum {maximum} s) at {reply['t'] - kill:+.3f} s from the "
            f"kill; removed ({removed.get('reason')}) {removed['t'] - expiry:+.3f} s from that expiry",
        )
        self._black_hole(kill, expiry, removed)

    def _black_hole(self, kill: float, expiry: float, removed: dict[str, Any]) -> None:
        """Measured from the HA's home-link capture (the last packet it tunnelled for the dead node) and
        the scenario's own polling of the binding table, not from the HA's trace."""
        times = tunnelled_times(self.e.run, {self.hoa, *self.addresses6}, kill, removed["t"] + 5)
        last = max(times) if times else None
        seen = self.e.step("binding_gone_seen", after=kill)
        self.figures["black_hole"] = {
            "measured_s": None if last is None else round(last - kill, 3),
            "remaining_lifetime_s": round(expiry - kill, 3),
            "ha_expiry_s": round(removed["t"] - kill, 3),
            "polled_gone_s": None if seen is None else round(seen["t"] - kill, 3),
            "reason": removed.get("reason"),
        }
        self.check(
            "silent-death: the black hole lasts the remaining lifetime (HA tunnels until then, not after)",
            last is not None
            and abs(last - expiry) <= EXPIRY_TOLERANCE
            and seen is not None
            and -EXPIRY_TOLERANCE <= seen["t"] - expiry <= 1.0,
            f"last packet tunnelled {_seconds(last, kill)} after the kill, binding seen gone "
            f"{_seconds(seen['t'] if seen else None, kill)} after it; "
            f"remaining lifetime {expiry - kill:.3f} s",
        )
        record = self.e.observation("silent-death", "gone")
        left = state_left(record, self.hoa, self.prefixes)
        quiet, why = nobody_answers(record, self.hoa, self._mac("ha"))
        after = tunnelled_to(
            self.e.run, {self.hoa, *self.addresses6}, removed["t"] + MARGIN, record["t"] if record else kill
        )
        self.check(
            "silent-death: from expiry on the HA neither tunnels nor proxies",
            record is not None and not left and quiet and after == 0,
            f"left: {', '.join(left) or 'nothing'}; {why}; {_maybe(after)} tunnelled after expiry",
        )
        fa_gone = self.e.event("fa1", "visitor_removed", after=kill, home_address=self.hoa)
        skew = None if fa_gone is None else round(fa_gone["t"] - removed["t"], 3)
        self.figures["black_hole"]["fa_visitor_skew_s"] = skew
        self.check(
            "silent-death: FA1's visitor entry expires with the binding",
            skew is not None and abs(skew) <= 1.0,
            f"visitor removed {skew} s after the binding"
            if skew is not None
            else "visitor entry never removed",
        )

    def exit_codes(self) -> None:
        codes = self.e.meta.get("exit_codes") or {}
        expected_kill = f"agent {self.mn}"
        bad = {k: v for k, v in codes.items() if v != 0 and k != expected_kill}
        self.check(
            "every agent and probe exits cleanly (except the MN killed on purpose)",
            bool(codes) and not bad and codes.get(expected_kill) == -9,
            f"{len(codes)} processes" if not bad else ", ".join(f"{k} exited {v}" for k, v in bad.items()),
        )

    # helpers ----------------------------------------------------------------------------------------

    def _mac(self, node: str) -> str | None:
        macs = self.e.run.events("scenario", "macs")
        return str(macs[0].get(node)) if macs and macs[0].get(node) else None

    def _addresses_of(self, hoa: str) -> list[str]:
        return self.addresses6 if hoa == self.hoa else []


def _seconds(t: float | None, since: float) -> str:
    return "never" if t is None else f"{t - since:.3f} s"


def _care_ofs(binding: dict[str, Any] | None) -> list[tuple[str, Any]]:
    return sorted((str(c.get("care_of")), c.get("port")) for c in (binding or {}).get("care_ofs", []))


def _maybe(value: int | None) -> str:
    return "? (no capture of the HA's home link)" if value is None else str(value)


# -- the result ------------------------------------------------------------------------------------------


def analyse_deregistration(run: Run, observations: list[dict[str, Any]]) -> RunResult:
    judge = Judge(Evidence(run, observations))
    judge.judge()
    passed = bool(judge.verdicts) and all(v.passed for v in judge.verdicts)
    metrics = {
        "scenario": "deregistration",
        "run": run.path.name,
        "passed": passed,
        "figures": judge.figures,
        "verdicts": [v.to_dict() for v in judge.verdicts],
        "flows": {name: _flow_totals(flow) for name, flow in run.flows.items()},
        "notes": run.notes,
    }
    return RunResult(run.path, metrics, [], judge.verdicts, passed, list(run.flows), list(run.notes))


def _flow_totals(flow: FlowData) -> dict[str, int]:
    received = int(np.count_nonzero(~np.isnan(flow.recv_t)))
    return {"sent": len(set(flow.seq.tolist())), "received": received}


def render_deregistration(run_dir: Path) -> RunResult:
    """Analyse a deregistration run folder and (re)write metrics.json, plots/ and report.md."""
    from reports.deregistration_report import write_outputs

    run = load_run(Path(run_dir))
    result = analyse_deregistration(run, load_observations(run.path / "observations.jsonl"))
    write_outputs(run, result)
    return result


