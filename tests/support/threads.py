"""Run test code on a thread of its own (the way an agent's worker or a real-time thread would run it) and
re-raise what it raised in the test's thread."""

from __future__ import annotations

import threading
from collections.abc import Callable


def in_another_thread(work: Callable[[], object]) -> None:
    """Run ``work`` on a new thread and re-raise here what it raised."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # handed to the test thread
            failures.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]
