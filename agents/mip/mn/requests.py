"""The mobile node's outstanding request, accepted binding and Identifications (RFC 5944 §3.6, §5.7).

:class:`PendingRequest` remembers what was asked, every Identification sent with its send time (the
lifetime runs from when the answered copy was sent, RFC 5944 §3.6.1.2) and the retransmission
schedule; :func:`build_request` encodes and signs one copy. A request ``via`` a
:class:`ForeignAgentRoute` registers that foreign agent's care-of address through it (§3.6.1.1).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Network

from agents.mip.common.config import Encapsulation, MobileNodeConfig, ReplayProtection, UdpTunnelling
from agents.mip.common.events import RequestSent
from agents.mip.common.timers import MIN_REQUEST_GAP, Backoff
from agents.mip.wire import identification
from agents.mip.wire.codes import ExtensionType, RegistrationFlag, ReplyCode, is_fa_denial
from agents.mip.wire.dsmip import PrefixRequest, TunnelingMode
from agents.mip.wire.extensions import Extension, NaiExtension, UdpTunnelRequest
from agents.mip.wire.icmp import AdvertisementFlag
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest
from agents.mip.wire.registration import build_request as build_signed_request

_LOW32 = 0xFFFF_FFFF


@dataclass(frozen=True)
class Registration:
    """A binding the HA accepted: its care-of address, granted lifetime and deadlines."""

    care_of: IPv4Address
    lifetime: int
    expires_at: float
    renew_at: float


@dataclass(frozen=True)
class ForeignAgentRoute:
    """Registering via a foreign agent: where requests go and what the agent offers (RFC 5944 §3.6.1.1)."""

    agent: IPv4Address
    """The agent's address: the source of its advertisement, the destination of the request."""
    care_of: IPv4Address
    """The care-of address it advertised (RFC 5944 §2.1.1)."""
    offers: AdvertisementFlag
    """Its advertised flags: T (reverse tunnel), G, M (encapsulations)."""
    registration_lifetime: int = 0xFFFF
    """The longest Lifetime it accepts, from its advertisement (RFC 5944 §2.1.1)."""
    colocated: IPv4Address | None = None
    """Set: the MN registers this co-located care-of address through the FA, not the FA's own: the FA
    advertised R and U and the MN asks for UDP tunnelling with the R flag (RFC 3519 §3.1.2, §4.4)."""


@dataclass
class PendingRequest:
    """A request being (re)transmitted until a matching reply arrives."""

    care_of: IPv4Address
    """The care-of address registered: co-located (requests are sent from it) or the FA's."""
    care_of_field: IPv4Address
    """The Care-of Address field: the HoA to deregister every binding (RFC 5944 §3.6.1.2)."""
    lifetime: int
    flags: RegistrationFlag
    prefix_requests: tuple[PrefixRequest, ...]
    tunneling_mode: bool
    backoff: Backoff
    max_attempts: int | None
    identification: int | None = None
    via: ForeignAgentRoute | None = None
    """The foreign agent the request goes through; None: straight to the home agent."""
    udp_request: UdpTunnelRequest | None = None
    """RFC 3519 §3.1: asks the HA for UDP tunnelling (co-located care-of address only)."""
    attempts: int = 0
    give_up_at: float = math.inf
    """A shutdown's stop deadline: no reply by then means the deregistration failed."""
    next_send: float = 0.0
    last_sent: float = -math.inf
    _sent: dict[int, float] = field(default_factory=dict)
    _fresh: bool = True

    def needs_new_identification(self, protection: ReplayProtection) -> bool:
        """Timestamps: a new ID for every copy; nonces: the same request resent (RFC 5944 §3.6.3)."""
        return self.identification is None or self._fresh or protection is ReplayProtection.TIMESTAMP

    def record_send(self, now: float) -> None:
        """Note a transmission at ``now`` and schedule the next one (doubling, capped)."""
        assert self.identification is not None
        self.attempts += 1
        self.last_sent = now
        self._sent.setdefault(self.identification & _LOW32, now)
        self.next_send = now + self.backoff.advance()
        self._fresh = False

    def sent_with(self, reply_identification: int) -> bool:
        """True if a copy with these low 32 bits is outstanding (RFC 5944 §5.7)."""
        return reply_identification & _LOW32 in self._sent

    def send_time(self, reply_identification: int) -> float:
        """When the copy answered by this reply was (first) sent."""
        return self._sent[reply_identification & _LOW32]

    def forget(self, reply_identification: int) -> None:
        """Stop waiting for the copy with these low 32 bits (the HA refused just that copy)."""
        self._sent.pop(reply_identification & _LOW32, None)

    def restart(self, at: float) -> None:
        """Forget the copies sent so far and send a fresh one at ``at`` (after 133 or a denial)."""
        self._sent.clear()
        self._fresh = True
        self.next_send = at

    def addresses(self, config: MobileNodeConfig) -> tuple[IPv4Address, IPv4Address]:
        """IP source and destination: CoA → HA, HoA → the FA, or a co-located CoA registered through the
        FA → the FA (its interface address, RFC 5944 §3.6.1.1)."""
        if self.via is None:
            return self.care_of, config.home_agent
        if self.via.colocated is not None:
            return self.via.colocated, self.via.agent
        return config.home_address, self.via.agent

    def sent_event(self) -> RequestSent:
        assert self.identification is not None
        return RequestSent(self.care_of_field, self.lifetime, self.identification, self.attempts)


def prefix_requests(
    config: MobileNodeConfig, prefixes: tuple[IPv6Network, ...], link_local: bool
) -> tuple[PrefixRequest, ...]:
    """The link-local bootstrap request first (RFC 5454 §3.7.1), then one per prefix (§3.1)."""
    requests = [PrefixRequest.for_link_local(config.link_local_address)] if link_local else []
    return (*requests, *(PrefixRequest.for_network(prefix) for prefix in prefixes))


def new_registration(
    config: MobileNodeConfig,
    care_of: IPv4Address,
    requests: tuple[PrefixRequest, ...],
    via: ForeignAgentRoute | None = None,
) -> PendingRequest:
    """A registration of ``care_of``; retransmission capped at the requested lifetime (§3.6.3).

    Via an FA: no longer than the FA's advertised Registration Lifetime (RFC 5944 §2.1.1, else 69),
    and never the Tunneling Mode extension (RFC 5454 §3.5): IPv6 then goes over the home-address
    tunnel (code 0), and the prefixes are still requested.
    """
    lifetime = config.lifetime if via is None else min(config.lifetime, via.registration_lifetime)
    colocated = via is None or via.colocated is not None
    return PendingRequest(
        care_of=care_of,
        care_of_field=care_of,
        lifetime=lifetime,
        flags=request_flags(config, via=via),
        prefix_requests=requests,
        tunneling_mode=config.request_tunneling_mode and bool(requests) and colocated,
        backoff=Backoff(config.retransmit_initial, min(config.retransmit_max, lifetime)),
        max_attempts=None,
        via=via,
        udp_request=udp_tunnel_request(config, r_flag=via is not None) if colocated else None,
    )


def udp_tunnel_request(config: MobileNodeConfig, r_flag: bool = False) -> UdpTunnelRequest | None:
    """The UDP Tunnel Request of a co-located MN (RFC 3519 §3.1): F when forcing, Encapsulation 0
    (the M/G flags; RFC 5454 §3.9 requires 0 so that IPv6 can ride with Next Header 41). ``r_flag``:
    the co-located address is registered through an FA that advertised R and U (§3.1.2, §4.4); never
    with an FA care-of address (§4.4: SHALL NOT)."""
    if config.udp_tunnelling is UdpTunnelling.OFF:
        return None
    force = config.udp_tunnelling is UdpTunnelling.FORCE
    return UdpTunnelRequest(force=force, r_flag=r_flag, encapsulation=0)


def colocated_through(config: MobileNodeConfig, offers: AdvertisementFlag) -> bool:
    """May a co-located care-of address be registered through an FA advertising ``offers``? Only when
    it advertised R (registration required) and U (UDP tunnelling, behind a NAT) and the MN asks for
    UDP tunnelling: then the request carries the R flag (RFC 3519 §3.1.2, §4.4, §4.11). Without U the
    UDP Tunnel Request MUST NOT be sent (§4.4) and the FA's own care-of address is registered."""
    wanted = AdvertisementFlag.R | AdvertisementFlag.U
    return config.udp_tunnelling is not UdpTunnelling.OFF and offers & wanted == wanted


def new_deregistration(
    config: MobileNodeConfig, care_of: IPv4Address, all_care_ofs: bool, via: ForeignAgentRoute | None = None
) -> PendingRequest:
    """Lifetime 0 for ``care_of``, or for every binding with CoA = HoA (RFC 5944 §3.6.1.2)."""
    return PendingRequest(
        care_of=care_of,
        care_of_field=config.home_address if all_care_ofs else care_of,
        lifetime=0,
        flags=request_flags(config, deregistration=True, via=via),
        prefix_requests=(),
        tunneling_mode=False,
        backoff=Backoff(config.retransmit_initial, config.retransmit_max),
        max_attempts=config.deregister_attempts,
        via=via,
    )


def shutdown_backoff(config: MobileNodeConfig, window: float) -> Backoff:
    """Retransmission of a shutdown's deregistration: all ``deregister_attempts`` copies within ``window``
    seconds, the last interval left for the reply (RFC 5944 §3.6.1.2, §3.6.3).

    The usual doubling backoff when it fits; else copies evenly spaced, never closer than the 1 s minimum
    of RFC 5944 §3.6.3 (then fewer copies fit: the caller gives up at the deadline).
    """
    usual = Backoff(config.retransmit_initial, config.retransmit_max)
    if sum(usual.advance() for _ in range(config.deregister_attempts)) <= window:
        return Backoff(config.retransmit_initial, config.retransmit_max)
    spacing = max(MIN_REQUEST_GAP, window / config.deregister_attempts)
    return Backoff(spacing, spacing)


def negotiated_encapsulation(config: MobileNodeConfig, via: ForeignAgentRoute | None) -> Encapsulation:
    """The configured encapsulation; via an FA only if it advertises G or M, else IP-in-IP (§2.1.1)."""
    wanted = config.encapsulation
    if via is None or via.colocated is not None or wanted is Encapsulation.IP_IN_IP:
        return wanted
    needed = AdvertisementFlag.G if wanted is Encapsulation.GRE else AdvertisementFlag.M
    return wanted if needed in via.offers else Encapsulation.IP_IN_IP


def request_flags(
    config: MobileNodeConfig, deregistration: bool = False, via: ForeignAgentRoute | None = None
) -> RegistrationFlag:
    """D when co-located, plus S, T, G or M as configured (RFC 5944 §3.3, RFC 3024 §3.2).

    Via an FA: D clear (set for a co-located address registered through it: UDP tunnelling needs D,
    RFC 3519 §3.1.5), and T only when the FA advertises T (RFC 3024 §3.1).
    """
    colocated = via is None or via.colocated is not None
    flags = RegistrationFlag.D if colocated else RegistrationFlag(0)
    if deregistration:
        return flags
    if config.simultaneous_bindings:
        flags |= RegistrationFlag.S
    if config.reverse_tunnel and (via is None or AdvertisementFlag.T in via.offers):
        flags |= RegistrationFlag.T
    encapsulation = negotiated_encapsulation(config, via)
    if encapsulation is Encapsulation.GRE:
        flags |= RegistrationFlag.G
    elif encapsulation is Encapsulation.MINIMAL:
        flags |= RegistrationFlag.M
    return flags


def flag_encapsulation(flags: RegistrationFlag) -> Encapsulation:
    """The encapsulation a request's G and M flags asked for (RFC 5944 §3.3)."""
    if RegistrationFlag.G in flags:
        return Encapsulation.GRE
    return Encapsulation.MINIMAL if RegistrationFlag.M in flags else Encapsulation.IP_IN_IP


def build_request(config: MobileNodeConfig, pending: PendingRequest) -> bytes:
    """Encode and sign one copy: NAI, DSMIPv4, then MN-HA auth (RFC 5944 §3.6.1.3, RFC 5454 §3.1)."""
    assert pending.identification is not None
    extensions: list[Extension] = []
    if config.nai is not None:
        extensions.append(NaiExtension(config.nai))
    extensions.extend(pending.prefix_requests)
    if pending.tunneling_mode:
        extensions.append(TunnelingMode())
    if pending.udp_request is not None:
        extensions.append(pending.udp_request)  # an HA-bound extension, before MN-HA (RFC 3519 §3.1)
    request = RegistrationRequest(
        flags=pending.flags,
        lifetime=pending.lifetime,
        home_address=config.home_address,
        home_agent=config.home_agent,
        care_of_address=pending.care_of_field,
        identification=pending.identification,
        extensions=tuple(extensions),
    )
    return build_signed_request(request, config.association)


def unauthenticated_fa_denial(pending: PendingRequest, reply: RegistrationReply, source: IPv4Address) -> bool:
    """A denial made by the FA the request went to, without MN-HA authentication: valid, since the
    MN-HA check covers replies carrying the home agent's status only (RFC 5944 §3.6.2.1)."""
    return (
        pending.via is not None
        and source == pending.via.agent
        and is_fa_denial(reply.code)
        and reply.authentication(ExtensionType.MOBILE_HOME_AUTH) is None
    )


CLOCKS_AGREE = 2.0
"""A 133 whose HA time is this close to ours refused a stale copy, not our clock (RFC 5944 §5.7)."""

_ID_NOT_RECORDED = (ReplyCode.HA_IDENTIFICATION_MISMATCH, ReplyCode.HA_MOBILE_NODE_FAILED_AUTHENTICATION)
"""Replies after which the HA did not record the request's Identification (RFC 5944 §5.7)."""


class IdentificationSource:
    """The MN's side of replay protection (RFC 5944 §5.7): timestamps or nonces, and resync on 133."""

    def __init__(self, protection: ReplayProtection, wall_clock_offset: float, rng: random.Random) -> None:
        self.protection = protection
        self.wall_clock_offset = wall_clock_offset
        self.correction = 0.0
        self.ha_nonce = 0
        self._rng = rng
        self._last_sent: int | None = None  # kept increasing
        self._last_recorded: int | None = None  # the last one the HA recorded

    def unix_time(self, now: float) -> float:
        """Wall-clock time as the MN believes it, corrected by resynchronisation."""
        return now + self.wall_clock_offset + self.correction

    def new(self, now: float) -> int:
        """A fresh Identification: an increasing NTP timestamp, or the HA's nonce + ours."""
        if self.protection is ReplayProtection.NONCE:
            return identification.nonce_identification(self.ha_nonce, identification.new_nonce(self._rng))
        ident = identification.next_timestamp_identification(self.unix_time(now), self._last_sent, self._rng)
        self._last_sent = ident
        return ident

    def note_reply(self, code: int, reply_identification: int) -> None:
        """Remember what an authentic matching reply tells: the recorded ID, the next nonce."""
        if code not in _ID_NOT_RECORDED:
            self._last_recorded = reply_identification
        if self.protection is ReplayProtection.NONCE:
            self.ha_nonce = identification.ha_nonce(reply_identification)

    def resynchronise(self, reply_identification: int, now: float) -> float | None:
        """After 133: the clock offset applied, or None if our clock already agrees with the HA's."""
        if self.protection is ReplayProtection.NONCE:
            return 0.0  # the nonce was taken by note_reply
        offset = identification.resync_offset(reply_identification, self.unix_time(now))
        if abs(offset) < CLOCKS_AGREE:
            return None
        self.correction += offset
        self._last_sent = self._last_recorded  # the HA recorded none of the refused IDs
        return offset
