"""What a scenario prints while it runs: timestamped progress lines on stdout (``-q`` hides them,
``-v`` adds the detail lines; with ``--json`` all of it goes to stderr, so stdout is the JSON alone)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, verbose: bool = False, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.verbose = verbose
        self.quiet = quiet
        self.stream = stream
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"[{self.elapsed():6.1f} s] {message}", file=self.stream or sys.stdout, flush=True)

    def detail(self, message: str) -> None:
        if self.verbose:
            self.say(message)

    def always(self, message: str) -> None:
        print(message, file=self.stream or sys.stdout, flush=True)

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)
