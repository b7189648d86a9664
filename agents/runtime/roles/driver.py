"""Drive a sans-I/O machine from asyncio: datagrams and timers in, datagrams and events out.

After every input the driver sends what the machine queued, hands each event to the role's handler (which
applies it to the datapath or netlink) and writes it to the trace, then re-arms the one timer (design.md §5).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence, Set
from ipaddress import IPv4Address
from typing import Any, Generic, Protocol, TypeVar

from agents.mip.common import events as ev
from agents.mip.common.events import OutgoingDatagram
from agents.mip.common.trace_schema import TraceEvent
from agents.mip.wire.codes import MessageType
from agents.runtime.frame import AgentContext
from agents.runtime.security_log import BUDGETED_EVENTS, SecurityLog
from agents.runtime.timer import AgentTimer
from agents.runtime.trace import TraceWriter, monotonic_now
from agents.runtime.udp import MobileIpSocket, Received

logger = logging.getLogger(__name__)
TUNNEL_DATA = bytes((MessageType.TUNNEL_DATA,))


class TracedEvent(Protocol):
    """What every machine event is (:class:`agents.mip.common.events._Event`): a name from the trace
    schema and JSON-able fields."""

    @property
    def name(self) -> str: ...
    def to_dict(self) -> dict[str, object]: ...


E = TypeVar("E", bound=TracedEvent)
"""A role's event union: ``HomeAgentEvent``, ``ForeignAgentEvent``, ``MobileNodeEvent``, ``PdClientEvent``."""
E_co = TypeVar("E_co", bound=TracedEvent, covariant=True)


class Machine(Protocol[E_co]):
    def receive_datagram(self, data: bytes, source: Any, destination: Any, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def get_timer(self) -> float | None: ...
    def datagrams_to_send(self, now: float) -> Sequence[OutgoingDatagram]: ...
    def next_event(self) -> E_co | None: ...


EventHandler = Callable[[E], None]
"""A role's ``apply``: matches every member of its event union (``assert_never`` on the rest)."""


def wall_clock_offset() -> float:
    """Seconds to add to CLOCK_MONOTONIC to get Unix time (for NTP Identification, RFC 5944 §5.7)."""
    return time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)


class MachineDriver(Generic[E]):
    """One machine, its socket, its timer and its event handler (typed by the machine's event union): the
    one driver of the three roles (the FA's :class:`~agents.runtime.roles.foreign_agent.ForeignAgentDriver`
    and the MN's :class:`~agents.runtime.roles.mn_discovery_io.DiscoveringDriver` only add their links)."""

    def __init__(
        self, machine: Machine[E], sock: MobileIpSocket, context: AgentContext, on_event: EventHandler[E]
    ) -> None:
        self.machine = machine
        self.sock = sock
        self.context = context
        self.on_event = on_event
        self.on_tunnel_data: Callable[[Received], None] | None = None
        """Where MIP Tunnel Data (type 4, RFC 3519 §3.3) on the same port goes: the datapath, not the
        machine (registration messages are never tunnelled, tunnelled packets never registrations)."""
        self.timer: AgentTimer = context.make_timer(machine, on_fired=lambda _now: self.flush())
        self.first: Callable[[OutgoingDatagram], bool] | None = None
        """Which datagrams :meth:`sends_first` picks (None: none)."""
        self.holds_trace = True
        """Write a step's trace lines after its datagrams (issue 14: a relayed request or reply, a home
        agent's binding, no longer wait for ~50 µs of JSON and ``write`` per line)."""
        self.received_at: float | None = None
        """When the datagram being handled was read: its ``rrq_received`` / ``rrp_received`` trace line
        says so, however long the handling took before the line is written (issue 14's budget)."""

    def start(self, first: Callable[[IPv4Address], bool] | None = None) -> None:
        """Start receiving; ``first``: sources served before others (see :meth:`MobileIpSocket.start`)."""
        self.sock.start(self.context.loop, self.datagram_received, first)
        self.flush()

    def now(self) -> float:
        return self.context.loop.time()

    def datagram_received(self, received: Received) -> None:
        if self.on_tunnel_data is not None and received.payload[:1] == TUNNEL_DATA:
            self.on_tunnel_data(received)
            return
        self.received_at = monotonic_now()
        self.deliver(received)
        self.flush()

    def deliver(self, received: Received) -> None:
        """Hand a received datagram to the machine (the FA adds its TTL and link-layer source)."""
        self.machine.receive_datagram(received.payload, received.source, received.destination, self.now())

    def sends_first(self, datagram: OutgoingDatagram) -> bool:
        """True for a datagram that may leave before the queued events are applied (default: none).

        The home agent's reply to a care-of address (issue 14: reply first, then the datapath; the
        tunnel it needs is in place long before the reply's round trip through the FA and the MN ends),
        the mobile node's request to a new foreign agent by link-layer frame (before its routes change)."""
        return self.first is not None and self.first(datagram)

    def send_first(self, datagram: OutgoingDatagram) -> None:
        """Send a datagram :meth:`sends_first` chose (default: the UDP socket)."""
        self._send(datagram)

    def _send(self, datagram: OutgoingDatagram) -> None:
        self.sock.send(
            datagram.payload, datagram.destination, datagram.port, source=datagram.source, ttl=datagram.ttl
        )

    def send_other(self) -> None:
        """Send what else the machine queued, after its datagrams (the FA's advertisements; default none)."""

    def flush(self) -> None:
        """Apply and trace queued events, then send queued datagrams (and :meth:`send_other`), then
        re-arm the timer.

        Events first: a home agent's reply to a deregistration from the home link must not follow the
        binding's host route into the tunnel (RFC 5944 §3.8.3, §4.6), and a new binding's tunnel is in
        place before the mobile node hears it was accepted and starts using it. Datagrams that
        :meth:`sends_first` picks leave before (their ``rrq_sent`` / ``rrp_sent`` trace lines carry the
        time they left). Every trace line of the step is written after its datagrams have left
        (:meth:`~agents.runtime.trace.TraceWriter.held`), stamped when its event was applied."""
        with self.context.trace.held() if self.holds_trace else contextlib.nullcontext():
            later: list[OutgoingDatagram] = []
            sent_to: set[IPv4Address] = set()
            sent_at = None
            for datagram in self.machine.datagrams_to_send(self.now()):
                if self.sends_first(datagram):
                    self.send_first(datagram)
                    sent_at = monotonic_now()
                    sent_to.add(datagram.destination)
                else:
                    later.append(datagram)
            self._apply_events(sent_at, sent_to)
            for datagram in later:
                self._send(datagram)
            self.send_other()
        self.timer.rearm()

    def _apply_events(self, sent_at: float | None = None, sent_to: Set[IPv4Address] = frozenset()) -> None:
        """Apply and trace the queued events (:func:`apply_events`); the request or reply events of
        datagrams sent first (to ``sent_to``) are stamped ``sent_at``, a received request or reply the
        time its datagram was read (:attr:`received_at`)."""
        received_at, self.received_at = self.received_at, None
        stamp = None
        tracing = self.context.trace.enabled  # the stamps are only written to the trace
        if tracing and (sent_at is not None or received_at is not None):
            stamp = functools.partial(event_time, sent_at=sent_at, sent_to=sent_to, received_at=received_at)
        apply_events(self.on_event, self.machine.next_event, self.context, stamp=stamp)


Stamp = Callable[[TracedEvent], float | None]
"""When an event happened, if earlier than its trace line is written (None: now)."""


def event_time(
    event: TracedEvent, *, sent_at: float | None, sent_to: Set[IPv4Address], received_at: float | None
) -> float | None:
    """The time a request or reply event's trace line carries (issue 14's budget): ``received_at`` for
    a received one, ``sent_at`` for a request (the MN sends one at a time) or a reply to a destination
    in ``sent_to`` that left before the events were applied; None for every other event."""
    match event:
        case ev.RequestReceived() | ev.ReplyReceived():
            return received_at
        case ev.RequestSent():
            return sent_at
        case ev.ReplySent(destination=destination) if destination in sent_to:
            return sent_at
        case _:
            return None


def apply_events(
    on_event: Callable[[Any], None],
    next_event: Callable[[], TracedEvent | None],
    context: AgentContext,
    *,
    budgeted: bool = True,
    stamp: Stamp | None = None,
) -> None:
    """Hand each event the machine queued to the role's ``apply`` and write it to the trace: the one path
    every role's events take (HA, FA and MN drivers, the MN's DHCPv6-PD client). ``budgeted``: security
    events go through the agent's security-log budget; ``stamp``: the time an event's trace line carries
    when it happened earlier (:func:`event_time`). (``on_event`` is typed by its role: mypy cannot infer
    a union type variable from ``E | None``, so the pairing is checked where each role builds it.)"""
    security = context.security if budgeted else None
    while (event := next_event()) is not None:
        at = None if stamp is None else stamp(event)
        trace_and_apply(event, on_event, context.trace, security, at=at)


def trace_and_apply(
    event: E,
    on_event: EventHandler[E],
    trace: TraceWriter,
    security: SecurityLog | None = None,
    *,
    at: float | None = None,
) -> None:
    """Write ``event`` to the trace (stamped ``at`` if given: when it happened, earlier), then apply it;
    a failed install is logged and traced, never raised (one bad event must not stop the agent serving
    everyone else). Security events and flood-prone noise go through ``security`` instead: logged and
    traced within its budget."""
    name = str(event.name)
    if security is not None and name in BUDGETED_EVENTS:
        if security.admit(name):
            security.write(name, _fields(event))
    elif trace.enabled and at is not None:
        trace.emit_at(at, name, **_fields(event))
    elif trace.enabled:  # the JSON-able fields are only worth building for a trace line
        trace.emit(name, **_fields(event))
    try:
        on_event(event)
    except Exception as exc:
        logger.error("could not apply %s: %s", name, exc)
        trace.emit(TraceEvent.APPLY_FAILED, what=name, error=str(exc))


def _fields(event: TracedEvent) -> dict[str, Any]:
    fields: dict[str, Any] = event.to_dict()
    fields.pop("event", None)
    return fields
