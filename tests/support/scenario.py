"""Run ``python -m scenarios.handover`` from tests as a user runs it, and read what it leaves behind.

The scenario is a subprocess of this interpreter in the repository. It is only ever stopped through its own
handle: on a timeout SIGINT first (so it tears down), SIGKILL only if that does not end it.
:func:`tshark_fields` reads its pcaps with tshark and our DSMIPv4 dissector.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reports.wireshark import tshark_args
from topologies.nodes import start_scale

REPO = Path(__file__).resolve().parents[2]
FLOWS = ("v4-down", "v4-up", "v6-down", "v6-up")
ROUTE = (("home", "fa1"), ("fa1", "fa2"), ("fa2", "home"))
"""One cycle of the handover scenario: (from, to) of each move."""


@dataclass(frozen=True)
class Finished:
    """A finished scenario process: what it printed and how it ended."""

    argv: list[str]
    pid: int
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    def explain(self) -> str:
        """For assertion messages: the exit status and the tails of both streams."""
        state = "timed out, then " if self.timed_out else ""
        return (
            f"{' '.join(self.argv[1:])}: {state}exit status {self.returncode}\n"
            f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )


class ScenarioProcess:
    """``python -m scenarios.<scenario> ARGS`` running; stdout is collected line by line as it comes."""

    def __init__(
        self, args: Sequence[str], *, env: Mapping[str, str] | None = None, scenario: str = "handover"
    ) -> None:
        self.argv = [sys.executable, "-m", f"scenarios.{scenario}", *args]
        self.popen = subprocess.Popen(
            self.argv,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else None,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_errors, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def _read_errors(self) -> None:
        assert self.popen.stderr is not None
        self.errors.extend(self.popen.stderr)

    def wait_for_output(self, text: str, timeout: float) -> bool:
        """True once a stdout line contains ``text``; False at the timeout or when stdout ends first."""

        def seen() -> bool:
            return any(text in line for line in self.lines)

        with self._changed:
            self._changed.wait_for(lambda: seen() or self._eof, timeout * start_scale())
            return seen()

    def finish(self, timeout: float) -> Finished:
        """Wait for the exit; past ``timeout`` (scaled by DSMIP_START_SCALE: an emulated VM runs everything
        several times slower) interrupt it (SIGINT, then SIGKILL) and say so."""
        timed_out = False
        try:
            self.popen.wait(timeout * start_scale())
        except subprocess.TimeoutExpired:
            timed_out = True
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for reader in self._readers:
            reader.join(10)
        stdout, stderr = "".join(self.lines), "".join(self.errors)
        return Finished(self.argv, self.pid, self.popen.returncode, stdout, stderr, timed_out=timed_out)


def run_scenario(
    args: Sequence[str],
    *,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    scenario: str = "handover",
) -> Finished:
    """Run the scenario to its end (see :class:`ScenarioProcess`)."""
    return ScenarioProcess(args, env=env, scenario=scenario).finish(timeout)


def tshark_fields(
    pcap: Path,
    fields: Sequence[str],
    home: Path,
    display_filter: str | None = None,
    extra: Sequence[str] = (),
) -> list[dict[str, list[str]]]:
    """One dict per packet of ``pcap``: field → every value it has in the packet (outer header first),
    decoded by tshark with our DSMIPv4 dissector; ``home`` is tshark's HOME (no personal profile);
    ``extra``: more tshark options (e.g. ``-d`` Decode As)."""
    argv = ["tshark", *tshark_args(), *extra, "-n", "-r", str(pcap), "-T", "fields"]
    argv += ["-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in fields:
        argv += ["-e", name]
    if display_filter is not None:
        argv += ["-Y", display_filter]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=os.environ | {"HOME": str(home)}, check=False
    )
    assert result.returncode == 0 and "Lua" not in result.stderr, f"{argv}: {result.stderr}"
    packets = []
    for line in result.stdout.splitlines():
        values = line.split("\t")
        packets.append(
            {name: [v for v in value.split(",") if v] for name, value in zip(fields, values, strict=True)}
        )
    return packets
