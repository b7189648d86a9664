"""Marking: each task's value measured from the run folder, compared with the student's answer.

A *question* is right when the answer equals what this run measured (numbers within the task's tolerance);
a *configuration* task is right when the behaviour the fix should cause is in the captures or traces of the
run (never from the settings text). Each wrong task gets a hint naming the packet or trace line to look at.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labs.errors import Missing
from labs.runview import RunView


@dataclass(frozen=True)
class Measured:
    """What the run shows for one task, and where (``pcaps/x.pcap frame 12``, ``traces/mn1.jsonl line 7``)."""

    value: Any
    where: str


@dataclass(frozen=True)
class Task:
    """One graded task. ``kind``: ``int`` (decimal or 0x hex), ``number`` (± ``tolerance`` relative, at least
    ``floor`` absolute), ``text`` (case and spaces ignored), ``address`` (an IP address or prefix, any
    spelling), ``letters`` (a set of flag letters, order ignored) or ``config`` (the measure returns whether
    the behaviour was seen; no answer is read)."""

    key: str
    prompt: str
    measure: Callable[[RunView], Measured]
    hint: str
    kind: str = "int"
    tolerance: float = 0.0
    floor: float = 0.0


@dataclass
class Mark:
    key: str
    kind: str
    correct: bool
    answer: Any = None
    expected: Any = None
    where: str = ""
    hint: str = ""

    def json(self, reveal: bool) -> dict[str, Any]:
        out = {"task": self.key, "kind": self.kind, "correct": self.correct, "answer": self.answer}
        if not self.correct:
            out["hint"] = self.hint
        if reveal:
            out |= {"expected": self.expected, "where": self.where}
        return out


@dataclass
class Result:
    lab: str
    student: str
    marks: list[Mark] = field(default_factory=list)

    @property
    def score(self) -> float:
        return 100.0 * sum(mark.correct for mark in self.marks) / len(self.marks) if self.marks else 0.0

    def json(self, reveal: bool = False) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "student": self.student,
            "score": round(self.score, 1),
            "correct": sum(mark.correct for mark in self.marks),
            "tasks": [mark.json(reveal) for mark in self.marks],
        }


def grade(tasks: list[Task], run: RunView, answers: Mapping[str, Any]) -> list[Mark]:
    return [mark_task(task, run, answers.get(task.key)) for task in tasks]


def mark_task(task: Task, run: RunView, answer: Any) -> Mark:
    try:
        measured = task.measure(run)
    except Missing as why:
        hint = f"{task.hint} — this run has no evidence for it: {why}"
        return Mark(task.key, task.kind, False, answer, None, "", hint)
    if task.kind == "config":
        correct = measured.value is True
        hint = f"{task.hint} (look at {measured.where})"
        return Mark(task.key, task.kind, correct, "(marked from the run)", True, measured.where, hint)
    if answer is None or answer == "":
        hint = f"no answer; {task.hint} (look at {measured.where})"
        return Mark(task.key, task.kind, False, answer, measured.value, measured.where, hint)
    correct = matches(task, answer, measured.value)
    hint = f"{task.hint} (look at {measured.where})"
    wanted = wrong_type(task.kind, answer)
    if wanted:
        hint = f"{answer!r} is not {wanted}; {hint}"
    return Mark(task.key, task.kind, correct, answer, measured.value, measured.where, hint)


def matches(task: Task, answer: Any, expected: Any) -> bool:
    """Whether ``answer`` is ``expected`` for a task of ``task.kind``."""
    try:
        if task.kind == "int":
            return _integer(answer) == int(expected)
        if task.kind == "number":
            value, target = float(answer), float(expected)
            allowed = max(abs(target) * task.tolerance, task.floor)
            return math.isfinite(value) and abs(value - target) <= allowed
        if task.kind == "address":
            return bool(_address(answer) == _address(expected))
        if task.kind == "letters":
            return _letters(answer) == _letters(expected)
        return _text(answer) == _text(expected)
    except (TypeError, ValueError):
        return False


WANTED = {
    "int": "a whole number (decimal or 0x hex)",
    "number": "a number",
    "address": "an IP address or prefix",
    "letters": "flag letters",
    "text": "a text",
}


def wrong_type(kind: str, answer: Any) -> str | None:
    """What a task of ``kind`` wants, when ``answer`` cannot be read as that at all (else None)."""
    try:
        if kind == "int":
            _integer(answer)
        elif kind == "number":
            if isinstance(answer, bool) or not math.isfinite(float(answer)):
                raise ValueError(answer)
        elif kind == "address":
            _address(answer)
        elif kind in ("letters", "text") and isinstance(answer, dict | bool):
            raise ValueError(answer)
    except (TypeError, ValueError):
        return WANTED.get(kind, kind)
    return None


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip().lower().replace("_", "")
    return int(text, 16) if text.startswith("0x") else int(text)


def _address(value: Any) -> Any:
    text = str(value).strip()
    return ipaddress.ip_network(text, strict=False) if "/" in text else ipaddress.ip_address(text)


def _letters(value: Any) -> frozenset[str]:
    items = value if isinstance(value, list) else list(str(value).replace(",", " ").replace(" ", ""))
    return frozenset(str(item).strip() for item in items if str(item).strip())


def _text(value: Any) -> str:
    return " ".join(str(value).lower().split())


def toml_value(value: Any) -> str:
    """``value`` as a TOML value for an answers file (strings quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
