"""``python -m labs start|check|solve``: start a lab's network for a student, mark a run folder against an
answers file, or make the reference run and its answers (the teacher's and CI's view).

Exit codes: ``check`` and ``solve`` exit 0 when every task is right, 1 when the score is below 100 %;
every command exits 2 on bad input (no such lab, run folder or file; malformed TOML or ``lab.json``, a
setting out of range, a doctored evidence file), with one line of text; ``start`` passes on the scenario's
own code when it could not run (1: the testbed failed, 2: not root or a tool missing, 130/143: interrupted).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labs.catalog import LABS, get_lab
from labs.errors import LabError, Missing
from labs.grading import Result, grade, toml_value
from labs.lab import Lab, read_toml
from labs.runview import LAB_FILE, RunView, evidence_hashes, repo_root

REFERENCE_STUDENT = "reference"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m labs", description="DSMIPv4 teaching labs with grading.")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start lab NN for a student (needs root): one run folder")
    start.add_argument("lab", help="lab number, e.g. 01")
    start.add_argument("--student", required=True, help="your student ID (picks your variant)")
    start.add_argument("--out", type=Path, help="run folder (default reports/runs/labNN-ID-<UTC time>)")
    start.add_argument("--settings", type=Path, help="your settings file (default: the lab's settings.toml)")
    check = commands.add_parser("check", help="mark a run folder against an answers file (no root needed)")
    check.add_argument("lab", help="lab number, e.g. 01")
    check.add_argument("run_dir", type=Path, help="the run folder `start` made")
    check.add_argument("answers", type=Path, help="your answers (TOML, from the lab's answers.toml)")
    check.add_argument("--json", action="store_true", help="the marks as JSON (for course tooling)")
    check.add_argument("--reveal", action="store_true", help="also show the expected values (teachers)")
    solve = commands.add_parser("solve", help="reference run + answers derived from it, then mark them")
    solve.add_argument("lab", help="lab number, e.g. 01")
    solve.add_argument(
        "--out", type=Path, help="run folder (default reports/runs/labNN-reference-<UTC time>)"
    )
    solve.add_argument("--json", action="store_true", help="the marks as JSON")
    commands.add_parser("list", help="the labs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            for lab in LABS.values():
                print(f"{lab.number}  {lab.title:<60} ~{lab.minutes} min   labs/{lab.folder.name}/README.md")
            return 0
        lab = get_lab(args.lab)
        if args.command == "start":
            return start(lab, args.student, args.out, lab.load_settings(args.settings))[1]
        if args.command == "check":
            return check(lab, args.run_dir, args.answers, as_json=args.json, reveal=args.reveal)
        return solve(lab, args.out, as_json=args.json)
    except LabError as error:
        print(f"labs: {error}", file=sys.stderr)
        return 2


# -- start ----------------------------------------------------------------------------------------------


def start(lab: Lab, student: str, out: Path | None, settings: dict[str, Any]) -> tuple[Path, int]:
    """Run the lab's scenario for ``student`` into a run folder; record the variant in ``lab.json``."""
    variant = lab.variant(student)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = (out or repo_root() / "reports" / "runs" / f"lab{lab.number}-{student}-{stamp}").resolve()
    if (run_dir / "meta.json").exists():
        raise LabError(f"{run_dir} already holds a run; choose another --out")
    argv = [*lab.argv(variant, settings), "--seed", str(variant["seed"]), "--out", str(run_dir)]
    print(
        f"lab {lab.number} ({lab.title}) for {student}: python -m scenarios.{lab.scenario} {' '.join(argv)}"
    )
    scenario = importlib.import_module(f"scenarios.{lab.scenario}")
    code = int(scenario.main(argv))
    if code in (130, 143) or not (run_dir / "meta.json").exists():
        print(f"labs: the scenario did not run to its end (exit {code}); nothing to mark", file=sys.stderr)
        return run_dir, code if code else 2
    if code != 0 and not (run_dir / "metrics.json").exists():
        # the scenario's checks failing is expected in a starting state; a testbed that never ran is not
        print(
            f"labs: the testbed could not run (scenario exit {code}, no metrics.json in {run_dir}); "
            "nothing to mark",
            file=sys.stderr,
        )
        return run_dir, code
    record = {
        "lab": lab.number,
        "name": lab.name,
        "student": student,
        "variant": variant,
        "settings": settings,
        "scenario": lab.scenario,
        "argv": argv,
        "scenario_exit": code,
        "evidence": evidence_hashes(run_dir),
    }
    (run_dir / LAB_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    (run_dir / "tasks.md").write_text(task_sheet(lab, student, variant))
    print()
    print(task_sheet(lab, student, variant))
    answers = lab.folder / "answers.toml"
    print(f"Run folder: {run_dir}")
    print(f"Answer in a copy of {answers.relative_to(repo_root())}, then mark it with:")
    print(f"  ./testbed labs check {lab.number} {run_dir} my{lab.number}-answers.toml")
    return run_dir, 0


def task_sheet(lab: Lab, student: str, variant: dict[str, Any]) -> str:
    lines = [f"# Lab {lab.number}: {lab.title} — tasks for {student}", ""]
    shown = {k: v for k, v in variant.items() if k not in ("keys",)}
    lines.append("Your variant: " + ", ".join(f"{k} = {v}" for k, v in shown.items()))
    for spi, key in variant.get("keys", {}).items():
        lines.append(f"MN-HA key for SPI {spi}: {key} (HMAC-MD5)")
    lines.append("")
    for task in lab.tasks(variant):
        tag = "configure" if task.kind == "config" else f"answer `{task.key}`"
        lines.append(f"- [{tag}] {task.prompt}")
    return "\n".join(lines) + "\n"


# -- check ----------------------------------------------------------------------------------------------


def check(lab: Lab, run_dir: Path, answers_path: Path, *, as_json: bool, reveal: bool) -> int:
    run = RunView(run_dir)
    if run.lab.get("lab") != lab.number:
        raise LabError(f"{run_dir} is a run of lab {run.lab.get('lab')}, not lab {lab.number}")
    answers = read_toml(answers_path, "answers")
    result = mark(lab, run, answers)
    unknown = sorted(set(answers) - {task.key for task in lab.tasks(run.variant)})
    if as_json:
        print(json.dumps(result.json(reveal) | {"ignored": unknown}, indent=2, default=str))
    else:
        print(render(result, reveal))
        if unknown:
            print(f"(ignored, not a task of lab {lab.number}: {', '.join(unknown)})")
    return 0 if result.score >= 100.0 else 1


def mark(lab: Lab, run: RunView, answers: dict[str, Any]) -> Result:
    tasks = lab.tasks(run.variant)
    return Result(lab.number, str(run.lab.get("student")), grade(tasks, run, answers))


def render(result: Result, reveal: bool = False) -> str:
    rows = [("#", "task", "your answer", "mark")]
    for index, mark_ in enumerate(result.marks, start=1):
        shown = "" if mark_.answer is None else str(mark_.answer)
        rows.append((str(index), mark_.key, shown[:40], "✔" if mark_.correct else "✘"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    wrong = [(i, m) for i, m in enumerate(result.marks, start=1) if not m.correct]
    if wrong:
        lines.append("")
        lines.append("Hints:")
        lines += [f"  {index}. {mark_.key}: {mark_.hint}" for index, mark_ in wrong]
    if reveal:
        lines.append("")
        lines += [f"  {m.key}: expected {m.expected!r} ({m.where})" for m in result.marks]
    correct = sum(m.correct for m in result.marks)
    lines.append("")
    lines.append(
        f"Lab {result.lab}, {result.student}: {correct} of {len(result.marks)} tasks right, "
        f"score {result.score:.0f} %"
    )
    return "\n".join(lines)


# -- solve ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def stdout_to_stderr(active: bool) -> Iterator[None]:
    """With ``active``, everything written to standard output (Python's and file descriptor 1, which the
    scenario's tools inherit) goes to standard error instead: ``--json`` keeps stdout for the JSON."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def solve(lab: Lab, out: Path | None, *, as_json: bool) -> int:
    """The reference run (the lab's solution settings) and answers read from it; marks them. With
    ``as_json`` only the marks' JSON goes to standard output (the progress goes to standard error)."""
    with stdout_to_stderr(as_json):
        run_dir, code = start(lab, REFERENCE_STUDENT, out, lab.solution(lab.variant(REFERENCE_STUDENT)))
        if not (run_dir / LAB_FILE).exists():
            return code or 2
        run = RunView(run_dir)
        answers = reference_answers(lab, run)
        answers_path = run_dir / "answers.toml"
        answers_path.write_text("".join(f"{key} = {toml_value(value)}\n" for key, value in answers.items()))
        print(f"reference answers: {answers_path}")
    return check(lab, run_dir, answers_path, as_json=as_json, reveal=False)


def reference_answers(lab: Lab, run: RunView) -> dict[str, Any]:
    """What this run measured for every question (configuration tasks need no answer)."""
    answers: dict[str, Any] = {}
    for task in lab.tasks(run.variant):
        if task.kind == "config":
            continue
        try:
            answers[task.key] = task.measure(run).value
        except Missing:
            answers[task.key] = ""
    return answers
