"""The mobile node's side of RFC 3519 on the wire: keepalives out of the registration socket (the port the
NAT mapped, §4.2) and, on the way in, Tunnel Data sorted into Echo Replies to our keepalives (for the
machine, §4.10) and everything else (for the datapath)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from agents.datapath.native import NativeMobileNode
from agents.datapath.userspace import UserspaceMobileNode
from agents.mip.common.config import MobileNodeConfig
from agents.mip.common.events import KeepaliveDue
from agents.mip.mn.keepalive import keepalive_reply_sequence, keepalive_request
from agents.mip.mn.mobile_node import MobileNode
from agents.runtime.udp import MobileIpSocket, Received


class NatKeepalives:
    """Sends the machine's keepalives and recognises the home agent's answers."""

    def __init__(self, config: MobileNodeConfig, sock: MobileIpSocket) -> None:
        self.config = config
        self.sock = sock
        self.identifier = os.getpid() & 0xFFFF
        """ICMP Echo identifier of this agent's keepalives (RFC 792)."""

    def send(self, event: KeepaliveDue) -> None:
        payload = keepalive_request(event.home_address, event.home_agent, self.identifier, event.sequence)
        self.sock.send(payload, event.home_agent, self.config.home_agent_port)

    def tunnel_data_handler(
        self,
        machine: MobileNode,
        datapath: UserspaceMobileNode | NativeMobileNode,
        now: Callable[[], float],
        flush: Callable[[], None],
    ) -> Callable[[Received], None]:
        """What the driver calls for every Tunnel Data message on the registration socket."""
        config = self.config

        def received(message: Received) -> None:
            address, port = message.source
            if address == config.home_agent and port == config.home_agent_port:
                sequence = keepalive_reply_sequence(
                    message.payload, config.home_address, config.home_agent, self.identifier
                )
                if sequence is not None:
                    machine.keepalive_answered(sequence, now())
                    flush()
                    return
            datapath.receive_udp_tunnel(message.payload, address, port, message.destination)

        return received


class TrafficWatch:
    """Tells the machine when packets went both ways through the tunnel (RFC 3519 §4.9: no keepalive
    while the tunnel is in use), by looking at the datapath's counters a few times per K."""

    def __init__(
        self, machine: MobileNode, datapath: UserspaceMobileNode | NativeMobileNode, now: Callable[[], float]
    ) -> None:
        self.machine = machine
        self.datapath = datapath
        self.now = now
        self.last = (0, 0)

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            counters = self.datapath.counters()
            current = (counters.encapsulated_packets, counters.decapsulated_packets)
            if current[0] > self.last[0] and current[1] > self.last[1]:
                self.machine.tunnel_traffic(self.now())
            self.last = current
