"""Verdict of pre-registered handovers (``--handoff pre``): the downlink loses nothing.

RFC 4881 §3: on the L2 trigger the mobile node registers the new FA's care-of address through the old FA
(with S, so the home agent bicasts meanwhile) and the new FA buffers what arrives for it until the mobile
node attaches; so no downlink packet sent from the trigger until :data:`SETTLED_S` after the move may go
missing. The window ends there, not at the next move (``handovers.csv``'s ``lost``), so packets in flight
when the *next* link goes down are not counted against this move.
"""

from __future__ import annotations

from typing import Any

from reports.bicast import Check, downlink
from reports.windows import FlowTimeline

MODE = "pre"
SETTLED_S = 0.5
"""Seconds after the move that still belong to an announced handover's loss window."""


def window(row: dict[str, Any]) -> tuple[float, float] | None:
    """(trigger, move + :data:`SETTLED_S`) of an announced row, in CLOCK_MONOTONIC seconds; None without
    a trigger."""
    trigger = row.get("l2_trigger_ms")
    if not isinstance(trigger, int | float):
        return None
    t_move = float(row["t_move"])
    return t_move + float(trigger) / 1000.0, t_move + SETTLED_S


def pre_checks(rows: list[dict[str, Any]], timelines: dict[str, FlowTimeline]) -> list[Check]:
    """The ``pre`` verdict; none when the run pre-registered no move (only FA → FA moves are announced)."""
    moves = [(row, span) for row in rows if row.get("handoff") == MODE and (span := window(row)) is not None]
    names = downlink(list(timelines))
    if not moves or not names:
        return []
    lost = []
    for row, (start, end) in moves:
        for name in names:
            missing = timelines[name].lost_between(start, end)
            if missing:
                lost.append(f"handover {row['handover']} ({row['from']}→{row['to']}) {name}: {missing} lost")
    detail = "; ".join(lost) or (
        f"{len(moves)} pre-registered move{'' if len(moves) == 1 else 's'}, {', '.join(names)}, "
        f"trigger to {SETTLED_S:g} s after each move"
    )
    return [(f"{MODE}: no downlink packet lost (RFC 4881 §3)", not lost, detail)]
