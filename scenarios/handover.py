"""Handover scenario: home → FA1 → FA2 → home with IPv4 and IPv6 probe flows.

Usage: sudo python -m scenarios.handover [--help]

The topology, harness and scenario land with issue 5; until then this command says what is built and what
is missing, and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys

MISSING = (
    "topologies/dualstack.py (Mininet topology)",
    "scenarios/harness (Testbed, probes, captures, moves)",
    "foreign agents and movement detection",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.handover",
        description="Move a dual-stack mobile node home → FA1 → FA2 → home and measure each handover.",
    )
    parser.add_argument("--out", help="run folder (default: reports/runs/handover-<UTC time>)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    parse_args(argv)
    if os.geteuid() != 0:
        print(
            "handover: needs root for network namespaces (run: sudo python -m scenarios.handover)",
            file=sys.stderr,
        )
        return 2
    print("handover: not built yet; missing: " + "; ".join(MISSING), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
