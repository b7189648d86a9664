"""The one rate limiter for security log and trace lines (RFC 5944 §3.8.2.1 "log a security exception",
RFC 3024 §4.3.2), on a fake clock: at most 20 lines in each 1 s window plus one summary, i.e. 21 lines/s,
whatever the offered load; the summary is written by a timer and at exit, not only by a later event."""

from __future__ import annotations

import asyncio
import json
import logging
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from agents.datapath.base import DropEvent, DropReason
from agents.mip.common.budgets import LogBudget
from agents.mip.common.events import AuthenticationFailed, MalformedDatagram, RegistrationExpired
from agents.runtime.roles.driver import trace_and_apply
from agents.runtime.roles.drop_report import DropReporter
from agents.runtime.security_log import SecurityLog
from agents.runtime.trace import TraceWriter

SOURCE, HOME = IPv4Address("198.51.100.66"), IPv4Address("192.0.2.10")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_admits_per_window_and_counts_the_rest_per_category() -> None:
    budget = LogBudget(per_window=20, window=1.0)
    admitted = [budget.admit("a" if i % 2 else "b", 5.0 + i * 1e-4) for i in range(1000)]
    assert sum(admitted) == 20 and admitted[:20] == [True] * 20
    assert budget.take_suppressed() == {"a": 490, "b": 490} and budget.suppressed == 0
    assert budget.admit("a", 6.0)  # a new window
    with pytest.raises(ValueError):
        LogBudget(per_window=0)


def test_flood_of_20k_per_second_gives_at_most_21_lines_per_second(caplog: pytest.LogCaptureFixture) -> None:
    """10 s at 20,000 security events/s, summary flushed once a second: ≤ 21 log lines per second."""
    clock = FakeClock()
    log = SecurityLog(TraceWriter(None, "ha"), clock=clock)
    per_second = []
    with caplog.at_level(logging.WARNING, logger="agents.security"):
        for _second in range(10):
            before = len(caplog.records)
            for _ in range(20_000):
                clock.now += 1 / 20_000
                log.report("authentication_failed", lambda: {"source": str(SOURCE)})
            log.flush()
            per_second.append(len(caplog.records) - before)
    assert per_second == [21] * 10
    assert "19980 more security events not logged" in caplog.records[-1].getMessage()


def read_trace(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_trace_volume_is_bounded_by_the_same_budget(tmp_path: Path) -> None:
    """The driver's trace_and_apply sends security events and flood noise through the budget; other
    events are traced as before."""
    clock = FakeClock()
    trace = TraceWriter(tmp_path / "t.jsonl", "ha")
    log = SecurityLog(trace, clock=clock)
    applied: list[object] = []
    for i in range(5000):
        event: object = (
            AuthenticationFailed(SOURCE, HOME, 256, "authenticator does not verify")
            if i % 2
            else MalformedDatagram(SOURCE, 434, "short")
        )
        trace_and_apply(event, applied.append, trace, log)
    for _ in range(3):  # not a security event: traced every time
        trace_and_apply(RegistrationExpired(SOURCE), applied.append, trace, log)
    log.close()
    trace.close()
    lines = read_trace(tmp_path / "t.jsonl")
    assert len(applied) == 5003  # every event still reaches the role
    assert len(lines) == 24 and [line["event"] for line in lines[20:23]] == ["registration_expired"] * 3
    assert lines[-1]["event"] == "security_suppressed" and lines[-1]["count"] == 4980
    assert lines[-1]["by_event"] == {"authentication_failed": 2490, "malformed_datagram": 2490}


def test_summary_is_flushed_by_the_timer_and_at_exit(tmp_path: Path) -> None:
    """A final burst reaches the log with no later event: the 1 s timer writes the summary, and close()
    (at exit) writes whatever is left."""
    trace = TraceWriter(tmp_path / "t.jsonl", "ha")

    async def burst() -> None:
        log = SecurityLog(trace, per_second=2)
        log.start(asyncio.get_running_loop())
        for _ in range(5):
            log.report("security_drop", lambda: {"n": 1})
        await asyncio.sleep(1.3)  # no further event: only the timer can write the summary
        timer_lines = [line["event"] for line in read_trace(tmp_path / "t.jsonl")]
        assert timer_lines.count("security_suppressed") == 1
        for _ in range(4):
            log.report("security_drop", lambda: {"n": 2})
        log.close()

    asyncio.run(burst())
    trace.close()
    summaries = [line for line in read_trace(tmp_path / "t.jsonl") if line["event"] == "security_suppressed"]
    assert [s["count"] for s in summaries] == [3, 2]


def test_datapath_drops_use_the_same_budget(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The DropReporter (all roles) checks the shared budget on the datapath thread: past it, nothing is
    queued on the event loop; what was admitted is logged and traced there."""
    trace = TraceWriter(tmp_path / "t.jsonl", "ha")
    drop = DropEvent(DropReason.UNNESTED_HOME_ADDRESS, 41, HOME, IPv4Address("192.0.2.1"), "2001:db8::1")

    async def flood() -> None:
        context = type("Context", (), {})()
        context.security = SecurityLog(trace)
        context.loop = asyncio.get_running_loop()
        reporter = DropReporter(context)  # type: ignore[arg-type]
        for _ in range(1000):
            reporter.report(drop)
        await asyncio.sleep(0)
        context.security.close()

    with caplog.at_level(logging.WARNING, logger="agents.security"):
        asyncio.run(flood())
    trace.close()
    events = [line["event"] for line in read_trace(tmp_path / "t.jsonl")]
    assert events.count("security_drop") == 20 and events[-1] == "security_suppressed"
    assert len(caplog.records) == 21
