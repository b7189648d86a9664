"""Kernel steering of the home agent's UDP 434 datagrams: known peers get a socket of their own.

Issue 16: a flood faster than the agent can read fills its one socket queue and the kernel then drops
*every* datagram, a mobile node's renewal as much as the flood. Sorting in Python (serve known sources
first) cannot help with what the kernel already dropped. So the home agent opens two UDP sockets on port
434 in one ``SO_REUSEPORT`` group and attaches a classic BPF program to the group
(``SO_ATTACH_REUSEPORT_CBPF``, Linux ≥ 4.5): the kernel runs it for each datagram and puts it in the
**priority** socket (index 1) when

* its IPv4 source is a known peer (a care-of address, FA or NAT public address an accepted registration
  came from while its binding lasts, or the home address of a mobile node with a binding, for its
  deregistration from home: :meth:`HomeAgent.known_sources`), and
* it is MIP Tunnel Data (type 4, RFC 3519 §3.3), or a Registration Request (type 1, RFC 5944 §3.3) of at
  least 24 bytes whose Home Address field is a configured mobile node's,

and in the **general** socket (index 0) otherwise: new mobile nodes and everything else share that queue
(first come, first served; what overflows is dropped there). The agent drains the priority socket before
and while it reads the general one. Both sockets are bound to port 434, so every reply still leaves from
port 434 (RFC 5944 §3.7, §3.8).

Why this mechanism and not an nftables set with a redirect: the steering state is the program attached to
the agent's own sockets, so the kernel removes it with them: a ``kill -9`` leaves no rule, set or
conntrack entry behind for a restarted agent to clean up, and no NAT changes the datagrams' ports.
A flood that forges a known peer's address lands in the priority queue too (nothing in the kernel tells
it from the peer: only the authenticator does); that is bounded by how fast the agent verifies, and
stopped at the network's edge by ingress filtering (BCP 38).
"""

from __future__ import annotations

import asyncio
import ctypes
import socket
import struct
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address

from agents.runtime.udp import RECEIVE_ERROR, MobileIpSocket, Received

SO_ATTACH_REUSEPORT_CBPF = 51
SKF_NET_OFF = -0x100000
"""Classic BPF loads at ``SKF_NET_OFF + k`` read the IP header (a reuseport program's offset 0 is the
UDP payload: the kernel pulls the UDP header before running it)."""
GENERAL, PRIORITY = 0, 1
"""Socket indexes in the reuseport group: the order the sockets were bound in."""
MAX_ADDRESSES = 1024
"""Known sources (and home addresses) put in the program; more are served from the general queue."""
MIN_REQUEST = 24
"""A Registration Request's fixed part (RFC 5944 §3.3)."""
TYPE_REQUEST, TYPE_TUNNEL_DATA = 1, 4
_BLOCK = 200
"""Comparisons per block: a conditional jump reaches at most 255 instructions ahead."""

_LD_W_ABS, _LD_B_ABS, _LD_W_LEN = 0x20, 0x30, 0x80
_JA, _JEQ_K, _JGE_K, _RET_K = 0x05, 0x15, 0x35, 0x06

Instruction = tuple[int, int, int, int]


def _u32(value: int) -> int:
    return value & 0xFFFFFFFF


def _membership(values: list[int], match: str, miss: str) -> list[tuple[int, int, int, int | str]]:
    """``A`` in ``values`` → jump to label ``match``, else to ``miss`` (blocks of short jumps, then long
    ``JA`` jumps to the labels)."""
    out: list[tuple[int, int, int, int | str]] = []
    for start in range(0, len(values), _BLOCK):
        chunk = values[start : start + _BLOCK]
        for index, value in enumerate(chunk):
            out.append((_JEQ_K, len(chunk) - index, 0, value))  # → the JA match below
        out.append((_JA, 0, 0, "+1"))  # none matched: next block
        out.append((_JA, 0, 0, match))
    out.append((_JA, 0, 0, miss))
    return out


def steering_program(
    known: Iterable[IPv4Address], home_addresses: Iterable[IPv4Address]
) -> list[Instruction]:
    """The reuseport program (see the module docstring): returns :data:`PRIORITY` or :data:`GENERAL`.

    Past :data:`MAX_ADDRESSES` known sources, the peers (care-of, FA and NAT addresses) are kept before
    the home addresses, which only a deregistration from home comes from (issue 9: 10,000 bound home
    addresses, lower than every care-of address, pushed all the peers out)."""
    configured = {int(address) for address in home_addresses}
    wanted = {int(address) for address in known}
    peers_first = sorted(wanted - configured) + sorted(wanted & configured)
    sources = sorted(peers_first[:MAX_ADDRESSES])
    homes = sorted(configured)[:MAX_ADDRESSES]
    body: list[tuple[int, int, int, int | str]] = [(_LD_W_ABS, 0, 0, _u32(SKF_NET_OFF + 12))]
    body += _membership(sources, "peer", "general")
    body += [
        ("peer",),  # type: ignore[list-item]
        (_LD_B_ABS, 0, 0, 0),  # the Mobile IP message type
        (_JEQ_K, 0, 1, TYPE_TUNNEL_DATA),
        (_JA, 0, 0, "priority"),
        (_JEQ_K, 1, 0, TYPE_REQUEST),
        (_JA, 0, 0, "general"),
        (_LD_W_LEN, 0, 0, 0),  # the UDP payload's length
        (_JGE_K, 1, 0, MIN_REQUEST),
        (_JA, 0, 0, "general"),
        (_LD_W_ABS, 0, 0, 4),  # the request's Home Address field
    ]
    body += _membership(homes, "priority", "general")
    body += [("priority",), (_RET_K, 0, 0, PRIORITY), ("general",), (_RET_K, 0, 0, GENERAL)]  # type: ignore[list-item]
    return _resolve(body)


def _resolve(body: list[tuple[int, int, int, int | str]]) -> list[Instruction]:
    """Drop the label markers and turn ``JA label`` / ``JA +1`` into relative offsets."""
    labels: dict[str, int] = {}
    program: list[tuple[int, int, int, int | str]] = []
    for item in body:
        if len(item) == 1:
            labels[str(item[0])] = len(program)
        else:
            program.append(item)
    resolved: list[Instruction] = []
    for index, (code, jt, jf, k) in enumerate(program):
        if isinstance(k, str):
            target = index + 2 if k == "+1" else labels[k]
            k = target - index - 1
        resolved.append((code, jt, jf, k))
    return resolved


def attach_reuseport_program(sock: socket.socket, program: list[Instruction]) -> None:
    """Attach (or replace) the reuseport group's program through one of its sockets; OSError if refused."""
    code = b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("=HxxxxxxQ", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


GENERAL_BATCH = 256
"""General-queue datagrams read per wakeup (then the loop runs timers and the priority socket)."""
PRIORITY_EVERY = 32
"""The priority socket is drained again after this many general datagrams."""
PRIORITY_BATCH = 1024
"""Priority datagrams read at most per drain (a forged-peer flood cannot stall the loop)."""


class SteeredSocket(MobileIpSocket):
    """The home agent's UDP 434: this (general) socket and a priority socket in one reuseport group; it
    sends every reply itself (port 434), reads the priority socket first."""

    def __init__(self, port: int, *, receive_buffer: int, home_addresses: Iterable[IPv4Address]) -> None:
        super().__init__(port, receive_buffer=receive_buffer, reuse_port=True)  # bound first: index 0
        try:
            self.priority = MobileIpSocket(self.port, receive_buffer=receive_buffer, reuse_port=True)
        except OSError:
            self.sock.close()
            raise
        self.home_addresses = frozenset(home_addresses)
        self.installed: frozenset[IPv4Address] | None = None
        self.counters = {"priority_received": 0, "general_received": 0, "program_installs": 0}
        self._on_datagram: Callable[[Received], None] = lambda _received: None
        try:
            self.steer(frozenset())
        except OSError:
            self.close()
            raise

    def steer(self, known: frozenset[IPv4Address]) -> bool:
        """Install the program for ``known`` sources; False when it is already installed (the same set
        object, as :meth:`HomeAgent.known_sources` returns while nothing changed, is not compared again)."""
        if known is self.installed or known == self.installed:
            return False
        attach_reuseport_program(self.sock, steering_program(known, self.home_addresses))
        self.installed = known
        self.counters["program_installs"] += 1
        return True

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_datagram: Callable[[Received], None],
        first: Callable[[IPv4Address], bool] | None = None,
    ) -> None:
        """Call ``on_datagram`` for every datagram, the priority socket's first (``first`` is not used:
        the kernel has sorted them)."""
        del first
        self._on_datagram = on_datagram
        self._loop = self.priority._loop = loop
        loop.add_reader(self.priority.sock.fileno(), self._drain_priority)
        loop.add_reader(self.sock.fileno(), self._general_readable)

    def _drain_priority(self) -> None:
        for _ in range(PRIORITY_BATCH):
            received = self.priority.receive_one()
            if received is None:
                return
            if received is not RECEIVE_ERROR:
                self.counters["priority_received"] += 1
                self._on_datagram(received)

    def _general_readable(self) -> None:
        for index in range(GENERAL_BATCH):
            if index % PRIORITY_EVERY == 0:
                self._drain_priority()
            received = self.receive_one()
            if received is None:
                return
            if received is not RECEIVE_ERROR:
                self.counters["general_received"] += 1
                self._on_datagram(received)

    def status(self) -> dict[str, int]:
        return dict(self.counters) | {"priority_sources": len(self.installed or ())}

    def close(self) -> None:
        self.priority.close()
        super().close()
