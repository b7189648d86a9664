"""SIGTERM deregistration of the `mn` runtime (RFC 5944 §3.6.1.2): every configured attempt within the stop
deadline, and a warning plus a trace line when the home agent never answered. Real asyncio loop and
timers, a fake socket (nothing is sent), the real machine and driver."""

from __future__ import annotations

import asyncio
import json
import logging
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from agents.mip.wire.registration import RegistrationRequest
from agents.runtime.frame import AgentArgs, AgentContext
from agents.runtime.roles.driver import MachineDriver
from agents.runtime.roles.mobile_node import MobileNodeEvents, MobileNodeRuntime, StopDeregistration
from agents.runtime.trace import TraceWriter
from tests.unit.test_mobile_node import make_mn, registered


class SilentSocket:
    """Records what the driver sends; no home agent ever answers."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, RegistrationRequest]] = []

    def send(self, payload: bytes, destination: IPv4Address, port: int, **_: Any) -> None:
        self.sent.append((asyncio.get_running_loop().time(), RegistrationRequest.decode(payload)))


class NoDatapath:
    """Accepts every datapath call (the tunnel is torn down after the deregistration)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


async def stop_unanswered(tmp_path: Path, attempts: int, stop_timeout: float) -> tuple[SilentSocket, float]:
    trace = TraceWriter(tmp_path / "mn.jsonl", "mn")
    context = AgentContext(AgentArgs("mn", tmp_path / "mn.toml"), "mn", trace, tmp_path / "mn.sock")
    loop = asyncio.get_running_loop()
    machine = make_mn(deregister_attempts=attempts)
    registered(machine, now=loop.time() - 5.0)  # registered a while ago
    sock = SilentSocket()
    events = MobileNodeEvents(machine.config, MobileNodeRuntime(), NoDatapath())  # type: ignore[arg-type]
    driver = MachineDriver(machine, sock, context, events.apply)  # type: ignore[arg-type]
    started = loop.time()
    try:
        await StopDeregistration(driver, machine, events, context, stop_timeout).run()
    finally:
        driver.timer.cancel()
        trace.close()
    return sock, loop.time() - started


def test_sigterm_sends_every_configured_attempt_then_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three attempts configured, 3 s to stop: three Lifetime-0 requests (the old fixed 3 s wait sent
    two), then a warning and a ``deregistration_gave_up`` trace line, within the deadline."""
    with caplog.at_level(logging.WARNING, logger="agents.runtime.roles.mobile_node"):
        sock, took = asyncio.run(stop_unanswered(tmp_path, attempts=3, stop_timeout=3.0))
    deregistrations = [request for _, request in sock.sent if request.lifetime == 0]
    assert len(deregistrations) == 3
    assert took < 3.0 + 0.5 + 0.3
    assert any("gave up deregistering after 3 attempt(s)" in r.getMessage() for r in caplog.records)
    lines = [json.loads(line) for line in (tmp_path / "mn.jsonl").read_text().splitlines()]
    [gave_up] = [line for line in lines if line["event"] == "deregistration_gave_up"]
    assert gave_up["attempts"] == 3
    assert [line["confirmed"] for line in lines if line["event"] == "deregistered"] == [False]
