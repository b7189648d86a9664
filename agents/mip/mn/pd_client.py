"""The mobile node's DHCPv6 prefix-delegation client, sans-I/O (RFC 8415 §18.2, RFC 5454 §3.7.1).

One IA_PD, one delegated prefix. Solicit (with Rapid Commit: a Reply binds at once, §18.2.1; without:
Advertises are collected for the first RT unless one has preference 255, §18.2.9) → Request → bound;
Renew at T1, Rebind at T2, the prefix withdrawn when its valid lifetime ends (§18.2.4, §18.2.5,
§18.2.10.1), Release on request (§18.2.7). Messages for another client or exchange, and prefixes outside
what was asked for, are ignored (§16). Inputs carry ``now``; the rng is injected; no sockets, no clock.
"""

from __future__ import annotations

import random
from collections import deque
from ipaddress import IPv6Network

from agents.mip.common.states import next_state
from agents.mip.mn.dhcpv6_timing import Retransmission, RetransmissionParameters
from agents.mip.mn.pd_events import (
    DelegationLost,
    Dhcpv6Datagram,
    Dhcpv6Ignored,
    Dhcpv6Received,
    Dhcpv6Sent,
    NoPrefixAvailable,
    PdClientEvent,
    PrefixDelegated,
    ReleaseFinished,
)
from agents.mip.mn.pd_states import (
    PD_TRANSITIONS,
    PREFERENCE_OPTION,
    SOL_MAX_RT_OPTION,
    Lease,
    PdClientConfig,
    PdState,
    PdTrigger,
    deadline,
    renewal_times,
)
from agents.mip.wire.dhcpv6 import IaPd, IaPrefix, Message, MessageType, Status
from agents.mip.wire.errors import DecodeError

_S, _T = PdState, PdTrigger
_HOLDING = (_S.BOUND, _S.RENEWING, _S.REBINDING)


class PdClient:
    """The PD client machine: ``start``, ``receive_datagram``, ``handle_timer``, ``release``, ``stop``."""

    def __init__(self, config: PdClientConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.state = PdState.IDLE
        self.lease: Lease | None = None
        self._events: deque[PdClientEvent] = deque()
        self._outgoing: list[Dhcpv6Datagram] = []
        self._xid = 0
        self._exchange: Retransmission | None = None
        self._next_send: float | None = None
        self._advertise: tuple[Message, IPv6Network] | None = None
        """The Advertise chosen so far and the prefix it offers."""
        self._no_prefix_said = False

    # -- inputs --------------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin soliciting after a random delay of up to SOL_MAX_DELAY (RFC 8415 §18.2.1); from IDLE, or
        from STOPPED (a new start after a Release or stop). Otherwise nothing: an exchange is under way."""
        if self.state not in (PdState.IDLE, PdState.STOPPED):
            return
        self._move(_T.START)
        self._begin(now, self._solicit_parameters())
        self._next_send = now + self.rng.uniform(0.0, self.config.sol_max_delay)

    def release(self, now: float) -> None:
        """Give the prefix back (RFC 8415 §18.2.7): stop using it now, send Release; else just stop."""
        if self.state not in _HOLDING or self.lease is None:
            self.stop()
            return
        self._emit(DelegationLost(self.lease.prefix, "released"))
        self._move(_T.RELEASE)
        params = RetransmissionParameters(self.config.rel_timeout, mrc=self.config.rel_max_rc)
        self._begin(now, params)
        self._send(now)

    def stop(self) -> None:
        """Forget everything without a message (the runtime is going away)."""
        self._move(_T.STOP)
        self.lease = None
        self._exchange = self._next_send = None

    def receive_datagram(self, data: bytes, now: float) -> None:
        """A UDP payload that arrived on port 546."""
        try:
            message = Message.decode(data)
        except DecodeError as error:
            self._emit(Dhcpv6Ignored(f"malformed: {error}"))
            return
        reason = self._mismatch(message)
        if reason:
            self._emit(Dhcpv6Ignored(reason, message.type_name))
            return
        if message.msg_type == MessageType.ADVERTISE:
            self._on_advertise(message, now)
        elif message.msg_type == MessageType.REPLY:
            self._on_reply(message, now)
        else:
            self._emit(Dhcpv6Ignored("not a server-to-client message", message.type_name))

    def handle_timer(self, now: float) -> None:
        lease = self.lease
        if lease is not None and self.state in _HOLDING:
            if lease.expires_at is not None and now >= lease.expires_at:
                self._lose(now, "expired")
                return
            if self.state is PdState.BOUND and lease.renew_at is not None and now >= lease.renew_at:
                self._move(_T.T1)
                self._begin(now, self._renew_parameters(now, lease))
                self._send(now)
                return
            if self.state is PdState.RENEWING and lease.rebind_at is not None and now >= lease.rebind_at:
                self._move(_T.T2)
                self._begin(now, self._rebind_parameters(now, lease))
                self._send(now)
                return
        if self._next_send is not None and now >= self._next_send:
            self._retransmit(now)

    # -- outputs -------------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        deadlines = [self._next_send]
        if self.lease is not None and self.state in _HOLDING:
            deadlines.append(self.lease.expires_at)
            if self.state is PdState.BOUND:
                deadlines.append(self.lease.renew_at)
            if self.state is PdState.RENEWING:
                deadlines.append(self.lease.rebind_at)
        return min((d for d in deadlines if d is not None), default=None)

    def datagrams_to_send(self, now: float) -> list[Dhcpv6Datagram]:
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def next_event(self) -> PdClientEvent | None:
        return self._events.popleft() if self._events else None

    def status(self, now: float) -> dict[str, object]:
        lease = self.lease if self.state in _HOLDING else None
        expires = None if lease is None or lease.expires_at is None else lease.expires_at - now
        return {
            "state": self.state.value,
            "prefix": None if lease is None else str(lease.prefix),
            "expires_in": expires,
        }

    # -- exchanges -----------------------------------------------------------------------------------

    def _solicit_parameters(self) -> RetransmissionParameters:
        c = self.config
        return RetransmissionParameters(c.sol_timeout, c.sol_max_rt, first_above_irt=True)

    def _renew_parameters(self, now: float, lease: Lease) -> RetransmissionParameters:
        mrd = (lease.rebind_at - now) if lease.rebind_at is not None else 0.0
        return RetransmissionParameters(self.config.ren_timeout, self.config.ren_max_rt, mrd=max(mrd, 0.001))

    def _rebind_parameters(self, now: float, lease: Lease) -> RetransmissionParameters:
        mrd = (lease.expires_at - now) if lease.expires_at is not None else 0.0
        return RetransmissionParameters(self.config.reb_timeout, self.config.reb_max_rt, mrd=max(mrd, 0.001))

    def _begin(self, now: float, params: RetransmissionParameters) -> None:
        self._xid = self.rng.getrandbits(24)
        self._exchange = Retransmission(params, self.rng, now)
        self._next_send = now
        self._advertise = None

    def _retransmit(self, now: float) -> None:
        exchange = self._exchange
        if exchange is None:
            self._next_send = None
            return
        if self.state is PdState.SOLICITING and self._advertise is not None:
            self._request(now, self._advertise)  # the first RT is over: take the collected Advertise
            return
        if exchange.exhausted(now):
            self._give_up(now)
            return
        self._send(now)

    def _give_up(self, now: float) -> None:
        if self.state is PdState.RELEASING:
            self._finish_release(False)
        elif self.state is PdState.REQUESTING:
            self._move(_T.FAILED)
            self._begin(now, self._solicit_parameters())
        else:  # Renew/Rebind: carry on until T2/expiry (handled in handle_timer)
            self._next_send = None

    def _request(self, now: float, advertise: tuple[Message, IPv6Network]) -> None:
        self._move(_T.ADVERTISED)
        c = self.config
        self._begin(now, RetransmissionParameters(c.req_timeout, c.req_max_rt, mrc=c.req_max_rc))
        self._advertise = advertise
        self._send(now)

    def _send(self, now: float) -> None:
        exchange = self._exchange
        assert exchange is not None
        message = self._build(exchange.elapsed_hundredths(now) if exchange.count else 0)
        self._outgoing.append(Dhcpv6Datagram(message.encode()))
        self._emit(Dhcpv6Sent(message.type_name, self._xid, exchange.count + 1, message.rapid_commit))
        self._next_send = now + exchange.next_timeout()

    def _build(self, elapsed: int) -> Message:
        c = self.config
        kinds = {
            PdState.SOLICITING: MessageType.SOLICIT,
            PdState.REQUESTING: MessageType.REQUEST,
            PdState.RENEWING: MessageType.RENEW,
            PdState.REBINDING: MessageType.REBIND,
            PdState.RELEASING: MessageType.RELEASE,
        }
        kind = kinds[self.state]
        server_id = None
        if kind == MessageType.REQUEST and self._advertise is not None:
            server_id = self._advertise[0].server_id
        elif kind in (MessageType.RENEW, MessageType.RELEASE) and self.lease is not None:
            server_id = self.lease.server_id
        ia_pd = IaPd(c.iaid, 0, 0, self._hints(kind))
        return Message(
            kind,
            self._xid,
            client_id=c.duid,
            server_id=server_id,
            ia_pds=(ia_pd,),
            rapid_commit=kind == MessageType.SOLICIT and c.rapid_commit,
            elapsed_time=elapsed,
            oro=(SOL_MAX_RT_OPTION,) if kind != MessageType.RELEASE else None,
        )

    def _hints(self, kind: MessageType) -> tuple[IaPrefix, ...]:
        """Our prefix in Renew/Rebind/Release; the requested prefix or length as a hint otherwise."""
        if kind in (MessageType.RENEW, MessageType.REBIND, MessageType.RELEASE) and self.lease is not None:
            return (IaPrefix(0, 0, self.lease.prefix),)
        if kind == MessageType.REQUEST and self._advertise is not None:
            return (IaPrefix(0, 0, self._advertise[1]),)
        if self.config.requested is not None:
            return (IaPrefix(0, 0, self.config.requested),)
        if self.config.length_hint is not None:
            return (IaPrefix(0, 0, IPv6Network(f"::/{self.config.length_hint}")),)
        return ()

    # -- incoming ------------------------------------------------------------------------------------

    def _mismatch(self, message: Message) -> str:
        """Why ``message`` is not for this client and exchange (RFC 8415 §16), or ''."""
        if self.state in (PdState.IDLE, PdState.STOPPED) or self._exchange is None:
            return "no exchange in progress"
        if message.transaction_id != self._xid:
            return f"transaction-id {message.transaction_id:06x} is not ours ({self._xid:06x})"
        if message.client_id != self.config.duid:
            return "Client ID missing or not ours"
        if message.server_id is None:
            return "no Server ID"
        return ""

    def _acceptable(self, message: Message) -> tuple[IaPd, IaPrefix] | None:
        """Our IA_PD and its first usable prefix: lifetimes sane, inside what we asked for (§18.2.10.1)."""
        for ia_pd in message.ia_pds:
            if ia_pd.iaid != self.config.iaid:
                continue
            if ia_pd.t1 and ia_pd.t2 and ia_pd.t1 > ia_pd.t2:
                self._emit(Dhcpv6Ignored("IA_PD with T1 > T2", message.type_name))
                continue
            for prefix in ia_pd.prefixes:
                wanted = self._wanted(prefix.prefix)
                if prefix.preferred > prefix.valid or not wanted:
                    reason = "preferred > valid" if wanted else "outside what was requested"
                    self._emit(Dhcpv6Ignored(f"prefix {prefix.prefix}: {reason}", message.type_name))
                    continue
                return ia_pd, prefix
        return None

    def _wanted(self, prefix: IPv6Network) -> bool:
        if self.state in (PdState.RENEWING, PdState.REBINDING) and self.lease is not None:
            return prefix == self.lease.prefix
        requested = self.config.requested
        return requested is None or prefix.subnet_of(requested)

    def _no_prefix(self, message: Message) -> None:
        if not self._no_prefix_said:
            status = next((ia.status for ia in message.ia_pds if ia.status), None) or message.status
            text = status.message if status is not None else "no prefix in the server's answer"
            self._emit(NoPrefixAvailable(text))
            self._no_prefix_said = True

    def _on_advertise(self, message: Message, now: float) -> None:
        if self.state is not PdState.SOLICITING:
            self._emit(Dhcpv6Ignored(f"Advertise in state {self.state.value}", message.type_name))
            return
        found = self._acceptable(message)
        if found is None:
            self._no_prefix(message)  # §18.2.9: an Advertise without prefixes is ignored
            return
        self._emit(Dhcpv6Received(message.type_name, message.transaction_id))
        offer = (message, found[1].prefix)
        if self._advertise is None:
            self._advertise = offer
        preference = next((o.data for o in message.other if o.code == PREFERENCE_OPTION), b"")
        if preference == b"\xff":
            self._request(now, offer)

    def _on_reply(self, message: Message, now: float) -> None:
        if self.state is PdState.RELEASING:
            self._emit(Dhcpv6Received(message.type_name, message.transaction_id))
            self._finish_release(True)
            return
        if self.state is PdState.SOLICITING and not (message.rapid_commit and self.config.rapid_commit):
            self._emit(Dhcpv6Ignored("Reply to Solicit without Rapid Commit", message.type_name))
            return
        if self.state in (PdState.RENEWING, PdState.REBINDING) and self._withdrawn_or_unbound(message, now):
            return
        found = self._acceptable(message)
        if found is None:
            if self.state in (PdState.SOLICITING, PdState.REQUESTING):
                self._no_prefix(message)
                if self.state is PdState.REQUESTING:
                    self._move(_T.FAILED)
                    self._begin(now, self._solicit_parameters())
            return
        self._emit(Dhcpv6Received(message.type_name, message.transaction_id, message.rapid_commit))
        self._bind(message, found, now)

    def _withdrawn_or_unbound(self, message: Message, now: float) -> bool:
        """A Renew/Rebind Reply with our prefix at valid lifetime 0, or NoBinding, ends the lease."""
        assert self.lease is not None
        for ia_pd in message.ia_pds:
            if ia_pd.iaid != self.config.iaid:
                continue
            if ia_pd.status is not None and ia_pd.status.status == Status.NO_BINDING:
                self._lose(now, "no-binding")
                return True
            if any(p.prefix == self.lease.prefix and p.valid == 0 for p in ia_pd.prefixes):
                self._lose(now, "withdrawn")
                return True
        return False

    def _bind(self, message: Message, found: tuple[IaPd, IaPrefix], now: float) -> None:
        ia_pd, prefix = found
        how = {PdState.RENEWING: "renew", PdState.REBINDING: "rebind"}.get(self.state, "solicit")
        if how == "solicit":
            how = "rapid-commit" if self.state is PdState.SOLICITING else "request"
        t1, t2 = renewal_times(ia_pd, prefix)
        assert message.server_id is not None
        self.lease = Lease(
            prefix.prefix,
            message.server_id,
            prefix.preferred,
            prefix.valid,
            deadline(now, t1),
            deadline(now, t2),
            deadline(now, prefix.valid),
        )
        self._move(_T.REPLIED)
        self._exchange = self._next_send = None
        self._no_prefix_said = False
        server = message.server_id.hex()
        self._emit(PrefixDelegated(prefix.prefix, prefix.preferred, prefix.valid, t1, t2, how, server))

    def _lose(self, now: float, reason: str) -> None:
        assert self.lease is not None
        self._emit(DelegationLost(self.lease.prefix, reason))
        self.lease = None
        self._move(_T.EXPIRED if reason == "expired" else _T.FAILED)
        self._begin(now, self._solicit_parameters())

    def _finish_release(self, confirmed: bool) -> None:
        self._move(_T.RELEASED)
        self.lease = None
        self._exchange = self._next_send = None
        self._emit(ReleaseFinished(confirmed))

    def _move(self, trigger: PdTrigger) -> None:
        self.state = next_state(PD_TRANSITIONS, self.state, trigger)

    def _emit(self, event: PdClientEvent) -> None:
        self._events.append(event)


__all__ = ["PD_TRANSITIONS", "Lease", "PdClient", "PdClientConfig", "PdState", "PdTrigger"]
