"""The home agent's decisions on an authenticated Registration Request, as pure functions.

Each function answers one question of RFC 5944 §3.8.2-§3.8.3, RFC 3024 §4 or RFC 5454 §3.3 from
the decoded request, the configuration and the binding table; none of them changes anything.
:mod:`agents.mip.ha.home_agent` applies the answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Network

from agents.mip.common.bindings import UNKNOWN_PORT, BindingTable, PrefixBinding, TunnelTarget
from agents.mip.common.config import Encapsulation, HomeAgentConfig, MobileNodeAccount
from agents.mip.wire.codes import ExtensionType, PrefixReplyCode, RegistrationFlag, ReplyCode
from agents.mip.wire.dsmip import PrefixRequest, TunnelingMode
from agents.mip.wire.extensions import (
    AuthenticationExtension,
    Extension,
    NaiExtension,
    UdpTunnelReply,
    UdpTunnelRequest,
)
from agents.mip.wire.ip import PROTO_IPIP
from agents.mip.wire.registration import RegistrationRequest

LIMITED_BROADCAST = IPv4Address("255.255.255.255")
UNSPECIFIED = IPv4Address("0.0.0.0")


def addressed_to_us(request: RegistrationRequest, config: HomeAgentConfig) -> bool:
    """True if the Home Agent field is this HA or a broadcast of the home network (RFC 5944 §3.8.2.1)."""
    return request.home_agent == config.address or is_broadcast_home_agent(request.home_agent, config)


def is_broadcast_home_agent(address: IPv4Address, config: HomeAgentConfig) -> bool:
    """A subnet-directed or limited broadcast: dynamic HA discovery, answered with 136 (RFC 5944 §3.8.2.1)."""
    return address in (config.home_network.broadcast_address, LIMITED_BROADCAST)


def nai_mismatch(request: RegistrationRequest, account: MobileNodeAccount) -> bool:
    """True if the request names an NAI other than the configured one (RFC 2794 §2)."""
    return account.nai is not None and request.nai is not None and request.nai != account.nai


def _index_of_mn_ha_auth(request: RegistrationRequest) -> int:
    for index, extension in enumerate(request.extensions):
        is_auth = isinstance(extension, AuthenticationExtension)
        if is_auth and extension.type == ExtensionType.MOBILE_HOME_AUTH:
            return index
    return len(request.extensions)


FLAG_S, FLAG_D, FLAG_M, FLAG_G, FLAG_T = (int(RegistrationFlag[name]) for name in "SDMGT")
"""The flag masks as plain ints: ``int(flags) & mask`` tests a bit without ``enum``'s Python-level ``in``
(several per request, issue 9)."""
_MULTICAST_FIRST, _MULTICAST_BITS = 0xE, 28
"""224.0.0.0/4 (RFC 5771): the top four bits of an IPv4 multicast address are 1110."""
_HA_ONLY = (NaiExtension, PrefixRequest, TunnelingMode)
"""Extensions for the home agent only: they must come before the MN-HA authentication (RFC 2794 §2,
RFC 5454 §3.1)."""


def has_flag(flags: RegistrationFlag, mask: int) -> bool:
    """``mask in flags`` for one of this module's plain-int masks (e.g. :data:`FLAG_T`)."""
    return bool(int(flags) & mask)


def _unregistrable_care_of(care_of: IPv4Address) -> bool:
    """0.0.0.0, 255.255.255.255 or multicast (RFC 5944 §3.8.2.2: such a care-of address cannot be
    registered); read from the address's integer, without ``ipaddress``'s network membership test."""
    value = int(care_of)
    return value == 0 or value == 0xFFFFFFFF or value >> _MULTICAST_BITS == _MULTICAST_FIRST


def poorly_formed_reason(request: RegistrationRequest, config: HomeAgentConfig) -> str | None:
    """Why the request is poorly formed (reply 134, RFC 5944 §3.8.2.2), or None."""
    bits = int(request.flags)
    if bits & FLAG_M and bits & FLAG_G:
        return "both minimal (M) and GRE (G) encapsulation requested"
    if request.lifetime > 0:
        care_of = request.care_of_address
        if care_of == request.home_address:
            return "care-of address equals home address with a non-zero lifetime (RFC 5944 §3.6.1.2)"
        if _unregistrable_care_of(care_of):
            return f"care-of address {care_of} cannot be registered"
    late = _after_mn_ha_auth(request)  # empty in a well-formed request
    if late and any(isinstance(extension, NaiExtension) for extension in late):
        return "NAI extension after the MN-HA authentication extension (RFC 2794 §2)"
    if config.dsmipv4:
        return _dsmip_form_reason(request, late)
    return None


def _after_mn_ha_auth(request: RegistrationRequest) -> list[Extension]:
    """The home-agent-only extensions (:data:`_HA_ONLY`) placed after the first MN-HA authentication
    extension (none in a well-formed request)."""
    after = request.extensions[_index_of_mn_ha_auth(request) + 1 :]
    return [extension for extension in after if isinstance(extension, _HA_ONLY)]


def _dsmip_form_reason(request: RegistrationRequest, late: list[Extension]) -> str | None:
    if len(request.tunneling_modes) > 1:
        return "more than one IPv6 Tunneling Mode extension (RFC 5454 §3.5)"
    if late and any(isinstance(extension, PrefixRequest | TunnelingMode) for extension in late):
        return "DSMIPv4 extension after the MN-HA authentication extension (RFC 5454 §3.1)"
    return None


def reverse_tunnel_denial(request: RegistrationRequest, config: HomeAgentConfig) -> ReplyCode | None:
    """137 if T is asked for but unsupported, 138 if T is mandatory but missing (RFC 3024 §4.3.1)."""
    wants_reverse = has_flag(request.flags, FLAG_T)
    if wants_reverse and not config.reverse_tunnel_supported:
        return ReplyCode.HA_REVERSE_TUNNEL_UNAVAILABLE
    if not wants_reverse and config.reverse_tunnel_required:
        return ReplyCode.HA_REVERSE_TUNNEL_MANDATORY
    return None


def requested_encapsulation(flags: RegistrationFlag) -> Encapsulation:
    """IP-in-IP by default, GRE on G, minimal on M (RFC 5944 §3.3, §3.8.3)."""
    bits = int(flags)
    if bits & FLAG_G:
        return Encapsulation.GRE
    if bits & FLAG_M:
        return Encapsulation.MINIMAL
    return Encapsulation.IP_IN_IP


def encapsulation_denial(request: RegistrationRequest, config: HomeAgentConfig) -> ReplyCode | None:
    """139 if the requested encapsulation is not supported (RFC 3024 §4.3.1, RFC 5944 §3.8.3)."""
    if requested_encapsulation(request.flags) not in config.encapsulations:
        return ReplyCode.HA_ENCAPSULATION_UNAVAILABLE
    return None


def granted_lifetime(requested: int, config: HomeAgentConfig) -> int:
    """The requested lifetime capped at the HA's maximum; never increased (RFC 5944 §3.8.3.1)."""
    return min(requested, config.max_lifetime)


@dataclass(frozen=True)
class SimultaneousDecision:
    """Whether other care-of bindings are kept, and the accept code to send (RFC 5944 §3.6.1.3)."""

    keep_others: bool
    code: ReplyCode


_SINGLE = SimultaneousDecision(False, ReplyCode.ACCEPTED)
"""No S flag: the decision of nearly every request (one frozen object, issue 9)."""


def simultaneous_decision(
    request: RegistrationRequest, config: HomeAgentConfig, table: BindingTable
) -> SimultaneousDecision:
    """S set and supported: keep others (135 past the limit); S set, unsupported: code 1 (RFC 5944 §3.8.3)."""
    if not has_flag(request.flags, FLAG_S):
        return _SINGLE
    if not config.simultaneous_bindings:
        return SimultaneousDecision(False, ReplyCode.ACCEPTED_NO_SIMULTANEOUS_BINDINGS)
    binding = table.get(request.home_address)
    existing = set() if binding is None else {key.address for key in binding.care_ofs}
    existing.add(request.care_of_address)
    if len(existing) > config.max_bindings_per_node:
        return SimultaneousDecision(True, ReplyCode.HA_TOO_MANY_SIMULTANEOUS_BINDINGS)
    return SimultaneousDecision(True, ReplyCode.ACCEPTED)


@dataclass(frozen=True)
class PrefixDecision:
    """The answer to one Prefix Request: the reply code and, if accepted, what gets registered."""

    request: PrefixRequest
    code: PrefixReplyCode
    binding: PrefixBinding | None
    reason: str = ""


def ipv6_target(request: RegistrationRequest, config: HomeAgentConfig, udp: bool = False) -> TunnelTarget:
    """Code 1 (to the CoA) only when asked for, co-located (D), honoured and not minimal (RFC 5454 §3.3.2).
    In a UDP tunnel IPv6 always goes straight to the care-of address, Next Header 41 (RFC 5454 §3.9)."""
    if udp:
        return TunnelTarget.CARE_OF
    asked = bool(request.tunneling_modes) and has_flag(request.flags, FLAG_D)
    can_carry_ipv6 = requested_encapsulation(request.flags) is not Encapsulation.MINIMAL
    if asked and can_carry_ipv6 and config.honour_tunneling_mode:
        return TunnelTarget.CARE_OF
    return TunnelTarget.HOME_ADDRESS


def _target_code(target: TunnelTarget) -> PrefixReplyCode:
    if target is TunnelTarget.CARE_OF:
        return PrefixReplyCode.ACCEPTED_TO_COA
    return PrefixReplyCode.ACCEPTED_TO_HOA


def _link_local_decision(prefix_request: PrefixRequest, account: MobileNodeAccount) -> PrefixDecision:
    if not prefix_request.prefix.is_link_local:
        return PrefixDecision(prefix_request, PrefixReplyCode.REJECTED_UNSPECIFIED, None, "not a link-local")
    if not account.allow_link_local:
        return PrefixDecision(prefix_request, PrefixReplyCode.REJECTED_ADMIN, None, "link-local not allowed")
    binding = PrefixBinding(IPv6Network(prefix_request.prefix), TunnelTarget.HOME_ADDRESS, link_local=True)
    return PrefixDecision(prefix_request, PrefixReplyCode.ACCEPTED_TO_HOA, binding)


def _prefix_decision(
    prefix_request: PrefixRequest,
    account: MobileNodeAccount,
    table: BindingTable,
    target: TunnelTarget,
    delegated: Callable[[IPv6Network], bool] | None = None,
) -> PrefixDecision:
    """One explicit-mode request: policy (9; a prefix outside the configured ones must be delegated to this
    node, RFC 5454 §3.7.1), overlap with another MN (8), else accept (RFC 5454 §3.3)."""
    if prefix_request.is_link_local:
        return _link_local_decision(prefix_request, account)
    network = prefix_request.network
    assert network is not None
    if not account.allows(network) and not (delegated is not None and delegated(network)):
        reason = "outside the allowed prefixes"
        return PrefixDecision(prefix_request, PrefixReplyCode.REJECTED_ADMIN, None, reason)
    if table.overlaps_other(account.home_address, network):
        reason = "overlaps another mobile node's prefix"
        return PrefixDecision(prefix_request, PrefixReplyCode.REJECTED_UNSPECIFIED, None, reason)
    return PrefixDecision(prefix_request, _target_code(target), PrefixBinding(network, target))


def _request_key(prefix_request: PrefixRequest) -> IPv6Network:
    network = prefix_request.network
    return IPv6Network(prefix_request.prefix) if network is None else network


def prefix_decisions(
    request: RegistrationRequest,
    account: MobileNodeAccount,
    table: BindingTable,
    config: HomeAgentConfig,
    udp: bool = False,
    delegated: Callable[[IPv6Network], bool] | None = None,
) -> list[PrefixDecision]:
    """One decision per distinct requested prefix; duplicates get no second reply (RFC 5454 §3.3).
    ``delegated(prefix)``: whether the DHCPv6 server delegated ``prefix`` to this node (§3.7.1)."""
    if not config.dsmipv4:
        return []
    target = ipv6_target(request, config, udp)
    decisions: list[PrefixDecision] = []
    seen: list[IPv6Network] = []  # a handful at most: a list needs no IPv6Network hash (issue 9)
    for prefix_request in request.prefix_requests:
        key = _request_key(prefix_request)
        if key in seen:
            continue
        seen.append(key)
        decisions.append(_prefix_decision(prefix_request, account, table, target, delegated))
    return decisions


# -- NAT traversal (RFC 3519 §3, §4.6) -------------------------------------------------------------

UDP_ENCAPSULATIONS = (0, PROTO_IPIP)
"""What this HA carries in UDP: 0 (the M/G flags; we grant IP-in-IP) and IP-in-IP (RFC 3519 §3.1)."""
DECLINED = 64
"""UDP Tunnel Reply code: tunnelling declined, reason unspecified (RFC 3519 §3.2)."""


@dataclass(frozen=True)
class UdpTunnelDecision:
    """The answer to a UDP Tunnel Request: the NAT's port to tunnel to (None: no UDP tunnel), the reply
    extension to send, or a denial code with its reason."""

    port: int | None = None
    reply: UdpTunnelReply | None = None
    denial: ReplyCode | None = None
    reason: str = ""

    @property
    def tunnelled(self) -> bool:
        return self.port is not None

    @property
    def awaits_keepalive(self) -> bool:
        """R flag: the binding is "half bound" until the MN's first keepalive (RFC 3519 §4.6, §6.1.2)."""
        return self.port == UNKNOWN_PORT


_NO_UDP = UdpTunnelDecision()
"""No UDP Tunnel Request: nothing to answer (one frozen object, issue 9)."""


def _udp_requests(request: RegistrationRequest) -> tuple[list[UdpTunnelRequest], list[UdpTunnelRequest]]:
    """UDP Tunnel Requests before the MN-HA authentication (the MN's) and after it (an FA's, §4.5)."""
    auth_index = _index_of_mn_ha_auth(request)
    mine: list[UdpTunnelRequest] = []
    foreign: list[UdpTunnelRequest] = []
    for index, extension in enumerate(request.extensions):
        if isinstance(extension, UdpTunnelRequest):
            (mine if index < auth_index else foreign).append(extension)
    return mine, foreign


def udp_tunnel_decision(
    request: RegistrationRequest,
    source: IPv4Address,
    source_port: int,
    account: MobileNodeAccount,
    config: HomeAgentConfig,
) -> UdpTunnelDecision:
    """RFC 3519 §4.6: a NAT is the request's source address differing from its Care-of Address. With
    a NAT (or F) the care-of becomes the request's source address and port; without either the HA
    declines in the reply. 134 for the §4.6.1 malformations, 142 for an unsupported encapsulation,
    129 when NAT traversal is not allowed for this MN. An HA without UDP support ignores the request.
    With R (a co-located address registered through an FA, §4.11) the port waits for the MN's first
    keepalive (:data:`UNKNOWN_PORT`, see :mod:`agents.mip.ha.keepalive`)."""
    if not config.udp_tunnelling:
        return _NO_UDP
    mine, foreign = _udp_requests(request)
    if foreign and RegistrationFlag.D in request.flags:
        return _deny(ReplyCode.HA_POORLY_FORMED_REQUEST, "UDP Tunnel Request from an FA with D set (§4.6.1)")
    if not mine:
        return UdpTunnelDecision(reply=_declined()) if foreign else _NO_UDP
    ask = mine[0]
    problem = _udp_request_problem(request, mine)
    if problem is not None:
        return _deny(ReplyCode.HA_POORLY_FORMED_REQUEST, problem)
    if ask.encapsulation not in UDP_ENCAPSULATIONS:
        return _deny(ReplyCode.HA_UDP_ENCAPSULATION_UNAVAILABLE, f"encapsulation {ask.encapsulation} in UDP")
    if ask.encapsulation == 0 and request.flags & (RegistrationFlag.G | RegistrationFlag.M):
        # 0 means "as the M/G flags say", and only IP-in-IP goes in UDP here (RFC 3519 §3.1, §3.5)
        return _deny(ReplyCode.HA_UDP_ENCAPSULATION_UNAVAILABLE, "GRE or minimal encapsulation in UDP")
    behind_nat = source != request.care_of_address
    if ask.r_flag:
        return _through_foreign_agent(ask, account, config)
    if not behind_nat and not ask.force:
        return UdpTunnelDecision(reply=_declined())
    if not account.nat_traversal:
        return _deny(ReplyCode.HA_ADMINISTRATIVELY_PROHIBITED, "NAT traversal not allowed for this MN (§4.6)")
    reply = UdpTunnelReply(0, force=not behind_nat, keepalive=config.keepalive_interval)
    return UdpTunnelDecision(port=source_port, reply=reply)


def _through_foreign_agent(
    ask: UdpTunnelRequest, account: MobileNodeAccount, config: HomeAgentConfig
) -> UdpTunnelDecision:
    """R flag: a co-located address registered through an FA behind a NAT (RFC 3519 §3.1.2, §4.11).
    The request's source is the FA's (NATed) address, so source ≠ CoA tells nothing; the HA SHOULD
    assent when it permits UDP tunnelling (§4.6, else 129 as for any refused traversal, §4.6.1) and MUST
    wait for the MN's first keepalive to learn the NAT's port: the port is :data:`UNKNOWN_PORT` until then."""
    if not account.nat_traversal:
        return _deny(ReplyCode.HA_ADMINISTRATIVELY_PROHIBITED, "NAT traversal not allowed for this MN (§4.6)")
    reply = UdpTunnelReply(0, force=ask.force, keepalive=config.keepalive_interval)
    return UdpTunnelDecision(port=UNKNOWN_PORT, reply=reply)


def _udp_request_problem(request: RegistrationRequest, mine: list[UdpTunnelRequest]) -> str | None:
    if len(mine) > 1:
        return "more than one UDP Tunnel Request"
    if mine[0].reserved3_nonzero:
        return "UDP Tunnel Request with Reserved3 set (RFC 3519 §3.1, §4.6.1)"
    if RegistrationFlag.D not in request.flags:
        return "UDP Tunnel Request without the D flag (RFC 3519 §3.1.5, §4.6.1)"
    return None


def _declined() -> UdpTunnelReply:
    return UdpTunnelReply(DECLINED, force=False, keepalive=0)


def _deny(code: ReplyCode, reason: str) -> UdpTunnelDecision:
    return UdpTunnelDecision(denial=code, reason=reason)
