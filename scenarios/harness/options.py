"""What every scenario command shares: option parsers, the common options, and the ``main`` frame
(preflight → run folder → run; exit codes 0/1/2, 130 after Ctrl-C, 143 after SIGTERM)."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from agents.runtime.scheduling import check_priority
from scenarios.harness.preflight import PreflightError, check_environment
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import RunFolder, run_needs
from scenarios.harness.signals import Interrupted, sigterm_raises

Execute = Callable[[argparse.Namespace, RunFolder, Progress, int, dict[str, Any]], int]
"""A scenario's body: (args, run folder, progress, seed, kernel features) → exit status."""


def whole(text: str, low: int, high: int, unit: str = "") -> int:
    """``text`` as a whole number in ``low..high``; otherwise an error naming the range and the input
    (argparse puts the option's name in front: ``argument --count: must be a whole number ...``)."""
    value = int(text) if text.strip().isdigit() else None
    if value is None or not low <= value <= high:
        unit = f" ({unit})" if unit else ""
        raise argparse.ArgumentTypeError(
            f"must be a whole number between {low} and {high}{unit}, got {text!r}"
        )
    return value


MAX_SEED = 2**32 - 1
"""The largest seed (numpy's generators take 0..2**32-1)."""


def seed(text: str) -> int:
    return whole(text, 0, MAX_SEED, "random seed")


def count(text: str) -> int:
    return whole(text, 1, 1000)


def number(text: str, low: float, high: float, unit: str) -> float:
    """``text`` as a finite number in ``low..high``; otherwise an error naming the range, what the number
    means (``unit``) and the input."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:  # NaN and infinities fail the comparison too
        raise argparse.ArgumentTypeError(
            f"must be a number between {low:g} and {high:g} ({unit}), got {text!r}"
        )
    return value


def choices(text: str, allowed: tuple[str, ...]) -> list[str]:
    """A comma-separated subset of ``allowed`` in ``allowed``'s order; an error naming the unknown ones."""
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in allowed]
    if unknown or not wanted:
        what = f"unknown {', '.join(repr(name) for name in unknown)}" if unknown else f"got {text!r}"
        raise argparse.ArgumentTypeError(f"must be a comma-separated list of {', '.join(allowed)}; {what}")
    return [name for name in allowed if name in wanted]


def seconds(text: str) -> float:
    return number(text, 0.05, 3600, "seconds")


def rate(text: str) -> float:
    return number(text, 1, 20000, "packets per second")


DEFAULT_AGENT_PRIORITY = 10
"""The agents' ``SCHED_FIFO`` priority in scenarios (:mod:`agents.runtime.scheduling`): below the
kernel's own real-time threads (50 and up), above every normal process."""


def agent_priority(text: str) -> int:
    """``--agent-priority``: 0 (normal scheduling) .. 99 (SCHED_FIFO priority), checked as the agents
    check ``realtime_priority`` (:func:`agents.runtime.scheduling.check_priority`)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    try:
        check_priority("priority", value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def add_common_options(parser: argparse.ArgumentParser, scenario: str, default_rate: float) -> None:
    """--out, --rate, --start-timeout, --datapath, --agent-priority, --seed, -v/-q, --json (each scenario adds
    its own --no-pcap: what it still captures differs)."""
    parser.add_argument("--out", type=Path, help=f"run folder (default: reports/runs/{scenario}-<UTC time>)")
    parser.add_argument(
        "--rate", type=rate, default=default_rate, help=f"probe packets/s per flow (default {default_rate:g})"
    )
    parser.add_argument(
        "--start-timeout",
        type=seconds,
        default=60.0,
        help="seconds building and starting the network may take (default 60)",
    )
    parser.add_argument(
        "--datapath",
        choices=("userspace", "ebpf", "kernel", "auto"),
        default="userspace",
        help="tunnel datapath of the HA, MNs and FAs: userspace (default), ebpf (tc programs), kernel "
        "(native tunnel devices, full kernels only; the FAs then run userspace), auto (best here)",
    )
    parser.add_argument(
        "--agent-priority",
        type=agent_priority,
        default=DEFAULT_AGENT_PRIORITY,
        metavar="N",
        help=f"run the agents at SCHED_FIFO priority N, 1-99, so the probes sharing the CPUs do not delay "
        f"their wake-ups; 0: normal scheduling (default {DEFAULT_AGENT_PRIORITY})",
    )
    parser.add_argument(
        "--seed",
        type=seed,
        default=None,
        help=f"random seed, 0..{MAX_SEED} (default: time based, recorded)",
    )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", help="show every step")
    loudness.add_argument("-q", "--quiet", action="store_true", help="print only the verdict and the folder")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON at the end")
    parser.add_argument(
        "--set",
        type=agent_setting,
        action="append",
        default=[],
        metavar="NODE.SECTION.KEY=VALUE",
        help="change one agent config setting, e.g. mn1.mobile_node.reverse_tunnel=false (repeatable)",
    )


def agent_setting(text: str) -> Any:
    """An agent config override (:func:`topologies.overrides.parse_override`) for ``--set``."""
    from topologies.overrides import OverrideError, parse_override

    try:
        return parse_override(text)
    except OverrideError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_timing_options(
    parser: argparse.ArgumentParser, *, dwell: float, dwell_means: str, settle: float, settle_means: str
) -> None:
    """--dwell (how long the scenario waits at each step) and --settle-timeout (how long a step may take)."""
    parser.add_argument(
        "--dwell", type=seconds, default=dwell, help=f"seconds {dwell_means} (default {dwell:g})"
    )
    parser.add_argument(
        "--settle-timeout", type=seconds, default=settle, help=f"seconds {settle_means} (default {settle:g})"
    )


def add_netem_options(parser: argparse.ArgumentParser) -> None:
    """--ha-rtt / --ha-loss: sch_netem on the home network's uplink, both directions (needs sch_netem)."""
    parser.add_argument(
        "--ha-rtt",
        type=lambda text: number(text, 0, 10000, "milliseconds"),
        default=0.0,
        help="milliseconds added to every round trip between the home LAN and the rest (netem, half each "
        "way on the home uplink; needs sch_netem, e.g. in the VM: ./testbed vm)",
    )
    parser.add_argument(
        "--ha-loss",
        type=lambda text: number(text, 0, 100, "percent"),
        default=0.0,
        help="percent of packets netem drops on the home uplink, each direction (needs sch_netem)",
    )


def home_netem(args: argparse.Namespace) -> str | None:
    """The netem arguments for each direction of the home uplink, or None when none were asked for."""
    rtt, loss = getattr(args, "ha_rtt", 0.0), getattr(args, "ha_loss", 0.0)
    if not rtt and not loss:
        return None
    words = []
    if rtt:
        words.append(f"delay {rtt / 2:g}ms")
    if loss:
        words.append(f"loss {loss:g}%")
    return " ".join(words)


def run_main(scenario: str, args: argparse.Namespace, argv: list[str] | None, execute: Execute) -> int:
    """Check the machine, make the run folder, run ``execute``; turn Ctrl-C/SIGTERM into 130/143."""
    args.argv = list(sys.argv[1:] if argv is None else argv)
    progress = Progress(verbose=args.verbose, quiet=args.quiet, stream=sys.stderr if args.json else None)
    run: RunFolder | None = None
    try:
        with sigterm_raises():
            try:
                tcpdump = getattr(args, "always_captures", False) or not args.no_pcap
                features = check_environment(pcap=tcpdump, scenario=scenario)
            except PreflightError as error:
                print(f"{scenario}: {error}", file=sys.stderr)
                return 2
            problem = datapath_problem(scenario, getattr(args, "datapath", "userspace"), args)
            if problem is not None:
                print(f"{scenario}: {problem}", file=sys.stderr)
                return 2
            if home_netem(args) is not None and not features.get("netem"):
                print(
                    f"{scenario}: --ha-rtt/--ha-loss need the sch_netem qdisc, which this kernel lacks (tc "
                    f"could not add one); run it in the full-kernel VM: sudo ./testbed vm run {scenario} ...",
                    file=sys.stderr,
                )
                return 2
            seed = args.seed if args.seed is not None else int(time.time())
            random.seed(seed)
            try:
                run = RunFolder.planned(scenario, args.out)  # made by run_plan once the options hold
            except OSError as error:
                print(f"{scenario}: cannot create the run folder: {error}", file=sys.stderr)
                return 2
            return execute(args, run, progress, seed, features)
    except (KeyboardInterrupt, Interrupted) as stop:
        what = "terminated" if isinstance(stop, Interrupted) else "interrupted"
        where = f"; partial run in {run.path}" if run is not None and run.path.is_dir() else ""
        print(f"{scenario}: {what}; everything the run created was removed{where}", flush=True)
        return 143 if isinstance(stop, Interrupted) else 130
    finally:
        if run is not None:
            run.remove_sockets()  # the testbed removes it too; not when stopped before it was built


def datapath_problem(scenario: str, requested: str, args: Any = None) -> str | None:
    """Why ``--datapath requested`` cannot run this scenario (with ``args``' needs, :func:`run_needs`) here
    (checked before anything is built)."""
    if requested not in ("ebpf", "kernel"):
        return None
    from agents.datapath.kernel import BackendUnavailableError
    from agents.datapath.selection import select_backend, select_foreign_agent_backend

    try:
        select_backend(requested, run_needs(scenario, args))
        if requested == "ebpf":  # the foreign agents run it too (build/bpf/fa.bpf.o)
            select_foreign_agent_backend(requested)
    except BackendUnavailableError as error:
        text = str(error)
        return text if "use --datapath" in text else f"{text} (use --datapath userspace or auto)"
    return None


class Plan(Protocol):
    """A scenario run on ``topo``: :meth:`execute` drives the testbed and returns the rendered result."""

    topo: Any
    """The topology (its ``specs``: node name → :class:`topologies.spec.NodeSpec`)."""

    def execute(self) -> Any: ...


def run_plan(scenario: str, args: argparse.Namespace, run: RunFolder, plan: Callable[[], Plan]) -> int:
    """Execute the plan ``plan()`` builds, making the run folder only once it is built (a bad ``--set``
    leaves none); a setup failure is one line (1), names in use are 2; the exit
    status is 0 only when every expectation held. Imports Mininet: call it after the preflight checks."""
    from scenarios.harness.config_check import check_overridden_configs
    from scenarios.harness.links import MoveError
    from topologies.build import ConfigureError, NamesInUseError, NetworkStartTimeout
    from topologies.nodes import ProcessStartError
    from topologies.overrides import OverrideError

    try:
        planned = plan()  # the topology, with every --set applied: refused before the folder exists
        check_overridden_configs(planned.topo.specs, args.set)  # and each value by its agent's loader
        try:
            run.make()
        except OSError as error:
            print(f"{scenario}: cannot create the run folder: {error}", file=sys.stderr)
            return 2
        result = planned.execute()
    except (NamesInUseError, OverrideError) as error:
        print(f"{scenario}: {error}", file=sys.stderr)
        return 2
    except (ConfigureError, NetworkStartTimeout, ProcessStartError, MoveError) as error:
        print(f"{scenario}: the testbed failed: {error}; run folder: {run.path}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.metrics, indent=2, default=str))
    return 0 if result.overall_passed else 1
