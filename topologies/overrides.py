"""Agent configuration overrides: ``NODE.SECTION.KEY=VALUE`` settings applied to a topology's agent configs.

The teaching labs (``python -m labs``) start scenarios with one thing changed (a wrong key, reverse
tunnelling off, a slow advertisement interval); every scenario takes them as ``--set`` options. A path
walks the TOML tables of one agent's config (``mn1.mobile_node.key``); a number walks an array of tables
(``ha.home_agent.mobile_nodes.0.key``). Every table on the way must exist; the last key may be new (the
agent then checks it, rejecting a key it does not know).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class OverrideError(ValueError):
    """A setting that names no agent, no table of its config, or has no value."""


@dataclass(frozen=True)
class Override:
    """One ``node.path=value`` setting."""

    node: str
    path: tuple[str, ...]
    value: Any

    def __str__(self) -> str:
        return f"{self.node}.{'.'.join(self.path)}"


def parse_override(text: str) -> Override:
    """``NODE.SECTION[.KEY...]=VALUE``; VALUE is a TOML value (``true``, ``3``, ``"abc"``, ``[1, 2]``) or,
    when it is not one, the text itself as a string."""
    name, equals, raw = text.partition("=")
    parts = name.strip().split(".")
    if not equals or len(parts) < 3 or not all(parts):
        raise OverrideError(
            f"{text!r}: want NODE.SECTION.KEY=VALUE (e.g. mn1.mobile_node.reverse_tunnel=false)"
        )
    raw = raw.strip()
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    return Override(parts[0], tuple(parts[1:]), value)


def apply_overrides(configs: Mapping[str, Any], overrides: Iterable[Override]) -> None:
    """Set each override in ``configs`` (node → agent config dict), in place."""
    for override in overrides:
        config = configs.get(override.node)
        if not isinstance(config, dict):
            known = ", ".join(sorted(name for name, value in configs.items() if isinstance(value, dict)))
            raise OverrideError(f"{override}: no agent {override.node!r} in this topology (agents: {known})")
        target: Any = config
        for step in override.path[:-1]:
            target = _step(target, step, override)
        if not isinstance(target, dict):
            raise OverrideError(f"{override}: {override.path[-2]} is not a table")
        target[override.path[-1]] = override.value


def _step(table: Any, step: str, override: Override) -> Any:
    if isinstance(table, list) and step.isdigit() and int(step) < len(table):
        return table[int(step)]
    if isinstance(table, dict) and isinstance(table.get(step), dict | list):
        return table[step]
    raise OverrideError(f"{override}: the config has no table {step!r} there")
