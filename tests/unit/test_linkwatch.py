"""The MN's carrier watcher (RFC 5944 §2.4.2: a carrier loss and return is the hint of a move), fed
hand-made RTM_NEWLINK messages: a drop and return that the kernel reports as one "up" message must still
be seen as a drop and a return (IFLA_CARRIER_DOWN_COUNT grew)."""

from __future__ import annotations

import struct

from agents.runtime.linkwatch import (
    IFF_LOWER_UP,
    IFF_UP,
    IFLA_CARRIER_DOWN_COUNT,
    RTM_NEWLINK,
    CarrierWatcher,
    link_messages,
)

UP = IFF_UP | IFF_LOWER_UP


def newlink(index: int, flags: int, down_count: int | None) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, flags, 0)
    attributes = struct.pack("=HH", 8, 3) + b"eth\x00"  # IFLA_IFNAME first, as the kernel sends it
    if down_count is not None:
        attributes += struct.pack("=HHI", 8, IFLA_CARRIER_DOWN_COUNT, down_count)
    payload = body + attributes
    return struct.pack("=IHHII", 16 + len(payload), RTM_NEWLINK, 0, 0, 0) + payload


class FakeSocket:
    def __init__(self, *reads: bytes) -> None:
        self.reads = list(reads)

    def recv(self, _size: int) -> bytes:
        if not self.reads:
            raise BlockingIOError
        return self.reads.pop(0)

    def close(self) -> None:
        pass


def watcher_seeing(*reads: bytes, state: bool = True, down_count: int = 4) -> list[bool]:
    seen: list[bool] = []
    watcher = CarrierWatcher("lo", seen.append)
    watcher.sock.close()
    watcher.sock = FakeSocket(*reads)  # type: ignore[assignment]
    watcher.index, watcher.state, watcher.down_count = 7, state, down_count
    for _ in reads:
        watcher._readable()
    return seen


def test_messages_carry_index_flags_and_the_down_count() -> None:
    data = newlink(7, UP, 5) + newlink(8, 0, None)
    assert list(link_messages(data)) == [(RTM_NEWLINK, 7, UP, 5), (RTM_NEWLINK, 8, 0, None)]


def test_separate_down_and_up_messages() -> None:
    assert watcher_seeing(newlink(7, IFF_UP, 5), newlink(7, UP, 5)) == [False, True]


def test_a_drop_reported_only_as_a_grown_down_count_is_a_drop_and_a_return() -> None:
    assert watcher_seeing(newlink(7, UP, 5)) == [False, True]


def test_nothing_new_for_another_interface_or_an_unchanged_count() -> None:
    assert watcher_seeing(newlink(9, UP, 9), newlink(7, UP, 4)) == []
