"""Ingress filtering at a router (BCP 38 / RFC 2827; RFC 3704 §2.2 strict reverse-path check), in the
router's own namespace by the kernel: a packet arriving on a filtered interface whose source address the
router would not route back out of that same interface is dropped before forwarding (netfilter ``raw``
table, ``PREROUTING``, match ``rpfilter --invert``; IPv4 with iptables, IPv6 with ip6tables). The rules
carry the comment :data:`MARK`, and their packet counters are the drops.

RFC 3024 §1 names this filter as what a visited network does to a mobile node's
home-address-sourced packets; here it is the edge defence against a correspondent-side attacker who forges
a foreign agent's address (issue 16 review): without it such datagrams reach the home agent's priority
socket, the one the real foreign agent's relayed renewals wait in.
"""

from __future__ import annotations

MARK = "dsmip-bcp38"
TOOLS = ("iptables", "ip6tables")


def rule(tool: str, action: str, interface: str) -> list[str]:
    """The argv adding (``-A``) or deleting (``-D``) the filter on ``interface`` with ``tool``."""
    return [
        tool, "-w", "-t", "raw", action, "PREROUTING", "-i", interface, "-m", "rpfilter", "--invert",
        "-m", "comment", "--comment", MARK, "-j", "DROP",
    ]  # fmt: skip


def commands(action: str, interfaces: list[str]) -> list[str]:
    """Shell commands adding (``-A``) or deleting (``-D``) the filter on every one of ``interfaces``."""
    return [" ".join(rule(tool, action, name)) for name in interfaces for tool in TOOLS]


def listing_commands() -> list[str]:
    """Commands whose output :func:`dropped` reads (every ``raw`` PREROUTING rule with exact counters)."""
    return [f"{tool} -w -t raw -L PREROUTING -v -x -n" for tool in TOOLS]


def dropped(listing: str) -> int | None:
    """Packets dropped so far by the filter's rules in ``listing`` (see :func:`listing_commands`); None
    when no rule of ours is listed."""
    counts = [line.split()[0] for line in listing.splitlines() if MARK in line]
    if not counts or not all(count.isdigit() for count in counts):
        return None
    return sum(int(count) for count in counts)
