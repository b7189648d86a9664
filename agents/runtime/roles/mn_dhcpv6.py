"""The mobile node's DHCPv6-PD bootstrap over its home-address tunnel (RFC 5454 §3.7.1, RFC 8415 §18.2).

After the IPv4 registration the node registers its tunnel link-local ``fe80::<HoA>`` (Prefix Length 255);
once the home agent accepts it (code 0/1) it runs :class:`agents.mip.mn.pd_client.PdClient` from
``[fe80::<HoA>]:546`` on the tunnel device to ``ff02::1:2`` port 547, which the datapath carries
IPv6-in-IPv4 to the home agent (and via a foreign agent, inside its IPv4 tunnel too). A delegated prefix is
registered in explicit mode (the requested prefixes are set, which re-registers, RFC 5454 §3.5); the node's
address in it is configured by the usual prefix-accepted events and kept across moves. Lease expiry
withdraws the prefix by omission (§3.8); SIGTERM, ``mipctl deregister`` and ``mipctl dhcpv6-release`` send a
Release first.

Why our own client rather than dhcpcd: the client has to be driven by the registration machine (start
when the link-local is accepted, register the prefix the moment it is delegated, drop it by omission when
the lease ends, Release before deregistering) and to keep its lease across moves while the tunnel device
and its link-local stay. dhcpcd (not installed here; 9.4 supports TUN) would run as a second daemon whose
DUID, link-local source and hook scripts would have to be kept in step with the agent through its
control socket; our sans-I/O client (agents/mip/mn/pd_client.py and the dhcpv6 codec) runs in the agent's
loop and is unit-tested on a fake clock against RFC 8415's timers and against scapy's encodings.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from dataclasses import dataclass
from ipaddress import IPv6Network
from pathlib import Path
from typing import Any, assert_never

from agents.mip.common import events as ev
from agents.mip.common.config import MobileNodeConfig
from agents.mip.common.events import MobileNodeEvent
from agents.mip.common.trace_schema import TraceEvent
from agents.mip.ha.delegation import DOCUMENTATION_ENTERPRISE, mobile_node_duid
from agents.mip.mn import pd_events as pe
from agents.mip.mn.mobile_node import MobileNode
from agents.mip.mn.pd_client import PdClient, PdClientConfig, PdState
from agents.mip.mn.pd_events import PdClientEvent
from agents.mip.wire.dhcpv6 import CLIENT_PORT
from agents.runtime.configfile import ConfigError, parse_sections, read_text
from agents.runtime.control import Handler
from agents.runtime.frame import AgentContext
from agents.runtime.roles.driver import EventHandler, MachineDriver, apply_events

logger = logging.getLogger(__name__)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


@dataclass(frozen=True)
class Dhcpv6PdSettings:
    """`[dhcpv6_pd]` in the MN's TOML: present = bootstrap IPv6 by DHCPv6-PD (RFC 5454 §3.7.1)."""

    rapid_commit: bool = True
    """Solicit with Rapid Commit (2 messages); false: Solicit/Advertise/Request/Reply (RFC 8415 §18.2.1)."""
    iaid: int = 1
    length_hint: int | None = None
    requested: IPv6Network | None = None
    """Take only prefixes inside this one (sent as the hint)."""
    duid: bytes | None = None
    """Client DUID (hex); default DUID-EN 32473 ``dsmip4`` + HoA, which the home agent maps to the node."""
    sol_max_delay: float = 1.0
    """Random delay before the first Solicit, 0..this many seconds (RFC 8415 §18.2.1: SOL_MAX_DELAY 1 s)."""
    sol_max_rt: float = 3600.0
    ren_timeout: float = 10.0
    reb_timeout: float = 10.0
    release_wait: float = 1.5
    """Seconds SIGTERM waits for the Release's Reply before deregistering."""

    def __post_init__(self) -> None:
        if not 0 <= self.iaid <= 0xFFFFFFFF:
            raise ValueError("iaid must fit in 32 bits")
        if self.requested is not None and self.requested.prefixlen > 64:
            raise ValueError("requested must be /64 or shorter")

    def client_config(self, node: MobileNodeConfig) -> PdClientConfig:
        duid = self.duid or mobile_node_duid(node.home_address, DOCUMENTATION_ENTERPRISE)
        return PdClientConfig(
            duid,
            iaid=self.iaid,
            rapid_commit=self.rapid_commit,
            requested=self.requested,
            length_hint=self.length_hint,
            sol_max_delay=self.sol_max_delay,
            sol_max_rt=self.sol_max_rt,
            ren_timeout=self.ren_timeout,
            reb_timeout=self.reb_timeout,
        )


def load_mn_sections(
    path: Path, protocol: type[Any], runtime: type[Any]
) -> tuple[Any, Any, Dhcpv6PdSettings | None]:
    """`[mobile_node]` (required), `[runtime]` and `[dhcpv6_pd]` of an MN's TOML; unknown keys are errors."""
    text = read_text(path)
    schema = {"mobile_node": protocol, "runtime": runtime, "dhcpv6_pd": Dhcpv6PdSettings}
    try:
        sections = parse_sections(text, schema, ("mobile_node",))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return sections["mobile_node"], sections.get("runtime", runtime()), sections.get("dhcpv6_pd")


def open_client_socket(interface: str) -> tuple[socket.socket, int]:
    """UDP 546 bound to the tunnel device; multicast out of it with hop limit 1 (RFC 8415 §7.1)."""
    index = socket.if_nametoindex(interface)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        sock.bind(("::", CLIENT_PORT))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock, index


class PrefixDelegation:
    """Glue between the MN's registration machine and the PD client (one per mobile node agent)."""

    def __init__(
        self,
        settings: Dhcpv6PdSettings,
        node: MobileNodeConfig,
        machine: MobileNode,
        context: AgentContext,
        interface: str,
    ) -> None:
        self.settings = settings
        self.node = node
        self.machine = machine
        self.context = context
        self.interface = interface
        self.client = PdClient(settings.client_config(node), random.Random())
        self.timer = context.make_timer(self.client, on_fired=lambda _now: self.flush())
        self.driver: MachineDriver[MobileNodeEvent] | None = None
        self.link_local_asked = node.link_local_bootstrap
        self.delegated: IPv6Network | None = None
        self.withdraw_on_release = False
        self.closing = False
        self.sock: socket.socket | None = None
        self.index = 0

    def attach(self, driver: MachineDriver[MobileNodeEvent]) -> None:
        """The MN's driver: its clock, and a flush after each change of the requested prefixes."""
        self.driver = driver
        self.sock, self.index = open_client_socket(self.interface)
        self.context.loop.add_reader(self.sock.fileno(), self._readable)
        self.context.on_shutdown(self._close, name="close the DHCPv6 client socket")

    def now(self) -> float:
        return self.context.loop.time()

    def observing(self, apply: EventHandler[MobileNodeEvent]) -> EventHandler[MobileNodeEvent]:
        """Wrap the MN's event handler: apply each event, then react to it here."""

        def handler(event: MobileNodeEvent) -> None:
            apply(event)
            self.observe(event)

        return handler

    def observe(self, event: MobileNodeEvent) -> None:
        """React after the MN's driver finished its flush (``call_soon``: never re-enter it). An observer:
        the MN's role applied every event already; only these three kinds concern the PD client."""
        match event:
            case ev.RegistrationAccepted() if not self.link_local_asked:
                self.link_local_asked = True
                self.context.loop.call_soon(self._set_prefixes)
            case ev.PrefixAccepted() if event.link_local and self.startable():
                self.context.loop.call_soon(self._start)
            case ev.PrefixRejected() if event.link_local:
                logger.warning("the home agent refused the link-local (code %s): no DHCPv6-PD", event.code)
            case ev.PrefixRejected() if event.prefix == self.delegated:
                logger.warning(
                    "the home agent refused the delegated prefix %s (code %s)", event.prefix, event.code
                )
            case _:
                pass

    def startable(self) -> bool:
        """Not started yet, or stopped by a deregistration's Release (not an explicit one, not shutdown)."""
        idle = self.client.state is PdState.IDLE
        return idle or (
            self.client.state is PdState.STOPPED and not self.withdraw_on_release and not self.closing
        )

    def _start(self) -> None:
        self.client.start(self.now())
        self.flush()

    def _set_prefixes(self) -> None:
        prefixes = self.node.prefixes + ((self.delegated,) if self.delegated else ())
        self.machine.set_prefixes(prefixes, self.now(), link_local=True)
        if self.driver is not None:
            self.driver.flush()

    def flush(self) -> None:
        for datagram in self.client.datagrams_to_send(self.now()):
            if self.sock is None:
                break
            try:
                self.sock.sendto(datagram.payload, (str(datagram.destination), datagram.port, 0, self.index))
            except OSError as error:
                logger.warning("DHCPv6 send failed: %s", error)
                self.context.trace.emit(TraceEvent.DHCPV6_SEND_FAILED, error=str(error))
        apply_events(self.apply, self.client.next_event, self.context, budgeted=False)
        self.timer.rearm()

    def apply(self, event: PdClientEvent) -> None:
        """Every event the PD client emits, matched (mypy: ``assert_never`` flags a new one left out)."""
        match event:
            case pe.PrefixDelegated():
                if event.prefix != self.delegated:
                    logger.info("DHCPv6 delegated %s (%s)", event.prefix, event.how)
                    self.delegated = event.prefix
                    self.context.loop.call_soon(self._set_prefixes)
            case pe.DelegationLost():
                logger.info("DHCPv6 prefix %s gone (%s): withdrawn by omission", event.prefix, event.reason)
                self.delegated = None
                if event.reason != "released" or self.withdraw_on_release:  # else a deregistration follows
                    self.context.loop.call_soon(self._set_prefixes)
            case pe.NoPrefixAvailable():
                logger.warning("DHCPv6: no prefix available (%s): staying IPv4-only", event.message)
            case pe.Dhcpv6Sent() | pe.Dhcpv6Received() | pe.Dhcpv6Ignored() | pe.ReleaseFinished():
                pass  # trace only: written by trace_and_apply
            case _:
                assert_never(event)

    def _readable(self) -> None:
        if self.sock is None:
            return
        while True:
            try:
                data, _source = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            self.client.receive_datagram(data, self.now())
        self.flush()

    async def release(self, withdraw: bool = False) -> None:
        """Release the prefix (RFC 8415 §18.2.7) and wait briefly for the server's Reply. ``withdraw``:
        also re-register without it (§18.2.7: stop using it); without, a deregistration is about to follow."""
        self.withdraw_on_release = withdraw
        if self.client.state not in (PdState.BOUND, PdState.RENEWING, PdState.REBINDING):
            self.client.stop()
            return
        self.client.release(self.now())
        self.flush()
        deadline = self.now() + self.settings.release_wait
        while not self._released() and self.now() < deadline:
            await asyncio.sleep(0.02)

    def _released(self) -> bool:
        return self.client.state is PdState.STOPPED

    def _close(self) -> None:
        self.closing = True
        if self.sock is not None:
            self.context.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def commands(self, base: dict[str, Handler]) -> dict[str, Handler]:
        """``base`` plus `mipctl dhcpv6` (status) and `dhcpv6-release`; `deregister` releases first."""

        def release(_args: dict[str, Any]) -> dict[str, object]:
            self.context.create_task(self.release(withdraw=True), name="dhcpv6 release")
            return self.client.status(self.now())

        async def release_then(deregister: Handler, args: dict[str, Any]) -> None:
            await self.release()
            deregister(args)

        def deregister(args: dict[str, Any]) -> dict[str, object]:
            """Release the prefix (RFC 8415 §18.2.7), then deregister (RFC 5944 §3.6.1.2)."""
            self.context.create_task(release_then(base["deregister"], args), name="release, deregister")
            return {"accepted": True, "releasing": self.client.status(self.now())}

        handlers = dict(base)
        handlers |= {"dhcpv6": lambda _args: self.client.status(self.now()), "dhcpv6-release": release}
        if "deregister" in base:
            handlers["deregister"] = deregister
        return handlers
