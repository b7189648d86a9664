"""The home agent's view of DHCPv6 prefix delegations (RFC 5454 §3.7.1, §2.2), as a pure policy.

The DHCPv6 server's lease state is the source of truth: the runtime reads it (Kea's ``lease6-get-all``)
and feeds it here with :meth:`DelegationBook.update`; the HA then accepts a registered prefix outside a
mobile node's configured ones only if that prefix is currently delegated to that node, and answers code 9
(administratively prohibited) otherwise. A lease names its client by DUID: each node's DUID is
:func:`mobile_node_duid` of its home address unless configured otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Network

from agents.mip.wire.dhcpv6 import duid_en
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.registration import RegistrationRequest, decode_message

DOCUMENTATION_ENTERPRISE = 32473
"""The IANA enterprise number reserved for documentation and examples (RFC 5612)."""
DUID_PREFIX = b"dsmip4"


def mobile_node_duid(home_address: IPv4Address, enterprise: int = DOCUMENTATION_ENTERPRISE) -> bytes:
    """A mobile node's DUID-EN (RFC 8415 §11.3): ``dsmip4`` + its home address; stable across moves."""
    return duid_en(enterprise, DUID_PREFIX + home_address.packed)


@dataclass(frozen=True)
class Delegation:
    """One delegated prefix as the server holds it; ``expires_at`` in the caller's clock (None: never)."""

    prefix: IPv6Network
    duid: bytes
    iaid: int
    expires_at: float | None


class DelegationBook:
    """Delegated prefixes by owner; ``owners`` maps a client DUID to the mobile node's home address."""

    def __init__(self, owners: Mapping[bytes, IPv4Address]) -> None:
        self.owners = dict(owners)
        self._delegations: tuple[Delegation, ...] = ()
        self.updated_at: float | None = None

    @classmethod
    def for_home_addresses(cls, homes: Iterable[IPv4Address]) -> DelegationBook:
        """Owners by the default DUID of each home address."""
        return cls({mobile_node_duid(home): home for home in homes})

    def update(self, delegations: Iterable[Delegation], now: float) -> None:
        """Replace what is known with the server's current leases."""
        self._delegations = tuple(delegations)
        self.updated_at = now

    def owner_of(self, delegation: Delegation) -> IPv4Address | None:
        return self.owners.get(delegation.duid)

    def delegated_to(self, home_address: IPv4Address, prefix: IPv6Network, now: float) -> bool:
        """True if ``prefix`` lies inside a live delegation whose client is the node at ``home_address``."""
        return any(
            self.owner_of(item) == home_address
            and prefix.subnet_of(item.prefix)
            and (item.expires_at is None or now < item.expires_at)
            for item in self._delegations
        )

    def needs_refresh(self, request: bytes, now: float, max_age: float) -> bool:
        """Whether to ask the server before ``request`` is handled: it is a Registration Request for a
        configured node asking for a prefix that is not known to be delegated to it, or the last answer is
        older than ``max_age``. Other datagrams (replies, tunnel data, garbage, link-local-only or
        prefix-free requests) never cost a server round trip."""
        try:
            message = decode_message(request)
        except (DecodeError, ValueError):
            return False
        if not isinstance(message, RegistrationRequest) or message.home_address not in self.owners.values():
            return False
        prefixes = [item.network for item in message.prefix_requests if item.network is not None]
        if not prefixes:
            return False
        if self.updated_at is None or now - self.updated_at > max_age:
            return True
        return not all(self.delegated_to(message.home_address, prefix, now) for prefix in prefixes)

    def to_dicts(self, now: float) -> list[dict[str, object]]:
        """The known delegations, JSON-able (control socket ``delegations``)."""
        return [
            {
                "prefix": str(item.prefix),
                "duid": item.duid.hex(),
                "iaid": item.iaid,
                "owner": None if (owner := self.owner_of(item)) is None else str(owner),
                "expires_in": None if item.expires_at is None else round(item.expires_at - now, 3),
            }
            for item in self._delegations
        ]
