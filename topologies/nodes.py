"""Mininet hosts that run our agents and helper processes, and the handles that stop exactly those.

Every process is started with the node's ``popen`` (``mnexec -da <pid>``, which execs the command, so the
handle's pid is the program itself) and stopped through that one handle: SIGTERM, a wait, then SIGKILL of
that same handle only. Nothing is ever killed by name or pattern.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from mininet.node import Host

READY = b"READY"
LOG_TAIL_LINES = 20
START_SCALE_ENV = "DSMIP_START_SCALE"
"""Environment variable: a factor (1 to 20) on every wait for a started process's ready line. An emulated VM
(tools/vm with TCG) imports Python modules ten times slower than the host; ``./testbed vm`` sets it there."""


def start_scale(environ: dict[str, str] | None = None) -> float:
    """The factor of :data:`START_SCALE_ENV` (1 when unset); a bad value is refused with its name."""
    text = (os.environ if environ is None else environ).get(START_SCALE_ENV, "").strip()
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1.0 <= value <= 20.0:
        raise ValueError(f"{START_SCALE_ENV}={text!r}: give a number from 1 to 20")
    return value


class ProcessStartError(RuntimeError):
    """A process did not come up (no ready line in time, or it exited); the message has its log's tail."""


class ManagedProcess:
    """A process this program started inside a node; ``log`` is the file its output appends to."""

    def __init__(
        self, name: str, popen: subprocess.Popen[bytes], log_path: Path | None, log: IO[bytes] | None = None
    ) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self._log = log
        self._drain: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM our own handle, wait ``timeout`` s, then SIGKILL that handle; returns the exit code
        (negative: the signal that ended it)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self._drain is not None:
            self._drain.join(timeout=2.0)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()
        if self._log is not None:
            self._log.close()
        return int(self.popen.returncode)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(log is empty)"

    def wait_for_line(self, stream: IO[bytes], prefix: bytes, timeout: float) -> bool:
        """Read ``stream`` until a line starting with ``prefix``; then copy the rest of it to the log (or
        discard it) in a thread, so the process never blocks on a full pipe. False on timeout or EOF."""
        deadline = time.monotonic() + timeout
        buffer = b""
        fd = stream.fileno()
        while True:
            lines = buffer.split(b"\n")
            found = next((i for i, line in enumerate(lines[:-1]) if line.strip().startswith(prefix)), None)
            if found is not None:
                rest = b"\n".join(lines[found + 1 :])
                self._drain = threading.Thread(target=_copy, args=(fd, rest, self._log), daemon=True)
                self._drain.start()
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([fd], [], [], min(left, 0.2))
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return False
                buffer += chunk


class AgentProcess(ManagedProcess):
    """A running ``python -m agents <role>``: its handle and its files."""

    def __init__(
        self,
        name: str,
        popen: subprocess.Popen[bytes],
        log_path: Path,
        log: IO[bytes] | None,
        *,
        role: str,
        files: tuple[Path, Path, Path],
    ) -> None:
        super().__init__(name, popen, log_path, log)
        self.role = role
        self.config_path, self.trace_path, self.control_path = files


def _copy(fd: int, first: bytes, log: IO[bytes] | None) -> None:
    """Copy ``first`` and then everything read from ``fd`` to ``log`` until EOF (or discard it)."""
    chunk = first
    while True:
        if chunk and log is not None:
            try:
                log.write(chunk)
                log.flush()
            except (OSError, ValueError):  # closed by stop()
                return
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return


class AgentHost(Host):  # type: ignore[misc]  # mininet has no type information
    """A Mininet host that starts agents and helper processes it can stop again."""

    def start_process(
        self,
        argv: Sequence[str],
        log_path: Path | None = None,
        *,
        ready: bytes | None = None,
        ready_on: str = "stdout",
        stdout_path: Path | None = None,
        timeout: float = 15.0,
    ) -> ManagedProcess:
        """Start ``argv`` in this node. stderr (and stdout unless ``stdout_path``) append to ``log_path``.
        With ``ready``, wait for a line starting with it on ``ready_on`` (``stdout``/``stderr``), e.g.
        tcpdump's ``b"listening on"`` on stderr; on timeout the process is stopped and
        :class:`ProcessStartError` raised with the log's tail."""
        if ready_on not in ("stdout", "stderr"):
            raise ValueError(f"ready_on {ready_on!r}: use 'stdout' or 'stderr'")
        popen, log = self._spawn(argv, log_path, stdout_path, ready_on if ready else None)
        process = ManagedProcess(self.name, popen, log_path, log)
        if ready is not None:
            self._await(process, ready, ready_on, timeout, " ".join(argv))
        return process

    def start_agent(
        self,
        role: str,
        config_path: Path,
        trace_path: Path,
        control_path: Path,
        log_path: Path,
        timeout: float = 15,
    ) -> AgentProcess:
        """``python -m agents <role>`` with these files; returns once it printed READY (design §5)."""
        argv = [sys.executable, "-m", "agents", role, "--config", str(config_path)]
        argv += ["--trace", str(trace_path), "--control", str(control_path)]
        popen, log = self._spawn(argv, log_path, None, "stdout")
        files = (config_path, trace_path, control_path)
        process = AgentProcess(self.name, popen, log_path, log, role=role, files=files)
        self._await(process, READY, "stdout", timeout, f"{role} agent")
        return process

    def _spawn(
        self, argv: Sequence[str], log_path: Path | None, stdout_path: Path | None, piped: str | None
    ) -> tuple[subprocess.Popen[bytes], IO[bytes] | None]:
        """Popen in this node's namespaces; the log stays open (ours) only while a pipe is drained into it."""
        log = log_path.open("ab") if log_path is not None else None
        out = stdout_path.open("ab") if stdout_path is not None else None
        try:
            sink: IO[bytes] | int = log if log is not None else subprocess.DEVNULL
            stdout = subprocess.PIPE if piped == "stdout" else (out or sink)
            stderr = subprocess.PIPE if piped == "stderr" else sink
            popen: subprocess.Popen[bytes] = self.popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
            )
        except BaseException:
            if log is not None:
                log.close()
            raise
        finally:
            if out is not None:
                out.close()
        if piped is None and log is not None:
            log.close()
            log = None
        return popen, log

    def _await(self, process: ManagedProcess, ready: bytes, ready_on: str, timeout: float, what: str) -> None:
        stream = process.popen.stdout if ready_on == "stdout" else process.popen.stderr
        assert stream is not None
        try:
            timeout *= start_scale()
        except ValueError:
            process.stop()
            raise
        try:
            came_up = process.wait_for_line(stream, ready, timeout)
        except BaseException:  # Ctrl-C or SIGTERM while waiting: nobody else holds this handle yet
            process.stop()
            raise
        if not came_up:
            code = process.stop()
            raise ProcessStartError(
                f"{self.name}: {what} did not print {ready.decode()!r} within {timeout:g} s (exit code "
                f"{code}); last lines of {process.log_path}:\n{process.log_tail()}"
            )


class RouterHost(AgentHost):
    """A host that forwards IPv4 and IPv6 (the core router, the NAT)."""

    def config(self, **params: Any) -> Any:
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
        return result
