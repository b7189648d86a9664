"""What a scenario prints while it runs: timestamped progress lines on stdout (``-q`` hides them,
``-v`` adds the detail lines)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, verbose: bool = False, quiet: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"[{self.elapsed():6.1f} s] {message}", flush=True)

    def detail(self, message: str) -> None:
        if self.verbose:
            self.say(message)

    def always(self, message: str) -> None:
        print(message, flush=True)

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)
