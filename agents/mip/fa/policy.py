"""The foreign agent's checks on a visitor's Registration Request, as pure functions.

Each function answers one question of RFC 5944 §3.7.2.1-§3.7.2.2 or RFC 3024 §3.3, §4.2 from the
decoded request (and raw bytes for authenticators), the configuration and the visitor list; none of
them changes anything. :mod:`agents.mip.fa.foreign_agent` runs them in this order and applies the
first answer: 70 poorly formed, 194 invalid HA address, 67 MN-FA authentication, 76 TTL,
then :func:`service_denial`: 69 lifetime, 77 care-of address, 72 encapsulation, 74/75 reverse
tunnel, 79 delivery style, 66 capacity. A deregistration asks for no service, so only 70, 194, 67,
76 and 77 apply to it (RFC 5944 §3.7: the FA MUST relay well-formed deregistrations).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from agents.mip.fa.config import DeliveryStyle, ForeignAgentConfig
from agents.mip.fa.visitors import VisitorList
from agents.mip.ha.policy import requested_encapsulation
from agents.mip.wire.auth import SecurityAssociation, locate_authentication, verify_with
from agents.mip.wire.codes import ExtensionType, RegistrationFlag, ReplyCode
from agents.mip.wire.extensions import (
    AuthenticationExtension,
    EncapsulatingDeliveryStyle,
    Extension,
    UnknownExtension,
)
from agents.mip.wire.registration import RegistrationRequest

REQUIRED_TTL = 255  # RFC 3024 §3.2: a mobile node's Registration Request is sent with TTL 255
RESERVED_REQUEST_FLAGS = RegistrationFlag.R | RegistrationFlag.X  # 'r' and 'x': sent as 0 (RFC 5944 §3.3)
_LIMITED_BROADCAST = IPv4Address("255.255.255.255")
_MN_HA = ExtensionType.MOBILE_HOME_AUTH
_MN_FA = ExtensionType.MOBILE_FOREIGN_AUTH
_FA_HA = ExtensionType.FOREIGN_HOME_AUTH


def is_unicast(address: IPv4Address) -> bool:
    """Neither 0.0.0.0, multicast nor the limited broadcast."""
    return not (address.is_unspecified or address.is_multicast or address == _LIMITED_BROADCAST)


def relay_source(care_of: IPv4Address, config: ForeignAgentConfig) -> IPv4Address:
    """Relayed requests leave from the care-of address they name, or our first one if it is not ours
    (a co-located visitor, D set) (RFC 5944 §3.7.2.3)."""
    return care_of if care_of in config.care_of_addresses else config.care_of_addresses[0]


def reply_addresses(
    request_source: IPv4Address,
    request_destination: IPv4Address,
    request: RegistrationRequest,
    config: ForeignAgentConfig,
) -> tuple[IPv4Address, IPv4Address]:
    """(destination, source) of a reply to a visitor: its request's IP source (the home address, or
    the HoA if that source was not unicast), from the address the request was sent to unless that was
    a multicast or broadcast (RFC 5944 §3.7.2.3, §3.7.3.2)."""
    destination = request_source if is_unicast(request_source) else request.home_address
    broadcasts = {item.network.broadcast_address for item in config.advertisement.router_addresses}
    if is_unicast(request_destination) and request_destination not in broadcasts:
        return destination, request_destination
    return destination, relay_source(request.care_of_address, config)


@dataclass(frozen=True)
class Denial:
    """The FA's own reply: ``code``, why, and the reply's Lifetime field (69 carries the FA maximum)."""

    code: ReplyCode
    reason: str
    lifetime: int = 0


def _is_auth(extension: Extension, ext_type: int) -> bool:
    return isinstance(extension, AuthenticationExtension) and extension.type == ext_type


def mn_ha_index(request: RegistrationRequest) -> int | None:
    """Index of the first MN-HA authentication extension, or None."""
    for index, extension in enumerate(request.extensions):
        if _is_auth(extension, _MN_HA):
            return index
    return None


def _fa_only(extension: Extension) -> bool:
    """Allowed after MN-HA in a request from a MN: 130, MN-FA, skippable unknowns (RFC 5944 §3.6.1.3)."""
    skippable_unknown = isinstance(extension, UnknownExtension) and extension.skippable
    style = isinstance(extension, EncapsulatingDeliveryStyle)
    return style or _is_auth(extension, _MN_FA) or skippable_unknown


def delivery_style(request: RegistrationRequest) -> DeliveryStyle:
    """Encapsulating if extension 130 is present, else Direct, the default (RFC 3024 §3.3, §5)."""
    if any(isinstance(extension, EncapsulatingDeliveryStyle) for extension in request.extensions):
        return DeliveryStyle.ENCAPSULATING
    return DeliveryStyle.DIRECT


def poorly_formed_reason(request: RegistrationRequest) -> str | None:
    """Why the request gets 70 (RFC 5944 §3.7.2.1 reserved bits; §3.6.1.3 order; RFC 3024 §3.3), or None."""
    flags = request.flags
    if flags & RESERVED_REQUEST_FLAGS:
        return "reserved flag bits 'r' or 'x' set (RFC 5944 §3.7.2.1)"
    if RegistrationFlag.M in flags and RegistrationFlag.G in flags:
        return "both minimal (M) and GRE (G) encapsulation requested"
    auth = mn_ha_index(request)
    if auth is None:
        return "no MN-HA authentication extension to relay (RFC 5944 §3.6.1.3)"
    before, after = request.extensions[:auth], request.extensions[auth + 1 :]
    if any(isinstance(extension, EncapsulatingDeliveryStyle) for extension in before):
        return "Encapsulating Delivery Style before the MN-HA authentication (RFC 3024 §3.3)"
    if not all(_fa_only(extension) for extension in after):
        return "an extension for the home agent after the MN-HA authentication (RFC 5944 §3.6.1.3)"
    styles = sum(isinstance(extension, EncapsulatingDeliveryStyle) for extension in after)
    if styles > 1:
        return "more than one Encapsulating Delivery Style extension (RFC 3024 §3.3)"
    if styles and RegistrationFlag.T not in flags:
        return "Encapsulating Delivery Style without the T flag (RFC 3024 §3.3)"
    return None


def home_agent_field_reason(request: RegistrationRequest, config: ForeignAgentConfig) -> str | None:
    """Why the Home Agent field cannot be relayed to (194, RFC 5944 §3.7.2.2), or None.

    A subnet-directed broadcast (dynamic HA discovery, §3.6.1.1) is relayed like any other address.
    """
    agent = request.home_agent
    if agent.is_unspecified or agent.is_multicast or agent.is_loopback or agent == _LIMITED_BROADCAST:
        return f"home agent address {agent} cannot be relayed to"
    if agent in config.care_of_addresses:
        return f"home agent address {agent} is this foreign agent"
    return None


def mn_fa_problem(raw: bytes, association: SecurityAssociation) -> tuple[str, int | None] | None:
    """With an MN-FA association, exactly one valid MN-FA extension is required (RFC 5944 §3.7.2.1).

    Returns (reason, SPI seen) when it is missing, duplicated, of another SPI or does not verify.
    """
    first = locate_authentication(raw, _MN_FA)
    if first is None:
        return "no MN-FA authentication extension", None
    if locate_authentication(raw, _MN_FA, 1) is not None:
        return "more than one MN-FA authentication extension", first.spi
    if first.spi != association.spi:
        return f"SPI {first.spi} is not the configured {association.spi}", first.spi
    if not verify_with(raw, _MN_FA, association):
        return "MN-FA authenticator does not verify", first.spi
    return None


def fa_ha_problem(
    raw: bytes, association: SecurityAssociation, deregistration: bool
) -> tuple[str, int | None] | None:
    """With an FA-HA association, exactly one valid FA-HA extension is required in the reply
    (RFC 5944 §3.7.3.1); a deregistration's reply may lack it (FA-HA is not used there, protocol.md §2).
    Returns (reason, SPI seen) on failure: the FA then replies 68 to the mobile node."""
    first = locate_authentication(raw, _FA_HA)
    if first is None:
        return None if deregistration else ("no FA-HA authentication extension", None)
    if locate_authentication(raw, _FA_HA, 1) is not None:
        return "more than one FA-HA authentication extension", first.spi
    if first.spi != association.spi:
        return f"SPI {first.spi} is not the configured {association.spi}", first.spi
    if not verify_with(raw, _FA_HA, association):
        return "FA-HA authenticator does not verify", first.spi
    return None


def too_distant(request: RegistrationRequest, ttl: int | None, config: ForeignAgentConfig) -> bool:
    """True for 76: a reverse-tunnel request (T) whose IP TTL is not 255 (RFC 3024 §3.2, §4.2.1).

    An unknown TTL (None: the runtime could not read it) is not held against the mobile node.
    """
    wants_reverse = RegistrationFlag.T in request.flags
    return config.reverse_tunnel_supported and wants_reverse and ttl is not None and ttl != REQUIRED_TTL


def lifetime_denial(request: RegistrationRequest, config: ForeignAgentConfig) -> Denial | None:
    """69 with the FA maximum in the Lifetime field if the request asks for longer (RFC 5944 §3.7.2.2)."""
    if request.lifetime > config.max_lifetime:
        reason = f"lifetime {request.lifetime} exceeds the maximum {config.max_lifetime}"
        return Denial(ReplyCode.FA_LIFETIME_TOO_LONG, reason, config.max_lifetime)
    return None


def care_of_denial(request: RegistrationRequest, config: ForeignAgentConfig) -> Denial | None:
    """77 if an FA care-of registration (D clear) names a care-of address this FA does not offer."""
    colocated = RegistrationFlag.D in request.flags
    if colocated or request.care_of_address in config.care_of_addresses:
        return None
    reason = f"care-of address {request.care_of_address} is not one of this foreign agent's"
    return Denial(ReplyCode.FA_INVALID_CARE_OF_ADDRESS, reason)


def capability_denial(request: RegistrationRequest, config: ForeignAgentConfig) -> Denial | None:
    """72 encapsulation, 74 reverse tunnel unavailable, 75 reverse tunnel mandatory, 79 delivery style
    (RFC 5944 §3.7.2.2; RFC 3024 §4.2)."""
    encapsulation = requested_encapsulation(request.flags)
    if encapsulation not in config.encapsulations:
        reason = f"{encapsulation} encapsulation is not supported"
        return Denial(ReplyCode.FA_ENCAPSULATION_UNAVAILABLE, reason)
    wants_reverse = RegistrationFlag.T in request.flags
    if wants_reverse and not config.reverse_tunnel_supported:
        return Denial(ReplyCode.FA_REVERSE_TUNNEL_UNAVAILABLE, "reverse tunnelling is not supported")
    if not wants_reverse and config.reverse_tunnel_required:
        reason = "reverse tunnelling is mandatory and T is not set"
        return Denial(ReplyCode.FA_REVERSE_TUNNEL_MANDATORY, reason)
    encapsulating = delivery_style(request) is DeliveryStyle.ENCAPSULATING
    if encapsulating and not config.encapsulating_delivery_supported:
        reason = "Encapsulating Delivery Style is not supported"
        return Denial(ReplyCode.FA_DELIVERY_STYLE_UNSUPPORTED, reason)
    return None


def capacity_denial(
    request: RegistrationRequest, config: ForeignAgentConfig, visitors: VisitorList
) -> Denial | None:
    """66 for an additional mobile node while busy or at ``max_visitors`` (RFC 5944 §2.1.1 B bit)."""
    if visitors.known(request.home_address):
        return None
    if config.busy:
        reason = "busy: no registrations from additional mobile nodes"
        return Denial(ReplyCode.FA_INSUFFICIENT_RESOURCES, reason)
    limit = config.max_visitors
    if limit is not None and visitors.occupancy() >= limit:
        return Denial(ReplyCode.FA_INSUFFICIENT_RESOURCES, f"visitor limit {limit} reached")
    return None


def service_denial(
    request: RegistrationRequest, config: ForeignAgentConfig, visitors: VisitorList
) -> Denial | None:
    """The first of 69, 77, 72, 74, 75, 79, 66 that applies; deregistrations get 77 only."""
    if request.is_deregistration:
        return care_of_denial(request, config)
    return (
        lifetime_denial(request, config)
        or care_of_denial(request, config)
        or capability_denial(request, config)
        or capacity_denial(request, config, visitors)
    )
