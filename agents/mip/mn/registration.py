"""The mobile node's registration machine: requests, retransmission, replies (RFC 5944 §3.6, §5.7).

:class:`RegistrationCore` registers ``_care_of`` with the home agent, directly (co-located) or via
``_route`` (a foreign agent), retransmits, matches and verifies replies, applies per-prefix
outcomes (RFC 5454 §3.5) and ends bindings. :class:`agents.mip.mn.mobile_node.MobileNode` adds the
inputs (links, advertisements, commands) and the moves. States change only through
:data:`TRANSITIONS`.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter, deque
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Network

from agents.mip.common.config import INFINITE_LIFETIME, MOBILE_IP_PORT, MobileNodeConfig, ReplayProtection
from agents.mip.common.events import (
    AuthenticationFailed,
    ClockResynchronised,
    DatagramDiscarded,
    Deregistered,
    KeepaliveAnswered,
    KeepaliveDue,
    KeepaliveLost,
    MalformedDatagram,
    MobileNodeEvent,
    OutgoingDatagram,
    RegistrationAccepted,
    RegistrationDenied,
    RegistrationEvent,
    RegistrationExpired,
    ReplyReceived,
    TunnelDown,
    TunnelUp,
)
from agents.mip.common.states import MOBILE_NODE_TRANSITIONS, MnState, MnTrigger, next_state
from agents.mip.common.timers import MIN_REQUEST_GAP, earliest
from agents.mip.mn import prefixes as mn_prefixes
from agents.mip.mn.keepalive import Keepalives, KeepaliveStep
from agents.mip.mn.requests import (
    ForeignAgentRoute,
    IdentificationSource,
    PendingRequest,
    Registration,
    build_request,
    flag_encapsulation,
    new_deregistration,
    new_registration,
    prefix_requests,
    shutdown_backoff,
    unauthenticated_fa_denial,
)
from agents.mip.wire.auth import verify_with
from agents.mip.wire.codes import ExtensionType, MessageType, RegistrationFlag, ReplyCode, is_fa_denial
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.registration import RegistrationReply

TRANSITIONS = MOBILE_NODE_TRANSITIONS
_log = logging.getLogger(__name__)


class RegistrationCore:
    """Registration state and the request/reply exchange of one mobile node."""

    def __init__(self, config: MobileNodeConfig, wall_clock_offset: float, rng: random.Random) -> None:
        self.config = config
        self.counters: Counter[str] = Counter()
        self._ids = IdentificationSource(config.replay_protection, wall_clock_offset, rng)
        self._state = MnState.IDLE
        self._care_of: IPv4Address | None = None
        """The care-of address in use: co-located, an FA's, or the HoA when home."""
        self._route: ForeignAgentRoute | None = None
        """The foreign agent registrations go through; None: straight to the home agent."""
        self._last_request_at = -math.inf
        self._prefixes: tuple[IPv6Network, ...] = config.prefixes
        self._link_local = config.link_local_bootstrap
        self._pending: PendingRequest | None = None
        self._registration: Registration | None = None
        self._tunnel_care_of: IPv4Address | None = None
        self._tunnel_udp: float | None = None
        """The keepalive interval while the tunnel runs in UDP (RFC 3519), else None."""
        self._keepalives: Keepalives | None = None
        self._ipv6 = mn_prefixes.PrefixState(config.effective_interface_identifier)
        self._stopping = False
        self._events: deque[MobileNodeEvent] = deque()
        self._outgoing: list[OutgoingDatagram] = []

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> MnState:
        return self._state

    @property
    def is_stopped(self) -> bool:
        """True once :meth:`shutdown` has finished (deregistered, or given up trying)."""
        return self._state is MnState.STOPPED

    @property
    def at_home(self) -> bool:
        return self._care_of == self.config.home_address

    def _transition(self, trigger: MnTrigger) -> None:
        self._state = next_state(TRANSITIONS, self._state, trigger)

    # -- commands ------------------------------------------------------------------------------

    def register(self, now: float) -> bool:
        """Register (or renew) now; False when there is no care-of address away from home."""
        if self.is_stopped or self._stopping or self._care_of is None or self.at_home:
            return False
        self._start_registration(now)
        return True

    def deregister(self, now: float, all_care_ofs: bool = False) -> bool:
        """Send a deregistration (Lifetime 0); ``all_care_ofs`` uses CoA = HoA (RFC 5944 §3.6.1.2)."""
        if self.is_stopped or self._care_of is None:
            return False
        self._start_deregistration(now, all_care_ofs or self.at_home)
        return True

    def set_prefixes(
        self, prefixes: tuple[IPv6Network, ...], now: float, link_local: bool | None = None
    ) -> None:
        """Change the requested IPv6 prefixes and re-register; omitted ones are dropped (RFC 5454 §3.8)."""
        for prefix in prefixes:
            if prefix.is_link_local or prefix.is_multicast:
                raise ValueError(f"{prefix} cannot be registered as a prefix")
        self._prefixes = tuple(dict.fromkeys(prefixes))
        if link_local is not None:
            self._link_local = link_local
        if self._state in (MnState.REGISTERING, MnState.REGISTERED, MnState.RENEWING):
            self.register(now)

    def shutdown(self, now: float, deadline: float | None = None) -> None:
        """Deregister if registered (bounded retries), then stop (RFC 5944 §3.6.1.2).

        ``deadline``: the process must stop by then. All ``deregister_attempts`` copies are spread over the
        time left (:func:`shutdown_backoff`), and without a reply by the deadline the machine gives up:
        ``Deregistered(confirmed=False)``, then stopped.
        """
        if self.is_stopped or self._stopping:
            return
        self._stopping = True
        registered = self._registration is not None or self._state is MnState.REGISTERING
        if not (registered and self._care_of is not None and not self.at_home):
            self._finish_stop()
            return
        self._start_deregistration(now, all_care_ofs=self.config.simultaneous_bindings, deadline=deadline)

    # -- inputs and outputs -------------------------------------------------------------------

    def receive_datagram(
        self, data: bytes, source: tuple[IPv4Address, int], destination: IPv4Address, now: float
    ) -> None:
        """Handle one UDP-434 payload. Never raises: bad input is counted and reported as an event."""
        address, port = source
        try:
            self._receive(bytes(data), address, port, now)
        except (DecodeError, ValueError) as error:
            self.counters["malformed"] += 1
            offset = error.offset if isinstance(error, DecodeError) else None
            reason = error.reason if isinstance(error, DecodeError) else str(error)
            self._emit(MalformedDatagram(address, port, reason, offset))
        except Exception as error:  # keep running; a bug here must not stop the agent
            _log.exception("internal error handling a datagram from %s:%s", address, port)
            self.counters["internal_errors"] += 1
            self._emit(MalformedDatagram(address, port, f"internal error: {type(error).__name__}: {error}"))

    def tunnel_traffic(self, now: float) -> None:
        """Packets went to and came from the HA through the UDP tunnel since the last call: no keepalive
        is needed for K seconds (RFC 3519 §4.9)."""
        if self._keepalives is not None:
            self._keepalives.traffic(now)

    def keepalive_answered(self, sequence: int, now: float) -> bool:
        """The HA answered keepalive ``sequence`` through the UDP tunnel (RFC 3519 §4.10)."""
        keepalives = self._keepalives
        if keepalives is None or not keepalives.answered(sequence):
            return False
        self._emit(KeepaliveAnswered(sequence))
        return True

    def _keepalive_due(self, now: float) -> None:
        """Send a keepalive, or after ``keepalive_attempts`` unanswered ones register again: the
        NAT forgot the mapping, a request makes a new one (RFC 3519 §4.9)."""
        keepalives = self._keepalives
        if keepalives is None:
            return
        step = keepalives.due(now)
        if step is KeepaliveStep.SEND:
            attempt = keepalives.unanswered + 1
            sequence = keepalives.sent(now)
            self._emit(KeepaliveDue(self.config.home_agent, self.config.home_address, sequence, attempt))
        elif step is KeepaliveStep.LOST:
            self._emit(KeepaliveLost(keepalives.unanswered))
            self._keepalives = None
            if self._state is MnState.REGISTERED and self._care_of is not None:
                self._start_registration(now)

    def _registration_due(self, now: float) -> None:
        """Expire the binding, retransmit, or renew, whichever is due (RFC 5944 §3.6.3)."""
        self._keepalive_due(now)
        if self._registration is not None and now >= self._registration.expires_at:
            self._expire(now)
        if self._pending is not None and now >= self._pending.give_up_at:
            self._deregistration_done(confirmed=False)
            return
        if self._pending is not None and now >= self._pending.next_send:
            self._transmit(now)
        renew_at = self._registration.renew_at if self._registration is not None else None
        if self._state is MnState.REGISTERED and renew_at is not None and now >= renew_at:
            self._start_registration(now)

    def _registration_timer(self) -> float | None:
        registration = self._registration
        pending = self._pending
        # give_up_at is +inf unless a shutdown set a deadline; next_send is always finite
        retransmission = None if pending is None else min(pending.next_send, pending.give_up_at)
        keepalive = self._keepalives.next_due if self._keepalives is not None else None
        if registration is None:
            return earliest(retransmission, keepalive)
        expiry = None if math.isinf(registration.expires_at) else registration.expires_at
        renewal = registration.renew_at if self._state is MnState.REGISTERED else None
        return earliest(expiry, renewal, retransmission, keepalive)

    def datagrams_to_send(self, now: float) -> list[OutgoingDatagram]:
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def next_event(self) -> MobileNodeEvent | None:
        return self._events.popleft() if self._events else None

    # -- requests --------------------------------------------------------------------------------

    def _start_registration(self, now: float, simultaneous: bool = False) -> None:
        """Register ``_care_of``; ``simultaneous`` sets S whatever the configuration says (a
        make-before-break pre-registration keeps the old binding, RFC 4881 §3, RFC 5944 §3.6.1.3)."""
        assert self._care_of is not None
        registration = self._registration
        renewing = registration is not None and registration.care_of == self._care_of
        # after a link loss (IDLE) a binding that is still valid is registered afresh, not renewed; so is
        # one whose deregistration is still outstanding (the MN left home again before the reply came)
        renewing = renewing and self._state in (MnState.REGISTERING, MnState.REGISTERED, MnState.RENEWING)
        self._transition(MnTrigger.RENEW if renewing else MnTrigger.REGISTER)
        requests = prefix_requests(self.config, self._prefixes, self._link_local)
        config = replace(self.config, simultaneous_bindings=True) if simultaneous else self.config
        self._pending = new_registration(config, self._care_of, requests, self._route)
        self._transmit(now)

    def _start_deregistration(self, now: float, all_care_ofs: bool, deadline: float | None = None) -> None:
        assert self._care_of is not None
        self._transition(MnTrigger.DEREGISTER)
        pending = new_deregistration(self.config, self._care_of, all_care_ofs, self._route)
        if deadline is not None:
            first = max(now, self._last_request_at + MIN_REQUEST_GAP)  # see _transmit
            pending.backoff = shutdown_backoff(self.config, deadline - first)
            pending.give_up_at = deadline
        self._pending = pending
        self._transmit(now)

    def _transmit(self, now: float) -> None:
        """Send (or resend) the pending request; give up once a bounded request runs out.

        Never two requests less than a second apart: at most one registration per second on
        average (RFC 5944 §2.4.2, §3.6.3); an early one waits for the timer.
        """
        pending = self._pending
        assert pending is not None
        if now < self._last_request_at + MIN_REQUEST_GAP:
            pending.next_send = self._last_request_at + MIN_REQUEST_GAP
            return
        if pending.max_attempts is not None and pending.attempts >= pending.max_attempts:
            self._deregistration_done(confirmed=False)
            return
        if pending.needs_new_identification(self.config.replay_protection):
            pending.identification = self._ids.new(now)
        payload = build_request(self.config, pending)
        pending.record_send(now)
        self._last_request_at = now
        source, destination = pending.addresses(self.config)
        port = self.config.home_agent_port if pending.via is None else MOBILE_IP_PORT
        source_port = self.config.local_port or None
        # RFC 3024 §3.2: a mobile node's Registration Request uses TTL 255.
        self._outgoing.append(OutgoingDatagram(payload, destination, port, source, source_port, 255))
        self.counters["requests"] += 1
        self._emit(pending.sent_event())

    # -- replies (RFC 5944 §3.6.2) ---------------------------------------------------------------

    def _receive(self, raw: bytes, address: IPv4Address, port: int, now: float) -> None:
        if not raw or raw[0] != MessageType.REGISTRATION_REPLY:
            self._discard(address, port, "not a Registration Reply")
            return
        reply = RegistrationReply.decode(raw)
        reason = self._reply_problem(reply)
        if reason is not None:
            self._discard(address, port, reason)
            return
        assert self._pending is not None
        fa_denial = unauthenticated_fa_denial(self._pending, reply, address)
        if not fa_denial and not verify_with(raw, ExtensionType.MOBILE_HOME_AUTH, self.config.association):
            self.counters["authentication_failures"] += 1
            reason = "reply authenticator does not verify (RFC 5944 §3.6.2.1)"
            self._emit(AuthenticationFailed(address, reply.home_address, self.config.spi, reason))
            return
        self._handle_reply(reply, now)

    def _reply_problem(self, reply: RegistrationReply) -> str | None:
        """Why a reply is silently discarded (RFC 5944 §1.8, §3.6.2.1, §5.7), or None."""
        if reply.has_unknown_non_skippable:
            return "unknown non-skippable extension (RFC 5944 §1.8)"
        if reply.home_address != self.config.home_address:
            return f"reply for home address {reply.home_address}"
        if self._pending is None:
            return "no request outstanding"
        if not self._pending.sent_with(reply.identification):
            return "identification matches no outstanding request (RFC 5944 §5.7)"
        return None

    def _handle_reply(self, reply: RegistrationReply, now: float) -> None:
        pending = self._pending
        assert pending is not None
        self._emit(ReplyReceived(int(reply.code), reply.lifetime, reply.identification))
        if not is_fa_denial(reply.code):  # the HA never saw the request
            self._ids.note_reply(reply.code, reply.identification)
        if reply.code == ReplyCode.HA_IDENTIFICATION_MISMATCH:
            self._resynchronise(reply, now)
        elif reply.code == ReplyCode.FA_REGISTRATION_TIMEOUT:
            self._fa_timed_out(reply, now)
        elif not reply.accepted:
            self._denied(reply, now)
        elif pending.lifetime == 0:
            self._deregistration_done(confirmed=True)
        elif reply.lifetime == 0:
            self._granted_nothing(reply, now)
        else:
            self._accepted(reply, now)

    def _granted_nothing(self, reply: RegistrationReply, now: float) -> None:
        """An accept with Lifetime 0 to a registration: the HA holds no binding; try again later."""
        pending = self._pending
        assert pending is not None
        self._emit(RegistrationAccepted(pending.care_of, 0, int(reply.code)))
        self._drop_registration("deregistered")
        self._transition(MnTrigger.DENIED)
        pending.restart(at=max(now + self.config.retransmit_max, pending.last_sent + MIN_REQUEST_GAP))

    def _resynchronise(self, reply: RegistrationReply, now: float) -> None:
        """133: take the HA's time (or nonce) and resend with a fresh Identification (RFC 5944 §5.7)."""
        pending = self._pending
        assert pending is not None
        offset = self._ids.resynchronise(reply.identification, now)
        if offset is None:
            # Our clock agrees: the HA refused a reordered or duplicated older copy; keep waiting.
            pending.forget(reply.identification)
            self.counters["stale_copies_refused"] += 1
            return
        nonce = self._ids.ha_nonce if self.config.replay_protection is ReplayProtection.NONCE else None
        self._emit(ClockResynchronised(offset, nonce))
        pending.restart(at=max(now, pending.last_sent + MIN_REQUEST_GAP))

    def _fa_timed_out(self, reply: RegistrationReply, now: float) -> None:
        """78: the foreign agent heard no reply from the home agent to this copy (RFC 5944 §3.7.1), which
        is what the mobile node's own retransmission timer stands for. So the copy is forgotten and the
        retransmission schedule kept (RFC 5944 §3.6.3: each timeout at least double the previous, never
        two requests within 1 s), instead of the ``retransmit_max`` wait after a denial; a later copy that
        is still outstanding may yet be answered."""
        pending = self._pending
        assert pending is not None
        pending.forget(reply.identification)
        self.counters["fa_timeouts"] += 1

    def _denied(self, reply: RegistrationReply, now: float) -> None:
        pending = self._pending
        assert pending is not None
        self.counters["denied"] += 1
        self._emit(RegistrationDenied(pending.care_of, int(reply.code)))
        self._transition(MnTrigger.DENIED)
        pending.restart(at=max(now + self.config.retransmit_max, pending.last_sent + MIN_REQUEST_GAP))

    def _accepted(self, reply: RegistrationReply, now: float) -> None:
        """Record the binding, bring the tunnel up, apply per-prefix outcomes (RFC 5454 §3.5)."""
        pending = self._pending
        assert pending is not None
        lifetime = min(reply.lifetime, pending.lifetime)
        sent_at = pending.send_time(reply.identification)
        infinite = lifetime == INFINITE_LIFETIME
        expires = math.inf if infinite else sent_at + lifetime
        renew_at = math.inf if infinite else max(sent_at + lifetime * self.config.renewal_fraction, now + 1.0)
        self._registration = Registration(pending.care_of, lifetime, expires, renew_at)
        self._pending = None
        self._transition(MnTrigger.ACCEPTED)
        self._emit(RegistrationAccepted(pending.care_of, lifetime, int(reply.code)))
        udp = self._udp_keepalive(pending, reply)
        through_fa = pending.via is not None  # R flag: the HA waits for a keepalive (RFC 3519 §4.4, §4.6)
        attempts = self.config.keepalive_attempts
        self._keepalives = (
            None if udp is None else Keepalives.after_registration(udp, attempts, now, immediate=through_fa)
        )
        if self._tunnel_care_of != pending.care_of or self._tunnel_udp != udp:
            self._tunnel_care_of, self._tunnel_udp = pending.care_of, udp
            self._emit(
                TunnelUp(
                    pending.care_of,
                    self.config.home_agent,
                    self.config.home_address,
                    flag_encapsulation(pending.flags),
                    RegistrationFlag.T in pending.flags,
                    colocated=RegistrationFlag.D in pending.flags,
                    udp_keepalive=udp,
                )
            )
        colocated = RegistrationFlag.D in pending.flags
        self._emit_all(self._ipv6.apply_reply(pending.prefix_requests, reply.prefix_replies, colocated))

    def _udp_keepalive(self, pending: PendingRequest, reply: RegistrationReply) -> float | None:
        """K when the HA agreed to tunnel in UDP (its UDP Tunnel Reply, RFC 3519 §3.2), else None: no
        reply extension means no UDP tunnelling (§4.4)."""
        answer = reply.udp_tunnel_reply
        if pending.udp_request is None or answer is None or not answer.accepted:
            return None
        return float(answer.keepalive) if answer.keepalive else self.config.keepalive_interval

    # -- endings ---------------------------------------------------------------------------------

    def _deregistration_done(self, confirmed: bool) -> None:
        """The HA accepted the deregistration, or the bounded retries ran out."""
        pending = self._pending
        assert pending is not None
        self._pending = None
        self._emit(Deregistered(pending.care_of_field, confirmed=confirmed))
        self._drop_registration("deregistered")
        if self._stopping:
            self._finish_stop()
        else:
            self._transition(MnTrigger.DEREGISTERED)

    def _expire(self, now: float) -> None:
        registration = self._registration
        assert registration is not None
        self._emit(RegistrationExpired(registration.care_of))
        self._drop_registration("expired")
        self._transition(MnTrigger.EXPIRED)
        if self._state is MnState.REGISTERING and self._pending is None:
            self._start_registration(now)

    def _drop_registration(self, reason: str) -> None:
        self._registration = None
        self._tunnel_down(reason)
        self._emit_all(self._ipv6.clear())

    def _tunnel_down(self, reason: str) -> None:
        self._keepalives = None
        if self._tunnel_care_of is not None:
            self._emit(TunnelDown(self._tunnel_care_of, reason))
            self._tunnel_care_of, self._tunnel_udp = None, None

    def _lose_care_of(self, reason: str) -> None:
        """No care-of address any more (link down, or no agent left): drop what is outstanding."""
        self._care_of = None
        self._route = None
        self._pending = None
        self._tunnel_down(reason)
        if self._stopping:
            self._finish_stop()
        else:
            self._transition(MnTrigger.LINK_DOWN)

    def _finish_stop(self) -> None:
        self._pending = None
        self._drop_registration("shutdown")
        self._transition(MnTrigger.STOP)

    # -- outputs ---------------------------------------------------------------------------------

    def _emit(self, event: MobileNodeEvent) -> None:
        self._events.append(event)

    def _emit_all(self, events: list[RegistrationEvent]) -> None:
        self._events.extend(events)

    def _discard(self, address: IPv4Address, port: int, reason: str) -> None:
        self.counters["discarded"] += 1
        self._emit(DatagramDiscarded(address, port, reason))
