"""The load generator of :mod:`benchmarks.ha_registration`: signed requests, a window, a paced stream.

No namespaces and no agent here, only a connected UDP socket to the home agent's port 434. Requests are
what a co-located mobile node sends (RFC 5944 §3.6.1.3): flags D|T, one IPv6 Prefix Request (RFC 5454
§2.1) before the MN-HA authentication (HMAC-MD5, RFC 5944 §3.5.2), and a timestamp Identification that
increases per mobile node (RFC 5944 §5.7). Requests are built before a run starts, so the client's own
HMAC work is not on the measured path; a batch is sent within a few seconds of being built, well inside
the home agent's 7 s timestamp tolerance.

Replies are matched by home address and Identification (a timestamp reply copies the request's,
RFC 5944 §5.7); only code 0 (accepted, RFC 5944 §3.4) counts.
"""

from __future__ import annotations

import math
import random
import select
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Network

from agents.mip.wire.auth import SecurityAssociation
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.dsmip import PrefixRequest
from agents.mip.wire.identification import next_timestamp_identification
from agents.mip.wire.registration import RegistrationRequest, build_request

KEY = bytes(range(16))
FIRST_SPI = 256
LIFETIME = 600
FIRST_CARE_OF = IPv4Address("198.19.0.1")
REPLY_MIN_LENGTH = 20
"""Type, Code, Lifetime, Home Address, Home Agent, Identification (RFC 5944 §3.4)."""


@dataclass
class MobileNodes:
    """``count`` mobile-node accounts: home addresses after ``first_home``, one /48 each, care-ofs in
    198.19.0.0/16 (RFC 2544's benchmarking range), and the last Identification each one sent."""

    count: int
    home_agent: IPv4Address
    first_home: IPv4Address
    first_care_of: IPv4Address = FIRST_CARE_OF
    last_ids: dict[int, int] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(5454))

    def home(self, index: int) -> IPv4Address:
        return self.first_home + index

    def prefix(self, index: int) -> IPv6Network:
        return IPv6Network(f"2001:db8:{index:x}::/48")

    def association(self, index: int) -> SecurityAssociation:
        return SecurityAssociation(spi=FIRST_SPI + index, key=KEY)

    def request(self, index: int, unix_time: float) -> bytes:
        """One signed request of mobile node ``index``, its Identification above its previous one."""
        identification = next_timestamp_identification(unix_time, self.last_ids.get(index), self.rng)
        self.last_ids[index] = identification
        rrq = RegistrationRequest(
            RegistrationFlag.D | RegistrationFlag.T,
            LIFETIME,
            self.home(index),
            self.home_agent,
            self.first_care_of + index,
            identification,
            (PrefixRequest.for_network(self.prefix(index)),),
        )
        return build_request(rrq, self.association(index))

    def batch(self, indices: Iterable[int], spacing: float = 0.0) -> list[bytes]:
        """Requests for ``indices`` in order, the k-th stamped now + k × ``spacing`` (its planned send
        time when paced); a node's later request is always stamped higher."""
        now = time.time()
        return [self.request(index, now + k * spacing) for k, index in enumerate(indices)]


def reply_key(data: bytes) -> bytes:
    """Home address + Identification of a reply (bytes 4–7 and 12–19, RFC 5944 §3.4)."""
    return data[4:8] + data[12:20]


def request_key(data: bytes) -> bytes:
    """The same key taken from a request (home address 4–7, Identification 16–23, RFC 5944 §3.3)."""
    return data[4:8] + data[16:24]


def open_client(source: IPv4Address, home_agent: IPv4Address, port: int = 434) -> socket.socket:
    """A non-blocking UDP socket connected to the home agent (replies come from its address and port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((str(source), 0))
    sock.connect((str(home_agent), port))
    sock.setblocking(False)
    return sock


def drain(sock: socket.socket, quiet: float = 0.3) -> int:
    """Read and drop replies until none has come for ``quiet`` seconds; how many were dropped."""
    dropped = 0
    while select.select([sock], [], [], quiet)[0]:
        try:
            while True:
                sock.recv(2048)
                dropped += 1
        except BlockingIOError:
            continue
    return dropped


@dataclass(frozen=True)
class WindowResult:
    """A windowed run: requests sent, replies with code 0 and with another code, seconds elapsed."""

    sent: int
    accepted: int
    refused: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.accepted / self.elapsed if self.elapsed > 0 else 0.0


def run_window(sock: socket.socket, wires: Sequence[bytes], window: int, seconds: float) -> WindowResult:
    """Keep ``window`` requests outstanding until ``seconds`` have passed or ``wires`` are used up; a reply
    frees a slot, and 0.2 s of silence counts the whole window as lost. Replies are counted by code."""
    sent = accepted = refused = outstanding = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        while outstanding < window and sent < len(wires):
            sock.send(wires[sent])
            sent, outstanding = sent + 1, outstanding + 1
        if not outstanding:
            break
        replies = _receive_some(sock, 0.2)
        if not replies:
            outstanding = 0
            continue
        good = sum(1 for reply in replies if len(reply) >= REPLY_MIN_LENGTH and reply[1] == 0)
        accepted, refused = accepted + good, refused + len(replies) - good
        outstanding = max(0, outstanding - len(replies))
    return WindowResult(sent, accepted, refused, time.perf_counter() - start)


def _receive_some(sock: socket.socket, timeout: float) -> list[bytes]:
    """Every datagram waiting now, after waiting up to ``timeout`` for the first."""
    if not select.select([sock], [], [], timeout)[0]:
        return []
    replies = []
    try:
        while True:
            replies.append(sock.recv(2048))
    except BlockingIOError:
        return replies


@dataclass(frozen=True)
class PacedResult:
    """Reply latencies (seconds) of a paced run, requests without an accepted reply, the rate achieved."""

    latencies: list[float]
    lost: int
    offered_rate: float


def run_paced(sock: socket.socket, wires: Sequence[bytes], rate: float, grace: float = 1.0) -> PacedResult:
    """Send ``wires`` at ``rate`` a second on a fixed schedule; latency = reply arrival − send time."""
    sent_at: dict[bytes, float] = {}
    latencies: list[float] = []
    start = time.perf_counter()
    index = 0
    while index < len(wires):
        now = time.perf_counter()
        due = start + index / rate
        if now >= due:
            sent_at[request_key(wires[index])] = time.perf_counter()
            sock.send(wires[index])
            index += 1
            continue
        _collect(sock, due - now, sent_at, latencies)
    offered = len(wires) / (time.perf_counter() - start)
    deadline = time.perf_counter() + grace
    while sent_at and (left := deadline - time.perf_counter()) > 0:
        _collect(sock, left, sent_at, latencies)
    return PacedResult(latencies, len(sent_at), offered)


def _collect(
    sock: socket.socket, timeout: float, sent_at: dict[bytes, float], latencies: list[float]
) -> None:
    """Wait up to ``timeout`` for replies and record the latency of each accepted one."""
    if not select.select([sock], [], [], timeout)[0]:
        return
    try:
        while True:
            reply = sock.recv(2048)
            arrived = time.perf_counter()
            started = sent_at.pop(reply_key(reply), None)
            if started is not None and len(reply) >= REPLY_MIN_LENGTH and reply[1] == 0:
                latencies.append(arrived - started)
    except BlockingIOError:
        return


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0.5 = median, 0.99 = p99); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]
