"""The foreign agent's side of a low-latency handoff: visitors it has been told to expect (RFC 4881).

An L2 target trigger (L2-TT, RFC 4881 §1.3: the new access point announces a station about to
associate) tells the new FA (nFA) the home address and link-layer address of a mobile node that is
coming. For such a visitor the nFA

* relays a Registration Request that reaches it from the network side, not on its access link
  (the pre-registration of §3.1 goes through the old FA), without the TTL 255 check of RFC 3024
  §3.2 (the trigger stands for the proximity the TTL proves otherwise) — a simplification: RFC 4881
  leaves the nFA's checks to the FA-FA security association;
* records the visitor with the link-layer address the trigger gave, since the request carried none;
* buffers the visitor's packets until it attaches (:mod:`agents.mip.llh_buffer`), and learns of the
  attachment from L2-LU (:meth:`ExpectedVisitors.attached_by_mac`) or the visitor's first
  solicitation on the access link.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address


@dataclass(frozen=True)
class Expectation:
    home_address: IPv4Address
    link_address: bytes
    interface: str | None
    expires_at: float


class ExpectedVisitors:
    """Home address → the expectation an L2 trigger opened, until it expires or the visitor attaches."""

    def __init__(self) -> None:
        self._by_home: dict[IPv4Address, Expectation] = {}

    def expect(
        self,
        home_address: IPv4Address,
        link_address: bytes,
        interface: str | None,
        now: float,
        timeout: float,
    ) -> Expectation:
        if len(link_address) != 6:
            raise ValueError("link_address must be a 6-byte MAC address")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        entry = Expectation(home_address, bytes(link_address), interface, now + timeout)
        self._by_home[home_address] = entry
        return entry

    def get(self, home_address: IPv4Address, now: float) -> Expectation | None:
        entry = self._by_home.get(home_address)
        if entry is not None and now >= entry.expires_at:
            del self._by_home[home_address]
            return None
        return entry

    def attached_by_mac(self, link_address: bytes | None, now: float) -> Expectation | None:
        """The visitor with this link-layer address is on the link now: its expectation ends."""
        if link_address is None:
            return None
        for home, entry in list(self._by_home.items()):
            if entry.link_address == link_address:
                del self._by_home[home]
                return entry if now < entry.expires_at else None
        return None

    def __len__(self) -> int:
        return len(self._by_home)
