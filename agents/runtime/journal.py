"""A durable journal: JSON records, one a line, appended and fsync'd before the caller goes on.

Why JSON lines and not sqlite3: the records are few and small (one per registration, renewal or
removal) and are only read back whole, once, at start; nothing queries them. An append is one
``write`` + ``fsync`` of one line, and damage stays local: a crash in the middle of an append leaves at
most a truncated last line, and a garbage line spoils only itself, so the reader skips exactly what it
cannot parse and keeps the rest (a damaged sqlite file tends to be refused whole: "file is not a
database"). The file is readable with ``cat``/``jq`` when a restart behaves oddly. It is rewritten
(compacted) into a temporary file, fsync'd, renamed over the old one and the directory fsync'd, so a
crash during compaction leaves either the old or the new file, never a mix.

Expiry across a restart (:class:`Clocks`): an agent runs on CLOCK_MONOTONIC (``loop.time()``), which
every network namespace shares and wall-clock steps do not move, but which restarts from zero at boot.
Each deadline is saved twice, on CLOCK_MONOTONIC and as Unix time, with the kernel's boot id: within the
same boot the monotonic deadline is restored exactly; after a reboot only the wall clock spans the gap,
so the Unix deadline is used (a wall-clock step while the agent was down then shortens or lengthens the
remaining lifetime by the step). Infinite lifetimes are saved as ``null``.

Reading never raises for bad contents: every unreadable line becomes one entry of
:attr:`JournalRead.problems` (line number and reason), and the caller logs one line about them.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Record = dict[str, Any]
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


@dataclass
class JournalRead:
    """The records that could be read, in file order, and what could not be (line number: reason)."""

    records: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_journal(path: Path) -> JournalRead:
    """Every well-formed record of ``path`` (a JSON object with a string ``kind``); a missing file is an
    empty journal. A last line without its newline is a torn append and is skipped."""
    result = JournalRead()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return result
    except OSError as error:
        result.problems.append(f"cannot read: {error.strerror or error}")
        return result
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, as every complete append does
    for number, line in enumerate(lines, start=1):
        if line.strip():
            _parse_line(line, number, result)
    if torn.strip():
        result.problems.append(f"line {len(lines) + 1}: truncated last record")
    return result


def _parse_line(line: bytes, number: int, result: JournalRead) -> None:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        result.problems.append(f"line {number}: not JSON")
        return
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        result.problems.append(f"line {number}: not a journal record")
        return
    result.records.append(record)


def encode_record(record: Record) -> bytes:
    """One line: compact JSON and a newline (a record never contains a raw newline)."""
    return json.dumps(record, separators=(",", ":"), sort_keys=True).encode() + b"\n"


class Journal:
    """Appends records to ``path`` durably; :meth:`rewrite` replaces the whole file atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.appended = 0
        """Records appended since the file was last rewritten."""
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            self._fd = os.open(self.path, flags, 0o600)
        return self._fd

    def append(self, record: Record) -> None:
        """Write one record and fsync it (OSError if the disk refuses)."""
        fd = self._open()
        line = encode_record(record)
        written = os.write(fd, line)
        if written != len(line):  # O_APPEND regular-file writes are whole unless the disk is full
            raise OSError(f"short write to {self.path} ({written} of {len(line)} bytes)")
        os.fsync(fd)
        self.appended += 1

    def rewrite(self, records: Iterable[Record]) -> None:
        """Replace the file with exactly ``records``: temporary file, fsync, rename, fsync directory."""
        self.close()
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, b"".join(encode_record(record) for record in records))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self.appended = 0

    def close(self) -> None:
        """Close the file (the next append reopens it)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def boot_id() -> str:
    """This boot's id (a new one after every reboot); empty if the kernel does not say."""
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Clocks:
    """The two clocks at one instant, and the boot they belong to."""

    monotonic: float
    unix: float
    boot: str

    def save(self, deadline: float) -> dict[str, Any]:
        """A monotonic deadline as both clocks."""
        if math.isinf(deadline):
            return {"monotonic": None, "unix": None, "boot": self.boot}
        return {"monotonic": deadline, "unix": deadline - self.monotonic + self.unix, "boot": self.boot}

    def load(self, saved: dict[str, Any]) -> float:
        """A saved deadline on this run's monotonic clock (see the module docstring: same boot or not)."""
        if saved["unix"] is None:
            return math.inf
        if self.boot and saved.get("boot") == self.boot and saved.get("monotonic") is not None:
            return float(saved["monotonic"])
        return float(saved["unix"]) - self.unix + self.monotonic


class ClockReader:
    """:class:`Clocks` at the event loop's ``now()``; the wall-clock offset and boot id are read once, so
    an unchanged deadline always gives an equal record."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.wall_offset = time.time() - time.monotonic()
        self.boot = boot_id()

    def __call__(self) -> Clocks:
        now = self.now()
        return Clocks(now, now + self.wall_offset, self.boot)
