"""The home agent reads the DHCPv6 server's prefix delegations from Kea (RFC 5454 §3.7.1).

Kea's lease state is the source of truth. Before a Registration Request asking for a prefix that the last
answer does not show delegated to that node (or when that answer is older than ``max_age``) is handed to the
machine, the runtime asks Kea's control socket ``lease6-get-all`` (the ``libdhcp_lease_cmds`` hook, shipped
with Debian's kea-dhcp6-server 2.2) and feeds the IA_PD leases to
:class:`agents.mip.ha.delegation.DelegationBook`. Asking on demand rather than polling means a prefix
registered the moment it was delegated is already known, and datagrams that need no answer (replies, tunnel
data, garbage, link-local-only requests) never cost a round trip; ``max_rate`` bounds what forged requests
can make the HA ask. The control socket was chosen over reading the memfile CSV because the CSV is
append-only (a renewal or release is a new line, and Kea's lease-file cleanup rewrites it) and lags the
server's memory. If Kea cannot be asked, the last answer stands, each lease still ending at its own expiry:
a Kea hiccup must not make the HA refuse (code 9) the prefix a node renews its binding with, and nothing
outlives its lease.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import time
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

from agents.mip.common.events import HomeAgentEvent
from agents.mip.common.trace_schema import TraceEvent
from agents.mip.ha.delegation import Delegation, DelegationBook
from agents.mip.ha.home_agent import HomeAgent
from agents.runtime.frame import AgentContext
from agents.runtime.roles.driver import MachineDriver
from agents.runtime.udp import Received

logger = logging.getLogger(__name__)
LEASE_STATE_DEFAULT = 0
"""Kea lease state 0 = assigned; 1 declined, 2 expired-reclaimed."""


@dataclass(frozen=True)
class DelegationSource:
    """`[runtime.dhcpv6_pd]` in the HA's TOML: where Kea's control socket is."""

    kea_control_socket: str
    timeout: float = 0.5
    """Seconds to wait for Kea's answer (the request waits that long at most)."""
    retry_after: float = 0.0
    """After a failed read, seconds during which Kea is not asked again (the last answer stands). 0: ask
    again at the next request that needs it, so a prefix delegated just after Kea came back is known; a hung
    Kea then delays such requests by ``timeout``."""
    max_age: float = 1.0
    """A request for a prefix the last answer covers asks Kea again only if that answer is older."""
    max_rate: float = 20.0
    """Kea is asked at most this many times a second for requests (forged ones could otherwise make the HA
    hammer Kea)."""

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.retry_after < 0 or self.max_age < 0 or self.max_rate <= 0:
            raise ValueError("timeout and max_rate must be positive, retry_after and max_age not negative")


class KeaError(RuntimeError):
    """Kea could not be asked, or answered with an error."""


def kea_command(
    path: str | Path, command: str, timeout: float, arguments: dict[str, Any] | None = None
) -> Any:
    """One command over Kea's Unix control socket; the parsed answer (Kea closes after answering)."""
    request: dict[str, Any] = {"command": command}
    if arguments is not None:
        request["arguments"] = arguments
    chunks: list[bytes] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode())
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                try:
                    return json.loads(b"".join(chunks))
                except json.JSONDecodeError:
                    continue
    except OSError as error:
        raise KeaError(f"Kea control socket {path}: {error}") from None
    raise KeaError(f"Kea control socket {path}: incomplete answer")


def leases_to_delegations(answer: Any, now: float, unix_now: float) -> list[Delegation]:
    """IA_PD leases of a ``lease6-get-all`` answer; expiry converted to the caller's clock."""
    if not isinstance(answer, dict):
        raise KeaError(f"unexpected answer {answer!r}")
    result = answer.get("result")
    if result == 3:  # "0 IPv6 lease(s) found"
        return []
    if result != 0:
        raise KeaError(f"lease6-get-all: {answer.get('text', answer)}")
    delegations = []
    for lease in answer.get("arguments", {}).get("leases", []):
        if lease.get("type") != "IA_PD" or lease.get("state", 0) != LEASE_STATE_DEFAULT:
            continue
        prefix = IPv6Network((IPv6Address(lease["ip-address"]), int(lease["prefix-len"])))
        duid = bytes.fromhex(str(lease["duid"]).replace(":", ""))
        valid = int(lease["valid-lft"])
        expires = None if valid == 0xFFFFFFFF else now + (int(lease["cltt"]) + valid - unix_now)
        delegations.append(Delegation(prefix, duid, int(lease.get("iaid", 0)), expires))
    return delegations


class KeaDelegations:
    """Refreshes the home agent's :class:`DelegationBook` from Kea."""

    def __init__(self, source: DelegationSource, book: DelegationBook, context: AgentContext) -> None:
        self.source = source
        self.book = book
        self.context = context
        self.failing = False
        self.next_try = -math.inf
        self.last_asked = -math.inf

    def refresh(self, now: float, force: bool = False) -> None:
        """Ask Kea (not within ``retry_after`` of a failure unless ``force``) and update the book."""
        if not force and (now < self.next_try or now - self.last_asked < 1.0 / self.source.max_rate):
            return
        self.last_asked = now
        try:
            answer = kea_command(self.source.kea_control_socket, "lease6-get-all", self.source.timeout)
            delegations = leases_to_delegations(answer, now, time.time())
        except (KeaError, KeyError, ValueError) as error:
            if not self.failing:
                logger.error("cannot read DHCPv6 delegations, keeping the last answer: %s", error)
                self.context.trace.emit(TraceEvent.DELEGATIONS_UNAVAILABLE, error=str(error))
            self.failing = True
            self.next_try = now + self.source.retry_after
            return
        if self.failing:
            logger.info("DHCPv6 delegations readable again")
        self.failing = False
        self.book.update(delegations, now)
        self.context.trace.emit(TraceEvent.DELEGATIONS_READ, count=len(delegations))

    def listing(self, now: float) -> list[dict[str, object]]:
        """Ask Kea now, then the book as JSON-able dicts (control socket ``delegations``)."""
        self.refresh(now, force=True)
        return self.book.to_dicts(now)


class RefreshingDriver(MachineDriver[HomeAgentEvent]):
    """A :class:`MachineDriver` that re-reads the delegations before a Registration Request that needs
    them (:meth:`DelegationBook.needs_refresh`)."""

    def __init__(self, machine: HomeAgent, delegations: KeaDelegations, *args: Any) -> None:
        super().__init__(machine, *args)
        self.delegations = delegations

    def datagram_received(self, received: Received) -> None:
        kea, now = self.delegations, self.now()
        if kea.book.needs_refresh(received.payload, now, kea.source.max_age):
            kea.refresh(now)
        super().datagram_received(received)


def attach_delegations(machine: HomeAgent, source: DelegationSource, context: AgentContext) -> KeaDelegations:
    """Give ``machine`` a book for its configured nodes, fed from Kea."""
    book = DelegationBook.for_home_addresses(account.home_address for account in machine.config.mobile_nodes)
    machine.delegations = book
    return KeaDelegations(source, book, context)
