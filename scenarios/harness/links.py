"""Moving a mobile node's link between access bridges in the root namespace (design.md §6).

With carrier events the switch-side port goes down, changes bridge and comes up again, so the MN sees a
real carrier loss (RFC 5944 §2.4.2 link-layer hint); without, it only changes bridge and the MN must
notice from advertisements alone. The requests are raw rtnetlink messages (:mod:`agents.net.rtnl`): two
per move with carrier events (down and the new bridge in one, then up), each applied by the kernel
inside its ``send`` (pyroute2 took ~0.25 ms of Python per request and up to several ms under load, four
requests per move: that was link outage the interruption measured, issue 14). ``link_down`` and
``link_up`` are stamped when the port stopped forwarding (the request's start) and when the kernel had
brought it up (the ``send``'s return), not when the acknowledgement was read. Taking a veth port down is
the slow step: ``dev_close`` waits for an RCU grace period before the peer loses its carrier (median
~5 ms measured here under load, against ~0.04 ms for a change of bridge and ~0.08 ms for up); the
``took_ms`` field of ``link_down`` records it per move. Only ports and bridges of our own topology are
touched.
"""

from __future__ import annotations

from collections.abc import Callable

from agents.net.rtnl import RtnlError, RtnlSocket, link_message
from agents.runtime.trace import monotonic_now
from topologies.spec import MobileLink

EmitAt = Callable[..., None]
"""``emit_at(t, event, **fields)``: a trace line stamped ``t`` (:meth:`TraceWriter.emit_at`)."""


class MoveError(RuntimeError):
    """A netlink step of a move failed (the message names the step)."""


class LinkMover:
    """Re-attaches switch ports; one netlink socket for the whole run."""

    def __init__(self) -> None:
        self._rtnl = RtnlSocket()

    def close(self) -> None:
        self._rtnl.close()

    def _index(self, name: str) -> int:
        try:
            return self._rtnl.index_of(name)  # one ioctl, no netlink dump
        except LookupError:
            raise MoveError(f"no interface {name} in the root namespace") from None

    def _set(self, what: str, index: int, *, up: bool | None = None, master: int | None = None) -> float:
        """One RTM_NEWLINK; the time the kernel applied it."""
        try:
            return self._rtnl.request(
                lambda sequence: link_message(index, up=up, master=master, sequence=sequence)
            )
        except RtnlError as error:
            raise MoveError(f"{what}: {error.strerror}") from error

    def reattach(
        self,
        link: MobileLink,
        to: str,
        emit_at: EmitAt,
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
        if not carrier_events:
            self._set(f"{link.port} master {bridge}", port, master=master)
            return
        started = monotonic_now()  # the port stops forwarding here; the kernel's close takes a while
        down = self._set(f"{link.port} down master {bridge}", port, up=False, master=master)
        took = round((down - started) * 1000.0, 3)
        emit_at(started, "link_down", handover=handover, mobile_node=link.node, took_ms=took)
        if while_down is not None:
            while_down()
        up = self._set(f"{link.port} up", port, up=True)
        emit_at(up, "link_up", handover=handover, mobile_node=link.node)
