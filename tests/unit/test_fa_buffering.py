"""The FA datapath's buffer for an expected visitor (RFC 4881 §3.1, §4; agents.mip.fa.llh_buffer) on a
fake loop clock: held before attachment, flushed in order through the usual checks, dropped on timeout."""

from __future__ import annotations

from typing import Any

from agents.datapath.fa_tables import ForeignAgentTable
from agents.datapath.foreign_agent import UserspaceForeignAgent, VisitorRoute, _Tally
from agents.mip.fa.llh_buffer import VisitorBuffers
from agents.runtime.roles.fa_access import ipv4_packet
from tests.unit.test_fa_runtime import COA, HA, HOA, MAC


class FakeLoop:
    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Any]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> Any:
        entry = (when, callback)
        self.timers.append(entry)

        class Handle:
            def cancel(_self) -> None:
                if entry in self.timers:
                    self.timers.remove(entry)

        return Handle()

    def advance(self, to: float) -> None:
        self.now = to
        for when, callback in sorted(self.timers, key=lambda item: item[0]):
            if when <= to:
                self.timers.remove((when, callback))
                callback()


def datapath(limit: int = 8) -> tuple[UserspaceForeignAgent, list[tuple[bytes, bytes]], FakeLoop]:
    frames: list[tuple[bytes, bytes]] = []
    path = object.__new__(UserspaceForeignAgent)
    path.send_frame = lambda packet, mac: frames.append((packet, mac))
    path.tally, path.on_drop = _Tally(), None
    path.visitors = ForeignAgentTable()
    path.buffers = VisitorBuffers(limit=limit)
    path._buffer_timer = None
    loop = FakeLoop()
    path._loop = loop  # type: ignore[assignment]
    return path, frames, loop


def tunnelled(n: int) -> bytes:
    return ipv4_packet(HA, COA, 4, ipv4_packet(HA, HOA, 17, bytes([n]) * 8, 64), 64)


def test_packets_for_an_expected_visitor_wait_for_its_attachment_rfc4881_3_1() -> None:
    path, frames, loop = datapath()
    path.expect(HOA, timeout=1.0)
    path.decapsulate(tunnelled(1))  # before the visitor entry exists (the reply is still on its way)
    path.visitors.put(VisitorRoute(HOA, HA, COA, MAC, reverse_tunnel=True))
    path.decapsulate(tunnelled(2))
    assert frames == []
    loop.advance(0.2)
    assert path.attach(HOA) == 2
    assert [packet[-1] for packet, _ in frames] == [1, 2] and all(mac == MAC for _, mac in frames)
    path.decapsulate(tunnelled(3))  # attached: straight through
    assert len(frames) == 3


def test_overflow_and_timeout_are_counted_not_reported_as_attacks() -> None:
    path, frames, loop = datapath(limit=2)
    path.expect(HOA, timeout=1.0)
    for n in range(5):
        path.decapsulate(tunnelled(n))
    counters = path.counters().to_dict()
    assert counters["drops"]["buffer_full"] == 3  # type: ignore[index]
    loop.advance(1.0)  # the trigger never became a move
    assert path.counters().to_dict()["drops"]["buffer_timeout"] == 2  # type: ignore[index]
    assert path.attach(HOA) == 0 and frames == []
