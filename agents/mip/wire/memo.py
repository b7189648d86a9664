"""One bounded memo rule for answers that are pure functions of their keys (issue 9): the home agent's
renewal path hands out the very same decoded objects for the same bytes, and a stream of new keys (a flood)
cannot grow a memo without end: it is emptied when it reaches its size."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, value: V, size: int) -> V:
    """Store ``value`` under ``key`` in ``memo`` (emptied first when it holds ``size`` entries); return it."""
    if len(memo) >= size:
        memo.clear()
    memo[key] = value
    return value
