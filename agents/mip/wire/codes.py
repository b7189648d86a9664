"""Numbers of Mobile IPv4 registration: flags, reply codes, extension types (RFC 5944 §3, RFC 5454 §2).

Every value here is taken from ``shared/docs/protocol.md`` §1, §2, §4 and §6, which names the RFC
that defines it.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class MessageType(IntEnum):
    """Mobile IP message types on UDP port 434 (RFC 5944 §1.8, RFC 3519 §3.3)."""

    REGISTRATION_REQUEST = 1
    REGISTRATION_REPLY = 3
    TUNNEL_DATA = 4


FIXED_PART_LENGTH: dict[int, int] = {
    MessageType.REGISTRATION_REQUEST: 24,  # RFC 5944 §3.3
    MessageType.REGISTRATION_REPLY: 20,  # RFC 5944 §3.4
}
"""Bytes before the first extension, by message type."""


class RegistrationFlag(IntFlag):
    """Flag byte of a Registration Request, MSB first: S B D M G r T x (RFC 5944 §3.3)."""

    S = 0x80  # keep simultaneous bindings
    B = 0x40  # tunnel broadcasts of the home network
    D = 0x20  # the mobile node decapsulates (co-located care-of address)
    M = 0x10  # minimal encapsulation (RFC 2004)
    G = 0x08  # GRE encapsulation (RFC 2784)
    R = 0x04  # reserved 'r', sent as 0; formerly V (Van Jacobson) in RFC 2002 / RFC 3024
    T = 0x02  # reverse tunnelling requested (RFC 3024 §3.2)
    X = 0x01  # reserved 'x', sent as 0


class ReplyCode(IntEnum):
    """Registration Reply codes (RFC 5944 §3.4; RFC 3024, 2794, 3519, 4064, 4433 as in protocol.md §1)."""

    ACCEPTED = 0
    ACCEPTED_NO_SIMULTANEOUS_BINDINGS = 1
    # Denied by the foreign agent (64-127, and 194).
    FA_REASON_UNSPECIFIED = 64
    FA_ADMINISTRATIVELY_PROHIBITED = 65
    FA_INSUFFICIENT_RESOURCES = 66
    FA_MOBILE_NODE_FAILED_AUTHENTICATION = 67
    FA_HOME_AGENT_FAILED_AUTHENTICATION = 68
    FA_LIFETIME_TOO_LONG = 69
    FA_POORLY_FORMED_REQUEST = 70
    FA_POORLY_FORMED_REPLY = 71
    FA_ENCAPSULATION_UNAVAILABLE = 72
    FA_RESERVED_AND_UNAVAILABLE = 73
    FA_REVERSE_TUNNEL_UNAVAILABLE = 74
    FA_REVERSE_TUNNEL_MANDATORY = 75
    FA_MOBILE_NODE_TOO_DISTANT = 76
    FA_INVALID_CARE_OF_ADDRESS = 77
    FA_REGISTRATION_TIMEOUT = 78
    FA_DELIVERY_STYLE_UNSUPPORTED = 79
    FA_HOME_NETWORK_UNREACHABLE = 80
    FA_HOME_AGENT_HOST_UNREACHABLE = 81
    FA_HOME_AGENT_PORT_UNREACHABLE = 82
    FA_HOME_AGENT_UNREACHABLE = 88
    FA_VENDOR_SPECIFIC = 89
    FA_NONZERO_HOME_AGENT_REQUIRED = 90
    FA_NONZERO_HOME_ADDRESS_REQUIRED = 96
    FA_MISSING_NAI = 97
    FA_MISSING_HOME_AGENT = 98
    FA_MISSING_HOME_ADDRESS = 99
    FA_UNINTERPRETABLE_CVSE_FROM_MOBILE_NODE = 100
    FA_UNINTERPRETABLE_CVSE_FROM_HOME_AGENT = 101
    FA_UNKNOWN_CHALLENGE = 104
    FA_MISSING_CHALLENGE = 105
    FA_STALE_CHALLENGE = 106
    FA_MISSING_MN_FA_KEY_GENERATION_NONCE = 107
    FA_MOBILE_NODE_FAILED_AAA_AUTHENTICATION = 108
    FA_HOME_AGENT_SENT_WRONG_CHALLENGE = 109
    FA_EXPERIMENTAL = 127
    FA_INVALID_HOME_AGENT_ADDRESS = 194
    # Denied by the home agent (128-192).
    HA_REASON_UNSPECIFIED = 128
    HA_ADMINISTRATIVELY_PROHIBITED = 129
    HA_INSUFFICIENT_RESOURCES = 130
    HA_MOBILE_NODE_FAILED_AUTHENTICATION = 131
    HA_FOREIGN_AGENT_FAILED_AUTHENTICATION = 132
    HA_IDENTIFICATION_MISMATCH = 133
    HA_POORLY_FORMED_REQUEST = 134
    HA_TOO_MANY_SIMULTANEOUS_BINDINGS = 135
    HA_UNKNOWN_HOME_AGENT_ADDRESS = 136
    HA_REVERSE_TUNNEL_UNAVAILABLE = 137
    HA_REVERSE_TUNNEL_MANDATORY = 138
    HA_ENCAPSULATION_UNAVAILABLE = 139
    HA_UNINTERPRETABLE_CVSE_FROM_MOBILE_NODE = 140
    HA_UNINTERPRETABLE_CVSE_FROM_FOREIGN_AGENT = 141
    HA_UDP_ENCAPSULATION_UNAVAILABLE = 142
    HA_REREGISTER_WITH_REDIRECTED_HA = 143
    HA_MOBILE_NODE_FAILED_AAA_AUTHENTICATION = 144
    HA_EXPERIMENTAL = 192


_ACCEPT_CODES = frozenset({ReplyCode.ACCEPTED, ReplyCode.ACCEPTED_NO_SIMULTANEOUS_BINDINGS})


def is_accepted(code: int) -> bool:
    """True for the two success codes, 0 and 1 (RFC 5944 §3.4)."""
    return code in _ACCEPT_CODES


def is_fa_denial(code: int) -> bool:
    """True for a denial by the foreign agent: 64-127 (RFC 4064 §2) and 194 (RFC 5944 §3.7.2)."""
    return 64 <= code <= 127 or code == ReplyCode.FA_INVALID_HOME_AGENT_ADDRESS


def is_ha_denial(code: int) -> bool:
    """True for a denial by the home agent: 128-192 (RFC 4064 §2)."""
    return 128 <= code <= 192


def describe(code: int) -> str:
    """A readable name for any reply code, including codes this module does not know."""
    try:
        return f"{ReplyCode(code).name} ({code})"
    except ValueError:
        pass
    if is_fa_denial(code):
        origin = "unknown foreign-agent denial"
    elif is_ha_denial(code):
        origin = "unknown home-agent denial"
    else:
        origin = "unknown code"
    return f"{origin} ({code})"


class ExtensionType(IntEnum):
    """Extension types in UDP-434 messages (RFC 5944 §1.8, §3.5; protocol.md §2)."""

    MOBILE_HOME_AUTH = 32
    MOBILE_FOREIGN_AUTH = 33
    FOREIGN_HOME_AUTH = 34
    GENERALIZED_AUTH = 36  # RFC 3012, long format; not decoded here
    UDP_TUNNEL_REPLY = 44  # RFC 3519 §3.2, NON-skippable
    ENCAPSULATING_DELIVERY_STYLE = 130  # RFC 3024 §3.3
    MOBILE_NODE_NAI = 131  # RFC 2794 §2
    REVOCATION_SUPPORT = 137  # RFC 3543; not decoded here
    UDP_TUNNEL_REQUEST = 144  # RFC 3519 §3.1
    MOBILE_NETWORK = 148  # RFC 5177; NOT DSMIPv4; not decoded here
    DSMIPV4 = 152  # RFC 5454 §2


def is_skippable(extension_type: int) -> bool:
    """Types 128-255 are skipped when unknown; 0-127 make the message be discarded (RFC 5944 §1.8)."""
    return extension_type >= 128


class UdpTunnelReplyCode(IntEnum):
    """UDP Tunnel Reply codes: 0-63 will tunnel, 64-255 declined (RFC 3519 §3.2)."""

    WILL_DO_TUNNELING = 0
    DECLINED_REASON_UNSPECIFIED = 64


class DsmipSubtype(IntEnum):
    """Subtypes of the DSMIPv4 extension, type 152 (RFC 5454 §2.1-§2.3)."""

    PREFIX_REQUEST = 1
    PREFIX_REPLY = 2
    TUNNELING_MODE = 3


class PrefixReplyCode(IntEnum):
    """IPv6 Prefix Reply codes: 0-7 accept, 8-255 reject (RFC 5454 §2.2, §5)."""

    ACCEPTED_TO_HOA = 0
    ACCEPTED_TO_COA = 1
    REJECTED_UNSPECIFIED = 8
    REJECTED_ADMIN = 9

    @staticmethod
    def is_accepted(code: int) -> bool:
        """True for codes 0-7, the range reserved for accept codes (RFC 5454 §2.2)."""
        return 0 <= code <= 7
