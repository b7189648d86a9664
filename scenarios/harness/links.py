"""Moving a mobile node's link between access bridges in the root namespace (design.md §6).

With carrier events the switch-side port goes down, changes bridge and comes up again, so the MN sees a
real carrier loss (RFC 5944 §2.4.2 link-layer hint); without, it only changes bridge and the MN must
notice from advertisements alone. Netlink requests are made in-process (pyroute2): a move takes well under
a millisecond, so the interruption measured is the protocol's, not the harness's. Only ports and bridges
of our own topology are touched.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from topologies.spec import MobileLink

Emit = Callable[..., None]


class MoveError(RuntimeError):
    """A netlink step of a move failed (the message names the step)."""


class LinkMover:
    """Re-attaches switch ports; one netlink socket for the whole run."""

    def __init__(self) -> None:
        self._ipr: Any = IPRoute()

    def close(self) -> None:
        self._ipr.close()

    def _index(self, name: str) -> int:
        try:
            return socket.if_nametoindex(name)  # one system call, no netlink dump
        except OSError:
            raise MoveError(f"no interface {name} in the root namespace") from None

    def _set(self, what: str, **fields: Any) -> None:
        try:
            self._ipr.link("set", **fields)
        except NetlinkError as error:
            raise MoveError(f"{what}: {error}") from error

    def reattach(
        self,
        link: MobileLink,
        to: str,
        emit: Emit,
        handover: int,
        carrier_events: bool,
        while_down: Callable[[], None] | None = None,
    ) -> None:
        """Re-attach ``link``'s port to the bridge of attachment ``to``; trace link_down / link_up.
        ``while_down`` runs while the carrier is down (what the node does on losing it, e.g. a DHCP client
        dropping its lease)."""
        bridge = link.attachments.get(to)
        if bridge is None:
            raise MoveError(f"{link.node} cannot move to {to!r}: attachments are {sorted(link.attachments)}")
        port, master = self._index(link.port), self._index(bridge)
        if carrier_events:
            self._set(f"{link.port} down", index=port, state="down")
            emit("link_down", handover=handover, mobile_node=link.node)
            if while_down is not None:
                while_down()
        self._set(f"{link.port} nomaster", index=port, master=0)
        self._set(f"{link.port} master {bridge}", index=port, master=master)
        if carrier_events:
            self._set(f"{link.port} up", index=port, state="up")
            emit("link_up", handover=handover, mobile_node=link.node)
