"""SIGTERM as an exception (:class:`Interrupted`), so a terminated scenario tears down and exits like one
interrupted with Ctrl-C (which raises KeyboardInterrupt)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Interrupted(BaseException):
    """SIGTERM arrived (SIGINT raises KeyboardInterrupt); the testbed tears down on the way out.

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way swallows it."""


def raise_interrupted(_signum: int, _frame: FrameType | None) -> None:
    raise Interrupted("SIGTERM")


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Interrupted`; the previous handler comes back after."""
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
