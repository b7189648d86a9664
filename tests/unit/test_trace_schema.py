"""One trace schema (issue 9, build item 4): agents emit and reports match only ``TraceEvent`` members.

Read with :mod:`ast`, so a renamed or misspelt event fails here (the unit tier), not only in a root run:
every machine event class takes its ``name`` from the schema with exactly the schema's fields, every
``emit``/``emit_at`` in the agents and the harness names a member with fields the schema lists, and
``reports/`` names members only (no string literal where an event name goes).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
from pathlib import Path

import pytest

import agents.mip
from agents.mip.common.events import _Event
from agents.mip.common.trace_schema import AGENT_EVENTS, CORE_EVENTS, FIELDS, SCENARIO_EVENTS, TraceEvent

ROOT = Path(__file__).resolve().parents[2]
EMITTERS = ("agents", "scenarios", "topologies", "benchmarks", "labs")
VARIABLE_NAMES = {
    ("agents/runtime/roles/driver.py", "name"),  # a machine event's own ``name`` (checked below)
    ("agents/runtime/security_log.py", "name"),  # the driver's or the drop reporter's member, passed on
}
"""Where an emit may pass a variable: the two places that forward a name already checked."""
NOT_EVENT_NAMES = {("reports/markdown.py", "step")}
"""Report strings that equal an event name but mean something else (a table column)."""


def _sources(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (ROOT / root).rglob("*.py") if "__pycache__" not in p.parts)


def _event_classes() -> list[type]:
    for module in pkgutil.walk_packages(agents.mip.__path__, "agents.mip."):
        importlib.import_module(module.name)
    found: list[type] = []
    pending = list(_Event.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if dataclasses.is_dataclass(cls) and "name" in cls.__dict__:
            found.append(cls)
    return sorted(found, key=lambda cls: cls.__qualname__)


def _member(node: ast.expr) -> str | None:
    """``X`` of ``TraceEvent.X``, else None."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "TraceEvent":
        return node.attr
    return None


def emit_problems(path: Path, source: str) -> list[str]:
    """What is wrong with the trace names ``source`` emits or declares (empty when all are members)."""
    relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    problems: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[ast.expr] = []
        keys: set[str] | None = set()
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            index = {"emit": 0, "emit_at": 1}.get(node.func.attr)
            if index is None or len(node.args) <= index:
                continue
            arg = node.args[index]
            names = [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]
            for keyword in node.keywords:
                if keyword.arg is not None and keys is not None:
                    keys.add(keyword.arg)
                elif isinstance(keyword.value, ast.Dict) and keys is not None:
                    keys |= {k.value for k in keyword.value.keys if isinstance(k, ast.Constant)}
                else:
                    keys = None  # ``**mapping``: fields checked where the mapping is built
        elif isinstance(node, ast.ClassDef) and node.name != "_Event":  # the base's placeholder name
            for statement in node.body:
                target = None
                if isinstance(statement, ast.AnnAssign) and "ClassVar" in ast.unparse(statement.annotation):
                    target = statement.target  # ``name: str = ""`` is a dataclass field, not a trace name
                if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                    target = statement.targets[0]
                value = getattr(statement, "value", None)
                if isinstance(target, ast.Name) and target.id == "name" and value is not None:
                    names.append(value)
            keys = None
        for name in names:
            member = _member(name)
            if isinstance(name, ast.Name) and (relative, name.id) in VARIABLE_NAMES:
                continue
            if member is None:
                problems.append(f"{relative}:{name.lineno}: {ast.unparse(name)} is not a TraceEvent member")
            elif member not in TraceEvent.__members__:
                problems.append(f"{relative}:{name.lineno}: TraceEvent.{member} is not in the schema")
            elif keys is not None and not keys <= FIELDS[TraceEvent[member]]:
                extra = sorted(keys - FIELDS[TraceEvent[member]])
                problems.append(f"{relative}:{name.lineno}: {member} fields {extra} not in the schema")
    return problems


def report_problems(path: Path, source: str) -> list[str]:
    """Event names in ``source`` (a report) that are literals or unknown members."""
    relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    tree = ast.parse(source)
    ignored: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            ignored.add(id(body[0].value))  # docstrings
        if isinstance(node, ast.Dict):
            ignored |= {id(key) for key in node.keys if key is not None}
        elif isinstance(node, ast.Subscript):
            ignored.add(id(node.slice))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            ignored |= {id(arg) for arg in node.args}
        elif isinstance(node, ast.Compare):
            field = node.left.args[0] if isinstance(node.left, ast.Call) and node.left.args else None
            field = node.left.slice if isinstance(node.left, ast.Subscript) else field
            if isinstance(field, ast.Constant) and field.value != "event":  # e.get("reason") == "..."
                ignored |= {id(c) for c in node.comparators}
    problems: list[str] = []
    values = {member.value for member in TraceEvent}
    for node in ast.walk(tree):
        member = _member(node) if isinstance(node, ast.Attribute) else None
        if member is not None and member not in TraceEvent.__members__:
            problems.append(f"{relative}:{node.lineno}: TraceEvent.{member} is not in the schema")
        if (
            isinstance(node, ast.Constant)
            and node.value in values
            and id(node) not in ignored
            and (relative, node.value) not in NOT_EVENT_NAMES
        ):
            problems.append(f"{relative}:{node.lineno}: literal {node.value!r}; use TraceEvent")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            first = {"events": 1, "foreign_agent_events": 0}.get(node.func.attr)
            for arg in node.args[first:] if first is not None else []:
                if isinstance(arg, ast.Constant):
                    problems.append(f"{relative}:{arg.lineno}: event name literal {arg.value!r}")
    return problems


@pytest.mark.parametrize("cls", _event_classes(), ids=lambda cls: cls.__qualname__)
def test_every_machine_event_is_in_the_schema_with_its_fields(cls: type) -> None:
    name = cls.__dict__["name"]
    assert isinstance(name, TraceEvent), f"{cls.__qualname__}.name = {name!r} is not a TraceEvent"
    assert name in CORE_EVENTS
    assert {field.name for field in dataclasses.fields(cls)} == FIELDS[name]


def test_every_member_has_fields_and_one_emitter() -> None:
    assert set(FIELDS) == set(TraceEvent)
    for member in TraceEvent:
        owners = [group for group in (CORE_EVENTS, AGENT_EVENTS, SCENARIO_EVENTS) if member in group]
        assert len(owners) == 1, f"{member} belongs to {len(owners)} emitter groups"
        assert member.name == member.value.upper()


def test_every_core_schema_event_has_a_class() -> None:
    """No stale entries: a core event removed from the machines leaves the schema too."""
    assert {cls.__dict__["name"] for cls in _event_classes()} == CORE_EVENTS


@pytest.mark.parametrize("path", _sources(*EMITTERS), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_agents_and_harness_emit_schema_members(path: Path) -> None:
    problems = emit_problems(path, path.read_text())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", _sources("reports"), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_reports_match_schema_members(path: Path) -> None:
    problems = report_problems(path, path.read_text())
    assert not problems, "\n".join(problems)


def test_the_emit_check_can_fail(tmp_path: Path) -> None:
    source = (
        "trace.emit('binding_added', home_address=1)\n"
        "trace.emit(TraceEvent.BINDING_ADDDED)\n"
        "trace.emit(TraceEvent.AGENT_EXIT, colour=1)\n"
        "class E:\n    name = 'x'\n"
    )
    problems = emit_problems(tmp_path / "bad.py", source)
    assert len(problems) == 4, problems
    assert any("'binding_added' is not a TraceEvent member" in problem for problem in problems)


def test_the_report_check_can_fail(tmp_path: Path) -> None:
    source = (
        "a = run.events('ha', 'binding_added')\n"
        "b = [e for e in x if e['event'] == 'rrq_sent']\n"
        "c = run.events('ha', TraceEvent.BINDING_RENAMED)\n"
        "d = [e for e in x if e.get('reason') == 'deregistered']\n"
    )
    problems = report_problems(tmp_path / "bad.py", source)
    assert len(problems) == 4, problems  # the literal twice on line 1 (value and events() arg), 2, 3; not 4
    assert not any(":4:" in problem for problem in problems)


def test_trace_lines_carry_plain_strings(tmp_path: Path) -> None:
    """A member is written as its value, so a report reading JSON compares equal to the member."""
    from agents.runtime.trace import TraceWriter

    path = tmp_path / "t.jsonl"
    with TraceWriter(path, "ha") as trace:
        trace.emit(TraceEvent.AGENT_EXIT, code=0)
    assert '"event":"agent_exit"' in path.read_text()
