"""Kernel tunnel support: probe only (design.md §3).

The kernel datapath would use ``ipip`` (RFC 2003), ``sit`` (RFC 4213) and ``gre`` (RFC 2784) links.
This module finds out whether this kernel can create them, by creating and deleting one of each in a
throwaway network namespace (the caller's namespace is never touched), and says so. The kernel
backend itself is :mod:`agents.datapath.native`: :func:`select_backend` answers ``kernel`` for an explicit
request where the probe finds all three kinds, refuses it with a message naming what is missing elsewhere,
and answers ``kernel`` for ``auto`` where the probe finds them and the configuration needs no UDP tunnel
or minimal encapsulation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agents.net.netlink import Netlink, run_in_throwaway_netns

logger = logging.getLogger(__name__)

TUNNEL_KINDS = ("ipip", "sit", "gre")
BACKENDS = ("auto", "userspace", "kernel")


class BackendUnavailableError(RuntimeError):
    """The requested datapath backend cannot run here; the message says why."""


@dataclass(frozen=True)
class KernelTunnelSupport:
    """Which tunnel link kinds this kernel can create; ``errors`` holds the kernel's reason per kind."""

    available: frozenset[str] = frozenset()
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when ipip, sit and gre are all there (what a kernel backend would need)."""
        return set(TUNNEL_KINDS) <= self.available

    def describe(self) -> str:
        """One line for logs and run metadata."""
        parts = [
            f"{kind}: {'yes' if kind in self.available else 'no (' + self.errors.get(kind, '?') + ')'}"
            for kind in TUNNEL_KINDS
        ]
        return "kernel tunnels " + ", ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {kind: kind in self.available for kind in TUNNEL_KINDS} | {"errors": dict(self.errors)}


def probe_kernel_tunnels(kinds: tuple[str, ...] = TUNNEL_KINDS) -> KernelTunnelSupport:
    """Try to create each link kind in a throwaway namespace (needs root)."""

    def probe() -> dict[str, str | None]:
        netlink = Netlink()
        try:
            return {kind: netlink.probe_link_kind(kind) for kind in kinds}
        finally:
            netlink.close()

    try:
        outcome = run_in_throwaway_netns(probe)
    except OSError as error:
        reason = f"cannot probe: {error.strerror or error}"
        return KernelTunnelSupport(frozenset(), {kind: reason for kind in kinds})
    support = KernelTunnelSupport(
        frozenset(kind for kind, error in outcome.items() if error is None),
        {kind: error for kind, error in outcome.items() if error is not None},
    )
    logger.info("%s", support.describe())
    return support
