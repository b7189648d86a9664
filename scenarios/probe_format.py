"""Pure parts of the UDP probe (design.md §7): the packet codec, the log formats and the merge.

Probe packet (UDP payload, network byte order, 37-byte header then zero padding to ``--size``)::

    offset  size  field
    0       4     magic    b"DSPB"
    4       1     version  u8, currently 1
    5       16    flow id  ASCII, NUL padded (1..16 chars of [A-Za-z0-9._:+-])
    21      8     seq      u64, 0 for the first packet of a flow, +1 per packet (failed sends included)
    29      8     send_t   f64, time.clock_gettime(CLOCK_MONOTONIC) just before sendto
    37      ...   padding  zero bytes up to the payload size (default 64)

Network namespaces share the kernel's CLOCK_MONOTONIC, so ``recv_t - send_t`` is the one-way delay.

Log files (CSV with a header line, times in seconds with 9 decimals):

* sender ``seq,send_t,error`` — one row per seq; ``error`` is empty when sendto succeeded, else the errno
  name (``ENETUNREACH``, ``EADDRNOTAVAIL``, ...);
* receiver ``flow,seq,send_t,recv_t`` — one row per valid probe packet received (duplicates included).

:func:`merge` joins one flow's logs into the run-folder format ``probes/<flow>.csv``
(``seq,send_t,recv_t,path,family``) and :func:`write_flow_csv` writes it.
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"DSPB"
VERSION = 1
FLOW_ID_LEN = 16
HEADER = struct.Struct("!4sB16sQd")
HEADER_SIZE = HEADER.size  # 37
DEFAULT_SIZE = 64
MAX_SIZE = 65507  # largest UDP payload over IPv4
MAX_SEQ = 2**64 - 1
FLOW_RE = re.compile(r"[A-Za-z0-9._:+-]{1,16}")

SEND_LOG_HEADER = "seq,send_t,error"
RECV_LOG_HEADER = "flow,seq,send_t,recv_t"
FLOW_CSV_HEADER = "seq,send_t,recv_t,path,family"


class ProbeFormatError(ValueError):
    """A packet that is not a valid probe packet, or a bad flow id / size."""


@dataclass(frozen=True)
class ProbePacket:
    """The decoded header of one probe packet."""

    flow: str
    seq: int
    send_t: float


@dataclass(frozen=True)
class ProbeRow:
    """One row of ``probes/<flow>.csv``; ``recv_t`` is None when lost or never sent (``error`` set)."""

    seq: int
    send_t: float
    recv_t: float | None
    path: str
    family: int
    error: str = ""


def check_flow(flow: str) -> str:
    """Return ``flow`` if it is a valid flow id (1..16 chars of ``[A-Za-z0-9._:+-]``), else raise."""
    if not FLOW_RE.fullmatch(flow):
        raise ProbeFormatError(f"bad flow id {flow!r}: want 1..16 characters of A-Z a-z 0-9 . _ : + -")
    return flow


def check_size(size: int) -> int:
    """Return ``size`` if it is a valid payload size, else raise."""
    if not HEADER_SIZE <= size <= MAX_SIZE:
        raise ProbeFormatError(f"bad size {size}: want {HEADER_SIZE}..{MAX_SIZE} bytes")
    return size


class PacketBuilder:
    """Builds the packets of one flow quickly (flow id and padding prepared once)."""

    def __init__(self, flow: str, size: int = DEFAULT_SIZE) -> None:
        self.flow = check_flow(flow)
        self.size = check_size(size)
        self._flow_b = flow.encode("ascii")
        self._pad = bytes(size - HEADER_SIZE)

    def build(self, seq: int, send_t: float) -> bytes:
        """The payload for ``seq`` stamped ``send_t``."""
        return HEADER.pack(MAGIC, VERSION, self._flow_b, seq, send_t) + self._pad


def encode(flow: str, seq: int, send_t: float, size: int = DEFAULT_SIZE) -> bytes:
    """Encode one probe packet of ``size`` payload bytes."""
    if not 0 <= seq <= MAX_SEQ:
        raise ProbeFormatError(f"bad seq {seq}")
    return PacketBuilder(flow, size).build(seq, send_t)


def decode(data: bytes) -> ProbePacket:
    """Decode a probe packet's header; raise ProbeFormatError when it is not one."""
    if len(data) < HEADER_SIZE:
        raise ProbeFormatError(f"short packet ({len(data)} bytes)")
    magic, version, flow_b, seq, send_t = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ProbeFormatError("bad magic")
    if version != VERSION:
        raise ProbeFormatError(f"unknown version {version}")
    flow = flow_b.rstrip(b"\0").decode("ascii", "replace")
    if not FLOW_RE.fullmatch(flow):
        raise ProbeFormatError("bad flow id")
    return ProbePacket(flow, seq, send_t)


def fmt_t(t: float) -> str:
    """A time as written in the logs (nanosecond resolution, like the clock)."""
    return f"{t:.9f}"


def _rows(path: Path, header: str) -> Iterator[list[str]]:
    """Split the data lines of a log; the header line is skipped, a truncated last line is not special."""
    with open(path, encoding="ascii", errors="replace") as file:
        for line in file:
            line = line.rstrip("\r\n")
            if line and line != header:
                yield line.split(",")


def read_send_log(path: Path) -> dict[int, tuple[float, str]]:
    """Map seq → (send_t, error) from a sender log; malformed lines (e.g. a cut last line) are skipped."""
    sent: dict[int, tuple[float, str]] = {}
    for fields in _rows(path, SEND_LOG_HEADER):
        if len(fields) != 3:
            continue
        try:
            sent[int(fields[0])] = (float(fields[1]), fields[2])
        except ValueError:
            continue
    return sent


def read_recv_log(path: Path, flow: str) -> Iterator[tuple[int, float, float]]:
    """Yield (seq, send_t, recv_t) of ``flow`` from a receiver log; malformed lines are skipped."""
    for fields in _rows(path, RECV_LOG_HEADER):
        if len(fields) != 4 or fields[0] != flow:
            continue
        try:
            yield int(fields[1]), float(fields[2]), float(fields[3])
        except ValueError:
            continue


def _family(family: int) -> int:
    """Normalise 4 / 6 / AF_INET / AF_INET6 to 4 or 6."""
    if family in (4, socket.AF_INET):
        return 4
    if family in (6, socket.AF_INET6):
        return 6
    raise ValueError(f"bad family {family}: want 4, 6, AF_INET or AF_INET6")


def merge(
    send_log: Path,
    recv_logs: list[Path],
    flow: str,
    attachment_at: Callable[[float], str],
    family: int,
) -> list[ProbeRow]:
    """Join one flow's sender log and receiver logs into ``probes/<flow>.csv`` rows, in seq order.

    One row per sent seq (failed sends included, with ``recv_t`` None); a lost packet has ``recv_t`` None;
    a packet received n times (duplicates, possibly from several receiver logs) gives n rows, ordered by
    ``recv_t``. A packet received but missing from the sender log (sender killed before flushing) still
    gets a row, with the ``send_t`` it carried. ``path`` is ``attachment_at(recv_t or send_t)``;
    ``family`` is 4 or 6 (AF_INET / AF_INET6 accepted).
    """
    fam = _family(family)
    sent = read_send_log(send_log)
    received: dict[int, list[tuple[float, float]]] = {}
    for log in recv_logs:
        for seq, send_t, recv_t in read_recv_log(log, flow):
            received.setdefault(seq, []).append((recv_t, send_t))
    rows: list[ProbeRow] = []
    for seq in sorted(sent.keys() | received.keys()):
        copies = sorted(received.get(seq, ()))
        if seq in sent:
            send_t, error = sent[seq]
        else:
            send_t, error = copies[0][1], ""
        if not copies:
            rows.append(ProbeRow(seq, send_t, None, attachment_at(send_t), fam, error))
        for recv_t, _ in copies:
            rows.append(ProbeRow(seq, send_t, recv_t, attachment_at(recv_t), fam, error))
    return rows


def write_flow_csv(rows: list[ProbeRow], path: Path) -> None:
    """Write ``rows`` as ``probes/<flow>.csv`` (header ``seq,send_t,recv_t,path,family``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as file:
        file.write(FLOW_CSV_HEADER + "\n")
        for row in rows:
            recv = "" if row.recv_t is None else fmt_t(row.recv_t)
            file.write(f"{row.seq},{fmt_t(row.send_t)},{recv},{_csv_field(row.path)},{row.family}\n")


def _csv_field(value: str) -> str:
    """Quote a path label only if it needs it (labels are normally plain names like ``fa1``)."""
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value
