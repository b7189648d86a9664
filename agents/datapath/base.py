"""The datapath interface the runtime drives, and the small value types it speaks.

A datapath moves packets between a tunnel interface and the network for one role:

* foreign agent (:class:`ForeignAgentDatapath`): IP-in-IP between its care-of address and each
  visitor's home agent, delivery on the access link, reverse tunnelling (RFC 5944 §4.2.2, RFC 3024 §5).
* home agent (:class:`HomeAgentDatapath`): one binding per (home address, care-of address); IPv4 to a
  home address and IPv6 to a registered prefix are tunnelled to the care-of address (RFC 5944 §4.2.3,
  RFC 5454 §3.3.2); reverse-tunnelled packets are accepted only from registered tunnel endpoints with
  registered inner sources (RFC 3024 §4.3.2, RFC 5454 §3.3.2, §4).
* mobile node (:class:`MobileNodeDatapath`): its single tunnel to the home agent, with a co-located
  care-of address or through a foreign agent.

The vocabulary comes from the sans-I/O core: :class:`~agents.mip.common.config.Encapsulation` (ipip, gre,
minimal) and :class:`~agents.mip.common.bindings.TunnelTarget` (home-address = RFC 5454 code 0, care-of =
code 1). Every method may be called from any thread; ``on_drop`` callbacks run on a datapath thread.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Interface, IPv6Network
from typing import TYPE_CHECKING

from agents.mip.common.bindings import TunnelTarget, ipv4_protocol, ipv6_protocol
from agents.mip.common.config import Encapsulation

if TYPE_CHECKING:
    from agents.datapath.fa_tables import VisitorRoute

__all__ = [
    "Counters",
    "Datapath",
    "DropEvent",
    "DropReason",
    "Encapsulation",
    "ForeignAgentDatapath",
    "HomeAgentDatapath",
    "MobileNodeDatapath",
    "TunnelTarget",
    "ipv4_protocol",
    "ipv6_protocol",
]


class DropReason(StrEnum):
    """Why a packet was dropped; the counters are keyed by these values."""

    UNKNOWN_OUTER_SOURCE = "unknown_outer_source"
    """Outer source is no registered care-of / home address / home agent (RFC 3024 §4.3.2, RFC 4213 §3.6)."""
    INNER_SOURCE = "inner_source"
    """Inner source is not the binding's home address / inside its prefixes (RFC 3024 §4.3.2, RFC 5454 §4)."""
    ENCAPSULATION = "encapsulation"
    """Right endpoints, but not the negotiated encapsulation (RFC 3024 §4.3.2)."""
    TUNNEL_TARGET = "tunnel_target"
    """IPv6 from a prefix arrived via the other endpoint than its registered target (RFC 5454 §3.3.2)."""
    UNNESTED_HOME_ADDRESS = "unnested_home_address"
    """IPv6-in-IPv4 from a home address that did not arrive inside its care-of tunnel: for code 0 that
    layer is legitimate only nested (RFC 5454 §3.3.2, §4; RFC 3024 §4.3.2), so it is a spoof."""
    ECN = "ecn"
    """Outer CE over an inner Not-ECT packet (RFC 6040 §4.2)."""
    MALFORMED = "malformed"
    """Truncated or inconsistent headers, or a non-tunnel payload."""
    NO_TUNNEL = "no_tunnel"
    """A packet left the tunnel interface with no binding for it (outbound)."""
    HOP_LIMIT = "hop_limit"
    """TTL / hop limit 0: never encapsulated (RFC 2003 §3.1)."""
    SEND_FAILED = "send_failed"
    """The kernel refused the encapsulated packet (unreachable, too big with DF, ...)."""


@dataclass(frozen=True)
class DropEvent:
    """One dropped inbound packet, for the runtime's security log (RFC 3024 §4.3.2 "silently discard")."""

    reason: DropReason
    protocol: int
    outer_source: IPv4Address
    outer_destination: IPv4Address
    inner_source: str | None = None
    inner_destination: str | None = None
    outer_source_port: int | None = None
    """UDP tunnelling (RFC 3519 §4.8): the sender's port, the one that failed the check; None otherwise."""
    outer_destination_port: int | None = None

    def to_dict(self) -> dict[str, object]:
        """The log record; the port keys only for UDP-tunnelled packets (the other keys never change)."""
        record: dict[str, object] = {
            "reason": self.reason.value,
            "protocol": self.protocol,
            "outer_source": str(self.outer_source),
            "outer_destination": str(self.outer_destination),
            "inner_source": self.inner_source,
            "inner_destination": self.inner_destination,
        }
        if self.outer_source_port is not None:
            record["outer_source_port"] = self.outer_source_port
        if self.outer_destination_port is not None:
            record["outer_destination_port"] = self.outer_destination_port
        return record


DropCallback = Callable[[DropEvent], None]


@dataclass(frozen=True)
class Counters:
    """A snapshot: packets/bytes tunnelled out (inner sizes), delivered in, and drops per reason."""

    encapsulated_packets: int = 0
    encapsulated_bytes: int = 0
    decapsulated_packets: int = 0
    decapsulated_bytes: int = 0
    drops: dict[str, int] = field(default_factory=dict)

    def dropped(self, reason: DropReason) -> int:
        return self.drops.get(reason.value, 0)

    def to_dict(self) -> dict[str, object]:
        return {
            "encapsulated_packets": self.encapsulated_packets,
            "encapsulated_bytes": self.encapsulated_bytes,
            "decapsulated_packets": self.decapsulated_packets,
            "decapsulated_bytes": self.decapsulated_bytes,
            "drops": dict(self.drops),
        }


class Datapath(abc.ABC):
    """What both roles offer. ``close()`` removes every link, address, route, rule, neighbour entry
    and sysctl change the datapath made, and stops its threads; it is idempotent."""

    interface_name: str

    @abc.abstractmethod
    def add_ipv4_tunnel(
        self,
        home_address: IPv4Address,
        care_of: IPv4Address,
        encapsulation: Encapsulation = Encapsulation.IP_IN_IP,
        *,
        home_agent: IPv4Address,
        reverse_tunnel: bool = True,
    ) -> None:
        """Create or update the IPv4 tunnel for ``home_address`` (RFC 5944 §4.2.3, RFC 3024)."""

    @abc.abstractmethod
    def remove_ipv4_tunnel(self, home_address: IPv4Address, care_of: IPv4Address | None = None) -> None:
        """Remove one care-of binding (or all of them for this home address) and its prefixes' routes."""

    @abc.abstractmethod
    def add_ipv6_prefix(
        self, prefix: IPv6Network, home_address: IPv4Address, target: TunnelTarget = TunnelTarget.HOME_ADDRESS
    ) -> None:
        """Carry IPv6 for ``prefix`` over the home address's tunnel (RFC 5454 §3.3.2).

        ``target`` HOME_ADDRESS (code 0): IPv6-in-IPv4 to/from the home address, nested inside the
        care-of tunnel; CARE_OF (code 1): IPv6 straight to/from the care-of address. A /128 link-local
        (RFC 5454 §3.7.1) always uses the home-address tunnel.
        """

    @abc.abstractmethod
    def remove_ipv6_prefix(self, prefix: IPv6Network) -> None:
        """Stop carrying ``prefix`` (RFC 5454 §3.8)."""

    @abc.abstractmethod
    def counters(self) -> Counters:
        """Packets and bytes per direction and drops per :class:`DropReason`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop, and remove everything this datapath installed."""

    def __enter__(self) -> Datapath:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class HomeAgentDatapath(Datapath, abc.ABC):
    """Home agent role: many bindings; proxy ARP on the home link for away home addresses."""


class MobileNodeDatapath(Datapath, abc.ABC):
    """Mobile node role: one tunnel to its home agent, addresses on the tunnel interface."""

    @abc.abstractmethod
    def add_ipv6_address(
        self, address: IPv6Interface, target: TunnelTarget = TunnelTarget.HOME_ADDRESS
    ) -> None:
        """Put a home-prefix address on the tunnel interface; packets from it follow ``target``."""

    @abc.abstractmethod
    def remove_ipv6_address(self, address: IPv6Interface) -> None:
        """Remove an address added with :meth:`add_ipv6_address`."""

    @abc.abstractmethod
    def add_ipv6_route(self, destination: IPv6Network) -> None:
        """Route ``destination`` (``::/0`` for the default) into the tunnel interface."""

    @abc.abstractmethod
    def remove_ipv6_route(self, destination: IPv6Network) -> None:
        """Remove a route added with :meth:`add_ipv6_route`."""


class ForeignAgentDatapath(abc.ABC):
    """Foreign agent role: IP-in-IP between its care-of addresses and its visitors' home agents, delivery
    to visitors' link-layer addresses (RFC 5944 §4.2.2) and reverse tunnelling (RFC 3024 §5).
    ``close()`` removes everything it installed and is idempotent."""

    interface_name: str

    @abc.abstractmethod
    def set_visitor(self, route: VisitorRoute) -> None:
        """Add or replace one visitor's delivery and reverse-tunnel state."""

    @abc.abstractmethod
    def remove_visitor(self, home_address: IPv4Address) -> None:
        """Forget a visitor: no more delivery, no more reverse tunnelling."""

    @abc.abstractmethod
    def filter_foreign_sources(self, access_network: IPv4Network) -> None:
        """Route packets from outside ``access_network`` arriving on the access link only for visitors."""

    @abc.abstractmethod
    def counters(self) -> Counters:
        """Reverse-tunnelled (encapsulated) and delivered (decapsulated) packets, drops per reason."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop, and remove everything this datapath installed."""
