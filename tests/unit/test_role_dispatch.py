"""The shell's contract, typed (issue 9, build item 4): each role's ``apply`` matches every event its
machine can emit, ends in ``assert_never``, and forwards nothing silently.

mypy proves it (``assert_never(event)`` fails type checking when a member of the union is left out);
this test repeats the check in the unit tier by reading the ``match`` statements with :mod:`ast`, so a
new event class added to a union without a ``case`` fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

from agents.mip.common.events import HomeAgentEvent, MobileNodeEvent
from agents.mip.fa.events import ForeignAgentEvent
from agents.mip.mn.pd_events import PdClientEvent

ROLES = Path(__file__).resolve().parents[2] / "agents" / "runtime" / "roles"

APPLIERS: list[tuple[str, str, object]] = [
    ("home_agent.py", "HomeAgentEvents", HomeAgentEvent),
    ("foreign_agent.py", "ForeignAgentEvents", ForeignAgentEvent),
    ("mobile_node.py", "MobileNodeEvents", MobileNodeEvent),
    ("mn_dhcpv6.py", "PrefixDelegation", PdClientEvent),
]


def union_members(union: object) -> set[str]:
    """Class names in a (possibly nested) ``X | Y`` union."""
    names: set[str] = set()
    for member in get_args(union):
        names |= union_members(member) if get_args(member) else {member.__name__}
    return names


def apply_method(path: Path, cls: str) -> ast.FunctionDef:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "apply":
                    return item
    raise AssertionError(f"{path.name}: no {cls}.apply")


def matched_classes(function: ast.FunctionDef) -> tuple[set[str], bool]:
    """Class names in the top-level ``match event`` cases, and whether it ends in ``assert_never``."""
    matches = [node for node in function.body if isinstance(node, ast.Match)]
    assert len(matches) == 1, f"{function.name}: one top-level match statement expected"
    names: set[str] = set()
    for case in matches[0].cases:
        for node in ast.walk(case.pattern):
            if isinstance(node, ast.MatchClass):
                cls = node.cls
                names.add(cls.attr if isinstance(cls, ast.Attribute) else ast.unparse(cls))
    last = matches[0].cases[-1]
    exhaustive = (
        isinstance(last.pattern, ast.MatchAs)
        and last.pattern.pattern is None
        and "assert_never(event)" in ast.unparse(last.body[0])
    )
    return names, exhaustive


@pytest.mark.parametrize(("module", "cls", "union"), APPLIERS, ids=[a[1] for a in APPLIERS])
def test_apply_matches_every_event_of_its_machine(module: str, cls: str, union: object) -> None:
    names, exhaustive = matched_classes(apply_method(ROLES / module, cls))
    missing = union_members(union) - names
    assert not missing, f"{cls}.apply has no case for {sorted(missing)}"
    assert exhaustive, f"{cls}.apply must end in `case _: assert_never(event)`"
    assert not names - union_members(union), f"{cls}.apply matches events its machine never emits"


@pytest.mark.parametrize(("module", "cls", "union"), APPLIERS, ids=[a[1] for a in APPLIERS])
def test_no_isinstance_chain_left(module: str, cls: str, union: object) -> None:
    """No ``isinstance(event, ...)`` dispatch in ``apply``: its silent ``else`` is what this replaced."""
    function = apply_method(ROLES / module, cls)
    chains = [
        node.lineno
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "isinstance"
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == "event"
    ]
    assert not chains, f"{cls}.apply dispatches with isinstance at lines {chains}"


def test_the_check_sees_a_missing_case() -> None:
    """The check can fail: a match without BindingRemoved is reported."""
    source = (
        "class A:\n"
        "    def apply(self, event):\n"
        "        match event:\n"
        "            case ev.BindingAdded():\n"
        "                pass\n"
        "            case _:\n"
        "                assert_never(event)\n"
    )
    function = ast.parse(source).body[0].body[0]  # type: ignore[attr-defined]
    names, exhaustive = matched_classes(function)
    assert names == {"BindingAdded"} and exhaustive
    assert "BindingRemoved" in union_members(HomeAgentEvent) - names
