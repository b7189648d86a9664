"""Probe flows: parse ``probes/<flow>.csv`` and compute per-flow statistics.

A CSV has the header ``seq,send_t,recv_t,path,family`` and one row per sent packet in seq order; ``recv_t`` is
empty for a lost packet, and a duplicate is an extra row with the same ``seq``. Columns may come in any order
(found by header name); extra columns are ignored. Rows are held as numpy arrays so that 60,000-row flows are
cheap to analyse and plot.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from reports.errors import RunFolderError

COLUMNS = ("seq", "send_t", "recv_t", "path", "family")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FlowData:
    """One probe flow. ``recv_t`` is NaN for lost packets; ``path_codes`` index ``path_labels``."""

    name: str
    family: int
    seq: IntArray
    send_t: FloatArray
    recv_t: FloatArray
    path_codes: IntArray
    path_labels: tuple[str, ...]

    @property
    def direction(self) -> str:
        """``down`` (CN→MN) or ``up`` (MN→CN), from the flow name; ``?`` when the name does not say."""
        for direction in ("down", "up"):
            if self.name.endswith(direction):
                return direction
        return "?"


def family_from_name(name: str) -> int:
    """4 or 6 from a flow name such as ``v6-up``; 0 when the name does not say."""
    if name.startswith(("v4", "ipv4")):
        return 4
    if name.startswith(("v6", "ipv6")):
        return 6
    return 0


def empty_flow(name: str) -> FlowData:
    return FlowData(
        name=name,
        family=family_from_name(name),
        seq=np.zeros(0, dtype=np.int64),
        send_t=np.zeros(0, dtype=np.float64),
        recv_t=np.zeros(0, dtype=np.float64),
        path_codes=np.zeros(0, dtype=np.int64),
        path_labels=(),
    )


def parse_probe_csv(path: Path, name: str, notes: list[str]) -> FlowData:
    """Parse one probe CSV; raises :class:`RunFolderError` naming the file and line."""
    label = f"probes/{path.name}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{label}: cannot read: {exc}") from None
    lines = text.split("\n")
    unterminated_last = bool(lines) and lines[-1] != ""
    if not unterminated_last:
        lines.pop()
    if not lines or not lines[0].strip():
        raise RunFolderError(f"{label} line 1: missing header (expected {','.join(COLUMNS)})")
    header = [cell.strip() for cell in next(csv.reader([lines[0]]))]
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        expected = ",".join(COLUMNS)
        raise RunFolderError(f"{label} line 1: header lacks {', '.join(missing)} (expected {expected})")
    index = [header.index(column) for column in COLUMNS]
    width = len(header)
    seqs: list[int] = []
    sends: list[float] = []
    recvs: list[float] = []
    codes: list[int] = []
    families: set[int] = set()
    labels: dict[str, int] = {}
    for number, row in enumerate(csv.reader(lines[1:]), start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        try:
            if len(row) < width:
                raise ValueError(f"expected {width} fields, found {len(row)}")
            seq, send, recv, path_label, family = _row(row, index)
        except ValueError as exc:
            if unterminated_last and number == len(lines):
                notes.append(f"{label} line {number}: unterminated last line skipped ({exc})")
                continue
            raise RunFolderError(f"{label} line {number}: {exc}") from None
        seqs.append(seq)
        sends.append(send)
        recvs.append(recv)
        codes.append(labels.setdefault(path_label, len(labels)))
        families.add(family)
    if len(families) > 1:
        raise RunFolderError(f"{label}: mixes address families {sorted(families)}")
    return FlowData(
        name=name,
        family=families.pop() if families else family_from_name(name),
        seq=np.asarray(seqs, dtype=np.int64),
        send_t=np.asarray(sends, dtype=np.float64),
        recv_t=np.asarray(recvs, dtype=np.float64),
        path_codes=np.asarray(codes, dtype=np.int64),
        path_labels=tuple(labels),
    )


def _row(row: list[str], index: list[int]) -> tuple[int, float, float, str, int]:
    seq_text, send_text, recv_text, path_text, family_text = (row[i].strip() for i in index)
    try:
        seq = int(seq_text)
    except ValueError:
        raise ValueError(f"seq {seq_text!r} is not an integer") from None
    send = _time(send_text, "send_t")
    recv = math.nan if recv_text == "" else _time(recv_text, "recv_t")
    if family_text not in ("4", "6"):
        raise ValueError(f"family {family_text!r} is not 4 or 6")
    return seq, send, recv, path_text, int(family_text)


def _time(text: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{column} {text!r} is not a finite number")
    return value


def _ms(value: float) -> float:
    return round(value * 1000.0, 3)


def first_copies(flow: FlowData) -> tuple[IntArray, FloatArray, FloatArray]:
    """(seq, send_t, recv_t) of the first reception of each received seq, in receive order."""
    received = ~np.isnan(flow.recv_t)
    seq, send, recv = flow.seq[received], flow.send_t[received], flow.recv_t[received]
    order = np.argsort(recv, kind="stable")
    seq, send, recv = seq[order], send[order], recv[order]
    _, first = np.unique(seq, return_index=True)
    first.sort()
    return seq[first], send[first], recv[first]


def flow_stats(flow: FlowData) -> dict[str, Any]:
    """Sent, received, lost, duplicates, reordered, and one-way delay median/p95/max (ms)."""
    sent = int(np.unique(flow.seq).size)
    received_rows = int(np.count_nonzero(~np.isnan(flow.recv_t)))
    seq, send, recv = first_copies(flow)
    received = int(seq.size)
    reordered = 0
    if seq.size > 1:
        running_max = np.maximum.accumulate(seq)
        reordered = int(np.count_nonzero(seq[1:] < running_max[:-1]))
    stats: dict[str, Any] = {
        "family": flow.family,
        "direction": flow.direction,
        "sent": sent,
        "received": received,
        "lost": sent - received,
        "loss_ratio": round((sent - received) / sent, 6) if sent else None,
        "duplicates": received_rows - received,
        "reordered": reordered,
        "delay_ms_median": None,
        "delay_ms_p95": None,
        "delay_ms_max": None,
        "paths": list(flow.path_labels),
    }
    if received:
        delay = recv - send
        stats["delay_ms_median"] = _ms(float(np.median(delay)))
        stats["delay_ms_p95"] = _ms(float(np.percentile(delay, 95)))
        stats["delay_ms_max"] = _ms(float(delay.max()))
    return stats


# -- windows of a flow: what was sent, received, lost, and the longest gap in [start, end] -------------


def received_between(flow: FlowData | None, start: float, end: float) -> int:
    if flow is None or not math.isfinite(start) or not math.isfinite(end):
        return 0
    recv = flow.recv_t[~np.isnan(flow.recv_t)]
    return int(np.count_nonzero((recv >= start) & (recv <= end)))


def sent_between(flow: FlowData | None, start: float, end: float) -> int:
    if flow is None:
        return 0
    return int(np.count_nonzero((flow.send_t >= start) & (flow.send_t <= end)))


def lost_between(flow: FlowData | None, start: float, end: float) -> int:
    """Packets sent in [start, end] that never arrived (duplicates count once)."""
    if flow is None:
        return 0
    sent = (flow.send_t >= start) & (flow.send_t <= end)
    seqs = set(flow.seq[sent].tolist())
    got = set(flow.seq[sent & ~np.isnan(flow.recv_t)].tolist())
    return len(seqs - got)


def span_between(flow: FlowData | None, start: float, end: float) -> tuple[int, int, int]:
    """(sent, lost, missing) of the probes sent in [start, end], counted by sequence number: the sender
    never skips a seq and logs failed sends too (:mod:`scenarios.probe`), so every seq from the one after
    the last row sent before ``start`` (else the window's first) to the one before the first row sent
    after ``end`` (else the window's last) was sent. ``missing`` are those seqs with no row at all (a
    truncated or edited file); they count as lost."""
    if flow is None or not math.isfinite(start) or not math.isfinite(end):
        return 0, 0, 0
    inside = (flow.send_t >= start) & (flow.send_t <= end)
    earlier, later = flow.seq[flow.send_t < start], flow.seq[flow.send_t > end]
    seqs = flow.seq[inside]
    if earlier.size:
        first = int(earlier.max()) + 1
    elif seqs.size:
        first = int(seqs.min())
    else:
        return 0, 0, 0
    if later.size:
        last = int(later.min()) - 1
    elif seqs.size:
        last = int(seqs.max())
    else:
        return 0, 0, 0
    sent = max(0, last - first + 1)
    present = {seq for seq in seqs.tolist() if first <= seq <= last}
    got = {seq for seq in flow.seq[inside & ~np.isnan(flow.recv_t)].tolist() if first <= seq <= last}
    return sent, sent - len(got), sent - len(present)


def max_gap_ms(flow: FlowData | None, start: float, end: float) -> float | None:
    """The longest time between two packets received in [start, end], in ms."""
    if flow is None:
        return None
    recv = np.sort(flow.recv_t[~np.isnan(flow.recv_t)])
    recv = recv[(recv >= start) & (recv <= end)]
    if recv.size < 2:
        return None
    return round(float(np.max(np.diff(recv))) * 1000, 3)


def logged_by_sender(run_dir: Path, flow: str) -> int | None:
    """How many rows the sender of ``flow`` wrote, by its own summary (the last JSON line of
    ``logs/probe-send-FLOW.log``: packets sent plus failed sends, each one a row); None without one."""
    log = run_dir / "logs" / f"probe-send-{flow}.log"
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            summary = json.loads(line)
        except ValueError:
            continue
        if isinstance(summary, dict) and isinstance(summary.get("sent"), int):
            errors = summary.get("errors") or {}
            failed = sum(v for v in errors.values() if isinstance(v, int)) if isinstance(errors, dict) else 0
            return int(summary["sent"]) + failed
    return None

