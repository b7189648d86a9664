"""Attacks on a registered dual-stack mobile node's home agent, as phases with verdicts (issue 16; RFC 5944
§3.8.2.1 and §5, RFC 3024 §4.3.2, RFC 5454 §4). Each phase is judged from the run folder alone
(:mod:`reports.security`): the HA's drop counters and trace, its log, the correspondent's capture, probes:

1. ``spoof``   spoofed reverse-tunnel packets (outer and inner sources, IPv4 and IPv6, nested and not) from
   the correspondent and from the co-located visited network: all dropped and counted, none forwarded
2. ``forged``  a bad-authenticator registration and deregistration (131) and a replayed deregistration (133)
   change nothing
3. ``flood``   garbage, then bad-authenticator requests at ``--flood-rate`` (default 20,000/s), then both
   mixed at ``--mixed-rate`` (default 80,000/s) while the MN renews a short binding (all from the
   correspondent's own address; ``--forged-share`` of them forge FA1's address instead): it never expires
   at the HA, the MN or FA1, traffic keeps flowing (loss per flow within 1 %, no gap over 1 s), the HA's
   log stays within 21 lines/s (the HA steers known peers' datagrams to a priority socket in the kernel:
   :mod:`agents.runtime.steering`)
3b. ``flood-forged`` the same three floods with every datagram forging FA1's address (the source the MN's
   renewals come from, so they all go to the HA's priority socket): the same verdicts. With the ingress
   filter (default) r0 drops them at the correspondent's link (BCP 38; :mod:`topologies.ingress`); with
   ``--no-ingress-filter`` they reach the HA and compete with the real renewals in its priority queue
4. ``loss``    30 % of UDP 434 lost each way on each ``--loss-legs`` leg in turn (MN↔FA at the MN, FA↔HA at
   the FA): the MN still registers (completion time measured per leg)
5. ``nat-loss`` the MN behind the NAT (UDP tunnel, RFC 3519) loses its NAT mapping: it notices by its
   keepalives, registers again from the new public port, traffic comes back (outage)
6. ``ha-restart`` kill -9 of the HA, restart with its journal: traffic back without any MN action (outage)
7. ``fa-restart`` the FA restarts: the MN notices by the sequence number and re-registers (RFC 5944 §2.4.4)

    sudo python -m scenarios.security [--lifetime S] [--flood-count N] [--flood-rate PPS]
        [--forged-share F] [--no-ingress-filter] [--out DIR] ...

The ingress filter (r0 drops what arrives from the correspondent's link with a source address that cannot
come from there, by the kernel: BCP 38 / RFC 2827) is on for every phase but ``spoof``, which tests the
HA's own source checks (RFC 3024 §4.3.2) against what an edge does not filter and lifts it meanwhile.

Exit 0 only when every verdict held; 1 when one failed (named) or the testbed could not be set up; 2 for
wrong use, no root or a missing tool; 130 after Ctrl-C and 143 after SIGTERM, once everything is removed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scenarios.deregistration import lifetime
from scenarios.harness.options import (
    add_common_options,
    add_timing_options,
    choices,
    count,
    number,
    run_main,
    run_plan,
    whole,
)
from scenarios.harness.progress import Progress
from scenarios.harness.runfolder import RunFolder

PHASES = ("spoof", "forged", "flood", "flood-forged", "loss", "nat-loss", "ha-restart", "fa-restart")
LEGS = ("mn-fa", "fa-ha")
"""Where the loss phase drops signalling: between the MN and FA1 (rules in the MN), between FA1 and the HA
(rules in FA1, matching the HA's address)."""


MAX_FLOOD_COUNT = 1_000_000
"""Datagrams per flood at most: 50 s at the default 20,000/s (issue 16's floods lasted 20-33 s)."""


def flood_count(text: str) -> int:
    return whole(text, 100, MAX_FLOOD_COUNT, "datagrams per flood")


def phase_list(text: str) -> list[str]:
    return choices(text, PHASES)


def leg_list(text: str) -> list[str]:
    return choices(text, LEGS)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.security",
        description="Attack a registered mobile node's home agent; check nothing gets through or breaks.",
    )
    parser.add_argument(
        "--lifetime", type=lifetime, default=3, help="the HA's maximum binding lifetime (default 3 s)"
    )
    add_timing_options(
        parser, dwell=1.0, dwell_means="between steps", settle=10.0, settle_means="a registration may take"
    )
    parser.add_argument("--spoof-count", type=count, default=10, help="packets per spoof kind (default 10)")
    parser.add_argument(
        "--flood-count", type=flood_count, default=40_000, help="datagrams per flood (default 40000)"
    )
    parser.add_argument(
        "--flood-rate",
        type=lambda text: number(text, 100, 200_000, "datagrams per second"),
        default=20_000.0,
        help="datagrams per second offered in the garbage and the bad-auth flood (default 20000)",
    )
    parser.add_argument(
        "--mixed-rate",
        type=lambda text: number(text, 100, 200_000, "datagrams per second"),
        default=80_000.0,
        help="datagrams per second of the mixed flood (garbage and bad-auth alternating; default 80000; "
        "it lasts as long as the others)",
    )
    parser.add_argument(
        "--loss",
        type=lambda text: number(text, 0.01, 0.9, "a probability of loss"),
        default=0.3,
        help="share of UDP 434 dropped each way on each loss leg (default 0.3)",
    )
    parser.add_argument(
        "--loss-trials", type=count, default=3, help="registrations under loss, per leg (default 3)"
    )
    parser.add_argument(
        "--loss-legs",
        type=leg_list,
        default=list(LEGS),
        help=f"comma-separated legs the loss phase drops on, in turn: {','.join(LEGS)} (default both)",
    )
    parser.add_argument(
        "--keepalive",
        type=lambda text: whole(text, 1, 110, "seconds"),
        default=3,
        help="the HA's UDP tunnel keepalive interval K for the nat-loss phase (RFC 3519 §4.9; default 3)",
    )
    parser.add_argument(
        "--forged-share",
        type=lambda text: number(text, 0, 1, "share of datagrams forging FA1"),
        default=None,
        help="share of the flood phase's datagrams forging FA1's address, a known peer (default 0: all "
        "come from the correspondent's own address; flood-forged forges every one)",
    )
    parser.add_argument(
        "--no-ingress-filter",
        action="store_true",
        help="no ingress filter at r0 (BCP 38): forged FA or home addresses from the correspondent's link "
        "reach the HA (the HA's own defences alone)",
    )
    parser.add_argument(
        "--no-kernel-steering",
        action="store_true",
        help="run the HA with one UDP 434 socket (no priority socket for known peers): the baseline",
    )
    parser.add_argument(
        "--phases",
        type=phase_list,
        default=list(PHASES),
        help=f"comma-separated phases to run, in this order: {','.join(PHASES)} (default all)",
    )
    add_common_options(parser, "security", default_rate=100.0)
    parser.set_defaults(always_captures=True, no_pcap=False)  # the verdicts need the captures
    args = parser.parse_args(argv)
    if args.forged_share is not None and "flood" not in args.phases:
        parser.error("--forged-share applies to the flood phase, which --phases leaves out")
    args.forged_share = 0.0 if args.forged_share is None else args.forged_share
    return args


def main(argv: list[str] | None = None) -> int:
    return run_main("security", parse_args(argv), argv, execute)


def execute(
    args: argparse.Namespace, run: RunFolder, progress: Progress, seed: int, features: dict[str, Any]
) -> int:
    """Run the scenario into ``run``; the exit status (a setup failure is one line, not a traceback)."""
    from scenarios.security_run import SecurityRun  # imports mininet: after the checks

    def plan() -> SecurityRun:
        return SecurityRun(args, run, progress, seed, features)

    return run_plan("security", args, run, plan)


if __name__ == "__main__":
    sys.exit(main())
