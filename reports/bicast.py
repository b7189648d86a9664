"""Verdicts of make-before-break handovers (``--handoff make-before-break``): simultaneous bindings.

RFC 5944 §3.6.1.3: while the home agent holds two bindings (the request for the new care-of address had S
set) it sends a copy of every packet to each care-of address; the mobile node, with one interface on each
link, receives each downlink packet twice. Once the MN registers without S the HA keeps one binding. So,
for every make-before-break row of ``handovers.csv`` and every downlink flow:

* no packet lost across the move: none sent from the L2 trigger until the HA removed the old binding
  (``<flow>_lost_to_removal``; the whole window's ``lost`` when there was no removal) never arrived — the
  new path carried the packets before the old link went down;
* duplicates during the overlap (extra copies of packets sent before the old binding was removed) > 0:
  the proof that the HA bicast;
* no duplicate of a packet sent after ``ha_old_binding_removed_ms`` (and that removal happened).
"""

from __future__ import annotations

from typing import Any

MODE = "make-before-break"

Check = tuple[str, bool, str]
"""(verdict name, passed, detail): :func:`reports.metrics.judge` makes them verdicts."""


def downlink(flows: list[str]) -> list[str]:
    """The flows towards the mobile node (the handover scenario names them ``*-down``)."""
    return [name for name in flows if name.endswith("-down")]


def bicast_checks(rows: list[dict[str, Any]], flows: list[str], mode: object) -> list[Check]:
    """The three make-before-break verdicts; none when the run has no such handover and did not ask."""
    moves = [row for row in rows if row.get("handoff") == MODE]
    if not moves and mode != MODE:
        return []
    names = downlink(flows)
    if not moves or not names:
        why = "no make-before-break handover" if not moves else "no downlink flow"
        return [(f"{MODE}: the home agent bicast during the overlap", False, why)]
    lost, silent, late = [], [], []
    for row in moves:
        label = f"handover {row['handover']} ({row['from']}→{row['to']})"
        for name in names:
            missing = row.get(f"{name}_lost_to_removal")
            missing = row.get(f"{name}_lost") if missing is None else missing
            if missing:
                lost.append(f"{label} {name}: {missing} lost")
            after = row.get(f"{name}_duplicates_after")
            overlap = int(row.get(f"{name}_duplicates") or 0) - int(after or 0)
            if overlap <= 0:
                silent.append(f"{label} {name}: no duplicate")
            if after is None:
                late.append(f"{label}: the old binding was never removed")
            elif after:
                late.append(f"{label} {name}: {after} duplicates after the old binding was removed")
    count = f"{len(moves)} make-before-break moves"
    overlap_total = sum(
        int(row.get(f"{n}_duplicates") or 0) - int(row.get(f"{n}_duplicates_after") or 0)
        for row in moves
        for n in names
    )
    return [
        (f"{MODE}: no downlink packet lost", not lost, "; ".join(lost) or f"{count}, {', '.join(names)}"),
        (
            f"{MODE}: the home agent bicast during the overlap (RFC 5944 §3.6.1.3)",
            not silent,
            "; ".join(silent) or f"{count}, {overlap_total} duplicates in all",
        ),
        (
            f"{MODE}: no duplicate once the old binding is gone",
            not late,
            "; ".join(sorted(set(late))) or f"{count}, 0 duplicates after each removal",
        ),
    ]
