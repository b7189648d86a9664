"""Agent trace files: one JSON object per line, stamped with CLOCK_MONOTONIC.

Every agent (and every probe) stamps its trace lines with ``time.clock_gettime(CLOCK_MONOTONIC)``.
Network namespaces share one kernel clock, so lines written by the HA, FA, MN and the probes can be
merged and compared to the microsecond (design.md §5). A line looks like::

    {"t": 1234.567890123, "node": "mn1", "event": "rrq_sent", "coa": "198.51.100.7", ...}

Writing is synchronous and line-buffered (one ``write`` per line, flushed at the newline), which is
cheap enough to do from the event loop and means a killed agent loses at most the lines of the step it
was in: inside :meth:`TraceWriter.held` (one received datagram, timer or link event, see
``MachineDriver.flush``) lines keep the time they were emitted but are written when the step's datagrams
have left, so ~50 µs of JSON and ``write`` per line no longer delay a relayed request or reply (issue 14).
A failing write is logged once and never raises into the agent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from agents.runtime.jsonable import dumps_line

logger = logging.getLogger(__name__)

HEADER_KEYS = ("t", "node", "event")
HEADER_KEYS_SET = frozenset(HEADER_KEYS)


def monotonic_now() -> float:
    """Seconds on the kernel's CLOCK_MONOTONIC: the one clock traces, timers and probes share."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class TraceWriter:
    """Appends trace events for one node to a JSON-lines file; a no-op when ``path`` is None."""

    def __init__(self, path: str | Path | None, node: str) -> None:
        self.node = node
        self.path = Path(path) if path is not None else None
        self._file: TextIO | None = None
        self._write_failed = False
        self._holding = 0
        self._held: list[tuple[float, str, dict[str, Any]]] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    @property
    def enabled(self) -> bool:
        """True while events are being written somewhere."""
        return self._file is not None

    def emit(self, event: str, /, **fields: Any) -> None:
        """Write one event stamped with the current CLOCK_MONOTONIC time."""
        if self._file is not None:
            self._line(monotonic_now(), event, fields)

    def emit_at(self, t: float, event: str, /, **fields: Any) -> None:
        """Write one event with a time the caller took earlier (e.g. when a packet arrived)."""
        if self._file is not None:
            self._line(t, event, fields)

    def _line(self, t: float, event: str, fields: dict[str, Any]) -> None:
        if self._holding:
            self._held.append((t, event, fields))
        else:
            self._write(t, event, fields)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lines emitted inside the block (each keeps its time) and write them, in order, when
        the outermost block ends, whether it ends normally or by an exception."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
            if not self._holding:
                self._write_held()

    def _write_held(self) -> None:
        held, self._held = self._held, []
        for t, event, fields in held:
            if self._file is not None:
                self._write(t, event, fields)

    def close(self) -> None:
        """Write any held lines, flush and close the file; later events are ignored. Safe to call twice."""
        self._write_held()
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                logger.error("closing trace %s failed: %s", self.path, exc)

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write(self, t: float, event: str, fields: dict[str, Any]) -> None:
        assert self._file is not None
        record: dict[str, Any] = {"t": t, "node": self.node, "event": str(event)}  # a TraceEvent → plain str
        if HEADER_KEYS_SET.isdisjoint(fields):  # the usual case: no renaming needed
            record.update(fields)
        else:
            for key, value in fields.items():
                record[_free_key(key, record)] = value
        line = dumps_line(record) + "\n"
        try:
            self._file.write(line)
        except (OSError, ValueError) as exc:  # ValueError: e.g. a lone surrogate the codec refuses
            if not self._write_failed:
                logger.error("writing trace %s failed (further failures not logged): %s", self.path, exc)
            self._write_failed = True


def _free_key(key: str, record: dict[str, Any]) -> str:
    """``key``, renamed with trailing underscores if it would overwrite a header or earlier field."""
    if key in HEADER_KEYS:
        logger.warning("trace field %r clashes with the line header; written as %r", key, key + "_")
    while key in record:
        key += "_"
    return key
