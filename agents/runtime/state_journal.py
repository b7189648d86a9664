"""The last state of each key (a home address) in a :class:`~agents.runtime.journal.Journal`.

An agent describes the state of one key as a record (``record_of``); :meth:`StateJournal.write` appends
it unless it equals the last one written for that key, and compacts the file once the appends outnumber
the live keys by far. A ``sysctls`` record holds the values the first of a line of crashed agents found
before changing them. Write errors are logged, never raised: the agent keeps serving without durability.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Generic, TypeVar

from agents.runtime.journal import ClockReader, Clocks, Journal, JournalRead, Record, read_journal

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
COMPACT_AFTER = 1000
"""Appends after which the file is rewritten with only the current state (plus 4 per live key)."""


class StateJournal(Generic[K]):
    """Durable per-key state records; ``record_of`` is set by :meth:`attach` once the machine exists."""

    def __init__(self, path: Path, now: Callable[[], float]) -> None:
        self.path = path
        self.journal = Journal(path)
        self.clocks = ClockReader(now)
        self.sysctls: dict[str, str] = {}
        self.record_of: Callable[[K, Clocks], Record] | None = None
        self.live: Callable[[Record], bool] = lambda _record: True
        """Which records a compaction keeps (a removal record need not be kept)."""
        self._last: dict[K, Record] = {}
        self._failed = False

    def read(self) -> JournalRead:
        return read_journal(self.path)

    def _record(self, key: K, clocks: Clocks) -> Record:
        if self.record_of is None:
            raise RuntimeError("journal written before attach()")
        return self.record_of(key, clocks)

    def write(self, key: K) -> None:
        """Append the state of ``key`` if it changed since the last record written for it."""
        record = self._record(key, self.clocks())
        if self._last.get(key) == record:
            return
        self._append(record)
        self._last[key] = record
        if self.journal.appended > COMPACT_AFTER + 4 * len(self._last):
            self.compact(self._last)

    def record_sysctls(self, originals: dict[str, str]) -> None:
        self.sysctls = dict(originals)
        self._append({"kind": "sysctls", "originals": self.sysctls})

    def compact(self, keys: Iterable[K]) -> None:
        """Rewrite the file with the sysctl originals and the current, live state of ``keys`` only."""
        clocks = self.clocks()
        current = {key: self._record(key, clocks) for key in set(keys)}
        kept = {key: record for key, record in current.items() if self.live(record)}
        try:
            self.journal.rewrite([{"kind": "sysctls", "originals": self.sysctls}, *kept.values()])
        except OSError as error:
            logger.error("journal %s: cannot rewrite: %s", self.path, error)
            return
        self._last = kept

    def _append(self, record: Record) -> None:
        try:
            self.journal.append(record)
            self._failed = False
        except OSError as error:
            if not self._failed:  # one line per failure streak, not one per registration
                logger.error("journal %s: cannot write (state is not durable): %s", self.path, error)
            self._failed = True

    def close(self) -> None:
        self.journal.close()
