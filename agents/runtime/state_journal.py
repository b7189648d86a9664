"""The last state of each key (a home address) in a :class:`~agents.runtime.journal.Journal`.

An agent describes the state of one key as a record (``record_of``); :meth:`StateJournal.write` appends
it unless it equals the last one written for that key, and compacts the file once the appends outnumber
the live keys by far. A ``sysctls`` record holds the values the first of a line of crashed agents found
before changing them. Write errors are logged, never raised: the agent keeps serving without durability.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from agents.runtime.journal import ClockReader, Clocks, Journal, JournalRead, Record, read_journal

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
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


@dataclass
class FoldedJournal(Generic[K, V]):
    """What a journal says at start: the last state of each key, the sysctl originals, and the records
    that could not be used (a subclass names its entries with :attr:`NOUN`)."""

    entries: dict[K, V]
    sysctls: dict[str, str]
    problems: list[str]
    NOUN: ClassVar[str] = "entry"

    def summary(self, path: Path) -> str:
        """The one-line warning about unusable records (the first three reasons)."""
        shown = "; ".join(self.problems[:3]) + ("; ..." if len(self.problems) > 3 else "")
        return (
            f"journal {path}: skipped {len(self.problems)} unusable record(s) ({shown}); "
            f"starting with {len(self.entries)} {self.NOUN}(s)"
        )


S = TypeVar("S", bound=FoldedJournal)  # type: ignore[type-arg]


def fold_records(
    read: JournalRead, kind: str, entry_of: Callable[[Record], tuple[K, V | None]], state: S
) -> S:
    """Fold ``read`` into ``state``: for each ``kind`` record the key's last state wins (None removes it),
    the last ``sysctls`` record wins, anything else unusable is a problem, never an exception."""
    state.problems.extend(read.problems)
    for record in read.records:
        try:
            if record["kind"] == kind:
                key, value = entry_of(record)
                if value is None:
                    state.entries.pop(key, None)
                else:
                    state.entries[key] = value
            elif record["kind"] == "sysctls":
                state.sysctls = {str(key): str(value) for key, value in dict(record["originals"]).items()}
            else:
                state.problems.append(f"unknown record kind {record['kind']!r}")
        except (KeyError, TypeError, ValueError) as error:
            state.problems.append(f"bad {record['kind']} record: {type(error).__name__}: {error}")
    return state
