"""A mobile node's keepalives in a UDP tunnel through a NAT (RFC 3519 §4.9-§4.10), as pure state.

RFC 3519 §4.9: a keepalive is due when nothing went to the home agent for K seconds. Here traffic both ways
counts as a sign of life (:meth:`Keepalives.traffic`): while packets flow to *and* from the HA through the
tunnel, no keepalive is needed; if only the uplink flows (the NAT may have forgotten the mapping, so the HA's
packets no longer come back), the keepalive still goes, which also tells the MN the mapping is gone.
The first keepalive goes no earlier than K seconds after the registration (§4.9), except after a
co-located registration through an FA (R flag), where it goes as soon as the registration is accepted
(§4.4); each answered one schedules the next K seconds after it was sent. An unanswered one is retried after
:data:`RETRY_GAP` (or K if shorter); after ``attempts`` unanswered keepalives the NAT's mapping is
presumed lost and the mobile node registers again, which makes a new mapping the home agent learns
from the request's source port (§4.6). This side never adapts K itself (§4.9: the HA's value rules).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address

from agents.mip.wire.errors import DecodeError
from agents.mip.wire.ip import IPV4_HEADER_LENGTH, PROTO_IPIP, IPv4Header, internet_checksum
from agents.mip.wire.tunnel import decapsulate_udp_tunnel_data, encapsulate_udp_tunnel_data

PROTO_ICMP = 1

RETRY_GAP = 1.0
"""Seconds between a keepalive that got no answer and the next try."""


class KeepaliveStep(Enum):
    """What :meth:`Keepalives.due` says to do now."""

    WAIT = "wait"
    SEND = "send"
    LOST = "lost"


@dataclass
class Keepalives:
    """Keepalive schedule and misses of one UDP tunnel."""

    interval: float
    attempts: int
    next_due: float
    sequence: int = 0
    unanswered: int = 0
    last_sent: float = 0.0

    @classmethod
    def after_registration(
        cls, interval: float, attempts: int, now: float, immediate: bool = False
    ) -> Keepalives:
        """The first keepalive K seconds after the registration (§4.9), or at once (``immediate``) after a
        co-located registration through an FA: the HA learns the NAT's port from it (§4.4, §6.1.2)."""
        return cls(interval=interval, attempts=attempts, next_due=now if immediate else now + interval)

    def due(self, now: float) -> KeepaliveStep:
        if now < self.next_due:
            return KeepaliveStep.WAIT
        return KeepaliveStep.LOST if self.unanswered >= self.attempts else KeepaliveStep.SEND

    def sent(self, now: float) -> int:
        """Record a keepalive sent at ``now``; its sequence number (16 bits, for the ICMP Echo)."""
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.unanswered += 1
        self.last_sent = now
        self.next_due = now + min(self.interval, RETRY_GAP)
        return self.sequence

    def traffic(self, now: float) -> None:
        """Packets went both ways through the tunnel just now: the mapping lives; the next keepalive can
        wait K seconds from here (an outstanding one is still awaited)."""
        if self.unanswered == 0:
            self.next_due = max(self.next_due, now + self.interval)

    def answered(self, sequence: int) -> bool:
        """An Echo Reply for ``sequence`` came back: the mapping lives. False for an unknown sequence."""
        if self.unanswered == 0 or sequence != self.sequence:
            return False
        self.unanswered = 0
        self.next_due = self.last_sent + self.interval
        return True


# -- on the wire: an ICMP Echo in MIP Tunnel Data (RFC 3519 §4.9, §3.3) ---------------------------------

ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8


def keepalive_request(
    home_address: IPv4Address, home_agent: IPv4Address, identifier: int, sequence: int
) -> bytes:
    """The UDP payload of one keepalive: Tunnel Data (Next Header 4) around an ICMP Echo Request from the
    home address to the home agent (RFC 3519 §4.9; RFC 792)."""
    echo = _icmp_echo(ICMP_ECHO_REQUEST, identifier, sequence)
    header = IPv4Header(home_address, home_agent, PROTO_ICMP, IPV4_HEADER_LENGTH + len(echo))
    return encapsulate_udp_tunnel_data(header.encode() + echo, PROTO_IPIP)


def keepalive_reply_sequence(
    payload: bytes, home_address: IPv4Address, home_agent: IPv4Address, identifier: int
) -> int | None:
    """The sequence number if ``payload`` is Tunnel Data holding the HA's Echo Reply to one of our
    keepalives (RFC 3519 §4.10), else None (any other packet: the datapath's)."""
    try:
        next_header, inner = decapsulate_udp_tunnel_data(payload)
        if next_header != PROTO_IPIP:
            return None
        header = IPv4Header.decode(inner)
    except DecodeError:
        return None
    icmp = inner[header.header_length :]
    if (header.source, header.destination, header.protocol) != (home_agent, home_address, PROTO_ICMP):
        return None
    if len(icmp) < 8 or icmp[0] != ICMP_ECHO_REPLY or int.from_bytes(icmp[4:6], "big") != identifier:
        return None
    return int.from_bytes(icmp[6:8], "big")


def _icmp_echo(kind: int, identifier: int, sequence: int) -> bytes:
    message = struct.pack("!BBHHH", kind, 0, 0, identifier & 0xFFFF, sequence & 0xFFFF) + b"dsmip-keepalive"
    return message[:2] + internet_checksum(message).to_bytes(2, "big") + message[4:]
