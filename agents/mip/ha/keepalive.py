"""The home agent's side of a co-located registration through a foreign agent (RFC 3519 §4.6, §4.11, §6.1.2).

With the R flag the Registration Request comes from the FA (through the NAT), so its source port is the FA's
mapping, not the mobile node's: the binding stays "half bound"
(:data:`agents.mip.common.bindings.UNKNOWN_PORT`,
nothing is sent to the MN) until the MN's first keepalive arrives. That keepalive completes it when

* its outer source *address* is the request's source address (the port may differ, §4.3, §4.6, §6.1.2),
  but not that very address and port: that is the FA's NAT mapping, never the MN's (a forged keepalive from
  there is refused),
* it is MIP Tunnel Data (Next Header 4) holding an ICMP Echo Request whose inner source is the home address
  and whose inner destination is the home agent (§4.6, §4.9),

and then its outer source address and port become the tunnel's far end. Every registration with R makes the
binding half bound again, renewals included (§4.6 "MUST wait for the first keepalive"). Pure functions over
bytes and the binding table; :meth:`agents.mip.ha.home_agent.HomeAgent.receive_keepalive` applies them.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from agents.mip.common.bindings import UNKNOWN_PORT, BindingTable, CareOf, CareOfEntry, MobilityBinding
from agents.mip.wire.ip import PROTO_IPIP

TUNNEL_DATA = 4  # MIP Tunnel Data message type (RFC 3519 §3.3)
PROTO_ICMP = 1
ICMP_ECHO_REQUEST = 8
_MIN_LENGTH = 4 + 20 + 8  # Tunnel Data header, IPv4 header, ICMP Echo header


def keepalive_home_address(payload: bytes, home_agent: IPv4Address) -> IPv4Address | None:
    """The inner source if ``payload`` (a UDP payload) is a keepalive to ``home_agent``: Tunnel Data, Next
    Header 4, IPv4 ICMP Echo Request to the HA (RFC 3519 §4.9), not a fragment; else None. Cheap enough to
    run on every Tunnel Data message: the byte checks come first."""
    if len(payload) < _MIN_LENGTH or payload[0] != TUNNEL_DATA or payload[1] != PROTO_IPIP:
        return None
    inner = memoryview(payload)[4:]
    header_length = (inner[0] & 0x0F) * 4
    if inner[0] >> 4 != 4 or header_length < 20 or len(inner) < header_length + 8:
        return None
    if inner[9] != PROTO_ICMP or inner[16:20] != home_agent.packed:
        return None
    if int.from_bytes(inner[6:8], "big") & 0x3FFF:  # MF set or a fragment offset: not a whole Echo
        return None
    if inner[header_length] != ICMP_ECHO_REQUEST:
        return None
    return IPv4Address(bytes(inner[12:16]))


def awaiting_entry(binding: MobilityBinding | None, address: IPv4Address, now: float) -> CareOfEntry | None:
    """The unexpired care-of entry of ``binding`` that waits for a keepalive from ``address`` (the source
    address of its registration request), or None."""
    if binding is None:
        return None
    for entry in binding.care_ofs.values():
        if entry.awaiting_keepalive and entry.request_source[0] == address and now < entry.expires_at:
            return entry
    return None


def port_owner(table: BindingTable, address: IPv4Address, port: int) -> IPv4Address | None:
    """The home address whose UDP tunnel already ends at ``address``:``port``, if any: a keepalive must not
    move a binding onto another mobile node's NAT mapping (two bindings cannot share one, RFC 3519 §4.3)."""
    if port == UNKNOWN_PORT:
        return None
    for binding in table.all():
        if any(key.address == address and key.port == port for key in binding.care_ofs):
            return binding.home_address
    return None


def port_holders(table: BindingTable, care_of: CareOf) -> list[IPv4Address]:
    """Every home address whose binding holds ``care_of`` (a NAT's address and port): a registration from a
    port the NAT reused takes it from the others (RFC 3519 §4.3)."""
    if care_of.port in (None, UNKNOWN_PORT):
        return []
    return [binding.home_address for binding in table.all() if care_of in binding.care_ofs]


def known_port(binding: MobilityBinding | None, address: IPv4Address) -> int | None:
    """The UDP port a binding tunnels to at ``address`` (confirmed by an earlier keepalive or request), or
    None. Reported only: a re-registration with R is half bound again and sends nothing there until the
    next keepalive (RFC 3519 §4.6 "MUST wait for the first keepalive")."""
    if binding is None:
        return None
    ports = [key.port for key in binding.care_ofs if key.address == address]
    return next((port for port in ports if port not in (None, UNKNOWN_PORT)), None)
