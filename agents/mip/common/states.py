"""States, triggers and the TRANSITIONS table of each state machine (h11 style).

A machine changes state only through :func:`next_state` on its table; a pair missing from the
table raises :class:`IllegalTransition`, which is always a bug and never caused by input.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

StateT = TypeVar("StateT", bound=Enum)
TriggerT = TypeVar("TriggerT", bound=Enum)


class IllegalTransition(RuntimeError):
    """A (state, trigger) pair that is not in the machine's table."""


def next_state(table: dict[tuple[StateT, TriggerT], StateT], state: StateT, trigger: TriggerT) -> StateT:
    """The state after ``trigger`` in ``state``; :class:`IllegalTransition` if the pair is not legal."""
    after = table.get((state, trigger))
    if after is None:
        raise IllegalTransition(f"{trigger.value} is not allowed in state {state.value}")
    return after


# -- home agent: one per mobile node (RFC 5944 §4.6) ------------------------------------------------


class NodeState(Enum):
    """Where the HA believes a mobile node is (RFC 5944 §4.6)."""

    HOME = "home"
    AWAY = "away"


class NodeTrigger(Enum):
    REGISTERED = "registered"
    CARE_OF_REMOVED = "care-of removed, others remain"
    LAST_CARE_OF_REMOVED = "last care-of removed"
    DEREGISTERED_ALL = "deregistered all"


HOME_AGENT_TRANSITIONS: dict[tuple[NodeState, NodeTrigger], NodeState] = {
    (NodeState.HOME, NodeTrigger.REGISTERED): NodeState.AWAY,
    (NodeState.AWAY, NodeTrigger.REGISTERED): NodeState.AWAY,
    (NodeState.AWAY, NodeTrigger.CARE_OF_REMOVED): NodeState.AWAY,
    (NodeState.AWAY, NodeTrigger.LAST_CARE_OF_REMOVED): NodeState.HOME,
    (NodeState.HOME, NodeTrigger.DEREGISTERED_ALL): NodeState.HOME,
    (NodeState.AWAY, NodeTrigger.DEREGISTERED_ALL): NodeState.HOME,
}
"""Every legal (state, trigger) pair of one mobile node; anything else is a bug."""


# -- mobile node (RFC 5944 §3.6) --------------------------------------------------------------------


class MnState(Enum):
    """Registration state of the mobile node."""

    IDLE = "idle"  # nothing outstanding: no link, at home and deregistered, or told to stop trying
    REGISTERING = "registering"  # a request outstanding, no valid binding at this CoA
    REGISTERED = "registered"  # a valid binding, nothing outstanding; renewal timer armed
    RENEWING = "renewing"  # a valid binding and a renewal outstanding
    DEREGISTERING = "deregistering"  # a deregistration outstanding
    STOPPED = "stopped"  # shut down


class MnTrigger(Enum):
    REGISTER = "register"
    RENEW = "renew"
    ACCEPTED = "accepted"
    DENIED = "denied"
    EXPIRED = "expired"
    LINK_DOWN = "link down"
    DEREGISTER = "deregister"
    DEREGISTERED = "deregistered"
    STOP = "stop"


_S, _T = MnState, MnTrigger
_ACTIVE = (_S.IDLE, _S.REGISTERING, _S.REGISTERED, _S.RENEWING, _S.DEREGISTERING)
MOBILE_NODE_TRANSITIONS: dict[tuple[MnState, MnTrigger], MnState] = {
    **{(state, _T.REGISTER): _S.REGISTERING for state in _ACTIVE},
    **{(state, _T.RENEW): _S.RENEWING for state in (_S.REGISTERING, _S.REGISTERED, _S.RENEWING)},
    (_S.REGISTERING, _T.ACCEPTED): _S.REGISTERED,
    (_S.RENEWING, _T.ACCEPTED): _S.REGISTERED,
    (_S.REGISTERING, _T.DENIED): _S.REGISTERING,
    (_S.RENEWING, _T.DENIED): _S.RENEWING,
    (_S.DEREGISTERING, _T.DENIED): _S.DEREGISTERING,
    (_S.IDLE, _T.EXPIRED): _S.IDLE,
    (_S.REGISTERING, _T.EXPIRED): _S.REGISTERING,
    (_S.REGISTERED, _T.EXPIRED): _S.REGISTERING,
    (_S.RENEWING, _T.EXPIRED): _S.REGISTERING,
    (_S.DEREGISTERING, _T.EXPIRED): _S.DEREGISTERING,
    **{(state, _T.LINK_DOWN): _S.IDLE for state in _ACTIVE},
    **{(state, _T.DEREGISTER): _S.DEREGISTERING for state in _ACTIVE},
    (_S.DEREGISTERING, _T.DEREGISTERED): _S.IDLE,
    **{(state, _T.STOP): _S.STOPPED for state in (*_ACTIVE, _S.STOPPED)},
}
"""Every legal (state, trigger) pair; anything else is a bug."""
