"""Mininet's CLI with mobility commands (design.md §5): ``bindings ha``, ``visitors fa1``, ``status mn1``,
``move mn1 fa2``, ``register mn1``, ``deregister mn1``. Everything else is Mininet's own CLI."""

from __future__ import annotations

import json
from typing import Any

from mininet.cli import CLI


class MobilityCLI(CLI):  # type: ignore[misc]  # mininet has no type information
    """``mininet>`` with the testbed's agents one word away."""

    prompt = "dsmip> "

    def __init__(self, bed: Any, **kwargs: Any) -> None:
        self.bed = bed
        super().__init__(bed.net, **kwargs)

    def _ask(self, line: str, command: str, usage: str) -> None:
        words = line.split()
        if len(words) != 1:
            print(f"usage: {usage}")
            return
        try:
            print(json.dumps(self.bed.ask(words[0], command), indent=2))
        except (OSError, RuntimeError) as error:
            print(f"{words[0]}: {error}")

    def do_bindings(self, line: str) -> None:
        """bindings NODE: the home agent's binding table."""
        self._ask(line, "bindings", "bindings ha")

    def do_visitors(self, line: str) -> None:
        """visitors NODE: a foreign agent's visitor list."""
        self._ask(line, "visitors", "visitors fa1")

    def do_status(self, line: str) -> None:
        """status NODE: an agent's state and counters."""
        self._ask(line, "status", "status mn1")

    def do_register(self, line: str) -> None:
        """register MN: register (again) now."""
        self._ask(line, "register", "register mn1")

    def do_deregister(self, line: str) -> None:
        """deregister MN: deregister now."""
        self._ask(line, "deregister", "deregister mn1")

    def do_move(self, line: str) -> None:
        """move MN TO [--no-carrier]: re-attach the mobile node to home, fa1, fa2, ..."""
        words = line.split()
        carrier = "--no-carrier" not in words
        words = [word for word in words if word != "--no-carrier"]
        if len(words) != 2 or words[0] not in self.bed.links:
            print(f"usage: move MN TO [--no-carrier]; mobile nodes: {', '.join(self.bed.links)}")
            return
        try:
            number = self.bed.move(words[0], words[1], carrier_events=carrier)
        except RuntimeError as error:
            print(error)
            return
        print(f"handover {number}: {words[0]} now on {words[1]}")


def run_cli(bed: Any) -> None:
    """Open the CLI until the user types ``exit`` (or Ctrl-D)."""
    MobilityCLI(bed)
