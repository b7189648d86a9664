"""DHCPv6 retransmission (RFC 8415 §15) and the client's timer constants (§7.6).

RT = IRT + RAND×IRT for the first transmission, then RT = 2×RTprev + RAND×RTprev, and past MRT
RT = MRT + RAND×MRT; RAND is uniform in [-0.1, +0.1] from an injected rng. The first Solicit's RAND is
strictly positive (§15). MRC caps the transmissions and MRD the duration (0 = no cap).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

SOL_MAX_DELAY = 1.0
SOL_TIMEOUT = 1.0
SOL_MAX_RT = 3600.0
REQ_TIMEOUT = 1.0
REQ_MAX_RT = 30.0
REQ_MAX_RC = 10
REN_TIMEOUT = 10.0
REN_MAX_RT = 600.0
REB_TIMEOUT = 10.0
REB_MAX_RT = 600.0
REL_TIMEOUT = 1.0
REL_MAX_RC = 4
RANDOMIZATION = 0.1


@dataclass(frozen=True)
class RetransmissionParameters:
    """IRT, MRT, MRC, MRD of one message type (RFC 8415 §15); 0 = no limit for MRT/MRC/MRD."""

    irt: float
    mrt: float = 0.0
    mrc: int = 0
    mrd: float = 0.0
    first_above_irt: bool = False
    """Solicit only: the first RT is strictly greater than IRT (§15)."""

    def __post_init__(self) -> None:
        if self.irt <= 0 or self.mrt < 0 or self.mrc < 0 or self.mrd < 0:
            raise ValueError("IRT must be positive; MRT, MRC and MRD non-negative (RFC 8415 §15)")


@dataclass
class Retransmission:
    """The schedule of one exchange: when to send again, and when to give up."""

    parameters: RetransmissionParameters
    rng: random.Random
    started: float
    rt: float = field(default=0.0, init=False)
    count: int = field(default=0, init=False)

    def _rand(self, strictly_positive: bool = False) -> float:
        value = self.rng.uniform(-RANDOMIZATION, RANDOMIZATION)
        if strictly_positive:
            value = abs(value) or RANDOMIZATION / 2
        return value

    def next_timeout(self) -> float:
        """Count one transmission and return the RT to wait before the next one."""
        p = self.parameters
        if self.count == 0:
            rt = p.irt + self._rand(p.first_above_irt) * p.irt
        else:
            rt = 2 * self.rt + self._rand() * self.rt
        if p.mrt and rt > p.mrt:
            rt = p.mrt + self._rand() * p.mrt
        self.count += 1
        self.rt = rt
        return rt

    def exhausted(self, now: float) -> bool:
        """True once MRC transmissions were sent or MRD has elapsed (§15)."""
        p = self.parameters
        return bool(p.mrc and self.count >= p.mrc) or bool(p.mrd and now - self.started >= p.mrd)

    def elapsed_hundredths(self, now: float) -> int:
        """Elapsed Time option value: hundredths of a second, capped at 0xffff (§21.9)."""
        return min(0xFFFF, max(0, round((now - self.started) * 100)))
