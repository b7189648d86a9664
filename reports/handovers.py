"""One row per handover: the traces decomposed into steps, and what every probe flow saw.

A handover starts at the harness's ``move_started`` (``t_move``) and its window lasts until the next one
(or the end of the probes); a low-latency handoff's window starts earlier, at its ``l2_trigger``
(offsets stay relative to ``t_move``, so its pre-registration steps are negative). Each step is the
first matching event in the window, given as an offset in ms from ``t_move``; a step that did not
happen (a return home has no FA relay, advertisement-driven detection has no link events) is None.
Registration messages are matched by Identification: FA relay, HA receipt,
HA reply and the MN's reply all belong to one of the Registration Requests the MN sent in the window.
"""

from __future__ import annotations

import math
from typing import Any

from agents.mip.common.trace_schema import TraceEvent
from reports.rundir import SCENARIO_NODE, Run
from reports.windows import FlowTimeline

Event = dict[str, Any]

STEP_COLUMNS = (
    "l2_trigger_ms",
    "pre_ready_ms",
    "link_down_ms",
    "link_up_ms",
    "pre_attached_ms",
    "fa_attached_ms",
    "movement_detected_ms",
    "solicitation_sent_ms",
    "agent_discovered_ms",
    "rrq_sent_ms",
    "fa_rrq_relayed_ms",
    "ha_rrq_received_ms",
    "ha_binding_ms",
    "ha_rrp_sent_ms",
    "fa_rrp_relayed_ms",
    "rrp_received_ms",
    "registration_accepted_ms",
    "tunnel_up_ms",
    "ha_old_binding_removed_ms",
    "move_finished_ms",
)
"""Decomposition columns, in the order the steps normally happen. A low-latency handoff (RFC 4881
pre-registration, ``--handoff pre``) starts before the move: its L2 trigger, request, binding and reply
have negative offsets; ``pre_attached_ms`` is the MN routing via the new FA at link up and
``fa_attached_ms`` the new FA flushing its buffer (L2-LU or the MN's solicitation).
``ha_old_binding_removed_ms`` is the HA dropping the MN's previous care-of address (replaced,
deregistered; with make-before-break, the request without S after the move, RFC 5944 §3.6.1.3)."""

HEAD_COLUMNS = ("handover", "from", "to", "detection", "handoff", "t_move", "t_move_s")
REGISTRATION_COLUMNS = (
    "movement_reason",
    "registration_rtt_ms",
    "registration_attempts",
    "rrp_code",
    "rrp_codes",
    "harness_restored",
)
FLOW_SUFFIXES = (
    "interruption_ms",
    "lost",
    "restored",
    "first_rx_ms",
    "duplicates",
    "duplicates_after",
    "lost_to_removal",
    "sender_gap_ms",
    "lost_span_ms",
)
"""``duplicates``: extra copies received in the window; ``duplicates_after``: extra copies of packets sent
after ``ha_old_binding_removed_ms`` (none may exist once the HA holds one binding); ``lost_to_removal``:
packets sent from the start of the window until then that never arrived (``lost`` runs to the next move,
so it also counts packets in flight when the *next* link goes down). Both empty without a removal in the
window. ``sender_gap_ms``: the sender's longest silence inside the interruption (one packet interval when
it kept its pace); ``lost_span_ms``: first to last send of the packets lost inside it, a lower bound of
the path's own outage (both :mod:`reports.windows`; empty when a reordered or duplicated packet ended the
interruption)."""


def handover_columns(flows: list[str]) -> list[str]:
    """The columns of ``handovers.csv``, in order."""
    columns = [*HEAD_COLUMNS, *STEP_COLUMNS, *REGISTRATION_COLUMNS]
    for flow in flows:
        columns += [f"{flow}_{suffix}" for suffix in FLOW_SUFFIXES]
    return columns


def _offset(event: Event | None, t_move: float) -> float | None:
    return None if event is None else round((float(event["t"]) - t_move) * 1000.0, 3)


def _first(events: list[Event], start: float, end: float, *names: str) -> Event | None:
    for event in events:
        if start <= event["t"] < end and (not names or event["event"] in names):
            return event
    return None


def _within(events: list[Event], start: float, end: float) -> list[Event]:
    return [event for event in events if start <= event["t"] < end]


def _for_handover(events: list[Event], number: int, start: float, end: float, name: str) -> Event | None:
    """The harness event ``name`` tagged with this handover, else the first in the window."""
    tagged = [e for e in events if e["event"] == name and e.get("handover") == number]
    return tagged[0] if tagged else _first(events, start, end, name)


def _address(care_of: object) -> str:
    """``198.51.100.7`` from ``198.51.100.7`` or ``198.51.100.7:4434`` (UDP tunnelling)."""
    return str(care_of).split(":")[0]


def _matching(events: list[Event], ids: set[object]) -> list[Event]:
    return [event for event in events if event.get("identification") in ids] if ids else events


def flow_timelines(run: Run) -> dict[str, FlowTimeline]:
    """Each flow of ``run`` ready for window queries (built once per analysis: rows and verdicts)."""
    return {name: FlowTimeline(flow) for name, flow in run.flows.items()}


def build_handovers(run: Run, timelines: dict[str, FlowTimeline] | None = None) -> list[dict[str, Any]]:
    """The handover rows of ``run``, in move order (see :func:`handover_columns`); ``timelines``:
    :func:`flow_timelines` of ``run`` if the caller has them."""
    harness = run.events(SCENARIO_NODE)
    moves = [event for event in harness if event["event"] == TraceEvent.MOVE_STARTED]
    stopped = [event["t"] for event in harness if event["event"] == TraceEvent.PROBES_STOPPED]
    run_end = max(stopped) if stopped else math.inf
    timelines = flow_timelines(run) if timelines is None else timelines
    rows: list[dict[str, Any]] = []
    starts = [_window_start(harness, move, index) for index, move in enumerate(moves)]
    for index, move in enumerate(moves):
        t_move = float(move["t"])
        t_start = starts[index]
        t_end = starts[index + 1] if index + 1 < len(moves) else run_end
        tag = move.get("handover")
        number: int = tag if isinstance(tag, int) and not isinstance(tag, bool) else index + 1
        trigger = _tagged(harness, TraceEvent.L2_TRIGGER, number)
        row: dict[str, Any] = {
            "handover": number,
            "from": move.get("from"),
            "to": move.get("to"),
            "detection": move.get("detection") or run.meta.get("detection"),
            "handoff": trigger.get("mode") if trigger is not None else "standard",
            "t_move": t_move,
            "t_move_s": round(t_move - run.t0, 6),
        }
        link_down = _for_handover(harness, number, t_move, t_end, "link_down")
        row["link_down_ms"] = _offset(link_down, t_move)
        row["link_up_ms"] = _offset(_for_handover(harness, number, t_move, t_end, "link_up"), t_move)
        finished = _for_handover(harness, number, t_move, t_end, TraceEvent.MOVE_FINISHED)
        row["move_finished_ms"] = _offset(finished, t_move)
        row["harness_restored"] = None if finished is None else finished.get("restored")
        row["l2_trigger_ms"] = _offset(trigger, t_move)
        row.update(_registration(run, t_start, t_end, t_move))
        t_cut = new_path_time(row, t_move, link_down)
        removed = row.get("ha_old_binding_removed_ms")
        t_removed = None if not isinstance(removed, int | float) else t_move + float(removed) / 1000.0
        for name, timeline in timelines.items():
            seen = timeline.handover(t_move, t_cut, t_end, lost_from=t_start)
            row[f"{name}_interruption_ms"] = seen.interruption_ms
            row[f"{name}_lost"] = seen.lost
            row[f"{name}_restored"] = seen.restored
            row[f"{name}_duplicates"] = seen.duplicates
            row[f"{name}_sender_gap_ms"] = seen.sender_gap_ms
            row[f"{name}_lost_span_ms"] = seen.lost_span_ms
            row[f"{name}_duplicates_after"] = (
                None if t_removed is None else timeline.duplicates_sent_between(t_removed, t_end)
            )
            row[f"{name}_lost_to_removal"] = (
                None if t_removed is None else timeline.lost_between(min(t_start, t_move), t_removed)
            )
            first_rx = None if seen.first_rx is None else {"t": seen.first_rx}
            row[f"{name}_first_rx_ms"] = _offset(first_rx, t_move)
        rows.append({column: row.get(column) for column in handover_columns(list(run.flows))})
    return rows


def _tagged(events: list[Event], name: str, number: int) -> Event | None:
    return next((e for e in events if e["event"] == name and e.get("handover") == number), None)


def _window_start(harness: list[Event], move: Event, index: int) -> float:
    """The handover's own L2 trigger if it had one (RFC 4881), else its move."""
    tag = move.get("handover")
    number = tag if isinstance(tag, int) and not isinstance(tag, bool) else index + 1
    trigger = _tagged(harness, TraceEvent.L2_TRIGGER, number)
    return float(move["t"]) if trigger is None else min(float(trigger["t"]), float(move["t"]))


def new_path_time(row: dict[str, Any], t_move: float, link_down: Event | None) -> float:
    """When the new path can carry packets: after the move and link-down, once the HA holds the new
    binding and the MN has its reply. A packet sent after that and received proves the new path; the
    interruption is the longest silence before it, so stragglers that still got through the old
    attachment just after the move (advertisement-only moves keep the carrier up) cannot hide the outage."""
    cut = t_move if link_down is None else max(t_move, float(link_down["t"]))
    for column in ("ha_binding_ms", "rrp_received_ms"):
        offset = row.get(column)
        if isinstance(offset, int | float):
            cut = max(cut, t_move + float(offset) / 1000.0)
    return cut


def _registration(run: Run, start: float, end: float, reference: float | None = None) -> dict[str, Any]:
    """Decomposition of the MN's discovery and registration in ``[start, end)``, as offsets from
    ``reference`` (default ``start``)."""
    mn = _within(run.events(run.mobile_node), start, end)
    ha = _within(run.events(run.home_agent), start, end)
    fa = _within(
        run.foreign_agent_events(
            TraceEvent.FA_RRQ_RELAYED, TraceEvent.FA_RRP_RELAYED, TraceEvent.LLH_VISITOR_ATTACHED
        ),
        start,
        end,
    )
    window_start, start = start, start if reference is None else reference
    requests = [event for event in mn if event["event"] == TraceEvent.RRQ_SENT]
    ids: set[object] = {event.get("identification") for event in requests}
    out: dict[str, Any] = {}
    out["pre_ready_ms"] = _offset(_first(mn, window_start, end, TraceEvent.LLH_PRE_READY), start)
    out["pre_attached_ms"] = _offset(_first(mn, window_start, end, TraceEvent.LLH_PRE_ATTACHED), start)
    out["fa_attached_ms"] = _offset(_first(fa, window_start, end, TraceEvent.LLH_VISITOR_ATTACHED), start)
    moved = _first(mn, start, end, TraceEvent.MOVEMENT_DETECTED)
    out["movement_detected_ms"] = _offset(moved, start)
    out["movement_reason"] = None if moved is None else moved.get("reason")
    out["solicitation_sent_ms"] = _offset(_first(mn, start, end, TraceEvent.SOLICITATION_SENT), start)
    out["agent_discovered_ms"] = _offset(_first(mn, start, end, TraceEvent.AGENT_DISCOVERED), start)
    out["rrq_sent_ms"] = _offset(requests[0] if requests else None, start)
    relayed = _matching([e for e in fa if e["event"] == TraceEvent.FA_RRQ_RELAYED], ids)
    out["fa_rrq_relayed_ms"] = _offset(relayed[0] if relayed else None, start)
    received = _matching([e for e in ha if e["event"] == TraceEvent.RRQ_RECEIVED], ids)
    out["ha_rrq_received_ms"] = _offset(received[0] if received else None, start)
    home_address = _home_address(run, received)
    binding = _binding(ha, home_address, requests)
    out["ha_binding_ms"] = _offset(binding, start)
    replies_sent = _matching([e for e in ha if e["event"] == TraceEvent.RRP_SENT], ids)
    out["ha_rrp_sent_ms"] = _offset(replies_sent[0] if replies_sent else None, start)
    replies_relayed = _matching([e for e in fa if e["event"] == TraceEvent.FA_RRP_RELAYED], ids)
    out["fa_rrp_relayed_ms"] = _offset(replies_relayed[0] if replies_relayed else None, start)
    replies = _matching([e for e in mn if e["event"] == TraceEvent.RRP_RECEIVED], ids)
    out["rrp_received_ms"] = _offset(replies[0] if replies else None, start)
    codes = [e.get("code") for e in replies]
    out["rrp_codes"] = codes
    accepted = [e for e in replies if isinstance(e.get("code"), int) and e["code"] < 2]
    answer = accepted[0] if accepted else (replies[0] if replies else None)
    out["rrp_code"] = None if answer is None else answer.get("code")
    out["registration_rtt_ms"] = None
    out["registration_attempts"] = len(requests)
    if answer is not None:
        asked = [
            e
            for e in requests
            if e.get("identification") == answer.get("identification") and e["t"] <= answer["t"]
        ]
        if asked:
            out["registration_rtt_ms"] = round((answer["t"] - asked[-1]["t"]) * 1000.0, 3)
        out["registration_attempts"] = len([e for e in requests if e["t"] <= answer["t"]])
    out["registration_accepted_ms"] = _offset(
        _first(mn, window_start, end, TraceEvent.REGISTRATION_ACCEPTED, TraceEvent.DEREGISTERED), start
    )
    out["tunnel_up_ms"] = _offset(_first(mn, window_start, end, TraceEvent.TUNNEL_UP), start)
    out["ha_old_binding_removed_ms"] = _offset(_old_binding_removed(ha, home_address), start)
    return out


def _old_binding_removed(ha: list[Event], home_address: str | None) -> Event | None:
    """The HA's first removal of one of the MN's care-of addresses in the window (the previous one)."""
    for event in ha:
        if event["event"] != TraceEvent.BINDING_REMOVED:
            continue
        if home_address is None or str(event.get("home_address")) == home_address:
            return event
    return None


def _home_address(run: Run, received: list[Event]) -> str | None:
    """The MN's home address: from the HA's matched request, the MN's tunnel, or meta."""
    for event in received:
        if event.get("home_address"):
            return str(event["home_address"])
    for event in run.events(run.mobile_node, TraceEvent.TUNNEL_UP):
        if event.get("home_address"):
            return str(event["home_address"])
    value = run.meta.get("home_address")
    return str(value) if value else None


def _binding(ha: list[Event], home_address: str | None, requests: list[Event]) -> Event | None:
    """The HA's first binding change for the MN's requested care-of address (or deregistration)."""
    care_ofs = {_address(e.get("care_of")) for e in requests}
    deregistering = any(e.get("lifetime") == 0 for e in requests)
    for event in ha:
        if home_address is not None and str(event.get("home_address")) != home_address:
            continue
        if event["event"] in (TraceEvent.BINDING_ADDED, TraceEvent.BINDING_UPDATED):
            if not requests or _address(event.get("care_of")) in care_ofs:
                return event
        elif (
            event["event"] == TraceEvent.BINDING_REMOVED
            and deregistering
            and event.get("reason") == "deregistered"
        ):
            return event
    return None
