"""Before a scenario builds anything: root, the tools it needs, and what this kernel can do (design.md §3).

A missing piece is one line and exit code 2 (no traceback); kernel features that are merely absent (netem,
ipip/sit/gre) are recorded in meta.json and said once, never faked.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

PROVISION_HINT = "run `sudo ./testbed handover` once: it installs what is missing"
SYSTEM_PYTHON = "/usr/bin/python3"
"""The interpreter that sees the Debian packages tools/provision.sh installs (``./testbed`` runs it)."""


PYTHON_MODULES = ("mininet", "pyroute2", "matplotlib", "numpy", "dpkt")
"""What the scenario, the agents and the reports import (Debian packages from tools/provision.sh)."""


class PreflightError(RuntimeError):
    """The scenario cannot run here; the message says why and what to do."""


def check_environment(pcap: bool = True, scenario: str = "handover") -> dict[str, Any]:
    """Raise :class:`PreflightError` unless ``scenario`` can run; return the kernel features seen."""
    if os.geteuid() != 0:
        raise PreflightError(f"needs root for network namespaces (run: sudo ./testbed {scenario})")
    missing_modules = [name for name in PYTHON_MODULES if not importable(name)]
    if missing_modules:
        raise PreflightError(missing_modules_message(missing_modules, scenario=scenario))
    tools = ["ip", "mnexec", "brctl", "tc", "nft"] + (["tcpdump"] if pcap else [])
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise PreflightError(f"missing {', '.join(missing)}; {PROVISION_HINT}")
    return kernel_features()


def missing_modules_message(
    names: Sequence[str],
    executable: str = sys.executable,
    base_prefix: str = sys.base_prefix,
    scenario: str = "handover",
) -> str:
    """What to say when ``names`` do not import: an interpreter that is not the system Python (nor a venv
    made from it), e.g. pyenv or conda first on PATH, cannot see the Debian packages, so provisioning again
    would not help; running the system Python would."""
    said = f"{', '.join(names)} not importable from {executable}"
    if base_prefix != "/usr":
        return (
            f"{said}, which is not the system Python: Debian's packages are seen only by {SYSTEM_PYTHON} "
            f"(run `sudo ./testbed {scenario}` or `sudo {SYSTEM_PYTHON} -m scenarios.{scenario}`)"
        )
    return f"{said}; {PROVISION_HINT}"


def importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def kernel_features() -> dict[str, Any]:
    """What this kernel offers the testbed: netem for link delay/loss, ipip/sit/gre for a kernel datapath;
    and which host firewalls see bridged traffic (``bridge_netfilter``: ``iptables+ip6tables+arptables``,
    or ``off``; see :mod:`topologies.bridges`)."""
    from agents.datapath.kernel import probe_kernel_tunnels
    from topologies.bridges import bridge_netfilter_tables

    tunnels = probe_kernel_tunnels()
    bridged = "+".join(bridge_netfilter_tables()) or "off"
    return {"netem": netem_available(), "kernel_tunnels": tunnels.to_dict(), "bridge_netfilter": bridged}


def netem_available() -> bool:
    """Try a netem qdisc on the loopback of a throwaway namespace (``unshare -n``; nothing is left)."""
    try:
        result = subprocess.run(
            ["unshare", "-n", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0
