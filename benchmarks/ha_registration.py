"""Home agent registration throughput and reply latency, end to end through the real agent (needs root).

    sudo .venv/bin/python -m benchmarks.ha_registration [--bindings 10000] [--runs 5] [--seconds 2]
        [--latency-runs 3] [--latency-seconds 5] [--rate 1000] [--window 64] [--trace-modes plain,trace]

Builds two namespaces of its own (:mod:`benchmarks.ha_testbed`), writes a home agent config with
``--bindings`` mobile-node accounts and starts ``python -m agents ha`` in one of them, once without and
once with ``--trace`` (trace lines cost I/O). From the other namespace (:mod:`benchmarks.registration_load`),
for each agent:

1. one authenticated registration (co-located care-of, D|T, one IPv6 Prefix Request, RFC 5454 §3.1):
   the baseline table of 1 binding; its reply's MN-HA authenticator is verified (RFC 5944 §3.5.2);
2. throughput: re-registrations with ``--window`` requests outstanding, replies with code 0 per second,
   median of ``--runs``; then latency: ``--rate`` requests a second paced for ``--latency-seconds``, reply
   latency p50 / p99 (median over ``--latency-runs``);
3. the table filled to ``--bindings`` bindings (new registrations per second reported too), checked over
   the control socket, and step 2 again, the re-registrations cycling over every mobile node.

The agent's CPU time (all threads, ``/proc/PID/stat``) over the fill is printed per new binding too: on a
shared machine it moves much less than the rate. ``--agent-tree DIR`` runs the agent from another checkout
(its ``agents`` package and ``build/bpf``), so a baseline tree is measured by this same harness.

Prints one table. The agent is stopped with SIGTERM by its PID and the namespaces are deleted on exit,
also on failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import select
import signal
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from agents.mip.wire.auth import verify_with
from agents.mip.wire.codes import ExtensionType
from agents.net.netlink import netns_entered
from benchmarks.ha_testbed import CLIENT_ADDRESS, FIRST_HOME, HA_ADDRESS, Agent, Testbed, ha_config
from benchmarks.proc_cpu import main_thread_cpu
from benchmarks.registration_load import (
    MobileNodes,
    drain,
    open_client,
    percentile,
    run_paced,
    run_window,
)

FILL_CHUNK_SECONDS = 2.0
"""A fill chunk is sized to take about this long, so its timestamps stay inside the 7 s tolerance."""


@dataclass
class TableFigures:
    """What one table size gave: throughput (median, and every run), latency p50/p99 (medians), losses."""

    throughput: float = 0.0
    runs: list[float] = field(default_factory=list)
    p50: float = float("nan")
    p99: float = float("nan")
    p50_runs: list[float] = field(default_factory=list)
    p99_runs: list[float] = field(default_factory=list)
    lost: int = 0
    refused: int = 0
    cpu_per_reply: float = float("nan")
    """The agent's main-thread CPU (µs) per accepted reply over the throughput runs (median of the runs):
    unlike a rate, it hardly moves when other processes share the CPUs."""
    cpu_runs: list[float] = field(default_factory=list)


@dataclass
class AgentFigures:
    """One agent process: the baseline (1 binding), the loaded table, the fill rate, trace and stop."""

    baseline: TableFigures
    loaded: TableFigures | None = None
    fill_rate: float = 0.0
    filled: int = 1
    fill_cpu: float = 0.0
    """The agent's CPU seconds (all threads) during the fill: less moved by other jobs than the rate."""
    trace_bytes: int = 0
    stop_seconds: float = 0.0
    exit_code: int | None = None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindings", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5, help="throughput runs per table size")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one throughput run")
    parser.add_argument("--requests", type=int, default=40_000, help="most requests built for one run")
    parser.add_argument("--window", type=int, default=64, help="requests outstanding in a throughput run")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered rate of the latency runs")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--latency-runs", type=int, default=3)
    parser.add_argument("--fill-timeout", type=float, default=240.0, help="give up filling after this")
    parser.add_argument("--trace-modes", default="plain,trace", help="plain, trace or both (comma-separated)")
    parser.add_argument(
        "--datapath", default="userspace", help="userspace, ebpf or both (comma-separated): one agent each"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="write CPU profiles of each agent to this directory: <label>-1.prof (1 binding), -2 (fill), "
        "-3 (full table); see benchmarks/profile_agent.py",
    )
    parser.add_argument("--keep-logs", type=Path, help="copy the agents' stderr logs to this directory")
    parser.add_argument(
        "--agent-tree",
        type=Path,
        help="run the home agent from this checkout (e.g. a baseline tree, for an A/B with this harness)",
    )
    args = parser.parse_args(argv)
    args.trace_modes = [mode.strip() for mode in args.trace_modes.split(",") if mode.strip()]
    args.datapaths = [name.strip() for name in args.datapath.split(",") if name.strip()]
    if not set(args.trace_modes) <= {"plain", "trace"} or args.bindings < 1:
        parser.error("--trace-modes takes plain and/or trace; --bindings must be at least 1")
    if not args.datapaths or not set(args.datapaths) <= {"userspace", "ebpf"}:
        parser.error("--datapath takes userspace and/or ebpf")
    if args.agent_tree is not None and not (args.agent_tree / "agents" / "__main__.py").is_file():
        parser.error(f"--agent-tree {args.agent_tree}: no agents package there")
    return args


class Cursor:
    """Which mobile nodes the next batch of re-registrations goes to (round robin over the table)."""

    def __init__(self, bound: int) -> None:
        self._indices = itertools.cycle(range(bound))

    def take(self, count: int) -> list[int]:
        return list(itertools.islice(self._indices, count))


def register_first(sock: socket.socket, nodes: MobileNodes) -> None:
    """Register mobile node 0 and check its reply: code 0, MN-HA authenticator valid (RFC 5944 §3.5.2)."""
    sock.send(nodes.batch([0])[0])
    if not select.select([sock], [], [], 5.0)[0]:
        raise RuntimeError("no reply to the first registration")
    reply = sock.recv(2048)
    if reply[1] != 0 or not verify_with(reply, ExtensionType.MOBILE_HOME_AUTH, nodes.association(0)):
        raise RuntimeError(f"first registration refused or badly signed: code {reply[1]}")


def fill(sock: socket.socket, nodes: MobileNodes, args: argparse.Namespace) -> tuple[int, float]:
    """Register mobile nodes 1.. until ``--bindings`` are in the table; (bindings, new per second).

    Chunks are sized from the rate so far so that no request waits long enough to fall outside the
    timestamp tolerance; a request that is refused anyway is retried in the next chunk.
    """
    missing, registered, chunk = list(range(1, nodes.count)), 1, 200
    start = time.perf_counter()
    while missing and time.perf_counter() - start < args.fill_timeout:
        indices, missing = missing[:chunk], missing[chunk:]
        drain(sock, 0.05)
        result = run_window(sock, nodes.batch(indices), args.window, 3 * FILL_CHUNK_SECONDS)
        registered += result.accepted
        if result.accepted < len(indices):  # which ones? ask again for the whole chunk (idempotent)
            missing = indices + missing
            registered -= result.accepted
        rate = result.accepted / result.elapsed if result.elapsed else 0.0
        chunk = max(50, min(5000, int(rate * FILL_CHUNK_SECONDS)))
    registered = min(registered, nodes.count)  # late replies to a chunk counted lost are counted again
    return registered, (registered - 1) / (time.perf_counter() - start)


def measure_table(
    sock: socket.socket, nodes: MobileNodes, bound: int, args: argparse.Namespace, pid: int
) -> TableFigures:
    """Throughput (windowed re-registrations) and latency (paced) with ``bound`` bindings in the table;
    the agent's (``pid``) main-thread CPU per accepted reply during the throughput runs."""
    figures, cursor = TableFigures(), Cursor(bound)
    for _ in range(args.runs):
        drain(sock)
        wires = nodes.batch(cursor.take(args.requests))
        cpu = main_thread_cpu(pid)
        result = run_window(sock, wires, args.window, args.seconds)
        drain(sock, 0.05)  # the agent's work on the last requests of the window is counted too
        if result.accepted:
            figures.cpu_runs.append((main_thread_cpu(pid) - cpu) / result.accepted * 1e6)
        figures.runs.append(result.rate)
        figures.refused += result.refused
    figures.throughput = statistics.median(figures.runs)
    if figures.cpu_runs:
        figures.cpu_per_reply = statistics.median(figures.cpu_runs)
    p50s, p99s = figures.p50_runs, figures.p99_runs
    for _ in range(args.latency_runs):
        drain(sock)
        count = int(args.rate * args.latency_seconds)
        paced = run_paced(sock, nodes.batch(cursor.take(count), 1 / args.rate), args.rate)
        p50s.append(percentile(paced.latencies, 0.50))
        p99s.append(percentile(paced.latencies, 0.99))
        figures.lost += paced.lost
    figures.p50, figures.p99 = statistics.median(p50s), statistics.median(p99s)
    return figures


def measure_agent(bed: Testbed, config: Path, label: str, args: argparse.Namespace) -> AgentFigures:
    """Start one agent (``label`` = datapath/plain or datapath/trace), measure 1 binding, fill, measure the
    full table, stop."""
    mode = label
    agent = bed.start_agent(
        config, label.replace("/", "-"), trace=label.endswith("trace"), profile=args.profile
    )
    with netns_entered(bed.mn):
        sock = open_client(CLIENT_ADDRESS, HA_ADDRESS)
    nodes = MobileNodes(args.bindings, HA_ADDRESS, FIRST_HOME)
    profiled = (
        _phases(agent, args.profile / label.replace("/", "-")) if args.profile else contextlib.nullcontext
    )
    try:
        register_first(sock, nodes)
        with profiled():  # <label>-1.prof
            figures = AgentFigures(measure_table(sock, nodes, 1, args, agent.process.pid))
        print(f"[{mode}] 1 binding: {_describe(figures.baseline)}", file=sys.stderr, flush=True)
        if args.bindings > 1:
            with profiled():  # <label>-2.prof
                cpu = agent.cpu_seconds()
                figures.filled, figures.fill_rate = fill(sock, nodes, args)
                figures.fill_cpu = agent.cpu_seconds() - cpu
            _check_table(agent, figures.filled)
            print(
                f"[{mode}] filled {figures.filled:,} bindings at {figures.fill_rate:,.0f}/s, "
                f"{_per_binding(figures)} µs agent CPU each",
                file=sys.stderr,
                flush=True,
            )
            if figures.filled == args.bindings:
                with profiled():  # <label>-3.prof
                    figures.loaded = measure_table(sock, nodes, args.bindings, args, agent.process.pid)
                print(
                    f"[{mode}] {args.bindings:,} bindings: {_describe(figures.loaded)}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        sock.close()
        began = time.perf_counter()
        code = agent.stop()
    figures.stop_seconds, figures.exit_code = time.perf_counter() - began, code
    figures.trace_bytes = bed.trace_size(label.replace("/", "-"))
    return figures


def _phases(agent: Agent, prefix: Path) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """One profiled phase of ``agent`` per ``with`` (:mod:`benchmarks.profile_agent`): ``prefix``-1.prof,
    -2, ..."""
    count = itertools.count(1)

    @contextlib.contextmanager
    def phase() -> Iterator[None]:
        number = next(count)
        agent.profile_phase(prefix, number, start=True)
        try:
            yield
        finally:
            agent.profile_phase(prefix, number, start=False)

    return phase


def _check_table(agent: Agent, expected: int) -> None:
    away = len(agent.ask("status")["away"])
    if away != expected:
        raise RuntimeError(f"the home agent reports {away} mobile nodes away, expected {expected}")


def _describe(figures: TableFigures) -> str:
    runs = ", ".join(f"{rate:,.0f}" for rate in figures.runs)
    p99s = ", ".join(f"{p99 * 1e3:.2f}" for p99 in figures.p99_runs)
    return (
        f"{figures.throughput:,.0f}/s (runs {runs}); CPU {figures.cpu_per_reply:.0f} µs/reply; "
        f"p50 {figures.p50 * 1e3:.2f} ms, "
        f"p99 {figures.p99 * 1e3:.2f} ms (runs {p99s}); lost {figures.lost}, refused {figures.refused}"
    )


def print_table(results: dict[str, AgentFigures], args: argparse.Namespace) -> None:
    """One column per agent (plain, trace), one row per figure."""
    figures = list(results.values())
    loaded = f"{args.bindings:,} bindings"
    rows: list[tuple[str, list[str]]] = [
        ("throughput, 1 binding (reg/s)", [f"{f.baseline.throughput:,.0f}" for f in figures]),
        (f"throughput, {loaded} (reg/s)", [_throughput(f.loaded) for f in figures]),
        ("main-thread CPU per reply, 1 binding (µs)", [_cpu(f.baseline) for f in figures]),
        (f"main-thread CPU per reply, {loaded} (µs)", [_cpu(f.loaded) for f in figures]),
        (f"p50 / p99 at {args.rate:,.0f}/s, 1 binding (ms)", [_latency(f.baseline) for f in figures]),
        (f"p50 / p99 at {args.rate:,.0f}/s, {loaded} (ms)", [_latency(f.loaded) for f in figures]),
        ("fill: new bindings/s (bindings)", [f"{f.fill_rate:,.0f} ({f.filled:,})" for f in figures]),
        ("fill: agent CPU per new binding (µs)", [_per_binding(f) for f in figures]),
    ]
    if args.bindings == 1:
        rows = [rows[0], rows[2], rows[4]]
    rows += [
        ("lost / refused replies", [_losses(f) for f in figures]),
        ("trace written (MB)", [f"{f.trace_bytes / 1e6:.1f}" for f in figures]),
        ("agent stop: seconds, exit code", [f"{f.stop_seconds:.1f}, {f.exit_code}" for f in figures]),
    ]
    width = max(len(label) for label, _ in rows) + 2
    print(
        f"\nHA registration, {os.cpu_count()} CPUs; throughput median of {args.runs} x {args.seconds:g} s "
        f"(window {args.window}); latency median of {args.latency_runs} x {args.latency_seconds:g} s"
    )
    print(" " * width + "".join(f"{mode:>20}" for mode in results))
    for label, values in rows:
        print(f"{label:<{width}}" + "".join(f"{value:>20}" for value in values))


def _per_binding(figures: AgentFigures) -> str:
    new = figures.filled - 1
    return f"{figures.fill_cpu / new * 1e6:,.0f}" if new > 0 else "n/a"


def _throughput(figures: TableFigures | None) -> str:
    return "n/a" if figures is None else f"{figures.throughput:,.0f}"


def _cpu(figures: TableFigures | None) -> str:
    return "n/a" if figures is None else f"{figures.cpu_per_reply:,.0f}"


def _latency(figures: TableFigures | None) -> str:
    return "n/a" if figures is None else f"{figures.p50 * 1e3:.2f} / {figures.p99 * 1e3:.2f}"


def _losses(figures: AgentFigures) -> str:
    tables = [figures.baseline] + ([figures.loaded] if figures.loaded else [])
    return f"{sum(t.lost for t in tables)} / {sum(t.refused for t in tables)}"


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("error: needs root (network namespaces, the agent's TUN and raw sockets)", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM cleans up like Ctrl-C
    bed = Testbed(keep_logs=args.keep_logs)
    if args.agent_tree is not None:
        bed.agent_tree = args.agent_tree.resolve()
    try:
        bed.build()
        results = {}
        for datapath in args.datapaths:
            config = bed.workdir / f"ha-{datapath}.toml"
            config.write_text(ha_config(args.bindings, datapath))
            for mode in args.trace_modes:
                label = f"{datapath}/{mode}"
                results[label] = measure_agent(bed, config, label, args)
        print_table(results, args)
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        bed.close()
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
