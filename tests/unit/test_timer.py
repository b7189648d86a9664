"""AgentTimer against a real event loop and a scripted machine."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from agents.runtime.timer import AgentTimer, check_loop_clock


class ScriptedMachine:
    """A machine whose deadlines are a sorted list; handle_timer drops the ones that are due."""

    def __init__(self, deadlines: list[float]) -> None:
        self.deadlines = sorted(deadlines)
        self.handled: list[float] = []

    def get_timer(self) -> float | None:
        return self.deadlines[0] if self.deadlines else None

    def handle_timer(self, now: float) -> None:
        self.handled.append(now)
        self.deadlines = [d for d in self.deadlines if d > now]


class StuckMachine(ScriptedMachine):
    def handle_timer(self, now: float) -> None:
        self.handled.append(now)  # forgets to advance its deadline


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 5.0))


def test_loop_time_is_clock_monotonic() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        check_loop_clock(loop)
        assert abs(loop.time() - time.clock_gettime(time.CLOCK_MONOTONIC)) < 0.005

    run(main())


def test_check_loop_clock_rejects_another_clock() -> None:
    class OffsetLoop:
        def time(self) -> float:
            return time.clock_gettime(time.CLOCK_MONOTONIC) + 3600

    with pytest.raises(RuntimeError, match="not CLOCK_MONOTONIC"):
        check_loop_clock(OffsetLoop())  # type: ignore[arg-type]


def test_fires_each_deadline_in_order_never_early() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadlines = [start + 0.03, start + 0.01, start + 0.02]
        machine = ScriptedMachine(deadlines)
        fired: list[float] = []
        timer = AgentTimer(machine, loop, on_fired=fired.append)
        timer.rearm()
        await asyncio.sleep(0.1)
        assert len(machine.handled) == 3
        assert all(now >= due for now, due in zip(machine.handled, sorted(deadlines), strict=True))
        assert fired == machine.handled
        assert timer.deadline is None

    run(main())


def test_rearm_moves_the_deadline_earlier() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        machine = ScriptedMachine([loop.time() + 10])
        timer = AgentTimer(machine, loop)
        timer.rearm()
        machine.deadlines.insert(0, loop.time() + 0.01)  # an input scheduled something sooner
        timer.rearm()
        assert timer.deadline == machine.deadlines[0]
        await asyncio.sleep(0.05)
        assert len(machine.handled) == 1
        assert timer.deadline == machine.deadlines[0]  # re-armed for the far one
        timer.cancel()

    run(main())


def test_a_later_deadline_keeps_the_earlier_handle_and_nothing_fires_late() -> None:
    """A renewal moves the machine's deadline later: the armed handle stays (no new loop handle per
    request), fires at its time with nothing due, and the timer is armed again for the later deadline,
    which is handled no earlier than it is due (RFC 5944 §3.8.1 expiry is never early, never skipped)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        machine = ScriptedMachine([start + 0.02])
        timer = AgentTimer(machine, loop)
        timer.rearm()
        machine.deadlines = [start + 0.06]  # moved later
        timer.rearm()
        assert timer.deadline == start + 0.02  # the earlier handle is kept
        await asyncio.sleep(0.04)
        assert len(machine.handled) == 1 and machine.deadlines == [start + 0.06]  # nothing was due
        assert timer.deadline == start + 0.06
        await asyncio.sleep(0.05)
        assert len(machine.handled) == 2 and machine.handled[1] >= start + 0.06
        assert machine.deadlines == [] and timer.deadline is None

    run(main())


def test_rearm_with_no_deadline_disarms() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        machine = ScriptedMachine([loop.time() + 0.01])
        timer = AgentTimer(machine, loop)
        timer.rearm()
        machine.deadlines.clear()
        timer.rearm()
        await asyncio.sleep(0.03)
        assert machine.handled == [] and timer.deadline is None

    run(main())


def test_cancel_is_final() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        machine = ScriptedMachine([loop.time() + 0.01])
        timer = AgentTimer(machine, loop)
        timer.rearm()
        timer.cancel()
        timer.rearm()
        await asyncio.sleep(0.03)
        assert machine.handled == []

    run(main())


def test_past_deadline_fires_at_once() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        past = loop.time() - 1.0
        machine = ScriptedMachine([past])
        AgentTimer(machine, loop).rearm()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(machine.handled) == 1 and machine.handled[0] > past

    run(main())


def test_errors_go_to_on_error_and_stop_the_timer() -> None:
    class Broken(ScriptedMachine):
        def handle_timer(self, now: float) -> None:
            super().handle_timer(now)
            raise KeyError("boom")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        machine = Broken([loop.time() + 0.005, loop.time() + 0.01])
        errors: list[BaseException] = []
        timer = AgentTimer(machine, loop, on_error=errors.append)
        timer.rearm()
        await asyncio.sleep(0.05)
        assert len(machine.handled) == 1
        assert len(errors) == 1 and isinstance(errors[0], KeyError)
        timer.rearm()
        assert timer.deadline is None

    run(main())


def test_stuck_machine_is_throttled_and_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> StuckMachine:
        loop = asyncio.get_running_loop()
        machine = StuckMachine([loop.time()])
        timer = AgentTimer(machine, loop)
        timer.rearm()
        await asyncio.sleep(0.1)
        timer.cancel()
        return machine

    with caplog.at_level(logging.WARNING, logger="agents.runtime.timer"):
        machine = run(main())
    assert 10 <= len(machine.handled) <= 150  # ~1 per ms, not a busy loop
    assert len([r for r in caplog.records if "kept its timer" in r.getMessage()]) == 1
