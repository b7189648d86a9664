"""Whether a restarted foreign agent may take back a saved visitor entry (RFC 5944 §3.7.1; RFC 3024 §3).

The entry was accepted by a previous run, maybe under another configuration: it must not have expired, its
care-of address must still be one of ours, and what it uses (encapsulation, reverse tunnelling, delivery
style) must still be offered. Pure: no clock (``now`` is a parameter), no I/O.
"""

from __future__ import annotations

from agents.mip.fa.config import DeliveryStyle, ForeignAgentConfig
from agents.mip.fa.visitors import Visitor, VisitorList


def restore_refusal(
    visitor: Visitor, config: ForeignAgentConfig, visitors: VisitorList, now: float
) -> str | None:
    """Why ``visitor`` cannot be restored at ``now``, or None if it can."""
    limit = config.max_visitors
    if visitor.expires_at <= now:
        return "expired"
    if visitors.known(visitor.home_address):
        return "already pending or visiting"
    if visitor.care_of not in config.care_of_addresses:
        return f"care-of address {visitor.care_of} is no longer ours"
    if visitor.encapsulation not in config.encapsulations:
        return f"encapsulation {visitor.encapsulation} no longer offered"
    if visitor.reverse_tunnel and not config.reverse_tunnel_supported:
        return "reverse tunnelling no longer offered (RFC 3024 §3.2)"
    if not visitor.reverse_tunnel and config.reverse_tunnel_required:
        return "reverse tunnelling now required (RFC 3024 §3.2)"
    encapsulating = visitor.delivery_style is DeliveryStyle.ENCAPSULATING
    if encapsulating and not config.encapsulating_delivery_supported:
        return "encapsulating delivery no longer offered (RFC 3024 §3.3)"
    if limit is not None and visitors.occupancy() >= limit:
        return f"max_visitors {limit} reached"
    return None
