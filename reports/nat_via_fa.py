"""The ``--via-fa`` verdicts of a NAT traversal run: the co-located address registered through the foreign
agent behind the NAT (RFC 3519 §3.1.2, §3.4, §4.4-§4.6, §4.11), from the captures on both sides of the NAT
and the home agent's trace only.

* the FA advertises R and U on the private LAN (§3.4);
* the MN's request to the FA: D set, the co-located Care-of Address, a UDP Tunnel Request with R (§3.1.2,
  §4.4);
* the FA relays it with no UDP Tunnel Request of its own (§4.5), the HA assents with a UDP Tunnel Reply
  (§4.6);
* the HA sends nothing to the MN until its first keepalive, then tunnels to that keepalive's address and port
  (§4.6, §4.11), both families.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable
from typing import Any

from agents.mip.common.config import MOBILE_IP_PORT
from agents.mip.common.trace_schema import TraceEvent
from reports.pcapread import ipv4_packets
from reports.rundir import Run

REQUEST, REPLY, TUNNEL_DATA = 1, 3, 4
UDP_TUNNEL_REQUEST, UDP_TUNNEL_REPLY, MN_HA_AUTH = 144, 44, 32
FLAG_D, FLAG_R_IN_144 = 0x20, 0x40
AGENT_FLAG_R, AGENT_FLAG_U = 0x8000, 0x0080


def extensions(payload: bytes, start: int) -> list[tuple[int, bytes]]:
    """(type, whole extension) from ``start``: long (type < 128 with 1-byte length) and short format alike
    carry their length in byte 1 (RFC 5944 §1.9-§1.11); a padding byte (0) is one byte."""
    found: list[tuple[int, bytes]] = []
    offset = start
    while offset < len(payload):
        kind = payload[offset]
        size = 1 if kind == 0 else 2 + (payload[offset + 1] if offset + 1 < len(payload) else 0)
        found.append((kind, payload[offset : offset + size]))
        offset += size
    return found


def _udp(ip: Any) -> tuple[int, int, bytes] | None:
    udp = ip.data
    if ip.p != 17 or not hasattr(udp, "sport"):
        return None
    return udp.sport, udp.dport, bytes(udp.data)


def _address(raw: bytes) -> str:
    return socket.inet_ntoa(raw)


class ViaForeignAgent:
    """Adds the via-FA verdicts and figures to a :class:`reports.nat_traversal.NatJudge`."""

    def __init__(self, run: Run, check: Callable[[str, bool, str], None], figures: dict[str, Any]) -> None:
        self.run, self.check, self.figures = run, check, figures
        meta = run.meta
        fa = meta.get("nat_fa") or {}
        self.fa_access = str(fa.get("access", ""))
        self.fa_name = str(fa.get("name", "fan"))
        self.private = str(meta.get("private_address", ""))
        self.public = str(meta.get("nat_public", ""))
        offset = meta.get("clock_offset")
        self.offset = float(offset) if isinstance(offset, int | float) else math.nan
        """Wall clock − CLOCK_MONOTONIC: pcap times minus this are trace times."""
        self.pcaps = run.path / "pcaps"

    def judge(self, bound: float) -> None:
        access = self.pcaps / f"{self.fa_name}-{self.fa_name}-acc.pcap"  # the bridge keeps unicast to the FA
        public = self.pcaps / "nat1-nat1-pub.pcap"
        if not access.is_file() or not public.is_file() or math.isnan(self.offset):
            missing = "the FA's access capture or the NAT's public one is missing"
            self.check("via FA: the R-flag registration (RFC 3519 §4.11)", False, missing)
            return
        self.advertisement(access)
        self.request_to_fa(access, bound)
        reply_at = self.relayed(public, bound)
        self.half_bound(public, reply_at)

    # -- the private LAN ---------------------------------------------------------------------------------

    def advertisement(self, pcap: Any) -> None:
        flags: set[int] = set()
        for _, ip in ipv4_packets(pcap):
            icmp = bytes(ip.data)
            if ip.p != 1 or _address(ip.src) != self.fa_access or len(icmp) < 8 or icmp[0] != 9:
                continue
            for kind, body in extensions(icmp, 8 + 8 * icmp[4]):
                if kind == 16 and len(body) >= 8:
                    flags.add(int.from_bytes(body[6:8], "big"))
        both = [value for value in flags if value & AGENT_FLAG_R and value & AGENT_FLAG_U]
        self.check(
            "via FA: the FA behind the NAT advertises R and U (RFC 3519 §3.4)",
            bool(both),
            f"extension 16 flags seen from {self.fa_access}: {sorted(hex(value) for value in flags)}",
        )

    def request_to_fa(self, pcap: Any, bound: float) -> None:
        """The MN's requests to the FA once it has its address: D, CoA co-located, 144 with R before MN-HA."""
        seen = good = 0
        for when, ip in ipv4_packets(pcap):
            udp = _udp(ip)
            if when - self.offset < bound - 0.5 or udp is None or _address(ip.dst) != self.fa_access:
                continue
            _, dport, payload = udp
            registration = len(payload) >= 24 and payload[0] == REQUEST and payload[2:4] != b"\0\0"
            if dport != MOBILE_IP_PORT or not registration:  # deregistrations (lifetime 0) ask for nothing
                continue
            seen += 1
            found = extensions(payload, 24)
            kinds = [kind for kind, _ in found]
            asks = [body for kind, body in found if kind == UDP_TUNNEL_REQUEST]
            auth_at = kinds.index(MN_HA_AUTH) if MN_HA_AUTH in kinds else -1
            before_auth = bool(asks) and 0 <= kinds.index(UDP_TUNNEL_REQUEST) < auth_at
            good += (
                bool(payload[1] & FLAG_D)
                and _address(payload[12:16]) == self.private
                and _address(ip.src) == self.private
                and len(asks) == 1
                and bool(asks[0][4] & FLAG_R_IN_144)
                and before_auth
            )
        self.figures.setdefault("via_fa", {})["requests_to_fa"] = seen
        self.check(
            "via FA: the MN registers its co-located address through the FA with D and the R flag "
            "(RFC 3519 §3.1.2, §3.1.5, §4.4)",
            seen > 0 and good == seen,
            f"{good} of {seen} requests from {self.private} to {self.fa_access} with D, Care-of Address "
            f"{self.private} and one UDP Tunnel Request with R before the MN-HA authentication",
        )

    # -- the public side ---------------------------------------------------------------------------------

    def relayed(self, pcap: Any, bound: float) -> float | None:
        """The relayed requests (no FA-added 144) and the HA's assenting replies; the first reply's time."""
        relayed = clean = replies = assenting = 0
        first_reply: float | None = None
        for when, ip in ipv4_packets(pcap):
            udp = _udp(ip)
            at = when - self.offset
            if at < bound - 0.5 or udp is None or MOBILE_IP_PORT not in udp[:2]:
                continue
            payload = udp[2]
            ours = len(payload) >= 24 and _address(payload[12:16]) == self.private
            if payload[:1] == bytes((REQUEST,)) and ours and payload[2:4] != b"\0\0":
                relayed += 1
                kinds = [kind for kind, _ in extensions(payload, 24)]
                after_auth = kinds[kinds.index(MN_HA_AUTH) + 1 :] if MN_HA_AUTH in kinds else kinds
                clean += kinds.count(UDP_TUNNEL_REQUEST) == 1 and UDP_TUNNEL_REQUEST not in after_auth
            elif payload[:1] == bytes((REPLY,)) and len(payload) >= 20 and _address(ip.dst) == self.public:
                answers = [body for kind, body in extensions(payload, 20) if kind == UDP_TUNNEL_REPLY]
                if not answers:
                    continue
                replies += 1
                if payload[1] < 2 and answers[0][3] == 0:  # registration accepted, tunnelling assented
                    assenting += 1
                    first_reply = at if first_reply is None else first_reply
        self.figures.setdefault("via_fa", {}).update(relayed_requests=relayed, assenting_replies=assenting)
        self.check(
            "via FA: the FA relays the request without a UDP Tunnel Request of its own (§4.5), the HA "
            "assents with a UDP Tunnel Reply (§4.6)",
            relayed > 0 and clean == relayed and assenting > 0 and assenting == replies,
            f"{clean} of {relayed} relayed requests with only the MN's UDP Tunnel Request; {assenting} of "
            f"{replies} replies with a UDP Tunnel Reply code 0",
        )
        return first_reply

    def half_bound(self, pcap: Any, reply_at: float | None) -> None:
        """Nothing from the HA to the NAT's address in Tunnel Data between the first assenting reply and the
        first keepalive; then the HA's binding is that keepalive's port and data flows to it."""
        name = (
            "via FA: the HA sends nothing until the MN's first keepalive, then tunnels to its address and "
            "port, IPv4 and IPv6 (RFC 3519 §4.6, §4.11)"
        )
        if reply_at is None:
            self.check(name, False, "no assenting reply through the FA")
            return
        keepalive: tuple[float, int] | None = None
        early = 0
        later: dict[int, int] = {}
        for when, ip in ipv4_packets(pcap):
            udp = _udp(ip)
            at = when - self.offset
            if at < reply_at or udp is None or len(udp[2]) < 4 or udp[2][0] != TUNNEL_DATA:
                continue
            sport, dport, payload = udp
            inner = payload[4:]
            to_ha = _address(ip.src) == self.public and dport == MOBILE_IP_PORT
            if keepalive is None and to_ha and _is_echo_request(inner):
                keepalive = (at, sport)
            elif keepalive is None and _address(ip.dst) == self.public:
                early += 1
            elif keepalive is not None and _address(ip.dst) == self.public and dport == keepalive[1]:
                later[payload[1]] = later.get(payload[1], 0) + 1
        bound = next(
            (
                e
                for e in self.run.events(self.run.home_agent, TraceEvent.UDP_TUNNEL_BOUND)
                if e["t"] >= reply_at
            ),
            None,
        )
        bound_port = str(bound.get("care_of", "")).rsplit(":", 1)[-1] if bound else None
        waited = None if bound is None else bound.get("waited")
        self.figures.setdefault("via_fa", {}).update(
            half_bound_s=waited,
            tunnel_data_before_keepalive=early,
            tunnel_data_to_keepalive_port_by_next_header=later,
        )
        self.check(
            name,
            keepalive is not None
            and early == 0
            and bound_port == str(keepalive[1])
            and {4, 41} <= later.keys(),
            f"first keepalive {_when(keepalive, reply_at)}; {early} Tunnel Data to the NAT before it; HA "
            f"bound to port {bound_port} after {waited} s; then Tunnel Data to "
            f"that port by next header {later}",
        )


def _when(keepalive: tuple[float, int] | None, reply_at: float) -> str:
    if keepalive is None:
        return "not seen"
    return f"from port {keepalive[1]}, {keepalive[0] - reply_at:.3f} s after the reply"


def _is_echo_request(inner: bytes) -> bool:
    """An IPv4 ICMP Echo Request (the keepalive, RFC 3519 §4.9)."""
    if len(inner) < 28 or inner[0] >> 4 != 4 or inner[9] != 1:
        return False
    return inner[(inner[0] & 0x0F) * 4] == 8
