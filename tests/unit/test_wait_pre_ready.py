"""The MN's ``wait-pre-ready`` control command (issue 14): the harness, playing the link layer, moves the
link the moment the pre-registration (RFC 4881 §3) is accepted, instead of polling ``status``."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from ipaddress import IPv4Address
from typing import Any

from agents.mip.common import events as ev
from agents.mip.common.config import CareOfMode, MobileNodeConfig
from agents.mip.mn.llh_pre import PreState
from agents.mip.mn.mobile_node import MobileNode
from agents.runtime.roles.mobile_node import handoff_command

HOA, HA = IPv4Address("192.0.2.10"), IPv4Address("192.0.2.1")
FA2, COA2 = IPv4Address("10.0.2.1"), IPv4Address("198.51.100.18")


@dataclasses.dataclass
class Context:
    loop: asyncio.AbstractEventLoop


class Driver:
    """What ``handoff_command`` uses of a MachineDriver: ``on_event``, ``context.loop``, ``now``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.context = Context(loop)
        self.applied: list[Any] = []
        self.on_event = self.applied.append

    def now(self) -> float:
        return self.context.loop.time()


def machine(state: PreState) -> MobileNode:
    config = MobileNodeConfig(HOA, HA, 0x100, bytes(16), care_of_mode=CareOfMode.FOREIGN_AGENT)
    node = MobileNode(config, wall_clock_offset=0.0, rng=random.Random(1))
    node._pre.state = state  # the pre-registration's own machine is tested in test_low_latency.py
    return node


def test_answers_when_the_pre_registration_is_accepted_not_at_the_timeout() -> None:
    async def run() -> tuple[dict[str, object], float, list[Any]]:
        loop = asyncio.get_running_loop()
        driver = Driver(loop)
        wait = handoff_command(driver, machine(PreState.REQUESTED), None)["wait-pre-ready"]  # type: ignore[arg-type]
        ready = ev.PreRegistrationReady(FA2, COA2)
        loop.call_later(0.01, driver.on_event, ready)  # the accepting reply, applied by the driver
        started = loop.time()
        answer = await wait({"timeout": 5.0})
        return answer, loop.time() - started, driver.applied

    answer, took, applied = asyncio.run(run())
    assert answer["ready"] is True
    assert took < 1.0  # the event, not the 5 s timeout
    assert applied == [ev.PreRegistrationReady(FA2, COA2)]  # still applied as before


def test_abandoned_or_never_started_answers_not_ready() -> None:
    async def run(state: PreState, event: Any | None) -> dict[str, object]:
        loop = asyncio.get_running_loop()
        driver = Driver(loop)
        wait = handoff_command(driver, machine(state), None)["wait-pre-ready"]  # type: ignore[arg-type]
        if event is not None:
            loop.call_later(0.01, driver.on_event, event)
        return dict(await wait({"timeout": 5.0}))

    abandoned = ev.PreRegistrationAbandoned(FA2, "denied")
    assert asyncio.run(run(PreState.REQUESTED, abandoned))["ready"] is False
    assert asyncio.run(run(PreState.IDLE, None)) == {"ready": False, "state": "idle"}
    assert asyncio.run(run(PreState.READY, None))["ready"] is True


def test_times_out_when_nothing_comes() -> None:
    async def run() -> dict[str, object]:
        driver = Driver(asyncio.get_running_loop())
        wait = handoff_command(driver, machine(PreState.REQUESTED), None)["wait-pre-ready"]  # type: ignore[arg-type]
        return dict(await wait({"timeout": 0.05}))

    assert asyncio.run(run()) == {"ready": False, "state": "requested"}
