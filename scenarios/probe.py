"""UDP constant-bit-rate probe (design.md §7): ``python -m scenarios.probe send|recv ...`` in a namespace.

Packet and log formats, and the merge into ``probes/<flow>.csv``, are in :mod:`scenarios.probe_format`.

``send --to ADDR --port P --flow NAME --log FILE.csv [--rate PPS] [--size N] [--source ADDR] [--duration S]``
    Sends one packet per 1/rate seconds to ADDR (IPv4 or IPv6, by the address), never connected, so each
    sendto takes the route of the moment. Pacing follows an absolute schedule: packet ``seq`` is due at
    ``t0 + seq/rate`` and the sender sleeps until then. Late policy (:class:`Pacer`): a late packet goes
    out at once, but at most ``MAX_CATCHUP`` (4) in a row back to back; the rest of a backlog is caught up
    at no more than ``CATCHUP_SPEEDUP`` (4) times the rate, so short stalls (scheduler, VM steal) cost
    neither packets nor average rate. A backlog over ``MAX_BACKLOG_S`` (50 ms) is given up: the schedule
    moves so the packet is due now (a ``slip`` in the summary). No seq is ever skipped, so a stall shows
    as a gap in send_t, never as loss. A failed sendto (ENETUNREACH, EHOSTUNREACH, ENOBUFS, EPERM,
    EINVAL while a handover changes routes and addresses) is counted per errno and logged with its seq;
    sending carries on.
    ``--source`` binds the source address with IP_FREEBIND / IPV6_FREEBIND, so it works before the
    address exists (IPv4 sendto then fails, usually ENETUNREACH, until it does; the IPv6 kernel sends
    with it at once). Should the bind still fail with EADDRNOTAVAIL, it is retried every 50 ms and the
    seqs due meanwhile are logged as ``EADDRNOTAVAIL`` without being sent.

``recv --bind ADDR --port P --log FILE.csv``
    Logs every valid probe packet of any flow, ``recv_t`` = when the kernel received it (SO_TIMESTAMPNS,
    CLOCK_REALTIME, moved to CLOCK_MONOTONIC with the two clocks' offset read at each wake-up), so a
    receiver that waits for a CPU does not stretch the interruptions it measures (issue 14); without a
    kernel stamp, CLOCK_MONOTONIC right after the read. With kernel stamps it reads in batches, sleeping
    ``RECV_BATCH_S`` (4 ms) after draining the socket, so it does not take a CPU for every packet. Binds
    with freebind too; ``--bind ::`` also takes IPv4 (unless net.ipv6.bindv6only). Packets that are not
    probe packets are counted as invalid, never logged.

Both print ``READY`` once the socket exists, and on SIGTERM / SIGINT (or ``--duration`` over) flush the
log, print a one-line JSON summary and exit 0. The sender summary is
``{"flow", "sent", "errors": {errno_name: n}, "slips", "elapsed_s"}`` (``sent`` counts successful sendto
calls only); the receiver's is ``{"received", "invalid", "per_flow": {flow: {"received", "max_seq"}}}``.
Usage errors exit 2 with a one-line message.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from scenarios.probe_format import (
    DEFAULT_SIZE,
    RECV_LOG_HEADER,
    SEND_LOG_HEADER,
    PacketBuilder,
    ProbeFormatError,
    ProbeRow,
    check_flow,
    check_size,
    decode,
    merge,
    write_flow_csv,
)

__all__ = ["ProbeRow", "main", "merge", "write_flow_csv"]

IP_FREEBIND = 15  # linux/in.h; not exported by Python's socket module
IPV6_FREEBIND = 78  # linux/in6.h
MAX_CATCHUP = 4  # late packets a sender may send back to back
CATCHUP_SPEEDUP = 4.0  # after those, a backlog is caught up at no more than this many times the rate
MAX_BACKLOG_S = 0.05  # a longer backlog is given up (the schedule slips)
BIND_RETRY_S = 0.05
LOG_BUFFER = 1 << 20
RCVBUF = 4 << 20
DRAIN_MAX = 256  # packets read per wake-up before checking for a stop request again
RECV_BATCH_S = 0.004
"""A receiver sleeps this long after draining its socket: ``recv_t`` is the kernel's stamp, so reading in
batches loses no precision, and four receivers at 5000 packets/s wake ~250 times a second each instead of
5000, leaving the CPUs to the agents and senders a handover waits on (issue 14)."""
SO_TIMESTAMPNS = 35  # asm-generic/socket.h (SO_TIMESTAMPNS_OLD); not exported by Python's socket module
_TIMESPEC = struct.Struct("@qq")


class UsageError(Exception):
    """A bad address or a setup failure: reported on one line, exit 2."""


def monotonic() -> float:
    """CLOCK_MONOTONIC seconds: the clock every namespace shares."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


OFFSET_READS = 5  # tries at reading the two clocks close together
OFFSET_CLOSE_NS = 2_000  # a pair read within this is taken at once


def realtime_offset_ns() -> int:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC now, in ns: a realtime read between two monotonic reads, the
    closest of up to :data:`OFFSET_READS` tries (a receiver preempted between two reads would otherwise
    shift every ``recv_t`` of that wake-up by up to half the preemption)."""
    best: tuple[int, int] | None = None
    for _ in range(OFFSET_READS):
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        real = time.clock_gettime_ns(time.CLOCK_REALTIME)
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        if best is None or after - before < best[0]:
            best = (after - before, real - (before + after) // 2)
        if after - before <= OFFSET_CLOSE_NS:
            break
    assert best is not None
    return best[1]


def kernel_stamp_ns(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The CLOCK_REALTIME receive time (ns) in an SCM_TIMESTAMPNS control message, if there is one."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(value)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


class Stopper:
    """Turns SIGTERM / SIGINT into a flag, and wakes a select() through a self-pipe."""

    def __init__(self) -> None:
        self.stopped = False
        self.fd, self._w = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._w, False)
        signal.set_wakeup_fd(self._w)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds or until a stop signal; return True if stopped."""
        if not self.stopped and timeout > 0:
            select.select([self.fd], [], [], timeout)
        return self.stopped


class Pacer:
    """The sender's absolute schedule with bounded catch-up (policy in the module docstring)."""

    def __init__(self, rate: float, t0: float) -> None:
        self.rate = rate
        self.t0 = t0
        self.slips = 0
        self.catchup_gap = 1.0 / (rate * CATCHUP_SPEEDUP)
        self.backlog_s = max(MAX_BACKLOG_S, MAX_CATCHUP / rate)
        self._late_run = 0
        self._behind = False
        self._last = float("-inf")

    def scheduled(self, seq: int) -> float:
        """When ``seq`` is due on the (possibly slipped) schedule."""
        return self.t0 + seq / self.rate

    def due(self, seq: int, now: float) -> float:
        """When to send ``seq``, planning at time ``now``; may slip the schedule."""
        sched = self.scheduled(seq)
        if now - sched > self.backlog_s:
            self.t0 += now - sched
            sched = now
            self.slips += 1
            self._late_run = 0
        self._behind = now >= sched
        if self._behind and self._late_run >= MAX_CATCHUP:
            return max(sched, self._last + self.catchup_gap)
        return sched

    def sent(self, t: float) -> None:
        """Record that the packet planned last went out (or failed) at ``t``."""
        self._late_run = self._late_run + 1 if self._behind else 0
        self._last = t


def errno_name(error: OSError) -> str:
    """``ENETUNREACH`` for errno 101, and so on."""
    if error.errno is None:
        return type(error).__name__
    return errno.errorcode.get(error.errno, f"E{error.errno}")


def resolve(addr: str, port: int, family: int = socket.AF_UNSPEC) -> tuple[int, Any]:
    """(family, sockaddr) for a numeric IPv4 / IPv6 address (``fe80::1%eth0`` allowed)."""
    try:
        infos = socket.getaddrinfo(addr, port, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError) as error:
        raise UsageError(f"bad address {addr!r}: {error}") from None
    if not infos:
        raise UsageError(f"bad address {addr!r}")
    return infos[0][0], infos[0][4]


def freebind(sock: socket.socket, family: int) -> bool:
    """Let ``sock`` bind to an address not (yet) configured here; False if the kernel refuses."""
    level, option = (
        (socket.IPPROTO_IP, IP_FREEBIND) if family == socket.AF_INET else (socket.IPPROTO_IPV6, IPV6_FREEBIND)
    )
    try:
        sock.setsockopt(level, option, 1)
    except OSError:
        return False
    return True


def try_bind(sock: socket.socket, sockaddr: Any) -> bool:
    """Bind; False on EADDRNOTAVAIL (address not there yet), UsageError on anything else."""
    try:
        sock.bind(sockaddr)
    except OSError as error:
        if error.errno == errno.EADDRNOTAVAIL:
            return False
        raise UsageError(f"cannot bind {sockaddr[0]} port {sockaddr[1]}: {error.strerror}") from None
    return True


def open_log(path: str, header: str) -> TextIO:
    """Open a CSV log for buffered writing and write its header."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        log = open(path, "w", encoding="ascii", buffering=LOG_BUFFER)  # noqa: SIM115
    except OSError as error:
        raise UsageError(f"cannot open log {path}: {error.strerror or error}") from None
    log.write(header + "\n")
    return log


def say(line: str) -> None:
    """One line on stdout, flushed; a closed stdout is not an error."""
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(line, flush=True)


def run_send(args: argparse.Namespace, stopper: Stopper) -> int:
    """The sender loop; returns the exit status."""
    family, dest = resolve(args.to, args.port)
    source = resolve(args.source, 0, family)[1] if args.source else None
    builder = PacketBuilder(args.flow, args.size)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    bound = True
    if source is not None:
        freebind(sock, family)
        bound = try_bind(sock, source)
    log = open_log(args.log, SEND_LOG_HEADER)
    say("READY")
    errors: Counter[str] = Counter()
    sent = seq = 0
    start = monotonic()
    pacer = Pacer(args.rate, start)
    end = start + args.duration if args.duration is not None else float("inf")
    next_bind = start
    try:
        while not stopper.stopped:
            if pacer.scheduled(seq) >= end:
                break
            now = monotonic()
            due = pacer.due(seq, now)
            if now < due:
                if stopper.wait(due - now):
                    break
                now = monotonic()
            error = ""
            if not bound and now >= next_bind:
                bound = try_bind(sock, source)
                next_bind = now + BIND_RETRY_S
            if not bound:
                error = "EADDRNOTAVAIL"
            else:
                try:
                    sock.sendto(builder.build(seq, now), dest)
                    sent += 1
                except OSError as exc:
                    error = errno_name(exc)
            if error:
                errors[error] += 1
            pacer.sent(now)
            log.write(f"{seq},{now:.9f},{error}\n")
            seq += 1
    finally:
        log.close()
        sock.close()
    elapsed = monotonic() - start
    summary = {
        "flow": args.flow,
        "sent": sent,
        "errors": dict(errors),
        "slips": pacer.slips,
        "elapsed_s": elapsed,
    }
    say(json.dumps(summary))
    return 0


def run_recv(args: argparse.Namespace, stopper: Stopper) -> int:
    """The receiver loop; returns the exit status."""
    family, local = resolve(args.bind, args.port)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    freebind(sock, family)
    with contextlib.suppress(OSError):  # capped at net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    if not try_bind(sock, local):
        raise UsageError(f"cannot bind {args.bind} port {args.port}: address not available (no freebind)")
    sock.setblocking(False)
    with contextlib.suppress(OSError):  # no kernel stamps: recv_t is read after the read instead
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    control = socket.CMSG_SPACE(_TIMESPEC.size)
    log = open_log(args.log, RECV_LOG_HEADER)
    say("READY")
    received = invalid = 0
    counts: Counter[str] = Counter()
    max_seq: dict[str, int] = {}
    sock_fd = sock.fileno()
    try:
        while not stopper.stopped:
            ready, _, _ = select.select([sock_fd, stopper.fd], [], [])
            if sock_fd not in ready:
                continue
            offset = realtime_offset_ns()
            stamp = None
            drained = False
            for _ in range(DRAIN_MAX):
                try:
                    data, ancillary, _flags, _source = sock.recvmsg(65535, control)
                except OSError:  # BlockingIOError: drained (unconnected UDP gets no ICMP errors)
                    drained = True
                    break
                stamp = kernel_stamp_ns(ancillary)
                recv_t = monotonic() if stamp is None else (stamp - offset) / 1e9
                try:
                    packet = decode(data)
                except ProbeFormatError:
                    invalid += 1
                    continue
                received += 1
                counts[packet.flow] += 1
                if packet.seq > max_seq.get(packet.flow, -1):
                    max_seq[packet.flow] = packet.seq
                log.write(f"{packet.flow},{packet.seq},{packet.send_t:.9f},{recv_t:.9f}\n")
            if drained and stamp is not None:  # kernel stamps: the next batch can wait (else reads count)
                stopper.wait(RECV_BATCH_S)
    finally:
        log.close()
        sock.close()
    per_flow = {flow: {"received": n, "max_seq": max_seq[flow]} for flow, n in sorted(counts.items())}
    say(json.dumps({"received": received, "invalid": invalid, "per_flow": per_flow}))
    return 0


def _port(text: str) -> int:
    value = _int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"bad port {text!r}: want 1..65535")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"want a positive number, not {text!r}")
    return value


def _rate(text: str) -> float:
    value = _positive(text)
    if value > 1_000_000:
        raise argparse.ArgumentTypeError(f"rate {text} too high (at most 1000000 pkt/s)")
    return value


def _size(text: str) -> int:
    try:
        return check_size(_int(text))
    except ProbeFormatError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _flow(text: str) -> str:
    try:
        return check_flow(text)
    except ProbeFormatError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    """The ``send`` / ``recv`` command line."""
    parser = argparse.ArgumentParser(prog="python -m scenarios.probe", description="UDP CBR probe.")
    sub = parser.add_subparsers(dest="command", required=True)
    send = sub.add_parser("send", help="send one probe flow")
    send.add_argument("--to", required=True, help="destination IPv4 or IPv6 address")
    send.add_argument("--port", required=True, type=_port, help="destination UDP port")
    send.add_argument("--flow", required=True, type=_flow, help="flow id, 1..16 of [A-Za-z0-9._:+-]")
    send.add_argument("--rate", type=_rate, default=1000.0, help="packets per second (default 1000)")
    send.add_argument("--size", type=_size, default=DEFAULT_SIZE, help="UDP payload bytes (default 64)")
    send.add_argument("--source", help="source address to bind (freebind: may not exist yet)")
    send.add_argument("--duration", type=_positive, help="stop after this many seconds (default: at SIGTERM)")
    send.add_argument("--log", required=True, help="CSV log: seq,send_t,error")
    send.set_defaults(run=run_send)
    recv = sub.add_parser("recv", help="receive probe flows")
    recv.add_argument("--bind", required=True, help="local IPv4 or IPv6 address (:: or 0.0.0.0 for any)")
    recv.add_argument("--port", required=True, type=_port, help="UDP port")
    recv.add_argument("--log", required=True, help="CSV log: flow,seq,send_t,recv_t")
    recv.set_defaults(run=run_recv)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    stopper = Stopper()
    try:
        status: int = args.run(args, stopper)
    except UsageError as error:
        print(f"probe {args.command}: {error}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
