"""Write a run's outputs into its folder: metrics.json, handovers.csv, plots/*.png, report.md."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from reports.handovers import handover_columns
from reports.markdown import render_report
from reports.metrics import RunResult, analyse
from reports.rundir import load_run


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return value


def handovers_csv(result: RunResult) -> str:
    """The text of ``handovers.csv``: one row per handover, empty cells for steps that did not happen."""
    columns = handover_columns(result.flows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in result.handovers:
        writer.writerow([_csv_value(row.get(column)) for column in columns])
    return buffer.getvalue()


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def metrics_json(result: RunResult) -> str:
    return json.dumps(_finite(result.metrics), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def render(run_dir: Path) -> RunResult:
    """Analyse ``run_dir`` and (re)write its metrics.json, handovers.csv, plots/ and report.md.

    Raises :class:`reports.errors.RunFolderError` when the folder or one of its files is unusable.
    """
    from reports.plots import render_plots  # matplotlib only when drawing

    run = load_run(Path(run_dir))
    result = analyse(run)
    _write(run.path / "metrics.json", metrics_json(result))
    _write(run.path / "handovers.csv", handovers_csv(result))
    plots = render_plots(run, result, run.path / "plots")
    _write(run.path / "report.md", render_report(run, result, [plot.name for plot in plots]))
    return result
