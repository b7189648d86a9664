"""Sans-I/O foreign agent (RFC 5944 §2.3, §3.7; RFC 3024 §3-§5).

Driven by :meth:`ForeignAgent.receive_datagram` (UDP 434: requests from visitors on the access
link, replies from home agents on the network side, told apart by message type and the pending
list), :meth:`ForeignAgent.receive_solicitation` and :meth:`ForeignAgent.handle_timer`, every input
with ``now`` (monotonic seconds). Outputs are pulled with :meth:`datagrams_to_send`,
:meth:`advertisements_to_send` and :meth:`next_event`; the next deadline is :meth:`get_timer`.

A request passes the checks of :mod:`agents.mip.fa.policy` or is denied by the FA itself; a
passing one is relayed to its home agent with the FA-only extensions stripped (and FA-HA
authentication added when configured) and waits in the pending list. The matching reply (same home
address and Identification low 32 bits) is relayed to the visitor's link-layer address and, when
accepting, updates the visitor list; no reply within the pending timeout gives 78. The FA never
speaks IPv6: IPv6 reaches visitors inside the IPv4 tunnel (RFC 5454 §3.3.2).
"""

from __future__ import annotations

import logging
import random
from collections import Counter, deque
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import NamedTuple

from agents.mip.common.events import DatagramDiscarded, MalformedDatagram
from agents.mip.common.timers import earliest
from agents.mip.fa import policy as fa_policy
from agents.mip.fa.advertiser import OutgoingAdvertisement, foreign_agent_advertiser
from agents.mip.fa.config import ForeignAgentConfig
from agents.mip.fa.events import (
    AdvertisementSent,
    ForeignAgentDenied,
    ForeignAgentEvent,
    ForeignAuthenticationFailed,
    LinkDatagram,
    ReplyRelayed,
    SolicitationReceived,
)
from agents.mip.fa.handoff import EdgeTunnels, ExpectedVisitors, LowLatencyHandoffs
from agents.mip.fa.policy import Denial
from agents.mip.fa.restore import restore_refusal
from agents.mip.fa.visitors import PendingRequest, Visitor, VisitorList
from agents.mip.wire.codes import FIXED_PART_LENGTH, ExtensionType, MessageType, ReplyCode
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.registration import (
    RegistrationReply,
    RegistrationRequest,
    build_foreign_agent_reply,
    fa_relay_reply,
    fa_relay_request,
)

_log = logging.getLogger(__name__)

TOO_DISTANT_INTERVAL = 1.0
"""At most one 76 reply per second (RFC 3024 §4.2.1)."""
_FA_HA = ExtensionType.FOREIGN_HOME_AUTH
_REQUEST_FIXED = FIXED_PART_LENGTH[MessageType.REGISTRATION_REQUEST]
_REPLY_FIXED = FIXED_PART_LENGTH[MessageType.REGISTRATION_REPLY]


@dataclass(frozen=True)
class _Arrival:
    raw: bytes
    address: IPv4Address
    port: int
    destination: IPv4Address
    now: float
    link_address: bytes | None
    ttl: int | None
    interface: str | None


class _Target(NamedTuple):
    """Where a reply to a mobile node goes (RFC 5944 §3.7.2.3, §3.7.3.2)."""

    destination: IPv4Address
    port: int
    source: IPv4Address
    link_address: bytes | None
    interface: str | None


class ForeignAgent(LowLatencyHandoffs):
    """The foreign agent's relay machine, visitor list and advertiser; the L2 triggers of RFC 4881 come
    from :class:`~agents.mip.fa.handoff.LowLatencyHandoffs`."""

    def __init__(self, config: ForeignAgentConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.visitor_list = VisitorList()
        self.counters: Counter[str] = Counter()
        self._rng = rng if rng is not None else random.Random()
        self.advertiser = foreign_agent_advertiser(config, self._rng)
        self._events: deque[ForeignAgentEvent] = deque()
        self._outgoing: list[LinkDatagram] = []
        self._last_too_distant: float | None = None
        self._busy = config.busy
        self.expected = ExpectedVisitors()
        """Visitors an L2 trigger announced (RFC 4881, :mod:`agents.mip.fa.handoff`)."""
        self.edge_tunnels = EdgeTunnels()
        """This FA's ends of bidirectional edge tunnels (RFC 4881 §4 post-registration)."""

    # -- runtime interface -------------------------------------------------------------------

    def receive_datagram(
        self,
        data: bytes,
        source: tuple[IPv4Address, int],
        destination: IPv4Address,
        now: float,
        *,
        link_address: bytes | None = None,
        ttl: int | None = None,
        interface: str | None = None,
    ) -> None:
        """Handle one UDP-434 payload; ``link_address`` is the link-layer source of a visitor's
        request and ``ttl`` its IP TTL. Never raises: bad input is counted and reported as an event."""
        address, port = source
        arrival = _Arrival(bytes(data), address, port, destination, now, link_address, ttl, interface)
        try:
            self._receive(arrival)
        except (DecodeError, ValueError) as error:
            self._malformed(address, port, error)
        except Exception as error:  # keep serving; a bug here must not stop the agent
            _log.exception("internal error handling a datagram from %s:%s", address, port)
            self.counters["internal_errors"] += 1
            self._emit(MalformedDatagram(address, port, f"internal error: {type(error).__name__}: {error}"))

    def receive_solicitation(
        self,
        source: IPv4Address,
        now: float,
        *,
        link_address: bytes | None = None,
        interface: str | None = None,
    ) -> None:
        """An Agent Solicitation from ``source`` (RFC 5944 §2.2, §2.3), already decoded by the runtime
        (:class:`~agents.mip.wire.icmp.AgentSolicitation`): answered by the advertiser. Never raises."""
        self.counters["solicitations"] += 1
        self._emit(SolicitationReceived(source, link_address, interface))
        self.visitor_attached(link_address, now, how="solicitation")
        try:
            self.advertiser.receive_solicitation(source, now, link_address=link_address)
        except Exception as error:  # keep serving; a bug here must not stop the agent
            _log.exception("internal error answering a solicitation from %s", source)
            self.counters["internal_errors"] += 1
            self._emit(MalformedDatagram(source, 0, f"internal error: {type(error).__name__}: {error}"))

    def handle_timer(self, now: float) -> None:
        """Advertise, time out pending requests (78) and expire visitors (RFC 5944 §3.7.1)."""
        self.advertiser.handle_timer(now)
        for entry in self.visitor_list.expired_pending(now):
            reason = f"no reply from home agent {entry.home_agent} within {self.config.pending_timeout} s"
            code = ReplyCode.FA_REGISTRATION_TIMEOUT
            reply = RegistrationReply(code, 0, entry.home_address, entry.home_agent, entry.identification)
            self._reply_to_mobile_node(reply, _pending_target(entry), entry.care_of, reason)
        for visitor in self.visitor_list.expired(now):
            self._emit(visitor.removed_event("expired"))
        for closed in self.edge_tunnels.handle_timer(now):
            self._emit(closed)
        self._update_busy()

    def get_timer(self) -> float | None:
        """The next advertisement, pending timeout, visitor or edge tunnel expiry, or None."""
        return earliest(
            self.advertiser.get_timer(), self.visitor_list.next_deadline(), self.edge_tunnels.get_timer()
        )

    def datagrams_to_send(self, now: float) -> list[LinkDatagram]:
        """UDP-434 datagrams queued since the last call: relayed requests to home agents (from the
        care-of address), and replies to visitors (to ``link_address`` on ``interface``)."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def advertisements_to_send(self, now: float) -> list[OutgoingAdvertisement]:
        """ICMP Agent Advertisements queued since the last call (IP TTL 1, RFC 5944 §2.1)."""
        advertisements = self.advertiser.advertisements_to_send(now)
        for item in advertisements:
            self._emit(AdvertisementSent(item.destination, item.sequence, item.solicited))
        return advertisements

    def next_event(self) -> ForeignAgentEvent | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def shutdown(self, now: float) -> None:
        """Stop advertising with a final ICMP Lifetime 0 advertisement (RFC 1256 §5.2)."""
        self.advertiser.withdraw(now)

    def restore_visitor(self, visitor: Visitor, now: float) -> str | None:
        """Take back a visitor entry a previous run accepted, without a registration (crash recovery,
        RFC 5944 §3.7.1): ``VisitorAdded`` follows so the runtime rebuilds its delivery and reverse-tunnel
        state. Returns why it was not taken back, or None."""
        reason = restore_refusal(visitor, self.config, self.visitor_list, now)
        if reason is not None:
            return reason
        self.visitor_list.put(visitor)
        self._emit(visitor.event(existed=False))
        self.counters["visitors_restored"] += 1
        self._update_busy()
        return None

    def visitor(self, home_address: IPv4Address) -> Visitor | None:
        """The visitor entry for this home address, if any."""
        return self.visitor_list.get(home_address)

    def visitors(self, now: float) -> list[dict[str, object]]:
        """The visitor list as JSON-able dicts (control socket ``visitors``)."""
        return self.visitor_list.snapshot(now)

    def status(self, now: float) -> dict[str, object]:
        """A JSON-able summary (control socket ``status``)."""
        return {
            "role": "fa",
            "care_of_addresses": [str(address) for address in self.config.care_of_addresses],
            "visitors": len(self.visitor_list),
            "pending": self.visitor_list.pending_count,
            "busy": self._busy,
            "advertisement": self.advertiser.status(),
            "counters": dict(sorted(self.counters.items())),
        }

    # -- requests from visitors (RFC 5944 §3.7.2) ----------------------------------------------

    def _receive(self, arrival: _Arrival) -> None:
        raw = arrival.raw
        if raw and raw[0] == MessageType.REGISTRATION_REQUEST:
            self._receive_request(arrival)
        elif raw and raw[0] == MessageType.REGISTRATION_REPLY:
            self._receive_reply(arrival)
        else:
            self._discard(arrival, f"message type {raw[0] if raw else 'none'} is not a request or reply")

    def _receive_request(self, arrival: _Arrival) -> None:
        request = self._decode_request(arrival)
        if request is None:
            return
        self.counters["requests"] += 1
        if request.has_unknown_non_skippable:
            self._discard(arrival, "unknown non-skippable extension (RFC 5944 §1.8)")
        elif request.home_address.is_unspecified:
            self._discard(arrival, "home address 0.0.0.0 (RFC 2794) is not supported")
        else:
            denial = self._check_request(arrival, request)
            if denial is None:
                self._relay_request(arrival, request)
            else:
                self._deny(arrival, request, denial)

    def _decode_request(self, arrival: _Arrival) -> RegistrationRequest | None:
        """The request; if only its extensions are malformed, 70 is sent and None returned."""
        try:
            return RegistrationRequest.decode(arrival.raw)
        except DecodeError as error:
            if len(arrival.raw) < _REQUEST_FIXED:
                raise
            self._malformed(arrival.address, arrival.port, error)
            fixed = RegistrationRequest.decode(arrival.raw[:_REQUEST_FIXED])
            denial = Denial(ReplyCode.FA_POORLY_FORMED_REQUEST, f"extensions: {error.reason}")
            self._deny(arrival, fixed, denial)
            return None

    def _check_request(self, arrival: _Arrival, request: RegistrationRequest) -> Denial | None:
        """70, 194, 67, 76, then the service checks, in that order (see :mod:`agents.mip.fa.policy`)."""
        reason = fa_policy.poorly_formed_reason(request)
        if reason is not None:
            return Denial(ReplyCode.FA_POORLY_FORMED_REQUEST, reason)
        reason = fa_policy.home_agent_field_reason(request, self.config)
        if reason is not None:
            return Denial(ReplyCode.FA_INVALID_HOME_AGENT_ADDRESS, reason)
        association = self.config.mobile_node_association(request.home_address)
        problem = None if association is None else fa_policy.mn_fa_problem(arrival.raw, association)
        if problem is not None:
            self.counters["authentication_failures"] += 1
            reason, spi = problem
            mn_fa = ExtensionType.MOBILE_FOREIGN_AUTH
            self._emit(ForeignAuthenticationFailed(arrival.address, request.home_address, mn_fa, spi, reason))
            return Denial(ReplyCode.FA_MOBILE_NODE_FAILED_AUTHENTICATION, reason)
        expected = arrival.link_address is None and self.expected.get(request.home_address, arrival.now)
        if fa_policy.too_distant(request, arrival.ttl, self.config) and not expected:
            reason = f"IP TTL {arrival.ttl} is not 255 (RFC 3024 §4.2.1)"
            return Denial(ReplyCode.FA_MOBILE_NODE_TOO_DISTANT, reason)
        return fa_policy.service_denial(request, self.config, self.visitor_list)

    def _relay_request(self, arrival: _Arrival, request: RegistrationRequest) -> None:
        """Relay to the HA from our care-of address and record the pending request (RFC 5944 §3.7.2.3).

        FA-HA authentication is added when configured, except on deregistration (protocol.md §2).
        A retransmission replaces the unanswered request of the same home address but keeps its
        deadline: 78 comes ``pending_timeout`` after the first unanswered one (RFC 5944 §3.7.1).
        """
        config = self.config
        fa_ha = None if request.is_deregistration else config.home_agent_association(request.home_agent)
        payload = fa_relay_request(arrival.raw, fa_ha=fa_ha)
        target = self._request_target(arrival, request)
        unanswered = self.visitor_list.pending(request.home_address)
        deadline = arrival.now + config.pending_timeout
        if unanswered is not None:
            deadline = min(deadline, unanswered.deadline)
            self.counters["pending_superseded"] += 1
        entry = PendingRequest(
            request.home_address,
            request.home_agent,
            request.care_of_address,
            request.identification,
            request.lifetime,
            int(request.flags),
            target.destination,
            target.port,
            target.link_address,
            target.interface,
            target.source,
            fa_policy.delivery_style(request),
            arrival.now,
            deadline,
            fa_ha is not None,
        )
        self.visitor_list.add_pending(entry)
        source = fa_policy.relay_source(request.care_of_address, config)
        self._outgoing.append(LinkDatagram(payload, request.home_agent, config.port, source, config.port))
        self.counters["relayed_requests"] += 1
        self._emit(entry.relayed_event())
        self._update_busy()

    # -- replies from home agents (RFC 5944 §3.7.3) --------------------------------------------

    def _receive_reply(self, arrival: _Arrival) -> None:
        try:
            reply = RegistrationReply.decode(arrival.raw)
        except DecodeError as error:
            self._poorly_formed_reply(arrival, error)
            return
        self.counters["replies"] += 1
        if reply.has_unknown_non_skippable:
            self._discard(arrival, "unknown non-skippable extension in a reply (RFC 5944 §1.8)")
            return
        pending = self.visitor_list.pending(reply.home_address)
        if pending is None or not pending.matches(reply.identification):
            self.counters["unsolicited_replies"] += 1
            self._discard(arrival, f"reply for {reply.home_address} matches no pending request")
            return
        if reply.accepted and arrival.address != pending.home_agent:
            self.counters["unsolicited_replies"] += 1
            self._discard(arrival, f"accepting reply from {arrival.address}, not from {pending.home_agent}")
            return
        self.visitor_list.take_pending(reply.home_address, reply.identification)
        if self._home_agent_authenticated(arrival, reply, pending):
            self._relay_reply(arrival, reply, pending)

    def _home_agent_authenticated(
        self, arrival: _Arrival, reply: RegistrationReply, pending: PendingRequest
    ) -> bool:
        """FA-HA check of the reply when an association exists; 68 to the visitor on failure."""
        association = self.config.home_agent_association(pending.home_agent)
        if association is None:
            return True
        problem = fa_policy.fa_ha_problem(arrival.raw, association, pending.is_deregistration)
        if problem is None:
            return True
        reason, spi = problem
        self.counters["authentication_failures"] += 1
        self._emit(ForeignAuthenticationFailed(arrival.address, reply.home_address, _FA_HA, spi, reason))
        code = ReplyCode.FA_HOME_AGENT_FAILED_AUTHENTICATION
        denial = RegistrationReply(code, 0, reply.home_address, reply.home_agent, pending.identification)
        self._reply_to_mobile_node(denial, _pending_target(pending), pending.care_of, reason)
        return False

    def _relay_reply(self, arrival: _Arrival, reply: RegistrationReply, pending: PendingRequest) -> None:
        """Relay to the visitor (RFC 5944 §3.7.3.2), then update the visitor list on acceptance."""
        mn_fa = self.config.mobile_node_association(reply.home_address)
        try:
            payload = fa_relay_reply(arrival.raw, mn_fa)
        except ValueError as error:  # no MN-HA authentication to relay
            code = ReplyCode.FA_POORLY_FORMED_REPLY
            failed = RegistrationReply(code, 0, reply.home_address, reply.home_agent, pending.identification)
            self._reply_to_mobile_node(failed, _pending_target(pending), pending.care_of, str(error))
            return
        self._send_to_mobile_node(payload, _pending_target(pending))
        self.counters["relayed_replies"] += 1
        home = reply.home_address
        relayed_code = int(reply.code)
        self._emit(ReplyRelayed(home, reply.home_agent, relayed_code, reply.lifetime, reply.identification))
        if reply.accepted:
            self._apply_acceptance(reply, pending)
        self._update_busy()

    def _apply_acceptance(self, reply: RegistrationReply, pending: PendingRequest) -> None:
        """Deregistration (or nothing granted) removes the visitor; otherwise add or update it with
        lifetime min(requested, granted) (RFC 5944 §3.4, §3.7.3.1)."""
        lifetime = min(pending.lifetime, reply.lifetime)
        if lifetime == 0:
            removed = self.visitor_list.remove(pending.home_address)
            if removed is not None:
                self._emit(removed.removed_event("deregistered"))
            return
        visitor = Visitor.from_pending(pending, lifetime)
        expected = self.expected.get(visitor.home_address, pending.received_at)
        if visitor.link_address is None and expected is not None:  # pre-registered (RFC 4881 §3.1)
            visitor = replace(visitor, link_address=expected.link_address, interface=expected.interface)
        previous = self.visitor_list.put(visitor)
        self._emit(visitor.event(existed=previous is not None))
        closed = self.edge_tunnels.registered(visitor.home_address, pending.received_at)
        if closed is not None:  # registered through us: the BET from the old FA has done its job (§4)
            self._emit(closed)

    def _poorly_formed_reply(self, arrival: _Arrival, error: DecodeError) -> None:
        """A reply that does not decode: 71 to the visitor if its fixed part names a pending request."""
        self._malformed(arrival.address, arrival.port, error)
        if len(arrival.raw) < _REPLY_FIXED:
            return
        fixed = RegistrationReply.decode(arrival.raw[:_REPLY_FIXED])
        pending = self.visitor_list.take_pending(fixed.home_address, fixed.identification)
        if pending is not None:
            code = ReplyCode.FA_POORLY_FORMED_REPLY
            reply = RegistrationReply(code, 0, fixed.home_address, fixed.home_agent, pending.identification)
            self._reply_to_mobile_node(reply, _pending_target(pending), pending.care_of, error.reason)

    # -- output helpers ----------------------------------------------------------------------

    def _deny(self, arrival: _Arrival, request: RegistrationRequest, denial: Denial) -> None:
        """The FA's own reply to a request it will not relay (RFC 5944 §3.7.2.2); 76 at most 1/s."""
        if denial.code == ReplyCode.FA_MOBILE_NODE_TOO_DISTANT:
            last = self._last_too_distant
            if last is not None and arrival.now - last < TOO_DISTANT_INTERVAL:
                self.counters["too_distant_suppressed"] += 1
                self._discard(arrival, f"{denial.reason}; 76 already sent within the last second")
                return
            self._last_too_distant = arrival.now
        home, agent = request.home_address, request.home_agent
        reply = RegistrationReply(denial.code, denial.lifetime, home, agent, request.identification)
        target = self._request_target(arrival, request)
        self._reply_to_mobile_node(reply, target, request.care_of_address, denial.reason)

    def _reply_to_mobile_node(
        self, reply: RegistrationReply, target: _Target, care_of: IPv4Address, reason: str
    ) -> None:
        """Send an FA-made reply (MN-FA authenticated when configured) and record the denial."""
        mn_fa = self.config.mobile_node_association(reply.home_address)
        self._send_to_mobile_node(build_foreign_agent_reply(reply, mn_fa), target)
        code = int(reply.code)
        self.counters[f"denied_{code}"] += 1
        self._emit(ForeignAgentDenied(reply.home_address, reply.home_agent, care_of, code, reason))

    def _send_to_mobile_node(self, payload: bytes, target: _Target) -> None:
        self._outgoing.append(
            LinkDatagram(
                payload,
                target.destination,
                target.port,
                target.source,
                self.config.port,
                link_address=target.link_address,
                interface=target.interface,
            )
        )

    def _request_target(self, arrival: _Arrival, request: RegistrationRequest) -> _Target:
        addresses = fa_policy.reply_addresses(arrival.address, arrival.destination, request, self.config)
        return _Target(addresses[0], arrival.port, addresses[1], arrival.link_address, arrival.interface)

    def _update_busy(self) -> None:
        """B while configured busy or at ``max_visitors`` (RFC 5944 §2.1.1)."""
        limit = self.config.max_visitors
        busy = self.config.busy or (limit is not None and self.visitor_list.occupancy() >= limit)
        if busy != self._busy:
            self._busy = busy
            self.advertiser.set_busy(busy)

    def _emit(self, event: ForeignAgentEvent) -> None:
        self._events.append(event)

    def _discard(self, arrival: _Arrival, reason: str) -> None:
        self.counters["discarded"] += 1
        self._emit(DatagramDiscarded(arrival.address, arrival.port, reason))

    def _malformed(self, address: IPv4Address, port: int, error: Exception) -> None:
        self.counters["malformed"] += 1
        offset = error.offset if isinstance(error, DecodeError) else None
        reason = error.reason if isinstance(error, DecodeError) else str(error)
        self._emit(MalformedDatagram(address, port, reason, offset))


def _pending_target(entry: PendingRequest) -> _Target:
    source = entry.reply_source
    return _Target(entry.source_address, entry.source_port, source, entry.link_address, entry.interface)
