"""The PD client's states, TRANSITIONS table, configuration and lease (RFC 8415 §7.6, §18.2, §21.21)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv6Network

from agents.mip.mn import dhcpv6_timing as t
from agents.mip.wire.dhcpv6 import INFINITY, IaPd, IaPrefix

SOL_MAX_RT_OPTION = 82
"""Requested in every ORO, as RFC 8415 §18.2.1-§18.2.5 require (servers such as Kea drop an empty ORO)."""
PREFERENCE_OPTION = 7
"""Preference option; 255 makes a client stop collecting Advertises (RFC 8415 §21.8, §18.2.9)."""


class PdState(Enum):
    IDLE = "idle"
    SOLICITING = "soliciting"
    REQUESTING = "requesting"
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"
    RELEASING = "releasing"
    STOPPED = "stopped"


class PdTrigger(Enum):
    START = "start"
    ADVERTISED = "advertise chosen"
    REPLIED = "reply with a prefix"
    FAILED = "exchange failed"
    T1 = "T1"
    T2 = "T2"
    EXPIRED = "valid lifetime ended"
    RELEASE = "release"
    RELEASED = "release finished"
    STOP = "stop"


_S, _T = PdState, PdTrigger
_HOLDING = (_S.BOUND, _S.RENEWING, _S.REBINDING)
PD_TRANSITIONS: dict[tuple[PdState, PdTrigger], PdState] = {
    (_S.IDLE, _T.START): _S.SOLICITING,
    (_S.STOPPED, _T.START): _S.SOLICITING,  # again, e.g. after a deregistration and a new registration
    (_S.SOLICITING, _T.ADVERTISED): _S.REQUESTING,
    (_S.SOLICITING, _T.REPLIED): _S.BOUND,
    (_S.REQUESTING, _T.REPLIED): _S.BOUND,
    (_S.REQUESTING, _T.FAILED): _S.SOLICITING,
    (_S.BOUND, _T.T1): _S.RENEWING,
    (_S.RENEWING, _T.T2): _S.REBINDING,
    (_S.RENEWING, _T.REPLIED): _S.BOUND,
    (_S.REBINDING, _T.REPLIED): _S.BOUND,
    **{(state, _T.FAILED): _S.SOLICITING for state in (_S.RENEWING, _S.REBINDING)},
    **{(state, _T.EXPIRED): _S.SOLICITING for state in _HOLDING},
    **{(state, _T.RELEASE): _S.RELEASING for state in _HOLDING},
    (_S.RELEASING, _T.RELEASED): _S.STOPPED,
    **{(state, _T.STOP): _S.STOPPED for state in PdState},
}
"""Every legal (state, trigger) pair of the PD client; anything else is a bug."""


@dataclass(frozen=True)
class PdClientConfig:
    """The client's identity and timers (RFC 8415 §7.6; each may be shortened for tests)."""

    duid: bytes
    iaid: int = 1
    rapid_commit: bool = True
    requested: IPv6Network | None = None
    """Only prefixes inside this one are taken; also sent as the IAPREFIX hint (RFC 8415 §18.2.1)."""
    length_hint: int | None = None
    """Prefix-length hint (``::/len``) when ``requested`` is not set."""
    sol_max_delay: float = t.SOL_MAX_DELAY
    sol_timeout: float = t.SOL_TIMEOUT
    sol_max_rt: float = t.SOL_MAX_RT
    req_timeout: float = t.REQ_TIMEOUT
    req_max_rt: float = t.REQ_MAX_RT
    req_max_rc: int = t.REQ_MAX_RC
    ren_timeout: float = t.REN_TIMEOUT
    ren_max_rt: float = t.REN_MAX_RT
    reb_timeout: float = t.REB_TIMEOUT
    reb_max_rt: float = t.REB_MAX_RT
    rel_timeout: float = t.REL_TIMEOUT
    rel_max_rc: int = t.REL_MAX_RC

    def __post_init__(self) -> None:
        if not self.duid or len(self.duid) > 130:
            raise ValueError("duid must be 1..130 bytes (RFC 8415 §11.1)")
        if self.length_hint is not None and not 1 <= self.length_hint <= 128:
            raise ValueError("length_hint must be 1..128")
        if self.sol_max_delay < 0:
            raise ValueError("sol_max_delay must not be negative")


@dataclass(frozen=True)
class Lease:
    """The delegated prefix and its absolute deadlines (None = infinite)."""

    prefix: IPv6Network
    server_id: bytes
    preferred: int
    valid: int
    renew_at: float | None
    rebind_at: float | None
    expires_at: float | None


def deadline(now: float, seconds: float) -> float | None:
    return None if seconds >= INFINITY else now + seconds


def renewal_times(ia_pd: IaPd, prefix: IaPrefix) -> tuple[float, float]:
    """T1 and T2 from the server, or 0.5 / 0.8 × the preferred lifetime when it left them 0 (§21.21)."""
    if ia_pd.t1 and ia_pd.t2:
        return float(ia_pd.t1), float(ia_pd.t2)
    if prefix.preferred >= INFINITY:
        return float(INFINITY), float(INFINITY)
    return 0.5 * prefix.preferred, 0.8 * prefix.preferred
