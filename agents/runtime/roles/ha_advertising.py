"""The home agent's Agent Advertisements on its home link (RFC 5944 §2.1, §2.4.3): the H bit lets a mobile
node that comes back see that it is home. Off unless `[runtime.advertisement]` is configured.

The sending and solicitation-hearing side is the foreign agent's access-link code (:mod:`.fa_access`); the
schedule, sequence numbers and answers come from the sans-I/O :class:`agents.mip.fa.advertiser.Advertiser`.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address

from agents.mip.common.config import HomeAgentConfig
from agents.mip.common.trace_schema import TraceEvent
from agents.mip.fa.advertiser import Advertiser, home_agent_advertiser
from agents.mip.fa.config import AdvertisementConfig
from agents.runtime.frame import AgentContext
from agents.runtime.roles.fa_access import AccessLink


class HomeAdvertising:
    """One advertiser, its timer and the home link it speaks on."""

    def __init__(
        self,
        config: HomeAgentConfig,
        advertisement: AdvertisementConfig,
        interface: str,
        context: AgentContext,
    ) -> None:
        self.context = context
        self.advertiser: Advertiser = home_agent_advertiser(config, advertisement, random.Random())
        self.link = AccessLink(interface, config.address)
        context.on_shutdown(self.link.close, name="close the home-link advertising sockets")
        self.timer = context.make_timer(self.advertiser, on_fired=lambda _now: self.flush())
        context.on_shutdown(self.withdraw, name="withdraw home agent advertisements")

    def start(self) -> None:
        self.link.start(self.context.loop, self.solicitation_received)
        self.flush()

    def solicitation_received(self, source: IPv4Address, mac: bytes) -> None:
        self.advertiser.receive_solicitation(source, self.context.loop.time(), link_address=mac)
        self.flush()

    def flush(self) -> None:
        for advert in self.advertiser.advertisements_to_send(self.context.loop.time()):
            if advert.link_address is not None:
                self.link.send_icmp_to(advert.payload, advert.destination, advert.link_address, advert.ttl)
            else:
                self.link.send_icmp(advert.payload, advert.destination)
            self.context.trace.emit(
                TraceEvent.ADVERTISEMENT_SENT,
                destination=str(advert.destination),
                sequence=advert.sequence,
                solicited=advert.solicited,
            )
        self.timer.rearm()

    def withdraw(self) -> None:
        """SIGTERM: one last advertisement with lifetime 0 (RFC 1256 §5.2)."""
        self.advertiser.withdraw(self.context.loop.time())
        self.flush()
        self.timer.cancel()
