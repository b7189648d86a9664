"""The trace schema: every event name an agent or the scenario harness writes, with its fields.

A trace line is ``{"t": CLOCK_MONOTONIC seconds, "node": name, "event": TraceEvent, **fields}``
(agents/runtime/trace.py). The machines' event classes take their ``name`` from here, the agent shell and
the harness emit these members, and ``reports/`` matches them: a renamed event fails the unit tier
(tests/unit/test_trace_schema.py), not only a root run. Stdlib only, so every layer may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

HEADER: Final = ("t", "node", "event")
"""Keys every trace line starts with (agents.runtime.trace.HEADER_KEYS)."""


class TraceEvent(StrEnum):
    """The value of a trace line's ``"event"`` key."""

    # -- core, shared (agents.mip.common.events)
    ADVERTISEMENT_DISCARDED = "advertisement_discarded"
    AGENT_DISCOVERED = "agent_discovered"
    AGENT_LOST = "agent_lost"
    ARP_MODE_CHANGED = "arp_mode_changed"
    AT_HOME = "at_home"
    AUTHENTICATION_FAILED = "authentication_failed"
    BINDING_ADDED = "binding_added"
    BINDING_REMOVED = "binding_removed"
    BINDING_UPDATED = "binding_updated"
    CLOCK_RESYNCHRONISED = "clock_resynchronised"
    DATAGRAM_DISCARDED = "datagram_discarded"
    DEREGISTERED = "deregistered"
    GRATUITOUS_ARP = "gratuitous_arp"
    IDENTIFICATION_REJECTED = "identification_rejected"
    IPV4_ONLY_FALLBACK = "ipv4_only_fallback"
    IPV6_ADDRESS_ADDED = "ipv6_address_added"
    IPV6_ADDRESS_REMOVED = "ipv6_address_removed"
    IPV6_ROUTE_ADDED = "ipv6_route_added"
    IPV6_ROUTE_REMOVED = "ipv6_route_removed"
    KEEPALIVE_ANSWERED = "keepalive_answered"
    KEEPALIVE_DUE = "keepalive_due"
    KEEPALIVE_LOST = "keepalive_lost"
    LLH_PRE_ABANDONED = "llh_pre_abandoned"
    LLH_PRE_ATTACHED = "llh_pre_attached"
    LLH_PRE_READY = "llh_pre_ready"
    LLH_PRE_STARTED = "llh_pre_started"
    MALFORMED_DATAGRAM = "malformed_datagram"
    MOVEMENT_DETECTED = "movement_detected"
    PREFIX_ACCEPTED = "prefix_accepted"
    PREFIX_DEREGISTERED = "prefix_deregistered"
    PREFIX_REGISTERED = "prefix_registered"
    PREFIX_REJECTED = "prefix_rejected"
    PROXY_ARP_STARTED = "proxy_arp_started"
    PROXY_ARP_STOPPED = "proxy_arp_stopped"
    REGISTRATION_ACCEPTED = "registration_accepted"
    REGISTRATION_DENIED = "registration_denied"
    REGISTRATION_EXPIRED = "registration_expired"
    RRP_RECEIVED = "rrp_received"
    RRP_SENT = "rrp_sent"
    RRQ_DENIED = "rrq_denied"
    RRQ_RECEIVED = "rrq_received"
    RRQ_SENT = "rrq_sent"
    SOLICITATION_SENT = "solicitation_sent"
    TUNNEL_DOWN = "tunnel_down"
    TUNNEL_UP = "tunnel_up"
    UDP_TUNNEL_BOUND = "udp_tunnel_bound"

    # -- foreign agent (agents.mip.fa.events)
    ADVERTISEMENT_SENT = "advertisement_sent"
    FA_AUTHENTICATION_FAILED = "fa_authentication_failed"
    FA_DENIED = "fa_denied"
    FA_RRP_RELAYED = "fa_rrp_relayed"
    FA_RRQ_RELAYED = "fa_rrq_relayed"
    LLH_BET_CLOSED = "llh_bet_closed"
    LLH_BET_FORWARDING = "llh_bet_forwarding"
    LLH_BET_UP = "llh_bet_up"
    LLH_VISITOR_ATTACHED = "llh_visitor_attached"
    LLH_VISITOR_EXPECTED = "llh_visitor_expected"
    SOLICITATION_RECEIVED = "solicitation_received"
    VISITOR_ADDED = "visitor_added"
    VISITOR_REMOVED = "visitor_removed"
    VISITOR_UPDATED = "visitor_updated"

    # -- DHCPv6-PD client (agents.mip.mn.pd_events)
    DELEGATION_LOST = "delegation_lost"
    DHCPV6_IGNORED = "dhcpv6_ignored"
    DHCPV6_NO_PREFIX = "dhcpv6_no_prefix"
    DHCPV6_RECEIVED = "dhcpv6_received"
    DHCPV6_RELEASE_FINISHED = "dhcpv6_release_finished"
    DHCPV6_SENT = "dhcpv6_sent"
    PREFIX_DELEGATED = "prefix_delegated"

    # -- agent shell (agents/runtime)
    AGENT_EXIT = "agent_exit"
    AGENT_READY = "agent_ready"
    AGENT_START = "agent_start"
    AGENT_STOP = "agent_stop"
    APPLY_FAILED = "apply_failed"
    BINDING_NOT_RESTORED = "binding_not_restored"
    BINDING_RESTORED = "binding_restored"
    DATAPATH_SELECTED = "datapath_selected"
    DELEGATIONS_READ = "delegations_read"
    DELEGATIONS_UNAVAILABLE = "delegations_unavailable"
    DEREGISTRATION_GAVE_UP = "deregistration_gave_up"
    DHCPV6_SEND_FAILED = "dhcpv6_send_failed"
    JOURNAL_PROBLEMS = "journal_problems"
    PRIORITY_SOURCES = "priority_sources"
    PRIORITY_SOURCES_FAILED = "priority_sources_failed"
    SCHEDULING = "scheduling"
    SECURITY_DROP = "security_drop"
    SECURITY_SUPPRESSED = "security_suppressed"
    STALE_STATE_REMOVED = "stale_state_removed"
    VISITOR_NOT_RESTORED = "visitor_not_restored"
    VISITOR_RESTORED = "visitor_restored"

    # -- scenario harness (scenarios/)
    AGENT_STARTED = "agent_started"
    CAPTURES_STARTED = "captures_started"
    HOST_FLOWS_FORGOTTEN = "host_flows_forgotten"
    KEA_STARTED = "kea_started"
    KEA_STOPPED = "kea_stopped"
    L2_ATTACHED_REPORTED = "l2_attached_reported"
    L2_DETACHED_REPORTED = "l2_detached_reported"
    L2_TRIGGER = "l2_trigger"
    MACS = "macs"
    MOVE_FINISHED = "move_finished"
    MOVE_STARTED = "move_started"
    PHASE_FINISHED = "phase_finished"
    PHASE_STARTED = "phase_started"
    PRE_REFUSED = "pre_refused"
    PRE_REGISTERED = "pre_registered"
    PRE_TIMEOUT = "pre_timeout"
    PROBES_STARTED = "probes_started"
    PROBES_STOPPED = "probes_stopped"
    SECOND_LINK_DOWN = "second_link_down"
    SECOND_LINK_UP = "second_link_up"
    STEP = "step"


E = TraceEvent

FIELDS: Final[Mapping[TraceEvent, frozenset[str]]] = MappingProxyType(
    {
        # -- core, shared (agents.mip.common.events)
        E.ADVERTISEMENT_DISCARDED: frozenset({"offset", "reason", "source"}),
        E.AGENT_DISCOVERED: frozenset({"agent", "care_of_addresses", "flags", "lifetime", "sequence"}),
        E.AGENT_LOST: frozenset({"agent", "reason"}),
        E.ARP_MODE_CHANGED: frozenset({"away", "foreign_agent", "home_address"}),
        E.AT_HOME: frozenset({"home_address"}),
        E.AUTHENTICATION_FAILED: frozenset({"home_address", "reason", "source", "spi"}),
        E.BINDING_ADDED: frozenset(
            {"care_of", "encapsulation", "home_address", "lifetime", "prefixes", "reverse_tunnel"}
        ),
        E.BINDING_REMOVED: frozenset({"care_of", "home_address", "reason"}),
        E.BINDING_UPDATED: frozenset(
            {"care_of", "encapsulation", "home_address", "lifetime", "prefixes", "reverse_tunnel"}
        ),
        E.CLOCK_RESYNCHRONISED: frozenset({"nonce", "offset"}),
        E.DATAGRAM_DISCARDED: frozenset({"port", "reason", "source"}),
        E.DEREGISTERED: frozenset({"care_of", "confirmed"}),
        E.GRATUITOUS_ARP: frozenset({"address", "owner"}),
        E.IDENTIFICATION_REJECTED: frozenset({"home_address", "identification", "reason"}),
        E.IPV4_ONLY_FALLBACK: frozenset(),
        E.IPV6_ADDRESS_ADDED: frozenset({"address", "target"}),
        E.IPV6_ADDRESS_REMOVED: frozenset({"address", "target"}),
        E.IPV6_ROUTE_ADDED: frozenset({"prefix", "target"}),
        E.IPV6_ROUTE_REMOVED: frozenset({"prefix", "target"}),
        E.KEEPALIVE_ANSWERED: frozenset({"sequence"}),
        E.KEEPALIVE_DUE: frozenset({"attempt", "home_address", "home_agent", "sequence"}),
        E.KEEPALIVE_LOST: frozenset({"missed"}),
        E.LLH_PRE_ABANDONED: frozenset({"agent", "reason"}),
        E.LLH_PRE_ATTACHED: frozenset({"agent", "ready"}),
        E.LLH_PRE_READY: frozenset({"agent", "care_of"}),
        E.LLH_PRE_STARTED: frozenset({"agent", "care_of"}),
        E.MALFORMED_DATAGRAM: frozenset({"offset", "port", "reason", "source"}),
        E.MOVEMENT_DETECTED: frozenset({"from_agent", "reason", "to_agent"}),
        E.PREFIX_ACCEPTED: frozenset({"code", "link_local", "prefix", "target"}),
        E.PREFIX_DEREGISTERED: frozenset({"home_address", "prefix", "reason"}),
        E.PREFIX_REGISTERED: frozenset({"home_address", "prefix"}),
        E.PREFIX_REJECTED: frozenset({"code", "link_local", "prefix"}),
        E.PROXY_ARP_STARTED: frozenset({"home_address"}),
        E.PROXY_ARP_STOPPED: frozenset({"home_address"}),
        E.REGISTRATION_ACCEPTED: frozenset({"care_of", "code", "lifetime"}),
        E.REGISTRATION_DENIED: frozenset({"care_of", "code"}),
        E.REGISTRATION_EXPIRED: frozenset({"care_of"}),
        E.RRP_RECEIVED: frozenset({"code", "identification", "lifetime"}),
        E.RRP_SENT: frozenset(
            {"code", "destination", "home_address", "identification", "lifetime", "port", "prefix_replies"}
        ),
        E.RRQ_DENIED: frozenset({"care_of", "code", "home_address", "reason"}),
        E.RRQ_RECEIVED: frozenset(
            {"care_of", "flags", "home_address", "identification", "lifetime", "port", "source"}
        ),
        E.RRQ_SENT: frozenset({"attempt", "care_of", "identification", "lifetime"}),
        E.SOLICITATION_SENT: frozenset({"attempt", "destination"}),
        E.TUNNEL_DOWN: frozenset({"care_of", "reason"}),
        E.TUNNEL_UP: frozenset(
            {
                "care_of",
                "colocated",
                "encapsulation",
                "home_address",
                "home_agent",
                "reverse_tunnel",
                "udp_keepalive",
            }
        ),
        E.UDP_TUNNEL_BOUND: frozenset({"care_of", "home_address", "previous_port", "waited"}),
        # -- foreign agent (agents.mip.fa.events)
        E.ADVERTISEMENT_SENT: frozenset({"destination", "sequence", "solicited"}),
        E.FA_AUTHENTICATION_FAILED: frozenset({"extension_type", "home_address", "reason", "source", "spi"}),
        E.FA_DENIED: frozenset({"care_of", "code", "home_address", "home_agent", "reason"}),
        E.FA_RRP_RELAYED: frozenset({"code", "home_address", "home_agent", "identification", "lifetime"}),
        E.FA_RRQ_RELAYED: frozenset(
            {
                "care_of",
                "flags",
                "home_address",
                "home_agent",
                "identification",
                "lifetime",
                "link_address",
                "source_port",
            }
        ),
        E.LLH_BET_CLOSED: frozenset({"home_address", "peer", "reason", "side"}),
        E.LLH_BET_FORWARDING: frozenset({"home_address", "peer"}),
        E.LLH_BET_UP: frozenset({"home_address", "lifetime", "link_address", "peer", "side"}),
        E.LLH_VISITOR_ATTACHED: frozenset({"home_address", "how", "link_address"}),
        E.LLH_VISITOR_EXPECTED: frozenset({"home_address", "link_address", "timeout"}),
        E.SOLICITATION_RECEIVED: frozenset({"interface", "link_address", "source"}),
        E.VISITOR_ADDED: frozenset(
            {
                "care_of",
                "colocated",
                "delivery_style",
                "encapsulation",
                "home_address",
                "home_agent",
                "interface",
                "lifetime",
                "link_address",
                "reverse_tunnel",
                "source_address",
                "source_port",
            }
        ),
        E.VISITOR_REMOVED: frozenset(
            {"care_of", "home_address", "home_agent", "interface", "link_address", "reason"}
        ),
        E.VISITOR_UPDATED: frozenset(
            {
                "care_of",
                "colocated",
                "delivery_style",
                "encapsulation",
                "home_address",
                "home_agent",
                "interface",
                "lifetime",
                "link_address",
                "reverse_tunnel",
                "source_address",
                "source_port",
            }
        ),
        # -- DHCPv6-PD client (agents.mip.mn.pd_events)
        E.DELEGATION_LOST: frozenset({"prefix", "reason"}),
        E.DHCPV6_IGNORED: frozenset({"message", "reason"}),
        E.DHCPV6_NO_PREFIX: frozenset({"message"}),
        E.DHCPV6_RECEIVED: frozenset({"message", "rapid_commit", "transaction_id"}),
        E.DHCPV6_RELEASE_FINISHED: frozenset({"confirmed"}),
        E.DHCPV6_SENT: frozenset({"attempt", "message", "rapid_commit", "transaction_id"}),
        E.PREFIX_DELEGATED: frozenset({"how", "preferred", "prefix", "server_id", "t1", "t2", "valid"}),
        # -- agent shell (agents/runtime)
        E.AGENT_EXIT: frozenset({"code"}),
        E.AGENT_READY: frozenset({"control"}),
        E.AGENT_START: frozenset({"config", "role"}),
        E.AGENT_STOP: frozenset({"reason"}),
        E.APPLY_FAILED: frozenset({"error", "what"}),
        E.BINDING_NOT_RESTORED: frozenset({"care_ofs", "home_address", "prefixes", "skipped"}),
        E.BINDING_RESTORED: frozenset({"care_ofs", "home_address", "prefixes", "skipped"}),
        E.DATAPATH_SELECTED: frozenset({"backend", "reason", "requested"}),
        E.DELEGATIONS_READ: frozenset({"count"}),
        E.DELEGATIONS_UNAVAILABLE: frozenset({"error"}),
        E.DEREGISTRATION_GAVE_UP: frozenset({"attempts", "waited"}),
        E.DHCPV6_SEND_FAILED: frozenset({"error"}),
        E.JOURNAL_PROBLEMS: frozenset({"path", "problems"}),
        E.PRIORITY_SOURCES: frozenset({"count", "sources"}),
        E.PRIORITY_SOURCES_FAILED: frozenset({"error"}),
        E.SCHEDULING: frozenset({"error", "priority", "state"}),
        E.SECURITY_DROP: frozenset(
            {
                "inner_destination",
                "inner_source",
                "outer_destination",
                "outer_destination_port",
                "outer_source",
                "outer_source_port",
                "protocol",
                "reason",
            }
        ),
        E.SECURITY_SUPPRESSED: frozenset({"by_event", "count"}),
        E.STALE_STATE_REMOVED: frozenset({"removed"}),
        E.VISITOR_NOT_RESTORED: frozenset({"care_of", "home_address", "reason"}),
        E.VISITOR_RESTORED: frozenset({"care_of", "home_address", "reason"}),
        # -- scenario harness (scenarios/)
        E.AGENT_STARTED: frozenset({"agent", "role"}),
        E.CAPTURES_STARTED: frozenset({"count"}),
        E.HOST_FLOWS_FORGOTTEN: frozenset({"entries"}),
        E.KEA_STARTED: frozenset({"pid"}),
        E.KEA_STOPPED: frozenset({"code"}),
        E.L2_ATTACHED_REPORTED: frozenset({"ask_ms", "handover", "home_address", "to"}),
        E.L2_DETACHED_REPORTED: frozenset({"forwarding", "handover", "to"}),
        E.L2_TRIGGER: frozenset({"handover", "mode", "to"}),
        E.MACS: frozenset({"ha", "mn1"}),
        E.MOVE_FINISHED: frozenset({"handover", "restored"}),
        E.MOVE_STARTED: frozenset({"detection", "from", "handover", "to"}),
        E.PHASE_FINISHED: frozenset({"phase"}),
        E.PHASE_STARTED: frozenset({"phase"}),
        E.PRE_REFUSED: frozenset({"handover", "reason"}),
        E.PRE_REGISTERED: frozenset({"handover", "to"}),
        E.PRE_TIMEOUT: frozenset({"handover", "to"}),
        E.PROBES_STARTED: frozenset({"flows", "rate"}),
        E.PROBES_STOPPED: frozenset(),
        E.SECOND_LINK_DOWN: frozenset({"handover", "interface"}),
        E.SECOND_LINK_UP: frozenset({"handover", "interface", "to"}),
        E.STEP: frozenset({"address", "port", "what"}),
    }
)
"""Fields each event may carry besides the header (core events: exactly their dataclass fields)."""

CORE_EVENTS: Final = frozenset(
    {
        E.ADVERTISEMENT_DISCARDED,
        E.AGENT_DISCOVERED,
        E.AGENT_LOST,
        E.ARP_MODE_CHANGED,
        E.AT_HOME,
        E.AUTHENTICATION_FAILED,
        E.BINDING_ADDED,
        E.BINDING_REMOVED,
        E.BINDING_UPDATED,
        E.CLOCK_RESYNCHRONISED,
        E.DATAGRAM_DISCARDED,
        E.DEREGISTERED,
        E.GRATUITOUS_ARP,
        E.IDENTIFICATION_REJECTED,
        E.IPV4_ONLY_FALLBACK,
        E.IPV6_ADDRESS_ADDED,
        E.IPV6_ADDRESS_REMOVED,
        E.IPV6_ROUTE_ADDED,
        E.IPV6_ROUTE_REMOVED,
        E.KEEPALIVE_ANSWERED,
        E.KEEPALIVE_DUE,
        E.KEEPALIVE_LOST,
        E.LLH_PRE_ABANDONED,
        E.LLH_PRE_ATTACHED,
        E.LLH_PRE_READY,
        E.LLH_PRE_STARTED,
        E.MALFORMED_DATAGRAM,
        E.MOVEMENT_DETECTED,
        E.PREFIX_ACCEPTED,
        E.PREFIX_DEREGISTERED,
        E.PREFIX_REGISTERED,
        E.PREFIX_REJECTED,
        E.PROXY_ARP_STARTED,
        E.PROXY_ARP_STOPPED,
        E.REGISTRATION_ACCEPTED,
        E.REGISTRATION_DENIED,
        E.REGISTRATION_EXPIRED,
        E.RRP_RECEIVED,
        E.RRP_SENT,
        E.RRQ_DENIED,
        E.RRQ_RECEIVED,
        E.RRQ_SENT,
        E.SOLICITATION_SENT,
        E.TUNNEL_DOWN,
        E.TUNNEL_UP,
        E.UDP_TUNNEL_BOUND,
        E.ADVERTISEMENT_SENT,
        E.FA_AUTHENTICATION_FAILED,
        E.FA_DENIED,
        E.FA_RRP_RELAYED,
        E.FA_RRQ_RELAYED,
        E.LLH_BET_CLOSED,
        E.LLH_BET_FORWARDING,
        E.LLH_BET_UP,
        E.LLH_VISITOR_ATTACHED,
        E.LLH_VISITOR_EXPECTED,
        E.SOLICITATION_RECEIVED,
        E.VISITOR_ADDED,
        E.VISITOR_REMOVED,
        E.VISITOR_UPDATED,
        E.DELEGATION_LOST,
        E.DHCPV6_IGNORED,
        E.DHCPV6_NO_PREFIX,
        E.DHCPV6_RECEIVED,
        E.DHCPV6_RELEASE_FINISHED,
        E.DHCPV6_SENT,
        E.PREFIX_DELEGATED,
    }
)
"""Events the sans-I/O machines emit (classes in agents.mip.*), written by the roles' driver."""

AGENT_EVENTS: Final = frozenset(
    {
        E.AGENT_EXIT,
        E.AGENT_READY,
        E.AGENT_START,
        E.AGENT_STOP,
        E.APPLY_FAILED,
        E.BINDING_NOT_RESTORED,
        E.BINDING_RESTORED,
        E.DATAPATH_SELECTED,
        E.DELEGATIONS_READ,
        E.DELEGATIONS_UNAVAILABLE,
        E.DEREGISTRATION_GAVE_UP,
        E.DHCPV6_SEND_FAILED,
        E.JOURNAL_PROBLEMS,
        E.PRIORITY_SOURCES,
        E.PRIORITY_SOURCES_FAILED,
        E.SCHEDULING,
        E.SECURITY_DROP,
        E.SECURITY_SUPPRESSED,
        E.STALE_STATE_REMOVED,
        E.VISITOR_NOT_RESTORED,
        E.VISITOR_RESTORED,
    }
)
"""Events the agent shell (agents/runtime) writes itself."""

SCENARIO_EVENTS: Final = frozenset(
    {
        E.AGENT_STARTED,
        E.CAPTURES_STARTED,
        E.HOST_FLOWS_FORGOTTEN,
        E.KEA_STARTED,
        E.KEA_STOPPED,
        E.L2_ATTACHED_REPORTED,
        E.L2_DETACHED_REPORTED,
        E.L2_TRIGGER,
        E.MACS,
        E.MOVE_FINISHED,
        E.MOVE_STARTED,
        E.PHASE_FINISHED,
        E.PHASE_STARTED,
        E.PRE_REFUSED,
        E.PRE_REGISTERED,
        E.PRE_TIMEOUT,
        E.PROBES_STARTED,
        E.PROBES_STOPPED,
        E.SECOND_LINK_DOWN,
        E.SECOND_LINK_UP,
        E.STEP,
    }
)
"""Events the scenario harness writes to the ``scenario`` node's trace."""

SCENARIO_NODE: Final = "scenario"
"""The harness's node name in the run folder's traces."""
