"""Verdict of pre-registered handovers (``--handoff pre``): the downlink loses nothing.

RFC 4881 §3: on the L2 trigger the mobile node registers the new FA's care-of address through the old FA
(with S, so the home agent bicasts meanwhile) and the new FA buffers what arrives for it until the mobile
node attaches; so no downlink packet sent from the trigger until :data:`SETTLED_S` after the move may go
missing. The window ends there, or at the next handover's start (its trigger, else its move) if that
comes first, never at the next move's end (``handovers.csv``'s ``lost``): packets in flight when the
*next* link goes down are not counted against this move.
"""

from __future__ import annotations

from typing import Any

from reports.bicast import Check, downlink
from reports.windows import FlowTimeline

MODE = "pre"
SETTLED_S = 0.5
"""Seconds after the move that still belong to an announced handover's loss window."""


def start(row: dict[str, Any]) -> float:
    """When a handover starts: its L2 trigger if it had one, else its move (CLOCK_MONOTONIC seconds)."""
    trigger = row.get("l2_trigger_ms")
    offset = float(trigger) / 1000.0 if isinstance(trigger, int | float) else 0.0
    return float(row["t_move"]) + offset


def windows(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float, float]]:
    """(row, trigger, end) of each pre-registered row, rows in move order (see the module docstring)."""
    found = []
    for index, row in enumerate(rows):
        if row.get("handoff") != MODE or not isinstance(row.get("l2_trigger_ms"), int | float):
            continue
        end = float(row["t_move"]) + SETTLED_S
        if index + 1 < len(rows):
            end = min(end, start(rows[index + 1]))
        found.append((row, start(row), end))
    return found


def pre_checks(rows: list[dict[str, Any]], timelines: dict[str, FlowTimeline], mode: object) -> list[Check]:
    """The ``pre`` verdict; none when the run neither asked for ``pre`` nor pre-registered a move. Asked
    and none pre-registered (only FA → FA moves are announced) is a failure: nothing was shown."""
    moves = windows(rows)
    if not moves and mode != MODE:
        return []
    names = downlink(list(timelines))
    verdict = f"{MODE}: no downlink packet lost (RFC 4881 §3)"
    if not moves or not names:
        return [(verdict, False, "no pre-registered handover" if not moves else "no downlink flow")]
    lost = []
    for row, begin, end in moves:
        for name in names:
            missing = timelines[name].lost_between(begin, end)
            if missing:
                lost.append(f"handover {row['handover']} ({row['from']}→{row['to']}) {name}: {missing} lost")
    detail = "; ".join(lost) or (
        f"{len(moves)} pre-registered move{'' if len(moves) == 1 else 's'}, {', '.join(names)}, "
        f"trigger to {SETTLED_S:g} s after each move"
    )
    return [(verdict, not lost, detail)]
