"""What a lab is: its folder, the scenario it starts, the settings a student may change, the variant drawn
from the student's seed, and the graded tasks."""

from __future__ import annotations

import hashlib
import math
import random
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labs.errors import LabError
from labs.grading import Task
from labs.runview import STUDENT

LABS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Setting:
    """One setting of a lab's ``settings.toml``: its type and what it means."""

    kind: type
    means: str
    low: float | None = None
    """The smallest value allowed (numbers)."""
    high: float | None = None
    """The largest value allowed (numbers)."""
    pattern: str | None = None
    """A regular expression the whole text must match (text)."""
    choices: tuple[str, ...] = ()
    """The texts allowed, if given."""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` (already of :attr:`kind`) cannot start the network, or None."""
        if isinstance(value, float) and not math.isfinite(value):
            return "want a finite number"
        number = isinstance(value, int | float) and not isinstance(value, bool)
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        if number and not low <= value <= high:
            return f"want {low:g} to {high:g}"
        if isinstance(value, str):
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                return f"want {self.means.split(',')[-1].strip()}"
            if self.choices and value not in self.choices:
                return f"want one of {', '.join(self.choices)}"
        return None


@dataclass(frozen=True)
class Lab:
    number: str
    name: str
    title: str
    scenario: str
    minutes: int
    settings: Mapping[str, Setting]
    solution: Callable[[Mapping[str, Any]], dict[str, Any]]
    """variant → the reference solution's settings (the starting state with the fix applied)."""
    draw: Callable[[random.Random], dict[str, Any]]
    """The variant from the student's seed: keys, timings, which handover a question asks about."""
    argv: Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]
    """(variant, settings) → the scenario's options."""
    tasks: Callable[[Mapping[str, Any]], list[Task]]

    @property
    def folder(self) -> Path:
        return LABS_DIR / f"{self.number}-{self.name}"

    def variant(self, student: str) -> dict[str, Any]:
        seed = student_seed(self.number, student)
        return {"seed": seed} | self.draw(random.Random(seed))

    def load_settings(self, path: Path | None) -> dict[str, Any]:
        """The settings file (default: the lab's own ``settings.toml``, the starting state), checked."""
        path = path or self.folder / "settings.toml"
        values = read_toml(path, "settings")
        unknown = sorted(set(values) - set(self.settings))
        if unknown:
            raise LabError(
                f"{path}: unknown setting {', '.join(unknown)} (lab {self.number} has: "
                f"{', '.join(self.settings)})"
            )
        for key, setting in self.settings.items():
            if key not in values:
                raise LabError(f"{path}: setting {key} is missing ({setting.means})")
            value = values[key]
            good = isinstance(value, setting.kind) and not (
                setting.kind is not bool and isinstance(value, bool)
            )
            if setting.kind is float and isinstance(value, int) and not isinstance(value, bool):
                values[key], good = float(value), True
            if not good:
                raise LabError(f"{path}: {key} = {value!r}: want a {setting.kind.__name__} ({setting.means})")
            why = setting.problem(values[key])
            if why:
                raise LabError(f"{path}: {key} = {value!r}: {why} ({setting.means})")
        return values


def student_seed(number: str, student: str) -> int:
    """The variant's seed: a hash of the lab and the student ID (the same on every machine)."""
    if not STUDENT.fullmatch(student):
        raise LabError(f"student ID {student!r}: use 1-40 letters, digits, '.', '_' or '-'")
    return int(hashlib.sha256(f"dsmip-lab{number}:{student}".encode()).hexdigest()[:8], 16)


def draw_key(rng: random.Random) -> str:
    """A 128-bit MN-HA key (hex) for this variant."""
    return f"{rng.getrandbits(128):032x}"


def key_options(node: str, spi: int, key: str, *, ha_index: int = 0, mn_key: str | None = None) -> list[str]:
    """``--set`` options giving the MN ``node`` and the HA's account for it the variant's key (the MN may
    get another, ``mn_key``: a wrong key to find)."""
    return [
        "--set",
        f"ha.home_agent.mobile_nodes.{ha_index}.key={key}",
        "--set",
        f"{node}.mobile_node.key={mn_key or key}",
    ]


def read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LabError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise LabError(f"{path}: cannot read the {what} file ({error})") from None
    try:
        return dict(tomllib.loads(text))
    except tomllib.TOMLDecodeError as error:
        raise LabError(f"{path}: not valid TOML ({error})") from None
