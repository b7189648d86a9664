"""What one flow saw around one handover: interruption, losses, restoration.

Definitions (all times CLOCK_MONOTONIC seconds; ``t_move`` is the harness's ``move_started``):

* the *anchor* is the last reception at or before ``t_move`` (the last packet via the old attachment);
* the flow is *restored* by the first reception, before the window ends (next move, or the end of the
  probes), of a packet **sent** after ``t_cut``: the time the new path can work (after the move, the
  link-down, the HA's new binding and the MN's reply; :func:`reports.handovers.new_path_time`), so neither
  a straggler in flight at the move nor packets that still got through the old attachment (a move without
  carrier drop) count as the new path working;
* the *interruption* is the longest silence between consecutive receptions from the anchor to that first
  packet. With no stragglers this is exactly ``first recv_t > t_move`` − ``last recv_t ≤ t_move``;
* *lost* counts packets sent in ``[t_move, t_end)`` that never arrived (duplicates count once);
* *duplicates* counts the extra copies received in the window (a copy to each care-of address with
  simultaneous bindings, RFC 5944 §3.6.1.3; a new FA's flushed buffer, RFC 4881);
* the interruption's *send window* runs from the latest send time received by its start to the send
  time of the packet that ended it (none when that packet was sent earlier, or is the same packet: a
  reordered or duplicated reception ended the silence). Within it:
* the *sender gap* is the longest time the sender sent nothing (a failed ``sendto`` counts as sent: the
  sender was there). A steady sender keeps it at one packet interval; more says the receiver's silence
  was partly the sender's (a probe waiting for a CPU the agents held, issue 14);
* the *lost span* is the time from the first to the last send of the packets that never arrived. With
  one outage and a constant path delay, every packet sent inside the window was lost and the path was
  down at each of those sends, so the path's own outage was at least the lost span and at most the
  interruption, however unsteady the sender.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reports.probes import FloatArray, FlowData


@dataclass(frozen=True)
class HandoverFlow:
    """One flow in one handover window; None where there is nothing to measure."""

    interruption_ms: float | None
    lost: int
    restored: bool
    old_last_rx: float | None  # the receptions either side of the longest silence
    new_first_rx: float | None
    first_rx: float | None  # first reception of a packet sent after the move
    duplicates: int = 0  # extra copies received in the window (simultaneous bindings, a flushed buffer)
    sender_gap_ms: float | None = None  # the sender's longest silence inside the send window
    lost_span_ms: float | None = None  # first to last send of the packets lost inside it


class FlowTimeline:
    """A flow's receptions sorted by time, and its lost packets' send times, ready for window queries."""

    def __init__(self, flow: FlowData) -> None:
        received = ~np.isnan(flow.recv_t)
        order = np.argsort(flow.recv_t[received], kind="stable")
        self.rx_t: FloatArray = flow.recv_t[received][order]
        self.rx_send: FloatArray = flow.send_t[received][order]
        self.rx_latest_send: FloatArray = np.maximum.accumulate(self.rx_send)  # by each reception
        received_seqs, first_copy = np.unique(flow.seq[received], return_index=True)
        extra = np.ones(int(received.sum()), dtype=bool)
        extra[first_copy] = False  # every reception but the first of its seq (in CSV order)
        self.dup_t: FloatArray = np.sort(flow.recv_t[received][extra])
        self.dup_send: FloatArray = np.sort(flow.send_t[received][extra])
        lost_rows = ~received & ~np.isin(flow.seq, received_seqs)
        _, first = np.unique(flow.seq[lost_rows], return_index=True)
        self.lost_send: FloatArray = np.sort(flow.send_t[lost_rows][first])
        _, each_seq = np.unique(flow.seq, return_index=True)
        sent = flow.send_t[each_seq]
        self.sent: FloatArray = np.sort(sent[np.isfinite(sent)])  # one per packet sent or tried

    def sender_gap(self, first_send: float, last_send: float) -> float:
        """The longest time between consecutive sends in ``[first_send, last_send]`` (a send window,
        ``first_send < last_send``), in ms."""
        low = int(np.searchsorted(self.sent, first_send, side="left"))
        high = int(np.searchsorted(self.sent, last_send, side="right"))
        return round(float(np.max(np.diff(self.sent[low:high]))) * 1000.0, 3)

    def lost_span(self, first_send: float, last_send: float) -> float:
        """First to last send of the packets sent inside ``(first_send, last_send)`` that never arrived,
        in ms; 0 with fewer than two."""
        low = int(np.searchsorted(self.lost_send, first_send, side="right"))
        high = int(np.searchsorted(self.lost_send, last_send, side="left"))
        if high - low < 2:
            return 0.0
        return round(float(self.lost_send[high - 1] - self.lost_send[low]) * 1000.0, 3)

    def lost_between(self, start: float, end: float) -> int:
        """Lost packets sent in ``[start, end)``."""
        low = int(np.searchsorted(self.lost_send, start, side="left"))
        high = self.lost_send.size
        if math.isfinite(end):
            high = int(np.searchsorted(self.lost_send, end, side="left"))
        return max(0, high - low)

    def duplicates_between(self, start: float, end: float) -> int:
        """Extra copies received in ``[start, end)``."""
        low = int(np.searchsorted(self.dup_t, start, side="left"))
        high = int(np.searchsorted(self.dup_t, end, side="left")) if math.isfinite(end) else self.dup_t.size
        return max(0, high - low)

    def duplicates_sent_between(self, start: float, end: float) -> int:
        """Extra copies of packets sent in ``[start, end)``."""
        low = int(np.searchsorted(self.dup_send, start, side="left"))
        high = self.dup_send.size
        if math.isfinite(end):
            high = int(np.searchsorted(self.dup_send, end, side="left"))
        return max(0, high - low)

    def handover(
        self, t_move: float, t_cut: float, t_end: float, lost_from: float | None = None
    ) -> HandoverFlow:
        """Interruption, losses and restoration for the window ``[t_move, t_end)``; losses (and
        duplicates) are counted from ``lost_from`` when the handover began before the move (an L2
        trigger, RFC 4881)."""
        start = t_move if lost_from is None else min(lost_from, t_move)
        lost = self.lost_between(start, t_end)
        duplicates = self.duplicates_between(start, t_end)
        after = int(np.searchsorted(self.rx_t, t_move, side="right"))
        stop = int(np.searchsorted(self.rx_t, t_end, side="left")) if math.isfinite(t_end) else self.rx_t.size
        fresh = np.flatnonzero(self.rx_send[after:stop] > t_cut)
        if fresh.size == 0:
            return HandoverFlow(None, lost, False, None, None, None, duplicates)
        first = after + int(fresh[0])
        first_rx = float(self.rx_t[first])
        anchor = after - 1
        if anchor < 0:
            return HandoverFlow(None, lost, True, None, None, first_rx, duplicates)
        gaps = np.diff(self.rx_t[anchor : first + 1])
        widest = int(np.argmax(gaps))
        old_last = float(self.rx_t[anchor + widest])
        new_first = float(self.rx_t[anchor + widest + 1])
        interruption = round((new_first - old_last) * 1000.0, 3)
        window_start = float(self.rx_latest_send[anchor + widest])  # the latest send through by then
        window_end = float(self.rx_send[anchor + widest + 1])
        if window_end <= window_start:  # ended by a reordered or duplicated packet: no send window
            return HandoverFlow(interruption, lost, True, old_last, new_first, first_rx, duplicates)
        gap, span = self.sender_gap(window_start, window_end), self.lost_span(window_start, window_end)
        return HandoverFlow(interruption, lost, True, old_last, new_first, first_rx, duplicates, gap, span)
