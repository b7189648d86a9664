"""Imports point down only (issue 9, design.md §2): the package layout is a layering, checked here.

    agents.runtime  ──►  agents.datapath  ──►  agents.net
          │                    │
          └────────────────────┴──────────►  agents.mip (standard library only)

``agents.mipdump`` (the decoder CLI) sits on ``agents.mip`` alone. Inside ``agents.mip`` the codecs
(``wire``) import no other part of the core, ``common`` imports only ``wire``, and the three machines
(``ha``, ``fa``, ``mn``) sit on both. Every ``import`` statement is
read with :mod:`ast`, including imports inside functions, so a lazy upward import fails here too.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

AGENTS = Path(__file__).resolve().parents[2] / "agents"

ALLOWED: dict[str, set[str]] = {
    "agents.mip": set(),
    "agents.net": set(),
    "agents.mipdump": {"agents.mip"},
    "agents.datapath": {"agents.mip", "agents.net"},
    "agents.runtime": {"agents.mip", "agents.net", "agents.datapath"},
}
"""Which other agents packages each package may import (itself always allowed)."""


def package_of(path: Path) -> str:
    parts = path.relative_to(AGENTS.parent).with_suffix("").parts
    return ".".join(parts[:2]) if len(parts) > 2 else ".".join(parts[:1])


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every absolute module name imported by ``path``, with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}:{node.lineno}: relative import; use absolute agents.* imports")
    return found


def agents_package(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "agents" and len(parts) > 1 else None


def layered_modules() -> list[Path]:
    modules = (path for path in AGENTS.rglob("*.py") if "__pycache__" not in path.parts)
    return sorted(path for path in modules if package_of(path) in ALLOWED)


@pytest.mark.parametrize("path", layered_modules(), ids=lambda p: str(p.relative_to(AGENTS.parent)))
def test_imports_point_down(path: Path) -> None:
    package = package_of(path)
    upward = [
        f"line {line}: {module}"
        for line, module in imported_modules(path)
        if (target := agents_package(module)) is not None
        and target != package
        and target not in ALLOWED[package]
    ]
    assert not upward, f"{path.relative_to(AGENTS.parent)} imports upward: {upward}"


@pytest.mark.parametrize(
    "path",
    [p for p in layered_modules() if package_of(p) == "agents.mip"],
    ids=lambda p: str(p.relative_to(AGENTS)),
)
def test_the_core_needs_only_the_standard_library(path: Path) -> None:
    """The sans-I/O core (design.md §2) runs anywhere Python does: no third-party import."""
    foreign = [
        f"line {line}: {module}"
        for line, module in imported_modules(path)
        if module.split(".")[0] not in sys.stdlib_module_names and module.split(".")[0] != "agents"
    ]
    assert not foreign, f"{path.name} imports outside the standard library: {foreign}"


CORE_ALLOWED: dict[str, set[str]] = {
    "agents.mip.wire": set(),
    "agents.mip.common": {"agents.mip.wire"},
    "agents.mip.ha": {"agents.mip.wire", "agents.mip.common"},
    "agents.mip.fa": {"agents.mip.wire", "agents.mip.common", "agents.mip.ha"},
    "agents.mip.mn": {"agents.mip.wire", "agents.mip.common"},
}
"""Inside the core: which other ``agents.mip`` subpackages each may import. The foreign agent reuses the
home agent's pure ``requested_encapsulation`` (RFC 5944 §3.7.1 relays what the HA will accept)."""


def core_part(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["agents", "mip"] and len(parts) > 2 else None


@pytest.mark.parametrize(
    "path",
    [p for p in layered_modules() if package_of(p) == "agents.mip" and p.parent != AGENTS / "mip"],
    ids=lambda p: str(p.relative_to(AGENTS)),
)
def test_the_codecs_do_not_import_the_machines(path: Path) -> None:
    """``agents.mip.wire`` decodes and encodes bytes only; the machines build on it, never the reverse."""
    part = f"agents.mip.{path.relative_to(AGENTS / 'mip').parts[0]}"
    upward = [
        f"line {line}: {module}"
        for line, module in imported_modules(path)
        if (target := core_part(module)) is not None and target != part and target not in CORE_ALLOWED[part]
    ]
    assert not upward, f"{path.relative_to(AGENTS.parent)} imports across the core's layers: {upward}"


def test_the_core_is_grouped() -> None:
    """``agents/mip`` holds subpackages only (issue 9): a new module picks wire, common or a machine."""
    flat = sorted(p.name for p in (AGENTS / "mip").glob("*.py") if p.name != "__init__.py")
    subpackages = {p.name for p in (AGENTS / "mip").iterdir() if (p / "__init__.py").exists()}
    assert not flat, f"flat modules in agents/mip: {flat}"
    assert {f"agents.mip.{name}" for name in subpackages} == set(CORE_ALLOWED)


def test_the_core_checker_sees_a_codec_importing_a_machine(tmp_path: Path) -> None:
    """The check can fail: a wire codec importing the home agent is reported."""
    module = tmp_path / "bad.py"
    module.write_text("from agents.mip.ha.home_agent import HomeAgent\n")
    [(_, imported)] = imported_modules(module)
    assert core_part(imported) == "agents.mip.ha"
    assert core_part(imported) not in CORE_ALLOWED["agents.mip.wire"]


def test_every_agents_package_has_a_layer() -> None:
    """A new package under agents/ must be placed in the layering above before it can be used."""
    packages = {f"agents.{p.name}" for p in AGENTS.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED), f"place {sorted(packages ^ set(ALLOWED))} in ALLOWED"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The check can fail: a datapath module importing the runtime is reported."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from agents.runtime.trace import Trace\n")
    imports = imported_modules(module)
    assert imports == [(2, "agents.runtime.trace.Trace")]
    assert agents_package(imports[0][1]) not in ALLOWED["agents.datapath"]


def test_the_module_map_names_every_core_module() -> None:
    """docs/architecture.md's `agents/mip` table keeps up with the layout (issue 9, build item 5)."""
    text = (AGENTS.parent / "docs" / "architecture.md").read_text()
    modules = sorted(
        path.relative_to(AGENTS / "mip").as_posix()
        for path in (AGENTS / "mip").rglob("*.py")
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    )
    missing = [module for module in modules if f"`{module}`" not in text]
    assert not missing, f"docs/architecture.md does not list {missing}"


def test_the_packet_walk_names_files_that_exist() -> None:
    """The "follow one IPv6 packet" walk names at most six files, and each exists."""
    text = (AGENTS.parent / "docs" / "architecture.md").read_text()
    walk = text.split("## Follow one IPv6 packet from CN to MN", 1)[1].split("\n## ", 1)[0]
    steps = [line.split("`")[1] for line in walk.splitlines() if line[:1].isdigit() and "`" in line]
    assert 0 < len(steps) <= 6, steps
    assert all((AGENTS.parent / step).is_file() for step in steps), steps
