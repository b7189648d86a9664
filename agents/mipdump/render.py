"""Turn decoded Mobile IP messages into JSON-able dicts: every field and extension by name.

Names follow the RFCs: RFC 5944 §3.3/§3.4 (registration), §2.1 (agent advertisement), RFC 3519 §3.1–§3.3
(UDP tunnelling), RFC 5454 §2 (DSMIPv4 extension 152).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Mapping
from enum import IntFlag
from typing import Any

from agents.mip.wire.codes import ExtensionType, MessageType, PrefixReplyCode, ReplyCode, describe
from agents.mip.wire.dsmip import PrefixReply, PrefixRequest, TunnelingMode
from agents.mip.wire.extensions import (
    AuthenticationExtension,
    EncapsulatingDeliveryStyle,
    Extension,
    NaiExtension,
    UdpTunnelReply,
    UdpTunnelRequest,
    UnknownExtension,
    locate_extensions,
)
from agents.mip.wire.icmp import AgentAdvertisement, AgentSolicitation, MobilityAgentExtension
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest

Json = dict[str, Any]
NTP_TO_UNIX = 2_208_988_800

EXTENSION_NAMES: Mapping[int, str] = {
    32: "Mobile-Home Authentication",
    33: "Mobile-Foreign Authentication",
    34: "Foreign-Home Authentication",
    36: "Generalized Mobile IP Authentication",
    44: "UDP Tunnel Reply",
    130: "Encapsulating Delivery Style",
    131: "Mobile Node NAI",
    137: "Revocation Support",
    144: "UDP Tunnel Request",
    148: "Mobile Network",
    152: "DSMIPv4",
}
DSMIP_NAMES = {1: "IPv6 Prefix Request", 2: "IPv6 Prefix Reply", 3: "IPv6 Tunneling Mode"}
PREFIX_CODE_NAMES: dict[int, str] = {
    PrefixReplyCode.ACCEPTED_TO_HOA: "accepted, IPv6 tunnelled to the home address",
    PrefixReplyCode.ACCEPTED_TO_COA: "accepted, IPv6 tunnelled to the care-of address",
    PrefixReplyCode.REJECTED_UNSPECIFIED: "rejected, reason unspecified",
    PrefixReplyCode.REJECTED_ADMIN: "rejected, administratively prohibited",
}
NEXT_HEADER_NAMES = {4: "IPv4 (IP-in-UDP)", 41: "IPv6", 47: "GRE", 55: "minimal encapsulation"}


def flags_json(flags: IntFlag, width: int) -> Json:
    """A flag field as its value and the names of the bits set (unnamed bits as hex)."""
    value = int(flags)
    names = [member.name for member in type(flags) if member.name and value & member.value]
    known = sum(member.value for member in type(flags))
    if value & ~known:
        names.append(f"0x{value & ~known:0{width // 4}x}")
    return {"value": f"0x{value:0{width // 4}x}", "names": names}


def identification_json(identification: int) -> Json:
    """The 64-bit Identification, with its NTP timestamp reading (RFC 5944 §5.7)."""
    seconds, fraction = identification >> 32, identification & 0xFFFFFFFF
    unix = seconds - NTP_TO_UNIX + fraction / 2**32
    as_time = None
    if 0 <= unix < 2**32:
        moment = datetime.datetime.fromtimestamp(unix, tz=datetime.UTC)
        as_time = moment.isoformat().replace("+00:00", "Z")
    return {"value": f"0x{identification:016x}", "ntp_time": as_time}


def prefix_text(prefix_length: int, prefix: object) -> str:
    """`2001:db8::/48`, or the bare link-local address when the length is 255 (RFC 5454 §2.2)."""
    return str(prefix) if prefix_length == 255 else f"{prefix}/{prefix_length}"


def dsmip_json(extension: PrefixRequest | PrefixReply | TunnelingMode) -> Json:
    subtype = {PrefixRequest: 1, PrefixReply: 2, TunnelingMode: 3}[type(extension)]
    body: Json = {"subtype": subtype, "subtype_name": DSMIP_NAMES[subtype]}
    if isinstance(extension, PrefixReply):
        body["code"] = extension.code
        body["code_name"] = PREFIX_CODE_NAMES.get(extension.code, describe_prefix_code(extension.code))
    if isinstance(extension, PrefixRequest | PrefixReply):
        body["prefix_length"] = extension.prefix_length
        body["prefix"] = prefix_text(extension.prefix_length, extension.prefix)
        body["link_local"] = extension.prefix_length == 255
    if isinstance(extension, PrefixReply | TunnelingMode) and extension.reserved:
        body["reserved"] = extension.reserved
    return body


def reply_code_name(code: int) -> str:
    """`ACCEPTED`, `HA_IDENTIFICATION_MISMATCH` …; unknown codes say which range they fall in."""
    try:
        return ReplyCode(code).name
    except ValueError:
        return describe(code)


def describe_prefix_code(code: int) -> str:
    return f"unknown {'accept' if code < 8 else 'reject'} code ({code})"


def extension_json(extension: Extension) -> Json:
    """One extension: numeric `type`, readable `name`, then its fields."""
    out: Json = {"type": extension.type, "name": EXTENSION_NAMES.get(extension.type, "unknown")}
    if isinstance(extension, AuthenticationExtension):
        out |= {"spi": extension.spi, "authenticator": extension.authenticator.hex()}
        if extension.spi_reserved:
            out["spi_reserved"] = True
    elif isinstance(extension, NaiExtension):
        out["nai"] = extension.nai
    elif isinstance(extension, UdpTunnelRequest):
        out |= {
            "subtype": 0,
            "force": extension.force,
            "r_flag": extension.r_flag,
            "encapsulation": extension.encapsulation,
            "reserved3": extension.reserved3,
        }
    elif isinstance(extension, UdpTunnelReply):
        out |= {
            "subtype": 0,
            "code": extension.code,
            "code_name": "will do tunnelling" if extension.accepted else "tunnelling declined",
            "force": extension.force,
            "keepalive": extension.keepalive,
        }
    elif isinstance(extension, PrefixRequest | PrefixReply | TunnelingMode):
        out |= dsmip_json(extension)
    elif isinstance(extension, UnknownExtension):
        out |= {"skippable": extension.skippable, "data": extension.body.hex()}
    elif not isinstance(extension, EncapsulatingDeliveryStyle):
        raise TypeError(f"no JSON form for {extension!r}")
    return out


def registration_json(message: RegistrationRequest | RegistrationReply) -> Json:
    """A Registration Request (1) or Reply (3) with every fixed field and extension."""
    out: Json
    if isinstance(message, RegistrationRequest):
        out = {
            "message": "Registration Request",
            "type": int(MessageType.REGISTRATION_REQUEST),
            "flags": flags_json(message.flags, 8),
            "lifetime": message.lifetime,
            "home_address": str(message.home_address),
            "home_agent": str(message.home_agent),
            "care_of_address": str(message.care_of_address),
        }
    else:
        out = {
            "message": "Registration Reply",
            "type": int(MessageType.REGISTRATION_REPLY),
            "code": int(message.code),
            "code_name": reply_code_name(int(message.code)),
            "lifetime": message.lifetime,
            "home_address": str(message.home_address),
            "home_agent": str(message.home_agent),
        }
    out["identification"] = identification_json(message.identification)
    out["extensions"] = [extension_json(extension) for extension in message.extensions]
    if message.has_unknown_non_skippable:
        out["discard"] = "unknown non-skippable extension (RFC 5944 §1.8)"
    return out


def advertisement_json(message: AgentAdvertisement) -> Json:
    """ICMP Agent Advertisement (RFC 5944 §2.1) with extensions 16, 19 and padding."""
    extensions: list[Json] = [mobility_json(message.mobility)]
    if message.prefix_lengths is not None:
        extensions.append(
            {"type": 19, "name": "Prefix-Lengths", "prefix_lengths": list(message.prefix_lengths)}
        )
    extensions += [
        {"type": kind, "name": "unknown", "data": data.hex()} for kind, data in message.unknown_extensions
    ]
    extensions += [{"type": 0, "name": "Padding"}] * message.padding
    return {
        "message": "Agent Advertisement",
        "icmp_type": 9,
        "code": message.code,
        "code_name": "routes common traffic" if message.code == 0 else "mobility agent only",
        "lifetime": message.lifetime,
        "router_addresses": [{"address": str(a), "preference": p} for a, p in message.router_addresses],
        "extensions": extensions,
        "problems": list(message.problems()),
    }


def mobility_json(extension: MobilityAgentExtension) -> Json:
    return {
        "type": 16,
        "name": "Mobility Agent Advertisement",
        "sequence": extension.sequence,
        "registration_lifetime": extension.registration_lifetime,
        "flags": flags_json(extension.flags, 16),
        "care_of_addresses": [str(address) for address in extension.care_of_addresses],
    }


def solicitation_json(_: AgentSolicitation) -> Json:
    return {"message": "Agent Solicitation", "icmp_type": 10, "code": 0}


def tunnel_data_json(next_header: int, reserved: int, inner: bytes) -> Json:
    """MIP Tunnel Data (RFC 3519 §3.3; next header 41: RFC 5454 §3.9) and a summary of the inner packet."""
    out: Json = {
        "message": "Tunnel Data",
        "type": int(MessageType.TUNNEL_DATA),
        "next_header": next_header,
        "next_header_name": NEXT_HEADER_NAMES.get(next_header, "unknown"),
        "reserved": reserved,
        "inner_length": len(inner),
    }
    out["inner"] = inner_summary(inner)
    return out


def inner_summary(inner: bytes) -> Json | None:
    """Version, addresses and protocol of an encapsulated IPv4 or IPv6 packet, if it has a whole header."""
    if len(inner) >= 20 and inner[0] >> 4 == 4:
        return {
            "version": 4,
            "source": str(ipaddress.IPv4Address(inner[12:16])),
            "destination": str(ipaddress.IPv4Address(inner[16:20])),
            "protocol": inner[9],
        }
    if len(inner) >= 40 and inner[0] >> 4 == 6:
        return {
            "version": 6,
            "source": str(ipaddress.IPv6Address(inner[8:24])),
            "destination": str(ipaddress.IPv6Address(inner[24:40])),
            "next_header": inner[6],
        }
    return None


def authentication_occurrences(raw: bytes, fixed_length: int) -> list[tuple[int, int, int]]:
    """(index in the extension list, extension type, occurrence of that type) for each auth extension."""
    seen: dict[int, int] = {}
    found = []
    for index, located in enumerate(locate_extensions(raw[fixed_length:], fixed_length)):
        extension = located.extension
        if isinstance(extension, AuthenticationExtension):
            found.append((index, extension.type, seen.get(extension.type, 0)))
            seen[extension.type] = seen.get(extension.type, 0) + 1
    return found


__all__ = [
    "ExtensionType",
    "Json",
    "advertisement_json",
    "registration_json",
    "solicitation_json",
    "tunnel_data_json",
]
