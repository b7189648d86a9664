"""A mobile node's keepalives in a UDP tunnel through a NAT (RFC 3519 §4.9-§4.10), as pure state.

The first keepalive goes K seconds after the registration (never earlier, §4.9); each answered one
schedules the next K seconds after it was sent. An unanswered one is retried after
:data:`RETRY_GAP` (or K if shorter); after ``attempts`` unanswered keepalives the NAT's mapping is
presumed lost and the mobile node registers again, which makes a new mapping the home agent learns
from the request's source port (§4.6). This side never adapts K itself (§4.9: the HA's value rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

RETRY_GAP = 1.0
"""Seconds between a keepalive that got no answer and the next try."""


class KeepaliveStep(Enum):
    """What :meth:`Keepalives.due` says to do now."""

    WAIT = "wait"
    SEND = "send"
    LOST = "lost"


@dataclass
class Keepalives:
    """Keepalive schedule and misses of one UDP tunnel."""

    interval: float
    attempts: int
    next_due: float
    sequence: int = 0
    unanswered: int = 0
    last_sent: float = 0.0

    @classmethod
    def after_registration(cls, interval: float, attempts: int, now: float) -> Keepalives:
        return cls(interval=interval, attempts=attempts, next_due=now + interval)

    def due(self, now: float) -> KeepaliveStep:
        if now < self.next_due:
            return KeepaliveStep.WAIT
        return KeepaliveStep.LOST if self.unanswered >= self.attempts else KeepaliveStep.SEND

    def sent(self, now: float) -> int:
        """Record a keepalive sent at ``now``; its sequence number (16 bits, for the ICMP Echo)."""
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.unanswered += 1
        self.last_sent = now
        self.next_due = now + min(self.interval, RETRY_GAP)
        return self.sequence

    def answered(self, sequence: int) -> bool:
        """An Echo Reply for ``sequence`` came back: the mapping lives. False for an unknown sequence."""
        if self.unanswered == 0 or sequence != self.sequence:
            return False
        self.unanswered = 0
        self.next_due = self.last_sent + self.interval
        return True
