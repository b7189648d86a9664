"""The home agent's guard for code 0 ``sit`` devices of the kernel datapath (issue 16, defect 1).

For a prefix registered with code 0 the kernel backend's ``sit`` device has the home address as remote
(RFC 5454 §3.3.2), so the kernel would decapsulate any IPv6-in-IPv4 packet whose outer source is that
home address, also one sent straight from a visited link. That layer is legitimate only nested inside the
care-of tunnel (RFC 5454 §3.3.2, §4; RFC 3024 §4.3.2). This module keeps one nftables table per datapath,
``ip dsmip_<name>``, in the datapath's namespace: a set of guarded home addresses and one raw-priority
prerouting rule dropping protocol 41 from those addresses unless it came out of one of the datapath's
care-of tunnel devices (``<name>4-*``; a decapsulated packet passes prerouting again with ``iif`` = that
device, and strict ``rp_filter`` there ties the home address to its own tunnel). A named counter counts
the drops (:attr:`~agents.datapath.base.DropReason.UNNESTED_HOME_ADDRESS`). The table is created with the
first guarded address and deleted with the last one and at close; :func:`remove_stale_table` deletes one
a killed home agent left.
"""

from __future__ import annotations

import json
import logging
import subprocess
from ipaddress import IPv4Address

from agents.net.netlink import Netlink

logger = logging.getLogger(__name__)

__all__ = ["NftablesError", "UnnestedGuard", "guard_table_name", "remove_stale_table"]

NFT = "nft"
TIMEOUT = 10.0


class NftablesError(RuntimeError):
    """``nft`` failed or is missing; the message names the command and nft's answer."""


def guard_table_name(interface_name: str) -> str:
    """The nftables table of the datapath whose devices start with ``interface_name``."""
    return "dsmip_" + "".join(c if c.isalnum() else "_" for c in interface_name)


def _nft(netlink: Netlink, script: str, *options: str) -> str:
    """Run ``nft`` in ``netlink``'s namespace, the commands of ``script`` from stdin (``-f -``), or one
    command as arguments when ``options`` are given (``nft -j`` prints nothing for ``-f``); its output."""
    argv = [NFT, *options, *script.split()] if options else [NFT, "-f", "-"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            input=None if options else script,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    try:
        result = netlink.call_in_namespace(run)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NftablesError(f"nft ({script.splitlines()[0]}): {error}") from error
    if result.returncode != 0:
        raise NftablesError(f"nft ({script.splitlines()[0]}): {result.stderr.strip()}")
    return result.stdout


class UnnestedGuard:
    """Drops un-nested IPv6-in-IPv4 from guarded home addresses (see the module docstring)."""

    def __init__(self, netlink: Netlink, interface_name: str) -> None:
        self._netlink = netlink
        self._table = guard_table_name(interface_name)
        self._tunnels = f"{interface_name}4-*"
        self._addresses: set[IPv4Address] = set()

    @property
    def addresses(self) -> frozenset[IPv4Address]:
        return frozenset(self._addresses)

    def add(self, home_address: IPv4Address) -> None:
        """Guard ``home_address``: its protocol 41 is accepted only from the care-of tunnel devices."""
        if home_address in self._addresses:
            return
        table = f"ip {self._table}"
        script = f"add element {table} homes {{ {home_address} }}\n"
        if not self._addresses:
            script = (
                f"add table {table}\n"
                f"add counter {table} unnested\n"
                f"add set {table} homes {{ type ipv4_addr; }}\n"
                f"add chain {table} prerouting "
                "{ type filter hook prerouting priority -300; policy accept; }\n"
                f'add rule {table} prerouting ip protocol 41 ip saddr @homes iifname != "{self._tunnels}" '
                'counter name "unnested" drop\n'
            ) + script
        _nft(self._netlink, script)
        self._addresses.add(home_address)

    def remove(self, home_address: IPv4Address) -> None:
        """Stop guarding ``home_address`` (its code 0 device is gone); the table goes with the last one."""
        if home_address not in self._addresses:
            return
        if len(self._addresses) == 1:
            self.close()
            return
        _nft(self._netlink, f"delete element ip {self._table} homes {{ {home_address} }}\n")
        self._addresses.discard(home_address)

    def dropped(self) -> int:
        """Packets the rule dropped since the table was created (0 without a table)."""
        if not self._addresses:
            return 0
        output = _nft(self._netlink, f"list counter ip {self._table} unnested", "-j")
        for item in json.loads(output).get("nftables", []):
            if "counter" in item:
                return int(item["counter"].get("packets", 0))
        return 0

    def close(self) -> None:
        """Delete the table (and so the rule, set and counter) if this guard made one."""
        if self._addresses:
            self._addresses.clear()
            _nft(self._netlink, f"delete table ip {self._table}\n")


def remove_stale_table(netlink: Netlink, table: str) -> bool:
    """Delete the nftables table ``ip <table>`` if it exists; whether it did."""
    try:
        listed = _nft(netlink, "list tables ip\n")
    except NftablesError as error:
        logger.debug("no nftables here: %s", error)
        return False
    if f"table ip {table}" not in listed.splitlines():
        return False
    _nft(netlink, f"delete table ip {table}\n")
    return True
