"""The testbed's Linux bridges, and what the host's bridge netfilter setting means for them.

With the ``br_netfilter`` module loaded and ``net.bridge.bridge-nf-call-{iptables,ip6tables,arptables} = 1``,
frames crossing a bridge also cross the iptables / ip6tables / arptables rules of the bridge's network
namespace. Our bridges live in the root namespace (Mininet's ``LinuxBridge``), so the host's own firewall
sees the testbed's traffic: a FORWARD rule or policy there that drops forwarded packets (Docker sets the
policy to DROP) cuts the testbed's links. With a FORWARD chain that accepts, nothing changes for a run.

Nothing here changes that setting: the sysctls belong to the whole root namespace (every bridge of the
machine), and a bridge's own ``/sys/class/net/<bridge>/bridge/nf_call_iptables`` cannot opt out of them, the
kernel filters a bridge when either is on. Mininet's ``LinuxBridge.setup`` prints three "Linux bridge may not
work" warnings for it on every run; :class:`TestbedBridge` drops those, and the scenario says once, in one
line (:func:`bridge_netfilter_note`), what the setting means for the run.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from mininet.nodelib import LinuxBridge

BRIDGE_SYSCTLS = Path("/proc/sys/net/bridge")
"""Where ``br_netfilter`` puts its sysctls (absent when the module is not loaded: nothing is filtered)."""

TABLES = ("iptables", "ip6tables", "arptables")
"""The firewalls bridged frames can be handed to (``net.bridge.bridge-nf-call-<table>``)."""


class TestbedBridge(LinuxBridge):  # type: ignore[misc]  # mininet has no type information
    """Mininet's ``LinuxBridge`` without the bridge-netfilter warnings of its class setup (see the module
    docstring); it still refuses to start without ``brctl``, with an exception rather than Mininet's exit."""

    __test__ = False  # not a pytest test class, whatever its name

    @classmethod
    def setup(cls) -> None:
        """Check for ``brctl`` (bridge-utils), which ``LinuxBridge`` runs; nothing else."""
        if shutil.which("brctl") is None:
            raise RuntimeError("brctl not found: install bridge-utils (tools/provision.sh does)")


def bridge_netfilter_tables(sysctls: Path = BRIDGE_SYSCTLS) -> list[str]:
    """The tables the root namespace hands bridged frames to: each ``<table>`` of :data:`TABLES` whose
    ``bridge-nf-call-<table>`` under ``sysctls`` is 1 (none when the files are missing or unreadable)."""
    on = []
    for table in TABLES:
        try:
            value = (sysctls / f"bridge-nf-call-{table}").read_text().strip()
        except OSError:
            continue
        if value == "1":
            on.append(table)
    return on


def bridge_netfilter_note(tables: Sequence[str]) -> str | None:
    """One line on what bridge netfilter on ``tables`` means for a run; ``None`` when no table is on."""
    if not tables:
        return None
    names = ", ".join(f"net.bridge.bridge-nf-call-{table}" for table in tables)
    firewalls = "/".join(tables)
    return (
        f"this host hands bridged traffic to its {firewalls} rules ({names} = 1): a FORWARD rule or policy "
        "in the root namespace that drops forwarded packets (Docker's does) would cut the testbed's links; "
        "a host-wide setting, left as it is (docs/architecture.md)"
    )
