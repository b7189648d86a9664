"""Run ``python -m agents ...`` under cProfile, one stats file per phase the benchmark marks (issue 9).

    python -m benchmarks.profile_agent PREFIX -- ha --config FILE ...

The clock is the main thread's CPU time (``time.thread_time``): on a machine loaded by other processes,
time spent waiting for a CPU or in another thread (netlink, packet threads) is not charged to the function
that happened to be running, so profiles from a busy and a quiet run compare. Profiling is off until
SIGUSR1 and SIGUSR2 ends a phase: its stats go to ``PREFIX-<n>.prof`` (n = 1, 2, ...), so the benchmark can
profile the renewals with 1 binding, the fill and the renewals with the full table apart.
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys
import time
from pathlib import Path
from types import FrameType


class PhaseProfiler:
    """cProfile on the main thread's CPU clock, switched on and off by signals."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.phase = 0
        self.profiler: cProfile.Profile | None = None

    def start(self, _signum: int = 0, _frame: FrameType | None = None) -> None:
        """Start phase n+1 and say so in ``PREFIX-<n+1>.running`` (the benchmark waits for it: two
        signals sent before the first is handled would otherwise merge)."""
        if self.profiler is None:
            self.profiler = cProfile.Profile(time.thread_time)
            Path(f"{self.prefix}-{self.phase + 1}.running").touch()
            self.profiler.enable()

    def stop(self, _signum: int = 0, _frame: FrameType | None = None) -> None:
        """End the phase: its stats to ``PREFIX-<n>.prof`` (written whole, then renamed into place)."""
        if self.profiler is not None:
            self.profiler.disable()
            self.phase += 1
            path = Path(f"{self.prefix}-{self.phase}.prof")
            self.profiler.dump_stats(path.with_suffix(".part"))
            path.with_suffix(".part").rename(path)
            Path(f"{self.prefix}-{self.phase}.running").unlink(missing_ok=True)
            self.profiler = None


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        print("usage: python -m benchmarks.profile_agent PREFIX -- ROLE [agent options]", file=sys.stderr)
        return 2
    phases = PhaseProfiler(argv[0])
    signal.signal(signal.SIGUSR1, phases.start)
    signal.signal(signal.SIGUSR2, phases.stop)
    sys.argv = ["agents", *argv[2:]]
    try:
        runpy.run_module("agents", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    finally:
        phases.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
