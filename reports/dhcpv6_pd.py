"""Verdicts and figures of a DHCPv6-PD run (``scenarios.dhcpv6_pd``), from its folder only (RFC 5454 §3.7.1).

Inputs: ``meta.json``; ``traces/`` (the scenario's phase marks and steps, mn1's registration and DHCPv6
events, the HA's prefix and binding events); ``probes/*.csv``; ``kea/kea-leases6.csv`` (Kea's memfile
lease file, every change appended); ``configs/mn1.toml``; and the HA's home-link pcap, where the DHCPv6
messages travel IPv6-in-IPv4 (HoA↔HA) inside the FA's IPv4-in-IPv4 tunnel. Every verdict is a pure function
of those files.
"""

from __future__ import annotations

import csv
import math
import tomllib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Network
from pathlib import Path
from typing import Any

import numpy as np

from agents.mip.ha_delegation import mobile_node_duid
from agents.mip.tunnel import ipv4_embedded_link_local
from reports.errors import RunFolderError
from reports.metrics import RunResult, Verdict
from reports.pd_capture import dhcpv6_in_tunnel
from reports.rundir import Run, load_run

DELIVERY_MIN = 0.9
"""Share of a flow's packets that must arrive (moves interrupt a few ms of a 200/s flow)."""
RENEW_GAP_MAX = 0.25
"""Largest gap (s) in the CN→MN IPv6 flow around the Renew: a renewal must not interrupt traffic."""


def kea_leases(path: Path) -> list[dict[str, str]]:
    """Rows of Kea's memfile lease CSV, in the order written (the last row of a lease is its state)."""
    if not path.is_file():
        raise RunFolderError(f"{path}: missing (the scenario keeps Kea's lease file there)")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@dataclass
class PdEvidence:
    """The run's facts and the lookups the verdicts need."""

    run: Run
    leases: list[dict[str, str]]

    @property
    def meta(self) -> dict[str, Any]:
        return self.run.meta

    def mn(self, *names: str, after: float = -math.inf, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.run.events(self.meta["mobile_node"], *names)
            if e["t"] >= after and all(e.get(k) == v for k, v in match.items())
        ]

    def ha(self, *names: str) -> list[dict[str, Any]]:
        return self.run.events(self.meta["home_agent"], *names)

    def scenario(self, name: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.run.events("scenario", name) if all(e.get(k) == v for k, v in match.items())]

    def move_time(self, number: int) -> float:
        moves = self.scenario("move_started", handover=number)
        return float(moves[0]["t"]) if moves else math.inf

    def first_t(self, events: list[dict[str, Any]]) -> float:
        return float(events[0]["t"]) if events else math.nan

    @property
    def delegated(self) -> IPv6Network | None:
        events = self.mn("prefix_delegated")
        return IPv6Network(events[0]["prefix"]) if events else None

    def duid_hex(self) -> str:
        duid = mobile_node_duid(IPv4Address(self.meta["home_address"]))
        return ":".join(f"{byte:02x}" for byte in duid)

    def lease_rows(self, prefix: IPv6Network) -> list[dict[str, str]]:
        return [
            row
            for row in self.leases
            if row.get("address") == str(prefix.network_address)
            and row.get("prefix_len") == str(prefix.prefixlen)
        ]


def _check(name: str, passed: bool, detail: str) -> Verdict:
    return Verdict(name, bool(passed), detail)


def phase_home(ev: PdEvidence) -> list[Verdict]:
    config = tomllib.loads((ev.run.path / "configs" / f"{ev.meta['mobile_node']}.toml").read_text())
    configured = config.get("mobile_node", {}).get("prefixes", [])
    before = [e for e in ev.mn("prefix_accepted") if e["t"] < ev.move_time(1)]
    return [
        _check(
            "home: no IPv6 prefix configured or registered",
            not configured and not before and "dhcpv6_pd" in config,
            f"configured {configured}, registered at home {len(before)}",
        )
    ]


def registration_via(ev: PdEvidence, attachment: str, after: float) -> dict[str, Any] | None:
    care_of = ev.meta["care_ofs"][attachment]
    found = ev.mn("registration_accepted", after=after, care_of=care_of)
    return found[0] if found else None


def phase_visit(ev: PdEvidence) -> list[Verdict]:
    accepted = registration_via(ev, "fa1", ev.move_time(1))
    return [_check("visit-fa1: IPv4 registration through FA1", accepted is not None, "")]


def link_local_event(ev: PdEvidence) -> dict[str, Any] | None:
    found = ev.mn("prefix_accepted", link_local=True)
    return found[0] if found else None


def phase_link_local(ev: PdEvidence) -> list[Verdict]:
    first = registration_via(ev, "fa1", ev.move_time(1))
    event = link_local_event(ev)
    expected = IPv6Network(ipv4_embedded_link_local(IPv4Address(ev.meta["home_address"])))
    together = bool(ev.meta.get("link_local_first"))  # in the first request: accepted by the same reply
    ok = event is not None and first is not None and event.get("code") == 0
    ok = (
        ok
        and event is not None
        and first is not None
        and (event["t"] >= first["t"] if together else event["t"] > first["t"])
    )
    ok = ok and event is not None and IPv6Network(event["prefix"]) == expected
    detail = "" if event is None else f"{event['prefix']} code {event.get('code')}"
    when = "with" if together else "after"
    return [
        _check(f"link-local: fe80::<HoA> registered {when} the IPv4 registration (length 255)", ok, detail)
    ]


def phase_dhcpv6(ev: PdEvidence) -> list[Verdict]:
    link_local = link_local_event(ev)
    after = link_local["t"] if link_local else math.inf
    solicits = ev.mn("dhcpv6_sent", after=after, message="SOLICIT")
    if ev.meta.get("exhausted"):
        said = ev.mn("dhcpv6_no_prefix")
        return [
            _check("dhcpv6: Solicit sent over the tunnel after the link-local", bool(solicits), ""),
            _check(
                "dhcpv6: pool exhausted, NoPrefixAvail heard, no prefix delegated",
                bool(said) and not ev.mn("prefix_delegated"),
                said[0]["message"] if said else "no NoPrefixAvail",
            ),
        ]
    delegated = ev.mn("prefix_delegated")
    rapid = bool(ev.meta.get("rapid_commit"))
    how = delegated[0]["how"] if delegated else None
    exchange_ok = how == ("rapid-commit" if rapid else "request")
    if not rapid:
        exchange_ok = exchange_ok and bool(ev.mn("dhcpv6_received", message="ADVERTISE"))
        exchange_ok = exchange_ok and bool(ev.mn("dhcpv6_sent", message="REQUEST"))
    prefix = ev.delegated
    rows = ev.lease_rows(prefix) if prefix else []
    in_pool = prefix is not None and prefix.subnet_of(IPv6Network(ev.meta["pool"]))
    kea_ok = bool(rows) and rows[0]["duid"] == ev.duid_hex() and int(rows[0]["valid_lifetime"]) > 0
    label = "Solicit/Reply with Rapid Commit" if rapid else "Solicit/Advertise/Request/Reply"
    return [
        _check("dhcpv6: Solicit sent over the tunnel after the link-local", bool(solicits), ""),
        _check(f"dhcpv6: {label}", exchange_ok, f"delegated by {how}"),
        _check(
            "dhcpv6: Kea's lease file holds the prefix for mn1's DUID",
            kea_ok and in_pool,
            f"{prefix} in {len(rows)} lease rows",
        ),
    ]


def phase_prefix(ev: PdEvidence) -> list[Verdict]:
    prefix = ev.delegated
    if prefix is None:
        return [_check("prefix: delegated prefix registered", False, "nothing delegated")]
    accepted = ev.mn("prefix_accepted", prefix=str(prefix), link_local=False)
    at_ha = [e for e in ev.ha("prefix_registered") if e.get("prefix", {}).get("prefix") == str(prefix)]
    checked = [e for e in ev.ha("delegations_read") if at_ha and e["t"] <= at_ha[0]["t"]]
    return [
        _check(
            "prefix: the delegated prefix registered in explicit mode (code 0)",
            bool(accepted) and accepted[0].get("code") == 0 and bool(at_ha),
            "",
        ),
        _check(
            "prefix: the HA read Kea's leases before accepting it", bool(checked), f"{len(checked)} reads"
        ),
    ]


def delivery(ev: PdEvidence, name: str) -> tuple[float, int, int]:
    """Share, received and sent of the packets ``name`` sent before the scenario asked for the deregistration
    (after it, the prefix is released and then the binding goes)."""
    flow = ev.run.flows.get(name)
    ending = ev.scenario("step", what="deregister_sent")
    until = min((float(e["t"]) for e in ending), default=math.inf)
    if flow is None:
        return 0.0, 0, 0
    sent = flow.send_t < until
    received = int(np.count_nonzero(sent & ~np.isnan(flow.recv_t)))
    total = int(np.count_nonzero(sent))
    return (received / total if total else 0.0), received, total


def phase_traffic(ev: PdEvidence) -> list[Verdict]:
    verdicts = []
    for name in ("v6-down", "v6-up"):
        share, received, sent = delivery(ev, name)
        verdicts.append(
            _check(f"traffic: {name} reaches the new address", share >= DELIVERY_MIN, f"{received} of {sent}")
        )
    return verdicts


def largest_gap(times: np.ndarray[Any, Any], start: float, end: float) -> float:
    window = np.sort(times[(times >= start) & (times <= end)])
    if window.size < 2:
        return math.inf
    return float(np.max(np.diff(window)))


def phase_renew(ev: PdEvidence) -> list[Verdict]:
    renewals = ev.mn("prefix_delegated", how="renew")
    prefix = ev.delegated
    same = bool(renewals) and all(e["prefix"] == str(prefix) for e in renewals)
    lost = [e for e in ev.mn("delegation_lost") if e.get("reason") != "released"]
    flow = ev.run.flows.get("v6-down")
    gap = math.inf
    if renewals and flow is not None:
        t = renewals[0]["t"]
        gap = largest_gap(flow.recv_t[~np.isnan(flow.recv_t)], t - 0.5, t + 0.5)
    return [
        _check("renew: Renew at T1 keeps the same prefix", same and not lost, f"{len(renewals)} renewals"),
        _check(
            "renew: no interruption of CN→MN IPv6 around the Renew",
            gap <= RENEW_GAP_MAX,
            f"largest gap {gap * 1000:.0f} ms",
        ),
    ]


def phase_move(ev: PdEvidence) -> list[Verdict]:
    moved = ev.move_time(2)
    accepted = registration_via(ev, "fa2", moved)
    prefix = str(ev.delegated)
    release = ev.first_t(ev.mn("dhcpv6_sent", message="RELEASE"))
    end = release if not math.isnan(release) else math.inf
    dropped = [
        e
        for e in ev.ha("prefix_deregistered")
        if moved <= e["t"] < end and e.get("prefix", {}).get("prefix") == prefix
    ]
    flow = ev.run.flows.get("v6-down")
    via_fa2 = 0
    if flow is not None and "fa2" in flow.path_labels:
        code = flow.path_labels.index("fa2")
        via_fa2 = int(np.count_nonzero((flow.path_codes == code) & ~np.isnan(flow.recv_t)))
    return [
        _check("move-fa2: registered through FA2", accepted is not None, ""),
        _check(
            "move-fa2: the prefix is kept across the move", not dropped and via_fa2 > 0, f"{via_fa2} via fa2"
        ),
    ]


def phase_deregistration(ev: PdEvidence) -> list[Verdict]:
    prefix = ev.delegated
    verdicts = []
    asked = ev.scenario("step", what="deregister_sent")
    if prefix is not None:
        finished = ev.mn("dhcpv6_release_finished")
        released = ev.first_t(ev.mn("dhcpv6_sent", message="RELEASE"))
        deregistered = ev.first_t(ev.mn("rrq_sent", after=asked[0]["t"] if asked else math.inf, lifetime=0))
        verdicts.append(
            _check(
                "deregistration: asked to deregister, mn1 releases the prefix first",
                bool(asked) and asked[0]["t"] <= released < deregistered,
                f"Release {1000 * (deregistered - released):.0f} ms before the deregistration request",
            )
        )
        rows = ev.lease_rows(prefix)
        ended = bool(rows) and int(rows[-1]["valid_lifetime"]) == 0
        verdicts.append(
            _check(
                "deregistration: Release answered and Kea's lease ended",
                bool(ev.mn("dhcpv6_sent", message="RELEASE"))
                and bool(finished)
                and finished[0]["confirmed"]
                and ended,
                f"last lease row valid lifetime {rows[-1]['valid_lifetime'] if rows else '-'}",
            )
        )
    after = ev.scenario("step", what="delegations_after")
    removed = [e for e in ev.ha("binding_removed") if e.get("home_address") == ev.meta["home_address"]]
    verdicts.append(
        _check(
            "deregistration: binding removed and no delegation left",
            bool(removed) and bool(after) and after[-1].get("delegations") == [],
            "",
        )
    )
    return verdicts


def phase_ipv4_only(ev: PdEvidence) -> list[Verdict]:
    registered = ev.mn("prefix_accepted", link_local=False)
    share, received, sent = delivery(ev, "v4-down")
    return [
        _check("ipv4-only: no IPv6 prefix registered", not registered, ""),
        _check("ipv4-only: IPv4 keeps flowing", share >= DELIVERY_MIN, f"{received} of {sent}"),
    ]


def capture_verdicts(ev: PdEvidence) -> list[Verdict]:
    pcap = ev.run.path / "pcaps" / "ha-ha-eth0.pcap"
    if not ev.meta.get("pcap"):
        return []  # --no-pcap: nothing was captured, nothing to judge
    if not pcap.is_file():
        name = "pcap: DHCPv6 seen IPv6-in-IPv4-in-IPv4 on the HA's home link"
        return [_check(name, False, "pcaps/ha-ha-eth0.pcap is missing although the run captured")]
    seen = dhcpv6_in_tunnel(pcap, IPv4Address(ev.meta["home_address"]))
    answered = "REPLY" in seen or (ev.meta.get("exhausted") and "ADVERTISE" in seen)
    return [
        _check(
            "pcap: DHCPv6 seen IPv6-in-IPv4-in-IPv4 on the HA's home link",
            "SOLICIT" in seen and bool(answered),
            ", ".join(f"{name} ×{count}" for name, count in sorted(seen.items())) or "none",
        )
    ]


PHASE_CHECKS = {
    "home": phase_home,
    "visit-fa1": phase_visit,
    "link-local": phase_link_local,
    "dhcpv6": phase_dhcpv6,
    "prefix": phase_prefix,
    "traffic": phase_traffic,
    "renew": phase_renew,
    "move-fa2": phase_move,
    "deregistration": phase_deregistration,
    "ipv4-only": phase_ipv4_only,
}


def phase_times(ev: PdEvidence) -> dict[str, float]:
    """Seconds from the first IPv4 registration request after the move to FA1, per milestone."""
    moved = ev.move_time(1)
    requests = ev.mn("rrq_sent", after=moved)
    if not requests:
        return {}
    start = float(requests[0]["t"])
    registration = registration_via(ev, "fa1", moved)
    link_local = link_local_event(ev)
    solicit = ev.mn("dhcpv6_sent", message="SOLICIT")
    delegated = ev.mn("prefix_delegated")
    prefix = ev.mn("prefix_accepted", link_local=False)
    flow = ev.run.flows.get("v6-down")
    first_v6 = math.nan
    if flow is not None and np.any(~np.isnan(flow.recv_t)):
        first_v6 = float(np.nanmin(flow.recv_t))
    marks = {
        "registration": registration["t"] if registration else math.nan,
        "link-local": link_local["t"] if link_local else math.nan,
        "solicit": ev.first_t(solicit),
        "delegated": ev.first_t(delegated),
        "prefix registered": ev.first_t(prefix),
        "first IPv6 from CN": first_v6,
    }
    return {name: round(t - start, 4) for name, t in marks.items()}


def analyse_dhcpv6_pd(run: Run, leases: list[dict[str, str]]) -> RunResult:
    ev = PdEvidence(run, leases)
    verdicts: list[Verdict] = []
    for phase in run.meta.get("phases", []):
        check = PHASE_CHECKS.get(phase)
        if check is None:
            raise RunFolderError(f"meta.json: unknown phase {phase!r}")
        verdicts += check(ev)
    verdicts += capture_verdicts(ev)
    for item in run.meta.get("expectations") or []:
        if not item["passed"]:
            verdicts.append(Verdict(f"scenario: {item['name']}", False, str(item.get("detail", ""))))
    times = phase_times(ev)
    metrics = {
        "scenario": "dhcpv6_pd",
        "delegated": None if ev.delegated is None else str(ev.delegated),
        "milestones_s": times,
        "verdicts": [v.to_dict() for v in verdicts],
        "flows": {
            name: dict(zip(("share", "received", "sent"), delivery(ev, name), strict=True))
            for name in run.flows
        },
    }
    passed = bool(verdicts) and all(v.passed for v in verdicts)
    return RunResult(run.path, metrics, [], verdicts, passed, list(run.flows), list(run.notes))


def render_dhcpv6_pd(run_dir: Path) -> RunResult:
    """Analyse a DHCPv6-PD run folder and (re)write metrics.json, plots/ and report.md."""
    from reports.dhcpv6_pd_report import write_outputs

    run = load_run(Path(run_dir))
    result = analyse_dhcpv6_pd(run, kea_leases(run.path / "kea" / "kea-leases6.csv"))
    write_outputs(run, result)
    return result


