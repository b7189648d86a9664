"""Transmit checksum offload off on a tunnel device (``ethtool -K DEV tx off``, SIOCETHTOOL ETHTOOL_STXCSUM).

A kernel tunnel device (ipip, gre, sit) advertises checksum offload: a forwarded packet whose UDP/TCP
checksum its sender left to the hardware (CHECKSUM_PARTIAL, as every veth does) is encapsulated with the
inner checksum still unfinished, and on a veth no hardware ever finishes it. A peer that decapsulates from
the bytes (a foreign agent's raw IPPROTO_IPIP socket, RFC 2003 §3) then delivers a packet with a wrong
checksum that the mobile node drops. With the offload off the kernel completes the inner checksum before
encapsulating, as RFC 2003 §3 expects of the inner datagram ("unchanged").
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct

SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17
IFNAMSIZ = 16
IFREQ_SIZE = 40


def ethtool_socket() -> socket.socket:
    """A socket for the ioctl, bound to the network namespace of the caller at this moment."""
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def disable_tx_checksum(sock: socket.socket, interface: str) -> None:
    """Transmit checksum offload off on ``interface`` in ``sock``'s namespace (OSError if refused)."""
    value = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_STXCSUM, 0))
    request = struct.pack(f"{IFNAMSIZ}sP", interface.encode()[: IFNAMSIZ - 1], ctypes.addressof(value))
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request.ljust(IFREQ_SIZE, b"\0"))
