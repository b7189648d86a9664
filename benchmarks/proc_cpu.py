"""CPU time of processes and threads from ``/proc`` (Linux), for benchmarks that divide it by the work done:
on a shared machine it moves far less than a rate does."""

from __future__ import annotations

import os
from pathlib import Path


def stat_cpu_seconds(stat: Path) -> float:
    """User + system CPU seconds in one ``/proc/PID/stat`` or ``/proc/PID/task/TID/stat`` file (utime and
    stime, fields 14 and 15; the command name before them may hold spaces, so fields count from its ``)``)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main_thread_cpu(pid: int) -> float:
    """Seconds of CPU the main thread of process ``pid`` has used (``/proc/PID/task/PID/schedstat``, ns)."""
    return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0]) / 1e9
