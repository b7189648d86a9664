"""Connection-tracking entries the host's root namespace keeps for the testbed's bridged traffic.

Our bridges live in the root namespace (:mod:`topologies.bridges`). When the host hands bridged frames
to its firewall (``net.bridge.bridge-nf-call-iptables = 1``) and something there uses connection tracking
(libvirt's or Docker's NAT rules do), the kernel keeps a root-namespace conntrack entry for every flow
the testbed's nodes exchange — entries that outlive the run by up to 10 minutes (IP-in-IP) and belong to
nobody else. :func:`forget_testbed_flows` removes the entries of the testbed's address ranges at
teardown; no other entry is touched, and on a host without root-namespace tracking there is nothing to do.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network

from topologies.addressing import TESTBED_RANGES

logger = logging.getLogger(__name__)
DELETED = re.compile(r"(\d+) flow entries have been deleted")


def conntrack_delete_commands(ranges: Iterable[IPv4Network | IPv6Network]) -> list[list[str]]:
    """``conntrack -D`` for every entry whose original source or destination is in ``ranges``."""
    commands = []
    for network in ranges:
        family = "ipv6" if network.version == 6 else "ipv4"
        for direction in ("--orig-src", "--orig-dst"):
            commands.append(["conntrack", "-D", "-f", family, direction, str(network)])
    return commands


def forget_testbed_flows(ranges: Iterable[IPv4Network | IPv6Network] = TESTBED_RANGES) -> int:
    """Delete the root namespace's conntrack entries of the testbed's addresses; how many went.

    Safe while another run is going: the root namespace does no NAT for our addresses, so a deleted
    entry of a live flow is simply created again by its next packet. Without the ``conntrack`` tool
    (tools/provision.sh installs it) the entries are left to expire, with one line in the log.
    """
    if shutil.which("conntrack") is None:
        logger.info("conntrack not installed: root-namespace flow entries (if any) are left to expire")
        return 0
    deleted = 0
    for command in conntrack_delete_commands(ranges):
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        # "N flow entries have been deleted." on stderr; exit status 1 when N is 0
        counted = DELETED.search(result.stderr)
        deleted += int(counted.group(1)) if counted else 0
    return deleted
