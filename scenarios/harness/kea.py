"""Kea dhcp6 as the home network's delegating server, run inside the home agent's node (RFC 5454 §3.7.1).

Why Kea, and why in the HA's node: RFC 5454 §3.7.1 runs DHCPv6 over the HoA↔HA tunnel, so the server must
sit on the HA's tunnel device (``mip-ha``), which has only a link-local address; of the Debian packages only
Kea serves a TUN device with just a link-local (protocol.md §10; ISC dhcpd refuses non-Ethernet links,
dnsmasq has no PD server). The configuration follows what design.md §3 measured working here: the TUN named
in ``interfaces-config`` and in the subnet's ``interface`` (clients have only link-locals), a DUID-EN server
id that is not persisted (a TUN has no MAC for DUID-LLT), the lease_cmds hook on a control socket (the home
agent asks it for the delegations), and every file Kea writes — config, memfile lease CSV, control socket,
pid and lock files, log — inside one folder of the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Network
from pathlib import Path
from typing import Any

KEA_BINARY = "/usr/sbin/kea-dhcp6"
HOOKS_DIRS = (Path("/usr/lib/x86_64-linux-gnu/kea/hooks"), Path("/usr/lib/aarch64-linux-gnu/kea/hooks"))
SUN_PATH_MAX = 107
DEFAULT_POOL = IPv6Network("2001:db8:d000::/48")
"""Delegated prefixes come from here: outside every configured MN prefix and link of the topologies."""
SERVER_ENTERPRISE = 32473
"""IANA's documentation enterprise number (RFC 5612), in the server's DUID-EN."""


class KeaUnavailable(RuntimeError):
    """Kea is missing or did not start; the message is one line."""


def find_kea() -> tuple[str, Path]:
    """kea-dhcp6 (``$DSMIP_KEA_DHCP6`` if set) and the lease_cmds hook, or :class:`KeaUnavailable`."""
    override = os.environ.get("DSMIP_KEA_DHCP6")
    binary = override or shutil.which("kea-dhcp6") or (KEA_BINARY if Path(KEA_BINARY).exists() else None)
    if binary is None or not os.access(binary, os.X_OK):
        raise KeaUnavailable("kea-dhcp6 not found: apt-get install kea-dhcp6-server (or tools/provision.sh)")
    for folder in HOOKS_DIRS:
        hook = folder / "libdhcp_lease_cmds.so"
        if hook.exists():
            return binary, hook
    raise KeaUnavailable("Kea's lease_cmds hook (libdhcp_lease_cmds.so) not found")


@dataclass(frozen=True)
class KeaPlan:
    """One Kea dhcp6 instance: where its files go and what it delegates."""

    folder: Path
    interface: str = "mip-ha"
    pool: IPv6Network = DEFAULT_POOL
    delegated_length: int = 56
    pool_size: int | None = None
    """Delegate at most this many prefixes (a power of two ≤ the pool); 0: none (every one taken)."""
    preferred: int = 40
    valid: int = 60
    renew: int = 20
    rebind: int = 32
    rapid_commit: bool = True
    debug: bool = False
    """Kea logs every packet (DEBUG, level 50) instead of INFO."""

    def __post_init__(self) -> None:
        if not self.pool.prefixlen <= self.delegated_length <= 64:
            raise ValueError("delegated_length must be between the pool's length and 64")
        if not 0 < self.renew <= self.rebind <= self.preferred <= self.valid:
            raise ValueError("need 0 < renew ≤ rebind ≤ preferred ≤ valid")
        if self.pool_size is not None and (self.pool_size < 0 or self.pool_size & (self.pool_size - 1) > 0):
            raise ValueError("pool_size must be 0 or a power of two")
        if len(str(self.control_socket)) > SUN_PATH_MAX:
            raise ValueError(f"Kea control socket path is too long for a Unix socket: {self.control_socket}")

    @property
    def config_file(self) -> Path:
        return self.folder / "kea-dhcp6.json"

    @property
    def lease_file(self) -> Path:
        return self.folder / "kea-leases6.csv"

    @property
    def control_socket(self) -> Path:
        return self.folder / "kea6.sock"

    @property
    def log_file(self) -> Path:
        return self.folder / "kea-dhcp6.log"

    @property
    def pd_pool(self) -> tuple[IPv6Network, bool]:
        """The pd-pool's prefix, and whether its prefixes are all held for another client (size 0)."""
        if self.pool_size is None:
            return self.pool, False
        count = max(self.pool_size, 1)
        length = self.delegated_length - (count.bit_length() - 1)
        return IPv6Network((self.pool.network_address, length)), self.pool_size == 0

    def environment(self) -> dict[str, str]:
        """Kea's pid and lock files in the folder, not /run/kea."""
        return {"KEA_PIDFILE_DIR": str(self.folder), "KEA_LOCKFILE_DIR": str(self.folder)}


HELD_BY = "00:02:00:00:7e:d9:68:65:6c:64"
"""DUID-EN 32473 "held" of the client a size-0 pool's only prefix is reserved for (nobody in the run)."""


def kea_config(plan: KeaPlan, hook: Path) -> dict[str, Any]:
    """The Dhcp6 configuration (Kea 2.2 ARM: dhcp6-srv, lease_cmds)."""
    pool, held = plan.pd_pool
    subnet: dict[str, Any] = {
        "id": 1,
        "subnet": str(plan.pool),
        "interface": plan.interface,
        "rapid-commit": plan.rapid_commit,
        "pd-pools": [
            {
                "prefix": str(pool.network_address),
                "prefix-len": pool.prefixlen,
                "delegated-len": plan.delegated_length,
            }
        ],
    }
    if held:
        subnet["reservations"] = [
            {"duid": HELD_BY, "prefixes": [f"{pool.network_address}/{plan.delegated_length}"]}
        ]
    return {
        "Dhcp6": {
            "interfaces-config": {"interfaces": [plan.interface]},
            "server-id": {
                "type": "EN",
                "enterprise-id": SERVER_ENTERPRISE,
                "identifier": "6473",
                "persist": False,
            },
            "lease-database": {
                "type": "memfile",
                "persist": True,
                "name": str(plan.lease_file),
                "lfc-interval": 0,
            },
            "control-socket": {"socket-type": "unix", "socket-name": str(plan.control_socket)},
            "hooks-libraries": [{"library": str(hook)}],
            "preferred-lifetime": plan.preferred,
            "valid-lifetime": plan.valid,
            "renew-timer": plan.renew,
            "rebind-timer": plan.rebind,
            "subnet6": [subnet],
            "loggers": [
                {
                    "name": "kea-dhcp6",
                    "output_options": [{"output": str(plan.log_file)}],
                    "severity": "DEBUG" if plan.debug else "INFO",
                    "debuglevel": 50 if plan.debug else 0,
                }
            ],
        }
    }


Popen = Callable[[list[str], dict[str, str]], "subprocess.Popen[bytes]"]
"""Starts a command in the HA's namespace (Mininet ``node.popen`` or ``ip netns exec``) with extra env."""


class KeaServer:
    """Our own Kea process: started, checked, stopped by its handle; nothing left outside ``plan.folder``."""

    def __init__(self, plan: KeaPlan) -> None:
        self.plan = plan
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, popen: Popen, timeout: float = 10.0) -> None:
        binary, hook = find_kea()
        self.plan.folder.mkdir(parents=True, exist_ok=True)
        self.plan.config_file.write_text(json.dumps(kea_config(self.plan, hook), indent=2))
        env = dict(os.environ) | self.plan.environment()
        self.process = popen([binary, "-c", str(self.plan.config_file)], env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise KeaUnavailable(f"kea-dhcp6 exited with {self.process.returncode}: {self.last_error()}")
            if self.answers():
                return
            time.sleep(0.1)
        self.stop()
        raise KeaUnavailable(f"kea-dhcp6 did not answer on {self.plan.control_socket}: {self.last_error()}")

    def answers(self) -> bool:
        from agents.runtime.roles.ha_delegation_io import KeaError, kea_command

        try:
            return bool(kea_command(self.plan.control_socket, "status-get", 1.0).get("result") == 0)
        except (KeaError, AttributeError):
            return False

    def last_error(self) -> str:
        """The last ERROR/FATAL line of Kea's log or stderr, for a one-line message."""
        text = self.plan.log_file.read_text(errors="replace") if self.plan.log_file.exists() else ""
        lines = [line for line in text.splitlines() if " ERROR " in line or " FATAL " in line]
        return lines[-1].strip()[-300:] if lines else "no error logged"

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM our process, then SIGKILL after ``timeout``; remove the socket it may leave."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for leftover in (self.plan.control_socket, self.plan.folder / "kea-dhcp6.kea-dhcp6.pid"):
            leftover.unlink(missing_ok=True)
        return process.returncode
