"""Sans-I/O home agent (RFC 5944 §3.8, RFC 3024 §4, RFC 5454 §3.3).

Driven by :meth:`HomeAgent.receive_datagram` and :meth:`HomeAgent.handle_timer`, every input with
``now`` (monotonic seconds). Wall time for timestamps is ``now + wall_clock_offset``. Outputs are
pulled with :meth:`datagrams_to_send` and :meth:`next_event`; the next deadline is :meth:`get_timer`.
Per mobile node the state is HOME or AWAY; changes go through :data:`TRANSITIONS` only.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import NamedTuple

from agents.mip.common.bindings import (
    UNKNOWN_PORT,
    BindingTable,
    CareOf,
    CareOfEntry,
    PrefixBinding,
    PrefixChanges,
)
from agents.mip.common.budgets import SourceBudget
from agents.mip.common.config import INFINITE_LIFETIME, HomeAgentConfig, MobileNodeAccount, ReplayProtection
from agents.mip.common.events import (
    ArpOwner,
    AuthenticationFailed,
    BindingAdded,
    BindingRemoved,
    BindingUpdated,
    DatagramDiscarded,
    GratuitousArpRequested,
    HomeAgentEvent,
    IdentificationRejected,
    MalformedDatagram,
    OutgoingDatagram,
    PrefixDeregistered,
    PrefixRegistered,
    ProxyArpStarted,
    ProxyArpStopped,
    ReplySent,
    RequestDenied,
    RequestReceived,
    UdpTunnelBound,
)
from agents.mip.common.states import HOME_AGENT_TRANSITIONS, NodeState, NodeTrigger, next_state
from agents.mip.ha import policy as ha_policy
from agents.mip.ha.delegation import DelegationBook
from agents.mip.ha.keepalive import (
    awaiting_entry,
    keepalive_home_address,
    known_port,
    port_holders,
    port_owner,
)
from agents.mip.ha.policy import PrefixDecision
from agents.mip.ha.quick_reject import fails_quickly
from agents.mip.ha.restore import RestoreOutcome, SavedBinding, usable_care_ofs, usable_prefixes
from agents.mip.wire import identification
from agents.mip.wire.auth import append_authentication, verify_located
from agents.mip.wire.codes import ExtensionType, MessageType, ReplyCode, describe
from agents.mip.wire.dsmip import PrefixReply
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.extensions import AuthenticationExtension, LocatedExtension, UdpTunnelReply
from agents.mip.wire.registration import RegistrationRequest, encode_reply

TRANSITIONS = HOME_AGENT_TRANSITIONS
_MN_HA = ExtensionType.MOBILE_HOME_AUTH

_log = logging.getLogger(__name__)


class _Incoming(NamedTuple):
    """One request on its way through the pipeline (a tuple: one is made per datagram, issue 9)."""

    raw: bytes
    request: RegistrationRequest
    source: IPv4Address
    port: int
    now: float
    received: RequestReceived
    """Emitted once the request is authenticated, or its failure is within the source's budget."""
    located: tuple[LocatedExtension, ...] = ()
    """Where ``request``'s extensions sit in ``raw``: the MN-HA check reads them (parsed once)."""


KNOWN_GRACE = 30.0
"""Seconds a source stays known after the binding it registered expired: a renewal held up in a flood
until after the expiry (or its retransmissions) is still served first, not left with the flood."""


@dataclass(frozen=True)
class _KnownView:
    """A :meth:`HomeAgent.known_sources` answer and how long it holds: built at ``computed_at`` for the
    change counters in ``key``, until the first of its sources' times runs out (``valid_until``)."""

    sources: frozenset[IPv4Address]
    key: tuple[int, int]
    computed_at: float
    valid_until: float


class HomeAgent:
    """The home agent's registration machine and binding table."""

    def __init__(
        self,
        config: HomeAgentConfig,
        *,
        wall_clock_offset: float = 0.0,
        rng: random.Random | None = None,
        failure_budget: SourceBudget | None = None,
    ) -> None:
        self.config = config
        self.failure_budget = failure_budget if failure_budget is not None else SourceBudget()
        """What failed requests may cost, per source and in all (:class:`SourceBudget`)."""
        self._known: dict[IPv4Address, float] = {}  # source of an accepted registration → binding expiry
        self._known_changes = 0  # moves when a source may have joined the known set
        self._known_view: _KnownView | None = None  # the last known_sources() answer, while it holds
        self.known_view_builds = 0
        """How many times :meth:`known_sources` built the set (not per renewal: issue 9)."""
        self._home_addresses = frozenset(account.home_address for account in config.mobile_nodes)
        self._accounts = {account.home_address.packed: account for account in config.mobile_nodes}
        self.table = BindingTable()
        self.counters: Counter[str] = Counter()
        self._wall_clock_offset = wall_clock_offset
        self._rng = rng if rng is not None else random.Random()
        self._states: dict[IPv4Address, NodeState] = {}
        self._replay = identification.ReplayState()
        self._nonces: dict[IPv4Address, int] = {}
        self._events: deque[HomeAgentEvent] = deque()
        self._outgoing: list[OutgoingDatagram] = []
        self.delegations: DelegationBook | None = None
        """Set by the runtime when a DHCPv6 server delegates prefixes (RFC 5454 §3.7.1)."""

    # -- runtime interface -------------------------------------------------------------------

    def receive_datagram(
        self, data: bytes, source: tuple[IPv4Address, int], destination: IPv4Address, now: float
    ) -> None:
        """Handle one UDP-434 payload. Never raises: bad input is counted and reported as an event."""
        address, port = source
        try:
            self._receive(bytes(data), address, port, now)
        except (DecodeError, ValueError) as error:
            self._malformed(address, port, error)
        except Exception as error:  # keep serving; a bug here must not stop the agent
            _log.exception("internal error handling a datagram from %s:%s", address, port)
            self.counters["internal_errors"] += 1
            self._emit(MalformedDatagram(address, port, f"internal error: {type(error).__name__}: {error}"))

    def handle_timer(self, now: float) -> None:
        """Expire bindings whose lifetime has run out (RFC 5944 §3.8.1)."""
        for home, entry in self.table.expired(now):
            self.table.remove_care_of(home, entry.care_of)
            self._emit(BindingRemoved(home, entry.care_of, "expired"))
            self._after_care_of_removed(home, "expired")

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run (the earliest binding expiry), or None."""
        return self.table.next_expiry()

    def datagrams_to_send(self, now: float) -> list[OutgoingDatagram]:
        """Datagrams queued since the last call."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def next_event(self) -> HomeAgentEvent | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def restore_binding(self, saved: SavedBinding, now: float) -> RestoreOutcome:
        """Take back a binding a previous run accepted, without a registration (crash recovery).

        The last Identification is remembered whatever else happens (RFC 5944 §5.7: a replayed request
        stays refused across the restart). Entries still valid at ``now`` under this configuration go
        into the table with their prefixes, and the usual events follow: ``BindingAdded``,
        ``PrefixRegistered``, then ``ProxyArpStarted`` and a gratuitous ARP (RFC 5944 §4.6). A home
        address that is already bound is left alone (ValueError: restore before serving requests).
        """
        home = saved.home_address
        if home in self.table:
            raise ValueError(f"{home} is already bound: restore before serving requests")
        account = self.config.account_for(home)
        if account is None:
            return RestoreOutcome(home, skipped=("no mobile node account for this home address",))
        if saved.identification is not None and self._replay.is_fresh(home, saved.identification):
            self._replay.record(home, saved.identification)
        entries, skipped = usable_care_ofs(saved, self.config, now)
        if not entries:
            return RestoreOutcome(home, skipped=tuple(skipped))
        for entry in reversed(entries):  # oldest first: the newest is the last one put
            self.table.put(home, entry, keep_others=True)
            self._remember_until(entry.request_source[0], entry.expires_at)  # a known peer again
        prefixes, skipped_prefixes = usable_prefixes(saved, account, self.config, self.table, entries)
        self.table.replace_prefixes(home, prefixes)
        for entry in entries:
            self._emit(
                BindingAdded(
                    home,
                    entry.care_of,
                    entry.encapsulation,
                    entry.reverse_tunnel,
                    entry.lifetime,
                    tuple(prefixes),
                )
            )
        for prefix in prefixes:
            self._emit(PrefixRegistered(home, prefix))
        self.counters["bindings_restored"] += 1
        self._transition(home, NodeTrigger.REGISTERED)
        return RestoreOutcome(home, tuple(entries), tuple(prefixes), tuple(skipped + skipped_prefixes))

    def last_identification(self, home_address: IPv4Address) -> int | None:
        """The last Identification accepted from ``home_address`` (timestamps; RFC 5944 §5.7)."""
        return self._replay.last(home_address)

    def node_state(self, home_address: IPv4Address) -> NodeState:
        """HOME or AWAY for this home address."""
        return self._states.get(home_address, NodeState.HOME)

    def bindings(self, now: float) -> list[dict[str, object]]:
        """The binding table as JSON-able dicts (control socket ``bindings``)."""
        return self.table.snapshot(now)

    def status(self, now: float) -> dict[str, object]:
        """A JSON-able summary (control socket ``status``)."""
        return {
            "role": "ha",
            "address": str(self.config.address),
            "home_network": str(self.config.home_network),
            "dsmipv4": self.config.dsmipv4,
            "mobile_nodes": len(self.config.mobile_nodes),
            "away": sorted(str(home) for home, state in self._states.items() if state is NodeState.AWAY),
            "counters": dict(sorted(self.counters.items())),
        }

    def is_known_source(self, address: IPv4Address, now: float) -> bool:
        """A source an accepted registration came from (a care-of address or foreign agent) while that
        binding lasts and :data:`KNOWN_GRACE` after, or the home address of a mobile node that has a
        binding (:meth:`_home_with_binding`). The runtime serves these first."""
        until = self._known.get(address)
        return (until is not None and now < until) or self._home_with_binding(address)

    def _home_with_binding(self, address: IPv4Address) -> bool:
        """A configured home address whose mobile node has a binding now.

        A request from a home address matters only as a mobile node's deregistration when it comes home
        (RFC 5944 §3.6.1.2), and there is something to deregister only while it has a binding. Without
        one the address is left out of the priority set: otherwise anyone could forge a home address
        (known to all the mobile node's peers) and have a bad-auth flood served first, ahead of the
        peers with bindings (issue 16 review). While the mobile node is away a forged home address gets
        no more than a forged care-of address gets: priority, then each request is verified."""
        return address in self._home_addresses and self.table.get(address) is not None

    def receive_keepalive(self, payload: bytes, source: tuple[IPv4Address, int], now: float) -> bool:
        """A MIP Tunnel Data message from ``source``: if it is the keepalive a half-bound binding (R flag)
        waits for, complete that binding at ``source``'s address and port (RFC 3519 §4.6, §4.11) and return
        True (its events then go to the datapath before the keepalive does). Anything else: False, and the
        datapath checks the message as usual (RFC 3519 §4.3)."""
        home = keepalive_home_address(payload, self.config.address)
        if home is None:
            return False
        address, port = source
        binding = self.table.get(home)
        entry = awaiting_entry(binding, address, now)
        if binding is None or entry is None:
            return False
        if (address, port) == entry.request_source:  # the FA's own NAT mapping, never the MN's (§4.6)
            self.counters["keepalive_from_request_source"] += 1
            return False
        owner = port_owner(self.table, address, port)
        if owner is not None and owner != home:
            self.counters["keepalive_port_taken"] += 1
            return False
        bound = replace(entry, care_of=CareOf(address, port), awaiting_keepalive=False, previous_port=None)
        if bound.care_of != entry.care_of:
            self.table.remove_care_of(home, entry.care_of)
        self.table.put(home, bound, keep_others=True)
        self.counters["udp_bindings_completed"] += 1
        prefixes = tuple(binding.prefixes.values())
        self._emit(
            BindingUpdated(
                home, bound.care_of, bound.encapsulation, bound.reverse_tunnel, bound.lifetime, prefixes
            )
        )
        self._emit(
            UdpTunnelBound(home, bound.care_of, round(now - entry.registered_at, 6), entry.previous_port)
        )
        return True

    def known_sources(self, now: float) -> frozenset[IPv4Address]:
        """Every source :meth:`is_known_source` accepts at ``now``: what the runtime steers to its priority
        socket in the kernel (:mod:`agents.runtime.steering`).

        The runtime asks after every burst of binding events, so the set is built again only when it can
        differ (issue 9: rebuilding it walked every account and binding per burst): a source became known,
        a home address gained or lost its binding, or a known source's time ran out. A renewal from a
        known source returns the same object, whatever the table's size."""
        key = (self._known_changes, self.table.membership_changes)
        view = self._known_view
        if view is not None and view.key == key and view.computed_at <= now < view.valid_until:
            return view.sources
        live = [(address, until) for address, until in self._known.items() if now < until]
        homes = (address for address in self.table.home_addresses() if address in self._home_addresses)
        sources = frozenset(address for address, _ in live) | frozenset(homes)
        valid_until = min((until for _, until in live), default=math.inf)
        self._known_view = _KnownView(sources, key, now, valid_until)
        self.known_view_builds += 1
        return sources

    @property
    def home_addresses(self) -> frozenset[IPv4Address]:
        """The configured mobile nodes' home addresses."""
        return frozenset(self._home_addresses)

    def accepts_reverse_ipv4(self, outer_source: IPv4Address, inner_source: IPv4Address) -> bool:
        """Datapath check for reverse-tunnelled IPv4 (RFC 3024 §4.3.2)."""
        return self.table.accepts_reverse_ipv4(outer_source, inner_source)

    def accepts_reverse_ipv6(self, outer_source: IPv4Address, inner_source: IPv6Address) -> bool:
        """Datapath check for reverse-tunnelled IPv6 (RFC 5454 §3.3.2)."""
        return self.table.accepts_reverse_ipv6(outer_source, inner_source)

    # -- request pipeline (RFC 5944 §3.8.2) ----------------------------------------------------

    def _receive(self, raw: bytes, address: IPv4Address, port: int, now: float) -> None:
        if not raw or raw[0] != MessageType.REGISTRATION_REQUEST:
            self._discard(address, port, f"message type {raw[0] if raw else 'none'} is not a request")
            return
        if self._quickly_rejected(raw, address, now):
            return
        request, located = RegistrationRequest.decode_located(raw)
        self.counters["requests"] += 1
        received = RequestReceived(
            address,
            port,
            request.home_address,
            request.care_of_address,
            request.lifetime,
            int(request.flags),
            request.identification,
        )
        incoming = _Incoming(raw, request, address, port, now, received, located)
        account = self._screen(incoming)
        if account is not None and self._authenticated(incoming, account):
            self._emit(received)
            self._process_authenticated(incoming, account)

    def _quickly_rejected(self, raw: bytes, address: IPv4Address, now: float) -> bool:
        """A request past its source's failure budget whose MN-HA authenticator fails on the raw bytes
        (:mod:`agents.mip.ha.quick_reject`): counted as the full pipeline would (no reply, no event), in a
        fifth of its time, so a flood cannot outrun the agent.

        Known or not, a source over its budget is never dropped unverified: a flood forging a care-of or
        FA address the home agent has not seen yet would otherwise lock the mobile node that comes from
        it out for as long as the flood lasts (RFC 5944 §3.8.2.1 rejects a request for failing
        authentication, not for its source). Only replies and log lines stay rate-limited."""
        if not self.failure_budget.exhausted(address, now):
            return False
        account = self._accounts.get(raw[4:8])
        if account is None or not fails_quickly(raw, account.association):
            return False
        self.counters["requests"] += 1
        self.counters["authentication_failures"] += 1
        self.counters["failures_over_budget"] += 1
        self.counters["rejected_quickly"] += 1
        return True

    def _failure_reported(self, incoming: _Incoming) -> bool:
        """Charge a failed request to its source: True (within budget) emits its RequestReceived and the
        caller reports and answers it; False: it is only counted (RFC 5944 §3.8.2.1 reply is a SHOULD)."""
        if self.failure_budget.charge(incoming.source, incoming.now):
            self._emit(incoming.received)
            return True
        self.counters["failures_over_budget"] += 1
        return False

    def _screen(self, incoming: _Incoming) -> MobileNodeAccount | None:
        """Silent discards before authentication (RFC 5944 §1.8, §3.8.2.1); the account otherwise."""
        request = incoming.request
        reason = None
        account = self.config.account_for(request.home_address)
        if request.has_unknown_non_skippable:
            reason = "unknown non-skippable extension (RFC 5944 §1.8)"
        elif not ha_policy.addressed_to_us(request, self.config):
            reason = f"home agent field {request.home_agent} is not this home agent"
        elif request.home_address == ha_policy.UNSPECIFIED:
            reason = "home address 0.0.0.0: dynamic home address assignment (RFC 2794) is not supported"
        elif account is None:
            reason = f"no security association for home address {request.home_address}"
        if reason is not None:
            if self._failure_reported(incoming):
                self._discard(incoming.source, incoming.port, reason)
            else:
                self.counters["discarded"] += 1
            return None
        return account

    def _authenticated(self, incoming: _Incoming, account: MobileNodeAccount) -> bool:
        """Exactly one MN-HA extension whose authenticator verifies, else reply 131 (RFC 5944 §3.8.2.1:
        none, more than one or an invalid one: reject, SHOULD reply 131, log a security exception)."""
        request = incoming.request
        extensions = request.find(_MN_HA)
        extension = next((item for item in extensions if isinstance(item, AuthenticationExtension)), None)
        reason = None
        if extension is None:
            reason = "no MN-HA authentication extension"
        elif len(extensions) > 1:
            reason = f"{len(extensions)} MN-HA authentication extensions instead of exactly one"
        elif extension.spi != account.spi:
            reason = f"SPI {extension.spi} is not the configured {account.spi}"
        elif not verify_located(incoming.raw, incoming.located, _MN_HA, account.association):
            reason = "authenticator does not verify"
        elif ha_policy.nai_mismatch(request, account):
            reason = f"NAI {request.nai!r} does not match the configured NAI"
        if reason is None:
            return True
        self.counters["authentication_failures"] += 1
        if self._failure_reported(incoming):
            spi = 0 if extension is None else extension.spi
            self._emit(AuthenticationFailed(incoming.source, request.home_address, spi, reason))
            code = ReplyCode.HA_MOBILE_NODE_FAILED_AUTHENTICATION
            self._send_reply(incoming, account, code, 0, request.identification)
        return False

    def _process_authenticated(self, incoming: _Incoming, account: MobileNodeAccount) -> None:
        if not self._identification_valid(incoming, account):
            return
        request = incoming.request
        if ha_policy.is_broadcast_home_agent(request.home_agent, self.config):
            self._deny(incoming, account, ReplyCode.HA_UNKNOWN_HOME_AGENT_ADDRESS, "dynamic HA discovery")
            return
        reason = ha_policy.poorly_formed_reason(request, self.config)
        if reason is not None:
            self._deny(incoming, account, ReplyCode.HA_POORLY_FORMED_REQUEST, reason)
        elif request.is_deregistration:
            self._deregister(incoming, account)
        else:
            self._register(incoming, account)

    # -- identification (RFC 5944 §5.7) ------------------------------------------------------

    def _identification_valid(self, incoming: _Incoming, account: MobileNodeAccount) -> bool:
        request = incoming.request
        home = request.home_address
        if self.config.replay_protection is ReplayProtection.NONCE:
            expected = self._nonces.get(home)
            valid = expected is not None and identification.check_nonce(request.identification, expected)
            reason = "nonce does not match the last one sent"
        else:
            valid = self._replay.timestamp_valid(
                home, request.identification, self._unix(incoming.now), self.config.timestamp_tolerance
            )
            reason = "timestamp outside tolerance or not increasing"
        if valid:
            if self.config.replay_protection is ReplayProtection.TIMESTAMP:
                self._replay.record(home, request.identification)
            return True
        self.counters["identification_mismatches"] += 1
        if self._failure_reported(incoming):
            self._emit(IdentificationRejected(home, request.identification, reason))
            self._deny(incoming, account, ReplyCode.HA_IDENTIFICATION_MISMATCH, reason)
        return False

    def _reply_identification(self, incoming: _Incoming, code: int) -> int:
        """Timestamps: copy, or HA time high on 133; nonces: a fresh nonce high (RFC 5944 §5.7)."""
        request_id = incoming.request.identification
        if self.config.replay_protection is ReplayProtection.NONCE:
            nonce = identification.new_nonce(self._rng)
            self._nonces[incoming.request.home_address] = nonce
            return identification.nonce_reply_identification(nonce, request_id)
        if code == ReplyCode.HA_IDENTIFICATION_MISMATCH:
            return identification.mismatch_reply_identification(request_id, self._unix(incoming.now))
        return request_id

    def _unix(self, now: float) -> float:
        return now + self._wall_clock_offset

    # -- registration (RFC 5944 §3.8.3) --------------------------------------------------------

    def _register(self, incoming: _Incoming, account: MobileNodeAccount) -> None:
        request = incoming.request
        denial = ha_policy.reverse_tunnel_denial(request, self.config) or ha_policy.encapsulation_denial(
            request, self.config
        )
        simultaneous = ha_policy.simultaneous_decision(request, self.config, self.table)
        if denial is None and simultaneous.code == ReplyCode.HA_TOO_MANY_SIMULTANEOUS_BINDINGS:
            denial = simultaneous.code
        if denial is not None:
            self._deny(incoming, account, denial, describe(denial))
            return
        udp = ha_policy.udp_tunnel_decision(request, incoming.source, incoming.port, account, self.config)
        if udp.denial is not None:
            self._deny(incoming, account, udp.denial, udp.reason)
            return
        delegated = self._delegation_check(account, incoming.now)
        decisions = ha_policy.prefix_decisions(
            request, account, self.table, self.config, udp.tunnelled, delegated
        )
        entry = self._care_of_entry(incoming, udp)
        self._apply_registration(incoming, entry, simultaneous.keep_others, decisions)
        self._send_reply(incoming, account, simultaneous.code, entry.lifetime, None, decisions, udp.reply)

    def _delegation_check(
        self, account: MobileNodeAccount, now: float
    ) -> Callable[[IPv6Network], bool] | None:
        book = self.delegations
        if book is None:
            return None
        return lambda network: book.delegated_to(account.home_address, network, now)

    def _care_of_entry(self, incoming: _Incoming, udp: ha_policy.UdpTunnelDecision) -> CareOfEntry:
        """The binding's care-of: the request's Care-of Address, or behind a NAT the address and port the
        request came from (RFC 3519 §4.6)."""
        request = incoming.request
        lifetime = ha_policy.granted_lifetime(request.lifetime, self.config)
        expires = math.inf if lifetime == INFINITE_LIFETIME else incoming.now + lifetime
        care_of = CareOf(incoming.source, udp.port) if udp.tunnelled else CareOf(request.care_of_address)
        previous: int | None = None
        if udp.awaits_keepalive:  # R flag: half bound again on every registration (RFC 3519 §4.6)
            care_of = CareOf(incoming.source, UNKNOWN_PORT)
            previous = known_port(self.table.get(request.home_address), incoming.source)
        return CareOfEntry(
            care_of=care_of,
            encapsulation=ha_policy.requested_encapsulation(request.flags),
            reverse_tunnel=ha_policy.has_flag(request.flags, ha_policy.FLAG_T),
            colocated=ha_policy.has_flag(request.flags, ha_policy.FLAG_D),
            lifetime=lifetime,
            registered_at=incoming.now,
            expires_at=expires,
            identification=request.identification,
            request_source=(incoming.source, incoming.port),
            awaiting_keepalive=udp.awaits_keepalive,
            previous_port=previous,
        )

    def _apply_registration(
        self, incoming: _Incoming, entry: CareOfEntry, keep_others: bool, decisions: list[PrefixDecision]
    ) -> None:
        home = incoming.request.home_address
        binding = self.table.get(home)
        existed = binding is not None and entry.care_of in binding.care_ofs
        dropped = self.table.put(home, entry, keep_others)
        if entry.awaiting_keepalive:  # half bound again: nothing to the old port until a keepalive (§4.6)
            dropped += self._same_address_ports(home, entry.care_of)
        wanted = [item.binding for item in decisions if item.binding is not None]
        changes = self.table.replace_prefixes(home, wanted)
        event_type = BindingUpdated if existed else BindingAdded
        registered = self.table.get(home)
        prefixes = () if registered is None else tuple(registered.prefixes.values())
        care_of, lifetime = entry.care_of, entry.lifetime
        self._emit(event_type(home, care_of, entry.encapsulation, entry.reverse_tunnel, lifetime, prefixes))
        for old in dropped:  # after the new care-of is in place, so a move never leaves the HoA untunnelled
            self._emit(BindingRemoved(home, old.care_of, "replaced"))
        self._release_reused_nat_port(home, entry.care_of)
        self._emit_prefix_changes(home, changes, "omitted from re-registration (RFC 5454 §3.8)")
        self._transition(home, NodeTrigger.REGISTERED)

    def _same_address_ports(self, home: IPv4Address, care_of: CareOf) -> list[CareOfEntry]:
        """Remove (and return) the home address's other UDP care-ofs at ``care_of``'s address: an R-flag
        registration waits for the MN's keepalive before it sends to any port there (RFC 3519 §4.6)."""
        binding = self.table.get(home)
        stale = [key for key in (binding.care_ofs if binding else {}) if key.address == care_of.address]
        removed = [self.table.remove_care_of(home, key) for key in stale if key != care_of]
        return [entry for entry in removed if entry is not None]

    def _release_reused_nat_port(self, home: IPv4Address, care_of: CareOf) -> None:
        """A NAT that gives ``care_of`` (its address and port) to this mobile node no longer maps it to
        another one (it reused the port after that one's mapping expired): that other binding's UDP path
        there is stale and goes, or the HA would tunnel its traffic to this node (RFC 3519 §4.3, §4.8, §4.10;
        that node re-registers when its keepalives go unanswered)."""
        for owner in port_holders(self.table, care_of):
            if owner == home:
                continue
            self.table.remove_care_of(owner, care_of)
            self.counters["nat_port_reused"] += 1
            self._emit(BindingRemoved(owner, care_of, "nat_port_reused"))
            self._after_care_of_removed(owner, "nat_port_reused")

    def _emit_prefix_changes(self, home: IPv4Address, changes: PrefixChanges, reason: str) -> None:
        for removed in changes.removed:
            self._emit(PrefixDeregistered(home, removed, reason))
        for added in changes.added + changes.changed:
            self._emit(PrefixRegistered(home, added))

    # -- deregistration (RFC 5944 §3.6.1.2, RFC 5454 §3.8) -------------------------------------

    def _deregister(self, incoming: _Incoming, account: MobileNodeAccount) -> None:
        request = incoming.request
        home = request.home_address
        if request.care_of_address == home:
            care_ofs, prefixes = self.table.remove_all(home)
            for entry in care_ofs:
                self._emit(BindingRemoved(home, entry.care_of, "deregistered"))
            self._emit_prefixes_gone(home, prefixes, "deregistered")
            self._transition(home, NodeTrigger.DEREGISTERED_ALL, returned_home=True)
        else:
            removed = self.table.remove_care_of_address(home, request.care_of_address)
            if not removed and incoming.source != request.care_of_address:
                removed = self._remove_nat_care_of(home, incoming)
            for entry in removed:
                self._emit(BindingRemoved(home, entry.care_of, "deregistered"))
            if removed:
                self._after_care_of_removed(home, "deregistered")
        self._send_reply(incoming, account, ReplyCode.ACCEPTED, 0, None)

    def _remove_nat_care_of(self, home: IPv4Address, incoming: _Incoming) -> list[CareOfEntry]:
        """A deregistration from behind a NAT names the private care-of address; the binding holds the
        NAT's address and port, which the request came from (RFC 3519 §4.6)."""
        binding = self.table.get(home)
        at_nat = [key for key in (binding.care_ofs if binding else {}) if key.address == incoming.source]
        if not any(key.port is not None for key in at_nat):
            return []  # only a UDP (NAT) binding is found by the request's source; its port may have changed
        return self.table.remove_care_of_address(home, incoming.source)

    def _after_care_of_removed(self, home: IPv4Address, reason: str) -> None:
        """After one care-of went: if none is left, the prefixes go and the MN counts as home."""
        if self.table.care_of_count(home) > 0:
            self._transition(home, NodeTrigger.CARE_OF_REMOVED)
            return
        self._emit_prefixes_gone(home, self.table.drop_if_empty(home), reason)
        self._transition(home, NodeTrigger.LAST_CARE_OF_REMOVED)

    def _emit_prefixes_gone(self, home: IPv4Address, prefixes: list[PrefixBinding], reason: str) -> None:
        for prefix in prefixes:
            self._emit(PrefixDeregistered(home, prefix, reason))

    # -- state changes and their side effects (RFC 5944 §4.6) ------------------------------------

    def _transition(self, home: IPv4Address, trigger: NodeTrigger, returned_home: bool = False) -> None:
        before = self.node_state(home)
        after = next_state(TRANSITIONS, before, trigger)
        self._states[home] = after
        if before is NodeState.HOME and after is NodeState.AWAY:
            self._emit(ProxyArpStarted(home))
            self._emit(GratuitousArpRequested(home, ArpOwner.HOME_AGENT))
        elif before is NodeState.AWAY and after is NodeState.HOME:
            self._emit(ProxyArpStopped(home))
            if returned_home:
                self._emit(GratuitousArpRequested(home, ArpOwner.MOBILE_NODE))

    # -- output helpers ----------------------------------------------------------------------

    def _deny(self, incoming: _Incoming, account: MobileNodeAccount, code: ReplyCode, reason: str) -> None:
        self.counters[f"denied_{int(code)}"] += 1
        request = incoming.request
        self._emit(RequestDenied(request.home_address, request.care_of_address, int(code), reason))
        self._send_reply(incoming, account, code, 0, None)

    def _send_reply(
        self,
        incoming: _Incoming,
        account: MobileNodeAccount,
        code: int,
        lifetime: int,
        identification_override: int | None,
        prefix_decisions: Sequence[PrefixDecision] = (),
        udp_reply: UdpTunnelReply | None = None,
    ) -> None:
        """Queue a signed reply to the request's source address and port (RFC 5944 §3.4, §3.8.3), with a
        Prefix Reply answering each decided Prefix Request (RFC 5454 §3.3)."""
        ident = identification_override
        if ident is None:
            ident = self._reply_identification(incoming, code)
        request = incoming.request
        home = request.home_address
        prefix_replies = tuple(PrefixReply.answering(item.request, item.code) for item in prefix_decisions)
        extensions: tuple[PrefixReply | UdpTunnelReply, ...] = prefix_replies
        if udp_reply is not None:
            extensions = (*prefix_replies, udp_reply)  # before the MN-HA authentication (RFC 3519 §3.2)
        fields = encode_reply(code, lifetime, home, self.config.address, ident, extensions)
        payload = append_authentication(fields, _MN_HA, account.association)
        self._outgoing.append(
            OutgoingDatagram(payload, incoming.source, incoming.port, self.config.address, self.config.port)
        )
        self.counters["replies"] += 1
        if code in (ReplyCode.ACCEPTED, ReplyCode.ACCEPTED_NO_SIMULTANEOUS_BINDINGS):
            if lifetime > 0:
                self._remember_source(incoming.source, incoming.now, lifetime)
        else:
            self.counters["refusal_replies"] += 1  # signed 131/133/...: what a spoofed flood reflects
        summary = tuple((item.request.text, item.code) for item in prefix_decisions)
        self._emit(ReplySent(incoming.source, incoming.port, home, code, lifetime, ident, summary))

    def _remember_source(self, source: IPv4Address, now: float, lifetime: int) -> None:
        """Note a source whose registration was accepted (see :meth:`is_known_source`); only
        authenticated requests get here, so the map is bounded by the mobile nodes' bindings."""
        self._remember_until(source, now + lifetime, now)

    def _remember_until(self, source: IPv4Address, expiry: float, now: float | None = None) -> None:
        until = expiry + KNOWN_GRACE
        self._known[source] = max(until, self._known.get(source, until))
        if self._known_view is None or source not in self._known_view.sources:
            self._known_changes += 1  # may have become known: the next known_sources() builds again
        if now is not None and len(self._known) > 64 + 4 * len(self._home_addresses):  # forget expired
            self._known = {address: end for address, end in self._known.items() if end > now}

    def _emit(self, event: HomeAgentEvent) -> None:
        self._events.append(event)

    def _discard(self, address: IPv4Address, port: int, reason: str) -> None:
        self.counters["discarded"] += 1
        self._emit(DatagramDiscarded(address, port, reason))

    def _malformed(self, address: IPv4Address, port: int, error: Exception) -> None:
        self.counters["malformed"] += 1
        offset = error.offset if isinstance(error, DecodeError) else None
        reason = error.reason if isinstance(error, DecodeError) else str(error)
        self._emit(MalformedDatagram(address, port, reason, offset))
