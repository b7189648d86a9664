"""Classic BPF filters for packet sockets, so the kernel hands an agent only the frames it wants.

A ``SOCK_DGRAM`` packet socket sees every IP packet of its interface (a mobile node carrying probe traffic
receives thousands a second); filtering in the kernel keeps the agent's event loop for the few it needs.
Programs are written here instruction by instruction (``struct sock_filter``: code, jt, jf, k); offsets
are from the start of the IP header, which is where a ``SOCK_DGRAM`` packet socket's data begins.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_FILTER = 26
_LD_B_ABS = 0x30  # A = byte at [k]
_LDX_B_MSH = 0xB1  # X = 4 * (byte at [k] & 0x0f): the IPv4 header length
_LD_B_IND = 0x50  # A = byte at [X + k]
_JEQ_K = 0x15  # if A == k: skip jt else skip jf
_RET_K = 0x06  # accept k bytes (0: drop)
_AND_K = 0x54  # A &= k
_LD_H_IND = 0x48  # A = 16-bit word at [X + k]
ACCEPT_ALL = 0x40000


def ipv4_icmp_type_program(icmp_type: int) -> list[tuple[int, int, int, int]]:
    """IPv4, protocol ICMP, ICMP type ``icmp_type`` → accept; anything else → drop."""
    return [
        (_LD_B_ABS, 0, 0, 0),  # version/IHL
        (_AND_K, 0, 0, 0xF0),
        (_JEQ_K, 0, 6, 0x40),  # IPv4? else drop
        (_LD_B_ABS, 0, 0, 9),  # protocol
        (_JEQ_K, 0, 4, socket.IPPROTO_ICMP),  # ICMP? else drop
        (_LDX_B_MSH, 0, 0, 0),  # X = header length
        (_LD_B_IND, 0, 0, 0),  # ICMP type
        (_JEQ_K, 0, 1, icmp_type),
        (_RET_K, 0, 0, ACCEPT_ALL),
        (_RET_K, 0, 0, 0),
    ]


def ipv4_icmp_type_or_udp_port_program(icmp_type: int, udp_port: int) -> list[tuple[int, int, int, int]]:
    """IPv4 and (ICMP type ``icmp_type`` or UDP to ``udp_port``) → accept; anything else → drop. What an
    agent's access-link sniffer needs: solicitations and registration requests, not the link's traffic."""
    return [
        (_LD_B_ABS, 0, 0, 0),  # 0: version/IHL
        (_AND_K, 0, 0, 0xF0),  # 1
        (_JEQ_K, 0, 10, 0x40),  # 2: IPv4? else drop (13)
        (_LD_B_ABS, 0, 0, 9),  # 3: protocol
        (_JEQ_K, 0, 3, socket.IPPROTO_ICMP),  # 4: ICMP → 5, else the UDP test (8)
        (_LDX_B_MSH, 0, 0, 0),  # 5
        (_LD_B_IND, 0, 0, 0),  # 6: ICMP type
        (_JEQ_K, 4, 5, icmp_type),  # 7: → accept (12) / drop (13)
        (_JEQ_K, 0, 4, socket.IPPROTO_UDP),  # 8: UDP? else drop (13)
        (_LDX_B_MSH, 0, 0, 0),  # 9
        (_LD_H_IND, 0, 0, 2),  # 10: destination port
        (_JEQ_K, 0, 1, udp_port),  # 11: → accept (12) / drop (13)
        (_RET_K, 0, 0, ACCEPT_ALL),  # 12
        (_RET_K, 0, 0, 0),  # 13
    ]


def attach(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """Attach ``program`` to ``sock`` (SO_ATTACH_FILTER); OSError if the kernel refuses it."""
    code = b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("=HxxxxxxQ", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies the program
